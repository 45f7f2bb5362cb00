//! One recipient's dispatcher: pulls from the recipient's durable consumer, sorts messages
//! into lanes, runs the head of every lane as its own task through the one delivery path
//! ([`crate::delivery::deliver_one`]), and hands each result to [`crate::settling`].
//!
//! Ownership keeps it simple: the dispatcher alone owns the lanes and the parked set, and a lane
//! has at most one item running at a time, so per-lane order needs no locks. Bounds: at most
//! `max_ack_pending` messages are held (JetStream stops handing out more), at most one task per
//! lane with work, and at most `max_in_flight` HTTP requests at once (a semaphore around each
//! attempt, not around the backoff waits, so a lane that is waiting costs no request slot).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::{FutureExt, StreamExt};
use koppel_nats::{AckOutcome, ConsumerSpec, ensure_pull_consumer, settle};
use koppel_registry::RegistrySnapshot;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::budget::{RedeliveryMarks, spent_budget};
use crate::config::ConsumerSettings;
use crate::dead_letter::{LaneReleaseNotice, lane_head, release_notice_subject};
use crate::delivery::{DeliveryTarget, StoredEvent, deliver_one};
use crate::lane::LaneKey;
use crate::recipient::RecipientClient;
use crate::settling::{RELEASE_DELAY, settle_message};
use crate::supervisor::{RecipientView, SetupError, SharedContext, filters_of};

/// Why a dispatcher stopped.
pub(crate) enum DispatchEnd {
    /// Shutdown, or the recipient was removed from the registry.
    Stopped,
    /// The recipient has no subscribed employers any more: stop pulling until it has.
    NoEmployers,
    /// The consumer or its message stream failed; set it up again.
    Failed(DispatchError),
}

/// Why a running dispatcher gave up on its consumer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DispatchError {
    #[error("cannot start pulling messages")]
    Pull(#[source] async_nats::jetstream::consumer::StreamError),
    #[error("cannot subscribe to the lane release notices")]
    Notices(#[source] async_nats::SubscribeError),
    #[error("the pull stream ended")]
    PullStreamEnded,
}

/// One unit of a lane's work.
pub(crate) enum WorkItem {
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
pub(crate) enum ItemResult {
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
pub(crate) struct ItemContext {
    pub(crate) shared: Arc<SharedContext>,
    pub(crate) recipient: Arc<str>,
    pub(crate) client: Arc<RecipientClient>,
    pub(crate) subscribed: Arc<BTreeSet<String>>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) stop: CancellationToken,
    /// The consumer's redelivery marks, for the retry budget of redelivered messages.
    pub(crate) marks: Option<RedeliveryMarks>,
}

pub(crate) struct Dispatcher {
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
    pub(crate) fn new(
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
                marks: RedeliveryMarks::from_metadata(&spec.metadata),
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

    pub(crate) async fn run(
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
            Err(error) => return DispatchEnd::Failed(DispatchError::Pull(error)),
        };
        let notice_subject = release_notice_subject(&shared.topology.names, self.recipient());
        let mut notices = match shared.client.subscribe(notice_subject).await {
            Ok(subscription) => subscription,
            Err(error) => return DispatchEnd::Failed(DispatchError::Notices(error)),
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
                        Err(error) => tracing::error!(recipient = %self.recipient(), error = &error as &dyn std::error::Error, "Cannot apply the registry change; keeping the previous settings."),
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
                    None => break DispatchEnd::Failed(DispatchError::PullStreamEnded),
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
    ) -> Result<Option<DispatchEnd>, SetupError> {
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
        )?;
        if view.employers != self.view.employers {
            let filters = filters_of(shared, &view.employers);
            let spec = ConsumerSpec {
                filter_subjects: filters,
                ..self.spec.clone()
            };
            let stream = shared.topology.events_stream().await?;
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

/// Delivers one message through the one delivery path, then settles it.
async fn process_message(
    context: &ItemContext,
    lane: &LaneKey,
    message: jetstream::Message,
    parked_head: Option<String>,
) -> ItemResult {
    let shared = &context.shared;
    let (stream_sequence, spent) = match message.info() {
        Ok(info) => {
            let published_nanos = info.published.unix_timestamp_nanos();
            let now_nanos = chrono::Utc::now()
                .timestamp_nanos_opt()
                .map_or(published_nanos, i128::from);
            let age = u64::try_from(now_nanos.saturating_sub(published_nanos))
                .map_or(Duration::ZERO, Duration::from_nanos);
            let spent = spent_budget(
                info.delivered,
                info.stream_sequence,
                age,
                context.marks.as_ref(),
            );
            (info.stream_sequence, spent)
        }
        Err(_) => return ItemResult::Done,
    };
    let target = DeliveryTarget {
        client: &context.client,
        subscribed: &context.subscribed,
        schemas: &shared.schemas,
        retry: &shared.retry,
        progress_interval: shared.consumer.progress_interval(),
        shutdown: &context.stop,
        permits: Some(&context.permits),
    };
    let stored = StoredEvent {
        subject_employer: &lane.employer_key,
        payload: &message.message.payload,
        stream_sequence,
        parked_behind: parked_head.as_deref(),
        spent,
    };
    let settlement = deliver_one(&target, &stored, || async {
        let _ = settle(&message, AckOutcome::InProgress).await;
    })
    .await;
    settle_message(
        context,
        lane,
        &message,
        stream_sequence,
        parked_head.as_deref(),
        settlement,
    )
    .await
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
            tracing::warn!(recipient = %context.recipient, error = &error as &dyn std::error::Error, "Cannot re-check a parked lane; it stays parked.");
            ItemResult::Done
        }
    }
}
