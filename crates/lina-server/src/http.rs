//! HTTP: the routes and the server's life cycle.

use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use lina_config::Config;

use crate::api::{AppState, routes};
use crate::node::Node;

/// Starts the node and serves HTTP until SIGTERM or SIGINT, then stops
/// accepting, finishes in-flight requests and stops the node.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.server.bind_addr();
    let grace = config.shutdown.timeout;
    let node = Arc::new(Node::start(config).await?);
    let state = web::Data::new(AppState::new(node.clone())?);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(2);
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(grace.as_secs().max(1))
        .bind(addr)
        .with_context(|| format!("cannot listen on {addr}"))?
        .run();
    let handle = server.handle();
    tokio::spawn(async move {
        let signal = shutdown_signal().await;
        tracing::info!(signal, "stopping: no new connections, finishing requests");
        handle.stop(true).await;
    });
    tracing::info!(address = %addr, node = %node.node_id, "listening");
    let served = server.await.context("http server failed");
    node.stop().await;
    served
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
