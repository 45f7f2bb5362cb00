//! Whether a failure is worth retrying: the one classification every koppel error maps to, so
//! callers decide by matching a type, never by reading an error's text.

/// Retryable or permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: rate limits, server errors, timeouts, NATS hiccups. The next run retries.
    Retryable,
    /// Will fail again until someone changes something (credentials, configuration, data).
    Permanent,
}
