//! The verdict of one comparison between the ground truth and what koppel published: one
//! [`Discrepancy`] per entity whose event is missing, of the wrong type, names too few
//! changed fields, or should not be there. Callers count losses by matching on the variant
//! (only [`Discrepancy::Missing`] is a loss); `Display` gives the readable line for logs.

use std::collections::BTreeSet;
use std::fmt;

use koppel_events::EventType;

/// How one entity's published event differs from the ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    /// The ground truth has a change of `entity` and nothing was published for it: a loss.
    Missing { entity: String, expected: EventType },
    /// An event was published for `entity`, but of another type.
    WrongEventType {
        entity: String,
        expected: EventType,
        published: EventType,
    },
    /// The event names fewer changed fields than the log: `expected` is not a subset of
    /// `published`.
    FieldsDiffer {
        entity: String,
        expected: BTreeSet<String>,
        published: BTreeSet<String>,
    },
    /// An event was published for `entity` although the ground truth has no change of it.
    Extra {
        entity: String,
        published: EventType,
        fields: BTreeSet<String>,
    },
}

impl Discrepancy {
    /// Whether a ground-truth change never reached the stream. Every other discrepancy is a
    /// mismatch that loses nothing.
    pub fn is_loss(&self) -> bool {
        match self {
            Discrepancy::Missing { .. } => true,
            Discrepancy::WrongEventType { .. }
            | Discrepancy::FieldsDiffer { .. }
            | Discrepancy::Extra { .. } => false,
        }
    }

    /// The entity id the discrepancy is about.
    pub fn entity(&self) -> &str {
        match self {
            Discrepancy::Missing { entity, .. }
            | Discrepancy::WrongEventType { entity, .. }
            | Discrepancy::FieldsDiffer { entity, .. }
            | Discrepancy::Extra { entity, .. } => entity,
        }
    }
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::Missing { entity, expected } => {
                write!(formatter, "missing {expected:?} for {entity}")
            }
            Discrepancy::WrongEventType {
                entity,
                expected,
                published,
            } => write!(
                formatter,
                "{entity}: expected {expected:?}, got {published:?}"
            ),
            Discrepancy::FieldsDiffer {
                entity,
                expected,
                published,
            } => write!(
                formatter,
                "{entity}: log names {expected:?}, event {published:?}"
            ),
            Discrepancy::Extra {
                entity,
                published,
                fields,
            } => write!(formatter, "extra {published:?} {fields:?} for {entity}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_event_is_a_loss_and_each_reads_as_one_line() {
        let fields = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        let cases = [
            (
                Discrepancy::Missing {
                    entity: "e1".to_owned(),
                    expected: EventType::EmploymentChanged,
                },
                true,
                "missing EmploymentChanged for e1",
            ),
            (
                Discrepancy::WrongEventType {
                    entity: "e2".to_owned(),
                    expected: EventType::EmploymentEnded,
                    published: EventType::EmploymentChanged,
                },
                false,
                "e2: expected EmploymentEnded, got EmploymentChanged",
            ),
            (
                Discrepancy::FieldsDiffer {
                    entity: "e3".to_owned(),
                    expected: fields(&["hours"]),
                    published: fields(&["salary"]),
                },
                false,
                "e3: log names {\"hours\"}, event {\"salary\"}",
            ),
            (
                Discrepancy::Extra {
                    entity: "e4".to_owned(),
                    published: EventType::EmployeeUpdated,
                    fields: fields(&["name"]),
                },
                false,
                "extra EmployeeUpdated {\"name\"} for e4",
            ),
        ];
        for (discrepancy, loss, line) in cases {
            assert_eq!(discrepancy.is_loss(), loss, "{discrepancy}");
            assert_eq!(discrepancy.to_string(), line);
        }
    }
}
