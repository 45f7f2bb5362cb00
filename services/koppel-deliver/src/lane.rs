//! Lanes: the unit of ordering. Events of one employee of one employer form a lane and reach a
//! recipient one at a time, in stream order; employer and sync events (no employee) form one
//! lane per employer. Different lanes proceed in parallel.
//!
//! The key is read from the subject and the `Koppel-Employee-Id` header, never from the payload,
//! so an undecodable message still lands in the right lane (and parks it, instead of letting
//! that employee's later events overtake it).

use std::fmt;

use async_nats::HeaderMap;
use koppel_events::subject::{header, validate_token};

/// The employer key used for a message whose subject does not name one. It cannot occur for
/// messages the consumer's filters let through; it exists so that such a message is still
/// dead-lettered somewhere visible rather than dropped.
pub const UNKNOWN_EMPLOYER: &str = "_unknown";

/// Which lane a message belongs to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaneKey {
    pub employer_key: String,
    /// `None` for employer and sync events, which order per employer.
    pub employee_id: Option<String>,
}

/// Employee ids are source identifiers, not personal data like a BSN, but they are still kept
/// out of casual output: Debug shows the employer and whether there is an employee.
impl fmt::Debug for LaneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaneKey")
            .field("employer_key", &self.employer_key)
            .field("employee_id", &self.employee_id)
            .finish()
    }
}

impl LaneKey {
    /// The lane of a message on `koppel.events.<source>.<employer_key>.<entity>` (with any
    /// namespace prefix) carrying `headers`.
    pub fn of_message(subject: &str, headers: Option<&HeaderMap>) -> Self {
        LaneKey {
            employer_key: employer_of_event_subject(subject)
                .unwrap_or(UNKNOWN_EMPLOYER)
                .to_owned(),
            employee_id: headers
                .and_then(|headers| headers.get(header::EMPLOYEE_ID))
                .map(|value| value.as_str().to_owned())
                .filter(|value| !value.is_empty()),
        }
    }
}

/// The employer token of an event subject: the second-to-last token, since the namespace prefix
/// varies in length but the tail `<source>.<employer_key>.<entity>` does not.
pub fn employer_of_event_subject(subject: &str) -> Option<&str> {
    let mut tokens = subject.rsplit('.');
    let _entity = tokens.next()?;
    let employer = tokens.next()?;
    let _source = tokens.next()?;
    let events = tokens.next()?;
    (events == "events" && validate_token("employer key", employer).is_ok()).then_some(employer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn employer_comes_from_the_subject_with_or_without_namespace() {
        assert_eq!(
            employer_of_event_subject("koppel.events.loket.acme-1.employment"),
            Some("acme-1")
        );
        assert_eq!(
            employer_of_event_subject("t123.koppel.events.loket.acme-1.employee"),
            Some("acme-1")
        );
        assert_eq!(employer_of_event_subject("koppel.dlq.x.acme-1"), None);
        assert_eq!(employer_of_event_subject("acme"), None);
    }

    #[test]
    fn employee_comes_from_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::EMPLOYEE_ID, "emp-7");
        let lane = LaneKey::of_message("koppel.events.loket.acme.employee", Some(&headers));
        assert_eq!(lane.employer_key, "acme");
        assert_eq!(lane.employee_id.as_deref(), Some("emp-7"));
        let lane = LaneKey::of_message("koppel.events.loket.acme.sync", None);
        assert_eq!(lane.employee_id, None);
        let lane = LaneKey::of_message("garbage", None);
        assert_eq!(lane.employer_key, UNKNOWN_EMPLOYER);
    }
}
