//! Employer leases in the leases KV bucket: one extractor replica per employer at a time.
//!
//! A lease is `{holder, expires_at}` under the employer key, taken and released with
//! compare-and-set, so two replicas racing for one employer cannot both win. A holder that
//! dies leaves a lease that expires; the TTL must exceed the longest sync (a 5,000-employee
//! full sync takes well under a minute; the default TTL is ten minutes) plus the clock skew
//! between replicas. Even a lease that expires mid-sync cannot corrupt anything: the snapshot
//! is saved with compare-and-set, so the slower of two overlapping runs fails its save, and
//! the events both published carry the same ids.

use std::time::Duration;

use chrono::{DateTime, Utc};
use koppel_nats::kv::{self, KvError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    expires_at: DateTime<Utc>,
}

/// A held lease. Release it when done; dropping it lets it expire instead.
#[derive(Debug)]
pub struct EmployerLease {
    store: async_nats::jetstream::kv::Store,
    employer_key: String,
    holder: String,
    revision: u64,
}

/// Takes the lease of `employer_key` for `ttl` if it is free, expired, or already ours.
/// `Ok(None)`: another holder has it.
pub async fn try_acquire(
    store: &async_nats::jetstream::kv::Store,
    employer_key: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<EmployerLease>, KvError> {
    let now = Utc::now();
    let current = kv::get_json::<LeaseRecord>(store, employer_key).await?;
    if let Some(current) = &current
        && current.value.holder != holder
        && current.value.expires_at > now
    {
        return Ok(None);
    }
    let record = LeaseRecord {
        holder: holder.to_owned(),
        expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
    };
    match kv::put_json_if(
        store,
        employer_key,
        &record,
        current.map(|versioned| versioned.revision),
    )
    .await
    {
        Ok(revision) => Ok(Some(EmployerLease {
            store: store.clone(),
            employer_key: employer_key.to_owned(),
            holder: holder.to_owned(),
            revision,
        })),
        Err(KvError::Conflict { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

impl EmployerLease {
    pub fn employer_key(&self) -> &str {
        &self.employer_key
    }

    /// Gives the lease up at once (expiry now), unless someone took it over meanwhile.
    pub async fn release(self) -> Result<(), KvError> {
        let record = LeaseRecord {
            holder: self.holder.clone(),
            expires_at: Utc::now() - chrono::Duration::seconds(1),
        };
        match kv::put_json_if(
            &self.store,
            &self.employer_key,
            &record,
            Some(self.revision),
        )
        .await
        {
            Ok(_) | Err(KvError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
