//! What anyone may do to a Controller is bounded: devices held, and adds and updates per client
//! address. Real sockets on 127.0.0.1, served with peer addresses (`ConnectInfo`), real SQLite.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::assert_refused;
use reqwest::StatusCode;
use serde_json::json;
use tte::Key256;
use tte_server::controller::{Controller, ControllerRates};
use tte_server::store::sqlite::SqliteControllerStore;
use tte_server::store::ControllerLimits;
use xtt_ratelimit::RateLimits;

struct Served {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    async fn add(&self, i: u32) -> reqwest::Response {
        self.http
            .put(format!(
                "{}/.well-known/tte1/c/urn:dev:test:{i}/k",
                self.base
            ))
            .json(&json!({"devSecret": Key256::from_bytes([7; 32]).to_b64()}))
            .send()
            .await
            .unwrap()
    }

    async fn update(&self, i: u32) -> reqwest::Response {
        self.update_forwarded(i, None).await
    }

    /// An update as a reverse proxy passes it on, naming its client in X-Forwarded-For.
    async fn update_forwarded(&self, i: u32, client: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .put(format!(
                "{}/.well-known/tte1/s/urn:dev:test:{i}/v",
                self.base
            ))
            .body("not a JWE");
        if let Some(c) = client {
            request = request.header("x-forwarded-for", c);
        }
        request.send().await.unwrap()
    }
}

/// A Controller with `limits` and `rates`, served as the CLI serves it once peer addresses are
/// wired: `into_make_service_with_connect_info::<SocketAddr>()`.
async fn serve(limits: ControllerLimits, rates: ControllerRates) -> Served {
    serve_behind(limits, rates, vec![]).await
}

/// The same, with `proxies` trusted to name their clients.
async fn serve_behind(
    limits: ControllerLimits,
    rates: ControllerRates,
    proxies: Vec<std::net::IpAddr>,
) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteControllerStore::open(&dir.path().join("c.sqlite"))
        .unwrap()
        .with_limits(limits);
    let app = Controller::new(Arc::new(store), common::OPERATOR_TOKEN)
        .with_rates(rates)
        .with_trusted_proxies(proxies)
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Served {
        base: format!("http://{addr}"),
        http: common::http(),
        _dir: dir,
        task,
    }
}

fn slow(burst: f64) -> RateLimits {
    RateLimits::per_client(0.001, burst)
}

#[tokio::test]
async fn new_devices_beyond_the_cap_get_503() {
    let limits = ControllerLimits {
        max_devices: 2,
        max_readings_per_device: 10,
    };
    let s = serve(limits, ControllerRates::default()).await;
    assert_eq!(s.add(1).await.status(), StatusCode::CREATED);
    assert_eq!(s.add(2).await.status(), StatusCode::CREATED);
    assert_refused!(
        s.add(3).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_devices"
    );
    // A retried add of a device it holds is still answered as before.
    assert_eq!(s.add(1).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn adds_beyond_the_clients_rate_get_429() {
    let rates = ControllerRates {
        adds: slow(3.0),
        updates: slow(100.0),
    };
    let s = serve(ControllerLimits::default(), rates).await;
    for i in 0..3 {
        assert_eq!(s.add(i).await.status(), StatusCode::CREATED);
    }
    let r = s.add(3).await;
    let wait: u64 = r.headers()[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "{wait}");
    assert_refused!(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // A retry of an earlier add is charged too; updates have their own bucket.
    assert_eq!(s.add(0).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_refused!(s.update(0).await, StatusCode::BAD_REQUEST, "bad_jwe");
}

#[tokio::test]
async fn updates_beyond_the_clients_rate_get_429() {
    let rates = ControllerRates {
        adds: slow(100.0),
        updates: slow(2.0),
    };
    let s = serve(ControllerLimits::default(), rates).await;
    assert_eq!(s.add(1).await.status(), StatusCode::CREATED);
    for _ in 0..2 {
        assert_refused!(s.update(1).await, StatusCode::BAD_REQUEST, "bad_jwe");
    }
    assert_refused!(
        s.update(1).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited"
    );
    assert_refused!(
        s.update(2).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let rates = ControllerRates {
        adds: slow(100.0),
        updates: slow(1.0),
    };
    let local = "127.0.0.1".parse().unwrap();
    let s = serve_behind(ControllerLimits::default(), rates, vec![local]).await;
    assert_eq!(s.add(1).await.status(), StatusCode::CREATED);
    let a = Some("192.0.2.1");
    assert_refused!(
        s.update_forwarded(1, a).await,
        StatusCode::BAD_REQUEST,
        "bad_jwe"
    );
    assert_refused!(
        s.update_forwarded(1, a).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited"
    );
    // Another client behind the same proxy is not held to the first one's bucket.
    let b = Some("192.0.2.2");
    assert_refused!(
        s.update_forwarded(1, b).await,
        StatusCode::BAD_REQUEST,
        "bad_jwe"
    );

    // Without trusting the peer, the header is the client's own word: one bucket for all.
    let s = serve(ControllerLimits::default(), rates).await;
    assert_eq!(s.add(1).await.status(), StatusCode::CREATED);
    assert_refused!(
        s.update_forwarded(1, a).await,
        StatusCode::BAD_REQUEST,
        "bad_jwe"
    );
    assert_refused!(
        s.update_forwarded(1, b).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited"
    );
}
