//! Shared plumbing: a fresh namespace with a sealing key and its connection setup, running the
//! `koppel` command as a child process, bounded polling, and the scanner that looks for secrets
//! and BSNs in captured output without ever printing them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use koppel_extract::client_secret_context;
use koppel_nats::Topology;
use koppel_registry::{
    Connection, ConnectionSettings, LoketConnectionSettings, Registry, SealedSecret, SecretKey,
    Unit4ConnectionSettings, Unit4Paths,
};
use koppel_sim::suite::{SimulatorSuite, UNIT4_CLIENT_ID};
use secrecy::SecretString;

/// The `koppel` program under test: `$KOPPEL_BIN` when set (a release build, say), else the copy
/// cargo built for this crate (`koppel::main()`, as services/koppel's binary).
pub(crate) fn koppel_binary() -> PathBuf {
    match std::env::var_os("KOPPEL_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_koppel-security-cli")),
    }
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
        self.key
            .seal(
                &SecretString::from(secret),
                &client_secret_context(connection_id),
            )
            .unwrap()
    }

    /// `secret` sealed as `field` (`api_token`, `secret`) of recipient `recipient`.
    pub(crate) fn seal_recipient_secret(
        &self,
        recipient: &str,
        field: &str,
        secret: &str,
    ) -> SealedSecret {
        self.key
            .seal(
                &SecretString::from(secret),
                &koppel_deliver::recipient::secret_context(recipient, field),
            )
            .unwrap()
    }

    /// Registers Loket connection `id` with `client_secret` sealed; full syncs once a day.
    pub(crate) async fn register_loket_connection(
        &self,
        id: &str,
        endpoint: LoketEndpoint<'_>,
        client_secret: &str,
        poll_interval_seconds: u64,
    ) {
        let (oauth_base_url, api_base_url, client_id, redirect_uri) = match endpoint {
            LoketEndpoint::Simulator(suite) => {
                let loket = suite.loket.config();
                (
                    suite.loket_oauth_base_url(),
                    suite.loket_api_base_url(),
                    loket.client_id.clone(),
                    loket.redirect_uri.clone(),
                )
            }
            LoketEndpoint::Unreachable => (
                "http://127.0.0.1:1".to_owned(),
                "http://127.0.0.1:1/v2".to_owned(),
                "koppel".to_owned(),
                "http://localhost/callback".to_owned(),
            ),
        };
        self.registry
            .put_connection(&Connection {
                id: id.to_owned(),
                settings: ConnectionSettings::Loket(LoketConnectionSettings {
                    oauth_base_url,
                    api_base_url,
                    client_id,
                    client_secret: self.seal_client_secret(id, client_secret),
                    redirect_uri,
                }),
                poll_interval_seconds,
                full_sync_interval_seconds: 86_400,
            })
            .await
            .unwrap();
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
        self.registry
            .put_connection(&Connection {
                id: id.to_owned(),
                settings: ConnectionSettings::Unit4(Unit4ConnectionSettings {
                    token_url: suite.unit4_token_url(),
                    scope: suite.unit4.config().scope.clone(),
                    api_base_url: suite.unit4_api_base_url(),
                    client_id: UNIT4_CLIENT_ID.to_owned(),
                    client_secret: self.seal_client_secret(id, client_secret),
                    paths: Unit4Paths::default(),
                }),
                poll_interval_seconds: interval_seconds,
                full_sync_interval_seconds: interval_seconds,
            })
            .await
            .unwrap();
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

/// Polls `condition` until it holds, failing the test after `limit`.
pub(crate) async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One thing that must not appear: a secret, a token or a BSN, and how to match it.
#[derive(Debug, Clone)]
pub(crate) struct Needle {
    /// What it is, printable (never the value itself): `bsn #12`, `UNIT4_CLIENT_SECRET`.
    pub(crate) label: String,
    pub(crate) value: String,
    /// A number must not match inside a longer run of digits (a BSN inside a nanosecond
    /// timestamp is not a leak).
    pub(crate) digit_bounded: bool,
}

impl Needle {
    pub(crate) fn text(label: impl Into<String>, value: impl Into<String>) -> Self {
        Needle {
            label: label.into(),
            value: value.into(),
            digit_bounded: false,
        }
    }

    pub(crate) fn number(label: impl Into<String>, value: impl Into<String>) -> Self {
        Needle {
            label: label.into(),
            value: value.into(),
            digit_bounded: true,
        }
    }

    /// Byte offsets where the needle occurs in `line`.
    fn occurrences(&self, line: &str) -> Vec<usize> {
        let bytes = line.as_bytes();
        line.match_indices(self.value.as_str())
            .map(|(start, _)| start)
            .filter(|start| {
                if !self.digit_bounded {
                    return true;
                }
                let end = start + self.value.len();
                let before = start
                    .checked_sub(1)
                    .and_then(|index| bytes.get(index))
                    .is_some_and(u8::is_ascii_digit);
                let after = bytes.get(end).is_some_and(u8::is_ascii_digit);
                !before && !after
            })
            .collect()
    }
}

/// A shape of secret found by pattern, for values the test cannot know in advance (tokens the
/// simulators issued inside the demo process, the demo's own sealing key).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SecretShape {
    /// At least 64 lowercase hex digits in a row: an opaque token as the Loket and Unit4
    /// simulators issue them (two simple UUIDs). Shorter runs are ids (a simple UUID is 32).
    OpaqueToken,
    /// 43 standard-base64 characters and `=`: a 32-byte key as `koppel key generate` prints it.
    Base64Key,
}

impl SecretShape {
    pub(crate) fn label(self) -> &'static str {
        match self {
            SecretShape::OpaqueToken => "opaque-token-shaped value (64+ hex digits)",
            SecretShape::Base64Key => "32-byte-key-shaped value (base64)",
        }
    }

    /// Byte ranges of the shape in `line`.
    pub(crate) fn find(self, line: &str) -> Vec<(usize, usize)> {
        let bytes = line.as_bytes();
        let mut found = Vec::new();
        let mut index = 0;
        while index < bytes.len() {
            let in_run = |byte: u8| match self {
                SecretShape::OpaqueToken => byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte),
                SecretShape::Base64Key => {
                    byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/'
                }
            };
            if !in_run(bytes[index]) {
                index += 1;
                continue;
            }
            let start = index;
            while index < bytes.len() && in_run(bytes[index]) {
                index += 1;
            }
            let length = index - start;
            match self {
                SecretShape::OpaqueToken if length >= 64 => found.push((start, index)),
                SecretShape::Base64Key if length == 43 && bytes.get(index) == Some(&b'=') => {
                    found.push((start, index + 1));
                }
                _ => {}
            }
        }
        found
    }
}

/// What the scan found: printable descriptions only, the matched values replaced by `<HIT>`.
#[derive(Debug, Default)]
pub(crate) struct ScanReport {
    pub(crate) lines_scanned: usize,
    pub(crate) bytes_scanned: usize,
    pub(crate) hits: Vec<String>,
}

impl ScanReport {
    pub(crate) fn scan(
        &mut self,
        source: &str,
        text: &str,
        needles: &[Needle],
        shapes: &[SecretShape],
    ) {
        for (number, line) in text.lines().enumerate() {
            self.lines_scanned += 1;
            self.bytes_scanned += line.len();
            let mut ranges: Vec<(usize, usize, String)> = Vec::new();
            for needle in needles {
                for start in needle.occurrences(line) {
                    ranges.push((start, start + needle.value.len(), needle.label.clone()));
                }
            }
            for shape in shapes {
                for (start, end) in shape.find(line) {
                    ranges.push((start, end, shape.label().to_owned()));
                }
            }
            if ranges.is_empty() {
                continue;
            }
            let labels: Vec<String> = ranges.iter().map(|(_, _, label)| label.clone()).collect();
            self.hits.push(format!(
                "{source} line {}: [{}] {}",
                number + 1,
                labels.join(", "),
                redact(line, &ranges)
            ));
        }
    }
}

/// `line` with every range replaced by `<HIT>`, so a failing test never prints a secret.
fn redact(line: &str, ranges: &[(usize, usize, String)]) -> String {
    let mut covered = vec![false; line.len()];
    for (start, end, _) in ranges {
        for flag in covered.iter_mut().take(*end).skip(*start) {
            *flag = true;
        }
    }
    let mut out = String::new();
    let mut in_hit = false;
    for (index, character) in line.char_indices() {
        if covered[index] {
            if !in_hit {
                out.push_str("<HIT>");
                in_hit = true;
            }
        } else {
            in_hit = false;
            out.push(character);
        }
    }
    out
}

/// Every `bsn` string anywhere in a rendered event (as `tail --show-pii` prints it).
pub(crate) fn collect_bsns(value: &serde_json::Value, found: &mut BTreeSet<u32>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("bsn", serde_json::Value::String(bsn)) => {
                        found.insert(bsn.parse().unwrap());
                    }
                    _ => collect_bsns(child, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_bsns(item, found)),
        _ => {}
    }
}

#[test]
fn the_scanner_finds_what_it_must_and_never_prints_it() {
    let needles = [
        Needle::text("secret", "hunter2"),
        Needle::number("bsn #1", "123456782"),
    ];
    let shapes = [SecretShape::OpaqueToken, SecretShape::Base64Key];
    let mut report = ScanReport::default();
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let key = koppel_registry::SecretKey::generate_base64().unwrap();
    let text = format!(
        "clean line 2026-01-01\npassword=hunter2 ok\nbsn=123456782\nts=11234567821\ntoken {token}\nkey {key}\nid 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    );
    report.scan("sample", &text, &needles, &shapes);
    assert_eq!(report.lines_scanned, 7);
    assert_eq!(report.hits.len(), 4, "{:#?}", report.hits);
    let joined = report.hits.join("\n");
    for secret in ["hunter2", "123456782", token.as_str(), key.as_str()] {
        assert!(!joined.contains(secret), "{joined}");
    }
    assert!(joined.contains("password=<HIT> ok"), "{joined}");
}
