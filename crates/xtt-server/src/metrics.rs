//! Prometheus metrics (`prometheus-client`) and the tiny axum endpoint that serves them on their
//! own address, away from the XTT port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::outcome::Outcome;

/// Labels of `xtt_handshakes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
    reason: &'static str,
}

/// Labels of `xtt_session_handshakes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    transport: &'static str,
    outcome: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    handshakes: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    in_flight: Gauge,
    daa_batch_size: Histogram,
    commit_batch_size: Histogram,
    session_handshakes: Family<SessionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `xtt_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("xtt");
        let handshakes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "handshakes",
            "Identity handshakes by outcome (ok, failed, refused) and failure reason",
            handshakes.clone(),
        );
        // 0.5 ms .. ~16 s.
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "handshake_duration_seconds",
            "Time from accepted connection to Identity_ServerFinished sent, successful handshakes",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "handshakes_in_flight",
            "Handshakes in progress",
            in_flight.clone(),
        );
        let daa_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "daa_batch_size",
            "DAA signatures verified per verification call (1 without batching)",
            daa_batch_size.clone(),
        );
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "registry_commit_batch_size",
            "Registrations committed per registry transaction",
            commit_batch_size.clone(),
        );
        let session_handshakes = Family::<SessionLabels, Counter>::default();
        registry.register(
            "session_handshakes",
            "Session handshakes (third message 0x21/0x22 processed) by transport and outcome",
            session_handshakes.clone(),
        );
        Self {
            session_handshakes,
            registry,
            handshakes,
            latency,
            in_flight,
            daa_batch_size,
            commit_batch_size,
        }
    }

    pub(crate) fn record(&self, outcome: &Outcome, seconds: f64) {
        self.handshakes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.kind(),
                reason: outcome.reason(),
            })
            .inc();
        if matches!(outcome, Outcome::Ok) {
            self.latency.observe(seconds);
        }
    }

    pub(crate) fn record_session(&self, transport: &'static str, ok: bool) {
        self.session_handshakes
            .get_or_create(&SessionLabels {
                transport,
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Session handshakes so far on `transport` ("tcp", "udp") with `outcome` ("ok", "failed").
    pub fn session_handshakes_count(&self, transport: &str, outcome: &str) -> u64 {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            return 0;
        }
        let needle = format!(
            "xtt_session_handshakes_total{{transport=\"{transport}\",outcome=\"{outcome}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    pub(crate) fn observe_daa_batch(&self, n: usize) {
        self.daa_batch_size.observe(n as f64);
    }

    pub(crate) fn observe_commit_batch(&self, n: usize) {
        self.commit_batch_size.observe(n as f64);
    }

    /// How many handshakes ended with this outcome label pair so far (tests, status output).
    pub fn handshakes_count(&self, outcome: &str, reason: &str) -> u64 {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            return 0;
        }
        let needle = format!("xtt_handshakes_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Handshakes in progress right now.
    pub fn in_flight_now(&self) -> i64 {
        self.in_flight.get()
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

/// Serves `GET /metrics` (and `GET /healthz`, [`crate::health`]) on `listener` until
/// `shutdown` completes. Through [`xtt_tls::serve`]: a scraper that connects and sends nothing
/// (or half a request) is closed after the request-head deadline instead of holding its
/// connection, and shutdown, forever; connections are capped overall and per address.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: crate::health::Checked,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics)
        .merge(crate::health::router(health));
    let limits = xtt_tls::serve::ServeLimits::default();
    xtt_tls::serve::serve(listener, app, limits, shutdown).await
}

/// Binds the metrics address.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    /// Reads until the server closes `s`; false if still open after `within`.
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn a_half_sent_scrape_is_closed_and_does_not_hold_up_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let registry = xtt_registry::SqliteRegistry::open(
            &dir.path().join("registry.sqlite"),
            xtt_registry::Durability::Full,
        )
        .unwrap();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(Metrics::new()),
            crate::health::Checked {
                registry: Arc::new(registry),
                writer: Arc::new(crate::registrar::WriterHealth::new()),
                sessions: None,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        // Bounds the waits below, which end long before unless something never fires.
        let guard = Duration::from_secs(60);
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /metr").await.unwrap();
        // A whole scrape answered after them: connections are accepted in order, so both are
        // being served when the shutdown begins.
        let mut whole = TcpStream::connect(addr).await.unwrap();
        whole
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(guard, whole.read_to_end(&mut answer))
            .await
            .expect("the scrape was not answered")
            .unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"));
        let _ = stop.send(());
        // The idle one is closed at once, the half-sent one by the 10 s request-head deadline
        // (or the 10 s shutdown grace), and the server then returns. The bounds only keep the
        // test from hanging should one of those never fire.
        assert!(
            closed_within(&mut half, guard).await,
            "half-sent scrape kept"
        );
        assert!(
            closed_within(&mut silent, guard).await,
            "idle connection kept"
        );
        tokio::time::timeout(guard, server)
            .await
            .expect("the metrics endpoint did not stop")
            .unwrap()
            .unwrap();
    }
}
