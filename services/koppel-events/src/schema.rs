//! The schema catalogue: every `.avsc` in `schemas/`, compiled in, resolved into one
//! self-contained writer schema per event, with its CRC-64-AVRO fingerprint (the
//! specification's, see [`crate::canonical`], and the legacy one older payloads carry).
//!
//! Released versions (`schemas/released/`) are compiled in too, so data written by an older
//! koppel always decodes; writer schemas newer than this build come from the schemas KV bucket
//! through [`crate::codec::WriterSchemas`].

use std::fmt;
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;

use crate::canonical::{CanonicalFormError, crc64_avro, parsing_canonical_form};
use crate::event::EventType;

/// Every schema file, by path below `schemas/`. Named types first, then events.
const SCHEMA_SOURCES: &[(&str, &str)] = &[
    (
        "types/Address.avsc",
        include_str!("../../../schemas/types/Address.avsc"),
    ),
    (
        "types/Employee.avsc",
        include_str!("../../../schemas/types/Employee.avsc"),
    ),
    (
        "types/Employer.avsc",
        include_str!("../../../schemas/types/Employer.avsc"),
    ),
    (
        "types/Employment.avsc",
        include_str!("../../../schemas/types/Employment.avsc"),
    ),
    (
        "types/EventHeader.avsc",
        include_str!("../../../schemas/types/EventHeader.avsc"),
    ),
    (
        "types/EventType.avsc",
        include_str!("../../../schemas/types/EventType.avsc"),
    ),
    (
        "types/Gender.avsc",
        include_str!("../../../schemas/types/Gender.avsc"),
    ),
    (
        "types/Money.avsc",
        include_str!("../../../schemas/types/Money.avsc"),
    ),
    (
        "types/NameUsage.avsc",
        include_str!("../../../schemas/types/NameUsage.avsc"),
    ),
    (
        "types/OrganisationUnit.avsc",
        include_str!("../../../schemas/types/OrganisationUnit.avsc"),
    ),
    (
        "types/PersonName.avsc",
        include_str!("../../../schemas/types/PersonName.avsc"),
    ),
    (
        "types/RecordError.avsc",
        include_str!("../../../schemas/types/RecordError.avsc"),
    ),
    (
        "types/Salary.avsc",
        include_str!("../../../schemas/types/Salary.avsc"),
    ),
    (
        "types/SalaryPeriod.avsc",
        include_str!("../../../schemas/types/SalaryPeriod.avsc"),
    ),
    (
        "types/SourceSystem.avsc",
        include_str!("../../../schemas/types/SourceSystem.avsc"),
    ),
    (
        "types/SyncCounts.avsc",
        include_str!("../../../schemas/types/SyncCounts.avsc"),
    ),
    (
        "types/SyncKind.avsc",
        include_str!("../../../schemas/types/SyncKind.avsc"),
    ),
    (
        "types/SyncResult.avsc",
        include_str!("../../../schemas/types/SyncResult.avsc"),
    ),
    (
        "events/EmployeeCreated.avsc",
        include_str!("../../../schemas/events/EmployeeCreated.avsc"),
    ),
    (
        "events/EmployeeRemoved.avsc",
        include_str!("../../../schemas/events/EmployeeRemoved.avsc"),
    ),
    (
        "events/EmployeeUpdated.avsc",
        include_str!("../../../schemas/events/EmployeeUpdated.avsc"),
    ),
    (
        "events/EmployerUpserted.avsc",
        include_str!("../../../schemas/events/EmployerUpserted.avsc"),
    ),
    (
        "events/EmploymentChanged.avsc",
        include_str!("../../../schemas/events/EmploymentChanged.avsc"),
    ),
    (
        "events/EmploymentEnded.avsc",
        include_str!("../../../schemas/events/EmploymentEnded.avsc"),
    ),
    (
        "events/EmploymentStarted.avsc",
        include_str!("../../../schemas/events/EmploymentStarted.avsc"),
    ),
    (
        "events/SyncCompleted.avsc",
        include_str!("../../../schemas/events/SyncCompleted.avsc"),
    ),
];

/// Golden copies of released writer schemas: (release, event schema name, self-contained JSON).
/// A release adds lines here; none is ever removed, or data written by it stops decoding.
const RELEASED_SCHEMAS: &[(&str, &str, &str)] = &[
    (
        "v1",
        "EmployeeCreated",
        include_str!("../../../schemas/released/v1/EmployeeCreated.avsc"),
    ),
    (
        "v1",
        "EmployeeRemoved",
        include_str!("../../../schemas/released/v1/EmployeeRemoved.avsc"),
    ),
    (
        "v1",
        "EmployeeUpdated",
        include_str!("../../../schemas/released/v1/EmployeeUpdated.avsc"),
    ),
    (
        "v1",
        "EmployerUpserted",
        include_str!("../../../schemas/released/v1/EmployerUpserted.avsc"),
    ),
    (
        "v1",
        "EmploymentChanged",
        include_str!("../../../schemas/released/v1/EmploymentChanged.avsc"),
    ),
    (
        "v1",
        "EmploymentEnded",
        include_str!("../../../schemas/released/v1/EmploymentEnded.avsc"),
    ),
    (
        "v1",
        "EmploymentStarted",
        include_str!("../../../schemas/released/v1/EmploymentStarted.avsc"),
    ),
    (
        "v1",
        "SyncCompleted",
        include_str!("../../../schemas/released/v1/SyncCompleted.avsc"),
    ),
];

/// The CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form, as used by Avro
/// single-object encoding. Written little-endian after the `C3 01` marker.
///
/// koppel writes the fingerprint the Avro specification defines ([`Fingerprint::of_json`]),
/// which the Java reference implementation, fastavro and every other standard reader compute
/// too. Releases up to v1 wrote apache-avro 0.22's fingerprint instead
/// ([`Fingerprint::legacy_of`]), whose canonical form keeps logical types' traces; payloads
/// carrying it stay in streams, so every writer schema is known under both, in the catalogue
/// and in the schemas bucket.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// The specification's fingerprint of a schema given as JSON: CRC-64-AVRO of its Parsing
    /// Canonical Form.
    pub fn of_json(schema_json: &str) -> Result<Self, CanonicalFormError> {
        let canonical = parsing_canonical_form(schema_json)?;
        Ok(Fingerprint(crc64_avro(canonical.as_bytes())))
    }

    /// The fingerprint apache-avro 0.22 computes (`Schema::fingerprint::<Rabin>`), which koppel
    /// wrote into payloads up to release v1. Only for finding the writer schema of those
    /// payloads: it is not the specification's fingerprint of any schema with a logical type.
    /// The golden payloads of `testdata/payloads/v1` fail their test if an apache-avro upgrade
    /// changes it; pin the v1 values then.
    pub fn legacy_of(schema: &Schema) -> Self {
        let bytes = schema.fingerprint::<Rabin>().bytes;
        let mut buffer = [0u8; 8];
        for (slot, byte) in buffer.iter_mut().zip(bytes) {
            *slot = byte;
        }
        Fingerprint(u64::from_le_bytes(buffer))
    }

    pub fn to_le_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }

    /// Sixteen lower-case hex digits of the little-endian bytes: the key in the schemas KV
    /// bucket and the `Koppel-Schema-Fingerprint` header value, as `avro-tools` prints it.
    pub fn to_hex(self) -> String {
        self.to_le_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 16 {
            return None;
        }
        let mut bytes = [0u8; 8];
        for (index, slot) in bytes.iter_mut().enumerate() {
            *slot = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(Fingerprint(u64::from_le_bytes(bytes)))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One self-contained writer schema of one event.
#[derive(Debug, Clone)]
pub struct EventSchema {
    pub event_type: EventType,
    pub schema: Schema,
    /// The full schema as JSON, named types inlined, docs and logical types kept: what the
    /// schemas bucket stores and what an Avro container file embeds.
    pub json: String,
    /// The specification's fingerprint: what this build writes and registers.
    pub fingerprint: Fingerprint,
    /// apache-avro 0.22's fingerprint of the same schema, which payloads of release v1 and
    /// earlier carry. Equal to `fingerprint` for a schema without logical types.
    pub legacy_fingerprint: Fingerprint,
}

impl EventSchema {
    /// Parses a self-contained writer schema, e.g. one read back from the schemas bucket.
    pub fn parse(json: &str) -> Result<Self, SchemaError> {
        let schema = Schema::parse_str(json).map_err(|error| SchemaError::Parse {
            path: "writer schema".to_owned(),
            reason: error.to_string(),
        })?;
        let name = schema
            .name()
            .map(|name| name.name().to_owned())
            .unwrap_or_default();
        let event_type = EventType::from_schema_name(&name).unwrap_or(EventType::Unknown);
        let fingerprint = Fingerprint::of_json(json).map_err(|error| SchemaError::Parse {
            path: "writer schema".to_owned(),
            reason: error.to_string(),
        })?;
        Ok(EventSchema {
            event_type,
            legacy_fingerprint: Fingerprint::legacy_of(&schema),
            schema,
            json: json.to_owned(),
            fingerprint,
        })
    }

    /// The keys a payload of this schema may carry: the specification's fingerprint, and the
    /// legacy one when it differs.
    pub fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        std::iter::once(self.fingerprint)
            .chain((self.legacy_fingerprint != self.fingerprint).then_some(self.legacy_fingerprint))
    }

    /// Whether a payload carrying `fingerprint` was written with this schema.
    pub fn has_fingerprint(&self, fingerprint: Fingerprint) -> bool {
        self.fingerprint == fingerprint || self.legacy_fingerprint == fingerprint
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {path} does not parse: {reason}")]
    Parse { path: String, reason: String },
    #[error("no schema for event {0} in schemas/events")]
    MissingEvent(&'static str),
}

/// The compiled-in schemas: the current writer schema of every event, plus released ones.
#[derive(Debug)]
pub struct SchemaCatalog {
    current: Vec<EventSchema>,
    released: Vec<EventSchema>,
}

impl SchemaCatalog {
    /// The schema this build writes for `event_type`.
    pub fn current(&self, event_type: EventType) -> Option<&EventSchema> {
        self.current
            .iter()
            .find(|schema| schema.event_type == event_type)
    }

    /// Every schema this build writes, in catalogue order.
    pub fn current_schemas(&self) -> &[EventSchema] {
        &self.current
    }

    /// Every writer schema this build can decode without asking the registry.
    pub fn known_writer_schemas(&self) -> impl Iterator<Item = &EventSchema> {
        self.current.iter().chain(self.released.iter())
    }

    /// The writer schema of a payload carrying `fingerprint`, by the specification's or by the
    /// legacy fingerprint.
    pub fn by_fingerprint(&self, fingerprint: Fingerprint) -> Option<&EventSchema> {
        self.known_writer_schemas()
            .find(|schema| schema.has_fingerprint(fingerprint))
    }
}

/// The catalogue, built once. Fails only if a compiled-in schema is broken, which the tests in
/// this crate rule out for every build.
pub fn catalog() -> Result<&'static SchemaCatalog, SchemaError> {
    static CATALOG: OnceLock<Result<SchemaCatalog, SchemaError>> = OnceLock::new();
    CATALOG
        .get_or_init(build_catalog)
        .as_ref()
        .map_err(Clone::clone)
}

/// The raw `.avsc` sources, for tools that want to show or export them.
pub fn schema_sources() -> &'static [(&'static str, &'static str)] {
    SCHEMA_SOURCES
}

fn build_catalog() -> Result<SchemaCatalog, SchemaError> {
    let parsed =
        Schema::parse_list(SCHEMA_SOURCES.iter().map(|(_, source)| *source)).map_err(|error| {
            SchemaError::Parse {
                path: "schemas/".to_owned(),
                reason: error.to_string(),
            }
        })?;
    let mut current = Vec::with_capacity(EventType::ALL.len());
    for event_type in EventType::ALL {
        let name = event_type.schema_name();
        let mut schema = parsed
            .iter()
            .find(|schema| {
                schema
                    .name()
                    .is_some_and(|schema_name| schema_name.name() == name)
            })
            .cloned()
            .ok_or(SchemaError::MissingEvent(name))?;
        schema
            .denormalize(&parsed)
            .map_err(|error| SchemaError::Parse {
                path: format!("events/{name}.avsc"),
                reason: error.to_string(),
            })?;
        let json = serde_json::to_string(&schema).map_err(|error| SchemaError::Parse {
            path: format!("events/{name}.avsc"),
            reason: error.to_string(),
        })?;
        let fingerprint = Fingerprint::of_json(&json).map_err(|error| SchemaError::Parse {
            path: format!("events/{name}.avsc"),
            reason: error.to_string(),
        })?;
        current.push(EventSchema {
            event_type,
            legacy_fingerprint: Fingerprint::legacy_of(&schema),
            schema,
            json,
            fingerprint,
        });
    }
    let mut released = Vec::with_capacity(RELEASED_SCHEMAS.len());
    for (release, name, json) in RELEASED_SCHEMAS {
        let mut schema = EventSchema::parse(json).map_err(|error| match error {
            SchemaError::Parse { reason, .. } => SchemaError::Parse {
                path: format!("released/{release}/{name}.avsc"),
                reason,
            },
            other => other,
        })?;
        // A released schema identical to the current one adds nothing to look up.
        if current
            .iter()
            .any(|current| current.fingerprint == schema.fingerprint)
        {
            continue;
        }
        schema.json = (*json).to_owned();
        released.push(schema);
    }
    Ok(SchemaCatalog { current, released })
}

/// One self-contained schema for a file holding any event: the union of every event record, in
/// [`EventType::ALL`] order, each named type defined once. Avro container files carry one
/// schema, so exports use this one; branch `i` is `EventType::ALL[i]`.
pub fn event_union_schema() -> Result<Schema, SchemaError> {
    let union: Vec<String> = EventType::ALL
        .iter()
        .map(|event_type| format!("nl.koppel.events.{}", event_type.schema_name()))
        .collect();
    let union_json = serde_json::to_string(&union).map_err(|error| SchemaError::Parse {
        path: "event union".to_owned(),
        reason: error.to_string(),
    })?;
    let (mut schema, schemata) = Schema::parse_str_with_list(
        &union_json,
        SCHEMA_SOURCES.iter().map(|(_, source)| *source),
    )
    .map_err(|error| SchemaError::Parse {
        path: "event union".to_owned(),
        reason: error.to_string(),
    })?;
    schema
        .denormalize(&schemata)
        .map_err(|error| SchemaError::Parse {
            path: "event union".to_owned(),
            reason: error.to_string(),
        })?;
    Ok(schema)
}

#[cfg(test)]
pub(crate) fn released_schema_sources() -> &'static [(&'static str, &'static str, &'static str)] {
    RELEASED_SCHEMAS
}
