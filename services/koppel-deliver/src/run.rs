//! [`run`]: the deliverer. Connects, ensures the topology, watches the registry and keeps one
//! consumer running per registered recipient, starting and stopping them as recipients come
//! and go.

use std::collections::HashMap;
use std::sync::Arc;

use koppel_nats::Topology;
use koppel_nats::schemas::SchemaCache;
use koppel_registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::DelivererConfig;
use crate::supervisor::{SharedContext, run_recipient};

/// Why the deliverer could not start. Once running it does not fail: recipient problems are
/// logged and retried, and NATS outages are ridden out by the client's reconnects.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("invalid namespace: {0}")]
    Namespace(#[from] koppel_events::subject::TokenError),
    #[error(transparent)]
    Connect(#[from] koppel_nats::ConnectError),
    #[error(transparent)]
    Topology(#[from] koppel_nats::TopologyError),
    #[error("cannot load the secret key: {0}")]
    SecretKey(#[from] koppel_registry::SealError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Registry(#[from] koppel_registry::RegistryError),
}

/// Runs the deliverer until `shutdown` is cancelled, then finishes or releases in-flight work
/// and returns.
pub async fn run(config: DelivererConfig, shutdown: CancellationToken) -> Result<(), DeliverError> {
    let names = config.names()?;
    let client = koppel_nats::connect(&config.nats).await?;
    let jetstream = async_nats::jetstream::new(client.clone());
    let topology = Topology::open(jetstream, names).await?;
    let secret_key = config.secret_key.load()?;
    let http = config
        .http
        .client()
        .map_err(|error| DeliverError::Http(error.to_string()))?;
    let registry = Registry::new(topology.registry.clone());
    let mut snapshots = registry.watch().await?;
    let schemas = SchemaCache::new(topology.schemas.clone());
    schemas.reload().await;
    let context = Arc::new(SharedContext {
        topology,
        client,
        secret_key,
        http,
        retry: config.retry.clone(),
        consumer: config.consumer.clone(),
        schemas,
    });

    let mut workers: HashMap<String, CancellationToken> = HashMap::new();
    let mut task_names: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    loop {
        // Start a worker for every recipient without one. Workers stop themselves when their
        // recipient leaves the registry, and handle subscription changes in place.
        let recipients: Vec<String> = snapshots
            .borrow_and_update()
            .recipients
            .keys()
            .cloned()
            .collect();
        for name in recipients {
            if workers.contains_key(&name) {
                continue;
            }
            let token = shutdown.child_token();
            workers.insert(name.clone(), token.clone());
            let context = context.clone();
            let receiver = snapshots.clone();
            let handle = tasks.spawn(run_recipient(context, name.clone(), receiver, token));
            task_names.insert(handle.id(), name);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = snapshots.changed() => {
                if changed.is_err() {
                    tracing::error!("The registry watch ended; stopping the deliverer.");
                    break;
                }
            }
            Some(finished) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                // A worker ends when its recipient left the registry, or by a panic; either
                // way it is forgotten, and the next pass restarts it if still registered.
                let id = match finished {
                    Ok((id, ())) => id,
                    Err(error) => {
                        tracing::error!(%error, "A recipient worker failed; restarting it.");
                        error.id()
                    }
                };
                if let Some(name) = task_names.remove(&id) {
                    workers.remove(&name);
                }
            }
        }
    }
    for token in workers.values() {
        token.cancel();
    }
    while tasks.join_next().await.is_some() {}
    // Acks are fire-and-forget publishes; send what is still buffered before leaving.
    if let Err(error) = context.client.flush().await {
        tracing::warn!(%error, "Could not flush the last acks; those messages will be redelivered.");
    }
    tracing::info!("Deliverer stopped.");
    Ok(())
}
