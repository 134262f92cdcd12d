//! `GET /healthz` on the metrics listener: 200 when the server can reach its registry (and its
//! shared session store, when it has one) and its registry writer works, 503 with the reason
//! when not, so a load balancer takes a node that cannot provision out of rotation. The check
//! is one cheap query per store ([`Registry::ping`], then
//! [`xtt_registry::sessions::SessionStore::ping`]), each on a blocking thread and bounded by
//! [`HEALTH_TIMEOUT`], and the writer thread's state ([`WriterHealth`]: stopped, or one commit
//! running past [`crate::registrar::STUCK_COMMIT`]); messages never carry the storage URL (it
//! may hold a password).
//!
//! The queries also read the schema versions: when a newer xtt node has migrated the shared
//! database past what this node knows (`storage: "schema"` for the registry's tables,
//! `"sessions-schema"` for the session tables, which are versioned on their own), the answer is
//! 503 with a reason telling the operator to restart the node with the newer version, logged
//! once at error level (again only if the version rises further), not at every probe.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::get;
use axum::Router;
use xtt_registry::{Registry, RegistryError};

use crate::registrar::WriterHealth;
use crate::sessions::shared::OffRuntimeDrop;

/// Longest wait for each store's answer before reporting it unreachable.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// What `/healthz` checks.
#[derive(Clone)]
pub(crate) struct Checked {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) writer: Arc<WriterHealth>,
    /// The shared session store, if the node shares sessions (held so that its last reference
    /// is not dropped on a runtime worker, see [`OffRuntimeDrop`]).
    pub(crate) sessions: Option<Arc<OffRuntimeDrop>>,
}

/// The newest too-new schema version already logged for one version table: a load balancer
/// polls every few seconds, the log says it once per version.
struct LoggedVersion(AtomicI64);

impl LoggedVersion {
    fn new() -> Self {
        Self(AtomicI64::new(i64::MIN))
    }

    /// `true` the first time `found` (or anything above the versions seen) is reported.
    fn first(&self, found: i64) -> bool {
        self.0.fetch_max(found, Ordering::Relaxed) < found
    }
}

/// The route's state: what is checked, and per version table the newest too-new schema
/// version already logged (the registry's and the session tables' versions are unrelated).
#[derive(Clone)]
struct Probe {
    checked: Checked,
    registry_logged: Arc<LoggedVersion>,
    sessions_logged: Arc<LoggedVersion>,
}

impl From<Checked> for Probe {
    fn from(checked: Checked) -> Self {
        Self {
            checked,
            registry_logged: Arc::new(LoggedVersion::new()),
            sessions_logged: Arc::new(LoggedVersion::new()),
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

/// The reason `/healthz` gives for session tables migrated past this code.
fn sessions_schema_reason(found: i64, supported: i64) -> String {
    format!(
        "the shared session tables were migrated to schema version {found} by a newer xtt; \
         this node supports up to {supported}: restart it with the newer version"
    )
}

/// How a store's probe went wrong.
enum Failure {
    /// Migrated past this code.
    Schema { found: i64, supported: i64 },
    /// Not usable now.
    Down(Down),
}

/// How a store's probe failed to get an answer.
enum Down {
    /// The store answered with an error.
    Unreachable(RegistryError),
    /// The blocking task failed.
    Error,
    /// No answer within [`HEALTH_TIMEOUT`].
    Timeout,
}

impl Down {
    /// What `/healthz` says of it.
    fn reason(&self) -> String {
        match self {
            Down::Unreachable(e) => e.to_string(),
            Down::Error => "the health check failed".into(),
            Down::Timeout => format!("no answer within {} s", HEALTH_TIMEOUT.as_secs()),
        }
    }
}

/// Runs `ping` on a blocking thread, bounded by [`HEALTH_TIMEOUT`]; the outcome and how long
/// it took in milliseconds.
async fn probe_store(
    ping: impl FnOnce() -> Result<(), RegistryError> + Send + 'static,
) -> (Result<(), Failure>, f64) {
    let started = Instant::now();
    let answer = tokio::time::timeout(HEALTH_TIMEOUT, tokio::task::spawn_blocking(ping)).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let outcome = match answer {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(RegistryError::SchemaTooNew { found, supported }))) => {
            Err(Failure::Schema { found, supported })
        }
        Ok(Ok(Err(e))) => Err(Failure::Down(Down::Unreachable(e))),
        Ok(Err(_)) => Err(Failure::Down(Down::Error)),
        Err(_) => Err(Failure::Down(Down::Timeout)),
    };
    (outcome, ms)
}

type Answer = (StatusCode, Json<serde_json::Value>);

/// 503 for a schema newer than this code, logged at error level (as `what`) once per version.
fn schema_answer(
    what: &str,
    storage: &str,
    reason: String,
    (found, supported): (i64, i64),
    logged: &LoggedVersion,
    timings: serde_json::Value,
) -> Answer {
    if logged.first(found) {
        tracing::error!(%reason, "health check: {what}");
    }
    let mut body = serde_json::json!({
        "status": "unavailable",
        "storage": storage,
        "reason": reason,
        "schema_version": found,
        "schema_supported": supported,
    });
    merge(&mut body, timings);
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// 200, with the probes' durations.
fn healthy(timings: serde_json::Value) -> Answer {
    let mut body = serde_json::json!({ "status": "ok", "storage": "ok" });
    merge(&mut body, timings);
    (StatusCode::OK, Json(body))
}

/// 503 for a store that cannot be used, logged at warning level (it may come and go) as `what`.
fn unavailable(what: &str, storage: &str, reason: String, timings: serde_json::Value) -> Answer {
    tracing::warn!(%reason, "health check: {what}");
    let mut body = serde_json::json!({
        "status": "unavailable",
        "storage": storage,
        "reason": reason,
    });
    merge(&mut body, timings);
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}

/// Adds `extra`'s fields (the probes' durations) to the object `body`.
fn merge(body: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
}

async fn healthz(State(probe): State<Probe>) -> Answer {
    let Probe {
        checked,
        registry_logged,
        sessions_logged,
    } = probe;
    if let Some(reason) = checked.writer.problem() {
        return unavailable("registry writer", "writer", reason, serde_json::json!({}));
    }
    let registry = checked.registry;
    let (answer, ms) = probe_store(move || registry.ping()).await;
    let timings = serde_json::json!({ "storage_ms": ms });
    match answer {
        Ok(()) => {}
        Err(Failure::Schema { found, supported }) => {
            let reason = schema_reason(found, supported);
            return schema_answer(
                "registry schema",
                "schema",
                reason,
                (found, supported),
                &registry_logged,
                timings,
            );
        }
        Err(Failure::Down(down)) => {
            let (what, storage) = match down {
                Down::Unreachable(_) => ("registry unreachable", "unreachable"),
                Down::Error => ("registry error", "error"),
                Down::Timeout => ("registry timeout", "timeout"),
            };
            return unavailable(what, storage, down.reason(), timings);
        }
    }
    let Some(sessions) = checked.sessions else {
        return healthy(timings);
    };
    let (answer, sessions_ms) = probe_store(move || match sessions.store() {
        Some(store) => store.ping(),
        // Unreachable while `sessions` is held; an answer rather than a panic all the same.
        None => Err(RegistryError::Database(
            "the session store is closed".into(),
        )),
    })
    .await;
    let timings = serde_json::json!({ "storage_ms": ms, "sessions_ms": sessions_ms });
    // Failures other than the schema (error, failed task, timeout) are all "sessions": the
    // registry answered, so the reason names the session store as the one that failed.
    match answer {
        Ok(()) => healthy(timings),
        Err(Failure::Schema { found, supported }) => {
            let reason = sessions_schema_reason(found, supported);
            schema_answer(
                "session store schema",
                "sessions-schema",
                reason,
                (found, supported),
                &sessions_logged,
                timings,
            )
        }
        Err(Failure::Down(down)) => {
            let reason = format!("session store: {}", down.reason());
            unavailable("session store", "sessions", reason, timings)
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

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
            sessions: None,
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

    /// This thread's log lines, into a buffer, while the guard lives.
    fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
        let log = Captured::default();
        let sink = log.clone();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || sink.clone())
                .with_ansi(false)
                .finish(),
        );
        (log, guard)
    }

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

    /// /healthz's status and JSON body.
    async fn answer(p: Probe) -> (StatusCode, serde_json::Value) {
        let r = healthz(State(p)).await.into_response();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, body)
    }

    /// A database migrated by a newer xtt after this node started: /healthz says 503 and what
    /// to do, and logs it at error level once, not at every probe (again if it rises further).
    #[tokio::test]
    async fn a_schema_newer_than_this_node_is_unhealthy_and_logged_once() {
        let (log, _guard) = capture_logs();
        let migrated = Arc::new(Migrated {
            inner: xtt_registry::SqliteRegistry::open_in_memory().unwrap(),
            raised_to: AtomicI64::new(0),
        });
        let probe = Probe::from(Checked {
            registry: migrated.clone(),
            writer: Arc::new(WriterHealth::new()),
            sessions: None,
        });
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

    /// A database of its own on the test PostgreSQL server (`XTT_TEST_POSTGRES_URL`, set by
    /// scripts/test.sh; the test fails without it). Blocking.
    fn fresh_postgres() -> postgres::Config {
        use rand_core::RngCore as _;
        let Ok(url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
            panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
        };
        let mut config: postgres::Config = url.parse().unwrap();
        let mut admin = config.connect(postgres::NoTls).unwrap();
        let name = format!("xtt_test_health_{:016x}", rand_core::OsRng.next_u64());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        config.dbname(&name);
        config
    }

    /// The session tables' schema version in `config`'s database, after recording `raise_to`
    /// as a newer xtt's migration would. Blocking.
    fn session_schema_version(config: &postgres::Config, raise_to: Option<i64>) -> i64 {
        let mut c = config.connect(postgres::NoTls).unwrap();
        if let Some(v) = raise_to {
            c.execute(
                "INSERT INTO xtt_session_schema_version (version) VALUES ($1)",
                &[&v],
            )
            .unwrap();
        }
        c.query_one(
            "SELECT max(version)::bigint FROM xtt_session_schema_version",
            &[],
        )
        .unwrap()
        .get(0)
    }

    /// Another node (a newer xtt) migrates the shared session tables after this node opened
    /// them, the registry's tables untouched: /healthz, 200 before, says 503 `sessions-schema`
    /// and what to do, and logs it at error level once per version, not at every probe.
    #[tokio::test]
    async fn session_tables_newer_than_this_node_are_unhealthy_and_logged_once() {
        use xtt_registry::sessions::PostgresSessionStore;

        let (log, _guard) = capture_logs();
        let config = tokio::task::spawn_blocking(fresh_postgres).await.unwrap();
        let opened = config.clone();
        let store = tokio::task::spawn_blocking(move || {
            PostgresSessionStore::from_config(opened, 1).unwrap()
        })
        .await
        .unwrap();
        let probe = Probe::from(Checked {
            registry: Arc::new(xtt_registry::SqliteRegistry::open_in_memory().unwrap()),
            writer: Arc::new(WriterHealth::new()),
            sessions: Some(Arc::new(OffRuntimeDrop::new(Arc::new(store)))),
        });
        let (status, body) = answer(probe.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["sessions_ms"].is_number(), "{body}");

        let version = |raise_to: Option<i64>| {
            let config = config.clone();
            async move {
                tokio::task::spawn_blocking(move || session_schema_version(&config, raise_to))
                    .await
                    .unwrap()
            }
        };
        let supported = version(None).await;
        let newer = supported + 1;
        assert_eq!(version(Some(newer)).await, newer);
        for _ in 0..3 {
            let (status, body) = answer(probe.clone()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["storage"], "sessions-schema", "{body}");
            assert_eq!(body["schema_version"], newer, "{body}");
            assert_eq!(
                body["reason"].as_str().unwrap(),
                format!(
                    "the shared session tables were migrated to schema version {newer} by a \
                     newer xtt; this node supports up to {supported}: restart it with the \
                     newer version"
                ),
            );
        }
        let logged = || {
            let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
            let lines: Vec<String> = text
                .lines()
                .filter(|l| l.contains("session tables"))
                .map(str::to_owned)
                .collect();
            assert!(lines.iter().all(|l| l.contains("ERROR")), "{text}");
            lines.len()
        };
        assert_eq!(logged(), 1);
        version(Some(newer + 1)).await;
        for _ in 0..2 {
            let (status, body) = answer(probe.clone()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["schema_version"], newer + 1, "{body}");
        }
        assert_eq!(logged(), 2);
    }
}
