//! A NATS server of one test's own, started from a config file (nats-server's format) with
//! further files and environment variables: for tests of authentication, TLS and permissions,
//! which need a server configured unlike the shared one.

use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::{CONTAINER_LABEL, OWNER_LABEL, image_name_and_tag, reap_orphaned_containers};

/// Where the config file goes in the container; `include` paths in it are relative to this
/// directory, `/etc/nats`.
pub const CONFIG_PATH: &str = "/etc/nats/nats.conf";

/// A running configured server. Create it inside the test's runtime and `stop` it there.
pub struct ConfiguredNats {
    container: ContainerAsync<GenericImage>,
    host: String,
    port: u16,
}

impl std::fmt::Debug for ConfiguredNats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfiguredNats")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl ConfiguredNats {
    /// Starts the image of `KOPPEL_NATS_IMAGE` with `config` at [`CONFIG_PATH`], each of
    /// `files` (container path, bytes) copied in, and `environment` set. Panics when it cannot:
    /// the test means nothing without its server.
    pub async fn start(
        config: &str,
        files: &[(&str, Vec<u8>)],
        environment: &[(&str, &str)],
    ) -> Self {
        reap_orphaned_containers();
        let (name, tag) = image_name_and_tag();
        let mut request = GenericImage::new(name.clone(), tag.clone())
            .with_exposed_port(4222.tcp())
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
            .with_cmd(["-c", CONFIG_PATH])
            .with_labels([
                (CONTAINER_LABEL, "true".to_owned()),
                (OWNER_LABEL, std::process::id().to_string()),
            ])
            .with_startup_timeout(Duration::from_secs(120))
            .with_copy_to(CONFIG_PATH, config.as_bytes().to_vec());
        for (path, bytes) in files {
            request = request.with_copy_to(*path, bytes.clone());
        }
        for (variable, value) in environment {
            request = request.with_env_var(*variable, *value);
        }
        let container = match request.start().await {
            Ok(container) => container,
            Err(error) => panic!("cannot start {name}:{tag} with the test's config: {error}"),
        };
        let host = match container.get_host().await {
            Ok(host) => host.to_string(),
            Err(error) => panic!("no host for the configured NATS: {error}"),
        };
        let port = match container.get_host_port_ipv4(4222).await {
            Ok(port) => port,
            Err(error) => panic!("no port for the configured NATS: {error}"),
        };
        ConfiguredNats {
            container,
            host,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    /// Removes the container (a leftover is reaped by the next binary or `tests/run`).
    pub async fn stop(self) {
        let _ = self.container.rm().await;
    }
}
