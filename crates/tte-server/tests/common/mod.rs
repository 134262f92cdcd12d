//! Runs a Transfer Agent and a Controller in-process on 127.0.0.1 (port 0), over real sockets
//! and real SQLite files in a temporary directory, and the enrollment steps the tests take
//! against them (manufacture, bind, add, enroll, the operator's views), each over real HTTP.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tte::api::DeviceInfo;
use tte::senml::{Pack, Record};
use tte::{ContUrl, DevUrn, Key256};
use tte_server::cli::TteCommand;
use tte_server::controller::{Controller, ControllerRates};
use tte_server::device::{DeviceClient, DeviceSecrets, Enrollment};
use tte_server::http::serve_until;
use tte_server::manufacture;
use tte_server::store::sqlite::{SqliteControllerStore, SqliteTaStore};
use tte_server::store::{ControllerStore, TaStore};
use tte_server::ta::TransferAgent;

pub const MANUFACTURER_TOKEN: &str = "manufacturer-token-for-tests";
pub const OPERATOR_TOKEN: &str = "operator-token-for-tests";

pub struct Stack {
    pub ta: String,
    pub ctl: String,
    pub dir: tempfile::TempDir,
    pub otp_key: Key256,
    /// A plain HTTP client for the steps a person or a browser would take.
    pub http: reqwest::Client,
    ta_service: Service,
    ctl_service: Service,
    rates: ControllerRates,
}

/// One service served on a socket until stopped (or dropped).
struct Service {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Service {
    /// Serves `app` on `addr` (port 0: any free port).
    async fn start(addr: SocketAddr, app: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_until(listener, app, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Shuts the service down and waits until it has (its socket closed, its store dropped).
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.ta_service.task.abort();
        self.ctl_service.task.abort();
    }
}

/// A plain HTTP client (rustls needs its crypto provider before any reqwest client is built).
/// Every request, WebDriver calls included, fails after a generous minute instead of hanging
/// the run.
pub fn http() -> reqwest::Client {
    xtt_tls::install_ring_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// How long an external peer (python3, zbarimg) may run before the test kills it and fails.
pub const PEER_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` with `stdin` as its input (none: /dev/null) and collects its output, like
/// `Command::output`, but kills it and fails the test when it has not finished within
/// `limit`. An error starting it (e.g. not installed) is returned.
pub fn output_within(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limit: Duration,
) -> std::io::Result<Output> {
    use std::io::{Read as _, Write as _};
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Input and output go through threads, so that a peer that neither reads nor exits cannot
    // block the test past the limit.
    let writer = child.stdin.take().map(|mut pipe| {
        let input = stdin.unwrap_or_default().to_vec();
        std::thread::spawn(move || {
            // A peer that exits without reading all of it closes the pipe: its status and
            // output tell what happened.
            let _ = pipe.write_all(&input);
        })
    });
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{:?} did not finish within {limit:?} and was killed",
                cmd.get_program()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        w.join().unwrap();
    }
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

/// Both services on plain SQLite stores in a new temporary directory.
pub async fn start() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let ta_store = SqliteTaStore::open(&dir.path().join("ta.sqlite")).unwrap();
    let ctl_store = SqliteControllerStore::open(&dir.path().join("controller.sqlite")).unwrap();
    start_with(dir, Arc::new(ta_store), Arc::new(ctl_store)).await
}

/// Both services on the given stores; `dir` is the directory they (and `out()`) live in.
pub async fn start_with(
    dir: tempfile::TempDir,
    ta_store: Arc<dyn TaStore>,
    ctl_store: Arc<dyn ControllerStore>,
) -> Stack {
    start_configured(dir, ta_store, ctl_store, ControllerRates::default()).await
}

/// Both services on plain SQLite stores, the Controller with other request `rates`.
pub async fn start_rated(rates: ControllerRates) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let ta_store = SqliteTaStore::open(&dir.path().join("ta.sqlite")).unwrap();
    let ctl_store = SqliteControllerStore::open(&dir.path().join("controller.sqlite")).unwrap();
    start_configured(dir, Arc::new(ta_store), Arc::new(ctl_store), rates).await
}

async fn start_configured(
    dir: tempfile::TempDir,
    ta_store: Arc<dyn TaStore>,
    ctl_store: Arc<dyn ControllerStore>,
    rates: ControllerRates,
) -> Stack {
    std::fs::create_dir_all(dir.path().join("devices")).unwrap();
    let otp_key = Key256::generate(&mut rand_core::OsRng);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let ta_service = Service::start(any, ta_app(ta_store, &otp_key)).await;
    let ctl_service = Service::start(any, ctl_app(ctl_store, rates)).await;
    Stack {
        ta: format!("http://{}", ta_service.addr),
        ctl: format!("http://{}", ctl_service.addr),
        dir,
        otp_key,
        http: http(),
        ta_service,
        ctl_service,
        rates,
    }
}

fn ta_app(store: Arc<dyn TaStore>, otp_key: &Key256) -> axum::Router {
    TransferAgent::new(store, otp_key.clone(), MANUFACTURER_TOKEN).router()
}

fn ctl_app(store: Arc<dyn ControllerStore>, rates: ControllerRates) -> axum::Router {
    Controller::new(store, OPERATOR_TOKEN)
        .with_rates(rates)
        .router()
}

impl Stack {
    /// Stops both services (each waits until its socket is closed and its store dropped), as a
    /// process exit would.
    pub async fn stop(&mut self) {
        self.ta_service.stop().await;
        self.ctl_service.stop().await;
    }

    /// Starts a new Transfer Agent (same OTP key) on `store`, at the address the stopped one
    /// had, so the URLs in QR codes and labels still reach it.
    pub async fn start_ta(&mut self, store: Arc<dyn TaStore>) {
        self.ta_service = Service::start(self.ta_service.addr, ta_app(store, &self.otp_key)).await;
        // A new client: no pooled connection to the stopped service.
        self.http = http();
    }

    /// Starts a new Controller on `store`, at the address the stopped one had (the ContURL
    /// devices were bound to).
    pub async fn start_controller(&mut self, store: Arc<dyn ControllerStore>) {
        let app = ctl_app(store, self.rates);
        self.ctl_service = Service::start(self.ctl_service.addr, app).await;
        self.http = http();
    }

    /// Stops the Controller only.
    pub async fn stop_controller(&mut self) {
        self.ctl_service.stop().await;
    }

    pub fn ta_db(&self) -> PathBuf {
        self.dir.path().join("ta.sqlite")
    }
    pub fn ctl_db(&self) -> PathBuf {
        self.dir.path().join("controller.sqlite")
    }
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("devices")
    }

    /// One device registered at the TA by the manufacturer; its files are written to `out()`.
    pub async fn manufacture(&self) -> DeviceSecrets {
        manufacture::manufacture_one(
            &self.http,
            &self.ta,
            &self.ta,
            MANUFACTURER_TOKEN,
            &self.out(),
        )
        .await
        .unwrap()
    }

    /// Where the introducer binds a device to its Controller.
    pub fn bind_url(&self, urn: &DevUrn) -> String {
        format!("{}/.well-known/tte1/d/{urn}/c", self.ta)
    }

    /// The introducer's bind at the TA: `otp` and the Controller URL `conturl`.
    pub async fn bind(&self, urn: &DevUrn, otp: &str, conturl: &str) -> reqwest::Response {
        self.http
            .put(self.bind_url(urn))
            .json(&json!({"otp": otp, "conturl": conturl}))
            .send()
            .await
            .unwrap()
    }

    /// Where the introducer adds a device (its DevSecret) at the Controller.
    pub fn add_url(&self, urn: &DevUrn) -> String {
        format!("{}/.well-known/tte1/c/{urn}/k", self.ctl)
    }

    /// The introducer's add at the Controller: the DevSecret (base64url) and an optional label.
    pub async fn add(
        &self,
        urn: &DevUrn,
        dev_secret: &str,
        label: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({"devSecret": dev_secret});
        if let Some(label) = label {
            body["label"] = label.into();
        }
        self.http
            .put(self.add_url(urn))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The operator removing a device (with the operator token unless `token` says otherwise).
    pub async fn remove(&self, urn: &DevUrn, token: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}/devices/{urn}", self.ctl))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The operator's list of devices.
    pub async fn devices(&self) -> Vec<DeviceInfo> {
        self.operator_get("devices").await
    }

    /// The operator's view of one device's readings.
    pub async fn readings<T: serde::de::DeserializeOwned>(&self, urn: &DevUrn) -> T {
        self.operator_get(&format!("devices/{urn}/readings")).await
    }

    async fn operator_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(format!("{}/{path}", self.ctl))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The device's first boot when an HTTP Controller is bound: the Controller it was given.
pub async fn enrolled(client: &DeviceClient) -> ContUrl {
    match client.enroll(None).await.unwrap() {
        Enrollment::Controller(cont) => cont,
        other => panic!("not bound to an HTTP Controller: {other:?}"),
    }
}

/// One SenML temperature reading named under `urn`.
pub fn one_reading(urn: &DevUrn, v: f64) -> Pack {
    Pack(vec![Record {
        bn: Some(format!("{urn}:")),
        n: Some("temp".into()),
        u: Some("Cel".into()),
        v: Some(v),
        ..Default::default()
    }])
}

/// The status and the JSON error code of a refused request.
pub async fn error_code(r: reqwest::Response) -> (StatusCode, String) {
    let st = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        st,
        v["error"].as_str().unwrap_or("<no json error>").to_owned(),
    )
}

/// Asserts that the response `$r` is a refusal with status `$status` and JSON error `$code`
/// (a macro, so that a failure names the line of the test).
#[allow(unused_macros)]
macro_rules! assert_refused {
    ($r:expr, $status:expr, $code:expr) => {
        assert_eq!(
            $crate::common::error_code($r).await,
            ($status, String::from($code))
        )
    };
}
#[allow(unused_imports)]
pub(crate) use assert_refused;

/// The `tte` subcommands as the project CLI mounts them.
#[derive(Parser)]
pub struct Xtt {
    #[command(subcommand)]
    pub tte: TteCommand,
}

/// `xtt ARGS…` parsed into its `tte` subcommand.
pub fn parse(args: &[&str]) -> TteCommand {
    let mut v = vec!["xtt"];
    v.extend_from_slice(args);
    Xtt::try_parse_from(v).unwrap().tte
}

/// `xtt tte manufacture --ta TA --token … --out OUT EXTRA…`, as the factory runs it.
pub async fn manufacture_cli(ta: &str, out: &Path, extra: &[&str]) {
    let out = out.to_str().unwrap();
    let mut args = vec!["manufacture", "--ta", ta, "--token", MANUFACTURER_TOKEN];
    args.extend_from_slice(&["--out", out]);
    args.extend_from_slice(extra);
    tte_server::cli::run(parse(&args)).await.unwrap();
}

/// The device secrets files (`*.json`) `manufacture` wrote into `dir`, sorted.
pub fn secrets_files(dir: &Path) -> Vec<PathBuf> {
    let mut jsons: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    jsons.sort();
    jsons
}

/// A device secrets file, as the device reads it.
pub fn read_secrets(path: &Path) -> DeviceSecrets {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}
