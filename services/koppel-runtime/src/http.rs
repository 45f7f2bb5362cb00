//! Outbound HTTP: one way to build a `reqwest::Client` (timeouts, user agent, no redirects), and
//! the `Retry-After` header, shared by every source client and recipient so they behave alike.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpClientSettings {
    /// Whole-request timeout, seconds.
    pub timeout_seconds: u64,
    /// TCP connect timeout, seconds.
    pub connect_timeout_seconds: u64,
    pub user_agent: String,
}

impl Default for HttpClientSettings {
    fn default() -> Self {
        HttpClientSettings {
            timeout_seconds: 30,
            connect_timeout_seconds: 5,
            user_agent: concat!("koppel/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpClientSettings {
    /// Builds the client. Redirects are not followed: an API that redirects is misconfigured,
    /// and a followed redirect could carry a bearer token to another host. HTTPS uses rustls
    /// with the ring provider and the platform's trust store.
    pub fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        client_builder()
            .timeout(Duration::from_secs(self.timeout_seconds))
            .connect_timeout(Duration::from_secs(self.connect_timeout_seconds))
            .user_agent(&self.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }
}

/// The only way koppel starts a `reqwest` client (clippy's `disallowed-methods` bans the
/// others): it installs the TLS provider first, without which reqwest panics.
#[allow(
    clippy::disallowed_methods,
    reason = "this is the one sanctioned way to a reqwest builder"
)]
pub fn client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// Makes ring rustls's process-wide crypto provider (reqwest is built without one of its own, to
/// avoid compiling a second crypto library next to the ring that async-nats uses). Idempotent.
pub fn install_tls_provider() {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Fails only when a provider is installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The delay a `Retry-After` header asks for: delta-seconds or an HTTP date. `None` when the
/// header is absent or unreadable. Capped at an hour so a broken server cannot park a worker.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, Utc::now())
}

fn retry_after_at(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(3600);
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(CAP));
    }
    let date = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    let delay = (date - now).to_std().unwrap_or(Duration::ZERO);
    Some(delay.min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[tokio::test]
    async fn https_clients_build_and_fail_cleanly_without_a_server() {
        let client = HttpClientSettings::default().client().unwrap();
        let error = client.get("https://127.0.0.1:1/").send().await.unwrap_err();
        assert!(error.is_connect(), "{error}");
    }

    #[test]
    fn seconds_and_dates_are_understood() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2026 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after_at(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after_at(&headers("Wed, 21 Oct 2026 07:28:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after_at(&headers("Wed, 21 Oct 2026 07:27:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_at(&headers("999999"), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(retry_after_at(&headers("soon"), now), None);
        assert_eq!(retry_after_at(&HeaderMap::new(), now), None);
    }
}
