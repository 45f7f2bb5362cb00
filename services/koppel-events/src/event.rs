//! The event catalogue: one struct per event schema in `schemas/events/`, and the closed
//! [`Event`] enum over them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::model::{Employee, Employer, Employment, SourceSystem};

/// The kind of change an event describes. `Unknown` is what a reader sees for a symbol added
/// by a newer writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Unknown,
    EmployerUpserted,
    EmployeeCreated,
    EmployeeUpdated,
    EmployeeRemoved,
    EmploymentStarted,
    EmploymentChanged,
    EmploymentEnded,
    SyncCompleted,
}

impl EventType {
    /// Every type koppel writes, in catalogue order.
    pub const ALL: [EventType; 8] = [
        EventType::EmployerUpserted,
        EventType::EmployeeCreated,
        EventType::EmployeeUpdated,
        EventType::EmployeeRemoved,
        EventType::EmploymentStarted,
        EventType::EmploymentChanged,
        EventType::EmploymentEnded,
        EventType::SyncCompleted,
    ];

    /// The schema record name, which is also the value of the `Koppel-Event-Type` header.
    pub fn schema_name(self) -> &'static str {
        match self {
            EventType::Unknown => "Unknown",
            EventType::EmployerUpserted => "EmployerUpserted",
            EventType::EmployeeCreated => "EmployeeCreated",
            EventType::EmployeeUpdated => "EmployeeUpdated",
            EventType::EmployeeRemoved => "EmployeeRemoved",
            EventType::EmploymentStarted => "EmploymentStarted",
            EventType::EmploymentChanged => "EmploymentChanged",
            EventType::EmploymentEnded => "EmploymentEnded",
            EventType::SyncCompleted => "SyncCompleted",
        }
    }

    pub fn from_schema_name(name: &str) -> Option<Self> {
        EventType::ALL
            .into_iter()
            .find(|event_type| event_type.schema_name() == name)
    }

    /// The entity the event is about; the last token of its subject.
    pub fn entity(self) -> EntityType {
        match self {
            EventType::EmployerUpserted => EntityType::Employer,
            EventType::EmployeeCreated
            | EventType::EmployeeUpdated
            | EventType::EmployeeRemoved => EntityType::Employee,
            EventType::EmploymentStarted
            | EventType::EmploymentChanged
            | EventType::EmploymentEnded => EntityType::Employment,
            EventType::SyncCompleted | EventType::Unknown => EntityType::Sync,
        }
    }
}

/// The entity an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    Employer,
    Employee,
    Employment,
    Sync,
}

impl EntityType {
    pub fn as_token(self) -> &'static str {
        match self {
            EntityType::Employer => "employer",
            EntityType::Employee => "employee",
            EntityType::Employment => "employment",
            EntityType::Sync => "sync",
        }
    }
}

/// What every event carries about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventHeader {
    pub event_id: Uuid,
    pub event_type: EventType,
    /// Millisecond precision: the wire holds `timestamp-millis`.
    pub observed_at: DateTime<Utc>,
    pub effective_date: Option<NaiveDate>,
    pub source: SourceSystem,
    pub connection_id: String,
    pub employer_key: String,
    pub entity_id: String,
    pub revision: i64,
    pub run_id: String,
    pub changed_fields: Vec<String>,
    /// `Some(true)` when the source gives no date for the change and `effective_date` is the
    /// day koppel observed it; `Some(false)` when it is the source's own date; `None` in
    /// events written before the field existed.
    pub effective_date_is_observation: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmployerUpserted {
    pub header: EventHeader,
    pub employer: Employer,
}

/// Shared shape of the three employee events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmployeeEvent {
    pub header: EventHeader,
    pub employee: Employee,
}

/// Shared shape of the three employment events. The employee rides along so that a recipient
/// (an insurer enrolling a joiner needs the BSN and date of birth) never calls back into a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmploymentEvent {
    pub header: EventHeader,
    pub employment: Employment,
    pub employee: Employee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    Full,
    Delta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncResult {
    Unknown,
    Completed,
    HeldBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SyncCounts {
    pub employees_seen: i64,
    pub employments_seen: i64,
    pub events_published: i64,
    pub records_failed: i64,
    pub removals_held_back: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    pub entity_type: String,
    pub entity_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncCompleted {
    pub header: EventHeader,
    pub kind: SyncKind,
    pub result: SyncResult,
    pub started_at: DateTime<Utc>,
    pub counts: SyncCounts,
    pub watermark: Option<String>,
    pub record_errors: Vec<RecordError>,
}

/// Every event koppel writes. Closed: adding a variant is a schema change (see schemas/README.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    EmployerUpserted(EmployerUpserted),
    EmployeeCreated(EmployeeEvent),
    EmployeeUpdated(EmployeeEvent),
    EmployeeRemoved(EmployeeEvent),
    EmploymentStarted(EmploymentEvent),
    EmploymentChanged(EmploymentEvent),
    EmploymentEnded(EmploymentEvent),
    SyncCompleted(SyncCompleted),
}

impl Event {
    pub fn header(&self) -> &EventHeader {
        match self {
            Event::EmployerUpserted(event) => &event.header,
            Event::EmployeeCreated(event)
            | Event::EmployeeUpdated(event)
            | Event::EmployeeRemoved(event) => &event.header,
            Event::EmploymentStarted(event)
            | Event::EmploymentChanged(event)
            | Event::EmploymentEnded(event) => &event.header,
            Event::SyncCompleted(event) => &event.header,
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            Event::EmployerUpserted(_) => EventType::EmployerUpserted,
            Event::EmployeeCreated(_) => EventType::EmployeeCreated,
            Event::EmployeeUpdated(_) => EventType::EmployeeUpdated,
            Event::EmployeeRemoved(_) => EventType::EmployeeRemoved,
            Event::EmploymentStarted(_) => EventType::EmploymentStarted,
            Event::EmploymentChanged(_) => EventType::EmploymentChanged,
            Event::EmploymentEnded(_) => EventType::EmploymentEnded,
            Event::SyncCompleted(_) => EventType::SyncCompleted,
        }
    }

    /// The employee whose events must stay in order at a recipient, if the event is about one.
    /// Employer and sync events have none: they order per employer instead.
    pub fn employee_id(&self) -> Option<&str> {
        match self {
            Event::EmployeeCreated(event)
            | Event::EmployeeUpdated(event)
            | Event::EmployeeRemoved(event) => Some(&event.employee.employee_id),
            Event::EmploymentStarted(event)
            | Event::EmploymentChanged(event)
            | Event::EmploymentEnded(event) => Some(&event.employment.employee_id),
            Event::EmployerUpserted(_) | Event::SyncCompleted(_) => None,
        }
    }
}
