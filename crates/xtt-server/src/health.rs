//! `GET /healthz` on the metrics listener: 200 when the server can reach its registry and its
//! registry writer works, 503 with the reason when not, so a load balancer takes a node that
//! cannot provision out of rotation. The check is one cheap query ([`Registry::ping`]) on a
//! blocking thread, bounded by [`HEALTH_TIMEOUT`], and the writer thread's state
//! ([`WriterHealth`]: stopped, or one commit running past [`crate::registrar::STUCK_COMMIT`]);
//! messages never carry the storage URL (it may hold a password).
//!
//! The query also reads the schema version: when a newer xtt node has migrated the shared
//! database past what this node knows (`storage: "schema"`), the answer is 503 with a reason
//! telling the operator to restart the node with the newer version, logged once at error
//! level (again only if the version rises further), not at every probe.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use xtt_registry::{Registry, RegistryError};

use crate::registrar::WriterHealth;

/// Longest wait for the registry's answer before reporting it unreachable.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// What `/healthz` checks.
#[derive(Clone)]
pub(crate) struct Checked {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) writer: Arc<WriterHealth>,
}

/// The route's state: what is checked, and the newest too-new schema version already logged.
#[derive(Clone)]
struct Probe {
    checked: Checked,
    schema_logged: Arc<AtomicI64>,
}

impl From<Checked> for Probe {
    fn from(checked: Checked) -> Self {
        Self {
            checked,
            schema_logged: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }
}

/// The `/healthz` route.
pub(crate) fn router(checked: Checked) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(Probe::from(checked))
}

/// The reason `/healthz` gives for a database migrated past this code.
fn schema_reason(found: i64, supported: i64) -> String {
    format!(
        "the registry database was migrated to schema version {found} by a newer xtt; \
         this node supports up to {supported}: restart it with the newer version"
    )
}

async fn healthz(State(probe): State<Probe>) -> impl IntoResponse {
    let Probe {
        checked,
        schema_logged,
    } = probe;
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
        Ok(Ok(Err(RegistryError::SchemaTooNew { found, supported }))) => {
            let reason = schema_reason(found, supported);
            // Once per version, not per probe: a load balancer polls every few seconds.
            if schema_logged.fetch_max(found, Ordering::Relaxed) < found {
                tracing::error!(%reason, "health check: registry schema");
            }
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable",
                    "storage": "schema",
                    "reason": reason,
                    "schema_version": found,
                    "schema_supported": supported,
                    "storage_ms": ms,
                })),
            );
        }
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
        let status =
            |c: Checked| async move { healthz(State(c.into())).await.into_response().status() };
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
        let answer = healthz(State(checked.into())).await.into_response();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("registry writer stopped"), "{body}");
    }

    /// Log lines written to a buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A registry whose health probe reports a schema `raised_to` (0: the probe's own answer);
    /// the backends' probes themselves are tested in xtt-registry.
    #[derive(Debug)]
    struct Migrated {
        inner: xtt_registry::SqliteRegistry,
        raised_to: AtomicI64,
    }

    impl Registry for Migrated {
        fn ping(&self) -> Result<(), RegistryError> {
            match self.raised_to.load(Ordering::SeqCst) {
                0 => self.inner.ping(),
                found => Err(RegistryError::SchemaTooNew {
                    found,
                    supported: xtt_registry::SCHEMA_VERSION,
                }),
            }
        }
        fn add_group(&self, g: &xtt_registry::GroupRecord) -> Result<bool, RegistryError> {
            self.inner.add_group(g)
        }
        fn groups(&self) -> Result<Vec<xtt_registry::GroupRecord>, RegistryError> {
            self.inner.groups()
        }
        fn group(
            &self,
            id: &xtt_proto::daa::GroupId,
        ) -> Result<Option<xtt_registry::GroupRecord>, RegistryError> {
            self.inner.group(id)
        }
        fn register_all(
            &self,
            batch: &[xtt_registry::Registration],
        ) -> Result<Vec<Result<xtt_registry::Assigned, xtt_registry::Refusal>>, RegistryError>
        {
            self.inner.register_all(batch)
        }
        fn register_all_once(
            &self,
            batch: &[xtt_registry::Registration],
            cookies: &[xtt_registry::CookieUse],
        ) -> Result<Vec<Result<xtt_registry::Assigned, xtt_registry::Refusal>>, RegistryError>
        {
            self.inner.register_all_once(batch, cookies)
        }
        fn claim_cookie(&self, c: &xtt_registry::CookieUse) -> Result<bool, RegistryError> {
            self.inner.claim_cookie(c)
        }
        fn sweep_used_cookies(&self, now: xtt_proto::UnixTime) -> Result<u64, RegistryError> {
            self.inner.sweep_used_cookies(now)
        }
        fn schema_version(&self) -> Result<i64, RegistryError> {
            self.inner.schema_version()
        }
        fn identity(
            &self,
            id: &xtt_proto::ClientId,
        ) -> Result<Option<xtt_registry::IdentityRecord>, RegistryError> {
            self.inner.identity(id)
        }
        fn identities(&self) -> Result<Vec<xtt_registry::IdentityRecord>, RegistryError> {
            self.inner.identities()
        }
        fn identity_count(&self) -> Result<u64, RegistryError> {
            self.inner.identity_count()
        }
        fn delete_identity(&self, id: &xtt_proto::ClientId) -> Result<bool, RegistryError> {
            self.inner.delete_identity(id)
        }
    }

    /// A database migrated by a newer xtt after this node started: /healthz says 503 and what
    /// to do, and logs it at error level once, not at every probe (again if it rises further).
    #[tokio::test]
    async fn a_schema_newer_than_this_node_is_unhealthy_and_logged_once() {
        let log = Captured::default();
        let sink = log.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || sink.clone())
                .with_ansi(false)
                .finish(),
        );
        let migrated = Arc::new(Migrated {
            inner: xtt_registry::SqliteRegistry::open_in_memory().unwrap(),
            raised_to: AtomicI64::new(0),
        });
        let probe = Probe::from(Checked {
            registry: migrated.clone(),
            writer: Arc::new(WriterHealth::new()),
        });
        let answer = |p: Probe| async move {
            let r = healthz(State(p)).await.into_response();
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            (status, body)
        };
        assert_eq!(answer(probe.clone()).await.0, StatusCode::OK);

        let newer = xtt_registry::SCHEMA_VERSION + 1;
        migrated.raised_to.store(newer, Ordering::SeqCst);
        for _ in 0..3 {
            let (status, body) = answer(probe.clone()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["storage"], "schema", "{body}");
            assert_eq!(
                body["reason"].as_str().unwrap(),
                format!(
                    "the registry database was migrated to schema version {newer} by a newer \
                     xtt; this node supports up to {}: restart it with the newer version",
                    xtt_registry::SCHEMA_VERSION
                ),
            );
        }
        let logged = || {
            let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
            let lines: Vec<String> = text
                .lines()
                .filter(|l| l.contains("schema version"))
                .map(str::to_owned)
                .collect();
            assert!(lines.iter().all(|l| l.contains("ERROR")), "{text}");
            lines.len()
        };
        assert_eq!(logged(), 1);
        migrated.raised_to.store(newer + 1, Ordering::SeqCst);
        for _ in 0..2 {
            let (status, body) = answer(probe.clone()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        }
        assert_eq!(logged(), 2);
    }
}
