//! Typed compare-and-set over KV buckets. Values are JSON; every write names the revision it
//! expects, so two writers never silently overwrite each other.

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value together with the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Someone else wrote the key since it was read (or created it first). Re-read and decide.
    #[error("key {key} changed since revision {expected_revision:?}")]
    Conflict {
        key: String,
        expected_revision: Option<u64>,
    },
    #[error("key {key} holds a value that does not decode: {reason}")]
    Decode { key: String, reason: String },
    #[error("KV operation on key {key} failed: {reason}")]
    Bucket { key: String, reason: String },
}

/// Reads a key. Deleted and purged keys read as absent.
pub async fn get_json<T: DeserializeOwned>(
    store: &kv::Store,
    key: &str,
) -> Result<Option<Versioned<T>>, KvError> {
    let entry = store.entry(key).await.map_err(|error| KvError::Bucket {
        key: key.to_owned(),
        reason: error.to_string(),
    })?;
    let Some(entry) = entry else { return Ok(None) };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    let value = serde_json::from_slice(&entry.value).map_err(|error| KvError::Decode {
        key: key.to_owned(),
        reason: error.to_string(),
    })?;
    Ok(Some(Versioned {
        value,
        revision: entry.revision,
    }))
}

/// The revision a deleted key can be re-created at, or `None` when the key never existed.
async fn tombstone_revision(store: &kv::Store, key: &str) -> Result<Option<u64>, KvError> {
    let entry = store.entry(key).await.map_err(|error| KvError::Bucket {
        key: key.to_owned(),
        reason: error.to_string(),
    })?;
    Ok(entry
        .filter(|entry| entry.operation != kv::Operation::Put)
        .map(|entry| entry.revision))
}

/// Writes `value` if the key is at `expected_revision` (`None`: the key must not exist).
/// Returns the new revision.
pub async fn put_json_if<T: Serialize>(
    store: &kv::Store,
    key: &str,
    value: &T,
    expected_revision: Option<u64>,
) -> Result<u64, KvError> {
    let bytes = Bytes::from(serde_json::to_vec(value).map_err(|error| KvError::Decode {
        key: key.to_owned(),
        reason: error.to_string(),
    })?);
    put_bytes_if(store, key, bytes, expected_revision).await
}

/// As [`put_json_if`], for values that are not JSON.
pub async fn put_bytes_if(
    store: &kv::Store,
    key: &str,
    bytes: Bytes,
    expected_revision: Option<u64>,
) -> Result<u64, KvError> {
    let conflict = || KvError::Conflict {
        key: key.to_owned(),
        expected_revision,
    };
    match expected_revision {
        Some(revision) => {
            store
                .update(key, bytes, revision)
                .await
                .map_err(|error| match error.kind() {
                    UpdateErrorKind::WrongLastRevision => conflict(),
                    _ => KvError::Bucket {
                        key: key.to_owned(),
                        reason: error.to_string(),
                    },
                })
        }
        None => match store.create(key, bytes.clone()).await {
            Ok(revision) => Ok(revision),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                // `create` refuses a deleted key's tombstone as "exists" on some servers; a
                // deleted key is absent to koppel, so re-create it over its tombstone.
                match tombstone_revision(store, key).await? {
                    Some(revision) => store
                        .update(key, bytes, revision)
                        .await
                        .map_err(|_| conflict()),
                    None => Err(conflict()),
                }
            }
            Err(error) => Err(KvError::Bucket {
                key: key.to_owned(),
                reason: error.to_string(),
            }),
        },
    }
}

/// Read-modify-write with retries on conflict. `change` sees the current value (or `None`) and
/// returns the new value, or `None` to leave the key alone. Returns what was written.
pub async fn update_json<T, F>(
    store: &kv::Store,
    key: &str,
    mut change: F,
) -> Result<Option<Versioned<T>>, KvError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<&T>) -> Option<T>,
{
    // Conflicts only happen under contention. Jittered backoff spreads contending writers so
    // one does not starve; the bound keeps a pathological hot key from spinning forever.
    let mut delays = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(2))
        .with_max_delay(Duration::from_millis(250))
        .with_max_times(64)
        .build();
    loop {
        let current: Option<Versioned<T>> = get_json(store, key).await?;
        let Some(next) = change(current.as_ref().map(|versioned| &versioned.value)) else {
            return Ok(None);
        };
        match put_json_if(
            store,
            key,
            &next,
            current.as_ref().map(|versioned| versioned.revision),
        )
        .await
        {
            Ok(revision) => {
                return Ok(Some(Versioned {
                    value: next,
                    revision,
                }));
            }
            Err(KvError::Conflict { .. }) => match delays.next() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => break,
            },
            Err(other) => return Err(other),
        }
    }
    Err(KvError::Conflict {
        key: key.to_owned(),
        expected_revision: None,
    })
}
