//! The pension insurer salary link (docs/recipients/pension-insurer-salary-link.md): koppel's
//! events become enrolments, employment mutations, terminations and personal-data changes.
//!
//! Mapping and transport are apart: [`plan`] is a pure function from an event to the request
//! (or to "nothing to send", or to "cannot be sent"), so the contract's mapping rules are tested
//! without a server.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use koppel_events::model::parttime_factor;
use koppel_events::{Address, Employee, EmploymentEvent, Event, Gender, NameUsage};
use koppel_registry::RegistrySnapshot;
use koppel_registry::model::InsurerEmployerLink;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{DeliveryRequest, is_retryable_status, one_line, transport_failure};
use crate::outcome::{AttemptOutcome, PermanentClass};

pub const ENROLMENTS_PATH: &str = "/salary-link/v1/enrolments";
pub const EMPLOYMENT_MUTATIONS_PATH: &str = "/salary-link/v1/employment-mutations";
pub const TERMINATIONS_PATH: &str = "/salary-link/v1/terminations";
pub const PERSONAL_DATA_CHANGES_PATH: &str = "/salary-link/v1/personal-data-changes";
pub const START_DATE_CORRECTIONS_PATH: &str = "/salary-link/v1/start-date-corrections";
pub const REINSTATEMENTS_PATH: &str = "/salary-link/v1/reinstatements";
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
pub const STREAM_SEQUENCE_HEADER: &str = "Koppel-Stream-Sequence";

/// Employment fields whose change the insurer must hear about. `salary` is not one: it is the
/// actual (possibly part-time) period salary; the insurer wants the full-time pensionable one.
pub const PENSION_RELEVANT_EMPLOYMENT_FIELDS: [&str; 7] = [
    "hours_per_week",
    "fulltime_hours_per_week",
    "parttime_factor",
    "pensionable_salary",
    "pension_scheme",
    "start_date",
    "end_date",
];

/// Personal fields the insurer keeps; `work_email`, `phone` and the manager are not among them.
pub const PENSION_RELEVANT_EMPLOYEE_FIELDS: [&str; 6] = [
    "name",
    "date_of_birth",
    "gender",
    "email",
    "address",
    "employee_number",
];

/// How the insurer knows one employer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsurerEmployer {
    pub payroll_tax_number: String,
    /// When set, the scheme of every participant of this employer (an employer with a single
    /// contract), whatever the source calls it.
    pub scheme_id: Option<String>,
}

/// The employers of one insurer: its own links first, then the loonheffingennummer the
/// employer was registered with, for employers subscribed without an explicit link.
pub fn employer_links(
    recipient: &str,
    links: &BTreeMap<String, InsurerEmployerLink>,
    snapshot: &RegistrySnapshot,
) -> BTreeMap<String, InsurerEmployer> {
    let mut employers: BTreeMap<String, InsurerEmployer> = snapshot
        .employers_of_recipient(recipient)
        .into_iter()
        .filter_map(|employer_key| {
            let registration = snapshot.employers.get(&employer_key)?;
            let payroll_tax_number = registration.payroll_tax_number.clone()?;
            Some((
                employer_key,
                InsurerEmployer {
                    payroll_tax_number,
                    scheme_id: None,
                },
            ))
        })
        .collect();
    for (employer_key, link) in links {
        employers.insert(
            employer_key.clone(),
            InsurerEmployer {
                payroll_tax_number: link.payroll_tax_number.clone(),
                scheme_id: link.scheme_id.clone(),
            },
        );
    }
    employers
}

/// The salary-link client of one insurer.
#[derive(Clone)]
pub struct PensionInsurerClient {
    http: reqwest::Client,
    base_url: String,
    api_token: SecretString,
    employers: BTreeMap<String, InsurerEmployer>,
}

impl fmt::Debug for PensionInsurerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PensionInsurerClient")
            .field("base_url", &self.base_url)
            .field("api_token", &"<redacted>")
            .field("employers", &self.employers.len())
            .finish()
    }
}

/// One request to send: where, and what. Holds a BSN, hence no Debug.
pub struct PlannedRequest {
    pub path: &'static str,
    pub body: serde_json::Value,
}

impl fmt::Debug for PlannedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannedRequest")
            .field("path", &self.path)
            .field("body", &"<contains a BSN>")
            .finish()
    }
}

/// What an event comes to for the insurer.
#[derive(Debug)]
pub enum Plan {
    Send(PlannedRequest),
    /// Nothing pension-relevant; acked as delivered-nothing.
    Nothing(&'static str),
    /// It should be sent but cannot be: dead-lettered with the reason (no BSN in it).
    Unmappable(String),
}

impl PensionInsurerClient {
    pub fn new(
        http: reqwest::Client,
        base_url: String,
        api_token: SecretString,
        employers: BTreeMap<String, InsurerEmployer>,
    ) -> Self {
        PensionInsurerClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_token,
            employers,
        }
    }

    pub async fn deliver(&self, request: &DeliveryRequest<'_>) -> AttemptOutcome {
        let planned = match plan(request.event, self.employers.get(request.employer_key)) {
            Plan::Send(planned) => planned,
            Plan::Nothing(reason) => return AttemptOutcome::Filtered { reason },
            Plan::Unmappable(reason) => {
                return AttemptOutcome::Permanent {
                    class: PermanentClass::Unmappable,
                    reason,
                };
            }
        };
        let response = self
            .http
            .post(format!("{}{}", self.base_url, planned.path))
            .bearer_auth(self.api_token.expose_secret())
            .header(IDEMPOTENCY_KEY_HEADER, request.event_id.to_string())
            .header(STREAM_SEQUENCE_HEADER, request.stream_sequence.to_string())
            .json(&planned.body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return transport_failure(&error),
        };
        let status = response.status();
        let retry_after = koppel_runtime::http::retry_after(response.headers());
        match status {
            StatusCode::ACCEPTED => AttemptOutcome::Delivered { duplicate: false },
            // The key was accepted before: the original receipt comes back, nothing is applied
            // twice. This is how a retry after a timeout that did get through ends.
            StatusCode::CONFLICT => AttemptOutcome::Delivered { duplicate: true },
            status if status.is_success() => AttemptOutcome::Delivered { duplicate: false },
            status if is_retryable_status(status) => AttemptOutcome::Retryable {
                reason: format!("HTTP {}", status.as_u16()),
                retry_after,
            },
            status => {
                // Bounded like every recipient body: a huge refusal is a dead letter that names
                // the limit, never a deliverer out of memory.
                let body = match super::read_bounded_body(response, super::MAX_RESPONSE_BODY_BYTES)
                    .await
                {
                    Ok(body) => body,
                    Err(error) => {
                        return AttemptOutcome::Permanent {
                            class: PermanentClass::Refused,
                            reason: one_line(&format!("HTTP {}: {error}", status.as_u16()), 400),
                        };
                    }
                };
                let error = serde_json::from_slice::<ErrorBody>(&body).ok();
                let code = error.as_ref().map_or("", |error| error.code.as_str());
                // A personal-data change for someone the insurer has no enrolment of: the
                // employee is not a pension participant (an enrolment of theirs that failed
                // would have parked this lane before this request was ever made).
                if planned.path == PERSONAL_DATA_CHANGES_PATH && code == "UNKNOWN_PARTICIPANT" {
                    return AttemptOutcome::Filtered {
                        reason: "not a participant at the insurer",
                    };
                }
                let message = error.as_ref().map_or("", |error| error.message.as_str());
                AttemptOutcome::Permanent {
                    class: PermanentClass::Refused,
                    reason: one_line(&format!("HTTP {} {code}: {message}", status.as_u16()), 400),
                }
            }
        }
    }
}

/// The insurer's error body. Its message never contains a BSN (contract §4).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Maps an event to the insurer's request (contract §8).
pub fn plan(event: &Event, employer: Option<&InsurerEmployer>) -> Plan {
    let (kind, employment_event) = match event {
        Event::EmploymentStarted(inner) => (EmploymentKind::Started, inner),
        Event::EmploymentChanged(inner) => (EmploymentKind::Changed, inner),
        Event::EmploymentEnded(inner) => (EmploymentKind::Ended, inner),
        Event::EmployeeUpdated(inner) => {
            if !touches(
                &inner.header.changed_fields,
                &PENSION_RELEVANT_EMPLOYEE_FIELDS,
            ) {
                return Plan::Nothing("no pension-relevant personal change");
            }
            let Some(employer) = employer else {
                return no_payroll_tax_number(&inner.header.employer_key);
            };
            return personal_data_change(employer, &inner.employee);
        }
        Event::EmployerUpserted(_)
        | Event::EmployeeCreated(_)
        | Event::EmployeeRemoved(_)
        | Event::SyncCompleted(_) => return Plan::Nothing("event type not sent to insurers"),
    };
    let employment = &employment_event.employment;
    // Employments outside a pension scheme are not participants (UPA sends scheme data only
    // for participants): their start, changes and end are none of the insurer's business. An
    // employer linked with a single scheme puts every employment in it, whatever the source
    // says (Loket, for one, does not report the scheme per employment).
    let link_scheme = employer.and_then(|employer| employer.scheme_id.as_deref());
    let Some(source_scheme) = employment.pension_scheme.as_deref().or(link_scheme) else {
        return Plan::Nothing("employment has no pension scheme");
    };
    // An employment first seen with its end date already set ended before koppel knew it: no
    // participation to start at the insurer (enrolling it would leave an active participant
    // the termination never reaches, and block a later enrolment of the same person).
    if kind == EmploymentKind::Started && employment.end_date.is_some() {
        return Plan::Nothing("the employment had already ended when it was first seen");
    }
    if kind == EmploymentKind::Changed
        && !touches(
            &employment_event.header.changed_fields,
            &PENSION_RELEVANT_EMPLOYMENT_FIELDS,
        )
    {
        return Plan::Nothing("no pension-relevant employment change");
    }
    let Some(employer) = employer else {
        return no_payroll_tax_number(&employment_event.header.employer_key);
    };
    let scheme_id = employer.scheme_id.as_deref().unwrap_or(source_scheme);
    let participant = match Participant::of(employer, employment_event) {
        Ok(participant) => participant,
        Err(reason) => return Plan::Unmappable(reason),
    };
    let changed = &employment_event.header.changed_fields;
    let result = match kind {
        EmploymentKind::Started => enrolment(participant, scheme_id, employment_event),
        // Corrections of an employment the insurer knows (contract §3.5, §3.6, §8). Each
        // request carries the full current values, so values changed in the same event are
        // not lost.
        EmploymentKind::Changed if touches(changed, &["end_date"]) => {
            match employment_event.employment.end_date {
                // A corrected end date: a second termination corrects the first.
                Some(_) => termination(participant, employment_event),
                None => reinstatement(participant, scheme_id, employment_event),
            }
        }
        EmploymentKind::Changed if touches(changed, &["start_date"]) => {
            start_date_correction(participant, scheme_id, employment_event)
        }
        EmploymentKind::Changed => mutation(participant, scheme_id, employment_event),
        EmploymentKind::Ended => termination(participant, employment_event),
    };
    match result {
        Ok(planned) => Plan::Send(planned),
        Err(reason) => Plan::Unmappable(reason),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmploymentKind {
    Started,
    Changed,
    Ended,
}

fn no_payroll_tax_number(employer_key: &str) -> Plan {
    Plan::Unmappable(format!(
        "employer {employer_key} has no loonheffingennummer for this insurer: add an employer link, then re-drive"
    ))
}

/// `changed_fields` may name a field or a part of one (`name.last_name`, `address.city`).
fn touches(changed_fields: &[String], relevant: &[&str]) -> bool {
    changed_fields.iter().any(|field| {
        let top = field.split('.').next().unwrap_or(field);
        relevant.contains(&top)
    })
}

/// The identifying fields every employment request carries.
#[derive(Serialize)]
struct Participant {
    payroll_tax_number: String,
    bsn: String,
    income_relationship_number: u32,
    personnel_number: String,
}

impl Participant {
    fn of(employer: &InsurerEmployer, event: &EmploymentEvent) -> Result<Self, String> {
        let bsn = event
            .employee
            .bsn
            .as_ref()
            .ok_or("the employee has no BSN, which the insurer requires")?;
        let number = event
            .employment
            .income_relationship_number
            .ok_or("the employment has no income relationship number (NumIV)")?;
        let income_relationship_number =
            u32::try_from(number)
                .ok()
                .filter(|number| *number >= 1)
                .ok_or_else(|| format!("income relationship number {number} is not 1 or more"))?;
        let personnel_number = event
            .employee
            .employee_number
            .clone()
            .filter(|number| !number.is_empty())
            .ok_or("the employee has no personnel number")?;
        Ok(Participant {
            payroll_tax_number: employer.payroll_tax_number.clone(),
            bsn: bsn.expose().to_owned(),
            income_relationship_number,
            personnel_number,
        })
    }
}

/// Hours, part-time percentage and full-time pensionable salary, as the contract wants them.
#[derive(Serialize)]
struct EmploymentValues {
    hours_per_week: Decimal,
    fulltime_hours_per_week: Decimal,
    parttime_percentage: Decimal,
    fulltime_pensionable_salary_yearly: Decimal,
}

fn employment_values(event: &EmploymentEvent) -> Result<EmploymentValues, String> {
    let employment = &event.employment;
    let hours = employment
        .hours_per_week
        .ok_or("the employment has no hours per week")?;
    let fulltime = employment
        .fulltime_hours_per_week
        .ok_or("the employment has no full-time hours per week")?;
    let factor = employment
        .parttime_factor
        .or_else(|| parttime_factor(hours, fulltime))
        .ok_or("the employment has no part-time factor and zero full-time hours")?;
    let salary = employment
        .pensionable_salary
        .as_ref()
        .ok_or("the employment has no pensionable salary")?;
    if salary.currency != "EUR" {
        return Err(format!(
            "the pensionable salary is in {}, the insurer takes euros only",
            one_line(&salary.currency, 8)
        ));
    }
    Ok(EmploymentValues {
        hours_per_week: hours,
        fulltime_hours_per_week: fulltime,
        // A percentage, not a factor; exact decimal arithmetic, never a float. Hours above the
        // full-time week (an overtime contract) accrue pension as a full-timer: the percentage
        // is capped at 100 while the hours go as they are (contract §2).
        parttime_percentage: factor
            .checked_mul(Decimal::ONE_HUNDRED)
            .ok_or("the part-time factor is out of range")?
            .min(Decimal::ONE_HUNDRED),
        fulltime_pensionable_salary_yearly: salary.amount,
    })
}

#[derive(Serialize)]
struct PersonalDataBody<'a> {
    initials: Option<&'a str>,
    first_name: Option<&'a str>,
    name_prefix: Option<&'a str>,
    last_name: &'a str,
    partner_name_prefix: Option<&'a str>,
    partner_last_name: Option<&'a str>,
    name_usage: &'static str,
    date_of_birth: NaiveDate,
    gender: &'static str,
    email: Option<&'a str>,
    address: Option<&'a Address>,
}

fn personal_data(employee: &Employee) -> Result<PersonalDataBody<'_>, String> {
    let name = &employee.name;
    Ok(PersonalDataBody {
        initials: name.initials.as_deref(),
        first_name: name.first_name.as_deref(),
        name_prefix: name.prefix.as_deref(),
        last_name: &name.last_name,
        partner_name_prefix: name.partner_prefix.as_deref(),
        partner_last_name: name.partner_last_name.as_deref(),
        name_usage: match name.name_usage {
            NameUsage::Own => "own",
            NameUsage::Partner => "partner",
            NameUsage::PartnerOwn => "partner_own",
            NameUsage::OwnPartner => "own_partner",
        },
        date_of_birth: employee
            .date_of_birth
            .ok_or("the employee has no date of birth")?,
        gender: match employee.gender {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        },
        email: employee.email.as_deref(),
        address: employee.address.as_ref(),
    })
}

fn to_json<T: Serialize>(path: &'static str, body: &T) -> Result<PlannedRequest, String> {
    serde_json::to_value(body)
        .map(|body| PlannedRequest { path, body })
        .map_err(|error| format!("cannot serialize the request: {error}"))
}

fn enrolment(
    participant: Participant,
    scheme_id: &str,
    event: &EmploymentEvent,
) -> Result<PlannedRequest, String> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(flatten)]
        participant: Participant,
        scheme_id: &'a str,
        start_date: NaiveDate,
        #[serde(flatten)]
        values: EmploymentValues,
        personal_data: PersonalDataBody<'a>,
    }
    to_json(
        ENROLMENTS_PATH,
        &Body {
            participant,
            scheme_id,
            start_date: event.employment.start_date,
            values: employment_values(event)?,
            personal_data: personal_data(&event.employee)?,
        },
    )
}

fn mutation(
    participant: Participant,
    scheme_id: &str,
    event: &EmploymentEvent,
) -> Result<PlannedRequest, String> {
    dated_values(EMPLOYMENT_MUTATIONS_PATH, participant, scheme_id, event)
}

/// The start date was corrected: the corrected start plus the full current values.
fn start_date_correction(
    participant: Participant,
    scheme_id: &str,
    event: &EmploymentEvent,
) -> Result<PlannedRequest, String> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(flatten)]
        participant: Participant,
        start_date: NaiveDate,
        scheme_id: &'a str,
        #[serde(flatten)]
        values: EmploymentValues,
    }
    to_json(
        START_DATE_CORRECTIONS_PATH,
        &Body {
            participant,
            start_date: event.employment.start_date,
            scheme_id,
            values: employment_values(event)?,
        },
    )
}

/// The end date was removed: the termination is withdrawn, from the change's effective date.
fn reinstatement(
    participant: Participant,
    scheme_id: &str,
    event: &EmploymentEvent,
) -> Result<PlannedRequest, String> {
    dated_values(REINSTATEMENTS_PATH, participant, scheme_id, event)
}

/// A mutation or a reinstatement: the full current values from the change's effective date.
fn dated_values(
    path: &'static str,
    participant: Participant,
    scheme_id: &str,
    event: &EmploymentEvent,
) -> Result<PlannedRequest, String> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(flatten)]
        participant: Participant,
        effective_date: NaiveDate,
        scheme_id: &'a str,
        #[serde(flatten)]
        values: EmploymentValues,
    }
    // A pension mutation with a guessed date would misstate accrual; better a dead letter.
    let effective_date = event
        .header
        .effective_date
        .ok_or("the change has no effective date")?;
    to_json(
        path,
        &Body {
            participant,
            effective_date,
            scheme_id,
            values: employment_values(event)?,
        },
    )
}

fn termination(
    participant: Participant,
    event: &EmploymentEvent,
) -> Result<PlannedRequest, String> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(flatten)]
        participant: Participant,
        end_date: NaiveDate,
        end_reason: Option<&'a str>,
    }
    let end_date = event
        .employment
        .end_date
        .ok_or("the ended employment has no end date")?;
    to_json(
        TERMINATIONS_PATH,
        &Body {
            participant,
            end_date,
            end_reason: event.employment.end_reason.as_deref(),
        },
    )
}

fn personal_data_change(employer: &InsurerEmployer, employee: &Employee) -> Plan {
    #[derive(Serialize)]
    struct Body<'a> {
        payroll_tax_number: &'a str,
        bsn: &'a str,
        personnel_number: &'a str,
        personal_data: PersonalDataBody<'a>,
    }
    let Some(bsn) = employee.bsn.as_ref() else {
        return Plan::Unmappable("the employee has no BSN, which the insurer requires".to_owned());
    };
    let Some(personnel_number) = employee
        .employee_number
        .as_deref()
        .filter(|number| !number.is_empty())
    else {
        return Plan::Unmappable("the employee has no personnel number".to_owned());
    };
    let personal_data = match personal_data(employee) {
        Ok(personal_data) => personal_data,
        Err(reason) => return Plan::Unmappable(reason),
    };
    match to_json(
        PERSONAL_DATA_CHANGES_PATH,
        &Body {
            payroll_tax_number: &employer.payroll_tax_number,
            bsn: bsn.expose(),
            personnel_number,
            personal_data,
        },
    ) {
        Ok(planned) => Plan::Send(planned),
        Err(reason) => Plan::Unmappable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koppel_events::sample;

    fn employer() -> InsurerEmployer {
        InsurerEmployer {
            payroll_tax_number: "123456789L01".to_owned(),
            scheme_id: None,
        }
    }

    fn employment_event(event: Event) -> EmploymentEvent {
        match event {
            Event::EmploymentChanged(inner) => inner,
            _ => panic!("sample is an EmploymentChanged"),
        }
    }

    fn sent(plan: Plan) -> PlannedRequest {
        match plan {
            Plan::Send(planned) => planned,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn employment_started_becomes_an_enrolment_with_a_percentage_and_decimal_strings() {
        let inner = employment_event(sample::employment_changed(1));
        let planned = sent(plan(&Event::EmploymentStarted(inner), Some(&employer())));
        assert_eq!(planned.path, ENROLMENTS_PATH);
        let body = planned.body;
        assert_eq!(body["payroll_tax_number"], "123456789L01");
        assert_eq!(body["bsn"], "123456782");
        assert_eq!(body["income_relationship_number"], 1);
        assert_eq!(body["personnel_number"], "1001");
        assert_eq!(body["scheme_id"], "PGB-2024");
        assert_eq!(body["start_date"], "2021-09-01");
        assert_eq!(body["hours_per_week"], "32");
        assert_eq!(body["fulltime_hours_per_week"], "36");
        // 32/36 = 0.888889 as a factor; the insurer wants a percentage.
        assert_eq!(body["parttime_percentage"], "88.888900");
        assert_eq!(body["fulltime_pensionable_salary_yearly"], "6215.1200");
        assert_eq!(body["personal_data"]["name_usage"], "own");
        assert_eq!(body["personal_data"]["gender"], "female");
        assert_eq!(body["personal_data"]["address"]["postal_code"], "1015 CJ");
        assert_eq!(body["personal_data"].as_object().unwrap().len(), 11);
    }

    #[test]
    fn an_employer_link_scheme_covers_employments_the_source_gives_none() {
        let mut inner = employment_event(sample::employment_changed(1));
        inner.employment.pension_scheme = None;
        assert!(matches!(
            plan(&Event::EmploymentStarted(inner.clone()), Some(&employer())),
            Plan::Nothing(_)
        ));
        let linked = InsurerEmployer {
            scheme_id: Some("PR-1001".to_owned()),
            ..employer()
        };
        let planned = sent(plan(&Event::EmploymentStarted(inner), Some(&linked)));
        assert_eq!(planned.body["scheme_id"], "PR-1001");
    }

    #[test]
    fn an_employment_already_ended_when_first_seen_is_not_enrolled() {
        let mut inner = employment_event(sample::employment_changed(1));
        inner.employment.end_date = chrono::NaiveDate::from_ymd_opt(2019, 12, 31);
        assert!(matches!(
            plan(&Event::EmploymentStarted(inner), Some(&employer())),
            Plan::Nothing(_)
        ));
    }

    #[test]
    fn only_pension_relevant_changes_become_mutations() {
        let mut inner = employment_event(sample::employment_changed(2));
        let planned = sent(plan(
            &Event::EmploymentChanged(inner.clone()),
            Some(&employer()),
        ));
        assert_eq!(planned.path, EMPLOYMENT_MUTATIONS_PATH);
        assert_eq!(planned.body["effective_date"], "2026-11-01");
        assert!(planned.body.get("personal_data").is_none());

        inner.header.changed_fields = vec!["job_title".to_owned(), "salary".to_owned()];
        assert!(matches!(
            plan(&Event::EmploymentChanged(inner.clone()), Some(&employer())),
            Plan::Nothing(_)
        ));
        inner.header.changed_fields = vec!["pensionable_salary.amount".to_owned()];
        assert!(matches!(
            plan(&Event::EmploymentChanged(inner), Some(&employer())),
            Plan::Send(_)
        ));
    }

    #[test]
    /// Before: start-date corrections, end-date corrections and reinstatements arrived as
    /// EmploymentChanged with fields the plan ignored, so the insurer never heard of them; a
    /// part-time factor above 1 was sent as a percentage above 100, which the contract refuses.
    fn corrections_have_their_own_requests() {
        let changed = |fields: &[&str], end_date: Option<NaiveDate>| {
            let mut inner = employment_event(sample::employment_changed(1));
            inner.header.changed_fields = fields.iter().map(|f| (*f).to_owned()).collect();
            inner.employment.end_date = end_date;
            inner.header.effective_date = NaiveDate::from_ymd_opt(2026, 11, 20);
            plan(&Event::EmploymentChanged(inner), Some(&employer()))
        };
        let end = NaiveDate::from_ymd_opt(2026, 12, 31);
        let Plan::Send(start) = changed(&["start_date"], None) else {
            panic!("a start-date correction is sent");
        };
        assert_eq!(start.path, START_DATE_CORRECTIONS_PATH);
        let Plan::Send(reinstated) = changed(&["end_date", "end_reason"], None) else {
            panic!("a reinstatement is sent");
        };
        assert_eq!(reinstated.path, REINSTATEMENTS_PATH);
        assert_eq!(reinstated.body["effective_date"], "2026-11-20");
        let Plan::Send(corrected) = changed(&["end_date"], end) else {
            panic!("an end-date correction is sent");
        };
        assert_eq!(corrected.path, TERMINATIONS_PATH);
        assert_eq!(corrected.body["end_date"], "2026-12-31");

        let mut overtime = employment_event(sample::employment_changed(1));
        overtime.header.changed_fields = vec!["hours_per_week".to_owned()];
        overtime.employment.parttime_factor = Some(Decimal::new(1_1, 1));
        let Plan::Send(mutation) = plan(&Event::EmploymentChanged(overtime), Some(&employer()))
        else {
            panic!("an hours change is sent");
        };
        assert_eq!(mutation.body["parttime_percentage"], "100");
    }

    #[test]
    fn non_participants_and_irrelevant_events_send_nothing() {
        let mut inner = employment_event(sample::employment_changed(1));
        inner.employment.pension_scheme = None;
        assert!(matches!(
            plan(&Event::EmploymentStarted(inner.clone()), Some(&employer())),
            Plan::Nothing(_)
        ));
        let employee_event = koppel_events::EmployeeEvent {
            header: koppel_events::EventHeader {
                changed_fields: vec!["phone".to_owned(), "work_email".to_owned()],
                ..inner.header.clone()
            },
            employee: inner.employee.clone(),
        };
        assert!(matches!(
            plan(
                &Event::EmployeeUpdated(employee_event.clone()),
                Some(&employer())
            ),
            Plan::Nothing(_)
        ));
        let mut relevant = employee_event;
        relevant.header.changed_fields = vec!["name.last_name".to_owned()];
        let planned = sent(plan(&Event::EmployeeUpdated(relevant), Some(&employer())));
        assert_eq!(planned.path, PERSONAL_DATA_CHANGES_PATH);
        assert!(planned.body.get("income_relationship_number").is_none());
    }

    #[test]
    fn terminations_carry_the_end_date_and_missing_data_is_unmappable() {
        let mut inner = employment_event(sample::employment_changed(4));
        assert!(matches!(
            plan(&Event::EmploymentEnded(inner.clone()), Some(&employer())),
            Plan::Unmappable(_)
        ));
        inner.employment.end_date = NaiveDate::from_ymd_opt(2026, 6, 30);
        inner.employment.end_reason = Some("resignation".to_owned());
        let planned = sent(plan(
            &Event::EmploymentEnded(inner.clone()),
            Some(&employer()),
        ));
        assert_eq!(planned.path, TERMINATIONS_PATH);
        assert_eq!(planned.body["end_date"], "2026-06-30");
        assert_eq!(planned.body["end_reason"], "resignation");

        inner.employee.bsn = None;
        let Plan::Unmappable(reason) =
            plan(&Event::EmploymentEnded(inner.clone()), Some(&employer()))
        else {
            panic!("a missing BSN is unmappable");
        };
        assert!(reason.contains("BSN"));
        assert!(matches!(
            plan(&Event::EmploymentEnded(inner), None),
            Plan::Unmappable(_)
        ));
    }

    #[test]
    fn other_currencies_are_refused_and_debug_hides_the_body() {
        let mut inner = employment_event(sample::employment_changed(5));
        if let Some(salary) = inner.employment.pensionable_salary.as_mut() {
            salary.currency = "USD".to_owned();
        }
        assert!(matches!(
            plan(&Event::EmploymentChanged(inner.clone()), Some(&employer())),
            Plan::Unmappable(_)
        ));
        inner.employment.pensionable_salary = None;
        let planned = plan(
            &Event::EmploymentStarted(employment_event(sample::employment_changed(5))),
            Some(&employer()),
        );
        assert!(!format!("{planned:?}").contains("123456782"));
    }
}
