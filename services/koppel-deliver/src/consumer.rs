//! One recipient's consumer: a dispatcher task that pulls from the recipient's durable
//! consumer, sorts messages into lanes, runs the head of every lane as its own task, and
//! settles each message exactly once.
//!
//! Ownership keeps it simple: the dispatcher alone owns the lanes and the parked set, and a lane
//! has at most one item running at a time, so per-lane order needs no locks. Bounds: at most
//! `max_ack_pending` messages are held (JetStream stops handing out more), at most one task per
//! lane with work, and at most `max_in_flight` HTTP requests at once (a semaphore around each
//! attempt, not around the backoff waits, so a lane that is waiting costs no request slot).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::PullConsumer};
use futures::{FutureExt, StreamExt};
use koppel_events::{DecodeError, Event, WriterSchemas};
use koppel_nats::{AckOutcome, ConsumerSpec, Topology, ensure_pull_consumer, settle};
use koppel_registry::{Recipient, RegistrySnapshot, SecretKey};
use tokio::sync::{RwLock, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{ConsumerSettings, RetrySettings};
use crate::dead_letter::{
    DeadLetterRecord, LaneReleaseNotice, lane_head, parked_lanes, release_notice_subject,
    write_dead_letter,
};
use crate::lane::LaneKey;
use crate::outcome::{DeadLetterClass, PermanentClass, Settlement};
use crate::recipient::{DeliveryRequest, RecipientClient};
use crate::retry::{backoff_schedule, retry_until_settled};

/// How long a released message waits before JetStream offers it again.
const RELEASE_DELAY: Duration = Duration::from_secs(1);

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

/// Writer schemas from the schemas bucket, reloaded when a payload names one we lack: a newer
/// koppel may have registered it after we started.
pub(crate) struct SchemaCache {
    bucket: async_nats::jetstream::kv::Store,
    current: RwLock<Arc<WriterSchemas>>,
    last_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl SchemaCache {
    pub(crate) fn new(bucket: async_nats::jetstream::kv::Store) -> Self {
        SchemaCache {
            bucket,
            current: RwLock::new(Arc::new(WriterSchemas::new())),
            last_reload: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn decode(&self, payload: &[u8]) -> Result<Event, DecodeError> {
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

    /// At most once every few seconds, so a stream of garbage cannot hammer the bucket.
    pub(crate) async fn reload(&self) {
        let mut last = self.last_reload.lock().await;
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(5)) {
            return;
        }
        *last = Some(Instant::now());
        match koppel_nats::schemas::load_writer_schemas(&self.bucket).await {
            Ok(loaded) => *self.current.write().await = Arc::new(loaded),
            Err(error) => tracing::warn!(%error, "Cannot reload writer schemas."),
        }
    }
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

/// Why a dispatcher stopped.
enum DispatchEnd {
    /// Shutdown, or the recipient was removed from the registry.
    Stopped,
    /// The recipient has no subscribed employers any more: stop pulling until it has.
    NoEmployers,
    /// The consumer or its message stream failed; set it up again.
    Failed(String),
}

/// Runs one recipient until `cancel` fires or the recipient disappears from the registry.
pub(crate) async fn run_recipient(
    context: Arc<SharedContext>,
    name: String,
    mut registry: watch::Receiver<Arc<RegistrySnapshot>>,
    cancel: CancellationToken,
) {
    let mut first_start = true;
    let mut setup_failures: u32 = 0;
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
            )
            .map_err(|error| error.to_string())?;
            let (consumer, spec) =
                prepare_consumer(&context, &name, &view.employers, first_start).await?;
            let parked = parked_lanes(&context.topology.jetstream, &context.topology.names, &name)
                .await
                .map_err(|error| error.to_string())?;
            Ok::<_, String>((client, consumer, spec, parked))
        };
        let (client, consumer, spec, parked) = match setup.await {
            Ok(ready) => ready,
            Err(error) => {
                setup_failures = setup_failures.saturating_add(1);
                let delay = Duration::from_millis(500)
                    .saturating_mul(setup_failures.min(60))
                    .min(Duration::from_secs(30));
                tracing::error!(recipient = %name, %error, retry_in_ms = delay.as_millis() as u64, "Cannot set up the recipient's consumer; retrying.");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = registry.changed() => {},
                    _ = tokio::time::sleep(delay) => {},
                }
                continue;
            }
        };
        setup_failures = 0;
        first_start = false;
        let dispatcher = Dispatcher::new(context.clone(), name.clone(), view, client, spec, parked);
        match dispatcher.run(consumer, &mut registry, &cancel).await {
            DispatchEnd::Stopped => return,
            DispatchEnd::NoEmployers => continue,
            DispatchEnd::Failed(error) => {
                tracing::warn!(recipient = %name, %error, "Consumer failed; setting it up again.");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {},
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

fn filters_of(context: &SharedContext, employers: &BTreeSet<String>) -> Vec<String> {
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
) -> Result<(PullConsumer, ConsumerSpec), String> {
    let stream = context
        .topology
        .events_stream()
        .await
        .map_err(|error| error.to_string())?;
    let durable = context
        .topology
        .names
        .delivery_consumer(name)
        .map_err(|error| error.to_string())?;
    let filters = filters_of(context, employers);
    if filters.is_empty() {
        return Err("no employer of this recipient is a valid subject token".to_owned());
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
            .map_err(|error| error.to_string())?;
        spec.deliver_policy = DeliverPolicy::ByStartSequence { start_sequence };
    }
    let consumer = ensure_pull_consumer(&stream, &spec).await?;
    Ok((consumer, spec))
}

/// One unit of a lane's work.
enum WorkItem {
    Message(Box<jetstream::Message>),
    /// Re-check whether the lane's dead letters are gone (after a release notice).
    Recheck,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<WorkItem>,
    busy: bool,
}

/// What a finished lane item means for the lane.
enum ItemResult {
    /// Settled (delivered, filtered, skipped) or released; nothing changes for the lane.
    Done,
    /// Dead-lettered: the lane is parked behind this event id (unless it already was).
    Parked { head: String },
    /// A re-check found the lane still parked.
    StillParked { head: String },
    /// A re-check found no dead letters left: later events may be delivered again.
    Unparked,
}

/// Everything a lane item needs, cloned cheaply into its task.
#[derive(Clone)]
struct ItemContext {
    shared: Arc<SharedContext>,
    recipient: Arc<str>,
    client: Arc<RecipientClient>,
    subscribed: Arc<BTreeSet<String>>,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
}

struct Dispatcher {
    item_context: ItemContext,
    view: RecipientView,
    spec: ConsumerSpec,
    lanes: HashMap<LaneKey, Lane>,
    /// Parked lanes and the event id of each one's first dead letter.
    parked: HashMap<LaneKey, String>,
    /// Stream sequences of the messages held, so a redelivery of one we still hold (a lost
    /// in-progress ack) is not queued twice.
    held: HashSet<u64>,
    running: JoinSet<(LaneKey, ItemResult)>,
}

impl Dispatcher {
    fn new(
        shared: Arc<SharedContext>,
        name: String,
        view: RecipientView,
        client: RecipientClient,
        spec: ConsumerSpec,
        parked: HashMap<LaneKey, String>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(view.recipient.max_in_flight.max(1)));
        Dispatcher {
            item_context: ItemContext {
                shared,
                recipient: Arc::from(name),
                client: Arc::new(client),
                subscribed: Arc::new(view.employers.clone()),
                permits,
                stop: CancellationToken::new(),
            },
            view,
            spec,
            lanes: HashMap::new(),
            parked,
            held: HashSet::new(),
            running: JoinSet::new(),
        }
    }

    fn recipient(&self) -> &str {
        &self.item_context.recipient
    }

    async fn run(
        mut self,
        consumer: PullConsumer,
        registry: &mut watch::Receiver<Arc<RegistrySnapshot>>,
        cancel: &CancellationToken,
    ) -> DispatchEnd {
        let shared = self.item_context.shared.clone();
        let settings = shared.consumer.clone();
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(settings.pull_batch.max(1))
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(error) => return DispatchEnd::Failed(error.to_string()),
        };
        let notice_subject = release_notice_subject(&shared.topology.names, self.recipient());
        let mut notices = match shared.client.subscribe(notice_subject).await {
            Ok(subscription) => subscription,
            Err(error) => return DispatchEnd::Failed(error.to_string()),
        };
        let mut progress = tokio::time::interval(settings.progress_interval());
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rescan_every = Duration::from_secs(settings.parked_rescan_seconds.max(1));
        let mut rescan = tokio::time::interval_at(Instant::now() + rescan_every, rescan_every);
        let max_held = usize::try_from(settings.max_ack_pending.max(1)).unwrap_or(usize::MAX);
        tracing::info!(recipient = %self.recipient(), employers = self.view.employers.len(), parked = self.parked.len(), "Delivering.");
        let end = loop {
            let can_pull = self.held.len() < max_held;
            // Not biased: with completions always ready, a biased select would poll the pull
            // stream only between them, and the stream asks JetStream for more only when
            // polled, so delivery would stall on its own bookkeeping.
            tokio::select! {
                _ = cancel.cancelled() => break DispatchEnd::Stopped,
                Some(joined) = self.running.join_next(), if !self.running.is_empty() => {
                    match joined {
                        Ok((lane, result)) => {
                            self.item_finished(lane, result);
                            // Settle every other finished item in the same pass.
                            while let Some(joined) = self.running.try_join_next() {
                                match joined {
                                    Ok((lane, result)) => self.item_finished(lane, result),
                                    Err(error) => tracing::error!(recipient = %self.recipient(), %error, "A delivery task failed."),
                                }
                            }
                        }
                        Err(error) => {
                            // A panicking item leaves its message unsettled; JetStream redelivers
                            // it after the ack wait. The lane stays busy, so nothing overtakes it.
                            tracing::error!(recipient = %self.recipient(), %error, "A delivery task failed.");
                        }
                    }
                }
                changed = registry.changed() => {
                    if changed.is_err() {
                        break DispatchEnd::Stopped;
                    }
                    let snapshot = registry.borrow_and_update().clone();
                    match self.apply_registry(&snapshot).await {
                        Ok(None) => {}
                        Ok(Some(end)) => break end,
                        Err(error) => tracing::error!(recipient = %self.recipient(), %error, "Cannot apply the registry change; keeping the previous settings."),
                    }
                }
                next = messages.next(), if can_pull => match next {
                    Some(Ok(message)) => {
                        self.enqueue_message(message);
                        // Take whatever else is already buffered in one go: one pass of this
                        // loop per message would make the dispatcher the bottleneck.
                        while self.held.len() < max_held {
                            match messages.next().now_or_never() {
                                Some(Some(Ok(message))) => self.enqueue_message(message),
                                _ => break,
                            }
                        }
                    }
                    Some(Err(error)) => {
                        // Missed heartbeats and pull errors are reported, not fatal: the stream
                        // re-issues its pull requests by itself.
                        tracing::warn!(recipient = %self.recipient(), %error, "Pull stream error.");
                    }
                    None => break DispatchEnd::Failed("the pull stream ended".to_owned()),
                },
                Some(notice) = notices.next() => {
                    if let Ok(notice) = serde_json::from_slice::<LaneReleaseNotice>(&notice.payload) {
                        let lane = LaneKey { employer_key: notice.employer_key, employee_id: notice.employee_id };
                        if self.parked.contains_key(&lane) {
                            self.push(lane, WorkItem::Recheck);
                        }
                    }
                }
                _ = progress.tick() => self.keep_queued_alive().await,
                _ = rescan.tick() => {
                    let lanes: Vec<LaneKey> = self.parked.keys().cloned().collect();
                    for lane in lanes {
                        self.push(lane, WorkItem::Recheck);
                    }
                }
            }
        };
        drop(messages);
        self.drain(&settings).await;
        end
    }

    /// Applies a registry change. `Some(end)` when the dispatcher must stop.
    async fn apply_registry(
        &mut self,
        snapshot: &RegistrySnapshot,
    ) -> Result<Option<DispatchEnd>, String> {
        let Some(view) = RecipientView::of(snapshot, self.recipient()) else {
            tracing::info!(recipient = %self.recipient(), "Recipient removed from the registry; stopping.");
            return Ok(Some(DispatchEnd::Stopped));
        };
        if view.employers.is_empty() {
            return Ok(Some(DispatchEnd::NoEmployers));
        }
        let shared = &self.item_context.shared;
        // Rebuilt on every change: the insurer's employer links and the secrets may have changed.
        let client = RecipientClient::from_registry(
            &view.recipient,
            snapshot,
            &shared.secret_key,
            shared.http.clone(),
        )
        .map_err(|error| error.to_string())?;
        if view.employers != self.view.employers {
            let filters = filters_of(shared, &view.employers);
            let spec = ConsumerSpec {
                filter_subjects: filters,
                ..self.spec.clone()
            };
            let stream = shared
                .topology
                .events_stream()
                .await
                .map_err(|error| error.to_string())?;
            // Updated in place: the durable keeps its position, so no message is lost or
            // repeated, and the running pull stream carries on with the new filter.
            ensure_pull_consumer(&stream, &spec).await?;
            tracing::info!(recipient = %self.recipient(), employers = view.employers.len(), "Subscriptions changed; consumer filter updated.");
            self.spec = spec;
        }
        if view.recipient.max_in_flight != self.view.recipient.max_in_flight {
            self.item_context.permits =
                Arc::new(Semaphore::new(view.recipient.max_in_flight.max(1)));
        }
        self.item_context.client = Arc::new(client);
        self.item_context.subscribed = Arc::new(view.employers.clone());
        self.view = view;
        Ok(None)
    }

    fn enqueue_message(&mut self, message: jetstream::Message) {
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(error) => {
                tracing::warn!(%error, "A pulled message has no JetStream metadata; ignored.");
                return;
            }
        };
        if !self.held.insert(sequence) {
            return;
        }
        let lane = LaneKey::of_message(
            message.message.subject.as_str(),
            message.message.headers.as_ref(),
        );
        self.push(lane, WorkItem::Message(Box::new(message)));
    }

    fn push(&mut self, key: LaneKey, item: WorkItem) {
        let lane = self.lanes.entry(key.clone()).or_default();
        lane.queue.push_back(item);
        if !lane.busy {
            self.start_next(key);
        }
    }

    fn item_finished(&mut self, key: LaneKey, result: ItemResult) {
        match result {
            ItemResult::Done => {}
            ItemResult::Parked { head } => {
                self.parked.entry(key.clone()).or_insert(head);
            }
            ItemResult::StillParked { head } => {
                self.parked.insert(key.clone(), head);
            }
            ItemResult::Unparked => {
                self.parked.remove(&key);
                tracing::info!(recipient = %self.recipient(), employer = %key.employer_key, "Lane released: its dead letters are gone.");
            }
        }
        if let Some(lane) = self.lanes.get_mut(&key) {
            lane.busy = false;
        }
        self.start_next(key);
    }

    /// Starts the lane's next item, or forgets the lane when it has none (bounded memory:
    /// only lanes with work are kept).
    fn start_next(&mut self, key: LaneKey) {
        let Some(lane) = self.lanes.get_mut(&key) else {
            return;
        };
        let Some(item) = lane.queue.pop_front() else {
            self.lanes.remove(&key);
            return;
        };
        lane.busy = true;
        let context = self.item_context.clone();
        let parked_head = self.parked.get(&key).cloned();
        match item {
            WorkItem::Message(message) => {
                if let Ok(info) = message.info() {
                    self.held.remove(&info.stream_sequence);
                }
                self.running.spawn(async move {
                    let result = process_message(&context, &key, *message, parked_head).await;
                    (key, result)
                });
            }
            WorkItem::Recheck => {
                self.running.spawn(async move {
                    let result = recheck_lane(&context, &key, parked_head).await;
                    (key, result)
                });
            }
        }
    }

    /// Tells JetStream we still work on every queued message. The running ones do it
    /// themselves from inside their retry loop.
    async fn keep_queued_alive(&self) {
        for lane in self.lanes.values() {
            for item in &lane.queue {
                if let WorkItem::Message(message) = item {
                    let _ = settle(message, AckOutcome::InProgress).await;
                }
            }
        }
    }

    /// Finishes or releases everything: queued messages are released at once; running items
    /// see the stop token (a retry wait ends, an attempt on the wire may finish) and get the
    /// grace period; what is still running after it is aborted and left to JetStream's
    /// redelivery. Nothing is acked that was not delivered or dead-lettered.
    async fn drain(&mut self, settings: &ConsumerSettings) {
        self.item_context.stop.cancel();
        for lane in self.lanes.values() {
            for item in &lane.queue {
                if let WorkItem::Message(message) = item {
                    let _ = settle(message, AckOutcome::NakWithDelay(RELEASE_DELAY)).await;
                }
            }
        }
        self.lanes.clear();
        self.held.clear();
        let grace = Duration::from_secs(settings.shutdown_grace_seconds);
        let finished = tokio::time::timeout(grace, async {
            while self.running.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(recipient = %self.recipient(), "Attempts still running after the grace period; their messages will be redelivered.");
            self.running.abort_all();
            while self.running.join_next().await.is_some() {}
        }
    }
}

/// Delivers one message, or dead-letters it, and settles it.
async fn process_message(
    context: &ItemContext,
    lane: &LaneKey,
    message: jetstream::Message,
    parked_head: Option<String>,
) -> ItemResult {
    let shared = &context.shared;
    let recipient = &*context.recipient;
    let stream_sequence = match message.info() {
        Ok(info) => info.stream_sequence,
        Err(_) => return ItemResult::Done,
    };
    // Tenant isolation, belt and braces: the filter already keeps other employers out, but a
    // message pulled just before a subscription was removed must not reach the recipient.
    if !context.subscribed.contains(&lane.employer_key) {
        metrics::counter!("koppel_delivery_not_subscribed_total", "recipient" => recipient.to_owned()).increment(1);
        ack(&message, recipient).await;
        return ItemResult::Done;
    }
    let settlement = if let Some(head) = &parked_head {
        Settlement::DeadLetter {
            class: DeadLetterClass::ParkedBehind,
            reason: format!("parked behind dead letter of event {head}"),
            attempts: 0,
        }
    } else {
        match shared.schemas.decode(&message.message.payload).await {
            Err(error) => {
                let class = match error {
                    DecodeError::UnknownFingerprint(_) => PermanentClass::UnknownSchema,
                    _ => PermanentClass::Undecodable,
                };
                Settlement::DeadLetter {
                    class: DeadLetterClass::Permanent(class),
                    reason: error.to_string(),
                    attempts: 0,
                }
            }
            // The subject's employer is checked above, but the payload is what gets sent: an
            // event of another employer under a subscribed subject (not written by koppel's
            // extractor) is not this recipient's, nor its dead letters'.
            Ok(event) if event.header().employer_key != lane.employer_key => {
                metrics::counter!("koppel_delivery_employer_mismatch_total", "recipient" => recipient.to_owned()).increment(1);
                tracing::error!(recipient, subject_employer = %lane.employer_key, event_employer = %event.header().employer_key, stream_sequence, "An event's employer differs from its subject's; not delivered.");
                ack(&message, recipient).await;
                return ItemResult::Done;
            }
            Ok(event) => {
                let request = DeliveryRequest {
                    event: &event,
                    event_id: event.header().event_id,
                    stream_sequence,
                    employer_key: &lane.employer_key,
                };
                retry_until_settled(
                    &shared.retry,
                    shared.consumer.progress_interval(),
                    &context.stop,
                    |_| async {
                        // A closed semaphore cannot happen (never closed); deliver anyway.
                        let _permit = context.permits.acquire().await;
                        context.client.deliver(&request).await
                    },
                    || async {
                        let _ = settle(&message, AckOutcome::InProgress).await;
                    },
                )
                .await
            }
        }
    };
    match settlement {
        Settlement::Delivered {
            duplicate,
            attempts,
        } => {
            metrics::counter!("koppel_delivery_delivered_total", "recipient" => recipient.to_owned()).increment(1);
            if duplicate {
                metrics::counter!("koppel_delivery_duplicates_total", "recipient" => recipient.to_owned()).increment(1);
            }
            if attempts > 1 {
                metrics::counter!("koppel_delivery_retries_total", "recipient" => recipient.to_owned())
                    .increment(u64::from(attempts - 1));
            }
            ack(&message, recipient).await;
            ItemResult::Done
        }
        Settlement::Filtered { reason } => {
            metrics::counter!("koppel_delivery_filtered_total", "recipient" => recipient.to_owned(), "reason" => reason).increment(1);
            ack(&message, recipient).await;
            ItemResult::Done
        }
        Settlement::DeadLetter {
            class,
            reason,
            attempts,
        } => {
            let record = DeadLetterRecord {
                recipient,
                lane,
                original_subject: message.message.subject.as_str(),
                original_headers: message.message.headers.as_ref(),
                original_sequence: stream_sequence,
                payload: message.message.payload.clone(),
                class,
                reason: &reason,
                attempts,
                parked_behind: parked_head.as_deref(),
            };
            if !dead_letter_until_stored(context, &message, &record).await {
                let _ = settle(&message, AckOutcome::NakWithDelay(RELEASE_DELAY)).await;
                return ItemResult::Done;
            }
            metrics::counter!("koppel_delivery_dead_letters_total", "recipient" => recipient.to_owned(), "class" => class.as_str()).increment(1);
            tracing::warn!(recipient, employer = %lane.employer_key, stream_sequence, class = class.as_str(), %reason, "Dead-lettered.");
            let head = parked_head.clone().unwrap_or_else(|| record.original_id());
            ack(&message, recipient).await;
            ItemResult::Parked { head }
        }
        Settlement::Released => {
            let _ = settle(&message, AckOutcome::NakWithDelay(RELEASE_DELAY)).await;
            ItemResult::Done
        }
    }
}

/// Writes the dead letter, retrying while the dead-letter stream is unreachable: the message
/// must not be acked before its dead letter is stored. False when shutdown came first.
async fn dead_letter_until_stored(
    context: &ItemContext,
    message: &jetstream::Message,
    record: &DeadLetterRecord<'_>,
) -> bool {
    let shared = &context.shared;
    let mut schedule = backoff_schedule(&RetrySettings {
        initial_backoff_millis: 200,
        max_backoff_millis: 10_000,
        ..shared.retry.clone()
    });
    loop {
        match write_dead_letter(&shared.topology.jetstream, &shared.topology.names, record).await {
            Ok(_) => return true,
            Err(error) => {
                tracing::error!(recipient = record.recipient, %error, "Cannot store a dead letter; retrying.");
                let _ = settle(message, AckOutcome::InProgress).await;
                let delay = schedule.next().unwrap_or(Duration::from_secs(10));
                tokio::select! {
                    _ = context.stop.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {},
                }
            }
        }
    }
}

/// Acks, retrying briefly if the ack cannot even be sent.
///
/// A plain ack, not `settle(AckOutcome::Ack)`'s double ack: waiting for the server to confirm
/// every ack costs a round trip per message and cut throughput by half in the benchmark, while
/// a lost ack buys nothing worse than a redelivery, which the recipient's idempotency key
/// absorbs (and, for a dead letter, the dead-letter stream's dedupe id). Acks still buffered in
/// the client at shutdown are flushed by `run`.
async fn ack(message: &jetstream::Message, recipient: &str) {
    for attempt in 0..3u32 {
        match message.ack().await {
            Ok(()) => return,
            Err(error) if attempt == 2 => {
                tracing::warn!(recipient, %error, "Ack not sent; the message may be redelivered (the idempotency key absorbs it).");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100 << attempt)).await,
        }
    }
}

async fn recheck_lane(
    context: &ItemContext,
    lane: &LaneKey,
    parked_head: Option<String>,
) -> ItemResult {
    if parked_head.is_none() {
        return ItemResult::Done;
    }
    let shared = &context.shared;
    match lane_head(
        &shared.topology.jetstream,
        &shared.topology.names,
        &context.recipient,
        lane,
    )
    .await
    {
        Ok(Some(head)) => ItemResult::StillParked { head },
        Ok(None) => ItemResult::Unparked,
        Err(error) => {
            // Stay parked: releasing on doubt could let an event overtake a dead letter.
            tracing::warn!(recipient = %context.recipient, %error, "Cannot re-check a parked lane; it stays parked.");
            ItemResult::Done
        }
    }
}
