//! "Nothing lost when killed mid-request": a Controller in a child process is SIGKILLed while
//! devices stream sensor updates; afterwards every update that was acknowledged is in the
//! database, and the database is intact.
//!
//! The child is this same test binary re-run with `--ignored --exact child_controller` and
//! `TTE_CHILD_DB` set (no extra binary needed); run normally, `child_controller` is ignored.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand_core::OsRng;
use tte::api::DeviceInfo;
use tte::senml::{Pack, Record};
use tte::{jwe, DevUrn, Key256};
use tte_server::store::sqlite::SqliteControllerStore;
use tte_server::store::ControllerStore as _;

/// Kills the child if the test fails early.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "helper process for crash_mid_stream_loses_no_acknowledged_update"]
fn child_controller() {
    let Ok(db) = std::env::var("TTE_CHILD_DB") else {
        panic!(
            "not a test by itself: run by crash_mid_stream_loses_no_acknowledged_update with \
             TTE_CHILD_DB set"
        )
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = SqliteControllerStore::open(std::path::Path::new(&db)).unwrap();
        let app = tte_server::controller::Controller::new(Arc::new(store), "operator-token-crash")
            .router();
        let (addr, task) = tte_server::http::serve("127.0.0.1:0".parse().unwrap(), app)
            .await
            .unwrap();
        println!("LISTENING {addr}");
        let _ = task.await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_stream_loses_no_acknowledged_update() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("controller.sqlite");
    let devices: Vec<(DevUrn, Key256)> = (0..8)
        .map(|i| {
            (
                DevUrn::parse(&format!("urn:dev:mac:0200000000{i:02x}")).unwrap(),
                Key256::generate(&mut OsRng),
            )
        })
        .collect();
    {
        let store = SqliteControllerStore::open(&db).unwrap();
        for (u, k) in &devices {
            store.add_device(u, k, None, 0).unwrap();
        }
    }

    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_controller",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TTE_CHILD_DB", &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test child_controller ... " on the same line first.
            if let Some((_, a)) = line.split_once("LISTENING ") {
                let _ = tx.send(a.trim().to_owned());
                break;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("child Controller did not start");

    xtt_tls::install_ring_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Every acknowledged update, over all devices: the kill waits for enough of them.
    let (acked_tx, mut acked_rx) = tokio::sync::watch::channel(0u64);
    let acked_tx = Arc::new(acked_tx);
    let mut tasks = tokio::task::JoinSet::new();
    for (urn, key) in devices.clone() {
        let (http, addr, acked_tx) = (http.clone(), addr.clone(), acked_tx.clone());
        tasks.spawn(async move {
            let mut acked = 0u64;
            for seq in 1..=100_000u64 {
                let pack = Pack(vec![Record {
                    n: Some("t".into()),
                    v: Some(1.0),
                    ..Default::default()
                }]);
                let body = jwe::encrypt(&key, &urn, Some(seq), None, &pack.to_json(), &mut OsRng);
                match http
                    .put(format!("http://{addr}/.well-known/tte1/s/{urn}/v"))
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => {
                        acked = seq;
                        acked_tx.send_modify(|n| *n += 1);
                    }
                    _ => break,
                }
            }
            (urn, acked)
        });
    }
    // Only the devices hold the sender now: if all of them stop, the wait below ends.
    drop(acked_tx);
    // Killed mid-stream: once the devices together have had KILL_AFTER updates acknowledged
    // (each device streams up to 100 000, so all are still sending).
    const KILL_AFTER: u64 = 200;
    tokio::time::timeout(
        Duration::from_secs(60),
        acked_rx.wait_for(|n| *n >= KILL_AFTER),
    )
    .await
    .expect("the Controller did not acknowledge enough updates")
    .expect("every device stopped before enough updates were acknowledged");
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let mut acked = Vec::new();
    while let Some(r) = tasks.join_next().await {
        acked.push(r.unwrap());
    }
    assert!(
        acked.iter().any(|(_, n)| *n > 0),
        "no update was acknowledged before the kill"
    );

    let store = SqliteControllerStore::open(&db).unwrap();
    let list: Vec<DeviceInfo> = store.devices().unwrap();
    for (urn, n) in acked {
        let d = list.iter().find(|d| d.urn == urn.as_str()).unwrap();
        // Every acknowledged update is stored; at most one more (committed, reply lost) may be.
        assert!(
            d.last_seq.unwrap_or(0) >= n && d.readings >= n,
            "{urn}: acked {n}, stored {d:?}"
        );
        assert!(d.readings <= n + 1, "{urn}: acked {n}, stored {d:?}");
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}
