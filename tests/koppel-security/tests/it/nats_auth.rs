//! NATS authentication and TLS from koppel's config: user/password, nkey and TLS with a private
//! CA each connect and can set up the JetStream topology; a wrong password, a wrong nkey or an
//! untrusted CA each fail within the configured initial-connect time with an error that says
//! what is wrong and does not contain the credential. Each case has a NATS container of its
//! own, configured with a file copied in; certificates are generated here (rcgen).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koppel_nats::{ConnectError, NatsSettings, Topology, TopologySettings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use secrecy::SecretString;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::support::*;

/// How long a refused connect may take: the initial-connect timeout the tests configure, plus
/// slack for a loaded machine. Refusals should come back at once; this bounds "never".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_BOUND: Duration = Duration::from_secs(15);

/// A NATS server for one test, started with `config` (nats-server's format) and `files`
/// copied into the container.
struct ConfiguredNats {
    container: ContainerAsync<GenericImage>,
    host: String,
    port: u16,
}

impl ConfiguredNats {
    async fn start(config: &str, files: &[(&str, Vec<u8>)]) -> Self {
        let image = std::env::var("KOPPEL_NATS_IMAGE")
            .unwrap_or_else(|_| koppel_test_support::DEFAULT_NATS_IMAGE.to_owned());
        let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
        let mut request = GenericImage::new(name, tag)
            .with_exposed_port(4222.tcp())
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
            .with_cmd(["-c", "/etc/nats/nats.conf"])
            // The labels koppel-test-support reaps by, should this process die before `stop`.
            .with_labels([
                ("koppel.test", "true".to_owned()),
                ("koppel.test.owner-pid", std::process::id().to_string()),
            ])
            .with_startup_timeout(Duration::from_secs(120))
            .with_copy_to("/etc/nats/nats.conf", config.as_bytes().to_vec());
        for (path, bytes) in files {
            request = request.with_copy_to(*path, bytes.clone());
        }
        let container = request.start().await.unwrap();
        let host = container.get_host().await.unwrap().to_string();
        let port = container.get_host_port_ipv4(4222).await.unwrap();
        ConfiguredNats {
            container,
            host,
            port,
        }
    }

    fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    async fn stop(self) {
        self.container.rm().await.unwrap();
    }
}

fn settings(url: String) -> NatsSettings {
    NatsSettings {
        url,
        initial_connect_timeout: CONNECT_TIMEOUT,
        ..NatsSettings::default()
    }
}

/// Connects and sets up a namespaced topology: JetStream works for this identity.
async fn connect_and_ensure_topology(settings: &NatsSettings) {
    let client = koppel_nats::connect(settings).await.unwrap();
    Topology::setup(
        async_nats::jetstream::new(client),
        koppel_test_support::unique_names(),
        &TopologySettings::default(),
    )
    .await
    .unwrap();
}

/// Connects with settings that must be refused; returns the error, checked to come back in
/// bounded time and to leave `secret` out.
async fn refused(settings: &NatsSettings, secret: &str) -> ConnectError {
    let started = Instant::now();
    let error = koppel_nats::connect(settings)
        .await
        .expect_err("the connection must be refused");
    let elapsed = started.elapsed();
    assert!(elapsed < CONNECT_BOUND, "refusal took {elapsed:?}: {error}");
    let text = format!("{error} {error:?}");
    assert!(!text.contains(secret), "the error shows the credential");
    error
}

const USER_CONFIG: &str = r#"
port: 4222
jetstream { store_dir: "/data" }
authorization {
  users = [
    { user: "koppel", password: "PASSWORD" }
    { user: "digits", password: "DIGITS" }
  ]
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_from_config_connect_and_a_wrong_password_is_a_clear_error() {
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    // All digits: the KOPPEL_ variable parser must keep it a string.
    let digits = format!("{}", 100_000_000_000u64 + u64::from(std::process::id()));
    let config = USER_CONFIG
        .replace("PASSWORD", &password)
        .replace("DIGITS", &digits);
    let nats = ConfiguredNats::start(&config, &[]).await;

    let right = NatsSettings {
        user: Some("koppel".to_owned()),
        password: Some(SecretString::from(password.clone())),
        ..settings(nats.url())
    };
    connect_and_ensure_topology(&right).await;

    let wrong_password = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let error = refused(
        &NatsSettings {
            password: Some(SecretString::from(wrong_password.clone())),
            ..right.clone()
        },
        &wrong_password,
    )
    .await;
    assert!(matches!(error, ConnectError::Refused { .. }), "{error}");
    assert!(
        error.to_string().contains("authorization violation"),
        "{error}"
    );
    let no_credentials = refused(&settings(nats.url()), &password).await;
    assert!(
        no_credentials
            .to_string()
            .contains("authorization violation"),
        "{no_credentials}"
    );

    // The workers' config loader: a TOML file names the user, the password comes from
    // KOPPEL_NATS__PASSWORD, as a deployment would pass it.
    let directory = tempdir();
    let file = directory.join("deliverer.toml");
    std::fs::write(
        &file,
        format!(
            "[nats]\nurl = \"{}\"\nuser = \"digits\"\ninitial_connect_timeout = 10\n",
            nats.url()
        ),
    )
    .unwrap();
    let loaded: koppel_deliver::DelivererConfig = koppel_runtime::config::load_config_from(
        Some(&file),
        [("KOPPEL_NATS__PASSWORD".to_owned(), digits.clone())],
    )
    .unwrap();
    assert!(!format!("{loaded:?}").contains(&digits), "Debug shows it");
    connect_and_ensure_topology(&loaded.nats).await;

    // And the real command, with the same file and variable, once `koppel setup` has made the
    // namespace's streams (commands only check for them).
    let mut setup = koppel_command(
        &[
            "--config",
            file.to_str().unwrap(),
            "--namespace",
            "authcli",
            "setup",
        ],
        "warn",
    );
    setup.env("KOPPEL_NATS__PASSWORD", &digits);
    let set_up = run_koppel("koppel setup", setup).await;
    assert!(set_up.success, "{}", set_up.stderr);
    let run = |password: &str| {
        let mut command = koppel_command(
            &[
                "--config",
                file.to_str().unwrap(),
                "--namespace",
                "authcli",
                "status",
            ],
            "warn",
        );
        command.env("KOPPEL_NATS__PASSWORD", password);
        run_koppel("koppel status", command)
    };
    let works = run(&digits).await;
    assert!(works.success, "{}", works.stderr);
    let refused_cli = run("999999999999").await;
    assert!(!refused_cli.success);
    assert!(
        refused_cli.stderr.contains("authorization violation")
            && !refused_cli.stderr.contains("999999999999"),
        "{}",
        refused_cli.stderr
    );
    // The command's own one-line error (async-nats may log the refusal too).
    let last = refused_cli
        .stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        last.starts_with("error: cannot connect to NATS")
            && last.contains("authorization violation"),
        "{}",
        refused_cli.stderr
    );

    // Credentials in the URL, as NATS tools accept them, from KOPPEL_NATS_URL (on the command
    // line they are refused): they work, and neither an error, nor the command's output, nor
    // any debug log line shows the password.
    let with_credentials =
        |password: &str| format!("nats://koppel:{password}@localhost:{}", nats.port);
    connect_and_ensure_topology(&settings(with_credentials(&password))).await;
    let error = refused(
        &settings(with_credentials(&wrong_password)),
        &wrong_password,
    )
    .await;
    assert!(
        error.to_string().contains("authorization violation"),
        "{error}"
    );
    let client = koppel_nats::connect(&settings(with_credentials(&password)))
        .await
        .unwrap();
    Topology::setup(
        async_nats::jetstream::new(client),
        koppel_events::Names::namespaced("authurl").unwrap(),
        &TopologySettings::without_size_limits(),
    )
    .await
    .unwrap();
    for url_password in [&password, &wrong_password] {
        let mut command = koppel_command(&["--namespace", "authurl", "status"], "debug");
        command
            .env("NO_COLOR", "1")
            .env("KOPPEL_NATS_URL", with_credentials(url_password));
        let captured = run_koppel("koppel status (credentials in the URL)", command).await;
        assert_eq!(
            captured.success,
            url_password == &password,
            "{}",
            captured
                .stderr
                .lines()
                .last()
                .unwrap_or_default()
                .replace(url_password.as_str(), "<HIT>")
        );
        let mut report = ScanReport::default();
        report.scan(
            &captured.label,
            &captured.all(),
            &[Needle::text("the URL's password", url_password.as_str())],
            &[],
        );
        assert!(report.hits.is_empty(), "{}", report.hits.join("\n"));
    }
    let _ = std::fs::remove_dir_all(&directory);
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_from_config_connects_and_a_wrong_nkey_is_a_clear_error() {
    let user = nkeys::KeyPair::new_user();
    let config = format!(
        "port: 4222\njetstream {{ store_dir: \"/data\" }}\nauthorization {{\n  users = [ {{ nkey: \"{}\" }} ]\n}}\n",
        user.public_key()
    );
    let nats = ConfiguredNats::start(&config, &[]).await;
    let seed = user.seed().unwrap();
    connect_and_ensure_topology(&NatsSettings {
        nkey_seed: Some(SecretString::from(seed.clone())),
        ..settings(nats.url())
    })
    .await;

    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let error = refused(
        &NatsSettings {
            nkey_seed: Some(SecretString::from(stranger.clone())),
            ..settings(nats.url())
        },
        &stranger,
    )
    .await;
    assert!(
        error.to_string().contains("authorization violation"),
        "{error}"
    );

    let not_a_seed = "SUNOTAVALIDSEED";
    let error = refused(
        &NatsSettings {
            nkey_seed: Some(SecretString::from(not_a_seed)),
            ..settings(nats.url())
        },
        not_a_seed,
    )
    .await;
    let text = error.to_string();
    println!("malformed nkey seed: {text}");
    assert!(
        text.contains("nonce") || text.contains("nkey") || text.contains("seed"),
        "a malformed seed says so: {text}"
    );
    nats.stop().await;
}

/// A CA and a server certificate for `localhost` and 127.0.0.1, as PEM: (ca, cert, key).
fn certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "koppel test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}

fn tempdir() -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("koppel-security-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

fn write(directory: &Path, name: &str, text: &str) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_connects_and_an_untrusted_certificate_is_a_clear_error() {
    let (ca, cert, key) = certificates();
    let config = "port: 4222\njetstream { store_dir: \"/data\" }\ntls {\n  cert_file: \"/etc/nats/server.pem\"\n  key_file: \"/etc/nats/server-key.pem\"\n}\n";
    let nats = ConfiguredNats::start(
        config,
        &[
            ("/etc/nats/server.pem", cert.into_bytes()),
            ("/etc/nats/server-key.pem", key.into_bytes()),
        ],
    )
    .await;
    let directory = tempdir();
    let trusted = write(&directory, "ca.pem", &ca);
    let (other_ca, _, _) = certificates();
    let untrusted = write(&directory, "other-ca.pem", &other_ca);
    // The name the certificate is for, whatever testcontainers calls the host.
    let url = format!("nats://localhost:{}", nats.port);

    connect_and_ensure_topology(&NatsSettings {
        require_tls: true,
        tls_root_certificates: Some(trusted.clone()),
        ..settings(url.clone())
    })
    .await;

    for (what, roots) in [
        ("another CA", Some(untrusted)),
        ("only the system's roots", None),
    ] {
        let error = refused(
            &NatsSettings {
                require_tls: true,
                tls_root_certificates: roots,
                ..settings(url.clone())
            },
            "-----BEGIN",
        )
        .await;
        let text = error.to_string();
        println!("TLS with {what}: {text}");
        assert!(
            matches!(error, ConnectError::Refused { .. })
                && text.contains("TLS")
                && text.contains("certificate"),
            "with {what} the error is a refusal that names TLS and the certificate: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&directory);
    nats.stop().await;
}
