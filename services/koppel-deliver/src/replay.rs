//! The library behind `koppel replay`: redelivers past events to one recipient, in stream
//! order, with their original idempotency keys (the event ids) and stream sequences, so the
//! recipient absorbs what it already has and nothing is applied twice. It returns data and
//! prints nothing; the CLI renders it.
//!
//! The replay reads through a durable consumer of its own (`replay-<recipient>-<name>`),
//! filtered to the recipient's subscribed employers, and acks each event once the recipient has
//! settled it. Interrupted, it resumes where it stopped when opened again with the same name;
//! done, it deletes its consumer. Events go through the deliverer's own delivery path
//! ([`crate::delivery::deliver_one`]) one at a time, which keeps per-employee order without the
//! lane machinery of the live deliverer.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures::StreamExt;
use koppel_events::subject::{TokenError, validate_token};
use koppel_nats::schemas::{SchemaCache, SchemaLoadError};
use koppel_nats::{AckOutcome, SettleError, Topology, TopologyError, settle};
use koppel_registry::{Registry, RegistryError};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::budget::SpentBudget;
use crate::delivery::{DeliveryTarget, StoredEvent, deliver_one};
use crate::dlq::{OpenRecipientError, RedriveSettings};
use crate::lane::{UNKNOWN_EMPLOYER, employer_of_event_subject};
use crate::outcome::Settlement;
use crate::recipient::RecipientClient;

/// How long a replay's consumer waits for an ack; a replay acks every event once settled.
const REPLAY_ACK_WAIT: Duration = Duration::from_secs(300);
/// How often the replay's progress callback runs while one event is retried: rarely, as nobody
/// else holds the replay's messages.
const REPLAY_PROGRESS_INTERVAL: Duration = Duration::from_secs(60);
/// Messages fetched per pull, and how long a pull waits for them.
const FETCH_BATCH: usize = 100;
const FETCH_EXPIRES: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("recipient {0} is not registered")]
    UnknownRecipient(String),
    #[error("employer {employer} is not subscribed to {recipient}")]
    NotSubscribed { employer: String, recipient: String },
    #[error("recipient {0} has no subscribed employers: nothing to replay")]
    NoEmployers(String),
    #[error("a replay name holds letters, digits and `_` only, not `-`: {0}")]
    NameWithDash(String),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    OpenRecipient(#[from] OpenRecipientError),
    #[error("cannot load the writer schemas")]
    Schemas(#[from] SchemaLoadError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("cannot create the replay's consumer")]
    CreateConsumer(#[source] async_nats::jetstream::stream::ConsumerError),
    #[error("cannot read the replay's consumer")]
    ConsumerInfo(#[source] async_nats::jetstream::context::ConsumerInfoError),
    #[error("cannot fetch events")]
    Fetch(#[source] async_nats::Error),
    #[error("cannot ack stream sequence {stream_sequence}")]
    Ack {
        stream_sequence: u64,
        #[source]
        source: SettleError,
    },
}

/// What to replay, and to whom.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub recipient: String,
    /// Where the replay starts (by time or stream sequence). Ignored when resuming.
    pub start: DeliverPolicy,
    /// Only this employer; it must be subscribed to the recipient.
    pub employer: Option<String>,
    /// The replay's name (letters, digits and `_`); a random one when `None`.
    pub name: Option<String>,
}

/// An event the recipient did not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayFailure {
    pub stream_sequence: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub consumer: String,
    pub replayed: u64,
    pub delivered: u64,
    /// Duplicates the recipient said it absorbed (the insurer answers 409; a webhook receiver
    /// answers 200 either way, so for webhooks this stays 0).
    pub duplicates_absorbed: u64,
    /// Not for this recipient: nothing to send, or another tenant's.
    pub filtered: u64,
    pub failed: Vec<ReplayFailure>,
    pub finished: bool,
}

/// A replay, opened and ready to run.
pub struct Replay {
    name: String,
    durable: String,
    recipient: String,
    stream: async_nats::jetstream::stream::Stream,
    consumer: PullConsumer,
    pending: u64,
    client: RecipientClient,
    employers: BTreeSet<String>,
    schemas: SchemaCache,
    settings: RedriveSettings,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("durable", &self.durable)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// A replay request checked against the registry: the recipient exists, the employers are
/// subscribed to it, the name is usable. Nothing is created yet.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    request: ReplayRequest,
    name: String,
    durable: String,
    employers: BTreeSet<String>,
    filter_subjects: Vec<String>,
}

impl ReplayPlan {
    /// Checks the request against the registry, before anything is created or any secret is
    /// opened.
    pub async fn check(topology: &Topology, request: ReplayRequest) -> Result<Self, ReplayError> {
        let snapshot = Registry::new(topology.registry.clone()).snapshot().await?;
        if !snapshot.recipients.contains_key(&request.recipient) {
            return Err(ReplayError::UnknownRecipient(request.recipient.clone()));
        }
        let subscribed = snapshot.employers_of_recipient(&request.recipient);
        let employers: BTreeSet<String> = match &request.employer {
            Some(employer) if subscribed.contains(employer) => BTreeSet::from([employer.clone()]),
            Some(employer) => {
                return Err(ReplayError::NotSubscribed {
                    employer: employer.clone(),
                    recipient: request.recipient.clone(),
                });
            }
            None => subscribed.into_iter().collect(),
        };
        if employers.is_empty() {
            return Err(ReplayError::NoEmployers(request.recipient.clone()));
        }
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
        validate_token("replay name", &name)?;
        // No `-` in the name: recipient names may hold one, and `replay-a-b-c` must not be both
        // recipient `a` with replay `b-c` and recipient `a-b` with replay `c`, or one replay
        // could resume (and ack) the other's consumer.
        if name.contains('-') {
            return Err(ReplayError::NameWithDash(name));
        }
        let durable = format!("replay-{}-{name}", request.recipient);
        let filter_subjects = employers
            .iter()
            .map(|employer| topology.names.employer_filter(employer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ReplayPlan {
            request,
            name,
            durable,
            employers,
            filter_subjects,
        })
    }

    /// Opens the recipient's client and creates the replay's consumer or, when one of this
    /// name exists (an interrupted replay), resumes it as it is.
    pub async fn open(
        self,
        topology: &Topology,
        settings: RedriveSettings,
    ) -> Result<Replay, ReplayError> {
        let ReplayPlan {
            request,
            name,
            durable,
            employers,
            filter_subjects,
        } = self;
        // Read again: the registry may have changed since the plan was checked.
        let (_, client) = settings
            .open_recipient(topology, &request.recipient)
            .await?;
        let schemas = SchemaCache::load(topology.schemas.clone()).await?;
        let stream = topology.events_stream().await?;
        // An existing consumer of this name is an interrupted replay: resume it as it is.
        let consumer: PullConsumer = match stream.get_consumer(&durable).await {
            Ok(consumer) => consumer,
            Err(_) => {
                let (filter_subject, filter_subjects) = match filter_subjects.as_slice() {
                    [single] => (single.clone(), Vec::new()),
                    many => (String::new(), many.to_vec()),
                };
                stream
                    .create_consumer(pull::Config {
                        durable_name: Some(durable.clone()),
                        description: Some(format!("koppel replay to {}", request.recipient)),
                        deliver_policy: request.start,
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: REPLAY_ACK_WAIT,
                        max_deliver: -1,
                        filter_subject,
                        filter_subjects,
                        ..Default::default()
                    })
                    .await
                    .map_err(ReplayError::CreateConsumer)?
            }
        };
        let mut info_consumer = consumer.clone();
        let pending = info_consumer
            .info()
            .await
            .map_err(ReplayError::ConsumerInfo)?
            .num_pending;
        Ok(Replay {
            name,
            durable,
            recipient: request.recipient,
            stream,
            consumer,
            pending,
            client,
            employers,
            schemas,
            settings,
        })
    }
}

impl Replay {
    /// The replay's name: give it again to resume.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The replay's durable consumer.
    pub fn consumer_name(&self) -> &str {
        &self.durable
    }

    pub fn recipient(&self) -> &str {
        &self.recipient
    }

    /// Events left to replay when opened.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Replays until nothing is pending or `shutdown` fires, calling `on_event` after each
    /// settled event. Finished, it deletes its consumer.
    pub async fn run(
        self,
        shutdown: &CancellationToken,
        mut on_event: impl FnMut(),
    ) -> Result<ReplayReport, ReplayError> {
        let target = DeliveryTarget {
            client: &self.client,
            subscribed: &self.employers,
            schemas: &self.schemas,
            retry: &self.settings.retry,
            progress_interval: REPLAY_PROGRESS_INTERVAL,
            shutdown,
            permits: None,
        };
        let mut report = ReplayReport {
            consumer: self.durable.clone(),
            ..ReplayReport::default()
        };
        let mut info_consumer = self.consumer.clone();
        let mut remaining = self.pending;
        while remaining > 0 && !shutdown.is_cancelled() {
            let mut batch = self
                .consumer
                .fetch()
                .max_messages(FETCH_BATCH)
                .expires(FETCH_EXPIRES)
                .messages()
                .await
                .map_err(|error| ReplayError::Fetch(error.into()))?;
            let mut got_any = false;
            while let Some(message) = batch.next().await {
                let message = message.map_err(ReplayError::Fetch)?;
                got_any = true;
                let info = message.info().map_err(ReplayError::Fetch)?;
                let stream_sequence = info.stream_sequence;
                remaining = info.pending;
                let stored = StoredEvent {
                    subject_employer: employer_of_event_subject(message.subject.as_str())
                        .unwrap_or(UNKNOWN_EMPLOYER),
                    payload: &message.payload,
                    stream_sequence,
                    parked_behind: None,
                    spent: SpentBudget::default(),
                };
                match deliver_one(&target, &stored, || async {}).await {
                    Settlement::Released => break,
                    Settlement::Delivered { duplicate, .. } => {
                        report.delivered += 1;
                        report.duplicates_absorbed += u64::from(duplicate);
                    }
                    // Subjects already filter by employer; the tenant check is the second lock
                    // on the door, and what it stops is not this recipient's.
                    Settlement::Filtered { .. } | Settlement::NotForRecipient(_) => {
                        report.filtered += 1;
                    }
                    Settlement::DeadLetter { reason, .. } => {
                        report.failed.push(ReplayFailure {
                            stream_sequence,
                            reason,
                        });
                    }
                }
                settle(&message, AckOutcome::AckUnconfirmed)
                    .await
                    .map_err(|source| ReplayError::Ack {
                        stream_sequence,
                        source,
                    })?;
                report.replayed += 1;
                on_event();
            }
            if !got_any {
                remaining = info_consumer
                    .info()
                    .await
                    .map_err(ReplayError::ConsumerInfo)?
                    .num_pending;
            }
        }
        report.finished = remaining == 0 && !shutdown.is_cancelled();
        if report.finished {
            // Done: the consumer has nothing left to resume.
            let _ = self.stream.delete_consumer(&self.durable).await;
        }
        Ok(report)
    }
}
