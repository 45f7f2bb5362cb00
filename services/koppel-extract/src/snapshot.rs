//! Per-employer snapshots in the snapshots KV bucket: for every entity koppel has published,
//! a digest of its content, its revision, and per-field digests (for `changed_fields`).
//!
//! # Why chunks
//!
//! A snapshot holds no content, only digests, but at 5,000 employees and their employments an
//! employer's entries are over a megabyte of JSON, beyond the default NATS max payload (1 MB).
//! Per-entity keys would avoid that but cost one KV round trip per entity on a first sync and
//! a key scan per run. So an employer's entries are spread over `chunk_count` keys by a stable
//! hash of the entity id (`<employer_key>.g<generation>.<n>`), with a `<employer_key>.meta`
//! key naming the generation and chunk count. A run rewrites only the chunks whose entries
//! changed, so a quiet delta writes one or two small values. When an employer outgrows its
//! chunks, the next save writes a new generation in full and then switches the meta key to
//! it with compare-and-set, so a reader never sees a half-written layout.
//!
//! # Crash safety
//!
//! The snapshot is saved only after every event of the run is acknowledged. A crash before or
//! during the save leaves (some) entries at their old revision, so the next run re-derives
//! exactly the same event ids for them and JetStream drops the duplicates.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use chrono::NaiveDate;
use koppel_nats::kv::{self, KvError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Entities per chunk the layout aims for; about 200 bytes each, so a chunk stays far below
/// the 1 MB payload limit even when entries grow.
const ENTITIES_PER_CHUNK: usize = 1_500;

/// What the snapshot remembers of one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityState {
    /// The first 16 bytes of the SHA-256 of the entity's canonical content, base64.
    #[serde(rename = "h")]
    pub digest: String,
    /// The revision of the last event published for the entity.
    #[serde(rename = "r")]
    pub revision: i64,
    /// A 32-bit digest per field, in the order of the snapshot's field layout.
    #[serde(rename = "f", default)]
    pub field_digests: Vec<u32>,
    /// Employments: the employee, so a removal event can name it.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// Employments: the start date, so a removal event can carry it.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// Employments: whether the published state had an end date.
    #[serde(rename = "x", default, skip_serializing_if = "is_false")]
    pub ended: bool,
    /// Employees: the manager published last; a leaver keeps it (see the Loket mapping docs).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub manager_employee_id: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The digests of one entity's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDigest {
    /// SHA-256 of the canonical JSON: the content hash that goes into the event id.
    pub content_hash: [u8; 32],
    /// Field names (`name.last_name` for nested name parts) in layout order.
    pub field_names: Vec<String>,
    pub field_digests: Vec<u32>,
}

impl ContentDigest {
    /// Digests an entity through its serde JSON form, which is deterministic for equal values
    /// (struct fields in declaration order, decimals as strings).
    pub fn of<T: Serialize>(entity: &T) -> Result<Self, serde_json::Error> {
        let value = serde_json::to_value(entity)?;
        let canonical = serde_json::to_vec(&value)?;
        let content_hash: [u8; 32] = Sha256::digest(&canonical).into();
        let mut field_names = Vec::new();
        let mut field_digests = Vec::new();
        if let serde_json::Value::Object(fields) = &value {
            for (name, field) in fields {
                match field {
                    // The name is compared part by part, as the ground truth and recipients
                    // name them (`name.partner_last_name`).
                    serde_json::Value::Object(parts) if name == "name" => {
                        for (part, part_value) in parts {
                            field_names.push(format!("{name}.{part}"));
                            field_digests.push(field_digest(part_value)?);
                        }
                    }
                    _ => {
                        field_names.push(name.clone());
                        field_digests.push(field_digest(field)?);
                    }
                }
            }
        }
        Ok(ContentDigest {
            content_hash,
            field_names,
            field_digests,
        })
    }

    /// The short digest the snapshot stores.
    pub fn short(&self) -> String {
        STANDARD_NO_PAD.encode(&self.content_hash[..16])
    }
}

fn field_digest(value: &serde_json::Value) -> Result<u32, serde_json::Error> {
    let bytes = serde_json::to_vec(value)?;
    let hash = Sha256::digest(&bytes);
    Ok(u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]))
}

/// The names of the fields whose digests differ. With a different layout (a schema that gained
/// fields), fields are matched by name and new ones count as changed.
pub fn changed_fields(
    old_names: &[String],
    old_digests: &[u32],
    new: &ContentDigest,
) -> Vec<String> {
    let old: HashMap<&str, u32> = old_names
        .iter()
        .map(String::as_str)
        .zip(old_digests.iter().copied())
        .collect();
    new.field_names
        .iter()
        .zip(&new.field_digests)
        .filter(|(name, digest)| old.get(name.as_str()) != Some(digest))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The meta key of an employer's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotMeta {
    generation: u64,
    chunk_count: u32,
    employer: Option<EntityState>,
    /// Revision of the last SyncCompleted event.
    sync_revision: i64,
    employer_fields: Vec<String>,
    employee_fields: Vec<String>,
    employment_fields: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Chunk {
    #[serde(default)]
    employees: BTreeMap<String, EntityState>,
    #[serde(default)]
    employments: BTreeMap<String, EntityState>,
}

/// An employer's snapshot in memory, with what is needed to save it back with compare-and-set.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    employer_key: String,
    meta: SnapshotMeta,
    meta_revision: Option<u64>,
    pub employer: Option<EntityState>,
    pub employees: HashMap<String, EntityState>,
    pub employments: HashMap<String, EntityState>,
    pub sync_revision: i64,
    /// Field layouts the stored digests follow.
    pub employer_fields: Vec<String>,
    pub employee_fields: Vec<String>,
    pub employment_fields: Vec<String>,
    /// Per loaded chunk: its KV revision and the digest of its bytes, to write only changes.
    loaded_chunks: Vec<(Option<u64>, [u8; 32])>,
}

impl Snapshot {
    /// An empty snapshot (an employer never extracted).
    pub fn empty(employer_key: &str) -> Self {
        Snapshot {
            employer_key: employer_key.to_owned(),
            ..Snapshot::default()
        }
    }

    pub fn knows_employment(&self, employment_id: &str) -> bool {
        self.employments.contains_key(employment_id)
    }

    pub fn knows_employee(&self, employee_id: &str) -> bool {
        self.employees.contains_key(employee_id)
    }

    /// Loads an employer's snapshot; an employer without one gets an empty snapshot.
    pub async fn load(
        store: &async_nats::jetstream::kv::Store,
        employer_key: &str,
    ) -> Result<Self, KvError> {
        let Some(meta) = kv::get_json::<SnapshotMeta>(store, &meta_key(employer_key)).await? else {
            return Ok(Snapshot::empty(employer_key));
        };
        let mut snapshot = Snapshot {
            employer_key: employer_key.to_owned(),
            employer: meta.value.employer.clone(),
            sync_revision: meta.value.sync_revision,
            employer_fields: meta.value.employer_fields.clone(),
            employee_fields: meta.value.employee_fields.clone(),
            employment_fields: meta.value.employment_fields.clone(),
            meta_revision: Some(meta.revision),
            meta: meta.value,
            ..Snapshot::default()
        };
        let keys: Vec<String> = (0..snapshot.meta.chunk_count)
            .map(|index| chunk_key(employer_key, snapshot.meta.generation, index))
            .collect();
        let chunks = futures::future::try_join_all(
            keys.iter()
                .map(|key| async move { read_chunk(store, key).await }),
        )
        .await?;
        for (chunk, revision, digest) in chunks {
            snapshot.employees.extend(chunk.employees);
            snapshot.employments.extend(chunk.employments);
            snapshot.loaded_chunks.push((revision, digest));
        }
        Ok(snapshot)
    }

    /// Writes the snapshot back: changed chunks, then the meta key, each with compare-and-set
    /// against what was loaded. A conflict means another writer (a replica that took over an
    /// expired lease) touched the employer; the caller stops and the next run starts over.
    pub async fn save(&mut self, store: &async_nats::jetstream::kv::Store) -> Result<(), KvError> {
        let total = self.employees.len() + self.employments.len();
        let needed = total
            .div_ceil(ENTITIES_PER_CHUNK)
            .max(1)
            .next_power_of_two();
        let needed = u32::try_from(needed).unwrap_or(u32::MAX);
        let relayout = needed > self.meta.chunk_count;
        let (generation, chunk_count) = if relayout {
            (self.meta.generation + 1, needed)
        } else {
            (self.meta.generation, self.meta.chunk_count)
        };
        let mut chunks = vec![Chunk::default(); chunk_count as usize];
        for (id, state) in &self.employees {
            if let Some(chunk) = chunks.get_mut(chunk_index(id, chunk_count)) {
                chunk.employees.insert(id.clone(), state.clone());
            }
        }
        for (id, state) in &self.employments {
            if let Some(chunk) = chunks.get_mut(chunk_index(id, chunk_count)) {
                chunk.employments.insert(id.clone(), state.clone());
            }
        }
        let mut written = Vec::with_capacity(chunks.len());
        for (index, chunk) in chunks.iter().enumerate() {
            let bytes = serde_json::to_vec(chunk).map_err(|source| KvError::Encode {
                key: self.employer_key.clone(),
                source,
            })?;
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            let index_u32 = u32::try_from(index).unwrap_or(u32::MAX);
            let key = chunk_key(&self.employer_key, generation, index_u32);
            let loaded = if relayout {
                None
            } else {
                self.loaded_chunks.get(index).copied()
            };
            match loaded {
                Some((_, loaded_digest)) if loaded_digest == digest => {
                    written.push(loaded.unwrap_or((None, digest)));
                }
                Some((revision, _)) => {
                    let revision =
                        kv::put_bytes_if(store, &key, Bytes::from(bytes), revision).await?;
                    written.push((Some(revision), digest));
                }
                None => {
                    // A new generation's key (or a first save): it may exist from a save that
                    // crashed before switching the meta key; overwrite it then.
                    let existing = existing_revision(store, &key).await?;
                    let revision =
                        kv::put_bytes_if(store, &key, Bytes::from(bytes), existing).await?;
                    written.push((Some(revision), digest));
                }
            }
        }
        let old_generation = self.meta.generation;
        let old_count = self.meta.chunk_count;
        let meta = SnapshotMeta {
            generation,
            chunk_count,
            employer: self.employer.clone(),
            sync_revision: self.sync_revision,
            employer_fields: self.employer_fields.clone(),
            employee_fields: self.employee_fields.clone(),
            employment_fields: self.employment_fields.clone(),
        };
        if meta != self.meta || self.meta_revision.is_none() {
            let revision = kv::put_json_if(
                store,
                &meta_key(&self.employer_key),
                &meta,
                self.meta_revision,
            )
            .await?;
            self.meta_revision = Some(revision);
        }
        self.meta = meta;
        self.loaded_chunks = written;
        if relayout && self.meta_revision.is_some() && old_count > 0 {
            // The old generation is unreachable now; removing it is housekeeping only.
            for index in 0..old_count {
                let _ = store
                    .purge(chunk_key(&self.employer_key, old_generation, index))
                    .await;
            }
        }
        Ok(())
    }
}

async fn read_chunk(
    store: &async_nats::jetstream::kv::Store,
    key: &str,
) -> Result<(Chunk, Option<u64>, [u8; 32]), KvError> {
    let entry = kv::entry(store, key).await?;
    match entry {
        Some(entry) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
            let chunk: Chunk =
                serde_json::from_slice(&entry.value).map_err(|source| KvError::Decode {
                    key: key.to_owned(),
                    source,
                })?;
            let digest: [u8; 32] = Sha256::digest(&entry.value).into();
            Ok((chunk, Some(entry.revision), digest))
        }
        // A chunk never written (it was empty) reads as empty, at no revision.
        Some(_) | None => Ok((Chunk::default(), None, [0; 32])),
    }
}

async fn existing_revision(
    store: &async_nats::jetstream::kv::Store,
    key: &str,
) -> Result<Option<u64>, KvError> {
    Ok(kv::get_json::<serde_json::Value>(store, key)
        .await
        .ok()
        .flatten()
        .map(|versioned| versioned.revision))
}

fn meta_key(employer_key: &str) -> String {
    format!("{employer_key}.meta")
}

fn chunk_key(employer_key: &str, generation: u64, index: u32) -> String {
    format!("{employer_key}.g{generation}.{index}")
}

/// FNV-1a over the id: stable across builds and platforms, unlike `std`'s hasher.
fn chunk_index(id: &str, chunk_count: u32) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(chunk_count.max(1))) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        id: &'static str,
        name: Name,
        hours: &'static str,
    }

    #[derive(Serialize)]
    struct Name {
        last_name: &'static str,
        formatted: &'static str,
    }

    #[test]
    fn changed_fields_name_nested_name_parts() {
        let before = ContentDigest::of(&Sample {
            id: "1",
            name: Name {
                last_name: "Bergen",
                formatted: "S. Bergen",
            },
            hours: "32",
        })
        .unwrap();
        let after = ContentDigest::of(&Sample {
            id: "1",
            name: Name {
                last_name: "Bergen",
                formatted: "S. Wiel-Bergen",
            },
            hours: "36",
        })
        .unwrap();
        assert_ne!(before.content_hash, after.content_hash);
        assert_eq!(
            changed_fields(&before.field_names, &before.field_digests, &after),
            vec!["hours".to_owned(), "name.formatted".to_owned()]
        );
        assert!(changed_fields(&after.field_names, &after.field_digests, &after).is_empty());
    }

    #[test]
    fn chunk_index_is_stable_and_in_range() {
        assert_eq!(chunk_index("abc", 8), chunk_index("abc", 8));
        for id in ["a", "b", "c", "d"] {
            assert!(chunk_index(id, 4) < 4);
        }
        assert_eq!(chunk_index("anything", 1), 0);
    }
}
