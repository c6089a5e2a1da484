//! Serving and graceful shutdown.
//!
//! On SIGTERM or Ctrl-C: `/health` turns 503 and new requests get 503 at once; running
//! requests get up to `--shutdown-timeout` seconds to finish; then every one still running is
//! ended with an error event and `[DONE]` (or a 503 when not streamed), and the listener
//! closes once the connections have drained.
//!
//! Invariant: waiting is on the admission semaphore (all permits back = nothing in flight),
//! not on a polling loop.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::state::AppState;

/// How long aborted streams get to write their error event before the listener closes.
const ABORT_FLUSH: Duration = Duration::from_secs(5);

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Waits until no request is in flight, for at most `limit`.
async fn wait_idle(state: &AppState, limit: Duration) -> bool {
    let all = u32::try_from(state.options.queue_bound).unwrap_or(u32::MAX);
    matches!(
        tokio::time::timeout(limit, state.permits.acquire_many(all)).await,
        Ok(Ok(_))
    )
}

/// The drain sequence described in the module header.
pub async fn drain(state: &AppState) {
    state.set_draining();
    let in_flight = state.in_flight();
    tracing::info!(
        in_flight,
        timeout_s = state.options.shutdown_timeout.as_secs(),
        "shutting down: draining requests"
    );
    if wait_idle(state, state.options.shutdown_timeout).await {
        tracing::info!("all requests finished");
        return;
    }
    tracing::warn!(
        still_running = state.in_flight(),
        "drain time is over: aborting the remaining requests"
    );
    let _ = state.abort_all.send(true);
    wait_idle(state, ABORT_FLUSH).await;
}

/// Serves `router` on `listener` until `signal`, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = async move {
        signal.await;
        drain(&state).await;
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
