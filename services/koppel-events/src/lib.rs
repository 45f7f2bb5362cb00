//! koppel's wire contract: the Rust types of the Avro schemas in `schemas/`, the single-object
//! codec, deterministic event ids, and subject and header names. No IO.
//!
//! # Layout
//! - `model`: the canonical employer, employee and employment types every source maps into.
//! - `event`: the event catalogue, one struct per schema, and the closed `Event` enum.
//! - `schema`: the compiled-in schemas, resolved and fingerprinted.
//! - `canonical`: the specification's Parsing Canonical Form and CRC-64-AVRO fingerprint.
//! - `codec`: single-object encode and decode, with writer-schema lookup and resolution.
//! - `avro_value`: the explicit conversions between the model and Avro values.
//! - `event_id`: deterministic UUIDv5 event ids.
//! - `subject`: stream, subject, bucket and header names.
//! - `sample`: realistic example events for tests, benchmarks and documentation.

mod avro_value;
pub mod canonical;
pub mod codec;
pub mod event;
pub mod event_id;
pub mod model;
pub mod sample;
pub mod schema;
pub mod subject;

pub use codec::{DecodeError, EncodeError, WriterSchemas, decode, decode_with, encode};
pub use event::{
    EmployeeEvent, EmployerUpserted, EmploymentEvent, EntityType, Event, EventHeader, EventType,
    RecordError, SyncCompleted, SyncCounts, SyncKind, SyncResult,
};
pub use model::{
    Address, Bsn, Employee, Employer, Employment, Gender, Money, NameUsage, OrganisationUnit,
    PersonName, Salary, SalaryPeriod, SourceSystem,
};
pub use schema::{EventSchema, Fingerprint, SchemaCatalog, catalog};
pub use subject::Names;

#[cfg(test)]
mod tests;
