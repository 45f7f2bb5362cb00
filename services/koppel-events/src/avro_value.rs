//! Explicit conversion between the Rust model and `apache_avro::types::Value`.
//!
//! Written by hand rather than through serde because the wire types need exact control:
//! decimals with a fixed scale and a byte width apache-avro's resolver accepts, `date` and
//! `timestamp-millis` logical types, enum defaults and `["null", T]` unions. Every impl here is
//! covered by the round-trip tests in `codec`.

use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::codec::{DecodeError, EncodeError};
use crate::event::{
    EmployeeEvent, EmployerUpserted, EmploymentEvent, EventHeader, EventType, RecordError,
    SyncCompleted, SyncCounts, SyncKind, SyncResult,
};
use crate::model::{
    Address, Bsn, Employee, Employer, Employment, Gender, Money, NameUsage, OrganisationUnit,
    PersonName, Salary, SalaryPeriod, SourceSystem,
};

pub(crate) trait ToAvro {
    fn to_avro(&self) -> Result<Value, EncodeError>;
}

pub(crate) trait FromAvro: Sized {
    fn from_avro(value: Value) -> Result<Self, DecodeError>;
}

// ---- decimals -------------------------------------------------------------------------------

/// Precision and scale of each decimal in the schemas. Kept next to the conversion so a test can
/// compare them with `schemas/`.
pub(crate) const MONEY_DECIMAL: DecimalShape = DecimalShape {
    precision: 18,
    scale: 4,
};
pub(crate) const HOURS_DECIMAL: DecimalShape = DecimalShape {
    precision: 9,
    scale: 4,
};
pub(crate) const FACTOR_DECIMAL: DecimalShape = DecimalShape {
    precision: 9,
    scale: 6,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecimalShape {
    pub(crate) precision: u32,
    pub(crate) scale: u32,
}

impl DecimalShape {
    /// Bytes of two's complement needed to hold every value of this precision. apache-avro's
    /// resolver (0.22) rejects a decimal whose byte length could hold fewer digits than the
    /// schema's precision, so values are written sign-extended to this width, never minimal.
    fn byte_width(self) -> usize {
        let max_unscaled = 10i128.pow(self.precision) - 1;
        let mut width = 1usize;
        while width < 16 && (1i128 << (8 * width - 1)) - 1 < max_unscaled {
            width += 1;
        }
        width
    }
}

/// Writes `decimal` exactly at the shape's scale. A value with more significant decimals than
/// the scale, or more digits than the precision, is an error: rounding is the mapping's job,
/// never the codec's.
pub(crate) fn decimal_to_value(
    field: &'static str,
    decimal: Decimal,
    shape: DecimalShape,
) -> Result<Value, EncodeError> {
    let normalized = decimal.normalize();
    if normalized.scale() > shape.scale {
        return Err(EncodeError::DecimalScale {
            field,
            scale: shape.scale,
        });
    }
    let mut rescaled = normalized;
    rescaled.rescale(shape.scale);
    let mantissa = rescaled.mantissa();
    if mantissa.unsigned_abs() > (10u128.pow(shape.precision) - 1) {
        return Err(EncodeError::DecimalPrecision {
            field,
            precision: shape.precision,
        });
    }
    let width = shape.byte_width();
    let bytes = mantissa.to_be_bytes();
    Ok(Value::Decimal(apache_avro::Decimal::from(
        &bytes[16 - width..],
    )))
}

pub(crate) fn decimal_from_value(
    field: &'static str,
    value: Value,
    shape: DecimalShape,
) -> Result<Decimal, DecodeError> {
    let bytes: Vec<u8> = match value {
        Value::Decimal(decimal) => {
            <Vec<u8>>::try_from(&decimal).map_err(|_| DecodeError::Field {
                field,
                reason: "decimal bytes unreadable",
            })?
        }
        Value::Bytes(bytes) => bytes,
        _ => {
            return Err(DecodeError::Field {
                field,
                reason: "expected a decimal",
            });
        }
    };
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(DecodeError::Field {
            field,
            reason: "decimal wider than 16 bytes",
        });
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut buffer = if negative { [0xFFu8; 16] } else { [0u8; 16] };
    buffer[16 - bytes.len()..].copy_from_slice(&bytes);
    let mantissa = i128::from_be_bytes(buffer);
    // The bytes can hold more digits than the schema's precision allows; such a datum is
    // invalid, and accepting it would yield an event that cannot be encoded again.
    if mantissa.unsigned_abs() > 10u128.pow(shape.precision) - 1 {
        return Err(DecodeError::Field {
            field,
            reason: "decimal has more digits than the schema's precision",
        });
    }
    Decimal::try_from_i128_with_scale(mantissa, shape.scale).map_err(|_| DecodeError::Field {
        field,
        reason: "decimal out of range",
    })
}

// ---- dates and instants ---------------------------------------------------------------------

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

pub(crate) fn date_to_value(date: NaiveDate) -> Value {
    let days = date.signed_duration_since(epoch()).num_days();
    Value::Date(i32::try_from(days).unwrap_or(i32::MAX))
}

pub(crate) fn date_from_value(field: &'static str, value: Value) -> Result<NaiveDate, DecodeError> {
    match value {
        Value::Date(days) | Value::Int(days) => epoch()
            .checked_add_signed(chrono::Duration::days(i64::from(days)))
            .ok_or(DecodeError::Field {
                field,
                reason: "date out of range",
            }),
        _ => Err(DecodeError::Field {
            field,
            reason: "expected a date",
        }),
    }
}

pub(crate) fn timestamp_to_value(instant: DateTime<Utc>) -> Value {
    Value::TimestampMillis(instant.timestamp_millis())
}

pub(crate) fn timestamp_from_value(
    field: &'static str,
    value: Value,
) -> Result<DateTime<Utc>, DecodeError> {
    match value {
        Value::TimestampMillis(millis) | Value::Long(millis) => {
            DateTime::from_timestamp_millis(millis).ok_or(DecodeError::Field {
                field,
                reason: "timestamp out of range",
            })
        }
        _ => Err(DecodeError::Field {
            field,
            reason: "expected timestamp-millis",
        }),
    }
}

// ---- unions, strings, enums -----------------------------------------------------------------

/// `["null", T]`: branch 0 is null, branch 1 the value.
pub(crate) fn optional(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(value) => Value::Union(1, Box::new(value)),
    }
}

fn optional_string(value: Option<&String>) -> Value {
    optional(value.map(|s| Value::String(s.clone())))
}

fn unwrap_union(value: Value) -> Option<Value> {
    match value {
        Value::Union(_, inner) => match *inner {
            Value::Null => None,
            inner => Some(inner),
        },
        Value::Null => None,
        other => Some(other),
    }
}

fn string_from_value(field: &'static str, value: Value) -> Result<String, DecodeError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(DecodeError::Field {
            field,
            reason: "expected a string",
        }),
    }
}

fn long_from_value(field: &'static str, value: Value) -> Result<i64, DecodeError> {
    match value {
        Value::Long(n) => Ok(n),
        Value::Int(n) => Ok(i64::from(n)),
        _ => Err(DecodeError::Field {
            field,
            reason: "expected a long",
        }),
    }
}

fn enum_symbol(field: &'static str, value: Value) -> Result<String, DecodeError> {
    match value {
        Value::Enum(_, symbol) | Value::String(symbol) => Ok(symbol),
        _ => Err(DecodeError::Field {
            field,
            reason: "expected an enum symbol",
        }),
    }
}

/// Writes an enum symbol with its index in the schema's symbol list.
fn enum_value(symbols: &[&str], symbol: &str) -> Value {
    let index = symbols.iter().position(|s| *s == symbol).unwrap_or(0);
    Value::Enum(u32::try_from(index).unwrap_or(0), symbol.to_owned())
}

pub(crate) const SOURCE_SYSTEM_SYMBOLS: [&str; 5] = ["UNKNOWN", "LOKET", "UNIT4", "RAET", "HIBOB"];
pub(crate) const EVENT_TYPE_SYMBOLS: [&str; 9] = [
    "UNKNOWN",
    "EMPLOYER_UPSERTED",
    "EMPLOYEE_CREATED",
    "EMPLOYEE_UPDATED",
    "EMPLOYEE_REMOVED",
    "EMPLOYMENT_STARTED",
    "EMPLOYMENT_CHANGED",
    "EMPLOYMENT_ENDED",
    "SYNC_COMPLETED",
];
pub(crate) const SALARY_PERIOD_SYMBOLS: [&str; 6] =
    ["UNKNOWN", "HOUR", "WEEK", "FOUR_WEEKS", "MONTH", "YEAR"];
pub(crate) const NAME_USAGE_SYMBOLS: [&str; 4] = ["OWN", "PARTNER", "PARTNER_OWN", "OWN_PARTNER"];
pub(crate) const GENDER_SYMBOLS: [&str; 4] = ["UNKNOWN", "MALE", "FEMALE", "OTHER"];
pub(crate) const SYNC_KIND_SYMBOLS: [&str; 2] = ["FULL", "DELTA"];
pub(crate) const SYNC_RESULT_SYMBOLS: [&str; 3] = ["UNKNOWN", "COMPLETED", "HELD_BACK"];

fn source_symbol(source: SourceSystem) -> &'static str {
    match source {
        SourceSystem::Unknown => "UNKNOWN",
        SourceSystem::Loket => "LOKET",
        SourceSystem::Unit4 => "UNIT4",
        SourceSystem::Raet => "RAET",
        SourceSystem::Hibob => "HIBOB",
    }
}

fn source_from_symbol(symbol: &str) -> SourceSystem {
    match symbol {
        "LOKET" => SourceSystem::Loket,
        "UNIT4" => SourceSystem::Unit4,
        "RAET" => SourceSystem::Raet,
        "HIBOB" => SourceSystem::Hibob,
        _ => SourceSystem::Unknown,
    }
}

pub(crate) fn event_type_symbol(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Unknown => "UNKNOWN",
        EventType::EmployerUpserted => "EMPLOYER_UPSERTED",
        EventType::EmployeeCreated => "EMPLOYEE_CREATED",
        EventType::EmployeeUpdated => "EMPLOYEE_UPDATED",
        EventType::EmployeeRemoved => "EMPLOYEE_REMOVED",
        EventType::EmploymentStarted => "EMPLOYMENT_STARTED",
        EventType::EmploymentChanged => "EMPLOYMENT_CHANGED",
        EventType::EmploymentEnded => "EMPLOYMENT_ENDED",
        EventType::SyncCompleted => "SYNC_COMPLETED",
    }
}

fn event_type_from_symbol(symbol: &str) -> EventType {
    EventType::ALL
        .into_iter()
        .find(|event_type| event_type_symbol(*event_type) == symbol)
        .unwrap_or(EventType::Unknown)
}

// ---- records --------------------------------------------------------------------------------

/// The fields of a decoded record, taken by name. After resolution against the reader schema
/// every reader field is present, so a missing one means a corrupt or foreign datum.
pub(crate) struct Fields {
    record: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    pub(crate) fn of(record: &'static str, value: Value) -> Result<Self, DecodeError> {
        match value {
            Value::Record(fields) => Ok(Fields { record, fields }),
            _ => Err(DecodeError::Field {
                field: record,
                reason: "expected a record",
            }),
        }
    }

    fn take(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        let position = self
            .fields
            .iter()
            .position(|(name, _)| name == field)
            .ok_or(DecodeError::MissingField {
                record: self.record,
                field,
            })?;
        Ok(self.fields.swap_remove(position).1)
    }

    pub(crate) fn record<T: FromAvro>(&mut self, field: &'static str) -> Result<T, DecodeError> {
        T::from_avro(self.take(field)?)
    }

    fn optional_record<T: FromAvro>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, DecodeError> {
        unwrap_union(self.take(field)?)
            .map(T::from_avro)
            .transpose()
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        string_from_value(field, self.take(field)?)
    }

    fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        unwrap_union(self.take(field)?)
            .map(|value| string_from_value(field, value))
            .transpose()
    }

    fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        long_from_value(field, self.take(field)?)
    }

    fn optional_long(&mut self, field: &'static str) -> Result<Option<i64>, DecodeError> {
        unwrap_union(self.take(field)?)
            .map(|value| long_from_value(field, value))
            .transpose()
    }

    fn symbol(&mut self, field: &'static str) -> Result<String, DecodeError> {
        enum_symbol(field, self.take(field)?)
    }

    fn date(&mut self, field: &'static str) -> Result<NaiveDate, DecodeError> {
        date_from_value(field, self.take(field)?)
    }

    fn optional_date(&mut self, field: &'static str) -> Result<Option<NaiveDate>, DecodeError> {
        unwrap_union(self.take(field)?)
            .map(|value| date_from_value(field, value))
            .transpose()
    }

    /// A field added after the first release: absent (a datum resolved without it) is `None`
    /// like null.
    fn added_optional_date(
        &mut self,
        field: &'static str,
    ) -> Result<Option<NaiveDate>, DecodeError> {
        if !self.fields.iter().any(|(name, _)| name == field) {
            return Ok(None);
        }
        self.optional_date(field)
    }

    /// A boolean field added after the first release; absent is `None` like null.
    fn added_optional_boolean(&mut self, field: &'static str) -> Result<Option<bool>, DecodeError> {
        if !self.fields.iter().any(|(name, _)| name == field) {
            return Ok(None);
        }
        match unwrap_union(self.take(field)?) {
            None => Ok(None),
            Some(Value::Boolean(flag)) => Ok(Some(flag)),
            Some(_) => Err(DecodeError::Field {
                field,
                reason: "expected a boolean",
            }),
        }
    }

    fn timestamp(&mut self, field: &'static str) -> Result<DateTime<Utc>, DecodeError> {
        timestamp_from_value(field, self.take(field)?)
    }

    fn optional_decimal(
        &mut self,
        field: &'static str,
        shape: DecimalShape,
    ) -> Result<Option<Decimal>, DecodeError> {
        unwrap_union(self.take(field)?)
            .map(|value| decimal_from_value(field, value, shape))
            .transpose()
    }

    fn array<T>(
        &mut self,
        field: &'static str,
        item: impl Fn(Value) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        match self.take(field)? {
            Value::Array(items) => items.into_iter().map(item).collect(),
            _ => Err(DecodeError::Field {
                field,
                reason: "expected an array",
            }),
        }
    }
}

fn record(fields: Vec<(&'static str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

fn optional_decimal(
    field: &'static str,
    decimal: Option<Decimal>,
    shape: DecimalShape,
) -> Result<Value, EncodeError> {
    Ok(optional(
        decimal
            .map(|d| decimal_to_value(field, d, shape))
            .transpose()?,
    ))
}

fn optional_record<T: ToAvro>(value: Option<&T>) -> Result<Value, EncodeError> {
    Ok(optional(value.map(ToAvro::to_avro).transpose()?))
}

impl ToAvro for EventHeader {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("event_id", Value::Uuid(self.event_id)),
            (
                "event_type",
                enum_value(&EVENT_TYPE_SYMBOLS, event_type_symbol(self.event_type)),
            ),
            ("observed_at", timestamp_to_value(self.observed_at)),
            (
                "effective_date",
                optional(self.effective_date.map(date_to_value)),
            ),
            (
                "source",
                enum_value(&SOURCE_SYSTEM_SYMBOLS, source_symbol(self.source)),
            ),
            ("connection_id", Value::String(self.connection_id.clone())),
            ("employer_key", Value::String(self.employer_key.clone())),
            ("entity_id", Value::String(self.entity_id.clone())),
            ("revision", Value::Long(self.revision)),
            ("run_id", Value::String(self.run_id.clone())),
            (
                "changed_fields",
                Value::Array(
                    self.changed_fields
                        .iter()
                        .cloned()
                        .map(Value::String)
                        .collect(),
                ),
            ),
            (
                "effective_date_is_observation",
                optional(self.effective_date_is_observation.map(Value::Boolean)),
            ),
        ]))
    }
}

impl FromAvro for EventHeader {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("EventHeader", value)?;
        let event_id = match fields.take("event_id")? {
            Value::Uuid(uuid) => uuid,
            Value::String(text) => {
                uuid::Uuid::parse_str(&text).map_err(|_| DecodeError::Field {
                    field: "event_id",
                    reason: "not a UUID",
                })?
            }
            _ => {
                return Err(DecodeError::Field {
                    field: "event_id",
                    reason: "expected a uuid",
                });
            }
        };
        Ok(EventHeader {
            event_id,
            event_type: event_type_from_symbol(&fields.symbol("event_type")?),
            observed_at: fields.timestamp("observed_at")?,
            effective_date: fields.optional_date("effective_date")?,
            source: source_from_symbol(&fields.symbol("source")?),
            connection_id: fields.string("connection_id")?,
            employer_key: fields.string("employer_key")?,
            entity_id: fields.string("entity_id")?,
            revision: fields.long("revision")?,
            run_id: fields.string("run_id")?,
            changed_fields: fields.array("changed_fields", |value| {
                string_from_value("changed_fields", value)
            })?,
            effective_date_is_observation: fields
                .added_optional_boolean("effective_date_is_observation")?,
        })
    }
}

impl ToAvro for Money {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            (
                "amount",
                decimal_to_value("amount", self.amount, MONEY_DECIMAL)?,
            ),
            ("currency", Value::String(self.currency.clone())),
        ]))
    }
}

impl FromAvro for Money {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("Money", value)?;
        Ok(Money {
            amount: decimal_from_value("amount", fields.take("amount")?, MONEY_DECIMAL)?,
            currency: fields.string("currency")?,
        })
    }
}

impl ToAvro for Salary {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        let period = match self.period {
            SalaryPeriod::Unknown => "UNKNOWN",
            SalaryPeriod::Hour => "HOUR",
            SalaryPeriod::Week => "WEEK",
            SalaryPeriod::FourWeeks => "FOUR_WEEKS",
            SalaryPeriod::Month => "MONTH",
            SalaryPeriod::Year => "YEAR",
        };
        Ok(record(vec![
            ("amount", self.amount.to_avro()?),
            ("period", enum_value(&SALARY_PERIOD_SYMBOLS, period)),
        ]))
    }
}

impl FromAvro for Salary {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("Salary", value)?;
        let amount = fields.record("amount")?;
        let period = match fields.symbol("period")?.as_str() {
            "HOUR" => SalaryPeriod::Hour,
            "WEEK" => SalaryPeriod::Week,
            "FOUR_WEEKS" => SalaryPeriod::FourWeeks,
            "MONTH" => SalaryPeriod::Month,
            "YEAR" => SalaryPeriod::Year,
            _ => SalaryPeriod::Unknown,
        };
        Ok(Salary { amount, period })
    }
}

impl ToAvro for PersonName {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        let usage = match self.name_usage {
            NameUsage::Own => "OWN",
            NameUsage::Partner => "PARTNER",
            NameUsage::PartnerOwn => "PARTNER_OWN",
            NameUsage::OwnPartner => "OWN_PARTNER",
        };
        Ok(record(vec![
            ("initials", optional_string(self.initials.as_ref())),
            ("first_name", optional_string(self.first_name.as_ref())),
            ("prefix", optional_string(self.prefix.as_ref())),
            ("last_name", Value::String(self.last_name.clone())),
            (
                "partner_prefix",
                optional_string(self.partner_prefix.as_ref()),
            ),
            (
                "partner_last_name",
                optional_string(self.partner_last_name.as_ref()),
            ),
            ("name_usage", enum_value(&NAME_USAGE_SYMBOLS, usage)),
            ("formatted", Value::String(self.formatted.clone())),
        ]))
    }
}

impl FromAvro for PersonName {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("PersonName", value)?;
        Ok(PersonName {
            initials: fields.optional_string("initials")?,
            first_name: fields.optional_string("first_name")?,
            prefix: fields.optional_string("prefix")?,
            last_name: fields.string("last_name")?,
            partner_prefix: fields.optional_string("partner_prefix")?,
            partner_last_name: fields.optional_string("partner_last_name")?,
            name_usage: match fields.symbol("name_usage")?.as_str() {
                "PARTNER" => NameUsage::Partner,
                "PARTNER_OWN" => NameUsage::PartnerOwn,
                "OWN_PARTNER" => NameUsage::OwnPartner,
                _ => NameUsage::Own,
            },
            formatted: fields.string("formatted")?,
        })
    }
}

impl ToAvro for Address {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("street", optional_string(self.street.as_ref())),
            ("house_number", optional_string(self.house_number.as_ref())),
            (
                "house_number_addition",
                optional_string(self.house_number_addition.as_ref()),
            ),
            ("postal_code", optional_string(self.postal_code.as_ref())),
            ("city", optional_string(self.city.as_ref())),
            ("country_code", optional_string(self.country_code.as_ref())),
        ]))
    }
}

impl FromAvro for Address {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("Address", value)?;
        Ok(Address {
            street: fields.optional_string("street")?,
            house_number: fields.optional_string("house_number")?,
            house_number_addition: fields.optional_string("house_number_addition")?,
            postal_code: fields.optional_string("postal_code")?,
            city: fields.optional_string("city")?,
            country_code: fields.optional_string("country_code")?,
        })
    }
}

impl ToAvro for OrganisationUnit {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("id", Value::String(self.id.clone())),
            ("code", optional_string(self.code.as_ref())),
            ("name", optional_string(self.name.as_ref())),
        ]))
    }
}

impl FromAvro for OrganisationUnit {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("OrganisationUnit", value)?;
        Ok(OrganisationUnit {
            id: fields.string("id")?,
            code: fields.optional_string("code")?,
            name: fields.optional_string("name")?,
        })
    }
}

impl ToAvro for Employer {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("employer_key", Value::String(self.employer_key.clone())),
            (
                "source",
                enum_value(&SOURCE_SYSTEM_SYMBOLS, source_symbol(self.source)),
            ),
            (
                "source_employer_id",
                Value::String(self.source_employer_id.clone()),
            ),
            ("name", Value::String(self.name.clone())),
            (
                "employer_number",
                optional_string(self.employer_number.as_ref()),
            ),
            (
                "payroll_tax_number",
                optional_string(self.payroll_tax_number.as_ref()),
            ),
            (
                "chamber_of_commerce_number",
                optional_string(self.chamber_of_commerce_number.as_ref()),
            ),
        ]))
    }
}

impl FromAvro for Employer {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("Employer", value)?;
        Ok(Employer {
            employer_key: fields.string("employer_key")?,
            source: source_from_symbol(&fields.symbol("source")?),
            source_employer_id: fields.string("source_employer_id")?,
            name: fields.string("name")?,
            employer_number: fields.optional_string("employer_number")?,
            payroll_tax_number: fields.optional_string("payroll_tax_number")?,
            chamber_of_commerce_number: fields.optional_string("chamber_of_commerce_number")?,
        })
    }
}

impl ToAvro for Employee {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        let gender = match self.gender {
            Gender::Unknown => "UNKNOWN",
            Gender::Male => "MALE",
            Gender::Female => "FEMALE",
            Gender::Other => "OTHER",
        };
        Ok(record(vec![
            ("employee_id", Value::String(self.employee_id.clone())),
            (
                "employee_number",
                optional_string(self.employee_number.as_ref()),
            ),
            ("name", self.name.to_avro()?),
            (
                "date_of_birth",
                optional(self.date_of_birth.map(date_to_value)),
            ),
            ("gender", enum_value(&GENDER_SYMBOLS, gender)),
            (
                "bsn",
                optional(
                    self.bsn
                        .as_ref()
                        .map(|bsn| Value::String(bsn.expose().to_owned())),
                ),
            ),
            ("email", optional_string(self.email.as_ref())),
            ("work_email", optional_string(self.work_email.as_ref())),
            ("phone", optional_string(self.phone.as_ref())),
            ("address", optional_record(self.address.as_ref())?),
            (
                "manager_employee_id",
                optional_string(self.manager_employee_id.as_ref()),
            ),
        ]))
    }
}

impl FromAvro for Employee {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("Employee", value)?;
        let employee_id = fields.string("employee_id")?;
        let employee_number = fields.optional_string("employee_number")?;
        let name = fields.record("name")?;
        let date_of_birth = fields.optional_date("date_of_birth")?;
        let gender = match fields.symbol("gender")?.as_str() {
            "MALE" => Gender::Male,
            "FEMALE" => Gender::Female,
            "OTHER" => Gender::Other,
            _ => Gender::Unknown,
        };
        // A BSN that fails the 11-proef on the wire means a broken writer; refuse the event
        // rather than pass an invalid BSN to an insurer.
        let bsn = fields
            .optional_string("bsn")?
            .map(|text| {
                Bsn::parse(&text).map_err(|_| DecodeError::Field {
                    field: "bsn",
                    reason: "invalid BSN",
                })
            })
            .transpose()?;
        Ok(Employee {
            employee_id,
            employee_number,
            name,
            date_of_birth,
            gender,
            bsn,
            email: fields.optional_string("email")?,
            work_email: fields.optional_string("work_email")?,
            phone: fields.optional_string("phone")?,
            address: fields.optional_record("address")?,
            manager_employee_id: fields.optional_string("manager_employee_id")?,
        })
    }
}

impl ToAvro for Employment {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("employment_id", Value::String(self.employment_id.clone())),
            ("employee_id", Value::String(self.employee_id.clone())),
            (
                "income_relationship_number",
                optional(self.income_relationship_number.map(Value::Long)),
            ),
            ("start_date", date_to_value(self.start_date)),
            ("end_date", optional(self.end_date.map(date_to_value))),
            ("end_reason", optional_string(self.end_reason.as_ref())),
            ("job_title", optional_string(self.job_title.as_ref())),
            ("department", optional_record(self.department.as_ref())?),
            ("cost_center", optional_record(self.cost_center.as_ref())?),
            ("location", optional_string(self.location.as_ref())),
            (
                "employment_type",
                optional_string(self.employment_type.as_ref()),
            ),
            (
                "contract_type",
                optional_string(self.contract_type.as_ref()),
            ),
            (
                "hours_per_week",
                optional_decimal("hours_per_week", self.hours_per_week, HOURS_DECIMAL)?,
            ),
            (
                "fulltime_hours_per_week",
                optional_decimal(
                    "fulltime_hours_per_week",
                    self.fulltime_hours_per_week,
                    HOURS_DECIMAL,
                )?,
            ),
            (
                "parttime_factor",
                optional_decimal("parttime_factor", self.parttime_factor, FACTOR_DECIMAL)?,
            ),
            ("salary", optional_record(self.salary.as_ref())?),
            (
                "pensionable_salary",
                optional_record(self.pensionable_salary.as_ref())?,
            ),
            (
                "pension_scheme",
                optional_string(self.pension_scheme.as_ref()),
            ),
            (
                "placement_valid_from",
                optional(self.placement_valid_from.map(date_to_value)),
            ),
            (
                "hours_valid_from",
                optional(self.hours_valid_from.map(date_to_value)),
            ),
            (
                "salary_valid_from",
                optional(self.salary_valid_from.map(date_to_value)),
            ),
        ]))
    }
}

impl FromAvro for Employment {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("Employment", value)?;
        Ok(Employment {
            employment_id: fields.string("employment_id")?,
            employee_id: fields.string("employee_id")?,
            income_relationship_number: fields.optional_long("income_relationship_number")?,
            start_date: fields.date("start_date")?,
            end_date: fields.optional_date("end_date")?,
            end_reason: fields.optional_string("end_reason")?,
            job_title: fields.optional_string("job_title")?,
            department: fields.optional_record("department")?,
            cost_center: fields.optional_record("cost_center")?,
            location: fields.optional_string("location")?,
            employment_type: fields.optional_string("employment_type")?,
            contract_type: fields.optional_string("contract_type")?,
            hours_per_week: fields.optional_decimal("hours_per_week", HOURS_DECIMAL)?,
            fulltime_hours_per_week: fields
                .optional_decimal("fulltime_hours_per_week", HOURS_DECIMAL)?,
            parttime_factor: fields.optional_decimal("parttime_factor", FACTOR_DECIMAL)?,
            salary: fields.optional_record("salary")?,
            pensionable_salary: fields.optional_record("pensionable_salary")?,
            pension_scheme: fields.optional_string("pension_scheme")?,
            placement_valid_from: fields.added_optional_date("placement_valid_from")?,
            hours_valid_from: fields.added_optional_date("hours_valid_from")?,
            salary_valid_from: fields.added_optional_date("salary_valid_from")?,
        })
    }
}

impl ToAvro for EmployerUpserted {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("header", self.header.to_avro()?),
            ("employer", self.employer.to_avro()?),
        ]))
    }
}

impl FromAvro for EmployerUpserted {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("EmployerUpserted", value)?;
        Ok(EmployerUpserted {
            header: fields.record("header")?,
            employer: fields.record("employer")?,
        })
    }
}

impl ToAvro for EmployeeEvent {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("header", self.header.to_avro()?),
            ("employee", self.employee.to_avro()?),
        ]))
    }
}

impl FromAvro for EmployeeEvent {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("EmployeeEvent", value)?;
        Ok(EmployeeEvent {
            header: fields.record("header")?,
            employee: fields.record("employee")?,
        })
    }
}

impl ToAvro for EmploymentEvent {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        Ok(record(vec![
            ("header", self.header.to_avro()?),
            ("employment", self.employment.to_avro()?),
            ("employee", self.employee.to_avro()?),
        ]))
    }
}

impl FromAvro for EmploymentEvent {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("EmploymentEvent", value)?;
        Ok(EmploymentEvent {
            header: fields.record("header")?,
            employment: fields.record("employment")?,
            employee: fields.record("employee")?,
        })
    }
}

impl ToAvro for SyncCompleted {
    fn to_avro(&self) -> Result<Value, EncodeError> {
        let kind = match self.kind {
            SyncKind::Full => "FULL",
            SyncKind::Delta => "DELTA",
        };
        let result = match self.result {
            SyncResult::Unknown => "UNKNOWN",
            SyncResult::Completed => "COMPLETED",
            SyncResult::HeldBack => "HELD_BACK",
        };
        let counts = record(vec![
            ("employees_seen", Value::Long(self.counts.employees_seen)),
            (
                "employments_seen",
                Value::Long(self.counts.employments_seen),
            ),
            (
                "events_published",
                Value::Long(self.counts.events_published),
            ),
            ("records_failed", Value::Long(self.counts.records_failed)),
            (
                "removals_held_back",
                Value::Long(self.counts.removals_held_back),
            ),
        ]);
        let record_errors = self
            .record_errors
            .iter()
            .map(|error| {
                record(vec![
                    ("entity_type", Value::String(error.entity_type.clone())),
                    ("entity_id", Value::String(error.entity_id.clone())),
                    ("reason", Value::String(error.reason.clone())),
                ])
            })
            .collect();
        Ok(record(vec![
            ("header", self.header.to_avro()?),
            ("kind", enum_value(&SYNC_KIND_SYMBOLS, kind)),
            ("result", enum_value(&SYNC_RESULT_SYMBOLS, result)),
            ("started_at", timestamp_to_value(self.started_at)),
            ("counts", counts),
            ("watermark", optional_string(self.watermark.as_ref())),
            ("record_errors", Value::Array(record_errors)),
        ]))
    }
}

impl FromAvro for SyncCompleted {
    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = Fields::of("SyncCompleted", value)?;
        let header = fields.record("header")?;
        let kind = match fields.symbol("kind")?.as_str() {
            "DELTA" => SyncKind::Delta,
            _ => SyncKind::Full,
        };
        let result = match fields.symbol("result")?.as_str() {
            "COMPLETED" => SyncResult::Completed,
            "HELD_BACK" => SyncResult::HeldBack,
            _ => SyncResult::Unknown,
        };
        let started_at = fields.timestamp("started_at")?;
        let mut counts_fields = Fields::of("SyncCounts", fields.take("counts")?)?;
        let counts = SyncCounts {
            employees_seen: counts_fields.long("employees_seen")?,
            employments_seen: counts_fields.long("employments_seen")?,
            events_published: counts_fields.long("events_published")?,
            records_failed: counts_fields.long("records_failed")?,
            removals_held_back: counts_fields.long("removals_held_back")?,
        };
        let watermark = fields.optional_string("watermark")?;
        let record_errors = fields.array("record_errors", |value| {
            let mut error = Fields::of("RecordError", value)?;
            Ok(RecordError {
                entity_type: error.string("entity_type")?,
                entity_id: error.string("entity_id")?,
                reason: error.string("reason")?,
            })
        })?;
        Ok(SyncCompleted {
            header,
            kind,
            result,
            started_at,
            counts,
            watermark,
            record_errors,
        })
    }
}
