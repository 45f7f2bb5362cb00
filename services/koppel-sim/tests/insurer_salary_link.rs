//! The pension insurer simulator over real HTTP: receipts and idempotent repeats, the UPA-style
//! refusals (0014.2 for an unlinked employer, 11-proef, dates inside the employment), order
//! violations, authentication, faults, and a 20,000-request run with bounded parallelism.
//!
//! Bodies are written as raw JSON here, not with the crate's types, so these tests also pin the
//! documented field names.

// clippy's allow-unwrap-in-tests covers #[test] functions only, not the helpers they share; a
// panic is the right failure in all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use koppel_sim::faults::FaultConfig;
use koppel_sim::insurer::{
    self, EmployerLink, InsurerConfig, InsurerSimulator, ParticipantStatus, RequestOutcome,
    RunningInsurer,
};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "test-insurer-token";
const LINKED_EMPLOYER: &str = "123456789L01";
const UNLINKED_EMPLOYER: &str = "987654321L02";
const VALID_BSN: &str = "123456782";

async fn start_insurer() -> RunningInsurer {
    let simulator = InsurerSimulator::new(InsurerConfig::new(TOKEN, 7));
    simulator
        .link_employer(
            LINKED_EMPLOYER,
            EmployerLink {
                contract_number: "PC-1001".to_owned(),
                scheme_ids: vec![],
            },
        )
        .unwrap();
    insurer::spawn(simulator).await.unwrap()
}

/// Sends one salary-link request with both koppel headers and the bearer token.
async fn send(
    client: &reqwest::Client,
    running: &RunningInsurer,
    path: &str,
    idempotency_key: Uuid,
    stream_sequence: u64,
    body: &Value,
) -> (StatusCode, Value) {
    let response = client
        .post(format!("{}{}", running.base_url(), path))
        .bearer_auth(TOKEN)
        .header("Idempotency-Key", idempotency_key.to_string())
        .header("Koppel-Stream-Sequence", stream_sequence.to_string())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

fn enrolment(payroll_tax_number: &str, bsn: &str, income_relationship_number: u32) -> Value {
    json!({
        "payroll_tax_number": payroll_tax_number,
        "bsn": bsn,
        "income_relationship_number": income_relationship_number,
        "personnel_number": "P-17",
        "scheme_id": "U0051-1011",
        "start_date": "2026-01-01",
        "hours_per_week": "32.0000",
        "fulltime_hours_per_week": "40.0000",
        "parttime_percentage": "80.000000",
        "fulltime_pensionable_salary_yearly": "52000.00",
        "personal_data": {
            "initials": "J.",
            "first_name": "Jan",
            "name_prefix": "van der",
            "last_name": "Berg",
            "name_usage": "own",
            "date_of_birth": "1980-05-17",
            "gender": "male",
            "address": {
                "street": "Dorpsstraat",
                "house_number": "12",
                "house_number_addition": "a",
                "postal_code": "1234 AB",
                "city": "Utrecht",
                "country_code": "NL"
            }
        }
    })
}

fn mutation(bsn: &str, effective_date: &str, salary: &str) -> Value {
    json!({
        "payroll_tax_number": LINKED_EMPLOYER,
        "bsn": bsn,
        "income_relationship_number": 1,
        "personnel_number": "P-17",
        "effective_date": effective_date,
        "scheme_id": "U0051-1011",
        "hours_per_week": "36",
        "fulltime_hours_per_week": "40",
        "parttime_percentage": "90",
        "fulltime_pensionable_salary_yearly": salary
    })
}

fn termination(bsn: &str, end_date: &str) -> Value {
    json!({
        "payroll_tax_number": LINKED_EMPLOYER,
        "bsn": bsn,
        "income_relationship_number": 1,
        "personnel_number": "P-17",
        "end_date": end_date,
        "end_reason": "resignation"
    })
}

/// A BSN passing the 11-proef, derived from `seed`: eight digits, then the check digit that
/// makes the weighted sum divisible by 11 (seeds whose check digit would be 10 are skipped).
fn valid_bsn(seed: u32) -> String {
    let mut candidate = 10_000_000 + seed * 7;
    loop {
        let digits: Vec<u32> = candidate
            .to_string()
            .chars()
            .map(|c| c.to_digit(10).unwrap())
            .collect();
        let sum: u32 = digits
            .iter()
            .zip((2..=9).rev())
            .map(|(digit, weight)| digit * weight)
            .sum();
        let check = sum % 11;
        if check < 10 {
            return format!("{candidate}{check}");
        }
        candidate += 1;
    }
}

#[tokio::test]
async fn enrolment_is_accepted_and_a_repeat_gets_the_original_receipt_with_409() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let key = Uuid::new_v4();
    let body = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);

    let (status, receipt) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        key,
        100,
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(receipt["idempotency_key"], key.to_string());
    assert_eq!(receipt["request_kind"], "enrolment");
    assert!(
        receipt["receipt_id"]
            .as_str()
            .is_some_and(|id| Uuid::parse_str(id).is_ok())
    );
    assert!(receipt["received_at"].is_string());

    let (repeat_status, repeat_receipt) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        key,
        100,
        &body,
    )
    .await;
    assert_eq!(repeat_status, StatusCode::CONFLICT);
    assert_eq!(
        repeat_receipt, receipt,
        "409 must carry the original receipt unchanged"
    );

    let summary = running.simulator.summary();
    assert_eq!(
        (
            summary.applied,
            summary.duplicates,
            summary.order_violations
        ),
        (1, 1, 0)
    );
    let participant = running
        .simulator
        .participant(LINKED_EMPLOYER, VALID_BSN)
        .unwrap();
    assert_eq!(participant.status, ParticipantStatus::Active);
    assert_eq!(
        participant.fulltime_pensionable_salary_yearly,
        Decimal::new(5_200_000, 2)
    );
    assert_eq!(participant.parttime_percentage, Decimal::new(80, 0));
    assert_eq!(
        participant.personal_data.name_prefix.as_deref(),
        Some("van der")
    );
    let applied = running.simulator.applied_requests();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].idempotency_key, key);
    assert_eq!(applied[0].stream_sequence, 100);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn unlinked_employer_is_answered_with_the_funds_0014_2_nok_and_rejudged_after_linking() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let key = Uuid::new_v4();
    let body = enrolment(UNLINKED_EMPLOYER, VALID_BSN, 1);

    let (status, error) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        key,
        1,
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["result"], "NOK");
    assert_eq!(error["code"], "0014.2");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(UNLINKED_EMPLOYER)
    );

    // A refusal is not remembered under the key: once the employer is linked (over the control
    // API this time), the re-driven request is accepted.
    let link = client
        .put(format!(
            "{}/salary-link/v1/control/linked-employers/{UNLINKED_EMPLOYER}",
            running.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"contract_number": "PC-2002", "scheme_ids": ["U0051-1011"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), StatusCode::NO_CONTENT);
    let (status, _) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        key,
        1,
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let summary = running.simulator.summary();
    assert_eq!(summary.rejected_by_code.get("0014.2"), Some(&1));
    assert_eq!(summary.applied, 1);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn requests_without_the_bearer_token_get_401() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let url = format!("{}/salary-link/v1/enrolments", running.base_url());
    let body = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);

    let missing = client
        .post(&url)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .header("Koppel-Stream-Sequence", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "UNAUTHORIZED"
    );

    let wrong = client
        .post(&url)
        .bearer_auth("not-the-token")
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .header("Koppel-Stream-Sequence", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let summary_without_token = client
        .get(format!(
            "{}/salary-link/v1/control/summary",
            running.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(summary_without_token.status(), StatusCode::UNAUTHORIZED);

    let summary = running.simulator.summary();
    assert_eq!(summary.rejected_by_code.get("UNAUTHORIZED"), Some(&3));
    assert_eq!((summary.received, summary.applied), (0, 0));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn validation_refusals_carry_machine_readable_codes() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let path = "/salary-link/v1/enrolments";

    let mut bad_bsn = enrolment(LINKED_EMPLOYER, "123456789", 1);
    let (status, error) = send(&client, &running, path, Uuid::new_v4(), 1, &bad_bsn).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_BSN"))
    );
    assert!(
        !error["message"].as_str().unwrap().contains("123456789"),
        "no BSN in messages"
    );

    bad_bsn["bsn"] = json!(VALID_BSN);
    bad_bsn["payroll_tax_number"] = json!("123456789X01");
    let (status, error) = send(&client, &running, path, Uuid::new_v4(), 2, &bad_bsn).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("INVALID_PAYROLL_TAX_NUMBER")
        )
    );

    let mut float_salary = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);
    float_salary["fulltime_pensionable_salary_yearly"] = json!(52000.5);
    let (status, error) = send(&client, &running, path, Uuid::new_v4(), 3, &float_salary).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_BODY"))
    );

    let mut numeric_bsn = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);
    numeric_bsn["bsn"] = json!(123_456_782);
    let (status, error) = send(&client, &running, path, Uuid::new_v4(), 4, &numeric_bsn).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !error["message"].as_str().unwrap().contains("123456782"),
        "serde echoes are redacted"
    );

    let mut too_many_percent = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);
    too_many_percent["parttime_percentage"] = json!("120");
    let (status, error) = send(
        &client,
        &running,
        path,
        Uuid::new_v4(),
        5,
        &too_many_percent,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_VALUE"))
    );

    let mut unknown_field = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);
    unknown_field["salary"] = json!("1");
    let (status, error) = send(&client, &running, path, Uuid::new_v4(), 6, &unknown_field).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_BODY"))
    );

    let (status, error) = send(
        &client,
        &running,
        "/salary-link/v1/employment-mutations",
        Uuid::new_v4(),
        7,
        &mutation(VALID_BSN, "2026-02-01", "54000.00"),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("UNKNOWN_PARTICIPANT")
        )
    );

    // Header and JSON problems are 400s.
    let url = format!("{}{}", running.base_url(), path);
    let no_key = client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("Koppel-Stream-Sequence", "8")
        .json(&enrolment(LINKED_EMPLOYER, VALID_BSN, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        no_key.json::<Value>().await.unwrap()["code"],
        "INVALID_IDEMPOTENCY_KEY"
    );
    let bad_sequence = client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .header("Koppel-Stream-Sequence", "-1")
        .json(&enrolment(LINKED_EMPLOYER, VALID_BSN, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_sequence.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_sequence.json::<Value>().await.unwrap()["code"],
        "INVALID_STREAM_SEQUENCE"
    );
    let not_json = client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .header("Koppel-Stream-Sequence", "9")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        not_json.json::<Value>().await.unwrap()["code"],
        "MALFORMED_JSON"
    );

    let summary = running.simulator.summary();
    assert_eq!(summary.applied, 0);
    assert_eq!(summary.rejected_by_code.get("INVALID_BODY"), Some(&3));
    assert_eq!(summary.rejected_by_code.get("INVALID_BSN"), Some(&1));
    assert_eq!(summary.rejected_by_code.get("MALFORMED_JSON"), Some(&1));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_reused_idempotency_key_with_another_body_is_refused() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let key = Uuid::new_v4();
    let path = "/salary-link/v1/enrolments";
    let (status, _) = send(
        &client,
        &running,
        path,
        key,
        1,
        &enrolment(LINKED_EMPLOYER, VALID_BSN, 1),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut changed = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);
    changed["fulltime_pensionable_salary_yearly"] = json!("99999.00");
    let (status, error) = send(&client, &running, path, key, 1, &changed).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("IDEMPOTENCY_KEY_REUSED")
        )
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn mutation_and_termination_follow_the_employment_dates() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let (status, _) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        Uuid::new_v4(),
        1,
        &enrolment(LINKED_EMPLOYER, VALID_BSN, 1),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let mutations = "/salary-link/v1/employment-mutations";
    let (status, error) = send(
        &client,
        &running,
        mutations,
        Uuid::new_v4(),
        2,
        &mutation(VALID_BSN, "2025-12-31", "54000.00"),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("EFFECTIVE_DATE_OUTSIDE_EMPLOYMENT")
        )
    );

    let (status, _) = send(
        &client,
        &running,
        mutations,
        Uuid::new_v4(),
        3,
        &mutation(VALID_BSN, "2026-03-01", "54000.00"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let participant = running
        .simulator
        .participant(LINKED_EMPLOYER, VALID_BSN)
        .unwrap();
    assert_eq!(
        participant.fulltime_pensionable_salary_yearly,
        Decimal::new(5_400_000, 2)
    );
    assert_eq!(participant.parttime_percentage, Decimal::new(90, 0));
    assert_eq!(participant.hours_per_week, Decimal::new(36, 0));
    assert_eq!(
        participant.employment_values_effective_date.to_string(),
        "2026-03-01"
    );

    // A participation is (employer, BSN, NumIV): another, never enrolled relationship of the
    // same person is unknown.
    let mut other_relationship = mutation(VALID_BSN, "2026-03-01", "54000.00");
    other_relationship["income_relationship_number"] = json!(2);
    let (status, error) = send(
        &client,
        &running,
        mutations,
        Uuid::new_v4(),
        4,
        &other_relationship,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("UNKNOWN_PARTICIPANT")
        )
    );

    let (status, _) = send(
        &client,
        &running,
        "/salary-link/v1/terminations",
        Uuid::new_v4(),
        5,
        &termination(VALID_BSN, "2026-06-30"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let participant = running
        .simulator
        .participant(LINKED_EMPLOYER, VALID_BSN)
        .unwrap();
    assert_eq!(participant.status, ParticipantStatus::Terminated);
    assert_eq!(
        participant.end_date.map(|date| date.to_string()).as_deref(),
        Some("2026-06-30")
    );

    // After the end date nothing may change; a retroactive change inside the employment may.
    let (status, error) = send(
        &client,
        &running,
        mutations,
        Uuid::new_v4(),
        6,
        &mutation(VALID_BSN, "2026-07-01", "56000.00"),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("EFFECTIVE_DATE_OUTSIDE_EMPLOYMENT")
        )
    );
    let (status, _) = send(
        &client,
        &running,
        mutations,
        Uuid::new_v4(),
        7,
        &mutation(VALID_BSN, "2026-06-01", "55000.00"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Re-enrolling under the ended income relationship number is UPA's p0042.
    let (status, error) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        Uuid::new_v4(),
        8,
        &enrolment(LINKED_EMPLOYER, VALID_BSN, 1),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("p0042"))
    );

    // A personal-data change is accepted for a leaver: a deferred member still moves house.
    let (status, _) = send(
        &client,
        &running,
        "/salary-link/v1/personal-data-changes",
        Uuid::new_v4(),
        9,
        &json!({
            "payroll_tax_number": LINKED_EMPLOYER,
            "bsn": VALID_BSN,
            "personnel_number": "P-17",
            "personal_data": {
                "last_name": "Berg-de Vries",
                "name_usage": "own_partner",
                "date_of_birth": "1980-05-17",
                "gender": "male"
            }
        }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let participant = running
        .simulator
        .participant(LINKED_EMPLOYER, VALID_BSN)
        .unwrap();
    assert_eq!(participant.personal_data.last_name, "Berg-de Vries");
    assert_eq!(participant.status, ParticipantStatus::Terminated);

    let state_over_http: Value = client
        .get(format!(
            "{}/salary-link/v1/control/participants/{LINKED_EMPLOYER}/{VALID_BSN}",
            running.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state_over_http["fulltime_pensionable_salary_yearly"],
        "55000.00"
    );
    assert_eq!(state_over_http["status"], "terminated");
    assert_eq!(running.simulator.summary().order_violations, 0);
    running.stop().await.unwrap();
}

/// Before: the participant was keyed (employer, BSN), so a second, concurrent job of one person
/// was refused, and start-date corrections and reinstatements had no request at all.
#[tokio::test]
async fn concurrent_jobs_corrections_and_reinstatements_each_have_a_request() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let mut sequence = 0;
    let mut post = |path: &'static str, body: Value| {
        sequence += 1;
        let (client, running) = (&client, &running);
        let number = sequence;
        async move {
            let (status, error) = send(client, running, path, Uuid::new_v4(), number, &body).await;
            (status, error["code"].as_str().map(str::to_owned))
        }
    };
    let accepted = (StatusCode::ACCEPTED, None);
    assert_eq!(
        post(
            "/salary-link/v1/enrolments",
            enrolment(LINKED_EMPLOYER, VALID_BSN, 1)
        )
        .await,
        accepted
    );
    // An on-call contract next to the job: NumIV 2, a participation of its own.
    let mut on_call = enrolment(LINKED_EMPLOYER, VALID_BSN, 2);
    on_call["hours_per_week"] = json!("0");
    on_call["parttime_percentage"] = json!("0");
    assert_eq!(post("/salary-link/v1/enrolments", on_call).await, accepted);
    assert_eq!(running.simulator.participants().len(), 2);

    let values = |number: u32| {
        let mut body = enrolment(LINKED_EMPLOYER, VALID_BSN, number);
        let fields = body.as_object_mut().unwrap();
        fields.remove("personal_data");
        fields.remove("start_date");
        body
    };
    // The start date was entered a week late.
    let mut correction = values(1);
    correction["start_date"] = json!("2025-12-25");
    assert_eq!(
        post("/salary-link/v1/start-date-corrections", correction).await,
        accepted
    );
    let participant = running
        .simulator
        .participant(LINKED_EMPLOYER, VALID_BSN)
        .unwrap();
    assert_eq!(participant.start_date.to_string(), "2025-12-25");
    assert_eq!(participant.income_relationship_number, 1);

    // Terminated, then the dismissal is withdrawn.
    let mut leaving = termination(VALID_BSN, "2026-06-30");
    leaving["income_relationship_number"] = json!(1);
    assert_eq!(
        post("/salary-link/v1/terminations", leaving).await,
        accepted
    );
    let mut too_early = values(1);
    too_early["effective_date"] = json!("2025-12-01");
    assert_eq!(
        post("/salary-link/v1/reinstatements", too_early).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("EFFECTIVE_DATE_OUTSIDE_EMPLOYMENT".to_owned())
        )
    );
    let mut reinstatement = values(1);
    reinstatement["effective_date"] = json!("2026-05-20");
    assert_eq!(
        post("/salary-link/v1/reinstatements", reinstatement).await,
        accepted
    );
    let participant = running
        .simulator
        .participant(LINKED_EMPLOYER, VALID_BSN)
        .unwrap();
    assert_eq!(participant.status, ParticipantStatus::Active);
    assert_eq!(participant.end_date, None);

    // A corrected start after the end of the employment contradicts it.
    let mut ended = termination(VALID_BSN, "2026-06-30");
    ended["income_relationship_number"] = json!(2);
    assert_eq!(post("/salary-link/v1/terminations", ended).await, accepted);
    let mut after_the_end = values(2);
    after_the_end["start_date"] = json!("2026-07-01");
    assert_eq!(
        post("/salary-link/v1/start-date-corrections", after_the_end).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("EFFECTIVE_DATE_OUTSIDE_EMPLOYMENT".to_owned())
        )
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_lower_stream_sequence_after_a_higher_one_is_an_order_violation_but_a_duplicate_is_not() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let enrolment_key = Uuid::new_v4();
    let enrolment_body = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);
    let mutations = "/salary-link/v1/employment-mutations";
    let other_bsn = valid_bsn(1);

    send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        enrolment_key,
        10,
        &enrolment_body,
    )
    .await;
    send(
        &client,
        &running,
        mutations,
        Uuid::new_v4(),
        12,
        &mutation(VALID_BSN, "2026-03-01", "53000.00"),
    )
    .await;
    // The duplicate of sequence 10 is absorbed, not judged.
    let (status, _) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        enrolment_key,
        10,
        &enrolment_body,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Sequence 11 overtaken by 12: a violation, although the insurer still applies it.
    let late_key = Uuid::new_v4();
    let (status, _) = send(
        &client,
        &running,
        mutations,
        late_key,
        11,
        &mutation(VALID_BSN, "2026-02-01", "52500.00"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Another participant's lower sequence is no violation: order is per participant.
    send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        Uuid::new_v4(),
        5,
        &enrolment(LINKED_EMPLOYER, &other_bsn, 1),
    )
    .await;

    let summary = running.simulator.summary();
    assert_eq!(
        (
            summary.applied,
            summary.duplicates,
            summary.order_violations
        ),
        (4, 1, 1)
    );
    let violations: Vec<Uuid> = running
        .simulator
        .received_requests()
        .into_iter()
        .filter(|line| line.order_violation)
        .map(|line| line.idempotency_key)
        .collect();
    assert_eq!(violations, [late_key]);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn injected_faults_answer_429_with_retry_after_and_503() {
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let body = enrolment(LINKED_EMPLOYER, VALID_BSN, 1);
    running.simulator.configure_faults(FaultConfig {
        too_many_requests_per_mille: 1000,
        retry_after_seconds: 3,
        ..FaultConfig::default()
    });
    let response = client
        .post(format!("{}/salary-link/v1/enrolments", running.base_url()))
        .bearer_auth(TOKEN)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .header("Koppel-Stream-Sequence", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "3");

    running.simulator.configure_faults(FaultConfig {
        server_error_per_mille: 1000,
        ..FaultConfig::default()
    });
    let (status, _) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        Uuid::new_v4(),
        1,
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // A slow answer beyond the client's timeout is a timeout. Whether the insurer processed the
    // request anyway is unknown to the sender, as with a real upstream; the retry under the same
    // key resolves it: 202 if the first never got through, 409 with the first receipt if it did.
    // Either way exactly one application results.
    running.simulator.configure_faults(FaultConfig {
        slow_per_mille: 1000,
        slow_delay_millis: 300,
        ..FaultConfig::default()
    });
    let key = Uuid::new_v4();
    let timed_out = client
        .post(format!("{}/salary-link/v1/enrolments", running.base_url()))
        .bearer_auth(TOKEN)
        .header("Idempotency-Key", key.to_string())
        .header("Koppel-Stream-Sequence", "2")
        .timeout(Duration::from_millis(50))
        .json(&body)
        .send()
        .await;
    assert!(timed_out.is_err_and(|error| error.is_timeout()));
    running.simulator.configure_faults(FaultConfig::default());
    let (status, _) = send(
        &client,
        &running,
        "/salary-link/v1/enrolments",
        key,
        2,
        &body,
    )
    .await;
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::CONFLICT,
        "{status}"
    );

    let summary = running.simulator.summary();
    assert_eq!(summary.applied, 1);
    assert_eq!(
        (
            summary.faults.too_many_requests,
            summary.faults.server_errors
        ),
        (1, 1)
    );
    running.stop().await.unwrap();
}

/// 500 participants, 40 requests each (one enrolment, 39 mutations), sent by 32 lanes in
/// parallel with each participant's requests in order: 20,000 applied, no violations, and the
/// final state equals the last mutation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_requests_with_bounded_parallelism_are_all_applied_in_order() {
    const PARTICIPANTS: u32 = 500;
    const REQUESTS_PER_PARTICIPANT: u64 = 40;
    const LANES: u32 = 32;
    let running = start_insurer().await;
    let client = koppel_runtime::http::client_builder().build().unwrap();
    let base_url = running.base_url();

    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..LANES {
        let client = client.clone();
        let base_url = base_url.clone();
        lanes.spawn(async move {
            let mut participant = lane;
            while participant < PARTICIPANTS {
                let bsn = valid_bsn(participant);
                // Interleave sequences across participants as a shared stream would.
                let sequence_of =
                    |index: u64| index * u64::from(PARTICIPANTS) + u64::from(participant) + 1;
                for index in 0..REQUESTS_PER_PARTICIPANT {
                    let (path, body) = if index == 0 {
                        (
                            "/salary-link/v1/enrolments",
                            enrolment(LINKED_EMPLOYER, &bsn, 1),
                        )
                    } else {
                        let salary = format!("{}.00", 50_000 + index * 100);
                        let day = format!("2026-02-{:02}", 1 + index % 28);
                        (
                            "/salary-link/v1/employment-mutations",
                            mutation(&bsn, &day, &salary),
                        )
                    };
                    let response = client
                        .post(format!("{base_url}{path}"))
                        .bearer_auth(TOKEN)
                        .header("Idempotency-Key", Uuid::new_v4().to_string())
                        .header("Koppel-Stream-Sequence", sequence_of(index).to_string())
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::ACCEPTED);
                }
                participant += LANES;
            }
        });
    }
    while let Some(result) = lanes.join_next().await {
        result.unwrap();
    }

    let summary = running.simulator.summary();
    assert_eq!(
        summary.applied,
        u64::from(PARTICIPANTS) * REQUESTS_PER_PARTICIPANT
    );
    assert_eq!((summary.duplicates, summary.order_violations), (0, 0));
    assert_eq!(summary.participants, u64::from(PARTICIPANTS));
    assert!(summary.rejected_by_code.is_empty());
    let last_salary = Decimal::from(50_000 + (REQUESTS_PER_PARTICIPANT - 1) * 100);
    for participant in running.simulator.participants() {
        assert_eq!(participant.fulltime_pensionable_salary_yearly, last_salary);
    }
    assert!(
        running
            .simulator
            .applied_requests()
            .iter()
            .all(|line| matches!(line.outcome, RequestOutcome::Applied { .. }))
    );
    running.stop().await.unwrap();
}
