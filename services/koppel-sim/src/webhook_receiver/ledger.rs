//! The webhook receiver's books: accepted and aborted message ids, the per-employee order marks,
//! the abort rules, and the journal of every verified message. No IO, so the rules are testable
//! without a server.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::faults::FaultCounts;

/// The employee a message is about, for the per-employee order check: `data.employee_id`,
/// qualified by `data.employer_key` when the payload has one (employee ids are only unique within
/// one source employer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EmployeeKey {
    pub employer_key: Option<String>,
    pub employee_id: String,
}

/// How the receiver answered one verified message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// First delivery of this `webhook-id`: 200, applied.
    Accepted,
    /// The `webhook-id` was accepted before: 200, not applied again.
    Duplicate,
    /// The type is configured for abort: answered with `webhook-delivery: abort-message`.
    Aborted,
    /// The `webhook-id` was aborted before and the sender tried it again anyway: it ignored the
    /// abort instruction. Answered with the abort again.
    RetriedAfterAbort,
}

/// One journal line: a message whose signature and timestamp were valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedWebhook {
    pub webhook_id: String,
    /// The `webhook-timestamp` of this attempt, in Unix seconds.
    pub webhook_timestamp: i64,
    pub message_type: String,
    pub stream_sequence: Option<u64>,
    pub employee: Option<EmployeeKey>,
    pub received_at: DateTime<Utc>,
    pub outcome: WebhookOutcome,
    /// The stream sequence was lower than one already accepted for the same employee.
    pub order_violation: bool,
    /// The whole JSON body, `{type, timestamp, data}`.
    pub body: serde_json::Value,
}

/// Totals for tests and the demo summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookSummary {
    /// Journal lines: every verified message.
    pub received: u64,
    pub accepted: u64,
    pub duplicates: u64,
    /// Duplicates whose body differed from the first delivery: the sender changed the payload
    /// under the same id, which receivers deduplicating on the id would silently lose.
    pub duplicates_with_different_body: u64,
    pub aborted: u64,
    pub retried_after_abort: u64,
    /// Refusals before the journal (bad signature, stale timestamp, ...) by reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub order_violations: u64,
    /// Verified messages without a `koppel-stream-sequence` header; their order was not judged.
    pub without_stream_sequence: u64,
    pub faults: FaultCounts,
}

/// A message that passed the signature and timestamp checks.
#[derive(Debug)]
pub(crate) struct VerifiedMessage {
    pub(crate) webhook_id: String,
    pub(crate) webhook_timestamp: i64,
    pub(crate) message_type: String,
    pub(crate) stream_sequence: Option<u64>,
    pub(crate) employee: Option<EmployeeKey>,
    pub(crate) body_fingerprint: [u8; 32],
    pub(crate) body: serde_json::Value,
    pub(crate) received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookAnswer {
    Accepted,
    Duplicate,
    Abort(StatusCode),
}

#[derive(Debug, Default)]
pub(crate) struct WebhookLedger {
    /// Message type -> the status sent together with `webhook-delivery: abort-message`.
    abort_rules: HashMap<String, StatusCode>,
    accepted_ids: HashMap<String, [u8; 32]>,
    aborted_ids: HashMap<String, StatusCode>,
    highest_accepted_sequence: HashMap<EmployeeKey, u64>,
    journal: Vec<ReceivedWebhook>,
    rejected_by_reason: BTreeMap<String, u64>,
    accepted: u64,
    duplicates: u64,
    duplicates_with_different_body: u64,
    aborted: u64,
    retried_after_abort: u64,
    order_violations: u64,
    without_stream_sequence: u64,
}

impl WebhookLedger {
    pub(crate) fn set_abort_rule(&mut self, message_type: String, status: StatusCode) {
        self.abort_rules.insert(message_type, status);
    }

    pub(crate) fn clear_abort_rules(&mut self) {
        self.abort_rules.clear();
    }

    pub(crate) fn count_rejection(&mut self, reason: &str) {
        *self
            .rejected_by_reason
            .entry(reason.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn journal(&self) -> &[ReceivedWebhook] {
        &self.journal
    }

    pub(crate) fn summary(&self, faults: FaultCounts) -> WebhookSummary {
        WebhookSummary {
            received: self.journal.len() as u64,
            accepted: self.accepted,
            duplicates: self.duplicates,
            duplicates_with_different_body: self.duplicates_with_different_body,
            aborted: self.aborted,
            retried_after_abort: self.retried_after_abort,
            rejected_by_reason: self.rejected_by_reason.clone(),
            order_violations: self.order_violations,
            without_stream_sequence: self.without_stream_sequence,
            faults,
        }
    }

    pub(crate) fn process(&mut self, message: VerifiedMessage) -> WebhookAnswer {
        let VerifiedMessage {
            webhook_id,
            webhook_timestamp,
            message_type,
            stream_sequence,
            employee,
            body_fingerprint,
            body,
            received_at,
        } = message;
        let mut line = ReceivedWebhook {
            webhook_id,
            webhook_timestamp,
            message_type,
            stream_sequence,
            employee,
            received_at,
            outcome: WebhookOutcome::Accepted,
            order_violation: false,
            body,
        };

        if let Some(status) = self.aborted_ids.get(&line.webhook_id).copied() {
            self.retried_after_abort += 1;
            line.outcome = WebhookOutcome::RetriedAfterAbort;
            self.journal.push(line);
            return WebhookAnswer::Abort(status);
        }
        if let Some(first_fingerprint) = self.accepted_ids.get(&line.webhook_id) {
            self.duplicates += 1;
            if *first_fingerprint != body_fingerprint {
                self.duplicates_with_different_body += 1;
            }
            line.outcome = WebhookOutcome::Duplicate;
            self.journal.push(line);
            return WebhookAnswer::Duplicate;
        }

        match (&line.employee, line.stream_sequence) {
            (Some(employee), Some(sequence)) => {
                if self
                    .highest_accepted_sequence
                    .get(employee)
                    .is_some_and(|highest| sequence < *highest)
                {
                    line.order_violation = true;
                    self.order_violations += 1;
                }
            }
            (_, None) => self.without_stream_sequence += 1,
            (None, Some(_)) => {}
        }

        if let Some(status) = self.abort_rules.get(&line.message_type).copied() {
            self.aborted += 1;
            self.aborted_ids.insert(line.webhook_id.clone(), status);
            line.outcome = WebhookOutcome::Aborted;
            self.journal.push(line);
            return WebhookAnswer::Abort(status);
        }

        self.accepted += 1;
        self.accepted_ids
            .insert(line.webhook_id.clone(), body_fingerprint);
        if let (Some(employee), Some(sequence)) = (&line.employee, line.stream_sequence) {
            let highest = self
                .highest_accepted_sequence
                .entry(employee.clone())
                .or_default();
            *highest = (*highest).max(sequence);
        }
        self.journal.push(line);
        WebhookAnswer::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, sequence: Option<u64>, employee_id: Option<&str>) -> VerifiedMessage {
        VerifiedMessage {
            webhook_id: id.to_owned(),
            webhook_timestamp: 1_700_000_000,
            message_type: "employment.changed".to_owned(),
            stream_sequence: sequence,
            employee: employee_id.map(|employee_id| EmployeeKey {
                employer_key: Some("acme".to_owned()),
                employee_id: employee_id.to_owned(),
            }),
            body_fingerprint: [0; 32],
            body: serde_json::json!({}),
            received_at: Utc::now(),
        }
    }

    #[test]
    fn order_is_judged_per_employee_and_duplicates_are_not_violations() {
        let mut ledger = WebhookLedger::default();
        assert_eq!(
            ledger.process(message("a", Some(10), Some("e1"))),
            WebhookAnswer::Accepted
        );
        assert_eq!(
            ledger.process(message("b", Some(5), Some("e2"))),
            WebhookAnswer::Accepted
        );
        assert_eq!(
            ledger.process(message("a", Some(10), Some("e1"))),
            WebhookAnswer::Duplicate
        );
        assert_eq!(
            ledger.process(message("c", Some(7), Some("e1"))),
            WebhookAnswer::Accepted
        );
        let summary = ledger.summary(FaultCounts::default());
        assert_eq!(summary.accepted, 3);
        assert_eq!(summary.duplicates, 1);
        assert_eq!(summary.order_violations, 1);
        let violating: Vec<&str> = ledger
            .journal()
            .iter()
            .filter(|line| line.order_violation)
            .map(|line| line.webhook_id.as_str())
            .collect();
        assert_eq!(violating, ["c"]);
    }

    #[test]
    fn messages_without_sequence_or_employee_are_not_judged() {
        let mut ledger = WebhookLedger::default();
        ledger.process(message("a", Some(10), None));
        ledger.process(message("b", Some(1), None));
        ledger.process(message("c", None, Some("e1")));
        let summary = ledger.summary(FaultCounts::default());
        assert_eq!(summary.order_violations, 0);
        assert_eq!(summary.without_stream_sequence, 1);
    }

    #[test]
    fn an_aborted_id_tried_again_is_counted_as_ignoring_the_abort() {
        let mut ledger = WebhookLedger::default();
        ledger.set_abort_rule(
            "employment.changed".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        let abort = WebhookAnswer::Abort(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(ledger.process(message("a", Some(1), Some("e1"))), abort);
        ledger.clear_abort_rules();
        assert_eq!(ledger.process(message("a", Some(1), Some("e1"))), abort);
        let summary = ledger.summary(FaultCounts::default());
        assert_eq!(
            (
                summary.aborted,
                summary.retried_after_abort,
                summary.accepted
            ),
            (1, 1, 0)
        );
    }
}
