//! Typed compare-and-set over KV buckets. Values are JSON; every write names the revision it
//! expects, so two writers never silently overwrite each other.

use async_nats::jetstream::kv::{self, CreateErrorKind, EntryErrorKind, UpdateErrorKind};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ErrorClass;

/// A value together with the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: u64,
}

/// A KV failure. The async-nats error stays the source, and its kind decides the class (see
/// [`KvError::class`]): a timed-out read and an invalid key are different failures.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Someone else wrote the key since it was read (or created it first). Re-read and decide.
    #[error("key {key} changed since revision {expected_revision:?}")]
    Conflict {
        key: String,
        expected_revision: Option<u64>,
    },
    /// The stored value is not what this build reads.
    #[error("key {key} holds a value that does not decode")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// The value to store cannot be encoded.
    #[error("the value for key {key} cannot be encoded")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("reading key {key} failed: {}", source.kind())]
    Read {
        key: String,
        #[source]
        source: kv::EntryError,
    },
    #[error("writing key {key} failed: {}", source.kind())]
    Update {
        key: String,
        #[source]
        source: kv::UpdateError,
    },
    #[error("creating key {key} failed: {}", source.kind())]
    Create {
        key: String,
        #[source]
        source: kv::CreateError,
    },
}

impl KvError {
    /// Retryable or permanent, by kind. An invalid key, a value that does not decode and one
    /// that cannot be encoded fail the same way every time; a conflict is decided again on the
    /// next read; timeouts and other request failures (no responders during a leader election,
    /// a dropped connection) pass.
    pub fn class(&self) -> ErrorClass {
        match self {
            KvError::Conflict { .. } => ErrorClass::Retryable,
            KvError::Decode { .. } | KvError::Encode { .. } => ErrorClass::Permanent,
            KvError::Read { source, .. } => match source.kind() {
                EntryErrorKind::InvalidKey => ErrorClass::Permanent,
                EntryErrorKind::TimedOut | EntryErrorKind::Other => ErrorClass::Retryable,
            },
            KvError::Update { source, .. } => match source.kind() {
                UpdateErrorKind::InvalidKey => ErrorClass::Permanent,
                UpdateErrorKind::WrongLastRevision
                | UpdateErrorKind::TimedOut
                | UpdateErrorKind::Other => ErrorClass::Retryable,
            },
            KvError::Create { source, .. } => match source.kind() {
                CreateErrorKind::InvalidKey => ErrorClass::Permanent,
                CreateErrorKind::AlreadyExists
                | CreateErrorKind::Publish
                | CreateErrorKind::Ack
                | CreateErrorKind::Other => ErrorClass::Retryable,
            },
        }
    }
}

/// Reads a key's last entry, whatever its operation.
pub async fn entry(store: &kv::Store, key: &str) -> Result<Option<kv::Entry>, KvError> {
    store.entry(key).await.map_err(|source| KvError::Read {
        key: key.to_owned(),
        source,
    })
}

/// Deletes a key (a tombstone; reads see it as absent).
pub async fn delete(store: &kv::Store, key: &str) -> Result<(), KvError> {
    store.delete(key).await.map_err(|source| KvError::Update {
        key: key.to_owned(),
        source,
    })
}

/// Reads a key. Deleted and purged keys read as absent.
pub async fn get_json<T: DeserializeOwned>(
    store: &kv::Store,
    key: &str,
) -> Result<Option<Versioned<T>>, KvError> {
    let Some(entry) = entry(store, key).await? else {
        return Ok(None);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    let value = serde_json::from_slice(&entry.value).map_err(|source| KvError::Decode {
        key: key.to_owned(),
        source,
    })?;
    Ok(Some(Versioned {
        value,
        revision: entry.revision,
    }))
}

/// The revision a deleted key can be re-created at, or `None` when the key never existed.
async fn tombstone_revision(store: &kv::Store, key: &str) -> Result<Option<u64>, KvError> {
    Ok(entry(store, key)
        .await?
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
    let bytes = Bytes::from(serde_json::to_vec(value).map_err(|source| KvError::Encode {
        key: key.to_owned(),
        source,
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
                .map_err(|source| match source.kind() {
                    UpdateErrorKind::WrongLastRevision => conflict(),
                    UpdateErrorKind::InvalidKey
                    | UpdateErrorKind::TimedOut
                    | UpdateErrorKind::Other => KvError::Update {
                        key: key.to_owned(),
                        source,
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
            Err(source) => Err(KvError::Create {
                key: key.to_owned(),
                source,
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
