//! A real relay on 127.0.0.1 (port 0) over a real SQLite file in a temporary directory.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use xtt_relay::client::{RelayClient, ShareRequest};
use xtt_relay::proto::secret::ProvisioningInfo;
use xtt_relay::proto::wire::{AccessRights, DisplayInformation, PayloadType};
use xtt_relay::server::clock::ManualClock;
use xtt_relay::server::rate_limit::RateLimits;
use xtt_relay::server::sqlite::SqliteStore;
use xtt_relay::server::{RelayConfig, RelayServer};

/// 2030-01-01T00:00:00Z: tests run on a fixed clock.
pub const T0: i64 = 1_893_456_000;

pub struct TestRelay {
    pub server: RelayServer,
    pub base: Url,
    pub db: PathBuf,
    pub clock: Arc<ManualClock>,
    pub client: RelayClient,
    pub dir: tempfile::TempDir,
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
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = RelayServer::start(listener, store, clock.clone(), config)
        .await
        .unwrap();
    let base = Url::parse(&format!("http://{}", server.local_addr())).unwrap();
    TestRelay {
        server,
        base,
        db,
        clock,
        client: RelayClient::new().unwrap(),
        dir,
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
