//! A NATS container of its own that can be stopped and started again: the client port is
//! mapped to a fixed host port, so the URL the workers hold stays valid, and JetStream's store
//! lives in the container's file system, which survives a stop.

use std::time::Duration;

use anyhow::{Context as _, bail};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The labels `tests/run` cleans up by (see koppel-test-support).
const CONTAINER_LABEL: &str = "koppel.test";
const OWNER_LABEL: &str = "koppel.test.owner-pid";

/// A restartable single NATS server with JetStream.
#[derive(Debug)]
pub struct RestartableNats {
    container: Option<ContainerAsync<GenericImage>>,
    pub host_port: u16,
    pub url: String,
}

/// `KOPPEL_NATS_IMAGE` split into name and tag (the same default as koppel-test-support).
fn image_name_and_tag() -> (String, String) {
    let image = std::env::var("KOPPEL_NATS_IMAGE")
        .unwrap_or_else(|_| koppel_test_support::DEFAULT_NATS_IMAGE.to_owned());
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image, "latest".to_owned()),
    }
}

/// A free TCP port on the host, found by binding port 0. Another process could take it before
/// the container binds it; the start then fails loudly rather than flakily.
pub fn free_host_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

impl RestartableNats {
    /// Starts the container on a fresh fixed host port.
    pub async fn start() -> anyhow::Result<Self> {
        let (name, tag) = image_name_and_tag();
        let host_port = free_host_port()?;
        let container = GenericImage::new(name.clone(), tag.clone())
            .with_exposed_port(4222.tcp())
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
            .with_mapped_port(host_port, 4222.tcp())
            .with_cmd(["--jetstream", "--store_dir", "/data", "--port", "4222"])
            .with_labels([
                (CONTAINER_LABEL, "true".to_owned()),
                (OWNER_LABEL, std::process::id().to_string()),
            ])
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .with_context(|| {
                format!("cannot start {name}:{tag} (set KOPPEL_NATS_IMAGE to a local image)")
            })?;
        Ok(RestartableNats {
            container: Some(container),
            host_port,
            url: format!("nats://127.0.0.1:{host_port}"),
        })
    }

    fn container(&self) -> anyhow::Result<&ContainerAsync<GenericImage>> {
        match &self.container {
            Some(container) => Ok(container),
            None => bail!("the NATS container was removed"),
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL after `grace_seconds` (0: at once).
    pub async fn stop(&self, grace_seconds: i32) -> anyhow::Result<()> {
        self.container()?
            .stop_with_timeout(Some(grace_seconds))
            .await
            .context("cannot stop the NATS container")
    }

    /// Starts it again on the same host port, and waits until it accepts connections with
    /// JetStream ready (polling with a deadline).
    pub async fn start_again(&self) -> anyhow::Result<()> {
        self.container()?
            .start()
            .await
            .context("cannot start the NATS container again")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready = async {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(self.url.as_str())
                    .await
                    .ok()?;
                async_nats::jetstream::new(client)
                    .query_account()
                    .await
                    .ok()
            }
            .await;
            if ready.is_some() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                bail!("NATS at {} did not come back within 60 s", self.url);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Removes the container.
    pub async fn remove(mut self) -> anyhow::Result<()> {
        if let Some(container) = self.container.take() {
            container.rm().await?;
        }
        Ok(())
    }
}
