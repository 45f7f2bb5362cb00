//! Shared plumbing: a fresh namespace with a sealing key and its connection setup (records
//! built by koppel-harness's onboarding), running the `koppel` command as a child process, and
//! the scanner (this crate's library) re-exported for the tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use koppel_harness::onboarding;
use koppel_nats::Topology;
use koppel_registry::{
    Connection, ConnectionSettings, LoketConnectionSettings, Registry, SealedSecret, SecretKey,
};
use koppel_sim::suite::SimulatorSuite;
use secrecy::SecretString;

pub(crate) use koppel_security::{Needle, ScanReport, SecretShape, collect_bsns};

/// The `koppel` program under test (`koppel_harness::koppel_binary`).
pub(crate) fn koppel_binary() -> PathBuf {
    koppel_harness::koppel_binary().unwrap()
}

/// A fresh, isolated topology on the test binary's NATS server, its registry, and a new sealing
/// key, both as `KOPPEL_SECRET_KEY` takes it (`encoded_key`) and parsed (`key`).
pub(crate) struct TestNamespace {
    pub(crate) topology: Topology,
    pub(crate) registry: Registry,
    pub(crate) encoded_key: String,
    pub(crate) key: SecretKey,
    pub(crate) nats_url: String,
    pub(crate) namespace: String,
}

/// Where a registered Loket connection points.
pub(crate) enum LoketEndpoint<'a> {
    /// The suite's Loket simulator, with the client id and redirect URI it knows.
    Simulator(&'a SimulatorSuite),
    /// An address nothing listens on, for a connection that is only stored, never used.
    Unreachable,
}

impl TestNamespace {
    pub(crate) async fn new() -> Self {
        let topology = koppel_test_support::topology().await;
        let registry = Registry::new(topology.registry.clone());
        let encoded_key = SecretKey::generate_base64().unwrap();
        let key = SecretKey::from_base64(&encoded_key).unwrap();
        let nats_url = koppel_test_support::nats_server().url.clone();
        let namespace = topology.names.namespace().unwrap().to_owned();
        TestNamespace {
            topology,
            registry,
            encoded_key,
            key,
            nats_url,
            namespace,
        }
    }

    /// A `koppel` command on this namespace (`--nats-url … --namespace …`, then `arguments`),
    /// without `KOPPEL_SECRET_KEY`: callers choose the key, or none.
    pub(crate) fn koppel_command(&self, arguments: &[&str], log_filter: &str) -> Command {
        let mut all = vec![
            "--nats-url",
            self.nats_url.as_str(),
            "--namespace",
            self.namespace.as_str(),
        ];
        all.extend_from_slice(arguments);
        koppel_command(&all, log_filter)
    }

    /// `secret` sealed as connection `connection_id`'s client secret.
    pub(crate) fn seal_client_secret(&self, connection_id: &str, secret: &str) -> SealedSecret {
        onboarding::seal_client_secret(&self.key, connection_id, secret).unwrap()
    }

    /// Registers Loket connection `id` with `client_secret` sealed; full syncs once a day.
    pub(crate) async fn register_loket_connection(
        &self,
        id: &str,
        endpoint: LoketEndpoint<'_>,
        client_secret: &str,
        poll_interval_seconds: u64,
    ) {
        let connection = match endpoint {
            LoketEndpoint::Simulator(suite) => onboarding::loket_connection(
                suite,
                &self.key,
                id,
                client_secret,
                poll_interval_seconds,
            )
            .unwrap(),
            LoketEndpoint::Unreachable => Connection {
                id: id.to_owned(),
                settings: ConnectionSettings::Loket(LoketConnectionSettings {
                    oauth_base_url: "http://127.0.0.1:1".to_owned(),
                    api_base_url: "http://127.0.0.1:1/v2".to_owned(),
                    client_id: "koppel".to_owned(),
                    client_secret: self.seal_client_secret(id, client_secret),
                    redirect_uri: "http://localhost/callback".to_owned(),
                }),
                poll_interval_seconds,
                full_sync_interval_seconds: 86_400,
            },
        };
        self.registry.put_connection(&connection).await.unwrap();
    }

    /// Stores `refresh_token` (sealed) as Loket connection `id`'s, as `koppel connection
    /// authorize` would.
    pub(crate) async fn store_refresh_token(&self, id: &str, refresh_token: &str) {
        koppel_extract::loket::store_refresh_token(
            &self.topology.tokens,
            &self.key,
            id,
            &SecretString::from(refresh_token),
        )
        .await
        .unwrap();
    }

    /// Registers Unit4 connection `id` against the suite's Unit4 simulator with `client_secret`
    /// sealed; it polls and fully syncs every `interval_seconds`.
    pub(crate) async fn register_unit4_connection(
        &self,
        id: &str,
        suite: &SimulatorSuite,
        client_secret: &str,
        interval_seconds: u64,
    ) {
        let connection =
            onboarding::unit4_connection(suite, &self.key, id, client_secret, interval_seconds)
                .unwrap();
        self.registry.put_connection(&connection).await.unwrap();
    }
}

/// What a finished child process wrote.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) label: String,
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Captured {
    /// stdout and stderr, for scanning.
    pub(crate) fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A `koppel` command with a clean, explicit environment: nothing of the test runner's
/// `KOPPEL_*` or `RUST_LOG` leaks in, logs are plain text (no colour codes between a field
/// and its value) at `log_filter`.
pub(crate) fn koppel_command(arguments: &[&str], log_filter: &str) -> Command {
    let mut command = Command::new(koppel_binary());
    command.args(arguments);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("KOPPEL_") || text == "RUST_LOG" || text == "NATS_URL" {
            command.env_remove(&name);
        }
    }
    command.env("RUST_LOG", log_filter).env("NO_COLOR", "1");
    command
}

/// Runs a `koppel` command to completion (on a blocking thread: the demo takes a while) and
/// captures everything it wrote.
pub(crate) async fn run_koppel(label: &str, mut command: Command) -> Captured {
    let label = label.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = command
            .output()
            .unwrap_or_else(|error| panic!("cannot run {label}: {error}"));
        Captured {
            label,
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// `koppel_harness::eventually` for a synchronous `condition`, failing the test after `limit`.
pub(crate) async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    koppel_harness::eventually(what, limit, || {
        let holds = condition();
        async move { Ok(holds) }
    })
    .await
    .unwrap();
}
