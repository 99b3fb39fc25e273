//! The HTTP side of a node: Prometheus `/metrics`.

use crate::server::inbox::{DriverHandle, Input};
use crate::server::metrics::Metrics;
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

#[derive(Clone)]
struct MetricsState {
    driver: DriverHandle,
    metrics: Arc<Metrics>,
}

async fn scrape(State(state): State<MetricsState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if let Some(engine) = state.driver.ask(Input::Metrics).await {
        text.push_str(&engine.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Serves `/metrics` on `address` until `stop` turns true.
pub async fn serve_metrics(
    address: &str,
    driver: DriverHandle,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for metrics on {address}: is the port in use?"))?;
    let app =
        Router::new().route("/metrics", get(scrape)).with_state(MetricsState { driver, metrics });
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
    }))
}
