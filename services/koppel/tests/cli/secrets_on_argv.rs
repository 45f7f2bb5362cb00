//! No secret travels on the command line: `--nats-url` with credentials is refused (the same
//! URL in KOPPEL_NATS_URL is fine), and a Loket authorisation reads the redirect URL from the
//! environment or a prompt, and checks its OAuth `state` against the one koppel asked for.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use koppel_sim::suite::{SimulatorSuite, SuiteConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Installation, stderr, stdout};

#[tokio::test]
async fn a_nats_url_with_credentials_on_the_command_line_is_refused_before_connecting() {
    let installation = Installation::new().await;
    let password = "argv-password-do-not-print";
    let url = format!("nats://koppel:{password}@127.0.0.1:4222");

    let refused = installation.koppel(&["--nats-url", &url, "employer", "list"]);

    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--nats-url must not carry credentials"),
        "{}",
        stderr(&refused)
    );
    assert!(!format!("{}{}", stdout(&refused), stderr(&refused)).contains(password));

    // Without credentials the flag works as before.
    let plain = installation.koppel(&[
        "--nats-url",
        &koppel_test_support::nats_server().url,
        "employer",
        "list",
    ]);
    assert!(plain.status.success(), "{}", stderr(&plain));
}

/// `koppel connection add loket` against the simulator, with `environment` and `stdin`.
fn add_loket(
    installation: &Installation,
    suite: &SimulatorSuite,
    extra: &[&str],
    environment: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let config = suite.loket.config();
    let mut arguments = vec![
        "connection",
        "add",
        "loket",
        "--id",
        "loket-acme",
        "--client-id",
        &config.client_id,
        "--redirect-uri",
        &config.redirect_uri,
    ];
    let oauth = suite.loket_oauth_base_url();
    let api = suite.loket_api_base_url();
    arguments.extend(["--oauth-base-url", &oauth, "--api-base-url", &api]);
    arguments.extend(extra);
    let mut command = Command::new(env!("CARGO_BIN_EXE_koppel"));
    command
        .args(&arguments)
        .env("KOPPEL_NATS_URL", &koppel_test_support::nats_server().url)
        .env("KOPPEL_NAMESPACE", &installation.namespace)
        .env("KOPPEL_SECRET_KEY", &installation.secret_key)
        .env(
            "KOPPEL_CLIENT_SECRET",
            config.client_secret.clone().unwrap_or_default(),
        )
        .env_remove("KOPPEL_LOKET_REDIRECT_URL")
        .env_remove("KOPPEL_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in environment {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(line) = stdin {
        input.write_all(line.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Follows the authorisation URL as the Loket user would; returns where Loket redirects.
async fn authorise(authorize_url: &str) -> String {
    let rest = authorize_url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    response
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no redirect: {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loket_authorisation_takes_the_redirect_from_a_prompt_and_checks_its_state() {
    let installation = Installation::new().await;
    let shutdown = CancellationToken::new();
    let suite = SimulatorSuite::start(&SuiteConfig::local(7, 1, 2), shutdown.clone())
        .await
        .unwrap();

    // Nothing pending yet: --authorised has no state to check against.
    let early = add_loket(
        &installation,
        &suite,
        &["--authorised"],
        &[(
            "KOPPEL_LOKET_REDIRECT_URL",
            "https://x.invalid/r?code=c&state=s",
        )],
        None,
    );
    assert_eq!(early.status.code(), Some(1));
    assert!(stderr(&early).contains("is pending"), "{}", stderr(&early));

    let registered = add_loket(&installation, &suite, &["--output", "json"], &[], None);
    assert!(registered.status.success(), "{}", stderr(&registered));
    let printed: serde_json::Value = serde_json::from_str(stdout(&registered).trim()).unwrap();
    let authorize_url = printed["authorize_url"].as_str().unwrap().to_owned();

    // A redirect from someone else's request (another state) is refused, code unused.
    let redirect = authorise(&authorize_url).await;
    let forged = redirect.replace("state=", "state=x");
    let refused = add_loket(
        &installation,
        &suite,
        &["--authorised"],
        &[("KOPPEL_LOKET_REDIRECT_URL", &forged)],
        None,
    );
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(message.contains("state does not match"), "{message}");
    let code = redirect
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(
        !message.contains(code),
        "the code is in the error: {message}"
    );

    // The real redirect, pasted at the prompt, authorises the connection.
    let authorised = add_loket(
        &installation,
        &suite,
        &["--authorised"],
        &[],
        Some(&format!("{redirect}\n")),
    );
    assert!(authorised.status.success(), "{}", stderr(&authorised));
    assert!(
        stdout(&authorised).contains("authorised"),
        "{}",
        stdout(&authorised)
    );
    assert!(!stdout(&authorised).contains(code) && !stderr(&authorised).contains(code));

    // The state is used up: the same redirect again finds nothing pending.
    let replayed = add_loket(
        &installation,
        &suite,
        &["--authorised"],
        &[("KOPPEL_LOKET_REDIRECT_URL", &redirect)],
        None,
    );
    assert_eq!(replayed.status.code(), Some(1));
    assert!(
        stderr(&replayed).contains("is pending"),
        "{}",
        stderr(&replayed)
    );
    shutdown.cancel();
}
