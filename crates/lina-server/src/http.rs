//! HTTP: the routes and the server's life cycle.

use std::sync::Arc;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use lina_config::Config;
use tracing::Instrument;

use crate::api::plugins::register_plugin_routes;
use crate::api::{AppState, routes};
use crate::node::Node;
use crate::plugin::SourcePlugin;

/// Starts the node and serves HTTP until SIGTERM or SIGINT, then stops
/// accepting, finishes in-flight requests and stops the node.
pub async fn serve(config: Config, plugins: Vec<Arc<dyn SourcePlugin>>) -> anyhow::Result<()> {
    let addr = config.server.bind_addr();
    let grace = config.shutdown.timeout;
    let node = Arc::new(Node::start_with_plugins(config, plugins).await?);
    let plugin_routes = node.plugins.clone();
    let state = web::Data::new(AppState::new(node.clone())?);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(2);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(observe))
            .configure(routes)
            .configure(|cfg| register_plugin_routes(cfg, &plugin_routes))
    })
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

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an id (the client's `X-Request-Id` when it is sane),
/// a tracing span carrying it, the id on the response, and its place in the
/// request metrics.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| lina_coord_api::random_hex128()[..16].to_string());
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let span =
        tracing::info_span!("request", request_id = %id, method = %method, path = %req.path());
    let mut response = next.call(req).instrument(span.clone()).await?;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(state) = state {
        state.metrics.record(&method, status, elapsed);
    }
    tracing::debug!(parent: &span, status, elapsed_ms = elapsed.as_millis() as u64, "request answered");
    Ok(response)
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
