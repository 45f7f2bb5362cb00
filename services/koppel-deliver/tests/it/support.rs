//! Shared test plumbing: registry records, event builders with unique valid BSNs, publishing,
//! an in-process deliverer, and bounded polling.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use koppel_deliver::{ConsumerSettings, DelivererConfig, RetrySettings, SecretKeySource};
use koppel_events::event_id::{EventIdInput, content_hash, derive_event_id};
use koppel_events::model::parttime_factor;
use koppel_events::{Bsn, EmploymentEvent, Event, EventType, sample};
use koppel_nats::{NatsSettings, PreparedEvent, Publisher, PublisherSettings, Topology};
use koppel_registry::model::InsurerEmployerLink;
use koppel_registry::{
    Connection, ConnectionSettings, EmployerRegistration, LoketConnectionSettings, Recipient,
    RecipientSettings, Registry, SecretKey,
};
use koppel_runtime::CancellationToken;
use koppel_runtime::http::HttpClientSettings;
use rust_decimal::Decimal;
use secrecy::SecretString;
use tokio::task::JoinHandle;

pub(crate) const INSURER_TOKEN: &str = "insurer-token-for-tests";
pub(crate) const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub(crate) const CONNECTION: &str = "loket-test";

pub(crate) fn secret_key() -> (SecretKey, String) {
    let encoded = SecretKey::generate_base64().unwrap();
    (SecretKey::from_base64(&encoded).unwrap(), encoded)
}

/// A BSN passing the 11-proef, different for every `n`.
pub(crate) fn valid_bsn(n: u64) -> String {
    for step in 0..11 {
        let prefix = 10_000_000 + n * 11 + step;
        let digits: Vec<u64> = format!("{prefix:08}")
            .bytes()
            .map(|b| u64::from(b - b'0'))
            .collect();
        let sum: u64 = digits
            .iter()
            .zip((2..=9).rev())
            .map(|(digit, weight)| digit * weight)
            .sum();
        let check = sum % 11;
        if check < 10 && sum != check {
            return format!("{prefix:08}{check}");
        }
    }
    panic!("no valid BSN near {n}");
}

/// An employment event of employee `employee` of `employer_key`: revision 0 is the start, the
/// others change hours (a pension-relevant change).
pub(crate) fn employment_event(employer_key: &str, employee: u64, revision: i64) -> Event {
    let Event::EmploymentChanged(mut inner) = sample::employment_changed(employee) else {
        unreachable!("the sample is an EmploymentChanged");
    };
    let employee_id = format!("emp-{employee:05}");
    let entity_id = format!("dv-{employee:05}");
    let event_type = if revision == 0 {
        EventType::EmploymentStarted
    } else {
        EventType::EmploymentChanged
    };
    let hash = content_hash(format!("{employer_key}/{entity_id}/{revision}").as_bytes());
    inner.header.event_id = derive_event_id(EventIdInput {
        source: inner.header.source,
        connection_id: CONNECTION,
        employer_key,
        event_type,
        entity_id: &entity_id,
        revision,
        content_hash: &hash,
    });
    inner.header.event_type = event_type;
    inner.header.connection_id = CONNECTION.to_owned();
    inner.header.employer_key = employer_key.to_owned();
    inner.header.entity_id = entity_id.clone();
    inner.header.revision = revision;
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    inner.header.effective_date = start.checked_add_days(chrono::Days::new(revision as u64));
    inner.header.changed_fields = vec!["hours_per_week".to_owned(), "parttime_factor".to_owned()];
    set_person(&mut inner, employee, &employee_id, &entity_id, start);
    let hours = Decimal::from(16 + revision % 20);
    let fulltime = Decimal::from(40);
    inner.employment.hours_per_week = Some(hours);
    inner.employment.fulltime_hours_per_week = Some(fulltime);
    inner.employment.parttime_factor = parttime_factor(hours, fulltime);
    if revision == 0 {
        Event::EmploymentStarted(inner)
    } else {
        Event::EmploymentChanged(inner)
    }
}

fn set_person(
    inner: &mut EmploymentEvent,
    employee: u64,
    employee_id: &str,
    entity_id: &str,
    start: NaiveDate,
) {
    inner.employment.employee_id = employee_id.to_owned();
    inner.employment.employment_id = entity_id.to_owned();
    inner.employment.start_date = start;
    inner.employee.employee_id = employee_id.to_owned();
    inner.employee.employee_number = Some(format!("P-{employee}"));
    inner.employee.bsn = Some(Bsn::parse(&valid_bsn(employee)).unwrap());
}

/// Events of `employees` employees with `per_employee` events each, interleaved round-robin so
/// every lane has work throughout the stream.
pub(crate) fn interleaved(
    employer_key: &str,
    employees: std::ops::Range<u64>,
    revisions: std::ops::Range<i64>,
) -> Vec<Event> {
    let mut events = Vec::new();
    for revision in revisions {
        for employee in employees.clone() {
            events.push(employment_event(employer_key, employee, revision));
        }
    }
    events
}

pub(crate) async fn publish(topology: &Topology, events: &[Event]) {
    let prepared: Vec<PreparedEvent> = events
        .iter()
        .map(|event| PreparedEvent::encode(&topology.names, event).unwrap())
        .collect();
    let publisher = Publisher::new(topology.jetstream.clone(), PublisherSettings::default());
    for chunk in prepared.chunks(5_000) {
        publisher.publish_all(chunk).await.unwrap();
    }
}

pub(crate) fn insurer_recipient(
    key: &SecretKey,
    name: &str,
    base_url: &str,
    links: &[(&str, &str)],
) -> Recipient {
    Recipient {
        name: name.to_owned(),
        settings: RecipientSettings::PensionInsurer {
            base_url: base_url.to_owned(),
            api_token: key
                .seal(
                    &SecretString::from(INSURER_TOKEN),
                    &format!("recipient/{name}/api_token"),
                )
                .unwrap(),
            employer_links: links
                .iter()
                .map(|(employer, lhnr)| {
                    (
                        (*employer).to_owned(),
                        InsurerEmployerLink {
                            payroll_tax_number: (*lhnr).to_owned(),
                            contract_number: None,
                            scheme_id: None,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        },
        max_in_flight: 200,
    }
}

pub(crate) fn webhook_recipient(key: &SecretKey, name: &str, url: &str) -> Recipient {
    Recipient {
        name: name.to_owned(),
        settings: RecipientSettings::Webhook {
            url: url.to_owned(),
            secret: key
                .seal(
                    &SecretString::from(WEBHOOK_SECRET),
                    &format!("recipient/{name}/secret"),
                )
                .unwrap(),
        },
        max_in_flight: 64,
    }
}

/// Registers the connection, the recipients, then the employers with their subscriptions.
pub(crate) async fn register(
    topology: &Topology,
    key: &SecretKey,
    recipients: &[Recipient],
    employers: &[(&str, &[&str])],
) -> Registry {
    let registry = Registry::new(topology.registry.clone());
    registry
        .put_connection(&Connection {
            id: CONNECTION.to_owned(),
            settings: ConnectionSettings::Loket(LoketConnectionSettings {
                oauth_base_url: "http://127.0.0.1:1".to_owned(),
                api_base_url: "http://127.0.0.1:1/v2".to_owned(),
                client_id: "koppel".to_owned(),
                client_secret: key
                    .seal(
                        &SecretString::from("unused"),
                        "connection/loket-test/client_secret",
                    )
                    .unwrap(),
                redirect_uri: "http://localhost/callback".to_owned(),
            }),
            poll_interval_seconds: 60,
            full_sync_interval_seconds: 86_400,
        })
        .await
        .unwrap();
    for recipient in recipients {
        registry.put_recipient(recipient).await.unwrap();
    }
    for (employer_key, subscribed) in employers {
        subscribe(&registry, employer_key, subscribed).await;
    }
    registry
}

pub(crate) async fn subscribe(registry: &Registry, employer_key: &str, recipients: &[&str]) {
    registry
        .put_employer(&EmployerRegistration {
            employer_key: employer_key.to_owned(),
            connection_id: CONNECTION.to_owned(),
            source_employer_id: employer_key.to_owned(),
            name: format!("Employer {employer_key}"),
            payroll_tax_number: None,
            recipients: recipients.iter().map(|name| (*name).to_owned()).collect(),
            removal_threshold_percent: 20,
            enabled: true,
        })
        .await
        .unwrap();
}

/// A deliverer configuration for tests: the shared server, the topology's namespace, short
/// backoffs and a one-second request timeout.
pub(crate) fn config(topology: &Topology, encoded_key: &str) -> DelivererConfig {
    DelivererConfig {
        nats: NatsSettings {
            url: koppel_test_support::nats_server().url.clone(),
            ..NatsSettings::default()
        },
        http: HttpClientSettings {
            timeout_seconds: 1,
            ..HttpClientSettings::default()
        },
        retry: RetrySettings {
            initial_backoff_millis: 5,
            max_backoff_millis: 200,
            jitter: true,
            max_attempts: 0,
            max_age_seconds: 0,
        },
        consumer: ConsumerSettings {
            ack_wait_seconds: 10,
            shutdown_grace_seconds: 2,
            parked_rescan_seconds: 2,
            ..ConsumerSettings::default()
        },
        namespace: topology.names.namespace().map(str::to_owned),
        secret_key: SecretKeySource::Inline {
            base64: SecretString::from(encoded_key.to_owned()),
        },
        ..DelivererConfig::default()
    }
}

/// The deliverer running in-process.
#[derive(Debug)]
pub(crate) struct RunningDeliverer {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), koppel_deliver::DeliverError>>,
}

impl RunningDeliverer {
    pub(crate) fn start(config: DelivererConfig) -> Self {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(koppel_deliver::run(config, shutdown.clone()));
        RunningDeliverer { shutdown, handle }
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }

    /// No graceful path: the task is aborted where it stands.
    pub(crate) async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
pub(crate) async fn eventually<F: FnMut() -> bool>(what: &str, limit: Duration, mut condition: F) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The async variant, for conditions read from NATS.
pub(crate) async fn eventually_async<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
