//! `GET /healthz` on the metrics listener: 200 when the server can reach its registry, 503 with
//! the reason when it cannot, so a load balancer takes a node whose database is gone out of
//! rotation. The check is one cheap query ([`Registry::ping`]) on a blocking thread, bounded by
//! [`HEALTH_TIMEOUT`]; messages never carry the storage URL (it may hold a password).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use xtt_registry::Registry;

/// Longest wait for the registry's answer before reporting it unreachable.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// The `/healthz` route.
pub(crate) fn router(registry: Arc<dyn Registry>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(registry)
}

async fn healthz(State(registry): State<Arc<dyn Registry>>) -> impl IntoResponse {
    let started = Instant::now();
    let answer = tokio::time::timeout(
        HEALTH_TIMEOUT,
        tokio::task::spawn_blocking(move || registry.ping()),
    )
    .await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let failure = match answer {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(("unreachable", e.to_string())),
        Ok(Err(_)) => Some(("error", "the health check failed".to_string())),
        Err(_) => Some((
            "timeout",
            format!("no answer within {} s", HEALTH_TIMEOUT.as_secs()),
        )),
    };
    match failure {
        None => (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ok", "storage": "ok", "storage_ms": ms})),
        ),
        Some((storage, reason)) => {
            tracing::warn!(%reason, "health check: registry {storage}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable",
                    "storage": storage,
                    "reason": reason,
                    "storage_ms": ms,
                })),
            )
        }
    }
}
