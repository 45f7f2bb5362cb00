//! The registry in KV: one key per record (`connections.<id>`, `employers.<key>`,
//! `recipients.<name>`), written with compare-and-set, and a watched in-memory snapshot that
//! workers read so onboarding takes effect without a restart.
//!
//! A record that does not decode (written by a newer koppel in a form this build must not
//! interpret, or damaged) never counts as a deletion: the snapshot keeps the last version that
//! decoded, lists the record under [`RegistrySnapshot::problems`], and the workers report it in
//! the metrics `koppel_registry_undecodable_records` and
//! `koppel_registry_record_decode_failures_total`; `koppel status` shows it. Only a KV delete
//! removes a record.

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
    /// The record is there but this build cannot read it (a newer record version, or a shape
    /// it does not know). The reason never quotes a value.
    #[error("registry record {key} does not decode: {reason}")]
    Undecodable { key: String, reason: String },
}

/// The registry record format this build writes and reads, in the field `record_version`;
/// a record without the field is version 1. Adding an optional field does not change it (every
/// build ignores fields it does not know); a change older workers must not interpret does, and
/// those workers then keep the record's last version they can read.
///
/// Version 1 records are written without the field: koppel releases before this one refused
/// unknown fields and would stop reading every record written during the rolling upgrade.
pub const RECORD_VERSION: u64 = 1;

/// The JSON field that carries a record's format version.
pub const RECORD_VERSION_FIELD: &str = "record_version";

/// A registry record this build cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordProblem {
    /// The KV revision that does not decode.
    pub revision: u64,
    /// Why, without the record's values (they may hold personal data).
    pub reason: String,
    /// Whether an older version of the record is still in use; if not, the record is absent
    /// from the snapshot because no version of it ever decoded here.
    pub serving_last_good: bool,
}

/// Everything registered, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySnapshot {
    pub connections: BTreeMap<String, Connection>,
    pub employers: BTreeMap<String, EmployerRegistration>,
    pub recipients: BTreeMap<String, Recipient>,
    /// Records whose newest version this build cannot read, by KV key (`recipients.<name>`).
    pub problems: BTreeMap<String, RecordProblem>,
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
        let key = key(kind, id);
        let Some(versioned) = get_json::<serde_json::Value>(&self.store, &key).await? else {
            return Ok(None);
        };
        decode_record(versioned.value)
            .map(Some)
            .map_err(|reason| RegistryError::Undecodable { key, reason })
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

    /// Reads every record once. A record whose newest version does not decode is replayed
    /// from the bucket's history, so the snapshot holds its last good version.
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
            let entry = self
                .store
                .entry(&key)
                .await
                .map_err(|error| RegistryError::Watch(error.to_string()))?;
            let Some(entry) = entry else { continue };
            apply_change(&mut snapshot, &key, Change::of(&entry));
            if snapshot
                .problems
                .get(&key)
                .is_some_and(|problem| !problem.serving_last_good)
            {
                self.replay_history(&mut snapshot, &key).await?;
            }
        }
        report_problems(&snapshot);
        Ok(snapshot)
    }

    /// Applies every kept version of `key`, oldest first, so the snapshot ends with the newest
    /// version that decodes (unless a delete came after it).
    async fn replay_history(
        &self,
        snapshot: &mut RegistrySnapshot,
        key: &str,
    ) -> Result<(), RegistryError> {
        let mut history = self
            .store
            .history(key)
            .await
            .map_err(|error| RegistryError::Watch(error.to_string()))?;
        while let Some(entry) = history.next().await {
            let entry = entry.map_err(|error| RegistryError::Watch(error.to_string()))?;
            apply_change(snapshot, key, Change::of(&entry));
        }
        Ok(())
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
                        let mut next = (**sender.borrow()).clone();
                        apply_change(&mut next, &entry.key, Change::of(&entry));
                        if next != **sender.borrow() {
                            report_problems(&next);
                            let _ = sender.send(Arc::new(next));
                        }
                    }
                }
            }
        });
        Ok(receiver)
    }
}

/// One change of one registry key, as the bucket reports it.
#[derive(Debug, Clone, Copy)]
enum Change<'a> {
    Put { value: &'a [u8], revision: u64 },
    Deleted,
}

impl<'a> Change<'a> {
    fn of(entry: &'a kv::Entry) -> Self {
        match entry.operation {
            kv::Operation::Put => Change::Put {
                value: &entry.value,
                revision: entry.revision,
            },
            kv::Operation::Delete | kv::Operation::Purge => Change::Deleted,
        }
    }
}

/// Applies one change to the snapshot: a put that decodes replaces the record, a put that does
/// not keeps the last good version and records the problem, a delete removes both.
fn apply_change(snapshot: &mut RegistrySnapshot, key: &str, change: Change<'_>) {
    let Some((kind, id)) = key.split_once('.') else {
        return;
    };
    let outcome = match kind {
        CONNECTIONS => update(&mut snapshot.connections, id, change),
        EMPLOYERS => update(&mut snapshot.employers, id, change),
        RECIPIENTS => update(&mut snapshot.recipients, id, change),
        _ => return,
    };
    match outcome {
        Ok(()) => {
            snapshot.problems.remove(key);
        }
        Err(problem) => {
            tracing::error!(
                record = %key,
                revision = problem.revision,
                reason = %problem.reason,
                serving_last_good = problem.serving_last_good,
                "A registry record does not decode; its last good version stays in use until it is fixed or deleted."
            );
            metrics::counter!("koppel_registry_record_decode_failures_total", "kind" => kind_label(kind)).increment(1);
            snapshot.problems.insert(key.to_owned(), problem);
        }
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        CONNECTIONS => CONNECTIONS,
        EMPLOYERS => EMPLOYERS,
        _ => RECIPIENTS,
    }
}

fn update<T: DeserializeOwned>(
    map: &mut BTreeMap<String, T>,
    id: &str,
    change: Change<'_>,
) -> Result<(), RecordProblem> {
    match change {
        Change::Deleted => {
            map.remove(id);
            Ok(())
        }
        Change::Put { value, revision } => {
            let decoded = serde_json::from_slice::<serde_json::Value>(value)
                .map_err(|error| describe(&error))
                .and_then(decode_record::<T>);
            match decoded {
                Ok(record) => {
                    map.insert(id.to_owned(), record);
                    Ok(())
                }
                Err(reason) => Err(RecordProblem {
                    revision,
                    reason,
                    serving_last_good: map.contains_key(id),
                }),
            }
        }
    }
}

/// Decodes one record: its version must be one this build reads, and unknown fields are
/// ignored. The error says why without echoing the record's values.
fn decode_record<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    let version = match value.get(RECORD_VERSION_FIELD) {
        None => 1,
        Some(version) => version
            .as_u64()
            .ok_or_else(|| format!("{RECORD_VERSION_FIELD} is not a whole number"))?,
    };
    if version > RECORD_VERSION {
        return Err(format!(
            "record version {version} is newer than {RECORD_VERSION}, the newest this build reads"
        ));
    }
    serde_json::from_value(value).map_err(|error| describe(&error))
}

/// serde_json's message, unless it may quote a value (`invalid type: string "..."`); then only
/// the kind of error and its position.
fn describe(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if message.contains('"') {
        format!(
            "{:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        )
    } else {
        message
    }
}

/// The gauge of records this process cannot read; the counter counts each failed decode.
fn report_problems(snapshot: &RegistrySnapshot) {
    metrics::gauge!("koppel_registry_undecodable_records").set(snapshot.problems.len() as f64);
}

#[cfg(test)]
mod tests;
