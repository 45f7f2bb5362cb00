//! Deterministic event ids: observing the same change twice yields the same id, so JetStream
//! (`Nats-Msg-Id`) and recipients (idempotency key) drop the duplicate.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::EventType;
use crate::model::SourceSystem;

/// The UUIDv5 namespace of koppel event ids. Never change it: every id ever issued depends on it.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b6f_7070_656c_4000_8000_6576_656e_7473);

/// What identifies one observed change of one entity.
///
/// The design named (source, connection, entity type, entity id, content hash). Two additions
/// keep distinct changes from colliding: the event type (an `EmployeeRemoved` carries the same
/// content as the last `EmployeeUpdated`), and the entity revision (a value that changes A -> B
/// -> A would otherwise get A's old id back, and a recipient would drop the second A as a
/// duplicate). The revision comes from the snapshot, so a re-run after a crash, which has not
/// advanced the snapshot, still derives the same id.
///
/// The employer key is an input too. One connection serves many employers, and a source's
/// entity ids are not unique across them (Unit4's employee ids live under
/// `/werkgevers/{employer}`; a removal carries only the id, and revisions are per employer).
/// Without it, the same change in two employers of one connection got one id, and the events
/// stream's duplicate window silently dropped the second employer's event. Adding it changed
/// every id: a change published by an older release but not yet in its snapshot (a run that
/// crashed before saving) is re-published after the upgrade under a new id, so neither the
/// duplicate window nor a recipient's idempotency key absorbs it; see schemas/README.md,
/// "Event ids".
#[derive(Debug, Clone, Copy)]
pub struct EventIdInput<'a> {
    pub source: SourceSystem,
    pub connection_id: &'a str,
    pub employer_key: &'a str,
    pub event_type: EventType,
    pub entity_id: &'a str,
    pub revision: i64,
    pub content_hash: &'a [u8; 32],
}

pub fn derive_event_id(input: EventIdInput<'_>) -> Uuid {
    // Length-prefixed fields: no separator character can make two inputs collide.
    let mut name = Vec::with_capacity(128);
    for field in [
        input.source.as_token().as_bytes(),
        input.connection_id.as_bytes(),
        input.employer_key.as_bytes(),
        input.event_type.schema_name().as_bytes(),
        input.entity_id.as_bytes(),
        &input.revision.to_be_bytes(),
        input.content_hash.as_slice(),
    ] {
        name.extend_from_slice(&(field.len() as u64).to_be_bytes());
        name.extend_from_slice(field);
    }
    Uuid::new_v5(&EVENT_ID_NAMESPACE, &name)
}

/// SHA-256 over a canonical byte rendering of an entity's content. Extractors hash the Avro
/// datum of the mapped entity, which is deterministic for equal values.
pub fn content_hash(canonical_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(canonical_bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(revision: i64, hash: &'a [u8; 32]) -> EventIdInput<'a> {
        EventIdInput {
            source: SourceSystem::Loket,
            connection_id: "conn-1",
            employer_key: "conn-1-77",
            event_type: EventType::EmployeeUpdated,
            entity_id: "emp-1",
            revision,
            content_hash: hash,
        }
    }

    #[test]
    fn same_observation_same_id() {
        let hash = content_hash(b"state A");
        assert_eq!(
            derive_event_id(input(3, &hash)),
            derive_event_id(input(3, &hash))
        );
        assert_eq!(derive_event_id(input(3, &hash)).get_version_num(), 5);
    }

    #[test]
    fn any_difference_gives_another_id() {
        let a = content_hash(b"state A");
        let b = content_hash(b"state B");
        let base = derive_event_id(input(3, &a));
        assert_ne!(base, derive_event_id(input(3, &b)));
        assert_ne!(
            base,
            derive_event_id(input(4, &a)),
            "A -> B -> A must not reuse A's id"
        );
        let removed = EventIdInput {
            event_type: EventType::EmployeeRemoved,
            ..input(3, &a)
        };
        assert_ne!(base, derive_event_id(removed));
        let other_connection = EventIdInput {
            connection_id: "conn-2",
            ..input(3, &a)
        };
        assert_ne!(base, derive_event_id(other_connection));
    }

    /// Two employers of one connection with an employee of the same source id, at the same
    /// revision with the same content (a removal carries only the id): two events, two ids.
    #[test]
    fn two_employers_of_one_connection_never_share_an_id() {
        let removed = content_hash(b"employee 1, removed");
        let of_employer = |employer_key| EventIdInput {
            employer_key,
            event_type: EventType::EmployeeRemoved,
            entity_id: "1",
            ..input(2, &removed)
        };
        assert_ne!(
            derive_event_id(of_employer("conn-1-77")),
            derive_event_id(of_employer("conn-1-78"))
        );
    }

    /// Ids are a contract: they must not change by accident (a refactor of the input layout
    /// would make every re-observed change a new event for recipients).
    /// Computed independently (Python's hashlib over the same length-prefixed name, UUIDv5
    /// version and variant bits set by hand).
    const STABLE_ID_OF_INPUT_3_STATE_A: &str = "faa2980b-8ae2-5875-a9c0-7d4d1c1079cd";

    #[test]
    fn ids_are_stable() {
        let hash = content_hash(b"state A");
        assert_eq!(
            derive_event_id(input(3, &hash)).to_string(),
            STABLE_ID_OF_INPUT_3_STATE_A
        );
    }

    #[test]
    fn field_boundaries_cannot_collide() {
        let hash = content_hash(b"x");
        let one = EventIdInput {
            connection_id: "ab",
            entity_id: "c",
            ..input(1, &hash)
        };
        let two = EventIdInput {
            connection_id: "a",
            entity_id: "bc",
            ..input(1, &hash)
        };
        assert_ne!(derive_event_id(one), derive_event_id(two));
    }
}
