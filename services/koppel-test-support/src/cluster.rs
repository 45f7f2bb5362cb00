//! A 3-node NATS JetStream cluster in containers, for tests that stop and start servers: each
//! node on a private Docker network, its client port mapped to a fixed host port so its URL
//! survives a restart, and questions about which node leads a stream.
//!
//! Unlike [`crate::nats_server`], a cluster belongs to one test: create it inside the test's
//! runtime and drop it there. Dropping removes the containers and then the network (best effort;
//! the containers carry the same labels as the shared server's, so `tests/run` reaps leftovers,
//! and a later cluster removes networks whose test binary has exited).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::{CONTAINER_LABEL, OWNER_LABEL, image_name_and_tag, reap_orphaned_containers};

/// How many servers a cluster has. Three is the smallest cluster that keeps an R3 stream
/// writable with one server down.
pub const CLUSTER_SIZE: usize = 3;

/// The cluster name every node is started with.
pub const CLUSTER_NAME: &str = "koppel";

/// Networks this module creates start with this, then the owning process id.
const NETWORK_PREFIX: &str = "koppel-test-cluster-";

/// How long a node may take to come up, and the cluster to elect its meta leader.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// A stream used once at startup to prove that the cluster can place an R3 stream.
const PROBE_STREAM: &str = "KOPPEL_CLUSTER_PROBE";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no free local port for a node: {0}")]
    NoFreePort(std::io::Error),
    #[error(
        "cannot start node {server}: {reason} (build the local image with deploy/nats-image/build.sh and set KOPPEL_NATS_IMAGE)"
    )]
    StartNode { server: String, reason: String },
    #[error("cannot stop node {server}: {reason}")]
    StopNode { server: String, reason: String },
    #[error("no node {node}: the cluster has nodes 0 to {}", CLUSTER_SIZE - 1)]
    NoSuchNode { node: usize },
    #[error("cannot reach the cluster at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot read stream {stream}: {reason}")]
    StreamInfo { stream: String, reason: String },
    #[error("stream {stream} is not replicated: its info has no cluster section")]
    NotClustered { stream: String },
    #[error("stream {stream} names leader {server}, which is not a node of this cluster")]
    UnknownServer { stream: String, server: String },
    #[error("timed out after {seconds} s waiting until {condition}; last seen: {last}")]
    Timeout {
        condition: String,
        seconds: u64,
        last: String,
    },
}

/// One stream's replica group as the cluster reports it, by node index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlacement {
    /// The node whose server leads the stream's RAFT group, if one is elected.
    pub leader: Option<usize>,
    /// Followers as (node, current): `current` is false while a follower catches up or is
    /// offline.
    pub followers: Vec<(usize, bool)>,
}

impl StreamPlacement {
    /// A leader is elected and every follower is caught up.
    pub fn is_fully_current(&self, replicas: usize) -> bool {
        self.leader.is_some()
            && self.followers.len() + 1 == replicas
            && self.followers.iter().all(|(_, current)| *current)
    }
}

#[derive(Debug)]
struct ClusterNode {
    server_name: String,
    host_port: u16,
    container: ContainerAsync<GenericImage>,
}

/// A running 3-node JetStream cluster. Nodes are indexed 0 to 2; node `i` has server name
/// `n{i+1}`.
#[derive(Debug)]
pub struct NatsCluster {
    network: String,
    host: String,
    nodes: Vec<ClusterNode>,
}

impl NatsCluster {
    /// Starts three nodes of `$KOPPEL_NATS_IMAGE` on a fresh network and returns once the
    /// cluster has a JetStream meta leader and can place an R3 stream.
    pub async fn start() -> Result<NatsCluster, ClusterError> {
        reap_orphaned_containers();
        reap_orphaned_networks();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let suffix = &suffix[..10];
        let pid = std::process::id();
        let network = format!("{NETWORK_PREFIX}{pid}-{suffix}");
        let container_names: Vec<String> = (1..=CLUSTER_SIZE)
            .map(|number| format!("koppel-nats-{pid}-{suffix}-n{number}"))
            .collect();
        let routes = container_names
            .iter()
            .map(|name| format!("nats://{name}:6222"))
            .collect::<Vec<_>>()
            .join(",");
        let host_ports = free_host_ports(CLUSTER_SIZE)?;

        let starts = container_names.iter().zip(&host_ports).enumerate().map(
            |(index, (container_name, host_port))| {
                start_node_container(
                    format!("n{}", index + 1),
                    container_name.clone(),
                    network.clone(),
                    routes.clone(),
                    *host_port,
                )
            },
        );
        let mut nodes = Vec::with_capacity(CLUSTER_SIZE);
        for result in futures::future::join_all(starts).await {
            nodes.push(result?);
        }
        let host = match nodes.first() {
            Some(node) => node
                .container
                .get_host()
                .await
                .map(|host| host.to_string())
                .unwrap_or_else(|_| "127.0.0.1".to_owned()),
            None => "127.0.0.1".to_owned(),
        };
        let cluster = NatsCluster {
            network,
            host,
            nodes,
        };
        cluster.wait_until_ready(STARTUP_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Every node's URL, comma separated: what a koppel config's `[nats] url` takes.
    pub fn url(&self) -> String {
        (0..self.nodes.len())
            .map(|node| self.node_url_unchecked(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One node's URL. It stays the same across `stop_node` and `start_node`.
    pub fn node_url(&self, node: usize) -> Result<String, ClusterError> {
        self.node(node)?;
        Ok(self.node_url_unchecked(node))
    }

    fn node_url_unchecked(&self, node: usize) -> String {
        let port = self.nodes.get(node).map_or(0, |node| node.host_port);
        format!("nats://{}:{port}", self.host)
    }

    /// The `--server_name` of a node, as stream info reports leaders and peers.
    pub fn server_name(&self, node: usize) -> Result<&str, ClusterError> {
        Ok(self.node(node)?.server_name.as_str())
    }

    /// The node index of a server name.
    pub fn node_of_server(&self, server_name: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.server_name == server_name)
    }

    /// The Docker network the nodes share.
    pub fn network_name(&self) -> &str {
        &self.network
    }

    fn node(&self, node: usize) -> Result<&ClusterNode, ClusterError> {
        self.nodes
            .get(node)
            .ok_or(ClusterError::NoSuchNode { node })
    }

    /// A client on every node's URL, so it survives any single node being down. Reconnects
    /// forever, like koppel's own workers.
    pub async fn connect(&self) -> Result<async_nats::Client, ClusterError> {
        connect_to(&self.url()).await
    }

    /// Stops a node the way `docker stop` does: SIGTERM, so the server shuts down cleanly.
    /// Its JetStream store stays in the container for `start_node`.
    pub async fn stop_node(&self, node: usize) -> Result<(), ClusterError> {
        let node = self.node(node)?;
        node.container
            .stop()
            .await
            .map_err(|error| ClusterError::StopNode {
                server: node.server_name.clone(),
                reason: error.to_string(),
            })
    }

    /// Kills a node with SIGKILL: a crash, no clean shutdown.
    pub async fn kill_node(&self, node: usize) -> Result<(), ClusterError> {
        let node = self.node(node)?;
        node.container
            .stop_with_timeout(Some(0))
            .await
            .map_err(|error| ClusterError::StopNode {
                server: node.server_name.clone(),
                reason: error.to_string(),
            })
    }

    /// Starts a stopped node again, on the same host port and with the same store, and
    /// returns once it answers JetStream requests on its own URL.
    pub async fn start_node(&self, node: usize) -> Result<(), ClusterError> {
        let started = self.node(node)?;
        started
            .container
            .start()
            .await
            .map_err(|error| ClusterError::StartNode {
                server: started.server_name.clone(),
                reason: error.to_string(),
            })?;
        let url = self.node_url_unchecked(node);
        let condition = format!(
            "{} answers JetStream requests at {url}",
            started.server_name
        );
        poll_until(&condition, STARTUP_TIMEOUT, || async {
            let client = connect_once(&url).await?;
            let answer = jetstream::new(client.clone())
                .query_account()
                .await
                .map(|_| ())
                .map_err(|error| error.to_string());
            drop(client);
            answer
        })
        .await
    }

    /// Who leads `stream` and how its followers are doing, asked through any node that is up.
    pub async fn stream_placement(&self, stream: &str) -> Result<StreamPlacement, ClusterError> {
        let client = self.connect().await?;
        let info = jetstream::new(client)
            .get_stream(stream)
            .await
            .map_err(|error| ClusterError::StreamInfo {
                stream: stream.to_owned(),
                reason: error.to_string(),
            })?
            .info()
            .await
            .map_err(|error| ClusterError::StreamInfo {
                stream: stream.to_owned(),
                reason: error.to_string(),
            })?
            .clone();
        let cluster = info.cluster.ok_or_else(|| ClusterError::NotClustered {
            stream: stream.to_owned(),
        })?;
        let node_of = |server: &str| {
            self.node_of_server(server)
                .ok_or_else(|| ClusterError::UnknownServer {
                    stream: stream.to_owned(),
                    server: server.to_owned(),
                })
        };
        let leader = match cluster.leader.as_deref() {
            Some(server) if !server.is_empty() => Some(node_of(server)?),
            _ => None,
        };
        let mut followers = Vec::with_capacity(cluster.replicas.len());
        for peer in &cluster.replicas {
            followers.push((node_of(&peer.name)?, peer.current && !peer.offline));
        }
        Ok(StreamPlacement { leader, followers })
    }

    /// The node that leads `stream` now; an error while no leader is elected.
    pub async fn stream_leader(&self, stream: &str) -> Result<usize, ClusterError> {
        self.stream_placement(stream)
            .await?
            .leader
            .ok_or_else(|| ClusterError::StreamInfo {
                stream: stream.to_owned(),
                reason: "no leader elected".to_owned(),
            })
    }

    /// The nodes that follow `stream`'s leader, current or not.
    pub async fn stream_followers(&self, stream: &str) -> Result<Vec<usize>, ClusterError> {
        Ok(self
            .stream_placement(stream)
            .await?
            .followers
            .into_iter()
            .map(|(node, _)| node)
            .collect())
    }

    /// Waits until `stream` has a leader other than `not_on` (the node just stopped, say) and
    /// returns it.
    pub async fn wait_for_stream_leader(
        &self,
        stream: &str,
        not_on: Option<usize>,
        timeout: Duration,
    ) -> Result<usize, ClusterError> {
        let condition = match not_on {
            Some(node) => format!("stream {stream} has a leader other than node {node}"),
            None => format!("stream {stream} has a leader"),
        };
        poll_until(&condition, timeout, || async {
            let elected = self
                .stream_leader(stream)
                .await
                .map_err(|e| e.to_string())?;
            if Some(elected) == not_on {
                return Err(format!("node {elected} still leads"));
            }
            Ok(elected)
        })
        .await
    }

    /// Waits until `stream` has a leader and all its followers are current: after a node comes
    /// back, this is when it has caught up.
    pub async fn wait_until_stream_current(
        &self,
        stream: &str,
        replicas: usize,
        timeout: Duration,
    ) -> Result<StreamPlacement, ClusterError> {
        let condition = format!("all {replicas} replicas of stream {stream} are current");
        poll_until(&condition, timeout, || async {
            let seen = self
                .stream_placement(stream)
                .await
                .map_err(|e| e.to_string())?;
            if seen.is_fully_current(replicas) {
                Ok(seen)
            } else {
                Err(format!("{seen:?}"))
            }
        })
        .await
    }

    /// A meta leader answers account info; creating and deleting an R3 stream proves that all
    /// three servers have joined, which is what the tests go on to do.
    async fn wait_until_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        let client = self.connect().await?;
        let js = jetstream::new(client);
        poll_until(
            "the cluster elects a JetStream meta leader",
            deadline.saturating_duration_since(Instant::now()),
            || async {
                js.query_account()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await?;
        poll_until(
            "the cluster places an R3 stream",
            deadline.saturating_duration_since(Instant::now()),
            || async {
                js.create_stream(jetstream::stream::Config {
                    name: PROBE_STREAM.to_owned(),
                    subjects: vec![format!("{PROBE_STREAM}.probe")],
                    num_replicas: CLUSTER_SIZE,
                    storage: jetstream::stream::StorageType::Memory,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
                js.delete_stream(PROBE_STREAM)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await
    }
}

async fn start_node_container(
    server_name: String,
    container_name: String,
    network: String,
    routes: String,
    host_port: u16,
) -> Result<ClusterNode, ClusterError> {
    let (image, tag) = image_name_and_tag();
    let container = GenericImage::new(image, tag)
        .with_exposed_port(4222.tcp())
        .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
        .with_cmd([
            "--server_name",
            server_name.as_str(),
            "--jetstream",
            "--store_dir",
            "/data",
            "--port",
            "4222",
            "--cluster_name",
            CLUSTER_NAME,
            "--cluster",
            "nats://0.0.0.0:6222",
            "--routes",
            routes.as_str(),
            // Clients keep to the mapped host ports; the nodes' bridge addresses are no use
            // to them.
            "--no_advertise=true",
        ])
        .with_network(network)
        .with_container_name(container_name)
        .with_mapped_port(host_port, 4222.tcp())
        .with_labels([
            (CONTAINER_LABEL, "true".to_owned()),
            (OWNER_LABEL, std::process::id().to_string()),
        ])
        .with_startup_timeout(STARTUP_TIMEOUT)
        .start()
        .await
        .map_err(|error| ClusterError::StartNode {
            server: server_name.clone(),
            reason: error.to_string(),
        })?;
    Ok(ClusterNode {
        server_name,
        host_port,
        container,
    })
}

/// Ports the OS hands out now. Holding all listeners until every port is known keeps the
/// ports distinct; another process could still take one before Docker binds it, which
/// surfaces as a clear start error.
fn free_host_ports(count: usize) -> Result<Vec<u16>, ClusterError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("0.0.0.0", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ClusterError::NoFreePort)?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ClusterError::NoFreePort)
}

async fn connect_to(urls: &str) -> Result<async_nats::Client, ClusterError> {
    let servers = urls
        .split(',')
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|error| ClusterError::Connect {
                    url: url.to_owned(),
                    reason: error.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(None)
        .connect(servers)
        .await
        .map_err(|error| ClusterError::Connect {
            url: urls.to_owned(),
            reason: error.to_string(),
        })
}

/// One attempt, no reconnects: for probing whether a single node is up.
async fn connect_once(url: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(Some(1))
        .connect(url)
        .await
        .map_err(|error| error.to_string())
}

/// Calls `attempt` until it succeeds or `timeout` passes, pausing briefly between attempts.
async fn poll_until<T, F, Fut>(
    condition: &str,
    timeout: Duration,
    mut attempt: F,
) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            attempt(),
        )
        .await
        {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(reason)) => reason,
            Err(_) => "the attempt did not finish".to_owned(),
        };
        if Instant::now() >= deadline {
            return Err(ClusterError::Timeout {
                condition: condition.to_owned(),
                seconds: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Networks left by test binaries that have exited (killed before their cluster dropped).
/// Their containers are gone by then (`reap_orphaned_containers`), so removal succeeds; a
/// network of a live process is never touched.
fn reap_orphaned_networks() {
    let Ok(output) = std::process::Command::new("docker")
        .args([
            "network",
            "ls",
            "--filter",
            &format!("name={NETWORK_PREFIX}"),
            "--format",
            "{{.Name}}",
        ])
        .output()
    else {
        return;
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    for name in listing.lines() {
        let Some(owner) = name
            .strip_prefix(NETWORK_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(owner).exists() {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", name])
                .output();
        }
    }
}
