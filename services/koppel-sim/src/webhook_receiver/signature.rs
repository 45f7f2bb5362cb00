//! Standard Webhooks signature verification (`v1`, HMAC-SHA256), written from the spec with
//! hmac + sha2 + base64 and deliberately independent of koppel's sender, so a signing mistake in
//! the sender is caught by a second implementation instead of being mirrored by the same code.
//!
//! Signed content: `{webhook-id}.{webhook-timestamp}.{raw body}`. Secret: `whsec_` + base64 of
//! the key bytes (the prefix is optional). Header: space-separated `v1,<base64>` entries; other
//! versions (`v1a` is ed25519) are ignored, as the reference library does.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix Standard Webhooks puts before a symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a configured secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("webhook secret is not valid base64 after the optional whsec_ prefix")]
    NotBase64,
    #[error("webhook secret decodes to an empty key")]
    Empty,
}

/// A decoded signing key, kept as a keyed HMAC state that is cloned per message. Debug output
/// hides it.
#[derive(Clone)]
pub struct WebhookSigningKey {
    keyed_mac: HmacSha256,
}

impl fmt::Debug for WebhookSigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("WebhookSigningKey(<redacted>)")
    }
}

impl WebhookSigningKey {
    /// Decodes a `whsec_...` secret (or the bare base64 part) with the standard base64 alphabet.
    pub fn from_secret(secret: &str) -> Result<Self, WebhookSecretError> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| WebhookSecretError::NotBase64)?;
        if key.is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        // HMAC takes keys of any length, so this only fails in theory; mapping it keeps the
        // constructor free of unwraps.
        let keyed_mac = HmacSha256::new_from_slice(&key).map_err(|_| WebhookSecretError::Empty)?;
        Ok(Self { keyed_mac })
    }

    fn mac(&self, webhook_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed_mac.clone();
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64 HMAC-SHA256>` over the signed content. Used by the tests to produce valid
    /// requests; koppel signs with its own implementation.
    pub fn sign(&self, webhook_id: &str, timestamp: &str, body: &[u8]) -> String {
        let tag = self
            .mac(webhook_id, timestamp, body)
            .finalize()
            .into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Whether one base64 signature is this key's HMAC of the content, compared in constant time.
    fn verifies(&self, webhook_id: &str, timestamp: &str, body: &[u8], signature: &[u8]) -> bool {
        self.mac(webhook_id, timestamp, body)
            .verify_slice(signature)
            .is_ok()
    }
}

/// Whether any `v1` entry of the `webhook-signature` header is a valid signature by any of the
/// keys. Several keys are accepted because the receiver, like the sender, has to hold the old
/// and the new secret during a rotation.
pub fn signature_header_is_valid(
    keys: &[WebhookSigningKey],
    webhook_id: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
) -> bool {
    signature_header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        .any(|signature| {
            keys.iter()
                .any(|key| key.verifies(webhook_id, timestamp, body, &signature))
        })
}

/// Why a `webhook-timestamp` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampProblem {
    NotAnInteger,
    TooOld,
    TooNew,
}

/// Checks the timestamp against the receiver's clock. The window is symmetric, as in the
/// reference library: a sender clock running ahead is as suspicious as a replayed old request.
pub fn check_timestamp(
    timestamp: &str,
    now_unix_seconds: i64,
    tolerance_seconds: i64,
) -> Result<i64, TimestampProblem> {
    let sent_at = timestamp
        .parse::<i64>()
        .map_err(|_| TimestampProblem::NotAnInteger)?;
    if sent_at < now_unix_seconds.saturating_sub(tolerance_seconds) {
        return Err(TimestampProblem::TooOld);
    }
    if sent_at > now_unix_seconds.saturating_add(tolerance_seconds) {
        return Err(TimestampProblem::TooNew);
    }
    Ok(sent_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of the Standard Webhooks reference library, as recorded in
    /// /work/shared/apis/recipients.md section 4.2 (re-computed there with Python's hmac).
    #[test]
    fn reference_library_test_vector() {
        let key = WebhookSigningKey::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        let timestamp = "1649367553";
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(key.sign(id, timestamp, body), expected);
        assert!(signature_header_is_valid(
            &[key],
            id,
            timestamp,
            body,
            expected
        ));
    }

    /// The vector published in the Standard Webhooks spec repository's examples.
    #[test]
    fn spec_test_vector() {
        let key = WebhookSigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = "1614265330";
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(key.sign(id, timestamp, body), expected);
        assert!(signature_header_is_valid(
            &[key],
            id,
            timestamp,
            body,
            expected
        ));
    }

    #[test]
    fn prefix_is_optional_and_bad_secrets_are_refused() {
        let with_prefix = WebhookSigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let without_prefix = WebhookSigningKey::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            with_prefix.unwrap().sign("msg_1", "1", b"{}"),
            without_prefix.unwrap().sign("msg_1", "1", b"{}")
        );
        assert_eq!(
            WebhookSigningKey::from_secret("whsec_not base64!").unwrap_err(),
            WebhookSecretError::NotBase64
        );
        assert_eq!(
            WebhookSigningKey::from_secret("whsec_").unwrap_err(),
            WebhookSecretError::Empty
        );
        assert_eq!(
            format!(
                "{:?}",
                WebhookSigningKey::from_secret("whsec_AAAA").unwrap()
            ),
            "WebhookSigningKey(<redacted>)"
        );
    }

    #[test]
    fn any_matching_entry_among_several_is_enough() {
        let old_key =
            WebhookSigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let new_key =
            WebhookSigningKey::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"type":"a.b","timestamp":"2026-01-01T00:00:00Z","data":{}}"#;
        let new_signature = new_key.sign("msg_1", "1700000000", body);
        // The sender signs with both keys during a rotation; the receiver holds only the new one.
        let header = format!("v1a,ignored-ed25519 v1,AAAA {} v2,zzz", new_signature);
        assert!(signature_header_is_valid(
            std::slice::from_ref(&new_key),
            "msg_1",
            "1700000000",
            body,
            &header
        ));
        // Holding only the old key, nothing matches.
        assert!(!signature_header_is_valid(
            &[old_key],
            "msg_1",
            "1700000000",
            body,
            &header
        ));
    }

    #[test]
    fn tampering_with_id_timestamp_or_body_breaks_the_signature() {
        let key = WebhookSigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = key.sign("msg_1", "1700000000", b"{}");
        let keys = [key];
        assert!(signature_header_is_valid(
            &keys,
            "msg_1",
            "1700000000",
            b"{}",
            &signature
        ));
        assert!(!signature_header_is_valid(
            &keys,
            "msg_2",
            "1700000000",
            b"{}",
            &signature
        ));
        assert!(!signature_header_is_valid(
            &keys,
            "msg_1",
            "1700000001",
            b"{}",
            &signature
        ));
        assert!(!signature_header_is_valid(
            &keys,
            "msg_1",
            "1700000000",
            b"{ }",
            &signature
        ));
        assert!(!signature_header_is_valid(
            &keys,
            "msg_1",
            "1700000000",
            b"{}",
            ""
        ));
        assert!(!signature_header_is_valid(
            &keys,
            "msg_1",
            "1700000000",
            b"{}",
            "v1,"
        ));
        // A hex signature (Stripe style) is not a Standard Webhooks signature.
        assert!(!signature_header_is_valid(
            &keys,
            "msg_1",
            "1700000000",
            b"{}",
            "v1,deadbeef"
        ));
    }

    #[test]
    fn timestamp_tolerance_is_symmetric_and_inclusive() {
        let now = 1_700_000_000;
        assert_eq!(check_timestamp("1700000000", now, 300), Ok(now));
        assert_eq!(check_timestamp("1699999700", now, 300), Ok(now - 300));
        assert_eq!(check_timestamp("1700000300", now, 300), Ok(now + 300));
        assert_eq!(
            check_timestamp("1699999699", now, 300),
            Err(TimestampProblem::TooOld)
        );
        assert_eq!(
            check_timestamp("1700000301", now, 300),
            Err(TimestampProblem::TooNew)
        );
        assert_eq!(
            check_timestamp("1700000000.5", now, 300),
            Err(TimestampProblem::NotAnInteger)
        );
        assert_eq!(
            check_timestamp("", now, 300),
            Err(TimestampProblem::NotAnInteger)
        );
    }
}
