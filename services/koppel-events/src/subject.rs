//! Subject, stream, bucket and header names: the NATS side of the contract, as constants and
//! builders so no service spells a subject by hand.
//!
//! Subjects: `koppel.events.<source>.<employer_key>.<entity>` and
//! `koppel.dlq.<recipient>.<employer_key>`. A namespace (tests use one per test) prefixes every
//! subject and every stream and bucket name, so runs never see each other's data.

use crate::event::EntityType;
use crate::model::SourceSystem;

pub const EVENTS_STREAM: &str = "KOPPEL_EVENTS";
pub const DLQ_STREAM: &str = "KOPPEL_DLQ";

pub const REGISTRY_BUCKET: &str = "koppel_registry";
pub const SNAPSHOTS_BUCKET: &str = "koppel_snapshots";
pub const WATERMARKS_BUCKET: &str = "koppel_watermarks";
pub const TOKENS_BUCKET: &str = "koppel_tokens";
pub const LEASES_BUCKET: &str = "koppel_leases";
pub const SCHEMAS_BUCKET: &str = "koppel_schemas";

/// NATS message header names koppel sets.
pub mod header {
    /// JetStream's deduplication header; koppel puts the event id in it.
    pub const MESSAGE_ID: &str = "Nats-Msg-Id";
    /// `EmployeeCreated`, ...: lets consumers filter or route without decoding.
    pub const EVENT_TYPE: &str = "Koppel-Event-Type";
    /// Hex fingerprint of the writer schema, also in the payload; for tools that only read headers.
    pub const SCHEMA_FINGERPRINT: &str = "Koppel-Schema-Fingerprint";
    /// The employee whose events must stay in order; absent for employer and sync events.
    pub const EMPLOYEE_ID: &str = "Koppel-Employee-Id";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const AVRO_CONTENT_TYPE: &str = "avro/binary";

    /// Dead-letter headers: why, how often, for whom, and where the event came from.
    pub const DLQ_ERROR: &str = "Koppel-Dlq-Error";
    pub const DLQ_ERROR_CLASS: &str = "Koppel-Dlq-Error-Class";
    pub const DLQ_ATTEMPTS: &str = "Koppel-Dlq-Attempts";
    pub const DLQ_RECIPIENT: &str = "Koppel-Dlq-Recipient";
    pub const DLQ_ORIGINAL_SUBJECT: &str = "Koppel-Dlq-Original-Subject";
    pub const DLQ_ORIGINAL_SEQUENCE: &str = "Koppel-Dlq-Original-Sequence";
}

/// Why a string cannot be a subject token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is not a valid subject token: use letters, digits, '-' and '_' only")]
pub struct TokenError {
    pub kind: &'static str,
    pub value: String,
}

/// Checks a value used as a subject token (employer key, recipient name, namespace): no dots,
/// wildcards or whitespace, which would change the subject's shape.
pub fn validate_token(kind: &'static str, value: &str) -> Result<(), TokenError> {
    let valid = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(TokenError {
            kind,
            value: value.to_owned(),
        })
    }
}

/// Names of every stream, bucket and subject of one koppel installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    namespace: Option<String>,
}

impl Names {
    /// The production names.
    pub fn production() -> Self {
        Names { namespace: None }
    }

    /// Names prefixed by `namespace`, for tests and side-by-side installations.
    pub fn namespaced(namespace: &str) -> Result<Self, TokenError> {
        validate_token("namespace", namespace)?;
        Ok(Names {
            namespace: Some(namespace.to_owned()),
        })
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn subject_prefix(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}.koppel"),
            None => "koppel".to_owned(),
        }
    }

    fn upper(&self, base: &str) -> String {
        match &self.namespace {
            Some(namespace) => format!("{}_{base}", namespace.to_uppercase()),
            None => base.to_owned(),
        }
    }

    fn lower(&self, base: &str) -> String {
        match &self.namespace {
            Some(namespace) => format!("{}_{base}", namespace.to_lowercase()),
            None => base.to_owned(),
        }
    }

    pub fn events_stream(&self) -> String {
        self.upper(EVENTS_STREAM)
    }

    pub fn dlq_stream(&self) -> String {
        self.upper(DLQ_STREAM)
    }

    pub fn bucket(&self, base: &str) -> String {
        self.lower(base)
    }

    /// `koppel.events.>`: what the events stream captures.
    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.subject_prefix())
    }

    /// `koppel.dlq.>`: what the dead-letter stream captures.
    pub fn dlq_wildcard(&self) -> String {
        format!("{}.dlq.>", self.subject_prefix())
    }

    /// `koppel.events.<source>.<employer_key>.<entity>`.
    pub fn event_subject(
        &self,
        source: SourceSystem,
        employer_key: &str,
        entity: EntityType,
    ) -> Result<String, TokenError> {
        validate_token("employer key", employer_key)?;
        Ok(format!(
            "{}.events.{}.{employer_key}.{}",
            self.subject_prefix(),
            source.as_token(),
            entity.as_token()
        ))
    }

    /// Every event of one employer, from any source: a recipient consumer's filter.
    pub fn employer_filter(&self, employer_key: &str) -> Result<String, TokenError> {
        validate_token("employer key", employer_key)?;
        Ok(format!(
            "{}.events.*.{employer_key}.>",
            self.subject_prefix()
        ))
    }

    /// Events of one source and/or one employer: `koppel.events.<source|*>.<employer|*>.>`.
    pub fn events_filter(
        &self,
        source: Option<SourceSystem>,
        employer_key: Option<&str>,
    ) -> Result<String, TokenError> {
        if let Some(employer_key) = employer_key {
            validate_token("employer key", employer_key)?;
        }
        Ok(format!(
            "{}.events.{}.{}.>",
            self.subject_prefix(),
            source.map_or("*", SourceSystem::as_token),
            employer_key.unwrap_or("*")
        ))
    }

    /// `koppel.dlq.<recipient>.<employer_key>`.
    pub fn dlq_subject(&self, recipient: &str, employer_key: &str) -> Result<String, TokenError> {
        validate_token("recipient", recipient)?;
        validate_token("employer key", employer_key)?;
        Ok(format!(
            "{}.dlq.{recipient}.{employer_key}",
            self.subject_prefix()
        ))
    }

    /// Dead letters of one recipient, optionally of one employer.
    pub fn dlq_filter(
        &self,
        recipient: &str,
        employer_key: Option<&str>,
    ) -> Result<String, TokenError> {
        validate_token("recipient", recipient)?;
        match employer_key {
            Some(employer_key) => self.dlq_subject(recipient, employer_key),
            None => Ok(format!("{}.dlq.{recipient}.*", self.subject_prefix())),
        }
    }

    /// The durable consumer of one recipient.
    pub fn delivery_consumer(&self, recipient: &str) -> Result<String, TokenError> {
        validate_token("recipient", recipient)?;
        Ok(format!("deliver-{recipient}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_names_match_the_design() {
        let names = Names::production();
        assert_eq!(names.events_stream(), "KOPPEL_EVENTS");
        assert_eq!(names.dlq_stream(), "KOPPEL_DLQ");
        assert_eq!(
            names
                .event_subject(SourceSystem::Loket, "acme-1", EntityType::Employee)
                .unwrap(),
            "koppel.events.loket.acme-1.employee"
        );
        assert_eq!(
            names.employer_filter("acme-1").unwrap(),
            "koppel.events.*.acme-1.>"
        );
        assert_eq!(
            names.dlq_subject("insurer", "acme-1").unwrap(),
            "koppel.dlq.insurer.acme-1"
        );
        assert_eq!(
            names.delivery_consumer("insurer").unwrap(),
            "deliver-insurer"
        );
        assert_eq!(names.bucket(TOKENS_BUCKET), "koppel_tokens");
    }

    #[test]
    fn namespaces_prefix_everything() {
        let names = Names::namespaced("t42").unwrap();
        assert_eq!(names.events_stream(), "T42_KOPPEL_EVENTS");
        assert_eq!(names.events_wildcard(), "t42.koppel.events.>");
        assert_eq!(names.bucket(SCHEMAS_BUCKET), "t42_koppel_schemas");
    }

    #[test]
    fn tokens_that_would_change_a_subject_are_refused() {
        let names = Names::production();
        for bad in ["a.b", "*", ">", "a b", "", "ä"] {
            assert!(
                names
                    .event_subject(SourceSystem::Loket, bad, EntityType::Employee)
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(Names::namespaced("x.y").is_err());
    }
}
