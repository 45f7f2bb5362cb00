//! The access-token cache every source shares: a token is reused until shortly before it
//! expires, fetched single-flight (concurrent callers of one connection wait for one fetch and
//! share its result), and renewed at most once per rejected token.
//!
//! How a token is fetched differs per source (Loket rotates a refresh token kept in KV; Unit4
//! asks for client credentials), so the fetch is a closure; the caching rules are here once.

use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Tokens are renewed this long before the source says they expire, so a request never leaves
/// with a token that dies on the way.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// What a token endpoint handed out.
pub struct IssuedToken {
    pub access_token: SecretString,
    /// `expires_in` of the answer.
    pub expires_in: Duration,
    /// When the request was sent: the lifetime counts from there, not from the answer.
    pub requested_at: Instant,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl IssuedToken {
    /// When to stop using the token: `EXPIRY_MARGIN` before it expires, or halfway through a
    /// lifetime shorter than the margin (a token cached for zero seconds would mean one token
    /// request per API call).
    fn renew_at(&self, margin: Duration) -> Instant {
        let usable = if self.expires_in > margin {
            self.expires_in - margin
        } else {
            self.expires_in / 2
        };
        instant_after(self.requested_at, usable)
    }
}

/// The furthest koppel schedules anything: further is "never" in practice, and keeping below it
/// keeps `Instant` arithmetic from overflowing.
pub(crate) const FURTHEST: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `start + after`, with `after` capped at [`FURTHEST`]: durations come from config, the
/// registry and token responses (`expires_in`), and an absurd one must not panic.
pub(crate) fn instant_after(start: Instant, after: Duration) -> Instant {
    let after = after.min(FURTHEST);
    start
        .checked_add(after)
        .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 60 * 60))
}

struct Cached {
    token: SecretString,
    renew_at: Instant,
}

/// One connection's access token. Share one instance per connection: single flight is per
/// instance.
pub struct AccessTokenCache {
    margin: Duration,
    // An async mutex held across the fetch: that is what makes the fetch single-flight.
    current: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for AccessTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenCache")
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl Default for AccessTokenCache {
    fn default() -> Self {
        AccessTokenCache::new(EXPIRY_MARGIN)
    }
}

impl AccessTokenCache {
    pub fn new(margin: Duration) -> Self {
        AccessTokenCache {
            margin,
            current: Mutex::new(None),
        }
    }

    /// The cached token while it is fresh, else the one `fetch` returns (which is cached).
    pub async fn get<E, F, Fut>(&self, fetch: F) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(cached) = current.as_ref()
            && cached.renew_at > Instant::now()
        {
            return Ok(cached.token.clone());
        }
        self.store(&mut current, fetch().await?)
    }

    /// Called after the API answered 401 to `rejected`: fetches a new token, unless another
    /// caller already replaced that one, in which case the replacement is returned. So a burst
    /// of 401s from parallel requests costs one fetch.
    pub async fn renew_after_rejection<E, F, Fut>(
        &self,
        rejected: &SecretString,
        fetch: F,
    ) -> Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(cached) = current.as_ref()
            && cached.token.expose_secret() != rejected.expose_secret()
            && cached.renew_at > Instant::now()
        {
            return Ok(cached.token.clone());
        }
        self.store(&mut current, fetch().await?)
    }

    fn store<E>(&self, slot: &mut Option<Cached>, issued: IssuedToken) -> Result<SecretString, E> {
        let token = issued.access_token.clone();
        *slot = Some(Cached {
            renew_at: issued.renew_at(self.margin),
            token: issued.access_token,
        });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn issued(text: &str, seconds: u64) -> IssuedToken {
        IssuedToken {
            access_token: SecretString::from(text.to_owned()),
            expires_in: Duration::from_secs(seconds),
            requested_at: Instant::now(),
        }
    }

    #[test]
    fn an_absurd_lifetime_does_not_overflow() {
        // u64::MAX seconds: `requested_at + usable` panicked with "overflow when adding
        // duration to instant" before.
        let token = issued("t", u64::MAX);
        assert!(token.renew_at(EXPIRY_MARGIN) > token.requested_at);
        assert!(instant_after(token.requested_at, Duration::MAX) > token.requested_at);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_cached_until_the_margin_and_renewed_once_per_rejection() {
        let cache = AccessTokenCache::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let number = fetches.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(issued(&format!("token-{number}"), 3600))
        };
        let first = cache.get(fetch).await.unwrap();
        assert_eq!(cache.get(fetch).await.unwrap().expose_secret(), "token-0");
        tokio::time::advance(Duration::from_secs(3539)).await;
        assert_eq!(cache.get(fetch).await.unwrap().expose_secret(), "token-0");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.get(fetch).await.unwrap().expose_secret(), "token-1");
        // Two requests rejected with the same token: one renewal.
        let renewed = cache.renew_after_rejection(&first, fetch).await.unwrap();
        assert_eq!(renewed.expose_secret(), "token-1");
        let rejected = cache.get(fetch).await.unwrap();
        let a = cache.renew_after_rejection(&rejected, fetch).await.unwrap();
        let b = cache.renew_after_rejection(&rejected, fetch).await.unwrap();
        assert_eq!(a.expose_secret(), "token-2");
        assert_eq!(b.expose_secret(), "token-2");
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn short_lifetimes_are_used_for_half_their_length() {
        let cache = AccessTokenCache::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(issued("short", 30))
        };
        cache.get(fetch).await.unwrap();
        tokio::time::advance(Duration::from_secs(14)).await;
        cache.get(fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        cache.get(fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
