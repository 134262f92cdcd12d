//! `GET /healthz` on the metrics listener: 200 when the server can reach its registry and its
//! registry writer works, 503 with the reason when not, so a load balancer takes a node that
//! cannot provision out of rotation. The check is one cheap query ([`Registry::ping`]) on a
//! blocking thread, bounded by [`HEALTH_TIMEOUT`], and the writer thread's state
//! ([`WriterHealth`]: stopped, or one commit running past [`crate::registrar::STUCK_COMMIT`]);
//! messages never carry the storage URL (it may hold a password).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use xtt_registry::Registry;

use crate::registrar::WriterHealth;

/// Longest wait for the registry's answer before reporting it unreachable.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// What `/healthz` checks.
#[derive(Clone)]
pub(crate) struct Checked {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) writer: Arc<WriterHealth>,
}

/// The `/healthz` route.
pub(crate) fn router(checked: Checked) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(checked)
}

async fn healthz(State(checked): State<Checked>) -> impl IntoResponse {
    if let Some(reason) = checked.writer.problem() {
        tracing::warn!(%reason, "health check: registry writer");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "unavailable",
                "storage": "writer",
                "reason": reason,
            })),
        );
    }
    let registry = checked.registry;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::Registrar;

    /// A node whose registry answers but whose writer thread has stopped cannot provision:
    /// /healthz says 503 and why, where it said 200 from the database's answer alone.
    #[tokio::test]
    async fn a_stopped_registry_writer_is_unhealthy() {
        let registry: Arc<dyn Registry> =
            Arc::new(xtt_registry::SqliteRegistry::open_in_memory().unwrap());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let registrar = Registrar::start(registry.clone(), metrics, 4, 4).unwrap();
        let checked = Checked {
            registry,
            writer: registrar.health(),
        };
        let status = |c: Checked| async move { healthz(State(c)).await.into_response().status() };
        assert_eq!(status(checked.clone()).await, StatusCode::OK);
        drop(registrar);
        let t0 = Instant::now();
        while checked.writer.problem().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the writer never stopped"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let answer = healthz(State(checked)).await.into_response();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("registry writer stopped"), "{body}");
    }
}
