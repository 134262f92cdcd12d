//! Load-test fixture: runs a Transfer Agent and a Controller on 127.0.0.1, enrolls `--devices`
//! devices through the real HTTP APIs, writes the request lists the `wrk` scripts in
//! `crates/tte-server/bench/` replay, then serves until Ctrl-C.
//!
//! ```text
//! cargo run --release -p tte-server --example tte_load_stack -- --dir /tmp/tte-load
//! wrk -t2 -c32 -d10s --latency -s crates/tte-server/bench/fetch.lua  http://127.0.0.1:PORT_TA  -- /tmp/tte-load/fetch.txt
//! wrk -t2 -c32 -d10s --latency -s crates/tte-server/bench/update.lua http://127.0.0.1:PORT_CTL -- /tmp/tte-load/updates.txt 2
//! ```
//!
//! Sensor updates must carry fresh counters (replays are refused), so `updates.txt` holds
//! `--updates` pre-sealed JWEs, round-robin over the devices with increasing `seq`; the wrk
//! script gives each thread its own devices so no device's updates overtake each other.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use serde_json::json;
use tte::senml::{Pack, Record};
use tte_server::controller::{Controller, ControllerRates};
use tte_server::device::DeviceClient;
use tte_server::store::sqlite::{SqliteControllerStore, SqliteTaStore};
use tte_server::ta::TransferAgent;
use xtt_ratelimit::RateLimits;

/// Runs the TTE services for load tests.
#[derive(Parser)]
struct Args {
    /// Working directory (databases, device files, request lists).
    #[arg(long)]
    dir: PathBuf,
    /// Devices to enroll.
    #[arg(long, default_value_t = 128)]
    devices: u32,
    /// Sensor updates to pre-seal.
    #[arg(long, default_value_t = 200_000)]
    updates: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    std::fs::create_dir_all(a.dir.join("devices"))?;
    let token = "load-test-manufacturer-token";
    let ta = TransferAgent::new(
        Arc::new(SqliteTaStore::open(&a.dir.join("ta.sqlite"))?),
        tte::Key256::generate(&mut rand_core::OsRng),
        token,
    );
    let ctl = Controller::new(
        Arc::new(SqliteControllerStore::open(
            &a.dir.join("controller.sqlite"),
        )?),
        "operator-token-load",
    )
    // wrk sends everything from 127.0.0.1: the per-client rates would measure the limiter.
    .with_rates(ControllerRates {
        adds: RateLimits::per_client(1e9, 1e9),
        updates: RateLimits::per_client(1e9, 1e9),
    });
    let any = "127.0.0.1:0".parse()?;
    let (ta_addr, _t1) = tte_server::http::serve(any, ta.router()).await?;
    let (ctl_addr, _t2) = tte_server::http::serve(any, ctl.router()).await?;
    let (ta_url, ctl_url) = (format!("http://{ta_addr}"), format!("http://{ctl_addr}"));
    xtt_tls::install_ring_provider();
    let http = reqwest::Client::new();
    let mut clients = Vec::new();
    for _ in 0..a.devices {
        let d = tte_server::manufacture::manufacture_one(
            &http,
            &ta_url,
            &ta_url,
            token,
            &a.dir.join("devices"),
        )
        .await?;
        let r = http
            .put(format!("{ta_url}/.well-known/tte1/d/{}/c", d.urn))
            .json(&json!({"otp": d.otp, "conturl": ctl_url}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "bind: {}", r.status());
        let r = http
            .put(format!("{ctl_url}/.well-known/tte1/c/{}/k", d.urn))
            .json(&json!({"devSecret": d.dev_secret}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "add: {}", r.status());
        clients.push(DeviceClient::new(d)?);
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(a.dir.join("fetch.txt"))?);
    for c in &clients {
        writeln!(f, "/.well-known/tte1/{}/c", c.secrets().urn)?;
    }
    f.flush()?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(a.dir.join("updates.txt"))?);
    let n = clients.len();
    for i in 0..a.updates as usize {
        let c = &clients[i % n];
        let urn = &c.secrets().urn;
        let pack = Pack(vec![
            Record {
                bn: Some(format!("{urn}:")),
                n: Some("temp".into()),
                u: Some("Cel".into()),
                v: Some(20.0 + (i % 10) as f64),
                ..Default::default()
            },
            Record {
                n: Some("hum".into()),
                u: Some("%RH".into()),
                v: Some(40.0),
                ..Default::default()
            },
        ]);
        let seq = 1 + (i / n) as u64;
        writeln!(
            f,
            "{}\t/.well-known/tte1/s/{urn}/v\t{}",
            i % n,
            c.seal_update(&pack, seq)
        )?;
    }
    f.flush()?;
    println!(
        "TA {ta_url}\nController {ctl_url}\nrequest lists in {}",
        a.dir.display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
