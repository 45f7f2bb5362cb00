//! Test harness: one real NATS (JetStream on) per test binary, started through testcontainers,
//! and unique names per test so tests share the server without seeing each other's data.
//!
//! The image comes from `KOPPEL_NATS_IMAGE` (`name:tag`). It defaults to the official `nats`
//! image, which a laptop with internet pulls on first use; CI and offline machines build
//! `koppel/nats:<version>` locally with `deploy/nats-image/build.sh` and point the variable at it.
//! testcontainers pulls only when the image is missing, so a local image never needs a registry.
//!
//! `KOPPEL_NATS_URL` skips the container and uses a server that is already running.

pub mod cluster;
pub mod configured;

use std::sync::OnceLock;
use std::time::Duration;

use koppel_events::Names;
use koppel_nats::{Topology, TopologySettings};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

pub const DEFAULT_NATS_IMAGE: &str = "nats:2.12";
const CONTAINER_LABEL: &str = "koppel.test";
const OWNER_LABEL: &str = "koppel.test.owner-pid";

/// A running NATS server for this test binary.
#[derive(Debug, Clone)]
pub struct NatsServer {
    pub url: String,
}

/// Starts the shared server on first use and returns it. Panics with a clear message when no
/// server can be started: without NATS these tests cannot mean anything.
pub fn nats_server() -> &'static NatsServer {
    static SERVER: OnceLock<Result<NatsServer, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("KOPPEL_NATS_URL") {
            return Ok(NatsServer { url });
        }
        start_container_on_own_runtime()
    });
    match server {
        Ok(server) => server,
        Err(reason) => panic!("cannot start the NATS test container: {reason}"),
    }
}

/// The container lives on a runtime of its own, on a thread that outlives every test: each
/// `#[tokio::test]` has its own runtime, and a container started on one would lose its Docker
/// client when that test's runtime shuts down.
fn start_container_on_own_runtime() -> Result<NatsServer, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("koppel-nats-container".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = sender.send(Err(error.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                match start_container().await {
                    Ok((container, url)) => {
                        let _ = sender.send(Ok(NatsServer { url }));
                        // Hold the container until the process exits.
                        std::future::pending::<()>().await;
                        drop(container);
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error));
                    }
                }
            });
        })
        .map_err(|error| error.to_string())?;
    receiver
        .recv_timeout(Duration::from_secs(180))
        .map_err(|_| "timed out starting the container".to_owned())?
}

fn image_name_and_tag() -> (String, String) {
    let image =
        std::env::var("KOPPEL_NATS_IMAGE").unwrap_or_else(|_| DEFAULT_NATS_IMAGE.to_owned());
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image, "latest".to_owned()),
    }
}

async fn start_container() -> Result<(testcontainers::ContainerAsync<GenericImage>, String), String>
{
    reap_orphaned_containers();
    let (name, tag) = image_name_and_tag();
    let container = GenericImage::new(name.clone(), tag.clone())
        .with_exposed_port(4222.tcp())
        .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
        .with_cmd(["--jetstream", "--store_dir", "/data", "--port", "4222"])
        .with_labels([(CONTAINER_LABEL, "true".to_owned()), (OWNER_LABEL, std::process::id().to_string())])
        .with_startup_timeout(Duration::from_secs(120))
        .start()
        .await
        .map_err(|error| format!("{name}:{tag}: {error} (build the local image with deploy/nats-image/build.sh and set KOPPEL_NATS_IMAGE)"))?;
    let host = container
        .get_host()
        .await
        .map_err(|error| error.to_string())?;
    let port = container
        .get_host_port_ipv4(4222)
        .await
        .map_err(|error| error.to_string())?;
    Ok((container, format!("nats://{host}:{port}")))
}

/// Statics are never dropped, so the container of a finished test binary keeps running until
/// someone removes it. Each binary removes the containers of binaries that have exited; `.ci/run`
/// removes the last one. A container whose owner is alive is never touched.
fn reap_orphaned_containers() {
    let Ok(output) = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label={CONTAINER_LABEL}=true"),
            "--format",
            &format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}"),
        ])
        .output()
    else {
        return;
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    for line in listing.lines() {
        let Some((id, owner)) = line.split_once(' ') else {
            continue;
        };
        let owner_alive = std::path::Path::new("/proc").join(owner.trim()).exists();
        if !owner_alive {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", id])
                .output();
        }
    }
}

/// Names no other test uses: streams, buckets and subjects all carry the namespace.
pub fn unique_names() -> Names {
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    match Names::namespaced(&namespace[..13]) {
        Ok(names) => names,
        Err(error) => panic!("generated namespace is invalid: {error}"),
    }
}

/// A connection to the shared server.
pub async fn connect() -> async_nats::Client {
    let url = &nats_server().url;
    match async_nats::ConnectOptions::new()
        .connect(url.as_str())
        .await
    {
        Ok(client) => client,
        Err(error) => panic!("cannot connect to the NATS test server at {url}: {error}"),
    }
}

/// A fresh, isolated koppel topology (streams, buckets, schemas) on the shared server, set up as
/// `koppel setup` does. Without size limits: JetStream reserves each limit on the server, and
/// every test of the binary sets up its own installation there.
pub async fn topology() -> Topology {
    let client = connect().await;
    let jetstream = async_nats::jetstream::new(client);
    match Topology::setup(
        jetstream,
        unique_names(),
        &TopologySettings::without_size_limits(),
    )
    .await
    {
        Ok(topology) => topology,
        Err(error) => panic!("cannot create the test topology: {error}"),
    }
}

/// A stream's current info (config and state), read fresh. Panics when the stream cannot be
/// read: the test asked about a stream it expects.
pub async fn stream_info(
    jetstream: &async_nats::jetstream::Context,
    name: &str,
) -> async_nats::jetstream::stream::Info {
    let mut stream = match jetstream.get_stream(name).await {
        Ok(stream) => stream,
        Err(error) => panic!("cannot get stream {name}: {error}"),
    };
    match stream.info().await {
        Ok(info) => info.clone(),
        Err(error) => panic!("cannot read stream {name}: {error}"),
    }
}

pub use koppel_runtime::telemetry::init_test_logging;
