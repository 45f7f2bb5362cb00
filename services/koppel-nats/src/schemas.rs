//! Reading writer schemas back from the schemas bucket, so payloads written by a newer koppel
//! (or by a writer in another language that registered its schema) decode here.

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use koppel_events::codec::WriterSchemas;
use koppel_events::{Fingerprint, catalog};

#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    #[error("cannot read the schemas bucket: {0}")]
    Bucket(String),
    #[error("schema {key} in the schemas bucket does not parse: {reason}")]
    Parse { key: String, reason: String },
}

/// Loads every schema in the bucket that the compiled-in catalogue does not already hold.
pub async fn load_writer_schemas(schemas: &kv::Store) -> Result<WriterSchemas, SchemaLoadError> {
    let catalog = catalog().map_err(|error| SchemaLoadError::Bucket(error.to_string()))?;
    let mut writer_schemas = WriterSchemas::new();
    let keys: Vec<String> = schemas
        .keys()
        .await
        .map_err(|error| SchemaLoadError::Bucket(error.to_string()))?
        .try_collect()
        .await
        .map_err(|error| SchemaLoadError::Bucket(error.to_string()))?;
    for key in keys {
        let known = Fingerprint::from_hex(&key)
            .is_some_and(|fingerprint| catalog.by_fingerprint(fingerprint).is_some());
        if known {
            continue;
        }
        let Some(json) = schemas
            .get(&key)
            .await
            .map_err(|error| SchemaLoadError::Bucket(error.to_string()))?
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&json);
        writer_schemas
            .add(&text)
            .map_err(|error| SchemaLoadError::Parse {
                key: key.clone(),
                reason: error.to_string(),
            })?;
    }
    Ok(writer_schemas)
}
