//! One recipient's consumer lifecycle: which employers it is subscribed to, creating (or, after
//! a crash, restarting from its ack floor) its durable consumer with one filter per employer,
//! and starting a [`Dispatcher`] over it again after a failure, with backoff.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer};
use backon::{BackoffBuilder, ExponentialBuilder};
use koppel_events::subject::TokenError;
use koppel_nats::schemas::SchemaCache;
use koppel_nats::{
    ConsumerSpec, EnsureConsumerError, ErrorClass, Topology, TopologyError, consumer_error_class,
    ensure_pull_consumer,
};
use koppel_registry::{Recipient, RegistrySnapshot, SecretKey};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::budget::RedeliveryMarks;
use crate::config::{ConsumerSettings, RetrySettings};
use crate::dead_letter::{DeadLetterError, parked_lanes};
use crate::dispatcher::{DispatchEnd, Dispatcher};
use crate::recipient::{RecipientClient, RecipientSetupError};

/// The shortest and longest wait before setting a recipient's consumer up again.
const SETUP_BACKOFF_MIN: Duration = Duration::from_millis(500);
const SETUP_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What every recipient worker shares.
pub(crate) struct SharedContext {
    pub(crate) topology: Topology,
    pub(crate) client: async_nats::Client,
    pub(crate) secret_key: SecretKey,
    pub(crate) http: reqwest::Client,
    pub(crate) retry: RetrySettings,
    pub(crate) consumer: ConsumerSettings,
    pub(crate) schemas: SchemaCache,
}

/// The part of the registry one recipient worker cares about.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecipientView {
    pub(crate) recipient: Recipient,
    pub(crate) employers: BTreeSet<String>,
}

impl RecipientView {
    pub(crate) fn of(snapshot: &RegistrySnapshot, name: &str) -> Option<Self> {
        let recipient = snapshot.recipients.get(name)?.clone();
        let employers = snapshot.employers_of_recipient(name).into_iter().collect();
        Some(RecipientView {
            recipient,
            employers,
        })
    }
}

/// Why a recipient's consumer could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error(transparent)]
    Recipient(#[from] RecipientSetupError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("the recipient's name cannot name a consumer")]
    Name(#[from] TokenError),
    #[error("no employer of this recipient is a valid subject token")]
    NoValidFilters,
    #[error("cannot restart consumer {durable_name} from its ack floor")]
    Restart {
        durable_name: String,
        #[source]
        source: async_nats::jetstream::stream::ConsumerError,
    },
    #[error(transparent)]
    Consumer(#[from] EnsureConsumerError),
    #[error("cannot read the recipient's parked lanes")]
    ParkedLanes(#[source] DeadLetterError),
}

impl SetupError {
    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            // Fixed only by a registry change (a new secret, other employers).
            SetupError::Recipient(_) | SetupError::Name(_) | SetupError::NoValidFilters => {
                ErrorClass::Permanent
            }
            SetupError::Topology(_) | SetupError::ParkedLanes(_) => ErrorClass::Retryable,
            SetupError::Restart { source, .. } => consumer_error_class(source),
            SetupError::Consumer(error) => error.class(),
        }
    }
}

/// The backoff between setups of one recipient's consumer: doubling, with jitter, capped.
fn setup_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(SETUP_BACKOFF_MIN)
        .with_max_delay(SETUP_BACKOFF_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Runs one recipient until `cancel` fires or the recipient disappears from the registry.
pub(crate) async fn run_recipient(
    context: Arc<SharedContext>,
    name: String,
    mut registry: watch::Receiver<Arc<RegistrySnapshot>>,
    cancel: CancellationToken,
) {
    let mut first_start = true;
    let mut backoff = setup_backoff();
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let snapshot = registry.borrow_and_update().clone();
        let Some(view) = RecipientView::of(&snapshot, &name) else {
            return;
        };
        if view.employers.is_empty() {
            // Never a consumer without filters: to JetStream that means every subject, which
            // would hand this recipient every employer's events.
            tracing::info!(recipient = %name, "No employers subscribed; not consuming.");
            if !wait_for_change(&mut registry, &cancel).await {
                return;
            }
            continue;
        }
        let setup = async {
            let client = RecipientClient::from_registry(
                &view.recipient,
                &snapshot,
                &context.secret_key,
                context.http.clone(),
            )?;
            let (consumer, spec) =
                prepare_consumer(&context, &name, &view.employers, first_start).await?;
            let parked = parked_lanes(&context.topology.jetstream, &context.topology.names, &name)
                .await
                .map_err(SetupError::ParkedLanes)?;
            Ok::<_, SetupError>((client, consumer, spec, parked))
        };
        let (client, consumer, spec, parked) = match setup.await {
            Ok(ready) => ready,
            Err(error) => {
                // A permanent failure waits for the registry to change; it is still tried at
                // the longest backoff, in case the class was wrong (better slow than stuck).
                let delay = match error.class() {
                    ErrorClass::Retryable => backoff.next().unwrap_or(SETUP_BACKOFF_MAX),
                    ErrorClass::Permanent => SETUP_BACKOFF_MAX,
                };
                tracing::error!(recipient = %name, error = &error as &dyn std::error::Error, class = ?error.class(), retry_in_ms = delay.as_millis() as u64, "Cannot set up the recipient's consumer; retrying.");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = registry.changed() => {},
                    _ = tokio::time::sleep(delay) => {},
                }
                continue;
            }
        };
        backoff = setup_backoff();
        first_start = false;
        let dispatcher = Dispatcher::new(context.clone(), name.clone(), view, client, spec, parked);
        match dispatcher.run(consumer, &mut registry, &cancel).await {
            DispatchEnd::Stopped => return,
            DispatchEnd::NoEmployers => continue,
            DispatchEnd::Failed(error) => {
                let delay = backoff.next().unwrap_or(SETUP_BACKOFF_MAX);
                tracing::warn!(recipient = %name, error = &error as &dyn std::error::Error, retry_in_ms = delay.as_millis() as u64, "Consumer failed; setting it up again.");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {},
                }
            }
        }
    }
}

/// Waits for a registry change; false when shutdown came first or the registry is gone.
async fn wait_for_change(
    registry: &mut watch::Receiver<Arc<RegistrySnapshot>>,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        changed = registry.changed() => changed.is_ok(),
    }
}

/// One filter per subscribed employer. A key that cannot be a subject token is skipped (and
/// logged): it cannot have events either.
pub(crate) fn filters_of(context: &SharedContext, employers: &BTreeSet<String>) -> Vec<String> {
    employers
        .iter()
        .filter_map(
            |employer| match context.topology.names.employer_filter(employer) {
                Ok(filter) => Some(filter),
                Err(error) => {
                    tracing::error!(%error, "Employer key cannot be a subject token; skipped.");
                    None
                }
            },
        )
        .collect()
}

/// Creates or updates the durable consumer. On the first start of this process, a consumer
/// that still has messages out with a previous deliverer (crashed, or shut down mid-work) is
/// recreated from its ack floor: JetStream would otherwise redeliver those only after the ack
/// wait, behind newer messages of the same employee, which would break per-employee order.
/// Messages acked above the floor come again, and the recipients' idempotency keys absorb them.
async fn prepare_consumer(
    context: &SharedContext,
    name: &str,
    employers: &BTreeSet<String>,
    first_start: bool,
) -> Result<(PullConsumer, ConsumerSpec), SetupError> {
    let stream = context.topology.events_stream().await?;
    let durable = context.topology.names.delivery_consumer(name)?;
    let filters = filters_of(context, employers);
    if filters.is_empty() {
        return Err(SetupError::NoValidFilters);
    }
    let existing = stream.consumer_info(&durable).await.ok();
    let mut spec = ConsumerSpec {
        ack_wait: context.consumer.ack_wait(),
        max_ack_pending: context.consumer.max_ack_pending,
        description: Some(format!("koppel deliverer for recipient {name}")),
        // The deliver policy of an existing durable cannot change; keep whatever it has.
        deliver_policy: existing
            .as_ref()
            .map_or(DeliverPolicy::All, |info| info.config.deliver_policy),
        // The redelivery marks of an earlier restart stay until the next one replaces them.
        metadata: existing
            .as_ref()
            .map(|info| info.config.metadata.clone())
            .unwrap_or_default(),
        ..ConsumerSpec::new(durable.clone(), filters)
    };
    if first_start
        && let Some(info) = &existing
        && (info.num_ack_pending > 0 || info.num_redelivered > 0)
    {
        let start_sequence = info.ack_floor.stream_sequence.saturating_add(1);
        tracing::info!(recipient = %name, start_sequence, pending = info.num_ack_pending, "Consumer has messages out with a previous deliverer; restarting it from its ack floor to keep per-employee order.");
        stream
            .delete_consumer(&durable)
            .await
            .map_err(|source| SetupError::Restart {
                durable_name: durable.clone(),
                source,
            })?;
        spec.deliver_policy = DeliverPolicy::ByStartSequence { start_sequence };
        // Recreating resets JetStream's delivery counts; the marks keep what the retry budget
        // needs of them (crate::budget).
        let marks = RedeliveryMarks::after_restart(
            RedeliveryMarks::from_metadata(&info.config.metadata).as_ref(),
            info.ack_floor.stream_sequence,
            info.delivered.stream_sequence,
        );
        marks.write_metadata(&mut spec.metadata);
        if marks.restarts > 1 {
            tracing::warn!(recipient = %name, stuck_sequence = marks.stuck_sequence, restarts = marks.restarts, "The same message holds the ack floor back after another restart; it counts against its retry budget.");
        }
    }
    let consumer = ensure_pull_consumer(&stream, &spec).await?;
    Ok((consumer, spec))
}
