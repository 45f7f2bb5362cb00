//! Fault injection shared by every simulator: 429 storms with Retry-After, 5xx and slow answers.
//!
//! Rates are per mille (integers), so no float arithmetic creeps into the simulators, and the
//! random draws come from a seeded generator so a failing run can be repeated exactly.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::server::lock;

/// What a simulator does wrong, and how often. All rates are per mille of requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of requests answered `429 Too Many Requests` with a `Retry-After` header.
    pub too_many_requests_per_mille: u16,
    /// Seconds put in `Retry-After` on a 429.
    pub retry_after_seconds: u64,
    /// Share of requests answered `503 Service Unavailable`.
    pub server_error_per_mille: u16,
    /// Share of requests delayed by `slow_delay_millis` before they are served.
    pub slow_per_mille: u16,
    /// The delay of a slow request, in milliseconds. Set it above a client's timeout to simulate
    /// a hung upstream.
    pub slow_delay_millis: u64,
}

/// The fault a request drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    TooManyRequests { retry_after_seconds: u64 },
    ServerError,
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Fault::TooManyRequests {
                retry_after_seconds,
            } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(serde_json::json!({"message": "Too many requests"})),
                )
                    .into_response();
                if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Fault::ServerError => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"message": "Service unavailable"})),
            )
                .into_response(),
        }
    }
}

/// Counts of the faults injected so far, for test assertions and the demo summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    pub too_many_requests: u64,
    pub server_errors: u64,
    pub slow: u64,
}

/// Draws faults for incoming requests. Shared by reference between a simulator's handlers.
#[derive(Debug)]
pub struct FaultInjector {
    config: Mutex<FaultConfig>,
    random: Mutex<SmallRng>,
    too_many_requests: AtomicU64,
    server_errors: AtomicU64,
    slow: AtomicU64,
}

impl FaultInjector {
    pub fn new(seed: u64) -> Self {
        Self {
            config: Mutex::new(FaultConfig::default()),
            random: Mutex::new(SmallRng::seed_from_u64(seed)),
            too_many_requests: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// Replaces the fault configuration; takes effect for the next request.
    pub fn configure(&self, config: FaultConfig) {
        *lock(&self.config) = config;
    }

    pub fn config(&self) -> FaultConfig {
        lock(&self.config).clone()
    }

    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            too_many_requests: self.too_many_requests.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
        }
    }

    /// Call at the top of every handler: sleeps when the request drew "slow", and returns the
    /// response to send instead of the real one when it drew a 429 or a 5xx.
    pub async fn before_request(&self) -> Option<Fault> {
        let config = self.config();
        let (slow, too_many, server_error) = {
            let mut random = lock(&self.random);
            (
                draw(&mut random, config.slow_per_mille),
                draw(&mut random, config.too_many_requests_per_mille),
                draw(&mut random, config.server_error_per_mille),
            )
        };
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(config.slow_delay_millis)).await;
        }
        if too_many {
            self.too_many_requests.fetch_add(1, Ordering::Relaxed);
            return Some(Fault::TooManyRequests {
                retry_after_seconds: config.retry_after_seconds,
            });
        }
        if server_error {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
            return Some(Fault::ServerError);
        }
        None
    }
}

fn draw(random: &mut SmallRng, per_mille: u16) -> bool {
    per_mille > 0 && random.random_range(0..1000u16) < per_mille
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_faults_by_default() {
        let injector = FaultInjector::new(7);
        for _ in 0..1000 {
            assert_eq!(injector.before_request().await, None);
        }
        assert_eq!(injector.counts(), FaultCounts::default());
    }

    #[tokio::test]
    async fn rates_are_roughly_honoured_and_counted() {
        let injector = FaultInjector::new(7);
        injector.configure(FaultConfig {
            too_many_requests_per_mille: 300,
            retry_after_seconds: 2,
            ..FaultConfig::default()
        });
        let mut seen = 0u64;
        for _ in 0..1000 {
            if let Some(fault) = injector.before_request().await {
                assert_eq!(
                    fault,
                    Fault::TooManyRequests {
                        retry_after_seconds: 2
                    }
                );
                seen += 1;
            }
        }
        assert!((200..400).contains(&seen), "drew {seen} faults at 30%");
        assert_eq!(injector.counts().too_many_requests, seen);
    }
}
