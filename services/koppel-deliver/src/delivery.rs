//! The one delivery path: [`deliver_one`] takes one stored event (from the events stream or a
//! dead letter) to one recipient and says how it was settled. The live deliverer, `dlq retry`
//! and `replay` all call it, so they decode, check the tenant, build the request, retry and
//! classify the same way; each only turns the [`Settlement`] into its own bookkeeping (acks and
//! dead letters, removing a dead letter, a replay report).
//!
//! [`check_tenant`] is the one tenant check (ARCHITECTURE.md, "No recipient sees another
//! tenant's events"): the employer in the subject and the employer in the payload must both be
//! subscribed to the recipient. It is pure, and tested apart.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use koppel_events::DecodeError;
use koppel_nats::schemas::SchemaCache;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::budget::SpentBudget;
use crate::config::RetrySettings;
use crate::outcome::{DeadLetterClass, PermanentClass, Settlement};
use crate::recipient::{DeliveryRequest, RecipientClient};
use crate::retry::retry_until_settled;

/// Why an event must not reach a recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantViolation {
    /// The subject's employer is not (or no longer) subscribed to the recipient.
    #[error("employer {employer_key} is not subscribed to this recipient")]
    NotSubscribed { employer_key: String },
    /// The payload names another employer than its subject: not written by koppel's extractor,
    /// and what would be sent is the payload, so it is nobody's here.
    #[error(
        "the event belongs to employer {event_employer}, not to {subject_employer} of its subject"
    )]
    EmployerMismatch {
        subject_employer: String,
        event_employer: String,
    },
}

/// The tenant check. `event_employer` is `None` before the payload is decoded (a parked or
/// undecodable message is still checked by its subject); once decoded, pass it, since the
/// payload is what gets sent.
pub fn check_tenant(
    subscribed: &BTreeSet<String>,
    subject_employer: &str,
    event_employer: Option<&str>,
) -> Result<(), TenantViolation> {
    if !subscribed.contains(subject_employer) {
        return Err(TenantViolation::NotSubscribed {
            employer_key: subject_employer.to_owned(),
        });
    }
    match event_employer {
        Some(event_employer) if event_employer != subject_employer => {
            Err(TenantViolation::EmployerMismatch {
                subject_employer: subject_employer.to_owned(),
                event_employer: event_employer.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// Where an event goes and how hard to try.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryTarget<'a> {
    pub client: &'a RecipientClient,
    /// The employers subscribed to the recipient (for a replay of one employer: just that one).
    pub subscribed: &'a BTreeSet<String>,
    pub schemas: &'a SchemaCache,
    pub retry: &'a RetrySettings,
    /// How often `progress` is called while an attempt or a backoff wait runs.
    pub progress_interval: Duration,
    pub shutdown: &'a CancellationToken,
    /// Bounds the attempts on the wire at once (the recipient's `max_in_flight`); `None` for
    /// tools that deliver one event at a time.
    pub permits: Option<&'a Semaphore>,
}

/// One event as stored in a stream.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// The employer named by the subject (for a dead letter, its lane's).
    pub subject_employer: &'a str,
    pub payload: &'a [u8],
    /// Its sequence in the events stream: recipients use it to detect reordering.
    pub stream_sequence: u64,
    /// The event id of its lane's first dead letter, when the lane is parked: then it is not
    /// attempted but follows that one into the dead-letter stream.
    pub parked_behind: Option<&'a str>,
    /// What earlier deliveries spent of its retry budget ([`crate::budget::spent_budget`]);
    /// the default (nothing) for re-drives and replays, which an operator starts on purpose.
    pub spent: SpentBudget,
}

/// Delivers one stored event: tenant check on the subject, parking, decoding, tenant check on
/// the payload, then attempts with retries until it is settled. `progress` is called at
/// `progress_interval` while it works (the live deliverer sends an in-progress ack there).
pub async fn deliver_one<Progress, ProgressFuture>(
    target: &DeliveryTarget<'_>,
    stored: &StoredEvent<'_>,
    progress: Progress,
) -> Settlement
where
    Progress: FnMut() -> ProgressFuture,
    ProgressFuture: Future<Output = ()>,
{
    if let Err(violation) = check_tenant(target.subscribed, stored.subject_employer, None) {
        return Settlement::NotForRecipient(violation);
    }
    if let Some(head) = stored.parked_behind {
        return Settlement::DeadLetter {
            class: DeadLetterClass::ParkedBehind,
            reason: format!("parked behind dead letter of event {head}"),
            attempts: 0,
        };
    }
    let event = match target.schemas.decode(stored.payload).await {
        Ok(event) => event,
        Err(error) => {
            let class = match error {
                DecodeError::UnknownFingerprint(_) => PermanentClass::UnknownSchema,
                _ => PermanentClass::Undecodable,
            };
            return Settlement::DeadLetter {
                class: DeadLetterClass::Permanent(class),
                reason: error.to_string(),
                attempts: 0,
            };
        }
    };
    let event_employer = event.header().employer_key.as_str();
    if let Err(violation) = check_tenant(
        target.subscribed,
        stored.subject_employer,
        Some(event_employer),
    ) {
        return Settlement::NotForRecipient(violation);
    }
    let request = DeliveryRequest {
        event: &event,
        event_id: event.header().event_id,
        stream_sequence: stored.stream_sequence,
        employer_key: event_employer,
    };
    retry_until_settled(
        target.retry,
        stored.spent,
        target.progress_interval,
        target.shutdown,
        |_| async {
            // Never closed, so acquiring cannot fail; deliver anyway if it somehow did.
            let _permit = match target.permits {
                Some(permits) => permits.acquire().await.ok(),
                None => None,
            };
            target.client.deliver(&request).await
        },
        progress,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribed(employers: &[&str]) -> BTreeSet<String> {
        employers
            .iter()
            .map(|employer| (*employer).to_owned())
            .collect()
    }

    #[test]
    fn the_tenant_check_passes_only_a_subscribed_subject_with_its_own_payload() {
        let acme = subscribed(&["acme", "globex"]);
        type Case<'a> = (
            &'a BTreeSet<String>,
            &'a str,
            Option<&'a str>,
            Result<(), TenantViolation>,
        );
        let cases: [Case<'_>; 7] = [
            (&acme, "acme", None, Ok(())),
            (&acme, "acme", Some("acme"), Ok(())),
            (
                &acme,
                "initech",
                None,
                Err(TenantViolation::NotSubscribed {
                    employer_key: "initech".to_owned(),
                }),
            ),
            // The subject decides first: an unsubscribed subject is refused whatever it holds.
            (
                &acme,
                "initech",
                Some("acme"),
                Err(TenantViolation::NotSubscribed {
                    employer_key: "initech".to_owned(),
                }),
            ),
            // Both subscribed, but not the same: the payload is another tenant's.
            (
                &acme,
                "acme",
                Some("globex"),
                Err(TenantViolation::EmployerMismatch {
                    subject_employer: "acme".to_owned(),
                    event_employer: "globex".to_owned(),
                }),
            ),
            (
                &acme,
                "acme",
                Some("initech"),
                Err(TenantViolation::EmployerMismatch {
                    subject_employer: "acme".to_owned(),
                    event_employer: "initech".to_owned(),
                }),
            ),
            // No subscriptions: nothing passes.
            (
                &BTreeSet::new(),
                "acme",
                Some("acme"),
                Err(TenantViolation::NotSubscribed {
                    employer_key: "acme".to_owned(),
                }),
            ),
        ];
        for (subscribed, subject_employer, event_employer, expected) in cases {
            assert_eq!(
                check_tenant(subscribed, subject_employer, event_employer),
                expected,
                "{subject_employer} / {event_employer:?}"
            );
        }
    }

    #[test]
    fn employer_keys_match_exactly_not_by_prefix_or_case() {
        let acme = subscribed(&["acme"]);
        for subject_employer in ["acm", "acme-1", "ACME", "acme ", "_unknown", ""] {
            assert!(
                matches!(
                    check_tenant(&acme, subject_employer, None),
                    Err(TenantViolation::NotSubscribed { .. })
                ),
                "{subject_employer:?}"
            );
        }
        assert!(matches!(
            check_tenant(&acme, "acme", Some("ACME")),
            Err(TenantViolation::EmployerMismatch { .. })
        ));
    }
}
