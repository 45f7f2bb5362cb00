//! Integration tests of the Loket simulator over real HTTP: token flows, status codes, paging
//! envelopes, the lastmodifiedversionnumbers change feed and fault injection.

// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use koppel_sim::faults::FaultConfig;
use koppel_sim::loket::{
    AuthorizingUser, LoketSimulator, LoketSimulatorConfig, RunningLoketSimulator, spawn,
};
use koppel_sim::world::identifiers::passes_eleven_proef;
use koppel_sim::world::{ChangeKind, MutationRates, RecordMalformation, World, WorldConfig};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const FULL_USER: &str = "provider.admin";

struct Harness {
    simulator: LoketSimulator,
    running: RunningLoketSimulator,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Harness {
    async fn start(employers: usize, employees: usize) -> Self {
        let world = World::generate(
            WorldConfig::new(2024, employers, employees).with_rates(MutationRates::busy()),
        );
        let simulator = LoketSimulator::new(world.into_shared(), LoketSimulatorConfig::default());
        simulator.register_authorizing_user(AuthorizingUser::with_full_access(FULL_USER));
        let shutdown = CancellationToken::new();
        let running = spawn(simulator.clone(), shutdown.clone()).await.unwrap();
        let http = koppel_runtime::http::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            simulator,
            running,
            shutdown,
            http,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.stopped().await.unwrap();
    }

    fn config(&self) -> &LoketSimulatorConfig {
        self.simulator.config()
    }

    /// POSTs a form body to `/token` the way HelloID does: `Content-Type: text/plain`.
    async fn token_request(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let body = serde_urlencoded::to_string(form).unwrap();
        let response = self
            .http
            .post(format!("{}/token", self.running.oauth_base_url()))
            .header("Content-Type", "text/plain")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let config = self.config().clone();
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &config.client_id),
            (
                "client_secret",
                config.client_secret.as_deref().unwrap_or(""),
            ),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// An access token for a registered user, through the refresh grant.
    async fn access_token(&self, user_name: &str) -> String {
        let refresh_token = self.simulator.issue_refresh_token(user_name).unwrap();
        let (status, body) = self.refresh(&refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, token: Option<&str>, path_and_query: &str) -> (StatusCode, Value) {
        let mut request = self
            .http
            .get(format!("{}{path_and_query}", self.running.api_base_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    fn employer_ids(&self) -> Vec<Uuid> {
        self.simulator
            .with_world(|world| world.employers().iter().map(|e| e.id).collect())
    }
}

fn embedded_ids(body: &Value) -> Vec<String> {
    body["_embedded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn authorization_code_exchange_and_refresh_token_rotation() {
    let harness = Harness::start(1, 5).await;
    let config = harness.config().clone();

    let response = harness
        .http
        .get(format!("{}/authorize", harness.running.oauth_base_url()))
        .query(&[
            ("client_id", config.client_id.as_str()),
            ("redirect_uri", config.redirect_uri.as_str()),
            ("response_type", "code"),
            ("scope", "all"),
            ("state", "Unique Id"),
            ("login_hint", FULL_USER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (target, query) = location.split_once('?').unwrap();
    assert_eq!(target, config.redirect_uri);
    assert!(query.starts_with("state=Unique+Id&code="), "{query}");
    let code = query.split("code=").nth(1).unwrap().to_owned();

    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", config.redirect_uri.as_str()),
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_deref().unwrap()),
    ];
    let (status, tokens) = harness.token_request(&exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3599);
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let first_access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first_refresh, first_access);

    // A code is single use.
    let (status, body) = harness.token_request(&exchange).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Refreshing rotates the refresh token; the old one is dead at once.
    let (status, rotated) = harness.refresh(&first_refresh).await;
    assert_eq!(status, StatusCode::OK);
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    let (status, body) = harness.refresh(&first_refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, serde_json::json!({"error": "invalid_grant"}));
    let (status, _) = harness.refresh(&second_refresh).await;
    assert_eq!(status, StatusCode::OK);

    // Both access tokens work until they expire.
    for token in [
        first_access.as_str(),
        rotated["access_token"].as_str().unwrap(),
    ] {
        let (status, _) = harness.get(Some(token), "/providers/employers").await;
        assert_eq!(status, StatusCode::OK);
    }

    // Client authentication: a wrong secret is refused; HTTP Basic credentials are accepted.
    let refresh = harness.simulator.issue_refresh_token(FULL_USER).unwrap();
    let (status, body) = harness
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &config.client_id),
            ("client_secret", "wrong"),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let response = harness
        .http
        .post(format!("{}/token", harness.running.oauth_base_url()))
        .basic_auth(&config.client_id, config.client_secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = harness
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", &config.client_id),
            ("client_secret", config.client_secret.as_deref().unwrap()),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );

    assert_eq!(
        harness.simulator.call_counts().get("/token").copied(),
        Some(8)
    );
    harness.stop().await;
}

#[tokio::test]
async fn expired_access_tokens_get_401_until_refreshed() {
    let harness = Harness::start(1, 3).await;
    let refresh = harness.simulator.issue_refresh_token(FULL_USER).unwrap();
    let (_, tokens) = harness.refresh(&refresh).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        harness.get(Some(access), "/providers/employers").await.0,
        StatusCode::OK
    );

    harness.simulator.expire_access_tokens();
    let response = harness
        .http
        .get(format!(
            "{}/providers/employers",
            harness.running.api_base_url()
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));

    let (status, renewed) = harness
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let renewed_access = renewed["access_token"].as_str().unwrap();
    assert_eq!(
        harness
            .get(Some(renewed_access), "/providers/employers")
            .await
            .0,
        StatusCode::OK
    );
    harness.stop().await;
}

#[tokio::test]
async fn unauthorized_forbidden_and_not_found() {
    let harness = Harness::start(3, 4).await;
    let employer_ids = harness.employer_ids();
    let restricted = AuthorizingUser::with_employers("one.employer", [employer_ids[1]]);
    harness.simulator.register_authorizing_user(restricted);
    let token = harness.access_token("one.employer").await;
    let full_token = harness.access_token(FULL_USER).await;

    assert_eq!(
        harness.get(None, "/providers/employers").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        harness.get(Some("made-up"), "/providers/employers").await.0,
        StatusCode::UNAUTHORIZED
    );

    // The employer list is filtered to what the authorizing user may see.
    let (status, body) = harness.get(Some(&token), "/providers/employers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(embedded_ids(&body), vec![employer_ids[1].to_string()]);
    let (_, body) = harness.get(Some(&full_token), "/providers/employers").await;
    assert_eq!(embedded_ids(&body).len(), 3);

    let hidden = employer_ids[0];
    for path in [
        format!("/providers/employers/{hidden}"),
        format!("/providers/employers/{hidden}/employees"),
        format!("/providers/employers/{hidden}/employees/employments"),
        format!("/providers/employers/{hidden}/departments"),
        format!("/providers/employers/{hidden}/employees/employments/lastmodifiedversionnumbers"),
    ] {
        assert_eq!(
            harness.get(Some(&token), &path).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let hidden_employee = harness
        .simulator
        .with_world(|world| world.employers()[0].employees[0].id);
    let path = format!("/providers/employers/employees/{hidden_employee}");
    assert_eq!(
        harness.get(Some(&token), &path).await.0,
        StatusCode::FORBIDDEN
    );

    let unknown = Uuid::from_u128(42);
    for path in [
        format!("/providers/employers/{unknown}"),
        format!("/providers/employers/{unknown}/employees"),
        format!("/providers/employers/employees/{unknown}"),
        format!("/providers/employers/employees/employments/{unknown}"),
        format!("/providers/employers/employees/employments/{unknown}/workinghours"),
        "/providers/employers/not-a-uuid/employees".to_owned(),
    ] {
        assert_eq!(
            harness.get(Some(&full_token), &path).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }

    // The BSN is authorised separately.
    let visible_employee = harness
        .simulator
        .with_world(|world| world.employers()[1].employees[0].id);
    let path = format!("/providers/employers/employees/{visible_employee}/citizenservicenumber");
    assert_eq!(
        harness.get(Some(&token), &path).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = harness.get(Some(&full_token), &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(passes_eleven_proef(
        body["content"]["citizenServiceNumber"].as_str().unwrap()
    ));
    harness.stop().await;
}

#[tokio::test]
async fn collections_page_with_full_envelopes_and_an_empty_employer() {
    let harness = Harness::start(2, 20).await;
    let token = harness.access_token(FULL_USER).await;
    let employer = harness.employer_ids()[0];
    let path = format!("/providers/employers/{employer}/employees");

    let mut seen = Vec::new();
    for page in 1..=3 {
        let (status, body) = harness
            .get(
                Some(&token),
                &format!("{path}?pageSize=7&pageNumber={page}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["currentPage"], page);
        assert_eq!(body["pageSize"], 7);
        assert_eq!(body["totalPages"], 3);
        assert_eq!(body["totalSize"], 20);
        let ids = embedded_ids(&body);
        assert_eq!(ids.len(), if page == 3 { 6 } else { 7 });
        seen.extend(ids);
    }
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 20);

    // Past the last page: an empty page with the real totals.
    let (_, body) = harness
        .get(Some(&token), &format!("{path}?pageSize=7&pageNumber=4"))
        .await;
    assert_eq!(body["_embedded"], serde_json::json!([]));
    assert_eq!(body["totalPages"], 3);

    assert_eq!(
        harness
            .get(Some(&token), &format!("{path}?pageSize=0"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        harness
            .get(Some(&token), &format!("{path}?pageNumber=x"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        harness
            .get(
                Some(&token),
                &format!("{path}?filter=companyName%20lk%20'x'")
            )
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // An employer whose employee list suddenly comes back empty.
    harness
        .simulator
        .set_employee_list_empty(employer, true)
        .unwrap();
    for path in [
        path.clone(),
        format!("/providers/employers/{employer}/employees/employments"),
    ] {
        let (status, body) = harness.get(Some(&token), &path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["_embedded"], serde_json::json!([]));
        assert_eq!(body["currentPage"], 1);
        assert_eq!(body["totalPages"], 0);
        assert_eq!(body["totalSize"], 0);
    }
    harness
        .simulator
        .set_employee_list_empty(employer, false)
        .unwrap();
    assert_eq!(harness.get(Some(&token), &path).await.1["totalSize"], 20);
    harness.stop().await;
}

#[tokio::test]
async fn entities_come_in_loket_shapes() {
    let harness = Harness::start(1, 12).await;
    let token = harness.access_token(FULL_USER).await;
    let employer = harness.employer_ids()[0];
    let base = format!("/providers/employers/{employer}");

    let (_, body) = harness.get(Some(&token), &base).await;
    let content = &body["content"];
    assert_eq!(content["id"], employer.to_string());
    assert!(content["companyName"].as_str().unwrap().ends_with("B.V."));
    assert!(content["employerNumber"].is_u64());
    assert_eq!(content["legalForm"]["key"], 1);

    let (_, body) = harness
        .get(Some(&token), &format!("{base}/employees?pageSize=1"))
        .await;
    let employee = &body["_embedded"][0];
    for field in [
        "firstName",
        "initials",
        "lastName",
        "formattedName",
        "dateOfBirth",
        "howToFormatLastName",
    ] {
        assert!(!employee["personalDetails"][field].is_null(), "{field}");
    }
    assert!(employee["employeeNumber"].is_u64());

    let (_, body) = harness
        .get(
            Some(&token),
            &format!("{base}/employees/employments?pageSize=1"),
        )
        .await;
    let employment = &body["_embedded"][0];
    assert_eq!(
        employment["employee"]["employeeNumber"],
        employee["employeeNumber"]
    );
    assert_eq!(employment["typeOfEmployee"]["value"], "Werknemer");
    assert!(employment["incomeRelationshipNumber"].is_u64());
    let employment_id = employment["id"].as_str().unwrap();

    let (_, body) = harness
        .get(
            Some(&token),
            &format!(
                "/providers/employers/employees/employments/{employment_id}/organizationalentities"
            ),
        )
        .await;
    let entity = &body["_embedded"][0];
    assert!(entity["department"]["key"].is_string() && entity["department"]["code"].is_u64());
    assert!(
        entity["function"]["description"].is_string()
            && entity["distributionUnit"]["key"].is_string()
    );

    let (_, body) = harness
        .get(
            Some(&token),
            &format!("/providers/employers/employees/employments/{employment_id}/workinghours"),
        )
        .await;
    assert!(body["_embedded"][0]["shift"]["fullTimeHoursPerWeek"].is_number());
    assert!(body["_embedded"][0]["averageHoursPerWeek"].is_number());
    let (_, body) = harness
        .get(
            Some(&token),
            &format!("/providers/employers/employees/employments/{employment_id}/wages"),
        )
        .await;
    assert!(body["_embedded"][0]["grossWage"].is_number());

    let running = harness.simulator.with_world(|world| {
        let employer = &world.employers()[0];
        employer
            .employments
            .iter()
            .filter(|e| e.is_active_on(world.today()))
            .count()
    });
    for family in ["actualorganizationalentities", "actualworkinghours"] {
        let (_, body) = harness
            .get(Some(&token), &format!("{base}/{family}?pageSize=250"))
            .await;
        assert_eq!(body["totalSize"], running, "{family}");
        assert!(body["_embedded"][0]["employment"]["id"].is_string());
    }

    let (_, departments) = harness
        .get(Some(&token), &format!("{base}/departments"))
        .await;
    let (_, users) = harness.get(Some(&token), &format!("{base}/users")).await;
    let (_, links) = harness
        .get(Some(&token), &format!("{base}/users/departments"))
        .await;
    let managers: Vec<&Value> = users["_embedded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["isDepartmentManager"] == true)
        .collect();
    assert!(!managers.is_empty());
    // Every department is linked to exactly one manager user, whose e-mail is an employee's
    // business address.
    let (_, employees) = harness
        .get(Some(&token), &format!("{base}/employees?pageSize=250"))
        .await;
    let business_emails: HashSet<&str> = employees["_embedded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["contactInformation"]["businessEmailAddress"]
                .as_str()
                .unwrap()
        })
        .collect();
    for manager in &managers {
        assert!(
            business_emails.contains(
                manager["contactInformation"]["emailAddress"]
                    .as_str()
                    .unwrap()
            )
        );
    }
    for department in departments["_embedded"].as_array().unwrap() {
        let linked_managers = links["_embedded"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|link| {
                managers.iter().any(|m| m["id"] == link["userId"])
                    && link["departments"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|d| d["id"] == department["id"])
            })
            .count();
        assert_eq!(linked_managers, 1, "{department}");
    }
    let department_id = departments["_embedded"][0]["id"].as_str().unwrap();
    let (status, body) = harness
        .get(
            Some(&token),
            &format!("/providers/employers/departments/{department_id}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["content"]["subDepartmentOf"], Value::Null);
    harness.stop().await;
}

#[tokio::test]
async fn lastmodifiedversionnumbers_report_exactly_what_the_ground_truth_log_changed() {
    let harness = Harness::start(3, 20).await;
    let token = harness.access_token(FULL_USER).await;

    let (_, body) = harness.get(Some(&token), "/providers/employers/lastmodifiedversionnumbers?orderBy=-lastModifiedVersionNumber&pageSize=1").await;
    let watermark = body["_embedded"][0]["lastModifiedVersionNumber"]
        .as_u64()
        .unwrap();
    assert_eq!(watermark, harness.simulator.world_version());
    let filter = format!("filter=lastModifiedVersionNumber%20gt%20{watermark}");
    let (_, body) = harness
        .get(
            Some(&token),
            &format!("/providers/employers/lastmodifiedversionnumbers?{filter}"),
        )
        .await;
    assert_eq!(body["totalSize"], 0);

    let changes = harness.simulator.advance_days(10);
    assert!(!changes.is_empty());

    let (_, body) = harness
        .get(
            Some(&token),
            &format!("/providers/employers/lastmodifiedversionnumbers?{filter}&pageSize=250"),
        )
        .await;
    let changed_employers: HashSet<String> = embedded_ids(&body).into_iter().collect();
    let expected_employers: HashSet<String> =
        changes.iter().map(|c| c.employer_id.to_string()).collect();
    assert_eq!(changed_employers, expected_employers);

    for employer in &expected_employers {
        let (status, body) = harness
            .get(Some(&token), &format!("/providers/employers/{employer}/employees/employments/lastmodifiedversionnumbers?{filter}&pageSize=1000"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let served: HashSet<String> = embedded_ids(&body).into_iter().collect();
        let expected: HashSet<String> = harness.simulator.with_world(|world| {
            let mut ids = HashSet::new();
            for change in changes
                .iter()
                .filter(|c| c.employer_id.to_string() == *employer)
            {
                if let Some(employment) = change.employment_id {
                    ids.insert(employment.to_string());
                }
                // Employee changes count in the employment-level number of its employments.
                if change.kind == ChangeKind::NameChanged {
                    let (employer, employee) = world.employee(change.employee_id.unwrap()).unwrap();
                    ids.extend(
                        employer
                            .employments
                            .iter()
                            .filter(|e| e.employee_id == employee.id)
                            .map(|e| e.id.to_string()),
                    );
                }
            }
            ids
        });
        assert_eq!(served, expected, "employer {employer}");
        for item in body["_embedded"].as_array().unwrap() {
            assert!(item["lastModifiedVersionNumber"].as_u64().unwrap() > watermark);
        }
    }
    let (status, _) = harness
        .get(
            Some(&token),
            "/providers/employers/lastmodifiedversionnumbers?filter=companyName%20gt%201",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    harness.stop().await;
}

#[tokio::test]
async fn faults_are_injected_and_calls_are_counted() {
    let harness = Harness::start(1, 3).await;
    let token = harness.access_token(FULL_USER).await;
    harness.simulator.reset_call_counts();

    harness.simulator.configure_faults(FaultConfig {
        too_many_requests_per_mille: 1000,
        retry_after_seconds: 7,
        ..FaultConfig::default()
    });
    let response = harness
        .http
        .get(format!(
            "{}/providers/employers",
            harness.running.api_base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");

    harness.simulator.configure_faults(FaultConfig {
        server_error_per_mille: 1000,
        ..FaultConfig::default()
    });
    assert_eq!(
        harness.get(Some(&token), "/providers/employers").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    harness.simulator.configure_faults(FaultConfig::default());
    let (status, body) = harness.get(Some(&token), "/providers/employers").await;
    assert_eq!(status, StatusCode::OK);
    let employer = embedded_ids(&body)[0].clone();
    harness
        .get(
            Some(&token),
            &format!("/providers/employers/{employer}/employees"),
        )
        .await;

    let counts = harness.fault_and_call_summary();
    assert_eq!(counts.0, (1, 1));
    assert_eq!(counts.1.get("/v2/providers/employers").copied(), Some(3));
    assert_eq!(
        counts
            .1
            .get("/v2/providers/employers/{id}/employees")
            .copied(),
        Some(1)
    );
    assert_eq!(harness.simulator.api_call_count(), 4);
    harness.stop().await;
}

#[tokio::test]
async fn malformed_records_are_served_as_injected() {
    let harness = Harness::start(1, 6).await;
    let token = harness.access_token(FULL_USER).await;
    let ids: Vec<Uuid> = harness.simulator.with_world(|world| {
        world.employers()[0]
            .employees
            .iter()
            .take(3)
            .map(|e| e.id)
            .collect()
    });
    harness
        .simulator
        .inject_malformation(ids[0], RecordMalformation::MissingLastName)
        .unwrap();
    harness
        .simulator
        .inject_malformation(ids[1], RecordMalformation::InvalidDateOfBirth)
        .unwrap();
    harness
        .simulator
        .inject_malformation(
            ids[2],
            RecordMalformation::CitizenServiceNumberFailsElevenProef,
        )
        .unwrap();

    let (_, body) = harness
        .get(
            Some(&token),
            &format!("/providers/employers/employees/{}", ids[0]),
        )
        .await;
    let details = body["content"]["personalDetails"].as_object().unwrap();
    assert!(!details.contains_key("lastName"));
    assert!(details.contains_key("firstName"));

    let (_, body) = harness
        .get(
            Some(&token),
            &format!("/providers/employers/employees/{}", ids[1]),
        )
        .await;
    let served = body["content"]["personalDetails"]["dateOfBirth"]
        .as_str()
        .unwrap();
    assert!(
        chrono::NaiveDate::parse_from_str(served, "%Y-%m-%d").is_err(),
        "{served}"
    );

    let (_, body) = harness
        .get(
            Some(&token),
            &format!(
                "/providers/employers/employees/{}/citizenservicenumber",
                ids[2]
            ),
        )
        .await;
    assert!(!passes_eleven_proef(
        body["content"]["citizenServiceNumber"].as_str().unwrap()
    ));

    let logged = harness
        .simulator
        .changes_since(0)
        .iter()
        .filter(|c| c.kind == ChangeKind::MalformationInjected)
        .count();
    assert_eq!(logged, 3);
    harness.stop().await;
}

impl Harness {
    fn fault_and_call_summary(&self) -> ((u64, u64), std::collections::BTreeMap<String, u64>) {
        let faults = self.simulator.fault_counts();
        (
            (faults.too_many_requests, faults.server_errors),
            self.simulator.call_counts(),
        )
    }
}

/// A user whose filter hides former employees does not see employments that ended before
/// today, in the list nor in the version feed; a user without the filter does.
#[tokio::test]
async fn a_user_filter_hides_former_employees() {
    let harness = Harness::start(1, 30).await;
    let employer_id = harness.employer_ids()[0];
    harness.simulator.register_authorizing_user(
        AuthorizingUser::with_full_access("filtered.user").hiding_former_employments(),
    );
    harness.simulator.with_world_mut(|world| {
        world.advance_days(60);
    });
    let former: Vec<String> = harness.simulator.with_world(|world| {
        let today = world.today();
        world.employers()[0]
            .employments
            .iter()
            .filter(|employment| employment.end_date.is_some_and(|end| end < today))
            .map(|employment| employment.id.to_string())
            .collect()
    });
    assert!(!former.is_empty(), "60 busy days should produce leavers");
    let filtered = harness.access_token("filtered.user").await;
    let full = harness.access_token(FULL_USER).await;
    for path in [
        format!("/providers/employers/{employer_id}/employees/employments"),
        format!(
            "/providers/employers/{employer_id}/employees/employments/lastmodifiedversionnumbers"
        ),
    ] {
        let (_, body) = harness.get(Some(&filtered), &path).await;
        let seen_filtered = embedded_ids(&body);
        let (_, body) = harness.get(Some(&full), &path).await;
        let seen_full = embedded_ids(&body);
        for id in &former {
            assert!(!seen_filtered.contains(id), "{path}");
            assert!(seen_full.contains(id), "{path}");
        }
        assert_eq!(
            seen_full.len(),
            seen_filtered.len() + former.len(),
            "{path}"
        );
    }
    harness.stop().await;
}
