//! The recipients: each turns an event into the recipient's request and the answer into an
//! [`AttemptOutcome`]. A closed enum rather than a trait object, so the set of recipients is
//! matched exhaustively and a new one cannot be half wired in.
//!
//! # Layout
//! - `insurer`: the pension insurer salary link (docs/recipients/pension-insurer-salary-link.md).
//! - `webhook`: Standard Webhooks with v1 (HMAC-SHA256) signatures.

pub mod insurer;
pub mod webhook;

use bytes::{Bytes, BytesMut};
use koppel_events::Event;
use koppel_registry::{Recipient, RecipientSettings, RegistrySnapshot, SealError, SecretKey};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::outcome::{AttemptOutcome, PermanentClass};

pub use insurer::PensionInsurerClient;
pub use webhook::{WebhookClient, WebhookSecret, WebhookSecretError};

/// One event on its way to one recipient.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRequest<'a> {
    pub event: &'a Event,
    /// The idempotency key of every request for this event, on every attempt and re-drive.
    pub event_id: Uuid,
    /// The event's JetStream stream sequence: recipients (and the simulators) use it to detect
    /// reordering per employee.
    pub stream_sequence: u64,
    pub employer_key: &'a str,
}

/// Why a recipient's client cannot be built from its registry record.
#[derive(Debug, thiserror::Error)]
pub enum RecipientSetupError {
    #[error("cannot open the sealed {field} of recipient {recipient}: {source}")]
    Secret {
        recipient: String,
        field: &'static str,
        source: SealError,
    },
    #[error("the webhook secret of recipient {recipient} is unusable: {source}")]
    WebhookSecret {
        recipient: String,
        source: WebhookSecretError,
    },
}

/// A recipient ready to receive events.
#[derive(Debug, Clone)]
pub enum RecipientClient {
    PensionInsurer(PensionInsurerClient),
    Webhook(WebhookClient),
}

/// The seal context of a recipient secret: bound into the seal, so a sealed value copied into
/// another recipient's record does not open there.
pub fn secret_context(recipient: &str, field: &str) -> String {
    format!("recipient/{recipient}/{field}")
}

impl RecipientClient {
    /// Builds the client of `recipient`, opening its secrets with `key`. `snapshot` supplies
    /// the employer registrations (the insurer falls back to their loonheffingennummer).
    pub fn from_registry(
        recipient: &Recipient,
        snapshot: &RegistrySnapshot,
        key: &SecretKey,
        http: reqwest::Client,
    ) -> Result<Self, RecipientSetupError> {
        match &recipient.settings {
            RecipientSettings::PensionInsurer {
                base_url,
                api_token,
                employer_links,
            } => {
                let api_token = key
                    .open(api_token, &secret_context(&recipient.name, "api_token"))
                    .map_err(|source| RecipientSetupError::Secret {
                        recipient: recipient.name.clone(),
                        field: "api_token",
                        source,
                    })?;
                Ok(RecipientClient::PensionInsurer(PensionInsurerClient::new(
                    http,
                    base_url.clone(),
                    api_token,
                    insurer::employer_links(&recipient.name, employer_links, snapshot),
                )))
            }
            RecipientSettings::Webhook { url, secret } => {
                let secret = key
                    .open(secret, &secret_context(&recipient.name, "secret"))
                    .map_err(|source| RecipientSetupError::Secret {
                        recipient: recipient.name.clone(),
                        field: "secret",
                        source,
                    })?;
                let secret = WebhookSecret::parse(secrecy::ExposeSecret::expose_secret(&secret))
                    .map_err(|source| RecipientSetupError::WebhookSecret {
                        recipient: recipient.name.clone(),
                        source,
                    })?;
                Ok(RecipientClient::Webhook(WebhookClient::new(
                    http,
                    url.clone(),
                    secret,
                )))
            }
        }
    }

    /// One attempt. Never panics and never returns an error type: every failure is classified.
    pub async fn deliver(&self, request: &DeliveryRequest<'_>) -> AttemptOutcome {
        match self {
            RecipientClient::PensionInsurer(client) => client.deliver(request).await,
            RecipientClient::Webhook(client) => client.deliver(request).await,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RecipientClient::PensionInsurer(_) => "pension_insurer",
            RecipientClient::Webhook(_) => "webhook",
        }
    }
}

/// A failure to get an answer at all. Everything on the way (connect, TLS, timeout, a reset
/// connection) may succeed next time; only a request that cannot even be built is permanent.
/// The most of a recipient's response body koppel reads. koppel needs a body only to say why a
/// request was refused (one line of 400 characters) or to read a small JSON answer; anything
/// longer is cut here, so a hostile or broken endpoint answering gigabytes costs 64 KiB, not
/// the deliverer's memory.
pub const MAX_RESPONSE_BODY_BYTES: usize = 64 * 1024;

/// A response body koppel would not read whole.
#[derive(Debug, thiserror::Error)]
pub enum ResponseBodyError {
    /// Longer than the limit (by its `Content-Length`, or once that much was read). `prefix`
    /// holds what was read, at most `limit` bytes.
    #[error("the response body exceeds the {limit}-byte limit")]
    TooLarge { limit: usize, prefix: Bytes },
    #[error("the response body could not be read")]
    Read(#[source] reqwest::Error),
}

/// Reads a response body of at most `limit` bytes, chunk by chunk, and stops reading as soon as
/// it would go over. A declared `Content-Length` over the limit is refused before reading.
pub async fn read_bounded_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, ResponseBodyError> {
    let declared = response
        .content_length()
        .and_then(|length| usize::try_from(length).ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ResponseBodyError::TooLarge {
            limit,
            prefix: Bytes::new(),
        });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = response.chunk().await.map_err(ResponseBodyError::Read)? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Err(ResponseBodyError::TooLarge {
                limit,
                prefix: body.freeze(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// "HTTP <status>: <body>" on one bounded line, for the reason of a refused request. A body
/// over the limit is named as such first, so the note survives the line's truncation.
pub(crate) async fn refusal_reason(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let line = match read_bounded_body(response, MAX_RESPONSE_BODY_BYTES).await {
        Ok(body) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
        Err(ResponseBodyError::TooLarge { limit, prefix }) => format!(
            "HTTP {status} (the response body exceeds the {limit}-byte limit): {}",
            String::from_utf8_lossy(&prefix)
        ),
        Err(ResponseBodyError::Read(error)) => {
            format!("HTTP {status} (the response body could not be read: {error})")
        }
    };
    one_line(&line, 400)
}

pub(crate) fn transport_failure(error: &reqwest::Error) -> AttemptOutcome {
    if error.is_builder() {
        return AttemptOutcome::Permanent {
            class: PermanentClass::Refused,
            reason: format!("the request cannot be built: {error}"),
        };
    }
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect error"
    } else {
        "transport error"
    };
    AttemptOutcome::Retryable {
        reason: format!("{kind}: {error}"),
        retry_after: None,
    }
}

/// Statuses that say "not now" rather than "no": request timeout, throttling, server errors.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Header values and dead-letter reasons are one line of bounded length; a recipient's error
/// body could be anything.
pub(crate) fn one_line(text: &str, limit: usize) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(limit)
        .collect();
    if text.chars().count() > limit {
        line.push('…');
    }
    line
}
