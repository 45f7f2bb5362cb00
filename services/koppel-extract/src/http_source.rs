//! Source-neutral HTTP plumbing every source client shares: the retry and backoff policy
//! (429 and 5xx retried with jittered exponential backoff, honouring `Retry-After`; other 4xx
//! never retried) and the paging loop that cannot spin forever.
//!
//! Nothing here knows Loket or Unit4: a client builds its own requests and its own page
//! envelope, and hands them to [`send_with_retry`] and [`collect_pages`]. Authentication
//! failures (401) are not retried by [`send_with_retry`]; [`get_json_with_bearer`] renews the
//! token once through the client's [`BearerTokens`] and repeats the request once, the same
//! way for every source.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Whether an operation may succeed if it is tried again later: koppel-nats's classification,
/// so a KV or publish error's class passes through unchanged. Every error type of this crate
/// maps onto it with an exhaustive match, so a new variant must take a side.
pub use koppel_nats::ErrorClass;

/// How one request is retried. Part of each source's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: usize,
    /// First backoff delay, milliseconds; doubles per attempt, with jitter.
    pub min_delay_milliseconds: u64,
    /// Largest backoff delay, milliseconds.
    pub max_delay_milliseconds: u64,
    /// Largest `Retry-After` honoured, seconds: a server asking for more gets the request
    /// failed as retryable instead, so one employer cannot park a worker for an hour.
    pub max_retry_after_seconds: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            min_delay_milliseconds: 200,
            max_delay_milliseconds: 20_000,
            max_retry_after_seconds: 120,
        }
    }
}

impl RetryPolicy {
    /// The jittered exponential delays between attempts (one fewer than `max_attempts`).
    fn delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(self.min_delay_milliseconds))
            .with_max_delay(Duration::from_millis(self.max_delay_milliseconds))
            .with_max_times(self.max_attempts.saturating_sub(1))
            .build()
    }
}

/// Why a request to a source failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpSourceError {
    /// No response, or the body broke off: connect failure, timeout, reset. The source is
    /// reqwest's error without the URL (ours is in `endpoint`, with no ids or hosts).
    #[error("{endpoint}: no response: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// A response with a non-success status. `body_excerpt` is at most 200 characters of what
    /// the source said; source error bodies carry messages, never the request's secrets.
    #[error("{endpoint}: HTTP {status}: {body_excerpt}")]
    Status {
        endpoint: String,
        status: u16,
        body_excerpt: String,
    },
    /// The body is not what the source documents (not JSON, or not the envelope). `reason`
    /// names the rule it broke, never the values (serde's own text quotes them, and a source
    /// body may hold a BSN or a token), so serde's error is not kept as the source.
    #[error("{endpoint}: unexpected response body: {reason}")]
    Body { endpoint: String, reason: String },
    /// The body is larger than koppel reads from a source.
    #[error("{endpoint}: the response body exceeds the limit of {limit_bytes} bytes")]
    BodyTooLarge {
        endpoint: String,
        limit_bytes: usize,
    },
    /// A retryable failure persisted through every attempt.
    #[error("{endpoint}: gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        endpoint: String,
        attempts: usize,
        last: Box<HttpSourceError>,
    },
    /// The source asked to wait longer than the policy allows.
    #[error("{endpoint}: the source asked to retry after {seconds} s, beyond the configured limit")]
    RetryAfterTooLong { endpoint: String, seconds: u64 },
    /// Paging did not terminate within the page limit.
    #[error("{endpoint}: more than {max_pages} pages; refusing to page further")]
    TooManyPages { endpoint: String, max_pages: u64 },
}

impl HttpSourceError {
    pub fn class(&self) -> ErrorClass {
        match self {
            HttpSourceError::Transport { .. }
            | HttpSourceError::RetriesExhausted { .. }
            | HttpSourceError::RetryAfterTooLong { .. } => ErrorClass::Retryable,
            HttpSourceError::Status { status, .. } => status_class(*status),
            HttpSourceError::Body { .. }
            | HttpSourceError::BodyTooLarge { .. }
            | HttpSourceError::TooManyPages { .. } => ErrorClass::Permanent,
        }
    }

    /// The HTTP status, when the failure was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpSourceError::Status { status, .. } => Some(*status),
            HttpSourceError::RetriesExhausted { last, .. } => last.status(),
            HttpSourceError::Transport { .. }
            | HttpSourceError::Body { .. }
            | HttpSourceError::BodyTooLarge { .. }
            | HttpSourceError::RetryAfterTooLong { .. }
            | HttpSourceError::TooManyPages { .. } => None,
        }
    }
}

/// 429 (rate limited) and 5xx are transient; every other status is the request's fault.
pub fn status_class(status: u16) -> ErrorClass {
    if status == 429 || (500..=599).contains(&status) {
        ErrorClass::Retryable
    } else {
        ErrorClass::Permanent
    }
}

/// Sends the request `build` makes, retrying transient failures per `policy`.
///
/// `build` is called once per attempt (a `RequestBuilder` is consumed by sending). The delay
/// before a retry is the larger of the jittered backoff and the response's `Retry-After`, so a
/// rate-limited source gets at least what it asked for. A successful (2xx) response is
/// returned; any other status is returned as [`HttpSourceError::Status`] once it is permanent
/// or the attempts are used up.
pub async fn send_with_retry<F>(
    policy: &RetryPolicy,
    source: &'static str,
    endpoint: &str,
    mut build: F,
) -> Result<reqwest::Response, HttpSourceError>
where
    F: FnMut() -> reqwest::RequestBuilder,
{
    let mut delays = policy.delays();
    let mut attempts = 0usize;
    loop {
        attempts += 1;
        metrics::counter!("koppel_source_http_requests_total", "source" => source).increment(1);
        let (error, asked_delay) = match build().send().await {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => {
                let status = response.status().as_u16();
                let asked_delay = koppel_runtime::http::retry_after(response.headers());
                // An error body only feeds a 200-character excerpt: a bounded read, and an
                // unreadable one is an empty excerpt.
                let body = read_body(response, endpoint, MAX_ERROR_BODY_BYTES)
                    .await
                    .unwrap_or_default();
                let body_excerpt = excerpt(&String::from_utf8_lossy(&body));
                (
                    HttpSourceError::Status {
                        endpoint: endpoint.to_owned(),
                        status,
                        body_excerpt,
                    },
                    asked_delay,
                )
            }
            Err(error) => (transport_error(endpoint, error), None),
        };
        match error.class() {
            ErrorClass::Permanent => return Err(error),
            ErrorClass::Retryable => {}
        }
        if let Some(asked) = asked_delay
            && asked > Duration::from_secs(policy.max_retry_after_seconds)
        {
            return Err(HttpSourceError::RetryAfterTooLong {
                endpoint: endpoint.to_owned(),
                seconds: asked.as_secs(),
            });
        }
        let Some(backoff) = delays.next() else {
            return Err(HttpSourceError::RetriesExhausted {
                endpoint: endpoint.to_owned(),
                attempts,
                last: Box::new(error),
            });
        };
        let delay = asked_delay.map_or(backoff, |asked| asked.max(backoff));
        metrics::counter!("koppel_source_http_retries_total", "source" => source).increment(1);
        tracing::debug!(%error, delay_ms = delay.as_millis() as u64, attempt = attempts, "Source request failed transiently; retrying.");
        tokio::time::sleep(delay).await;
    }
}

/// The most koppel reads of a successful source response. A Loket page of 250 employees is
/// well under a megabyte; a body past this is a fault of the source (or of something in
/// between), and reading it whole could exhaust the extractor's memory.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The most koppel reads of an error response, which only feeds a 200-character excerpt.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// A transport failure, without the URL: reqwest's Display includes it, and ours is in
/// `endpoint`.
fn transport_error(endpoint: &str, error: reqwest::Error) -> HttpSourceError {
    HttpSourceError::Transport {
        endpoint: endpoint.to_owned(),
        source: Arc::new(error.without_url()),
    }
}

/// Reads a response body, refusing one larger than `limit_bytes` (by its `Content-Length`, or
/// once that many bytes arrived) with [`HttpSourceError::BodyTooLarge`].
pub async fn read_body(
    mut response: reqwest::Response,
    endpoint: &str,
    limit_bytes: usize,
) -> Result<Vec<u8>, HttpSourceError> {
    let too_large = || HttpSourceError::BodyTooLarge {
        endpoint: endpoint.to_owned(),
        limit_bytes,
    };
    let announced = response.content_length().unwrap_or(0);
    if usize::try_from(announced).map_or(true, |announced| announced > limit_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(endpoint, error))?
    {
        if body.len().saturating_add(chunk.len()) > limit_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a response body (at most [`MAX_BODY_BYTES`]) and parses it as JSON `T`.
pub async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    endpoint: &str,
) -> Result<T, HttpSourceError> {
    let body = read_body(response, endpoint, MAX_BODY_BYTES).await?;
    serde_json::from_slice(&body).map_err(|error| body_error(endpoint, &error))
}

fn excerpt(body: &str) -> String {
    const LIMIT: usize = 200;
    let trimmed = body.trim();
    match trimmed.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}

/// One page of a paged collection, in source-neutral terms. A client parses its own envelope
/// (Loket's `_embedded`, `currentPage`, `totalPages`) into this.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// 1-based number of this page, when the source says.
    pub current_page: Option<u64>,
    /// Number of pages, when the source says. May be 0 for an empty collection.
    pub total_pages: Option<u64>,
}

/// The page to fetch after `page`, or `None` when paging is done.
///
/// Paging stops on an empty page, or when `currentPage >= totalPages`. The `>=` matters: an
/// empty collection reports `totalPages: 0`, and a loop waiting for `currentPage ==
/// totalPages` (as HelloID's connector does) would never end.
pub fn next_page_number<T>(requested: u64, page: &Page<T>) -> Option<u64> {
    if page.items.is_empty() {
        return None;
    }
    let current = page.current_page.unwrap_or(requested);
    match page.total_pages {
        Some(total) if current >= total => None,
        _ => Some(requested + 1),
    }
}

/// Fetches every page, starting at page 1, and returns all items in order. Refuses to fetch
/// more than `max_pages`: a source that never reports the end is an error, not a hang.
///
/// The error type is the caller's (anything an [`HttpSourceError`] converts into), so a page
/// fetch that fails for another reason, such as a token that cannot be renewed, comes out
/// as itself.
pub async fn collect_pages<T, E, F, Fut>(
    endpoint: &str,
    max_pages: u64,
    mut fetch_page: F,
) -> Result<Vec<T>, E>
where
    E: From<HttpSourceError>,
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Page<T>, E>>,
{
    let mut items = Vec::new();
    let mut page_number = 1u64;
    loop {
        if page_number > max_pages {
            return Err(HttpSourceError::TooManyPages {
                endpoint: endpoint.to_owned(),
                max_pages,
            }
            .into());
        }
        let mut page = fetch_page(page_number).await?;
        let next = next_page_number(page_number, &page);
        items.append(&mut page.items);
        match next {
            Some(next) => page_number = next,
            None => return Ok(items),
        }
    }
}

/// A source's access tokens, as [`get_json_with_bearer`] needs them. Each source implements
/// it on its own token store (Loket: rotating refresh tokens in KV; Unit4: client
/// credentials), so the "renew once on a 401" rule lives here once.
pub trait BearerTokens: Send + Sync {
    /// What a token failure is in the caller's terms.
    type Error: From<HttpSourceError> + Send;

    /// A token to send now (cached, or fetched when there is none or it is about to expire).
    fn access_token(&self) -> impl Future<Output = Result<SecretString, Self::Error>> + Send;

    /// A new token after the source refused `rejected` with a 401. When another request
    /// already renewed it, implementations return that newer token instead of renewing again.
    fn renew_after_rejection(
        &self,
        rejected: &SecretString,
    ) -> impl Future<Output = Result<SecretString, Self::Error>> + Send;
}

/// One authenticated GET, for [`get_json_with_bearer`].
#[derive(Debug, Clone, Copy)]
pub struct BearerGet<'a> {
    pub http: &'a reqwest::Client,
    pub retry: &'a RetryPolicy,
    /// The source's metric label (`loket`, `unit4`).
    pub source: &'static str,
    pub url: &'a str,
    /// `GET /path/{id}`: names the endpoint in errors and logs without ids or hosts.
    pub endpoint: &'a str,
    pub query: &'a [(&'a str, String)],
}

/// GETs `request.url` with a bearer token and returns the response's JSON. Transient failures
/// are retried per the policy; a 401 renews the token once and repeats the request once, and a
/// second 401 is returned as an error (the token endpoint handed out a token the API refuses:
/// retrying would only loop).
pub async fn get_json_with_bearer<A: BearerTokens>(
    tokens: &A,
    request: BearerGet<'_>,
) -> Result<Value, A::Error> {
    let mut token = tokens.access_token().await?;
    let mut renewed = false;
    loop {
        let result = send_with_retry(request.retry, request.source, request.endpoint, || {
            request
                .http
                .get(request.url)
                .query(request.query)
                .bearer_auth(token.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json")
        })
        .await;
        match result {
            Ok(response) => {
                return read_json::<Value>(response, request.endpoint)
                    .await
                    .map_err(Into::into);
            }
            Err(HttpSourceError::Status { status: 401, .. }) if !renewed => {
                metrics::counter!("koppel_source_unauthorized_total", "source" => request.source)
                    .increment(1);
                token = tokens.renew_after_rejection(&token).await?;
                renewed = true;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A list item that did not parse: its id, when it has a readable one, and why. The reason
/// never quotes the item's values (they may be a BSN), only the shape rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedItem {
    pub id: Option<String>,
    pub reason: String,
}

/// Parses one list item as `T`. Items are parsed one by one, so a malformed record fails
/// only itself; `id_member` names the member that identifies it (`id`, `werknemerId`).
pub fn parse_item<T: DeserializeOwned>(item: Value, id_member: &str) -> Result<T, RejectedItem> {
    let id = crate::mapping::scalar_text(item.get(id_member));
    serde_json::from_value::<T>(item).map_err(|error| RejectedItem {
        id,
        reason: shape_error_reason(&error),
    })
}

/// serde's message for a shape error, without the values it quotes: "missing field `x`" is
/// kept as is, "invalid type: string \"1234\", expected u64" becomes "a member has the wrong
/// type (expected u64)".
fn shape_error_reason(error: &serde_json::Error) -> String {
    match broken_rule(error) {
        Some(rule) => format!("record does not have the documented shape: {rule}"),
        None => "record does not have the documented shape".to_owned(),
    }
}

/// The rule a JSON document broke, in words that quote none of its values.
fn broken_rule(error: &serde_json::Error) -> Option<String> {
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => Some(format!(
            "not JSON (line {}, column {})",
            error.line(),
            error.column()
        )),
        serde_json::error::Category::Io => None,
        serde_json::error::Category::Data => {
            let message = error.to_string();
            if message.starts_with("missing field") {
                return Some(message);
            }
            // The last "expected": serde's own comes after the value, which may contain the word.
            message.rsplit_once("expected ").map(|(_, expected)| {
                format!("a member has the wrong type or value (expected {expected})")
            })
        }
    }
}

/// A body that is not the documented shape, described without its values.
pub fn body_error(endpoint: &str, error: &serde_json::Error) -> HttpSourceError {
    HttpSourceError::Body {
        endpoint: endpoint.to_owned(),
        reason: broken_rule(error).unwrap_or_else(|| "unreadable".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: usize, current: Option<u64>, total: Option<u64>) -> Page<u8> {
        Page {
            items: vec![0; items],
            current_page: current,
            total_pages: total,
        }
    }

    #[test]
    fn paging_stops_on_empty_pages_and_on_the_last_page() {
        assert_eq!(next_page_number(1, &page(0, Some(1), Some(0))), None);
        assert_eq!(next_page_number(1, &page(0, Some(1), Some(5))), None);
        assert_eq!(next_page_number(1, &page(3, Some(1), Some(2))), Some(2));
        assert_eq!(next_page_number(2, &page(3, Some(2), Some(2))), None);
        // `totalPages: 0` with items (a broken source) still ends.
        assert_eq!(next_page_number(1, &page(3, Some(1), Some(0))), None);
        // Without totals, page until an empty page.
        assert_eq!(next_page_number(4, &page(3, None, None)), Some(5));
    }

    #[tokio::test]
    async fn collect_pages_refuses_an_endless_source() {
        let result = collect_pages("endless", 5, |number| async move {
            Ok::<_, HttpSourceError>(page(1, Some(number), None))
        })
        .await;
        assert!(matches!(
            result,
            Err(HttpSourceError::TooManyPages { max_pages: 5, .. })
        ));
        let all = collect_pages("three", 10, |number| async move {
            Ok::<_, HttpSourceError>(page(2, Some(number), Some(3)))
        })
        .await
        .unwrap();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(status_class(429), ErrorClass::Retryable);
        assert_eq!(status_class(503), ErrorClass::Retryable);
        assert_eq!(status_class(400), ErrorClass::Permanent);
        assert_eq!(status_class(401), ErrorClass::Permanent);
        assert_eq!(status_class(404), ErrorClass::Permanent);
    }

    #[test]
    fn rejected_items_keep_their_id_and_never_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Item {
            id: String,
            count: u64,
        }
        let rejected =
            parse_item::<Item>(serde_json::json!({"id": "a-1", "count": "111222333"}), "id")
                .unwrap_err();
        assert_eq!(rejected.id.as_deref(), Some("a-1"));
        assert!(
            !rejected.reason.contains("111222333"),
            "{}",
            rejected.reason
        );
        let missing = parse_item::<Item>(serde_json::json!({"count": 1}), "id").unwrap_err();
        assert_eq!(missing.id, None);
        assert!(
            missing.reason.contains("missing field `id`"),
            "{}",
            missing.reason
        );
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).len(), 203);
        assert_eq!(excerpt(" short "), "short");
    }
}

#[cfg(test)]
mod body_limit_tests {
    //! Bounded response bodies, against a raw local HTTP server: a body past the limit is a
    //! clear error naming the limit, whether it announces its length or streams without one.

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Serves one connection: the response head, then `chunks` copies of a 64 KiB chunk.
    async fn serve_once(head: &'static str, chunks: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..chunks {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        format!("http://{address}/")
    }

    async fn get(url: &str) -> reqwest::Response {
        koppel_runtime::http::client_builder()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_announced_body_past_the_limit_is_refused_before_reading() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n",
            1,
        )
        .await;
        let response = get(&url).await;
        let error = read_body(response, "GET /huge", 1024 * 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                HttpSourceError::BodyTooLarge {
                    limit_bytes: 1_048_576,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("1048576 bytes"), "{error}");
        assert_eq!(error.class(), ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn an_unannounced_body_is_cut_off_at_the_limit() {
        // No Content-Length: the body ends when the connection closes, after 4 MiB.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
            64,
        )
        .await;
        let response = get(&url).await;
        let error = read_body(response, "GET /huge", 1024 * 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(error, HttpSourceError::BodyTooLarge { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
            2,
        )
        .await;
        let response = get(&url).await;
        let body = read_body(response, "GET /small", 1024 * 1024)
            .await
            .unwrap();
        assert_eq!(body.len(), 2 * 64 * 1024);
    }
}
