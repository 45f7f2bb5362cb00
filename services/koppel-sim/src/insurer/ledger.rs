//! The insurer's books: linked employers, participant state, the idempotency store and the
//! journal of everything received. Pure state transitions without IO, so the rules can be tested
//! without a server and the HTTP layer only translates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::contract::{
    Bsn, EmployerLink, EmploymentMutationRequest, EnrolmentRequest, PersonalData,
    PersonalDataChangeRequest, Receipt, ReinstatementRequest, RejectionCode, RequestKind,
    StartDateCorrectionRequest, TerminationRequest, decimal_string,
};
use super::validation::{
    EmploymentValues, employment_values_problem, is_valid_bsn, is_valid_payroll_tax_number,
};

/// Whether a participant is still in service at this employer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantStatus {
    Active,
    Terminated,
}

/// What the insurer knows about one participation, keyed by (loonheffingennummer, BSN, NumIV):
/// one person may hold several income relationships with one employer at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantState {
    pub payroll_tax_number: String,
    pub bsn: Bsn,
    pub income_relationship_number: u32,
    pub personnel_number: String,
    pub scheme_id: String,
    pub status: ParticipantStatus,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub end_reason: Option<String>,
    #[serde(with = "decimal_string")]
    pub fulltime_pensionable_salary_yearly: Decimal,
    #[serde(with = "decimal_string")]
    pub parttime_percentage: Decimal,
    #[serde(with = "decimal_string")]
    pub hours_per_week: Decimal,
    #[serde(with = "decimal_string")]
    pub fulltime_hours_per_week: Decimal,
    /// The date from which the four employment values above apply.
    pub employment_values_effective_date: NaiveDate,
    pub personal_data: PersonalData,
    /// Income relationship numbers that ended; UPA forbids giving one to a new employment (p0042).
    pub ended_income_relationship_numbers: BTreeSet<u32>,
    /// The highest stream sequence applied to this participant.
    pub last_applied_stream_sequence: u64,
}

/// How the insurer answered one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RequestOutcome {
    /// Accepted with a new receipt and applied to the participant.
    Applied { receipt_id: Uuid },
    /// The idempotency key was accepted before; answered 409 with the original receipt, nothing
    /// applied a second time.
    Duplicate { original_receipt_id: Uuid },
    /// Refused with a permanent error; nothing applied.
    Rejected { code: RejectionCode },
}

/// One journal line: a request that got past authentication and header checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedRequest {
    pub idempotency_key: Uuid,
    pub stream_sequence: u64,
    pub kind: RequestKind,
    /// `None` when the body could not be read far enough to know it.
    pub payroll_tax_number: Option<String>,
    pub bsn: Option<Bsn>,
    pub income_relationship_number: Option<u32>,
    pub personnel_number: Option<String>,
    pub received_at: DateTime<Utc>,
    pub outcome: RequestOutcome,
    /// The stream sequence was lower than one already applied for the same (LhNr, BSN).
    pub order_violation: bool,
    /// The participant's state right after this request was applied.
    pub applied_state: Option<ParticipantState>,
}

/// Totals for tests and the demo summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InsurerSummary {
    /// Journal lines: every request past authentication and header checks.
    pub received: u64,
    pub applied: u64,
    pub duplicates: u64,
    /// Refusals by code, including 400 and 401 answers that never reach the journal.
    pub rejected_by_code: BTreeMap<String, u64>,
    pub order_violations: u64,
    pub participants: u64,
    pub linked_employers: u64,
    pub faults: crate::faults::FaultCounts,
}

/// A request as the HTTP layer hands it over: headers already checked, body already JSON.
#[derive(Debug)]
pub(crate) struct IncomingRequest {
    pub(crate) kind: RequestKind,
    pub(crate) idempotency_key: Uuid,
    pub(crate) stream_sequence: u64,
    /// A digest of the kind and the canonical JSON body, to tell a true retry from a reused key.
    pub(crate) fingerprint: [u8; 32],
    pub(crate) body: serde_json::Value,
}

/// What the HTTP layer sends back.
#[derive(Debug)]
pub(crate) enum Answer {
    Accepted(Receipt),
    Duplicate(Receipt),
    Rejected {
        code: RejectionCode,
        message: String,
    },
}

/// A typed request after the body matched one of the documented shapes.
#[derive(Debug)]
enum SalaryLinkRequest {
    Enrolment(EnrolmentRequest),
    EmploymentMutation(EmploymentMutationRequest),
    Termination(TerminationRequest),
    PersonalDataChange(PersonalDataChangeRequest),
    StartDateCorrection(StartDateCorrectionRequest),
    Reinstatement(ReinstatementRequest),
}

impl SalaryLinkRequest {
    fn parse(kind: RequestKind, body: serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            RequestKind::Enrolment => Self::Enrolment(serde_json::from_value(body)?),
            RequestKind::EmploymentMutation => {
                Self::EmploymentMutation(serde_json::from_value(body)?)
            }
            RequestKind::Termination => Self::Termination(serde_json::from_value(body)?),
            RequestKind::PersonalDataChange => {
                Self::PersonalDataChange(serde_json::from_value(body)?)
            }
            RequestKind::StartDateCorrection => {
                Self::StartDateCorrection(serde_json::from_value(body)?)
            }
            RequestKind::Reinstatement => Self::Reinstatement(serde_json::from_value(body)?),
        })
    }

    fn payroll_tax_number(&self) -> &str {
        match self {
            Self::Enrolment(request) => &request.payroll_tax_number,
            Self::EmploymentMutation(request) => &request.payroll_tax_number,
            Self::Termination(request) => &request.payroll_tax_number,
            Self::PersonalDataChange(request) => &request.payroll_tax_number,
            Self::StartDateCorrection(request) => &request.payroll_tax_number,
            Self::Reinstatement(request) => &request.payroll_tax_number,
        }
    }

    fn bsn(&self) -> &Bsn {
        match self {
            Self::Enrolment(request) => &request.bsn,
            Self::EmploymentMutation(request) => &request.bsn,
            Self::Termination(request) => &request.bsn,
            Self::PersonalDataChange(request) => &request.bsn,
            Self::StartDateCorrection(request) => &request.bsn,
            Self::Reinstatement(request) => &request.bsn,
        }
    }

    fn income_relationship_number(&self) -> Option<u32> {
        match self {
            Self::Enrolment(request) => Some(request.income_relationship_number),
            Self::EmploymentMutation(request) => Some(request.income_relationship_number),
            Self::Termination(request) => Some(request.income_relationship_number),
            Self::PersonalDataChange(_) => None,
            Self::StartDateCorrection(request) => Some(request.income_relationship_number),
            Self::Reinstatement(request) => Some(request.income_relationship_number),
        }
    }

    fn personnel_number(&self) -> &str {
        match self {
            Self::Enrolment(request) => &request.personnel_number,
            Self::EmploymentMutation(request) => &request.personnel_number,
            Self::Termination(request) => &request.personnel_number,
            Self::PersonalDataChange(request) => &request.personnel_number,
            Self::StartDateCorrection(request) => &request.personnel_number,
            Self::Reinstatement(request) => &request.personnel_number,
        }
    }
}

/// A refusal with its reason; the message never contains a BSN.
struct Refusal {
    code: RejectionCode,
    message: String,
}

impl Refusal {
    fn new(code: RejectionCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A participation: (loonheffingennummer, BSN, NumIV).
type ParticipantKey = (String, Bsn, u32);
/// A person at one employer: (loonheffingennummer, BSN); ordering is judged per person, as
/// koppel keeps one lane per employee.
type PersonKey = (String, Bsn);

/// An accepted idempotency key: its receipt goes back unchanged on every repeat.
#[derive(Debug)]
struct AcceptedKey {
    receipt: Receipt,
    fingerprint: [u8; 32],
}

#[derive(Debug, Default)]
pub(crate) struct InsurerLedger {
    linked_employers: HashMap<String, EmployerLink>,
    participants: HashMap<ParticipantKey, ParticipantState>,
    /// Only accepted requests are remembered: a refused request is judged again when it comes
    /// back, so linking an employer and re-driving the dead letters works.
    accepted_keys: HashMap<Uuid, AcceptedKey>,
    /// Kept apart from the participants because a refused request for an unknown participant
    /// still has to be checked against later applied ones.
    highest_applied_sequence: HashMap<PersonKey, u64>,
    journal: Vec<ReceivedRequest>,
    rejected_by_code: BTreeMap<RejectionCode, u64>,
    applied: u64,
    duplicates: u64,
    order_violations: u64,
}

impl InsurerLedger {
    pub(crate) fn link_employer(&mut self, payroll_tax_number: String, link: EmployerLink) {
        self.linked_employers.insert(payroll_tax_number, link);
    }

    pub(crate) fn unlink_employer(&mut self, payroll_tax_number: &str) -> bool {
        self.linked_employers.remove(payroll_tax_number).is_some()
    }

    /// Counts a refusal that happened before the journal (401 and the 400s on headers or JSON).
    pub(crate) fn count_early_rejection(&mut self, code: RejectionCode) {
        *self.rejected_by_code.entry(code).or_default() += 1;
    }

    /// The person's participation: of several, the active one with the lowest NumIV, else
    /// the one that ended last.
    pub(crate) fn participant(
        &self,
        payroll_tax_number: &str,
        bsn: &str,
    ) -> Option<&ParticipantState> {
        let bsn = Bsn::new(bsn);
        self.participants
            .values()
            .filter(|state| state.payroll_tax_number == payroll_tax_number && state.bsn == bsn)
            .min_by_key(|state| {
                (
                    state.status != ParticipantStatus::Active,
                    std::cmp::Reverse(state.end_date),
                    state.income_relationship_number,
                )
            })
    }

    pub(crate) fn participants(&self) -> Vec<ParticipantState> {
        let mut all: Vec<ParticipantState> = self.participants.values().cloned().collect();
        all.sort_by(|left, right| {
            (
                &left.payroll_tax_number,
                &left.bsn,
                left.income_relationship_number,
            )
                .cmp(&(
                    &right.payroll_tax_number,
                    &right.bsn,
                    right.income_relationship_number,
                ))
        });
        all
    }

    pub(crate) fn journal(&self) -> &[ReceivedRequest] {
        &self.journal
    }

    pub(crate) fn summary(&self, faults: crate::faults::FaultCounts) -> InsurerSummary {
        InsurerSummary {
            received: self.journal.len() as u64,
            applied: self.applied,
            duplicates: self.duplicates,
            rejected_by_code: self
                .rejected_by_code
                .iter()
                .map(|(code, count)| (code.as_str().to_owned(), *count))
                .collect(),
            order_violations: self.order_violations,
            participants: self.participants.len() as u64,
            linked_employers: self.linked_employers.len() as u64,
            faults,
        }
    }

    /// Judges, applies and journals one request. `new_receipt_id` is only used when the request
    /// is accepted.
    pub(crate) fn process(
        &mut self,
        incoming: IncomingRequest,
        received_at: DateTime<Utc>,
        new_receipt_id: Uuid,
    ) -> Answer {
        let IncomingRequest {
            kind,
            idempotency_key,
            stream_sequence,
            fingerprint,
            body,
        } = incoming;
        let mut line = ReceivedRequest {
            idempotency_key,
            stream_sequence,
            kind,
            payroll_tax_number: None,
            bsn: None,
            income_relationship_number: None,
            personnel_number: None,
            received_at,
            outcome: RequestOutcome::Rejected {
                code: RejectionCode::InvalidBody,
            },
            order_violation: false,
            applied_state: None,
        };

        // The idempotency check comes before any content check: a retry of an accepted request
        // must get its original receipt even if, say, the employer was unlinked meanwhile.
        if let Some(accepted) = self.accepted_keys.get(&idempotency_key) {
            if accepted.fingerprint == fingerprint {
                let receipt = accepted.receipt.clone();
                self.duplicates += 1;
                line.outcome = RequestOutcome::Duplicate {
                    original_receipt_id: receipt.receipt_id,
                };
                self.journal.push(line);
                return Answer::Duplicate(receipt);
            }
            let refusal = Refusal::new(
                RejectionCode::IdempotencyKeyReused,
                "this Idempotency-Key was accepted before for a different request",
            );
            return self.reject(line, refusal);
        }

        let request = match SalaryLinkRequest::parse(kind, body) {
            Ok(request) => request,
            Err(error) => {
                let refusal = Refusal::new(
                    RejectionCode::InvalidBody,
                    format!(
                        "body does not match the {} contract: {}",
                        kind.as_str(),
                        redact_values(&error.to_string())
                    ),
                );
                return self.reject(line, refusal);
            }
        };
        let person: PersonKey = (
            request.payroll_tax_number().to_owned(),
            request.bsn().clone(),
        );
        line.payroll_tax_number = Some(person.0.clone());
        line.bsn = Some(person.1.clone());
        line.income_relationship_number = request.income_relationship_number();
        line.personnel_number = Some(request.personnel_number().to_owned());
        // Order is judged for refusals too: a refused request that arrives after a later event of
        // the same participant was applied shows the sender let the later one overtake it.
        if self
            .highest_applied_sequence
            .get(&person)
            .is_some_and(|highest| stream_sequence < *highest)
        {
            line.order_violation = true;
            self.order_violations += 1;
        }
        let key = person.clone();

        match self.apply(&key, request, stream_sequence) {
            Ok(state) => {
                let receipt = Receipt {
                    receipt_id: new_receipt_id,
                    received_at,
                    idempotency_key,
                    request_kind: kind,
                };
                self.accepted_keys.insert(
                    idempotency_key,
                    AcceptedKey {
                        receipt: receipt.clone(),
                        fingerprint,
                    },
                );
                let highest = self.highest_applied_sequence.entry(key).or_default();
                *highest = (*highest).max(stream_sequence);
                self.applied += 1;
                line.outcome = RequestOutcome::Applied {
                    receipt_id: receipt.receipt_id,
                };
                line.applied_state = Some(state);
                self.journal.push(line);
                Answer::Accepted(receipt)
            }
            Err(refusal) => self.reject(line, refusal),
        }
    }

    fn reject(&mut self, mut line: ReceivedRequest, refusal: Refusal) -> Answer {
        *self.rejected_by_code.entry(refusal.code).or_default() += 1;
        line.outcome = RequestOutcome::Rejected { code: refusal.code };
        self.journal.push(line);
        Answer::Rejected {
            code: refusal.code,
            message: refusal.message,
        }
    }

    /// Validates the request against the identifiers, the employer link and the participant's
    /// current state, and applies it. Returns the state after application.
    fn apply(
        &mut self,
        person: &PersonKey,
        request: SalaryLinkRequest,
        stream_sequence: u64,
    ) -> Result<ParticipantState, Refusal> {
        let (payroll_tax_number, bsn) = person;
        if !is_valid_payroll_tax_number(payroll_tax_number) {
            return Err(Refusal::new(
                RejectionCode::InvalidPayrollTaxNumber,
                "payroll_tax_number must be nine digits, 'L' and two digits, e.g. 123456789L01",
            ));
        }
        let Some(link) = self.linked_employers.get(payroll_tax_number) else {
            return Err(Refusal::new(
                RejectionCode::UnlinkedEmployer,
                format!(
                    "NOK: onbekend of ongeldig fiscaal nummer {payroll_tax_number} voor de administratieve eenheid; \
                     the employer is not linked to this salary link"
                ),
            ));
        };
        if !is_valid_bsn(bsn.expose()) {
            return Err(Refusal::new(
                RejectionCode::InvalidBsn,
                "bsn fails the 11-proef",
            ));
        }
        if request.personnel_number().trim().is_empty() {
            return Err(Refusal::new(
                RejectionCode::InvalidValue,
                "personnel_number must not be empty",
            ));
        }
        if request.income_relationship_number() == Some(0) {
            return Err(Refusal::new(
                RejectionCode::InvalidValue,
                "income_relationship_number must be 1 or higher",
            ));
        }
        let scheme_allowed = |scheme_id: &str| {
            link.scheme_ids.is_empty() || link.scheme_ids.iter().any(|known| known == scheme_id)
        };

        // Person-level: every participation of the person takes the new personal data.
        if let SalaryLinkRequest::PersonalDataChange(change) = request {
            check_personal_data(&change.personal_data)?;
            let mut changed = None;
            for state in self.participants.values_mut().filter(|state| {
                &state.payroll_tax_number == payroll_tax_number && &state.bsn == bsn
            }) {
                state.personnel_number.clone_from(&change.personnel_number);
                state.personal_data = change.personal_data.clone();
                state.last_applied_stream_sequence =
                    state.last_applied_stream_sequence.max(stream_sequence);
                changed = Some(state.clone());
            }
            // Terminated participants are accepted on purpose: a deferred member's new address
            // matters to the insurer for years after leaving.
            return changed.ok_or_else(unknown_participant);
        }
        let Some(income_relationship_number) = request.income_relationship_number() else {
            return Err(unknown_participant());
        };
        let key: ParticipantKey = (
            payroll_tax_number.clone(),
            bsn.clone(),
            income_relationship_number,
        );
        let existing = self.participants.get(&key);
        let new_state = match request {
            SalaryLinkRequest::Enrolment(enrolment) => {
                if !scheme_allowed(&enrolment.scheme_id) {
                    return Err(unknown_scheme(&enrolment.scheme_id));
                }
                check_values(&EmploymentValues {
                    hours_per_week: enrolment.hours_per_week,
                    fulltime_hours_per_week: enrolment.fulltime_hours_per_week,
                    parttime_percentage: enrolment.parttime_percentage,
                    fulltime_pensionable_salary_yearly: enrolment
                        .fulltime_pensionable_salary_yearly,
                })?;
                check_personal_data(&enrolment.personal_data)?;
                if existing.is_some_and(|current| current.status == ParticipantStatus::Terminated) {
                    return Err(Refusal::new(
                        RejectionCode::IncomeRelationshipNumberReused,
                        "a new income relationship must get a new income_relationship_number, \
                         this one has ended",
                    ));
                }
                // Re-enrolment under the same active income relationship is a correction of the
                // start data and replaces it. Another, concurrent or later, relationship of the
                // same person is a participation of its own.
                ParticipantState {
                    payroll_tax_number: payroll_tax_number.clone(),
                    bsn: bsn.clone(),
                    income_relationship_number: enrolment.income_relationship_number,
                    personnel_number: enrolment.personnel_number,
                    scheme_id: enrolment.scheme_id,
                    status: ParticipantStatus::Active,
                    start_date: enrolment.start_date,
                    end_date: None,
                    end_reason: None,
                    fulltime_pensionable_salary_yearly: enrolment
                        .fulltime_pensionable_salary_yearly,
                    parttime_percentage: enrolment.parttime_percentage,
                    hours_per_week: enrolment.hours_per_week,
                    fulltime_hours_per_week: enrolment.fulltime_hours_per_week,
                    employment_values_effective_date: enrolment.start_date,
                    personal_data: enrolment.personal_data,
                    ended_income_relationship_numbers: BTreeSet::new(),
                    last_applied_stream_sequence: stream_sequence,
                }
            }
            SalaryLinkRequest::StartDateCorrection(correction) => {
                let current = enrolled(existing, correction.income_relationship_number)?;
                if !scheme_allowed(&correction.scheme_id) {
                    return Err(unknown_scheme(&correction.scheme_id));
                }
                check_values(&EmploymentValues {
                    hours_per_week: correction.hours_per_week,
                    fulltime_hours_per_week: correction.fulltime_hours_per_week,
                    parttime_percentage: correction.parttime_percentage,
                    fulltime_pensionable_salary_yearly: correction
                        .fulltime_pensionable_salary_yearly,
                })?;
                if let Some(end_date) = current.end_date
                    && correction.start_date > end_date
                {
                    return Err(Refusal::new(
                        RejectionCode::EffectiveDateOutsideEmployment,
                        format!("start_date is after the end date {end_date}"),
                    ));
                }
                ParticipantState {
                    personnel_number: correction.personnel_number,
                    scheme_id: correction.scheme_id,
                    start_date: correction.start_date,
                    fulltime_pensionable_salary_yearly: correction
                        .fulltime_pensionable_salary_yearly,
                    parttime_percentage: correction.parttime_percentage,
                    hours_per_week: correction.hours_per_week,
                    fulltime_hours_per_week: correction.fulltime_hours_per_week,
                    // Values dated before the corrected start hold from it.
                    employment_values_effective_date: current
                        .employment_values_effective_date
                        .max(correction.start_date),
                    last_applied_stream_sequence: stream_sequence,
                    ..current.clone()
                }
            }
            SalaryLinkRequest::Reinstatement(reinstatement) => {
                let current = enrolled(existing, reinstatement.income_relationship_number)?;
                if !scheme_allowed(&reinstatement.scheme_id) {
                    return Err(unknown_scheme(&reinstatement.scheme_id));
                }
                check_values(&EmploymentValues {
                    hours_per_week: reinstatement.hours_per_week,
                    fulltime_hours_per_week: reinstatement.fulltime_hours_per_week,
                    parttime_percentage: reinstatement.parttime_percentage,
                    fulltime_pensionable_salary_yearly: reinstatement
                        .fulltime_pensionable_salary_yearly,
                })?;
                if reinstatement.effective_date < current.start_date {
                    return Err(Refusal::new(
                        RejectionCode::EffectiveDateOutsideEmployment,
                        format!(
                            "effective_date is before the enrolled start date {}",
                            current.start_date
                        ),
                    ));
                }
                let mut ended = current.ended_income_relationship_numbers.clone();
                ended.remove(&reinstatement.income_relationship_number);
                ParticipantState {
                    personnel_number: reinstatement.personnel_number,
                    scheme_id: reinstatement.scheme_id,
                    status: ParticipantStatus::Active,
                    end_date: None,
                    end_reason: None,
                    fulltime_pensionable_salary_yearly: reinstatement
                        .fulltime_pensionable_salary_yearly,
                    parttime_percentage: reinstatement.parttime_percentage,
                    hours_per_week: reinstatement.hours_per_week,
                    fulltime_hours_per_week: reinstatement.fulltime_hours_per_week,
                    ended_income_relationship_numbers: ended,
                    last_applied_stream_sequence: stream_sequence,
                    ..current.clone()
                }
            }
            SalaryLinkRequest::EmploymentMutation(mutation) => {
                let current = enrolled(existing, mutation.income_relationship_number)?;
                if !scheme_allowed(&mutation.scheme_id) {
                    return Err(unknown_scheme(&mutation.scheme_id));
                }
                check_values(&EmploymentValues {
                    hours_per_week: mutation.hours_per_week,
                    fulltime_hours_per_week: mutation.fulltime_hours_per_week,
                    parttime_percentage: mutation.parttime_percentage,
                    fulltime_pensionable_salary_yearly: mutation.fulltime_pensionable_salary_yearly,
                })?;
                check_inside_employment(current, mutation.effective_date, "effective_date")?;
                ParticipantState {
                    personnel_number: mutation.personnel_number,
                    scheme_id: mutation.scheme_id,
                    fulltime_pensionable_salary_yearly: mutation.fulltime_pensionable_salary_yearly,
                    parttime_percentage: mutation.parttime_percentage,
                    hours_per_week: mutation.hours_per_week,
                    fulltime_hours_per_week: mutation.fulltime_hours_per_week,
                    employment_values_effective_date: mutation.effective_date,
                    last_applied_stream_sequence: stream_sequence,
                    ..current.clone()
                }
            }
            SalaryLinkRequest::Termination(termination) => {
                let current = enrolled(existing, termination.income_relationship_number)?;
                if termination.end_date < current.start_date {
                    return Err(Refusal::new(
                        RejectionCode::EffectiveDateOutsideEmployment,
                        format!(
                            "end_date is before the enrolled start date {}",
                            current.start_date
                        ),
                    ));
                }
                // A second termination of the same relationship corrects the end date.
                let mut ended = current.ended_income_relationship_numbers.clone();
                ended.insert(termination.income_relationship_number);
                ParticipantState {
                    personnel_number: termination.personnel_number,
                    status: ParticipantStatus::Terminated,
                    end_date: Some(termination.end_date),
                    end_reason: termination.end_reason,
                    ended_income_relationship_numbers: ended,
                    last_applied_stream_sequence: stream_sequence,
                    ..current.clone()
                }
            }
            // Handled above, before the participation key.
            SalaryLinkRequest::PersonalDataChange(_) => return Err(unknown_participant()),
        };
        let mut stored = new_state;
        // A reordered request must not lower the mark that later order checks compare against.
        if let Some(current) = self.participants.get(&key) {
            stored.last_applied_stream_sequence = stored
                .last_applied_stream_sequence
                .max(current.last_applied_stream_sequence);
        }
        self.participants.insert(key, stored.clone());
        Ok(stored)
    }
}

fn unknown_participant() -> Refusal {
    Refusal::new(
        RejectionCode::UnknownParticipant,
        "no enrolment is known for this bsn at this employer",
    )
}

fn unknown_scheme(scheme_id: &str) -> Refusal {
    Refusal::new(
        RejectionCode::UnknownScheme,
        format!("scheme_id {scheme_id} is not part of the employer's contract"),
    )
}

/// The participant must be enrolled under the income relationship the request names.
fn enrolled(
    existing: Option<&ParticipantState>,
    income_relationship_number: u32,
) -> Result<&ParticipantState, Refusal> {
    let current = existing.ok_or_else(unknown_participant)?;
    if current.income_relationship_number != income_relationship_number {
        return Err(Refusal::new(
            RejectionCode::IncomeRelationshipMismatch,
            format!(
                "the participant is enrolled under income_relationship_number {}, not {}",
                current.income_relationship_number, income_relationship_number
            ),
        ));
    }
    Ok(current)
}

fn check_values(values: &EmploymentValues) -> Result<(), Refusal> {
    match employment_values_problem(values) {
        Some(problem) => Err(Refusal::new(RejectionCode::InvalidValue, problem)),
        None => Ok(()),
    }
}

fn check_personal_data(personal_data: &PersonalData) -> Result<(), Refusal> {
    if personal_data.last_name.trim().is_empty() {
        return Err(Refusal::new(
            RejectionCode::InvalidValue,
            "personal_data.last_name must not be empty",
        ));
    }
    Ok(())
}

fn check_inside_employment(
    current: &ParticipantState,
    date: NaiveDate,
    field: &str,
) -> Result<(), Refusal> {
    if date < current.start_date {
        return Err(Refusal::new(
            RejectionCode::EffectiveDateOutsideEmployment,
            format!(
                "{field} {date} is before the enrolled start date {}",
                current.start_date
            ),
        ));
    }
    if let Some(end_date) = current.end_date
        && date > end_date
    {
        return Err(Refusal::new(
            RejectionCode::EffectiveDateOutsideEmployment,
            format!("{field} {date} is after the end date {end_date}"),
        ));
    }
    Ok(())
}

/// serde_json quotes an offending value between backticks (`invalid type: integer `123456782`,
/// expected a string`); that value may be a BSN, so it is cut out before the message leaves the
/// simulator. Field names in other messages (`missing field `bsn``) stay, they are the useful part.
fn redact_values(message: &str) -> String {
    if !(message.starts_with("invalid type") || message.starts_with("invalid value")) {
        return message.to_owned();
    }
    let mut parts = message.splitn(3, '`');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(before), Some(_value), Some(after)) => format!("{before}<value>{after}"),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_values_are_redacted_but_field_names_stay() {
        assert_eq!(
            redact_values(
                "invalid type: integer `123456782`, expected a string at line 1 column 9"
            ),
            "invalid type: integer <value>, expected a string at line 1 column 9"
        );
        assert_eq!(redact_values("missing field `bsn`"), "missing field `bsn`");
    }
}
