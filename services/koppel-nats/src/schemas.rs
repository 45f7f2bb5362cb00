//! Reading writer schemas back from the schemas bucket, so payloads written by a newer koppel
//! (or by a writer in another language that registered its schema) decode here, and
//! [`SchemaCache`], the reloading cache every reader of events decodes through.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use koppel_events::codec::WriterSchemas;
use koppel_events::schema::SchemaError;
use koppel_events::{DecodeError, Event, Fingerprint, catalog};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

/// The least time between two reloads of the bucket, so a stream of garbage (payloads naming
/// schemas nobody registered) cannot hammer it.
pub const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    #[error("the compiled-in schema catalogue does not load")]
    Catalog(#[source] SchemaError),
    #[error("cannot list the schemas bucket")]
    Keys(#[source] kv::HistoryError),
    #[error("cannot list the schemas bucket")]
    KeysStream(#[source] kv::WatcherError),
    #[error("cannot read schema {key} from the schemas bucket")]
    Entry {
        key: String,
        #[source]
        source: kv::EntryError,
    },
    #[error("schema {key} in the schemas bucket does not parse")]
    Parse {
        key: String,
        #[source]
        source: SchemaError,
    },
}

/// Loads every schema in the bucket that the compiled-in catalogue does not already hold.
pub async fn load_writer_schemas(schemas: &kv::Store) -> Result<WriterSchemas, SchemaLoadError> {
    let catalog = catalog().map_err(SchemaLoadError::Catalog)?;
    let mut writer_schemas = WriterSchemas::new();
    let keys: Vec<String> = schemas
        .keys()
        .await
        .map_err(SchemaLoadError::Keys)?
        .try_collect()
        .await
        .map_err(SchemaLoadError::KeysStream)?;
    for key in keys {
        let known = Fingerprint::from_hex(&key)
            .is_some_and(|fingerprint| catalog.by_fingerprint(fingerprint).is_some());
        if known {
            continue;
        }
        let json = match schemas.get(&key).await {
            Ok(Some(json)) => json,
            Ok(None) => continue,
            Err(source) => return Err(SchemaLoadError::Entry { key, source }),
        };
        let text = String::from_utf8_lossy(&json);
        if let Err(source) = writer_schemas.add(&text) {
            return Err(SchemaLoadError::Parse { key, source });
        }
    }
    Ok(writer_schemas)
}

/// Writer schemas from the schemas bucket, reloaded when a payload names one we lack: a newer
/// koppel may have registered it after we started. Shared by the live deliverer, re-drives and
/// replays, so all of them decode the same payloads the same way.
pub struct SchemaCache {
    bucket: kv::Store,
    current: RwLock<Arc<WriterSchemas>>,
    last_reload: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache").finish_non_exhaustive()
    }
}

impl SchemaCache {
    /// An empty cache; the first payload with a schema outside the build loads the bucket.
    pub fn new(bucket: kv::Store) -> Self {
        SchemaCache {
            bucket,
            current: RwLock::new(Arc::new(WriterSchemas::new())),
            last_reload: Mutex::new(None),
        }
    }

    /// A cache loaded now; fails when the bucket cannot be read.
    pub async fn load(bucket: kv::Store) -> Result<Self, SchemaLoadError> {
        let loaded = load_writer_schemas(&bucket).await?;
        Ok(SchemaCache {
            bucket,
            current: RwLock::new(Arc::new(loaded)),
            last_reload: Mutex::new(Some(Instant::now())),
        })
    }

    /// Decodes a payload, reloading the bucket once if it names a schema we lack.
    pub async fn decode(&self, payload: &[u8]) -> Result<Event, DecodeError> {
        let schemas = self.current.read().await.clone();
        match koppel_events::decode_with(payload, &schemas) {
            Err(DecodeError::UnknownFingerprint(_)) => {
                self.reload().await;
                let schemas = self.current.read().await.clone();
                koppel_events::decode_with(payload, &schemas)
            }
            other => other,
        }
    }

    /// Reloads the bucket, at most once every [`MIN_RELOAD_INTERVAL`]. A failure is logged and
    /// the previous schemas stay: decoding then fails for the unknown ones only.
    pub async fn reload(&self) {
        let mut last = self.last_reload.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_RELOAD_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        match load_writer_schemas(&self.bucket).await {
            Ok(loaded) => *self.current.write().await = Arc::new(loaded),
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "Cannot reload writer schemas."
                );
            }
        }
    }
}
