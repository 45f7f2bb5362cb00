//! Secrets sealed at rest: ChaCha20-Poly1305 with a 256-bit key that never enters KV.
//!
//! A [`SealedSecret`] is what KV stores; only a holder of the [`SecretKey`] can open it, and the
//! opened value is a `SecretString`, which never prints. The key is read from
//! `KOPPEL_SECRET_KEY` (base64 of 32 bytes) or from the file `KOPPEL_SECRET_KEY_FILE` names.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub const SECRET_KEY_ENV: &str = "KOPPEL_SECRET_KEY";
pub const SECRET_KEY_FILE_ENV: &str = "KOPPEL_SECRET_KEY_FILE";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "no secret key: set {SECRET_KEY_ENV} (base64 of 32 random bytes) or {SECRET_KEY_FILE_ENV}; create one with `koppel key generate`"
    )]
    MissingKey,
    #[error("the secret key must be base64 of exactly 32 bytes")]
    InvalidKey,
    #[error("cannot read the secret key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("a sealed secret cannot be opened: wrong key, or the value was tampered with")]
    Open,
    #[error("the system random source failed")]
    Random,
}

/// The key that seals and opens secrets. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretKey {
    key: [u8; 32],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// From `KOPPEL_SECRET_KEY`, else from the file `KOPPEL_SECRET_KEY_FILE` names.
    pub fn from_environment() -> Result<Self, SealError> {
        if let Ok(encoded) = std::env::var(SECRET_KEY_ENV) {
            return Self::from_base64(&encoded);
        }
        if let Ok(path) = std::env::var(SECRET_KEY_FILE_ENV) {
            return Self::from_file(Path::new(&path));
        }
        Err(SealError::MissingKey)
    }

    pub fn from_file(path: &Path) -> Result<Self, SealError> {
        let text = std::fs::read_to_string(path).map_err(|error| SealError::KeyFile {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::from_base64(text.trim())
    }

    pub fn from_base64(encoded: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SealError::InvalidKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::InvalidKey)?;
        Ok(SecretKey { key })
    }

    /// A fresh random key, base64-encoded, for `koppel key generate`.
    pub fn generate_base64() -> Result<String, SealError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SealError::Random)?;
        Ok(STANDARD.encode(key))
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| SealError::InvalidKey)
    }

    /// Seals `secret`. `context` (e.g. `connection/loket-acme/client_secret`) is bound into the
    /// seal, so a sealed value copied to another record does not open there.
    pub fn seal(&self, secret: &SecretString, context: &str) -> Result<SealedSecret, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut buffer = secret.expose_secret().as_bytes().to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| SealError::Open)?;
        Ok(SealedSecret {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(buffer),
        })
    }

    pub fn open(&self, sealed: &SealedSecret, context: &str) -> Result<SecretString, SealError> {
        let nonce: [u8; NONCE_LEN] = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Open)?;
        let mut buffer = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| SealError::Open)?;
        let plain = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| SealError::Open)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)?;
        Ok(SecretString::from(text))
    }
}

/// Where a process gets the key that opens sealed secrets: the `[secret_key]` section of every
/// worker's config.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "from")]
pub enum SecretKeySource {
    /// `KOPPEL_SECRET_KEY`, else the file `KOPPEL_SECRET_KEY_FILE` names.
    #[default]
    Environment,
    /// A file holding base64 of 32 bytes.
    File { path: std::path::PathBuf },
    /// The key itself, base64. For tests; a config file should not hold it.
    Inline { base64: SecretString },
}

impl fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretKeySource::Environment => f.write_str("Environment"),
            SecretKeySource::File { path } => f.debug_struct("File").field("path", path).finish(),
            SecretKeySource::Inline { .. } => f.write_str("Inline(<redacted>)"),
        }
    }
}

impl SecretKeySource {
    pub fn load(&self) -> Result<SecretKey, SealError> {
        match self {
            SecretKeySource::Environment => SecretKey::from_environment(),
            SecretKeySource::File { path } => SecretKey::from_file(path),
            SecretKeySource::Inline { base64 } => SecretKey::from_base64(base64.expose_secret()),
        }
    }
}

/// A secret as stored in KV: nonce and ciphertext with tag, base64. Persisted, so it tolerates
/// fields a newer koppel adds (a key id, say).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub nonce: String,
    pub ciphertext: String,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSecret(<sealed>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_base64(&SecretKey::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn seal_and_open_round_trip() {
        let key = key();
        let sealed = key
            .seal(
                &SecretString::from("client-secret-123"),
                "connection/a/client_secret",
            )
            .unwrap();
        assert!(!sealed.ciphertext.contains("client-secret-123"));
        assert_eq!(
            key.open(&sealed, "connection/a/client_secret")
                .unwrap()
                .expose_secret(),
            "client-secret-123"
        );
    }

    #[test]
    fn wrong_key_or_context_cannot_open() {
        let sealed = key().seal(&SecretString::from("s"), "ctx").unwrap();
        assert_eq!(key().open(&sealed, "ctx").unwrap_err(), SealError::Open);
        let key = key();
        let sealed = key.seal(&SecretString::from("s"), "connection/a").unwrap();
        assert_eq!(
            key.open(&sealed, "connection/b").unwrap_err(),
            SealError::Open
        );
    }

    #[test]
    fn bad_keys_are_clear_errors_and_debug_hides_keys() {
        assert_eq!(
            SecretKey::from_base64("short").unwrap_err(),
            SealError::InvalidKey
        );
        let encoded = SecretKey::generate_base64().unwrap();
        let key = SecretKey::from_base64(&encoded).unwrap();
        assert!(!format!("{key:?}").contains(&encoded));
        assert!(
            SealError::MissingKey
                .to_string()
                .contains("KOPPEL_SECRET_KEY")
        );
    }
}
