//! A worker's `/readyz` says "ready" only while NATS and its registry answer: not while NATS
//! is unreachable, and as soon as it reaches an installation that setup made.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Installation;

/// A local port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The status code of `GET /readyz`, or None while nothing answers.
async fn readyz(port: u16) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let response = String::from_utf8_lossy(&response);
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `/readyz` until it answers `status`, or the process exits, or two minutes pass.
async fn wait_for_status(worker: &mut Child, port: u16, status: u16) -> Vec<Option<u16>> {
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(120) {
        let answer = readyz(port).await;
        if seen.last() != Some(&answer) {
            seen.push(answer);
        }
        if answer == Some(status) || worker.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

fn deliverer(installation: &Installation, nats_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["deliverer", "--ops-listen", &format!("127.0.0.1:{port}")])
        .env("KOPPEL_NATS_URL", nats_url)
        .env("KOPPEL_NAMESPACE", &installation.namespace)
        .env("KOPPEL_SECRET_KEY", &installation.secret_key)
        // As deployed: a worker keeps trying to connect instead of giving up.
        .env("KOPPEL_NATS__INITIAL_CONNECT_TIMEOUT", "0")
        .env_remove("KOPPEL_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_not_ready_while_nats_is_unreachable_and_ready_once_it_answers() {
    let installation = Installation::new().await;

    // Nothing listens on this port: the deliverer keeps trying to connect.
    let unreachable = format!("nats://127.0.0.1:{}", free_port());
    let port = free_port();
    let mut waiting = deliverer(&installation, &unreachable, port);
    let seen = wait_for_status(&mut waiting, port, 503).await;
    assert_eq!(seen.last(), Some(&Some(503)), "{seen:?}");
    // And it stays so: a few more answers, none of them ready.
    for _ in 0..5 {
        if let Some(status) = readyz(port).await {
            assert_eq!(status, 503);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = waiting.kill();
    let _ = waiting.wait();

    let port = free_port();
    let mut running = deliverer(&installation, &koppel_test_support::nats_server().url, port);
    let seen = wait_for_status(&mut running, port, 200).await;
    let _ = running.kill();
    let _ = running.wait();
    assert_eq!(seen.last(), Some(&Some(200)), "{seen:?}");
}
