//! The Avro Parsing Canonical Form (PCF) of a schema and its CRC-64-AVRO fingerprint, exactly
//! as the Avro specification defines them and the Java reference implementation computes them
//! (`SchemaNormalization.toParsingForm` and `parsingFingerprint64`).
//!
//! koppel does not take these from apache-avro: its 0.22 canonical form keeps
//! `{"type":"string"}` where a logical type was stripped and keeps a decimal's `precision` and
//! `scale`, so its fingerprints differ from every other implementation's and a standard reader
//! finds no writer schema. See [`crate::schema::Fingerprint`] for how both are used.
//!
//! The transformation follows the specification's section "Transforming into Parsing Canonical
//! Form" (<https://avro.apache.org/docs/1.12.0/specification/#parsing-canonical-form-for-schemas>),
//! rule by rule:
//! - **PRIMITIVES**: a primitive given as an object (`{"type":"int"}`) becomes its name
//!   (`"int"`).
//! - **FULLNAMES**: every `name` of a named type, and every reference to one, becomes the full
//!   name, resolved against the `namespace` attribute or the most tightly enclosing namespace.
//! - **STRIP**: only `type`, `name`, `fields`, `symbols`, `items`, `values` and `size` are kept;
//!   `doc`, `aliases`, `default`, `order`, `namespace` and logical types with their attributes
//!   (`logicalType`, `precision`, `scale`) are dropped. A primitive left with only `type` after
//!   stripping is then a primitive by the PRIMITIVES rule: `{"type":"string","logicalType":
//!   "uuid"}` becomes `"string"`.
//! - **ORDER**: attributes are written in the order `name`, `type`, `fields`, `symbols`,
//!   `items`, `values`, `size`.
//! - **STRINGS**: JSON escapes are replaced by their UTF-8 characters (the JSON parser decodes
//!   them; the writer escapes only what JSON requires).
//! - **INTEGERS**: no leading zeros, no quotes (`size` is written as a plain number).
//! - **WHITESPACE**: none outside strings.
//!
//! A named type defined a second time is written as its full name, as the Java implementation
//! writes any named type it has already written.

use std::collections::HashSet;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalFormError {
    #[error("the schema is not JSON: {0}")]
    Json(String),
    #[error("the schema is not a valid Avro schema: {0}")]
    Invalid(&'static str),
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of the schema given as JSON text.
pub fn parsing_canonical_form(schema_json: &str) -> Result<String, CanonicalFormError> {
    let schema: Value = serde_json::from_str(schema_json)
        .map_err(|error| CanonicalFormError::Json(error.to_string()))?;
    parsing_canonical_form_of_value(&schema)
}

/// The Parsing Canonical Form of a schema already parsed as JSON.
pub fn parsing_canonical_form_of_value(schema: &Value) -> Result<String, CanonicalFormError> {
    let mut writer = CanonicalWriter {
        output: String::with_capacity(1024),
        defined: HashSet::new(),
    };
    writer.schema(schema, None)?;
    Ok(writer.output)
}

/// The 64-bit Rabin fingerprint the specification calls CRC-64-AVRO, as its reference code
/// computes it (section "Schema Fingerprints").
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u64; 256];
        for (index, slot) in table.iter_mut().enumerate() {
            let mut fingerprint = index as u64;
            for _ in 0..8 {
                fingerprint = (fingerprint >> 1) ^ (EMPTY & (fingerprint & 1).wrapping_neg());
            }
            *slot = fingerprint;
        }
        table
    });
    bytes.iter().fold(EMPTY, |fingerprint, byte| {
        (fingerprint >> 8) ^ table[((fingerprint ^ u64::from(*byte)) & 0xff) as usize]
    })
}

struct CanonicalWriter {
    output: String,
    /// Full names of the named types written so far.
    defined: HashSet<String>,
}

impl CanonicalWriter {
    fn schema(&mut self, schema: &Value, namespace: Option<&str>) -> Result<(), Invalid> {
        match schema {
            Value::String(name) => {
                self.type_name(name, namespace);
                Ok(())
            }
            Value::Array(branches) => {
                self.output.push('[');
                for (index, branch) in branches.iter().enumerate() {
                    if index > 0 {
                        self.output.push(',');
                    }
                    self.schema(branch, namespace)?;
                }
                self.output.push(']');
                Ok(())
            }
            Value::Object(attributes) => self.complex(attributes, namespace),
            _ => Err(CanonicalFormError::Invalid(
                "a schema is a string, an array or an object",
            )),
        }
    }

    fn complex(
        &mut self,
        attributes: &Map<String, Value>,
        namespace: Option<&str>,
    ) -> Result<(), Invalid> {
        let type_name = match attributes.get("type") {
            Some(Value::String(type_name)) => type_name.as_str(),
            // `{"type": {...}}` or `{"type": [...]}`: the object only wraps another schema.
            Some(inner @ (Value::Object(_) | Value::Array(_))) => {
                return self.schema(inner, namespace);
            }
            _ => {
                return Err(CanonicalFormError::Invalid(
                    "a schema object lacks its type",
                ));
            }
        };
        match type_name {
            "record" | "error" => {
                let Some(full_name) = self.define(attributes, namespace)? else {
                    return Ok(());
                };
                let inner_namespace = namespace_of(&full_name);
                self.output.push_str(",\"type\":\"record\",\"fields\":[");
                let fields = attributes
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or(CanonicalFormError::Invalid("a record lacks its fields"))?;
                for (index, field) in fields.iter().enumerate() {
                    if index > 0 {
                        self.output.push(',');
                    }
                    let field_name = field
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or(CanonicalFormError::Invalid("a record field lacks its name"))?;
                    let field_type = field
                        .get("type")
                        .ok_or(CanonicalFormError::Invalid("a record field lacks its type"))?;
                    self.output.push_str("{\"name\":");
                    self.string(field_name);
                    self.output.push_str(",\"type\":");
                    self.schema(field_type, inner_namespace)?;
                    self.output.push('}');
                }
                self.output.push_str("]}");
                Ok(())
            }
            "enum" => {
                if self.define(attributes, namespace)?.is_none() {
                    return Ok(());
                }
                self.output.push_str(",\"type\":\"enum\",\"symbols\":[");
                let symbols = attributes
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or(CanonicalFormError::Invalid("an enum lacks its symbols"))?;
                for (index, symbol) in symbols.iter().enumerate() {
                    if index > 0 {
                        self.output.push(',');
                    }
                    let symbol = symbol.as_str().ok_or(CanonicalFormError::Invalid(
                        "an enum symbol is not a string",
                    ))?;
                    self.string(symbol);
                }
                self.output.push_str("]}");
                Ok(())
            }
            "fixed" => {
                if self.define(attributes, namespace)?.is_none() {
                    return Ok(());
                }
                let size = attributes
                    .get("size")
                    .and_then(Value::as_u64)
                    .ok_or(CanonicalFormError::Invalid("a fixed lacks its size"))?;
                self.output.push_str(",\"type\":\"fixed\",\"size\":");
                self.output.push_str(&size.to_string());
                self.output.push('}');
                Ok(())
            }
            "array" | "map" => {
                let (attribute, missing) = if type_name == "array" {
                    ("items", "an array lacks its items")
                } else {
                    ("values", "a map lacks its values")
                };
                let inner = attributes
                    .get(attribute)
                    .ok_or(CanonicalFormError::Invalid(missing))?;
                self.output.push_str("{\"type\":");
                self.string(type_name);
                self.output.push(',');
                self.string(attribute);
                self.output.push(':');
                self.schema(inner, namespace)?;
                self.output.push('}');
                Ok(())
            }
            // A primitive, with or without a logical type (PRIMITIVES after STRIP), or a
            // reference to a named type written as an object.
            other => {
                self.type_name(other, namespace);
                Ok(())
            }
        }
    }

    /// Opens a named type's object with its full name, or writes only the full name (and
    /// returns `None`) when the type was defined before.
    fn define(
        &mut self,
        attributes: &Map<String, Value>,
        namespace: Option<&str>,
    ) -> Result<Option<String>, Invalid> {
        let name = attributes
            .get("name")
            .and_then(Value::as_str)
            .ok_or(CanonicalFormError::Invalid("a named type lacks its name"))?;
        let own_namespace = match attributes.get("namespace") {
            Some(Value::String(own)) => Some(own.as_str()),
            Some(Value::Null) | None => namespace,
            Some(_) => return Err(CanonicalFormError::Invalid("a namespace is not a string")),
        };
        let full_name = full_name(name, own_namespace);
        if !self.defined.insert(full_name.clone()) {
            self.string(&full_name);
            return Ok(None);
        }
        self.output.push_str("{\"name\":");
        self.string(&full_name);
        Ok(Some(full_name))
    }

    /// A primitive's name, or a reference to a named type as its full name.
    fn type_name(&mut self, name: &str, namespace: Option<&str>) {
        if PRIMITIVES.contains(&name) {
            self.string(name);
            return;
        }
        let qualified = full_name(name, namespace);
        // A short name that is not defined in the enclosing namespace refers to the null
        // namespace, as in the Java implementation's lookup.
        if !self.defined.contains(&qualified) && self.defined.contains(name) {
            self.string(name);
        } else {
            self.string(&qualified);
        }
    }

    fn string(&mut self, text: &str) {
        // serde_json escapes only what JSON requires and writes other characters as UTF-8.
        match serde_json::to_string(text) {
            Ok(quoted) => self.output.push_str(&quoted),
            // Serializing a &str cannot fail; keep the output valid regardless.
            Err(_) => self.output.push_str("\"\""),
        }
    }
}

type Invalid = CanonicalFormError;

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        _ if name.contains('.') => name.to_owned(),
        Some(namespace) if !namespace.is_empty() => format!("{namespace}.{name}"),
        _ => name.to_owned(),
    }
}

fn namespace_of(full_name: &str) -> Option<&str> {
    full_name.rsplit_once('.').map(|(namespace, _)| namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases of the specification's rules; fastavro 1.13 gives the same forms for each.
    #[test]
    fn canonical_forms_follow_the_specification() {
        let cases = [
            (r#""int""#, r#""int""#),
            (r#"{"type":"int"}"#, r#""int""#),
            (r#"{"type":"string","logicalType":"uuid"}"#, r#""string""#),
            (
                r#"{"type":"bytes","logicalType":"decimal","precision":18,"scale":4}"#,
                r#""bytes""#,
            ),
            (
                r#"{"type":"long","logicalType":"timestamp-millis"}"#,
                r#""long""#,
            ),
            (
                r#"["null",{"type":"int","logicalType":"date"}]"#,
                r#"["null","int"]"#,
            ),
            (
                r#"{"type":"array","items":{"type":"string"},"default":[]}"#,
                r#"{"type":"array","items":"string"}"#,
            ),
            (
                r#"{"values":"long","type":"map"}"#,
                r#"{"type":"map","values":"long"}"#,
            ),
            (
                r#"{"type":"fixed","name":"F","namespace":"a.b","size":16,"aliases":["G"]}"#,
                r#"{"name":"a.b.F","type":"fixed","size":16}"#,
            ),
            (
                r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A","doc":"d"}"#,
                r#"{"name":"E","type":"enum","symbols":["A","B"]}"#,
            ),
            (
                r#"{"namespace":"n","type":"record","name":"R","doc":"x","fields":[
                    {"name":"a","type":{"type":"record","name":"Inner","fields":[]},"default":{}},
                    {"name":"b","type":"Inner","order":"descending"},
                    {"name":"c","type":{"type":"enum","name":"o.E","symbols":["X"]}},
                    {"name":"d","type":"o.E"},
                    {"name":"e","type":{"type":"fixed","name":"F","namespace":"","size":1}}
                ]}"#,
                concat!(
                    r#"{"name":"n.R","type":"record","fields":["#,
                    r#"{"name":"a","type":{"name":"n.Inner","type":"record","fields":[]}},"#,
                    r#"{"name":"b","type":"n.Inner"},"#,
                    r#"{"name":"c","type":{"name":"o.E","type":"enum","symbols":["X"]}},"#,
                    r#"{"name":"d","type":"o.E"},"#,
                    r#"{"name":"e","type":{"name":"F","type":"fixed","size":1}}]}"#,
                ),
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(
                parsing_canonical_form(schema).as_deref(),
                Ok(expected),
                "{schema}"
            );
        }
    }

    #[test]
    fn crc64_avro_matches_the_reference_values() {
        // Fingerprints of primitive schemas, from the Avro repository's share/test/data/
        // schema-tests.txt (as signed 64-bit integers, the Java `long`).
        assert_eq!(crc64_avro(br#""null""#) as i64, 7_195_948_357_588_979_594);
        assert_eq!(crc64_avro(br#""int""#) as i64, 8_247_732_601_305_521_295);
        assert_eq!(
            crc64_avro(br#""string""#) as i64,
            -8_142_146_995_180_207_161
        );
    }

    #[test]
    fn invalid_schemas_are_errors_not_panics() {
        for schema in [
            "",
            "1",
            r#"{"name":"x"}"#,
            r#"{"type":"record","fields":[]}"#,
            r#"{"type":"record","name":"R"}"#,
            r#"{"type":"record","name":"R","fields":[{"type":"int"}]}"#,
            r#"{"type":"enum","name":"E","symbols":[1]}"#,
            r#"{"type":"fixed","name":"F","size":"1"}"#,
            r#"{"type":"array"}"#,
            r#"{"type":"map"}"#,
        ] {
            assert!(parsing_canonical_form(schema).is_err(), "{schema}");
        }
    }
}
