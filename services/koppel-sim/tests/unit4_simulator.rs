//! Integration tests of the Unit4 simulator over real HTTP: IDS client credentials, employer
//! authorisation through the web-API user's group, paging envelopes, and faults.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use koppel_sim::faults::FaultConfig;
use koppel_sim::unit4::{
    RunningUnit4Simulator, Unit4Simulator, Unit4SimulatorConfig, WebApiClient, spawn,
};
use koppel_sim::world::{MutationRates, RecordMalformation, World, WorldConfig};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Harness {
    simulator: Unit4Simulator,
    running: RunningUnit4Simulator,
    shutdown: CancellationToken,
    http: reqwest::Client,
    employer_ids: Vec<Uuid>,
}

impl Harness {
    /// Three employers; client `insurer` is linked to the first two only.
    async fn start(employees: usize) -> Self {
        let world =
            World::generate(WorldConfig::new(44, 3, employees).with_rates(MutationRates::none()));
        let employer_ids: Vec<Uuid> = world
            .employers()
            .iter()
            .map(|employer| employer.id)
            .collect();
        let simulator = Unit4Simulator::new(world.into_shared(), Unit4SimulatorConfig::default());
        simulator.register_client(WebApiClient {
            client_id: "insurer".to_owned(),
            client_secret: "s3cret".to_owned(),
            employers: employer_ids[..2].iter().copied().collect::<HashSet<_>>(),
        });
        let shutdown = CancellationToken::new();
        let running = spawn(simulator.clone(), shutdown.clone()).await.unwrap();
        Harness {
            simulator,
            running,
            shutdown,
            http: koppel_runtime::http::client_builder().build().unwrap(),
            employer_ids,
        }
    }

    async fn token_response(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.running.token_url())
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn token(&self) -> String {
        let (status, body) = self
            .token_response(&[
                ("grant_type", "client_credentials"),
                ("client_id", "insurer"),
                ("client_secret", "s3cret"),
                ("scope", "hr-salarisgemak.api"),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self
            .http
            .get(format!("{}{path}", self.running.api_base_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.stopped().await.unwrap();
    }
}

#[tokio::test]
async fn client_credentials_issue_a_bearer_token_and_bad_ones_are_refused() {
    let harness = Harness::start(5).await;
    let (status, body) = harness
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", "insurer"),
            ("client_secret", "s3cret"),
            ("scope", "hr-salarisgemak.api"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "hr-salarisgemak.api");

    let (status, body) = harness
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", "insurer"),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = harness
        .token_response(&[
            ("grant_type", "client_credentials"),
            ("client_id", "insurer"),
            ("client_secret", "s3cret"),
            ("scope", "other"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (status, body) = harness
        .token_response(&[("grant_type", "password"), ("client_id", "insurer")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_client_sees_only_its_groups_employers() {
    let harness = Harness::start(5).await;
    let token = harness.token().await;

    let (status, body) = harness.get(Some(&token), "/werkgevers").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["werkgeverId"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(body["paginering"]["totaalAantal"], 2);
    let first = body["data"][0].clone();
    assert!(first["loonheffingennummer"].as_str().unwrap().contains('L'));

    let unlinked = harness.employer_ids[2];
    let (status, body) = harness
        .get(Some(&token), &format!("/werkgevers/{unlinked}/werknemers"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["foutcode"], "AUTH-003");
    let (status, _) = harness
        .get(
            Some(&token),
            &format!("/werkgevers/{}/werknemers", Uuid::new_v4()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = harness.get(None, "/werkgevers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    harness.simulator.link_employer("insurer", unlinked);
    let (status, _) = harness
        .get(Some(&token), &format!("/werkgevers/{unlinked}/werknemers"))
        .await;
    assert_eq!(status, StatusCode::OK);
    harness.stop().await;
}

#[tokio::test]
async fn expired_tokens_get_401() {
    let harness = Harness::start(3).await;
    let token = harness.token().await;
    assert_eq!(
        harness.get(Some(&token), "/werkgevers").await.0,
        StatusCode::OK
    );
    harness.simulator.expire_access_tokens();
    assert_eq!(
        harness.get(Some(&token), "/werkgevers").await.0,
        StatusCode::UNAUTHORIZED
    );
    let fresh = harness.token().await;
    assert_eq!(
        harness.get(Some(&fresh), "/werkgevers").await.0,
        StatusCode::OK
    );
    harness.stop().await;
}

#[tokio::test]
async fn pages_cover_every_record_once_and_the_last_page_is_short() {
    let harness = Harness::start(23).await;
    let token = harness.token().await;
    let employer = harness.employer_ids[0];
    let mut seen = HashSet::new();
    let mut page = 1;
    loop {
        let (status, body) = harness
            .get(
                Some(&token),
                &format!("/werkgevers/{employer}/werknemers?pagina={page}&aantal=10"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let data = body["data"].as_array().unwrap();
        for employee in data {
            assert!(seen.insert(employee["werknemerId"].as_str().unwrap().to_owned()));
        }
        let total_pages = body["paginering"]["totaalPaginas"].as_u64().unwrap();
        if page >= total_pages {
            assert!(data.len() <= 10);
            break;
        }
        page += 1;
    }
    let employees = harness
        .simulator
        .with_world(|world| world.employer(employer).unwrap().employees.len());
    assert_eq!(seen.len(), employees);

    let (status, body) = harness
        .get(
            Some(&token),
            &format!("/werkgevers/{employer}/dienstverbanden?aantal=1000"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["paginering"]["aantal"], 500,
        "page size is clamped to the maximum"
    );
    let employment = &body["data"][0];
    assert!(
        employment["salarisgegevens"]["brutoSalaris"].is_string(),
        "amounts are strings, never floats"
    );
    assert!(employment["uren"]["urenPerWeek"].is_string());
    let (status, _) = harness
        .get(
            Some(&token),
            &format!("/werkgevers/{employer}/werknemers?pagina=0"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    harness.stop().await;
}

#[tokio::test]
async fn malformed_records_and_empty_lists_are_served_on_demand() {
    let harness = Harness::start(4).await;
    let token = harness.token().await;
    let employer = harness.employer_ids[0];
    let employee_id = harness
        .simulator
        .with_world(|world| world.employer(employer).unwrap().employees[0].id);
    harness
        .simulator
        .shared_world()
        .write()
        .unwrap()
        .inject_malformation(employee_id, RecordMalformation::MissingLastName)
        .unwrap();
    let (_, body) = harness
        .get(Some(&token), &format!("/werkgevers/{employer}/werknemers"))
        .await;
    let broken = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["werknemerId"] == employee_id.to_string())
        .unwrap();
    assert!(broken.get("achternaam").is_none());

    harness
        .simulator
        .shared_world()
        .write()
        .unwrap()
        .set_serves_empty_employee_list(employer, true)
        .unwrap();
    let (_, body) = harness
        .get(Some(&token), &format!("/werkgevers/{employer}/werknemers"))
        .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 0);
    assert_eq!(body["paginering"]["totaalPaginas"], 0);
    harness.stop().await;
}

#[tokio::test]
async fn faults_answer_429_with_retry_after_and_are_counted() {
    let harness = Harness::start(3).await;
    let token = harness.token().await;
    harness.simulator.configure_faults(FaultConfig {
        too_many_requests_per_mille: 1000,
        retry_after_seconds: 3,
        ..FaultConfig::default()
    });
    let response = harness
        .http
        .get(format!("{}/werkgevers", harness.running.api_base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(harness.simulator.fault_counts().too_many_requests, 1);
    assert_eq!(
        harness.simulator.call_counts().get("/api/hr/v1/werkgevers"),
        Some(&1)
    );
    harness.stop().await;
}
