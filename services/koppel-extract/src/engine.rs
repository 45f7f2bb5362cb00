//! The extraction engine, the same for every source: fetch -> diff against the snapshot ->
//! publish and await every ack -> update the snapshot -> advance the watermark.
//!
//! That order is what makes a crash harmless: until the snapshot is saved, the next run
//! diffs against the same snapshot, derives the same revisions and content hashes, and so the
//! same event ids, which JetStream (`Nats-Msg-Id`) and recipients (idempotency keys) drop. An
//! event is never lost, because nothing that would suppress it is written before its ack.
//!
//! Around the diff the engine applies the safety threshold (a run that would end or remove
//! more than `removal_threshold_percent` of an employer's employees publishes everything
//! except those destructive events, keeps them in the snapshot as they were, does not advance
//! the watermark, and reports `HELD_BACK`) and reports bad records (`SyncCompleted`'s
//! `record_errors`), which never count as removals.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use koppel_events::event_id::{EventIdInput, derive_event_id};
use koppel_events::{
    Employee, EmployeeEvent, EmployerUpserted, Employment, EmploymentEvent, Event, EventHeader,
    EventType, Gender, NameUsage, PersonName, RecordError, SourceSystem, SyncCompleted, SyncCounts,
    SyncKind, SyncResult,
};
use koppel_nats::kv::{self, KvError};
use koppel_nats::publish::PrepareError;
use koppel_nats::{PreparedEvent, PublishError, PublishReport, Publisher, Topology};
use koppel_registry::EmployerRegistration;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http_source::ErrorClass;
use crate::mapping::{EffectiveDate, amsterdam_date, employment_change_effective_date};
use crate::snapshot::{ContentDigest, EntityState, Snapshot, changed_fields};
use crate::source::{FetchMode, FetchRequest, Source, SourceError, SourceFetch};

/// Engine settings shared by every source. Part of the extractor config (`[extraction]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// The safety threshold only triggers when more than this many employees would be ended
    /// or removed, so a small employer's single leaver is not held back as "20%".
    pub removal_threshold_minimum_employees: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            removal_threshold_minimum_employees: 5,
        }
    }
}

/// What the engine needs of NATS.
#[derive(Debug, Clone)]
pub struct SyncContext {
    pub topology: Topology,
    pub publisher: Publisher,
    pub settings: EngineSettings,
}

/// A deliberate failure, for tests that prove crash safety.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Fail after every event is acknowledged, before the snapshot is saved: what a crash
    /// between publish and snapshot update looks like to the next run.
    AfterPublish,
}

/// How to run one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// `None`: a delta when the source has a change feed, a watermark exists and the last
    /// full sync is younger than `full_sync_interval`; otherwise a full sync.
    pub kind: Option<SyncKind>,
    pub full_sync_interval: Duration,
    /// The day that counts as today for valid-on-date choices; defaults to today (UTC).
    pub reference_date: Option<NaiveDate>,
    pub fail_point: Option<FailPoint>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            kind: None,
            full_sync_interval: Duration::from_secs(24 * 60 * 60),
            reference_date: None,
            fail_point: None,
        }
    }
}

/// The change-feed position and sync times of one employer, in the watermarks bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Source-defined position (Loket: the highest `lastModifiedVersionNumber` covered).
    pub position: Option<String>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
}

impl Watermark {
    pub async fn load(
        store: &async_nats::jetstream::kv::Store,
        employer_key: &str,
    ) -> Result<Option<Watermark>, KvError> {
        Ok(kv::get_json::<Watermark>(store, employer_key)
            .await?
            .map(|versioned| versioned.value))
    }
}

/// One published (or held back) event, for callers and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    pub event_type: EventType,
    pub event_id: Uuid,
    pub entity_id: String,
    pub employee_id: Option<String>,
    pub changed_fields: Vec<String>,
    /// From when the change holds (see `EventHeader::effective_date`).
    pub effective_date: Option<NaiveDate>,
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub run_id: String,
    pub kind: SyncKind,
    pub result: SyncResult,
    /// The source reported no change since the watermark; nothing was published or written.
    pub unchanged: bool,
    pub counts: SyncCounts,
    /// Published events in publish order, SyncCompleted included.
    pub published: Vec<EventSummary>,
    /// Destructive events the threshold held back.
    pub held_back: Vec<EventSummary>,
    pub record_errors: Vec<RecordError>,
    pub publish_report: PublishReport,
}

impl SyncOutcome {
    /// Published events of one type.
    pub fn count_of(&self, event_type: EventType) -> usize {
        self.published
            .iter()
            .filter(|event| event.event_type == event_type)
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("snapshot or watermark store: {0}")]
    Store(#[from] KvError),
    #[error("publishing failed: {0}")]
    Publish(#[from] PublishError),
    #[error("an event cannot be encoded")]
    Encode(#[from] PrepareError),
    #[error("an entity cannot be digested")]
    Digest(#[source] serde_json::Error),
    #[error("injected failure {0:?}")]
    InjectedFailure(FailPoint),
}

impl SyncError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SyncError::Source(error) => error.class(),
            SyncError::Store(error) => error.class(),
            SyncError::Publish(error) => error.class(),
            SyncError::Encode(_) | SyncError::Digest(_) => ErrorClass::Permanent,
            SyncError::InjectedFailure(_) => ErrorClass::Retryable,
        }
    }
}

/// How a planned event changes the snapshot once it is acknowledged.
#[derive(Debug, Clone)]
enum Apply {
    Employer(EntityState),
    Employee(String, EntityState),
    Employment(String, EntityState),
    RemoveEmployee(String),
    RemoveEmployment(String),
}

#[derive(Debug, Clone)]
struct Planned {
    event: Event,
    destructive: bool,
    apply: Apply,
}

/// Fields shared by every header of a run.
#[derive(Debug)]
struct RunHeader<'a> {
    source: SourceSystem,
    connection_id: &'a str,
    employer_key: &'a str,
    run_id: &'a str,
    observed_at: DateTime<Utc>,
}

impl RunHeader<'_> {
    fn header(
        &self,
        event_type: EventType,
        entity_id: &str,
        revision: i64,
        content_hash: &[u8; 32],
        changed_fields: Vec<String>,
        effective: impl Into<Option<EffectiveDate>>,
    ) -> EventHeader {
        let effective: Option<EffectiveDate> = effective.into();
        let event_id = derive_event_id(EventIdInput {
            source: self.source,
            connection_id: self.connection_id,
            employer_key: self.employer_key,
            event_type,
            entity_id,
            revision,
            content_hash,
        });
        EventHeader {
            event_id,
            event_type,
            observed_at: self.observed_at,
            effective_date: effective.map(EffectiveDate::date),
            source: self.source,
            connection_id: self.connection_id.to_owned(),
            employer_key: self.employer_key.to_owned(),
            entity_id: entity_id.to_owned(),
            revision,
            run_id: self.run_id.to_owned(),
            changed_fields,
            effective_date_is_observation: effective.map(EffectiveDate::is_observation),
        }
    }
}

fn digest<T: Serialize>(entity: &T) -> Result<ContentDigest, SyncError> {
    ContentDigest::of(entity).map_err(SyncError::Digest)
}

fn choose_mode<S: Source>(
    source: &S,
    watermark: Option<&Watermark>,
    options: &SyncOptions,
    now: DateTime<Utc>,
) -> FetchMode {
    let position = watermark.and_then(|watermark| watermark.position.clone());
    let full_is_due = watermark
        .and_then(|watermark| watermark.last_full_sync_at)
        .is_none_or(|last| {
            let interval = chrono::Duration::from_std(options.full_sync_interval)
                .unwrap_or(chrono::Duration::MAX);
            now.signed_duration_since(last) >= interval
        });
    match (options.kind, position) {
        (Some(SyncKind::Full), _) | (_, None) => FetchMode::Full,
        _ if !source.supports_delta() => FetchMode::Full,
        (Some(SyncKind::Delta), Some(watermark)) => FetchMode::Delta { watermark },
        (None, Some(_)) if full_is_due => FetchMode::Full,
        (None, Some(watermark)) => FetchMode::Delta { watermark },
    }
}

/// Runs one sync of one employer through `source`. See the module docs for the order of
/// steps and what a crash at any point means.
pub async fn sync_employer<S: Source>(
    context: &SyncContext,
    source: &S,
    registration: &EmployerRegistration,
    options: &SyncOptions,
) -> Result<SyncOutcome, SyncError> {
    let started_at = Utc::now().trunc_subsecs(3);
    let run_id = Uuid::new_v4().to_string();
    let reference_date = options
        .reference_date
        .unwrap_or_else(|| amsterdam_date(started_at));
    let employer_key = registration.employer_key.as_str();
    let watermark = Watermark::load(&context.topology.watermarks, employer_key).await?;
    let mode = choose_mode(source, watermark.as_ref(), options, started_at);
    let mut snapshot = Snapshot::load(&context.topology.snapshots, employer_key).await?;

    let fetch = source
        .fetch(FetchRequest {
            employer: registration,
            mode: mode.clone(),
            reference_date,
            snapshot: &snapshot,
        })
        .await?;
    let kind = fetch.kind.unwrap_or(match mode {
        FetchMode::Full => SyncKind::Full,
        FetchMode::Delta { .. } => SyncKind::Delta,
    });
    if fetch.is_unchanged() {
        metrics::counter!("koppel_extract_syncs_total", "source" => source.system().as_token(), "result" => "unchanged").increment(1);
        tracing::debug!(
            employer = employer_key,
            "Source reports no change since the watermark."
        );
        return Ok(SyncOutcome {
            run_id,
            kind,
            result: SyncResult::Completed,
            unchanged: true,
            counts: SyncCounts::default(),
            published: Vec::new(),
            held_back: Vec::new(),
            record_errors: Vec::new(),
            publish_report: PublishReport::default(),
        });
    }

    let header = RunHeader {
        source: source.system(),
        connection_id: source.connection_id(),
        employer_key,
        run_id: &run_id,
        observed_at: started_at,
    };
    let planned = diff(&header, &snapshot, &fetch, reference_date)?;
    let previous_position = watermark
        .as_ref()
        .and_then(|watermark| watermark.position.clone());
    let SyncPlan {
        publish: planned,
        held_back,
        result,
        emit_marker,
        affected_employees,
        reported_watermark,
        next_position,
    } = plan_sync(
        planned,
        &SyncRules {
            known_employees: snapshot.employees.len(),
            minimum_employees: context.settings.removal_threshold_minimum_employees,
            threshold_percent: registration.removal_threshold_percent,
            requested_kind: options.kind,
            kind,
            supports_delta: source.supports_delta(),
            record_errors: fetch.record_errors.len(),
        },
        previous_position,
        fetch.next_watermark.clone(),
    );
    let held_back_now = result == SyncResult::HeldBack;
    if held_back_now {
        metrics::counter!("koppel_extract_held_back_total", "source" => source.system().as_token())
            .increment(1);
        tracing::warn!(
            employer = employer_key,
            affected_employees,
            known_employees = snapshot.employees.len(),
            threshold_percent = registration.removal_threshold_percent,
            held_back_events = held_back.len(),
            "Sync held back: it would end or remove more employees than the safety threshold allows. Check the source; raise removal_threshold_percent to let it through."
        );
    }

    for error in &fetch.record_errors {
        // Never the record's content: the reason names the field and the rule, no values.
        tracing::warn!(employer = employer_key, entity_type = %error.entity_type, entity_id = %error.entity_id, reason = %error.reason, "Source record rejected; the rest of the employer is published.");
    }
    if !fetch.record_errors.is_empty() {
        metrics::counter!("koppel_extract_record_errors_total", "source" => source.system().as_token())
            .increment(fetch.record_errors.len() as u64);
    }

    let counts = SyncCounts {
        employees_seen: count(
            fetch
                .present_employee_ids
                .as_ref()
                .map_or(fetch.employees.len(), HashSet::len),
        ),
        employments_seen: count(
            fetch
                .present_employment_ids
                .as_ref()
                .map_or(fetch.employments.len(), HashSet::len),
        ),
        events_published: count(planned.len()),
        records_failed: count(fetch.record_errors.len()),
        removals_held_back: count(held_back.len()),
    };
    let mut events: Vec<Event> = planned.iter().map(|plan| plan.event.clone()).collect();
    if emit_marker {
        events.push(sync_completed(
            &header,
            snapshot.sync_revision + 1,
            kind,
            result,
            started_at,
            counts,
            reported_watermark,
            fetch.record_errors.clone(),
        )?);
    }

    let prepared = events
        .iter()
        .map(|event| PreparedEvent::encode(&context.topology.names, event))
        .collect::<Result<Vec<_>, _>>()?;
    let publish_report = context.publisher.publish_all(&prepared).await?;

    if options.fail_point == Some(FailPoint::AfterPublish) {
        return Err(SyncError::InjectedFailure(FailPoint::AfterPublish));
    }

    // Every event is acknowledged: now, and only now, the snapshot may move.
    apply_planned(&mut snapshot, &planned);
    update_layouts(&mut snapshot, &fetch)?;
    // A held-back run may be a source that lost its lists: it forgets nothing.
    if !held_back_now {
        forget_ended_employments_gone_from_the_source(&mut snapshot, &fetch);
    }
    if emit_marker {
        snapshot.sync_revision += 1;
    }
    snapshot.save(&context.topology.snapshots).await?;

    // And only after the snapshot, the watermark. A held-back run keeps the old position, so
    // the next delta sees the held-back changes again.
    let finished_at = Utc::now();
    kv::update_json::<Watermark, _>(&context.topology.watermarks, employer_key, |current| {
        let mut next = current.cloned().unwrap_or_default();
        if let Some(position) = &next_position {
            next.position = Some(position.clone());
        }
        if kind == SyncKind::Full && !held_back_now {
            next.last_full_sync_at = Some(finished_at);
        }
        next.last_sync_at = Some(finished_at);
        Some(next)
    })
    .await?;

    let result_label = match result {
        SyncResult::HeldBack => "held_back",
        SyncResult::Completed | SyncResult::Unknown => "completed",
    };
    metrics::counter!("koppel_extract_syncs_total", "source" => source.system().as_token(), "result" => result_label).increment(1);
    metrics::counter!("koppel_extract_events_total", "source" => source.system().as_token())
        .increment(events.len() as u64);
    tracing::info!(
        employer = employer_key,
        kind = ?kind,
        result = result_label,
        events = events.len(),
        stored = publish_report.stored,
        duplicates = publish_report.duplicates,
        record_errors = fetch.record_errors.len(),
        "Sync finished."
    );
    Ok(SyncOutcome {
        run_id,
        kind,
        result,
        unchanged: false,
        counts,
        published: events.iter().map(summary).collect(),
        held_back: held_back.iter().map(|plan| summary(&plan.event)).collect(),
        record_errors: fetch.record_errors,
        publish_report,
    })
}

/// What the rules of one run take into account, besides the planned events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SyncRules {
    /// Employees in the snapshot before this run.
    known_employees: usize,
    /// `removal_threshold_minimum_employees`: the threshold only triggers above this many.
    minimum_employees: u32,
    /// The employer's `removal_threshold_percent`.
    threshold_percent: u8,
    /// The kind the caller asked for (`None`: the engine chose).
    requested_kind: Option<SyncKind>,
    /// The kind this run is.
    kind: SyncKind,
    /// The source has a change feed (its periodic full sync is a reconciliation).
    supports_delta: bool,
    /// Records the source rejected this run.
    record_errors: usize,
}

/// What a run publishes, holds back and reports: the safety threshold and the marker rule,
/// decided without IO.
#[derive(Debug)]
struct SyncPlan {
    /// The events to publish, in order (without the marker).
    publish: Vec<Planned>,
    /// Destructive events the threshold held back.
    held_back: Vec<Planned>,
    result: SyncResult,
    /// Whether a `SyncCompleted` marker closes the run.
    emit_marker: bool,
    /// Employees that destructive events would end or remove.
    affected_employees: usize,
    /// The watermark the marker reports: a held-back run reports the old position.
    reported_watermark: Option<String>,
    /// The position to store after the snapshot; `None` keeps the stored one (a held-back
    /// run, so the next delta sees the held-back changes again).
    next_position: Option<String>,
}

/// Decides what one run publishes. The safety threshold: when destructive events (ends,
/// removals) would touch more than `minimum_employees` employees and more than
/// `threshold_percent` of the employees known before the run, they are held back and the run
/// is `HELD_BACK`; an employer with no known employees is never held back (a first sync
/// removes nothing). The marker closes every run that published, held back or rejected
/// something, every full sync asked for explicitly, and the periodic full sync of a source with
/// a change feed (its reconciliation). A source without a change feed diffs a full snapshot on
/// every poll; an idle poll of it emits nothing, like an idle delta.
fn plan_sync(
    planned: Vec<Planned>,
    rules: &SyncRules,
    previous_position: Option<String>,
    fetched_position: Option<String>,
) -> SyncPlan {
    let affected: HashSet<&str> = planned
        .iter()
        .filter(|plan| plan.destructive)
        .filter_map(|plan| plan.event.employee_id())
        .collect();
    let affected_employees = affected.len();
    let minimum = usize::try_from(rules.minimum_employees).unwrap_or(usize::MAX);
    let held_back_now = rules.known_employees > 0
        && affected_employees > minimum
        && affected_employees.saturating_mul(100)
            > usize::from(rules.threshold_percent).saturating_mul(rules.known_employees);
    let (publish, held_back): (Vec<Planned>, Vec<Planned>) = if held_back_now {
        planned.into_iter().partition(|plan| !plan.destructive)
    } else {
        (planned, Vec::new())
    };
    let emit_marker = rules.requested_kind == Some(SyncKind::Full)
        || (rules.kind == SyncKind::Full && rules.supports_delta)
        || !publish.is_empty()
        || held_back_now
        || rules.record_errors > 0;
    let (result, reported_watermark, next_position) = if held_back_now {
        (SyncResult::HeldBack, previous_position, None)
    } else {
        (
            SyncResult::Completed,
            fetched_position.clone().or(previous_position),
            fetched_position,
        )
    };
    SyncPlan {
        publish,
        held_back,
        result,
        emit_marker,
        affected_employees,
        reported_watermark,
        next_position,
    }
}

fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn summary(event: &Event) -> EventSummary {
    let header = event.header();
    EventSummary {
        event_type: event.event_type(),
        event_id: header.event_id,
        entity_id: header.entity_id.clone(),
        employee_id: event.employee_id().map(str::to_owned),
        changed_fields: header.changed_fields.clone(),
        effective_date: header.effective_date,
    }
}

/// Moves the snapshot by what each acknowledged event planned.
fn apply_planned(snapshot: &mut Snapshot, planned: &[Planned]) {
    for plan in planned {
        match &plan.apply {
            Apply::Employer(state) => snapshot.employer = Some(state.clone()),
            Apply::Employee(id, state) => {
                snapshot.employees.insert(id.clone(), state.clone());
            }
            Apply::Employment(id, state) => {
                snapshot.employments.insert(id.clone(), state.clone());
            }
            Apply::RemoveEmployee(id) => {
                snapshot.employees.remove(id);
            }
            Apply::RemoveEmployment(id) => {
                snapshot.employments.remove(id);
            }
        }
    }
}

/// Records the field layouts of this build's digests, once any entity of a kind was digested.
fn update_layouts(snapshot: &mut Snapshot, fetch: &SourceFetch) -> Result<(), SyncError> {
    if let Some(employer) = &fetch.employer {
        snapshot.employer_fields = digest(employer)?.field_names;
    }
    if let Some(employee) = fetch.employees.first() {
        snapshot.employee_fields = digest(employee)?.field_names;
    }
    if let Some(employment) = fetch.employments.first() {
        snapshot.employment_fields = digest(employment)?.field_names;
    }
    Ok(())
}

/// An employment published as ended that the source no longer lists (a user filter hiding
/// ex-employees, say) is forgotten without an event: `diff` plans no second, empty
/// EmploymentEnded for it.
pub(crate) fn forget_ended_employments_gone_from_the_source(
    snapshot: &mut Snapshot,
    fetch: &SourceFetch,
) {
    if let Some(present) = &fetch.present_employment_ids {
        snapshot
            .employments
            .retain(|id, state| !state.ended || present.contains(id));
    }
}

#[allow(clippy::too_many_arguments)]
fn sync_completed(
    header: &RunHeader<'_>,
    revision: i64,
    kind: SyncKind,
    result: SyncResult,
    started_at: DateTime<Utc>,
    counts: SyncCounts,
    watermark: Option<String>,
    record_errors: Vec<RecordError>,
) -> Result<Event, SyncError> {
    // The id covers what the run found, not when it ran: a re-run after a crash that finds
    // the same derives the same id.
    #[derive(Serialize)]
    struct Identity<'a> {
        kind: SyncKind,
        result: SyncResult,
        counts: SyncCounts,
        watermark: &'a Option<String>,
        record_errors: &'a [RecordError],
    }
    let identity = digest(&Identity {
        kind,
        result,
        counts,
        watermark: &watermark,
        record_errors: &record_errors,
    })?;
    Ok(Event::SyncCompleted(SyncCompleted {
        header: header.header(
            EventType::SyncCompleted,
            header.employer_key,
            revision,
            &identity.content_hash,
            Vec::new(),
            None,
        ),
        kind,
        result,
        started_at,
        counts,
        watermark,
        record_errors,
    }))
}

/// An employee known only by id: what a removal event carries, because the source no longer
/// has the record and the snapshot keeps digests, not content.
fn removed_employee(employee_id: &str) -> Employee {
    Employee {
        employee_id: employee_id.to_owned(),
        employee_number: None,
        name: PersonName {
            initials: None,
            first_name: None,
            prefix: None,
            last_name: String::new(),
            partner_prefix: None,
            partner_last_name: None,
            name_usage: NameUsage::Own,
            formatted: String::new(),
        },
        date_of_birth: None,
        gender: Gender::Unknown,
        bsn: None,
        email: None,
        work_email: None,
        phone: None,
        address: None,
        manager_employee_id: None,
    }
}

/// End reason of an employment that disappeared from the source without an end date.
pub const REMOVED_FROM_SOURCE: &str = "removed from source";

fn removed_employment(employment_id: &str, state: &EntityState) -> Employment {
    Employment {
        employment_id: employment_id.to_owned(),
        employee_id: state.employee_id.clone().unwrap_or_default(),
        income_relationship_number: None,
        start_date: state.start_date.unwrap_or_default(),
        end_date: None,
        end_reason: Some(REMOVED_FROM_SOURCE.to_owned()),
        job_title: None,
        department: None,
        cost_center: None,
        location: None,
        employment_type: None,
        contract_type: None,
        hours_per_week: None,
        fulltime_hours_per_week: None,
        parttime_factor: None,
        salary: None,
        pensionable_salary: None,
        pension_scheme: None,
        placement_valid_from: None,
        hours_valid_from: None,
        salary_valid_from: None,
    }
}

/// Order within a run: the employer first, then per employee its own events before its
/// employments' (a recipient learns of a person before their contract), removals last, and
/// the SyncCompleted marker after everything.
fn order_key(plan: &Planned) -> (u8, String, u8, String) {
    let event = &plan.event;
    let group = match event.event_type() {
        EventType::EmployerUpserted => 0,
        EventType::SyncCompleted | EventType::Unknown => 2,
        _ => 1,
    };
    let rank = match event.event_type() {
        EventType::EmployerUpserted => 0,
        EventType::EmployeeCreated => 1,
        EventType::EmployeeUpdated => 2,
        EventType::EmploymentStarted => 3,
        EventType::EmploymentChanged => 4,
        EventType::EmploymentEnded => 5,
        EventType::EmployeeRemoved => 6,
        EventType::SyncCompleted | EventType::Unknown => 7,
    };
    (
        group,
        event.employee_id().unwrap_or_default().to_owned(),
        rank,
        event.header().entity_id.clone(),
    )
}

fn state_of(digest: &ContentDigest, revision: i64) -> EntityState {
    EntityState {
        digest: digest.short(),
        revision,
        field_digests: digest.field_digests.clone(),
        employee_id: None,
        start_date: None,
        ended: false,
        manager_employee_id: None,
    }
}

/// Compares what the source returned with the snapshot and plans one event per difference.
fn diff(
    header: &RunHeader<'_>,
    snapshot: &Snapshot,
    fetch: &SourceFetch,
    reference_date: NaiveDate,
) -> Result<Vec<Planned>, SyncError> {
    let mut planned = Vec::new();

    if let Some(employer) = &fetch.employer {
        let content = digest(employer)?;
        let previous = snapshot.employer.as_ref();
        if previous.is_none_or(|state| state.digest != content.short()) {
            let revision = previous.map_or(1, |state| state.revision + 1);
            let changed = previous.map_or_else(Vec::new, |state| {
                changed_fields(&snapshot.employer_fields, &state.field_digests, &content)
            });
            planned.push(Planned {
                event: Event::EmployerUpserted(EmployerUpserted {
                    header: header.header(
                        EventType::EmployerUpserted,
                        header.employer_key,
                        revision,
                        &content.content_hash,
                        changed,
                        EffectiveDate::Observed(reference_date),
                    ),
                    employer: employer.clone(),
                }),
                destructive: false,
                apply: Apply::Employer(state_of(&content, revision)),
            });
        }
    }

    let employees_by_id: HashMap<&str, &Employee> = fetch
        .employees
        .iter()
        .map(|employee| (employee.employee_id.as_str(), employee))
        .collect();

    for employee in &fetch.employees {
        let content = digest(employee)?;
        let previous = snapshot.employees.get(&employee.employee_id);
        let (event_type, revision, changed) = match previous {
            None => (EventType::EmployeeCreated, 1, Vec::new()),
            Some(state) if state.digest == content.short() => continue,
            Some(state) => (
                EventType::EmployeeUpdated,
                state.revision + 1,
                changed_fields(&snapshot.employee_fields, &state.field_digests, &content),
            ),
        };
        let event_header = header.header(
            event_type,
            &employee.employee_id,
            revision,
            &content.content_hash,
            changed,
            EffectiveDate::Observed(reference_date),
        );
        let payload = EmployeeEvent {
            header: event_header,
            employee: employee.clone(),
        };
        let mut state = state_of(&content, revision);
        state.manager_employee_id = employee.manager_employee_id.clone();
        planned.push(Planned {
            event: match event_type {
                EventType::EmployeeCreated => Event::EmployeeCreated(payload),
                _ => Event::EmployeeUpdated(payload),
            },
            destructive: false,
            apply: Apply::Employee(employee.employee_id.clone(), state),
        });
    }

    for employment in &fetch.employments {
        let content = digest(employment)?;
        let previous = snapshot.employments.get(&employment.employment_id);
        let (event_type, revision, changed, effective_date) = match previous {
            None => (
                EventType::EmploymentStarted,
                1,
                Vec::new(),
                EffectiveDate::Source(employment.start_date),
            ),
            Some(state) if state.digest == content.short() => continue,
            Some(state) => {
                let changed =
                    changed_fields(&snapshot.employment_fields, &state.field_digests, &content);
                if let (false, Some(end_date)) = (state.ended, employment.end_date) {
                    (
                        EventType::EmploymentEnded,
                        state.revision + 1,
                        changed,
                        EffectiveDate::Source(end_date),
                    )
                } else {
                    let effective =
                        employment_change_effective_date(employment, &changed, reference_date);
                    (
                        EventType::EmploymentChanged,
                        state.revision + 1,
                        changed,
                        effective,
                    )
                }
            }
        };
        let employee = employees_by_id
            .get(employment.employee_id.as_str())
            .map_or_else(
                || removed_employee(&employment.employee_id),
                |e| (*e).clone(),
            );
        let payload = EmploymentEvent {
            header: header.header(
                event_type,
                &employment.employment_id,
                revision,
                &content.content_hash,
                changed,
                effective_date,
            ),
            employment: employment.clone(),
            employee,
        };
        let mut state = state_of(&content, revision);
        state.employee_id = Some(employment.employee_id.clone());
        state.start_date = Some(employment.start_date);
        state.ended = employment.end_date.is_some();
        planned.push(Planned {
            destructive: event_type == EventType::EmploymentEnded,
            event: match event_type {
                EventType::EmploymentStarted => Event::EmploymentStarted(payload),
                EventType::EmploymentEnded => Event::EmploymentEnded(payload),
                _ => Event::EmploymentChanged(payload),
            },
            apply: Apply::Employment(employment.employment_id.clone(), state),
        });
    }

    // Removals: known entities the source no longer lists. Sorted, so the order (and thus a
    // re-run's batch) is deterministic.
    if let Some(present) = &fetch.present_employment_ids {
        let mut gone: Vec<(&String, &EntityState)> = snapshot
            .employments
            .iter()
            .filter(|(id, _)| !present.contains(*id))
            .collect();
        gone.sort_by(|a, b| a.0.cmp(b.0));
        for (id, state) in gone {
            // Already published as ended: dropping off the list (a user filter hiding
            // ex-employees, say) ends nothing a second time; the run forgets it after publishing.
            if state.ended {
                continue;
            }
            let employment = removed_employment(id, state);
            let content = digest(&employment)?;
            let revision = state.revision + 1;
            let employee = employees_by_id
                .get(employment.employee_id.as_str())
                .map_or_else(
                    || removed_employee(&employment.employee_id),
                    |e| (*e).clone(),
                );
            planned.push(Planned {
                event: Event::EmploymentEnded(EmploymentEvent {
                    header: header.header(
                        EventType::EmploymentEnded,
                        id,
                        revision,
                        &content.content_hash,
                        vec!["removed".to_owned()],
                        EffectiveDate::Observed(reference_date),
                    ),
                    employment,
                    employee,
                }),
                destructive: true,
                apply: Apply::RemoveEmployment(id.clone()),
            });
        }
    }
    if let Some(present) = &fetch.present_employee_ids {
        let mut gone: Vec<(&String, &EntityState)> = snapshot
            .employees
            .iter()
            .filter(|(id, _)| !present.contains(*id))
            .collect();
        gone.sort_by(|a, b| a.0.cmp(b.0));
        for (id, state) in gone {
            let employee = removed_employee(id);
            let content = digest(&employee)?;
            let revision = state.revision + 1;
            planned.push(Planned {
                event: Event::EmployeeRemoved(EmployeeEvent {
                    header: header.header(
                        EventType::EmployeeRemoved,
                        id,
                        revision,
                        &content.content_hash,
                        vec!["removed".to_owned()],
                        EffectiveDate::Observed(reference_date),
                    ),
                    employee,
                }),
                destructive: true,
                apply: Apply::RemoveEmployee(id.clone()),
            });
        }
    }

    planned.sort_by_cached_key(order_key);
    Ok(planned)
}

/// Per event type, how many events a list of summaries holds; handy in logs and tests.
pub fn counts_by_type(events: &[EventSummary]) -> BTreeMap<EventType, usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts.entry(event.event_type).or_insert(0) += 1;
    }
    counts
}

/// The events a first sync of `fetch` would publish, as [`sync_employer`] plans them (without
/// the `SyncCompleted` marker): the fuzz targets' path from mapped entities to events.
pub(crate) fn first_sync_events(
    fetch: &SourceFetch,
    source: SourceSystem,
    employer_key: &str,
    reference_date: NaiveDate,
) -> Result<Vec<Event>, SyncError> {
    let header = RunHeader {
        source,
        connection_id: "fuzz-connection",
        employer_key,
        run_id: "fuzz-run",
        observed_at: DateTime::<Utc>::UNIX_EPOCH,
    };
    let planned = diff(
        &header,
        &Snapshot::empty(employer_key),
        fetch,
        reference_date,
    )?;
    Ok(planned.into_iter().map(|plan| plan.event).collect())
}

#[cfg(test)]
mod diff_properties;
#[cfg(test)]
mod plan_sync_tests;
