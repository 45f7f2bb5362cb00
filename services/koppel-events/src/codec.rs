//! Avro single-object encoding of events: `C3 01`, the 8-byte little-endian CRC-64-AVRO
//! fingerprint of the writer schema, then the binary datum.
//!
//! The fingerprint is the Avro specification's ([`Fingerprint::of_json`]), so standard readers
//! (Java's `BinaryMessageDecoder`, fastavro) find the writer schema by their own computation.
//! Decoding accepts the legacy apache-avro 0.22 fingerprint of release v1 payloads too.
//!
//! Decoding looks the writer schema up by fingerprint and, when it is not the schema this build
//! writes, resolves the datum against this build's reader schema. It never calls apache-avro's
//! `read_deser` with a reader schema set, which panics in 0.22.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::avro_value::{FromAvro, ToAvro};
use crate::event::{Event, EventType};
use crate::model::Employment;
use crate::schema::{EventSchema, Fingerprint, SchemaCatalog, SchemaError, catalog};

/// The two marker bytes that open every single-object encoded datum.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];
/// Marker plus fingerprint.
pub const SINGLE_OBJECT_HEADER_LENGTH: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("field {field} has more decimals than the schema's scale of {scale}")]
    DecimalScale { field: &'static str, scale: u32 },
    #[error("field {field} has more digits than the schema's precision of {precision}")]
    DecimalPrecision { field: &'static str, precision: u32 },
    #[error("the schema catalogue is broken: {0}")]
    Schema(#[from] SchemaError),
    #[error("the datum does not fit its schema: {0}")]
    Avro(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is {length} bytes, shorter than the 10-byte single-object header")]
    TooShort { length: usize },
    #[error("payload does not start with the Avro single-object marker C3 01")]
    NotSingleObject,
    #[error("writer schema {0} is not in the schema registry")]
    UnknownFingerprint(Fingerprint),
    #[error("writer schema {0} describes an event type this build does not know")]
    UnknownEventType(Fingerprint),
    #[error("the datum does not match writer schema {fingerprint}: {reason}")]
    Datum {
        fingerprint: Fingerprint,
        reason: String,
    },
    #[error("record {record} lacks field {field}")]
    MissingField {
        record: &'static str,
        field: &'static str,
    },
    #[error("field {field}: {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
    #[error("the schema catalogue is broken: {0}")]
    Schema(#[from] SchemaError),
}

/// Writers built once per event type: building one resolves the whole schema tree, which would
/// otherwise dominate the cost of encoding a small event.
fn writers() -> Result<&'static HashMap<EventType, GenericDatumWriter<'static>>, EncodeError> {
    static WRITERS: OnceLock<Result<HashMap<EventType, GenericDatumWriter<'static>>, EncodeError>> =
        OnceLock::new();
    WRITERS
        .get_or_init(|| {
            let catalog = catalog()?;
            let mut writers = HashMap::new();
            for schema in catalog.current_schemas() {
                let writer = GenericDatumWriter::builder(&schema.schema)
                    .build()
                    .map_err(|error| EncodeError::Avro(error.to_string()))?;
                writers.insert(schema.event_type, writer);
            }
            Ok(writers)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Readers of this build's own schemas, built once: the common case on decode, and building a
/// reader (a schema walk and a name map) would otherwise cost more than reading the datum.
fn current_readers()
-> Result<&'static HashMap<Fingerprint, GenericDatumReader<'static>>, DecodeError> {
    static READERS: OnceLock<
        Result<HashMap<Fingerprint, GenericDatumReader<'static>>, DecodeError>,
    > = OnceLock::new();
    READERS
        .get_or_init(|| {
            let catalog = catalog()?;
            let mut readers = HashMap::new();
            for schema in catalog.current_schemas() {
                let reader = GenericDatumReader::builder(&schema.schema)
                    .build()
                    .map_err(|error| DecodeError::Datum {
                        fingerprint: schema.fingerprint,
                        reason: error.to_string(),
                    })?;
                readers.insert(schema.fingerprint, reader);
            }
            Ok(readers)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether the contract can carry `employment`: every decimal within its schema's precision
/// and scale. A source checks each mapped employment, so a value beyond the contract is a
/// bad record of its own instead of an event that fails to encode and stops the whole run.
pub fn check_employment(employment: &Employment) -> Result<(), EncodeError> {
    employment.to_avro().map(|_| ())
}

/// Encodes an event with the schema this build writes for its type.
pub fn encode(event: &Event) -> Result<Vec<u8>, EncodeError> {
    let event_type = event.event_type();
    let schema = catalog()?
        .current(event_type)
        .ok_or(SchemaError::MissingEvent(event_type.schema_name()))?;
    let writer = writers()?
        .get(&event_type)
        .ok_or(SchemaError::MissingEvent(event_type.schema_name()))?;
    let value = match event {
        Event::EmployerUpserted(event) => event.to_avro()?,
        Event::EmployeeCreated(event)
        | Event::EmployeeUpdated(event)
        | Event::EmployeeRemoved(event) => event.to_avro()?,
        Event::EmploymentStarted(event)
        | Event::EmploymentChanged(event)
        | Event::EmploymentEnded(event) => event.to_avro()?,
        Event::SyncCompleted(event) => event.to_avro()?,
    };
    let mut buffer = Vec::with_capacity(512);
    buffer.extend_from_slice(&SINGLE_OBJECT_MARKER);
    buffer.extend_from_slice(&schema.fingerprint.to_le_bytes());
    writer
        .write_value_ref(&mut buffer, &value)
        .map_err(|error| EncodeError::Avro(error.to_string()))?;
    Ok(buffer)
}

/// The event as an Avro value of this build's writer schema for its type, for writers of
/// other containers (the export's object container files).
pub fn event_to_value(event: &Event) -> Result<Value, EncodeError> {
    match event {
        Event::EmployerUpserted(event) => event.to_avro(),
        Event::EmployeeCreated(event)
        | Event::EmployeeUpdated(event)
        | Event::EmployeeRemoved(event) => event.to_avro(),
        Event::EmploymentStarted(event)
        | Event::EmploymentChanged(event)
        | Event::EmploymentEnded(event) => event.to_avro(),
        Event::SyncCompleted(event) => event.to_avro(),
    }
}

/// As [`event_to_value`], wrapped as the branch of [`crate::schema::event_union_schema`].
pub fn event_to_union_value(event: &Event) -> Result<Value, EncodeError> {
    let branch = EventType::ALL
        .iter()
        .position(|event_type| *event_type == event.event_type())
        .unwrap_or(0);
    Ok(Value::Union(
        u32::try_from(branch).unwrap_or(0),
        Box::new(event_to_value(event)?),
    ))
}

/// Reads the writer fingerprint of a single-object payload without decoding the datum.
pub fn fingerprint_of(payload: &[u8]) -> Result<Fingerprint, DecodeError> {
    if payload.len() < SINGLE_OBJECT_HEADER_LENGTH {
        return Err(DecodeError::TooShort {
            length: payload.len(),
        });
    }
    if payload[..2] != SINGLE_OBJECT_MARKER {
        return Err(DecodeError::NotSingleObject);
    }
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&payload[2..SINGLE_OBJECT_HEADER_LENGTH]);
    Ok(Fingerprint(u64::from_le_bytes(fingerprint)))
}

/// Writer schemas known beyond the compiled-in catalogue, e.g. loaded from the schemas KV
/// bucket, so events written by a newer koppel decode here too.
#[derive(Debug, Default, Clone)]
pub struct WriterSchemas {
    extra: HashMap<Fingerprint, EventSchema>,
}

impl WriterSchemas {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a self-contained writer schema under both its fingerprints; returns the
    /// specification's.
    pub fn add(&mut self, json: &str) -> Result<Fingerprint, SchemaError> {
        let schema = EventSchema::parse(json)?;
        let fingerprint = schema.fingerprint;
        for key in schema.fingerprints().collect::<Vec<_>>() {
            self.extra.insert(key, schema.clone());
        }
        Ok(fingerprint)
    }

    pub fn contains(&self, fingerprint: Fingerprint) -> bool {
        self.extra.contains_key(&fingerprint)
    }

    fn lookup<'a>(
        &'a self,
        catalog: &'a SchemaCatalog,
        fingerprint: Fingerprint,
    ) -> Option<&'a EventSchema> {
        catalog
            .by_fingerprint(fingerprint)
            .or_else(|| self.extra.get(&fingerprint))
    }
}

/// Decodes with the compiled-in schemas only.
pub fn decode(payload: &[u8]) -> Result<Event, DecodeError> {
    decode_with(payload, &WriterSchemas::default())
}

/// Decodes, looking writer schemas up in the catalogue first and then in `writer_schemas`.
pub fn decode_with(payload: &[u8], writer_schemas: &WriterSchemas) -> Result<Event, DecodeError> {
    let fingerprint = fingerprint_of(payload)?;
    let catalog = catalog()?;
    let writer = writer_schemas
        .lookup(catalog, fingerprint)
        .ok_or(DecodeError::UnknownFingerprint(fingerprint))?;
    let reader = catalog
        .current(writer.event_type)
        .ok_or(DecodeError::UnknownEventType(fingerprint))?;
    let mut datum = EofTrackingReader {
        remaining: &payload[SINGLE_OBJECT_HEADER_LENGTH..],
        hit_eof: false,
    };
    let datum_error = |error: apache_avro::Error| DecodeError::Datum {
        fingerprint,
        reason: error.to_string(),
    };
    let value = if writer.fingerprint == reader.fingerprint {
        // Same schema: no resolution needed, and none of apache-avro's resolver quirks apply.
        match current_readers()?.get(&writer.fingerprint) {
            Some(cached) => cached.read_value(&mut datum),
            None => GenericDatumReader::builder(&writer.schema)
                .build()
                .map_err(datum_error)?
                .read_value(&mut datum),
        }
    } else {
        GenericDatumReader::builder(&writer.schema)
            .reader_schema(&reader.schema)
            .build()
            .map_err(datum_error)?
            .read_value(&mut datum)
    }
    .map_err(datum_error)?;
    if datum.hit_eof {
        return Err(DecodeError::Datum {
            fingerprint,
            reason: "the datum is truncated".to_owned(),
        });
    }
    if !datum.remaining.is_empty() {
        return Err(DecodeError::Datum {
            fingerprint,
            reason: format!("{} trailing bytes", datum.remaining.len()),
        });
    }
    event_from_value(writer.event_type, value)
}

/// apache-avro 0.22 decodes a string cut short by the end of input as `null` instead of failing,
/// so a truncated payload could decode "successfully" with a field missing. This reader notes
/// any read attempted past the end, and the decoder turns that into an error.
struct EofTrackingReader<'a> {
    remaining: &'a [u8],
    hit_eof: bool,
}

impl std::io::Read for EofTrackingReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if !buffer.is_empty() && self.remaining.is_empty() {
            self.hit_eof = true;
            return Ok(0);
        }
        self.remaining.read(buffer)
    }
}

fn event_from_value(event_type: EventType, value: Value) -> Result<Event, DecodeError> {
    use crate::event::{EmployeeEvent, EmployerUpserted, EmploymentEvent, SyncCompleted};
    Ok(match event_type {
        EventType::EmployerUpserted => Event::EmployerUpserted(EmployerUpserted::from_avro(value)?),
        EventType::EmployeeCreated => Event::EmployeeCreated(EmployeeEvent::from_avro(value)?),
        EventType::EmployeeUpdated => Event::EmployeeUpdated(EmployeeEvent::from_avro(value)?),
        EventType::EmployeeRemoved => Event::EmployeeRemoved(EmployeeEvent::from_avro(value)?),
        EventType::EmploymentStarted => {
            Event::EmploymentStarted(EmploymentEvent::from_avro(value)?)
        }
        EventType::EmploymentChanged => {
            Event::EmploymentChanged(EmploymentEvent::from_avro(value)?)
        }
        EventType::EmploymentEnded => Event::EmploymentEnded(EmploymentEvent::from_avro(value)?),
        EventType::SyncCompleted => Event::SyncCompleted(SyncCompleted::from_avro(value)?),
        EventType::Unknown => {
            return Err(DecodeError::Field {
                field: "event_type",
                reason: "unknown event type",
            });
        }
    })
}
