//! Runs a Transfer Agent and a Controller in-process on 127.0.0.1 (port 0), over real sockets
//! and real SQLite files in a temporary directory.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;

use tte::Key256;
use tte_server::controller::Controller;
use tte_server::http::serve;
use tte_server::store::sqlite::{SqliteControllerStore, SqliteTaStore};
use tte_server::ta::TransferAgent;

pub const MANUFACTURER_TOKEN: &str = "manufacturer-token-for-tests";
pub const OPERATOR_TOKEN: &str = "operator-token-for-tests";

pub struct Stack {
    pub ta: String,
    pub ctl: String,
    pub dir: tempfile::TempDir,
    pub otp_key: Key256,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Stack {
    pub fn ta_db(&self) -> PathBuf {
        self.dir.path().join("ta.sqlite")
    }
    pub fn ctl_db(&self) -> PathBuf {
        self.dir.path().join("controller.sqlite")
    }
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("devices")
    }
}

/// A plain HTTP client (rustls needs its crypto provider before any reqwest client is built).
pub fn http() -> reqwest::Client {
    xtt_tls::install_ring_provider();
    reqwest::Client::new()
}

pub async fn start() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("devices")).unwrap();
    let otp_key = Key256::generate(&mut rand_core::OsRng);
    let ta_store = SqliteTaStore::open(&dir.path().join("ta.sqlite")).unwrap();
    let ctl_store = SqliteControllerStore::open(&dir.path().join("controller.sqlite")).unwrap();
    let ta_app =
        TransferAgent::new(Arc::new(ta_store), otp_key.clone(), MANUFACTURER_TOKEN).router();
    let ctl_app = Controller::new(Arc::new(ctl_store), OPERATOR_TOKEN).router();
    let any = "127.0.0.1:0".parse().unwrap();
    let (ta_addr, t1) = serve(any, ta_app).await.unwrap();
    let (ctl_addr, t2) = serve(any, ctl_app).await.unwrap();
    Stack {
        ta: format!("http://{ta_addr}"),
        ctl: format!("http://{ctl_addr}"),
        dir,
        otp_key,
        tasks: vec![t1, t2],
    }
}
