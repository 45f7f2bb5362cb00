//! The closed sets of outcomes. Every match over them is exhaustive, so adding a class forces
//! every place that settles messages to decide what it means.

use std::time::Duration;

/// What one attempt to hand an event to a recipient came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The recipient has it. `duplicate` when it said it had it already (idempotency key seen).
    Delivered { duplicate: bool },
    /// Nothing to send: the recipient does not want this event (an insurer and a job-title
    /// change). Acked like a delivery and counted apart.
    Filtered { reason: &'static str },
    /// Worth trying again: connect error, timeout, 408, 429, 5xx.
    Retryable {
        reason: String,
        /// What the recipient asked for in `Retry-After`, if anything.
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help: the event goes to the dead-letter stream.
    Permanent {
        class: PermanentClass,
        reason: String,
    },
}

/// Why an attempt failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermanentClass {
    /// The recipient refused the request (4xx validation, unknown employer, bad credentials).
    Refused,
    /// The recipient told us to stop (`webhook-delivery: abort-message`, 410 Gone).
    Aborted,
    /// The payload is not an event this build can read.
    Undecodable,
    /// The payload names a writer schema that is in neither the build nor the schemas bucket.
    UnknownSchema,
    /// The event cannot become a request for this recipient (a pension event without a BSN, a
    /// salary in another currency, no loonheffingennummer for the employer).
    Unmappable,
}

impl PermanentClass {
    pub fn as_str(self) -> &'static str {
        match self {
            PermanentClass::Refused => "refused",
            PermanentClass::Aborted => "aborted",
            PermanentClass::Undecodable => "undecodable",
            PermanentClass::UnknownSchema => "unknown_schema",
            PermanentClass::Unmappable => "unmappable",
        }
    }
}

/// Why a message went to the dead-letter stream: the `Koppel-Dlq-Error-Class` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterClass {
    Permanent(PermanentClass),
    /// Retried until the budget (attempts or age) ran out.
    BudgetExhausted,
    /// Not attempted: an earlier event of the same lane is dead-lettered, and this one must not
    /// overtake it.
    ParkedBehind,
}

impl DeadLetterClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterClass::Permanent(class) => class.as_str(),
            DeadLetterClass::BudgetExhausted => "budget_exhausted",
            DeadLetterClass::ParkedBehind => "parked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "refused" => DeadLetterClass::Permanent(PermanentClass::Refused),
            "aborted" => DeadLetterClass::Permanent(PermanentClass::Aborted),
            "undecodable" => DeadLetterClass::Permanent(PermanentClass::Undecodable),
            "unknown_schema" => DeadLetterClass::Permanent(PermanentClass::UnknownSchema),
            "unmappable" => DeadLetterClass::Permanent(PermanentClass::Unmappable),
            "budget_exhausted" => DeadLetterClass::BudgetExhausted,
            "parked" => DeadLetterClass::ParkedBehind,
            _ => return None,
        })
    }
}

/// How one message was settled: what the delivery path ([`crate::delivery::deliver_one`])
/// came to, and what the retry loop ended with. Each caller (live deliverer, re-drive, replay)
/// turns it into its own bookkeeping with an exhaustive match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Delivered {
        duplicate: bool,
        attempts: u32,
    },
    Filtered {
        reason: &'static str,
    },
    /// Dead-letter it with this class and reason, then ack.
    DeadLetter {
        class: DeadLetterClass,
        reason: String,
        attempts: u32,
    },
    /// Shutdown came first: let JetStream redeliver it later. Never acked.
    Released,
    /// Not this recipient's: the tenant check refused it, and nothing was sent. The live
    /// deliverer acks it (a message pulled just before an unsubscribe), a re-drive reports it.
    NotForRecipient(crate::delivery::TenantViolation),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_through_its_header_value() {
        let classes = [
            DeadLetterClass::Permanent(PermanentClass::Refused),
            DeadLetterClass::Permanent(PermanentClass::Aborted),
            DeadLetterClass::Permanent(PermanentClass::Undecodable),
            DeadLetterClass::Permanent(PermanentClass::UnknownSchema),
            DeadLetterClass::Permanent(PermanentClass::Unmappable),
            DeadLetterClass::BudgetExhausted,
            DeadLetterClass::ParkedBehind,
        ];
        for class in classes {
            assert_eq!(DeadLetterClass::parse(class.as_str()), Some(class));
        }
    }
}
