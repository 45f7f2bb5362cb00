//! The operations endpoints: `/metrics` (Prometheus text), `/healthz` (the process runs) and
//! `/readyz` (the service reaches what it depends on; load balancers and Kubernetes use it).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsSettings {
    /// Where the operations server listens. Port 0 picks a free one (tests).
    pub listen: SocketAddr,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// Whether the service is ready. Cheap to clone; the worker flips it.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets readiness from `probe` now and then every `period` until `shutdown`: ready exactly
    /// while the last probe succeeded. A worker probes what it depends on (NATS and its
    /// registry), so it is not ready before they answer, nor while they do not.
    pub async fn follow<Probe, Answer>(
        &self,
        period: Duration,
        shutdown: CancellationToken,
        mut probe: Probe,
    ) where
        Probe: FnMut() -> Answer,
        Answer: Future<Output = bool>,
    {
        loop {
            let ready = tokio::select! {
                () = shutdown.cancelled() => break,
                ready = probe() => ready,
            };
            if ready != self.is_ready() {
                tracing::info!(ready, "Readiness changed.");
            }
            self.set_ready(ready);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(period) => {}
            }
        }
        self.set_ready(false);
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: PrometheusHandle,
    readiness: Readiness,
}

/// Binds the operations server and serves it in the background until `shutdown`. Returns the
/// bound address.
pub async fn serve_ops(
    settings: &OpsSettings,
    metrics: PrometheusHandle,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let address = listener.local_addr()?;
    let router = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(OpsState { metrics, readiness });
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "The operations server stopped.");
        }
    });
    Ok(address)
}

async fn render_metrics(State(state): State<OpsState>) -> String {
    state.metrics.render()
}

async fn ready(State(state): State<OpsState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics_handle;

    #[tokio::test]
    async fn endpoints_answer() {
        let readiness = Readiness::default();
        let shutdown = CancellationToken::new();
        let settings = OpsSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let address = serve_ops(
            &settings,
            metrics_handle(),
            readiness.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        metrics::counter!("koppel_test_counter_total").increment(3);
        let client = crate::http::client_builder().build().unwrap();
        let get = |path: &str| client.get(format!("http://{address}{path}")).send();

        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/readyz").await.unwrap().status(), 503);
        readiness.set_ready(true);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);
        let metrics = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(metrics.contains("koppel_test_counter_total 3"), "{metrics}");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn readiness_follows_the_probe_and_drops_on_shutdown() {
        let readiness = Readiness::default();
        let shutdown = CancellationToken::new();
        let (answers, mut receive) = tokio::sync::mpsc::channel::<bool>(1);
        let (seen, mut probed) = tokio::sync::mpsc::channel::<()>(1);
        let follower = {
            let readiness = readiness.clone();
            let shutdown = shutdown.clone();
            // The probe answers what the test last sent, false before anything.
            let mut current = false;
            tokio::spawn(async move {
                readiness
                    .follow(Duration::ZERO, shutdown, || {
                        let seen = seen.clone();
                        if let Ok(answer) = receive.try_recv() {
                            current = answer;
                        }
                        let answer = current;
                        async move {
                            let _ = seen.send(()).await;
                            answer
                        }
                    })
                    .await;
            })
        };
        // Not ready until a probe succeeds.
        probed.recv().await.unwrap();
        assert!(!readiness.is_ready());
        answers.send(true).await.unwrap();
        while !readiness.is_ready() {
            probed.recv().await.unwrap();
        }
        // A failing probe takes readiness away again.
        answers.send(false).await.unwrap();
        while readiness.is_ready() {
            probed.recv().await.unwrap();
        }
        answers.send(true).await.unwrap();
        while !readiness.is_ready() {
            probed.recv().await.unwrap();
        }
        shutdown.cancel();
        drop(probed);
        follower.await.unwrap();
        assert!(!readiness.is_ready());
    }
}
