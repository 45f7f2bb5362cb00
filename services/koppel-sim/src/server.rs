//! What every simulator's server shares: serving a router until shutdown, on a given listener
//! or on a fresh local port in a background task, and a lock that survives poisoning.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server running in a background task; [`join`] gives its result.
pub(crate) type ServerTask = JoinHandle<io::Result<()>>;

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub(crate) async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Binds `127.0.0.1:0` and serves `router` there in a background task until `shutdown` is
/// cancelled.
pub(crate) async fn spawn_on_local_port(
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<(SocketAddr, ServerTask)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    Ok((
        address,
        tokio::spawn(serve_router(listener, router, shutdown)),
    ))
}

/// Waits for a server task to finish (after its shutdown token was cancelled).
pub(crate) async fn join(task: ServerTask) -> io::Result<()> {
    task.await
        .unwrap_or_else(|join_error| Err(io::Error::other(join_error)))
}

/// A poisoned lock only means a handler panicked mid-request; the state is still readable and
/// the simulator keeps serving rather than failing every later request.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
