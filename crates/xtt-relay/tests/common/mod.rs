//! A real relay on 127.0.0.1 (port 0) over a real SQLite file in a temporary directory, over
//! plain HTTP or over HTTPS with a CA made here.
#![allow(dead_code, unreachable_pub)]

pub mod cli;
pub mod gated;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use xtt_relay::cli::TrustArgs;
use xtt_relay::client::{RelayClient, ShareRequest};
use xtt_relay::proto::secret::ProvisioningInfo;
use xtt_relay::proto::wire::{AccessRights, DisplayInformation, PayloadType};
use xtt_relay::server::clock::ManualClock;
use xtt_relay::server::rate_limit::RateLimits;
use xtt_relay::server::sqlite::SqliteStore;
use xtt_relay::server::{RelayConfig, RelayServer};
use xtt_tls::test_pki::TestCa;

/// 2030-01-01T00:00:00Z: tests run on a fixed clock.
pub const T0: i64 = 1_893_456_000;

pub struct TestRelay {
    pub server: RelayServer,
    pub base: Url,
    pub db: PathBuf,
    pub clock: Arc<ManualClock>,
    pub client: RelayClient,
    pub dir: tempfile::TempDir,
    /// The CA that issued the relay's certificate, when it serves HTTPS.
    pub ca: Option<TestCa>,
}

pub fn config() -> RelayConfig {
    RelayConfig {
        rate: RateLimits {
            per_client_rate: 1e6,
            per_client_burst: 1e6,
            global_rate: 1e6,
            global_burst: 1e6,
        },
        sweep_interval: Duration::from_secs(3600),
        ..RelayConfig::default()
    }
}

pub async fn start(config: RelayConfig) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    start_at(dir, db, config).await
}

pub async fn start_at(dir: tempfile::TempDir, db: PathBuf, config: RelayConfig) -> TestRelay {
    start_on(dir, db, config, None).await
}

/// The relay over HTTPS: a CA made here issues its certificate for 127.0.0.1, and `client`
/// trusts that CA the way the CLI does (`--ca-file`).
pub async fn start_https(config: RelayConfig) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    start_on(dir, db, config, Some(TestCa::new("relay test CA"))).await
}

async fn start_on(
    dir: tempfile::TempDir,
    db: PathBuf,
    config: RelayConfig,
    ca: Option<TestCa>,
) -> TestRelay {
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server, client) = match &ca {
        None => (
            RelayServer::start(listener, store, clock.clone(), config)
                .await
                .unwrap(),
            RelayClient::new().unwrap(),
        ),
        Some(ca) => {
            let tls = ca.server_cert().server_config();
            let server = RelayServer::start_tls(listener, tls, store, clock.clone(), config)
                .await
                .unwrap();
            let trust = TrustArgs {
                ca_files: vec![ca.write_pem(dir.path(), "sender-ca")],
                anchors: None,
            };
            (server, trust.client().unwrap())
        }
    };
    let scheme = if ca.is_some() { "https" } else { "http" };
    let base = Url::parse(&format!("{scheme}://{}", server.local_addr())).unwrap();
    TestRelay {
        server,
        base,
        db,
        clock,
        client,
        dir,
        ca,
    }
}

pub fn info(token: &str) -> ProvisioningInfo {
    let mut content = serde_json::Map::new();
    content.insert("authorizationToken".into(), serde_json::json!(token));
    ProvisioningInfo::new("digitalwallet.generic.authorizationToken", content)
}

pub fn display() -> DisplayInformation {
    DisplayInformation {
        title: "Hotel Pass".into(),
        description: "Room 1207, 3 nights".into(),
        image_url: "http://127.0.0.1:9/pass.png".into(),
    }
}

pub fn share_request(info: &ProvisioningInfo, rights: &str) -> ShareRequest {
    ShareRequest {
        plaintext: info.to_bytes(),
        display: display(),
        vertical: None,
        cipher: PayloadType::Aes128Gcm,
        rights: AccessRights::parse(rights).unwrap(),
        expires_at: T0 + 3600,
        notification_token: None,
        attestation: None,
    }
}

/// Rows in `table`, read through a separate connection to the relay's file.
pub fn rows(db: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}
