//! The registry in KV: one key per record (`connections.<id>`, `employers.<key>`,
//! `recipients.<name>`), written with compare-and-set, and a watched in-memory snapshot that
//! workers read so onboarding takes effect without a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_nats::jetstream::kv;
use futures::StreamExt;
use koppel_events::subject::validate_token;
use koppel_nats::kv::{KvError, get_json, put_json_if};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::model::{Connection, EmployerRegistration, Recipient};

const CONNECTIONS: &str = "connections";
const EMPLOYERS: &str = "employers";
const RECIPIENTS: &str = "recipients";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error(transparent)]
    Token(#[from] koppel_events::subject::TokenError),
    #[error("{kind} {id} is not registered")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id} is already registered")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("employer {employer_key} names recipient {recipient}, which is not registered")]
    UnknownRecipient {
        employer_key: String,
        recipient: String,
    },
    #[error("employer {employer_key} names connection {connection}, which is not registered")]
    UnknownConnection {
        employer_key: String,
        connection: String,
    },
    #[error("cannot watch the registry: {0}")]
    Watch(String),
}

/// Everything registered, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySnapshot {
    pub connections: BTreeMap<String, Connection>,
    pub employers: BTreeMap<String, EmployerRegistration>,
    pub recipients: BTreeMap<String, Recipient>,
}

impl RegistrySnapshot {
    /// Employer keys subscribed to `recipient`, enabled or not: a disabled employer stops being
    /// extracted, but what it already published still reaches its recipients.
    pub fn employers_of_recipient(&self, recipient: &str) -> Vec<String> {
        self.employers
            .values()
            .filter(|employer| employer.recipients.iter().any(|name| name == recipient))
            .map(|employer| employer.employer_key.clone())
            .collect()
    }

    /// Enabled employers of a connection.
    pub fn employers_of_connection(&self, connection_id: &str) -> Vec<&EmployerRegistration> {
        self.employers
            .values()
            .filter(|employer| employer.enabled && employer.connection_id == connection_id)
            .collect()
    }
}

/// The registry bucket.
#[derive(Clone)]
pub struct Registry {
    store: kv::Store,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn key(kind: &str, id: &str) -> String {
    format!("{kind}.{id}")
}

impl Registry {
    pub fn new(store: kv::Store) -> Self {
        Registry { store }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        kind: &'static str,
        id: &str,
    ) -> Result<Option<T>, RegistryError> {
        Ok(get_json::<T>(&self.store, &key(kind, id))
            .await?
            .map(|versioned| versioned.value))
    }

    /// Creates or replaces a record, compare-and-set against what was read.
    async fn upsert<T: Serialize + DeserializeOwned>(
        &self,
        kind: &'static str,
        id: &str,
        value: &T,
    ) -> Result<(), RegistryError> {
        let key = key(kind, id);
        let current = get_json::<serde_json::Value>(&self.store, &key).await?;
        put_json_if(
            &self.store,
            &key,
            value,
            current.map(|versioned| versioned.revision),
        )
        .await?;
        Ok(())
    }

    async fn remove(
        &self,
        prefix: &'static str,
        kind: &'static str,
        id: &str,
    ) -> Result<(), RegistryError> {
        let key = key(prefix, id);
        if get_json::<serde_json::Value>(&self.store, &key)
            .await?
            .is_none()
        {
            return Err(RegistryError::NotFound {
                kind,
                id: id.to_owned(),
            });
        }
        koppel_nats::kv::delete(&self.store, &key).await?;
        Ok(())
    }

    pub async fn put_connection(&self, connection: &Connection) -> Result<(), RegistryError> {
        validate_token("connection id", &connection.id)?;
        self.upsert(CONNECTIONS, &connection.id, connection).await
    }

    pub async fn connection(&self, id: &str) -> Result<Connection, RegistryError> {
        self.get(CONNECTIONS, id)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "connection",
                id: id.to_owned(),
            })
    }

    pub async fn remove_connection(&self, id: &str) -> Result<(), RegistryError> {
        self.remove(CONNECTIONS, "connection", id).await
    }

    /// Registers or updates an employer. Its connection and recipients must exist, so a typo
    /// cannot silently route events nowhere.
    pub async fn put_employer(&self, employer: &EmployerRegistration) -> Result<(), RegistryError> {
        validate_token("employer key", &employer.employer_key)?;
        if self
            .get::<Connection>(CONNECTIONS, &employer.connection_id)
            .await?
            .is_none()
        {
            return Err(RegistryError::UnknownConnection {
                employer_key: employer.employer_key.clone(),
                connection: employer.connection_id.clone(),
            });
        }
        for recipient in &employer.recipients {
            if self
                .get::<Recipient>(RECIPIENTS, recipient)
                .await?
                .is_none()
            {
                return Err(RegistryError::UnknownRecipient {
                    employer_key: employer.employer_key.clone(),
                    recipient: recipient.clone(),
                });
            }
        }
        self.upsert(EMPLOYERS, &employer.employer_key, employer)
            .await
    }

    pub async fn employer(
        &self,
        employer_key: &str,
    ) -> Result<EmployerRegistration, RegistryError> {
        self.get(EMPLOYERS, employer_key)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "employer",
                id: employer_key.to_owned(),
            })
    }

    pub async fn remove_employer(&self, employer_key: &str) -> Result<(), RegistryError> {
        self.remove(EMPLOYERS, "employer", employer_key).await
    }

    pub async fn put_recipient(&self, recipient: &Recipient) -> Result<(), RegistryError> {
        validate_token("recipient", &recipient.name)?;
        self.upsert(RECIPIENTS, &recipient.name, recipient).await
    }

    pub async fn recipient(&self, name: &str) -> Result<Recipient, RegistryError> {
        self.get(RECIPIENTS, name)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "recipient",
                id: name.to_owned(),
            })
    }

    /// Reads every record once.
    pub async fn snapshot(&self) -> Result<RegistrySnapshot, RegistryError> {
        let mut snapshot = RegistrySnapshot::default();
        let mut keys = self
            .store
            .keys()
            .await
            .map_err(|error| RegistryError::Watch(error.to_string()))?;
        let mut all_keys = Vec::new();
        while let Some(key) = keys.next().await {
            all_keys.push(key.map_err(|error| RegistryError::Watch(error.to_string()))?);
        }
        for key in all_keys {
            let Some(value) = get_json::<serde_json::Value>(&self.store, &key).await? else {
                continue;
            };
            apply_entry(&mut snapshot, &key, Some(value.value));
        }
        Ok(snapshot)
    }

    /// A snapshot kept current by watching the bucket. The returned receiver sees a new
    /// snapshot after every change; the watch task ends when every receiver is dropped.
    pub async fn watch(&self) -> Result<watch::Receiver<Arc<RegistrySnapshot>>, RegistryError> {
        let mut updates = self
            .store
            .watch_all()
            .await
            .map_err(|error| RegistryError::Watch(error.to_string()))?;
        let initial = self.snapshot().await?;
        let (sender, receiver) = watch::channel(Arc::new(initial));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = sender.closed() => return,
                    update = updates.next() => {
                        let Some(update) = update else { return };
                        let entry = match update {
                            Ok(entry) => entry,
                            Err(error) => {
                                tracing::warn!(%error, "Registry watch error; the snapshot may be stale until the next change.");
                                continue;
                            }
                        };
                        let value = match entry.operation {
                            kv::Operation::Put => serde_json::from_slice::<serde_json::Value>(&entry.value).ok(),
                            kv::Operation::Delete | kv::Operation::Purge => None,
                        };
                        let mut next = (**sender.borrow()).clone();
                        apply_entry(&mut next, &entry.key, value);
                        if next != **sender.borrow() {
                            let _ = sender.send(Arc::new(next));
                        }
                    }
                }
            }
        });
        Ok(receiver)
    }
}

fn apply_entry(snapshot: &mut RegistrySnapshot, key: &str, value: Option<serde_json::Value>) {
    let Some((kind, id)) = key.split_once('.') else {
        return;
    };
    let id = id.to_owned();
    match kind {
        CONNECTIONS => update(&mut snapshot.connections, id, value),
        EMPLOYERS => update(&mut snapshot.employers, id, value),
        RECIPIENTS => update(&mut snapshot.recipients, id, value),
        _ => {}
    }
}

fn update<T: DeserializeOwned>(
    map: &mut BTreeMap<String, T>,
    id: String,
    value: Option<serde_json::Value>,
) {
    match value.map(serde_json::from_value::<T>) {
        Some(Ok(record)) => {
            map.insert(id, record);
        }
        Some(Err(error)) => {
            tracing::error!(record = %id, %error, "A registry record does not decode; it is ignored until fixed.");
            map.remove(&id);
        }
        None => {
            map.remove(&id);
        }
    }
}
