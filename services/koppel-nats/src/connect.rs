//! Connection settings and connect: unlimited reconnects, retry on the initial connect, and
//! user/password, token, nkey or credentials-file authentication with optional TLS.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How to reach NATS. Part of every service's config (`[nats]`). Its `Debug` shows the URL
/// without credentials and no secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    /// One or more server URLs, comma separated: `nats://a:4222,nats://b:4222`.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    pub token: Option<SecretString>,
    /// An nkey seed (`SU...`).
    pub nkey_seed: Option<SecretString>,
    /// A `.creds` file with a JWT and nkey seed.
    pub credentials_file: Option<PathBuf>,
    pub require_tls: bool,
    /// Extra root certificates (PEM) to trust, for a private CA.
    pub tls_root_certificates: Option<PathBuf>,
    /// The client name shown in the server's connection list.
    pub client_name: Option<String>,
    /// How long a first connect may take before `connect` gives up. Zero: wait forever,
    /// connecting in the background (what long-running workers want).
    #[serde(with = "humantime_seconds")]
    pub initial_connect_timeout: Duration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            url: "nats://127.0.0.1:4222".to_owned(),
            user: None,
            password: None,
            token: None,
            nkey_seed: None,
            credentials_file: None,
            require_tls: false,
            tls_root_certificates: None,
            client_name: None,
            initial_connect_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &split_credentials(&self.url).0)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("nkey_seed", &self.nkey_seed)
            .field("credentials_file", &self.credentials_file)
            .field("require_tls", &self.require_tls)
            .field("tls_root_certificates", &self.tls_root_certificates)
            .field("client_name", &self.client_name)
            .field("initial_connect_timeout", &self.initial_connect_timeout)
            .finish()
    }
}

/// Durations in config are whole seconds, which is what operators write.
mod humantime_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(deserializer)?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read NATS credentials file {path}: {source}")]
    Credentials {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No server answered in time. `source` is async-nats's last error, or `None` when the
    /// connect attempt itself ran out of time.
    #[error(
        "cannot reach NATS at {url} within {seconds} s: {}",
        .source.as_ref().map_or_else(|| "timed out".to_owned(), ToString::to_string)
    )]
    Unreachable {
        url: String,
        seconds: u64,
        #[source]
        source: Option<async_nats::ConnectError>,
    },
    /// Only the kind of the seed error: the seed itself is never part of the message.
    #[error("the configured NATS nkey seed is not a valid user seed (it starts with SU): {kind}")]
    InvalidNkeySeed { kind: nkeys::error::ErrorKind },
    /// The server answered and refused: credentials, permissions or TLS. The message carries
    /// async-nats's text, which names the cause ("authorization violation").
    #[error(
        "NATS refused the connection to {url}: {}{source}",
        if *.untrusted_certificate { "TLS: " } else { "" }
    )]
    Refused {
        url: String,
        /// async-nats reports a certificate it does not trust as an IO error; it is a
        /// refusal to fix in the TLS settings, not a server to wait for.
        untrusted_certificate: bool,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("{url} is not a NATS URL: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no NATS server URL given")]
    NoServer,
}

/// Connects with unlimited reconnects. With a non-zero `initial_connect_timeout`, a server that
/// is down at start is an error after that time (a CLI wants that); with zero, the client
/// connects in the background and calls wait for it (a worker wants that).
pub async fn connect(settings: &NatsSettings) -> Result<async_nats::Client, ConnectError> {
    let mut options = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => {
                    tracing::warn!("Disconnected from NATS; reconnecting.")
                }
                async_nats::Event::Connected => tracing::info!("Connected to NATS."),
                async_nats::Event::SlowConsumer(subscription) => {
                    tracing::warn!(
                        subscription,
                        "NATS slow consumer; messages are redelivered by JetStream."
                    )
                }
                other => tracing::debug!(event = %other, "NATS connection event."),
            }
        });
    if let Some(name) = &settings.client_name {
        options = options.name(name);
    }
    // Credentials written into the URL (`nats://user:password@host`) go through the options
    // like configured ones, and the URL kept for connecting and for errors has none.
    let (url, url_credentials) = split_credentials(&settings.url);
    let configured = settings.user.is_some()
        || settings.token.is_some()
        || settings.nkey_seed.is_some()
        || settings.credentials_file.is_some();
    match url_credentials {
        Some(UrlCredentials::UserAndPassword(user, password)) if !configured => {
            options = options.user_and_password(user, password);
        }
        Some(UrlCredentials::Token(token)) if !configured => options = options.token(token),
        _ => {}
    }
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.expose_secret().to_owned());
    }
    if let Some(token) = &settings.token {
        options = options.token(token.expose_secret().to_owned());
    }
    if let Some(seed) = &settings.nkey_seed {
        // async-nats only fails later, as "failed signing nonce", which names neither the
        // setting nor the cause.
        nkeys::KeyPair::from_seed(seed.expose_secret())
            .map_err(|error| ConnectError::InvalidNkeySeed { kind: error.kind() })?;
        options = options.nkey(seed.expose_secret().to_owned());
    }
    if let Some(path) = &settings.credentials_file {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| ConnectError::Credentials {
                    path: path.clone(),
                    source,
                })?;
    }
    if settings.require_tls {
        options = options.require_tls(true);
    }
    if let Some(path) = &settings.tls_root_certificates {
        options = options.add_root_certificates(path.clone());
    }
    let servers = server_addresses(&url)?;
    if settings.initial_connect_timeout.is_zero() {
        return options
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .map_err(|source| ConnectError::Refused {
                url,
                untrusted_certificate: false,
                source,
            });
    }
    let seconds = settings.initial_connect_timeout.as_secs();
    match tokio::time::timeout(settings.initial_connect_timeout, options.connect(servers)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(source)) => {
            // async-nats reports a certificate it does not trust as an IO error whose only
            // trace is its text; it is a refusal to fix in the TLS settings, not a server to
            // wait for.
            let untrusted_certificate = source.kind() == async_nats::ConnectErrorKind::Io
                && source.to_string().contains("certificate");
            match source.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication
                | async_nats::ConnectErrorKind::Tls => Err(ConnectError::Refused {
                    url,
                    untrusted_certificate: false,
                    source,
                }),
                _ if untrusted_certificate => Err(ConnectError::Refused {
                    url,
                    untrusted_certificate,
                    source,
                }),
                _ => Err(ConnectError::Unreachable {
                    url,
                    seconds,
                    source: Some(source),
                }),
            }
        }
        Err(_) => Err(ConnectError::Unreachable {
            url,
            seconds,
            source: None,
        }),
    }
}

/// Credentials found in a NATS URL.
enum UrlCredentials {
    UserAndPassword(String, String),
    Token(String),
}

/// A NATS URL (list) fit to print: `nats://user:password@a:4222` as `nats://a:4222`.
pub fn url_without_credentials(urls: &str) -> String {
    split_credentials(urls).0
}

/// `nats://user:password@a:4222,nats://b:4222` without its credentials, and the (last)
/// credentials it held. Percent-escapes in them are decoded, as in any URL.
fn split_credentials(urls: &str) -> (String, Option<UrlCredentials>) {
    let mut credentials = None;
    let cleaned: Vec<String> = urls
        .split(',')
        .map(|url| {
            let url = url.trim();
            let authority_start = url.find("://").map_or(0, |index| index + 3);
            let authority_end = url[authority_start..]
                .find(['/', '?', '#'])
                .map_or(url.len(), |index| authority_start + index);
            match url[authority_start..authority_end].rfind('@') {
                Some(at) => {
                    let userinfo = &url[authority_start..authority_start + at];
                    credentials = Some(match userinfo.split_once(':') {
                        Some((user, password)) => UrlCredentials::UserAndPassword(
                            percent_decode(user),
                            percent_decode(password),
                        ),
                        None => UrlCredentials::Token(percent_decode(userinfo)),
                    });
                    format!(
                        "{}{}",
                        &url[..authority_start],
                        &url[authority_start + at + 1..]
                    )
                }
                None => url.to_owned(),
            }
        })
        .collect();
    (cleaned.join(","), credentials)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `nats://a:4222,nats://b:4222` into its servers: async-nats parses one URL per string.
fn server_addresses(urls: &str) -> Result<Vec<async_nats::ServerAddr>, ConnectError> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|source| ConnectError::InvalidUrl {
                    url: url.to_owned(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|servers| {
            if servers.is_empty() {
                Err(ConnectError::NoServer)
            } else {
                Ok(servers)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let settings = NatsSettings {
            password: Some(SecretString::from("hunter2-password")),
            token: Some(SecretString::from("token-abc")),
            nkey_seed: Some(SecretString::from("SUAEXAMPLESEED")),
            url: "nats://koppel:url-password@127.0.0.1:4222".to_owned(),
            ..NatsSettings::default()
        };
        let debug = format!("{settings:?}");
        assert!(debug.contains("nats://127.0.0.1:4222"), "{debug}");
        for secret in [
            "hunter2-password",
            "token-abc",
            "SUAEXAMPLESEED",
            "url-password",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn credentials_are_taken_out_of_urls() {
        let (url, credentials) =
            split_credentials("nats://koppel:p%40ss@nats-1:4222/, tls://nats-2:4222");
        assert_eq!(url, "nats://nats-1:4222/,tls://nats-2:4222");
        assert!(matches!(
            credentials,
            Some(UrlCredentials::UserAndPassword(user, password)) if user == "koppel" && password == "p@ss"
        ));
        let (url, credentials) = split_credentials("nats://s3cr3t-token@127.0.0.1:4222");
        assert_eq!(url, "nats://127.0.0.1:4222");
        assert!(
            matches!(credentials, Some(UrlCredentials::Token(token)) if token == "s3cr3t-token")
        );
        let (url, credentials) = split_credentials("nats://127.0.0.1:4222");
        assert_eq!(url, "nats://127.0.0.1:4222");
        assert!(credentials.is_none());
    }

    #[test]
    fn comma_separated_urls_name_every_server() {
        let servers =
            server_addresses("nats://nats-1:4222, nats://nats-2:4222,nats://nats-3:4222").unwrap();
        assert_eq!(servers.len(), 3);
        assert!(server_addresses("").is_err());
        assert!(server_addresses("nats://a:notaport").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error() {
        let settings = NatsSettings {
            url: "nats://127.0.0.1:1".to_owned(),
            initial_connect_timeout: Duration::from_secs(2),
            ..NatsSettings::default()
        };
        let error = connect(&settings).await.unwrap_err();
        assert!(matches!(error, ConnectError::Unreachable { .. }), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("cannot reach NATS at nats://127.0.0.1:1"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_malformed_nkey_seed_is_named_without_showing_it() {
        let seed = "SUNOTAVALIDSEEDATALLBUTLONGENOUGHTOLOOKLIKEONE";
        let settings = NatsSettings {
            url: "nats://127.0.0.1:1".to_owned(),
            nkey_seed: Some(seed.to_owned().into()),
            initial_connect_timeout: Duration::from_secs(2),
            ..NatsSettings::default()
        };
        let error = connect(&settings).await.unwrap_err();
        assert!(
            matches!(error, ConnectError::InvalidNkeySeed { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("nkey seed"), "{error}");
        assert!(!error.to_string().contains(seed), "{error}");
    }
}
