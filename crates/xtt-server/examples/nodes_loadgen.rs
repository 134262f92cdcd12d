//! Sessions across nodes, measured: N in-process server nodes (own 2-thread runtime, Echo
//! application) sharing a PostgreSQL database, session handshakes spread over them, then
//! hand-overs of one session between nodes. Prints handshakes/s, hand-over latency, and store
//! round trips per handshake and per hand-over (from the nodes' own counters; each store call
//! is one round trip, see xtt-registry's `a_session_take_over_costs_one_round_trip`).
//!
//! ```text
//! cargo run --release -p xtt-server --example nodes_loadgen -- --postgres URL --nodes 3 \
//!     --clients 16 --count 3000 --handovers 300 [--local]
//! ```
//! `--local`: no sharing (the single-node baseline: sessions in the node's memory only).
//! URL names an existing database the user may create tables in (a fresh one per run is best).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use xtt_ecdaa::Issuer;
use xtt_proto::record::PayloadType;
use xtt_registry::open_storage;
use xtt_registry::sessions::open_session_store;
use xtt_server::bench::{
    register_session_devices, run_sessions, SessionBenchConfig, SessionMode, ThrowawayPki,
};
use xtt_server::sessions::shared::{SharedOptions, StorageKey};
use xtt_server::{
    add_group, Echo, ServerConfig, ServerHandle, ServerKeys, SessionClient, SessionClientOptions,
    SessionOptions, XttServer,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut nodes = 3usize;
    let mut clients = 16usize;
    let mut count = 3000u64;
    let mut handovers = 300usize;
    let mut local = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--postgres" => url = Some(args.next().ok_or("--postgres URL")?),
            "--nodes" => nodes = args.next().ok_or("--nodes N")?.parse()?,
            "--clients" => clients = args.next().ok_or("--clients N")?.parse()?,
            "--count" => count = args.next().ok_or("--count N")?.parse()?,
            "--handovers" => handovers = args.next().ok_or("--handovers N")?.parse()?,
            "--local" => local = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let url = url.ok_or("--postgres URL is required")?;
    let ThrowawayPki {
        root,
        server_key,
        certificate,
        ..
    } = ThrowawayPki::generate()?;
    let issuer = Issuer::generate(&mut OsRng);
    let registry = open_storage(&url)?;
    let (group_id, _) = add_group(
        &*registry,
        &issuer.group_public_key().to_bytes(),
        b"nodes-loadgen",
    )?;
    let identities =
        register_session_devices(&*registry, group_id, Arc::new(root.clone()), clients.max(1))?;
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let storage_key = Arc::new(StorageKey::from_secret(&secret));
    let mut cookie = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *cookie);
    let dir = tempfile::tempdir()?;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let mut started: Vec<(std::net::SocketAddr, ServerHandle)> = Vec::new();
    for _ in 0..nodes.max(1) {
        let reg = open_storage(&url)?;
        let store = if local {
            None
        } else {
            Some(open_session_store(&url, 8)?)
        };
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            ..ServerConfig::default()
        };
        config.metrics.listen = None;
        config.data_dir = dir.path().to_path_buf();
        let keys = ServerKeys {
            certificate: certificate.clone(),
            signing_key: server_key.clone(),
            cookie_secret: cookie.clone(),
        };
        let key = storage_key.clone();
        let node = server_rt.block_on(async move {
            let mut server = XttServer::bind(config, keys, reg).await?;
            let mut options = SessionOptions::new(Arc::new(Echo));
            if let Some(store) = store {
                options.shared = Some(SharedOptions::new(store, key));
            }
            server.enable_sessions(options).await?;
            let addr = server.local_addr()?;
            let handle = server.handle();
            tokio::spawn(server.run(std::future::pending()));
            Ok::<_, Box<dyn std::error::Error>>((addr, handle))
        })?;
        started.push(node);
    }
    let stats = |h: &ServerHandle| {
        h.outbox()
            .and_then(|o| o.shared_stats())
            .unwrap_or_default()
    };
    let calls = |s: &[(std::net::SocketAddr, ServerHandle)]| -> u64 {
        s.iter().map(|(_, h)| stats(h).store_calls).sum()
    };
    let bench_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;

    // 1. Session handshakes, clients spread evenly over the nodes.
    let before = calls(&started);
    let t0 = Instant::now();
    let per_node = identities.len().div_ceil(started.len());
    let reports = bench_rt.block_on(async {
        let mut runs = tokio::task::JoinSet::new();
        for (i, chunk) in identities.chunks(per_node).enumerate() {
            let target = started[i % started.len()].0;
            let share = count * chunk.len() as u64 / identities.len() as u64;
            runs.spawn(run_sessions(SessionBenchConfig {
                targets: vec![target],
                mode: SessionMode::Handshakes,
                options: SessionClientOptions::tcp(),
                identities: chunk.to_vec(),
                count: share,
                payload_len: 0,
                window: 1,
            }));
        }
        let mut out = Vec::new();
        while let Some(r) = runs.join_next().await {
            out.push(r);
        }
        out
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let mut ok = 0u64;
    let mut failed = 0u64;
    for r in reports {
        let r = r??;
        ok += r.handshakes_ok;
        failed += r.handshakes_failed;
    }
    let hs_calls = calls(&started) - before;
    println!(
        "nodes {} ({}), clients {clients}: {ok} session handshakes ({failed} failed) in {elapsed:.2} s = {:.0}/s; store round trips per handshake {:.2}",
        started.len(),
        if local { "local sessions" } else { "shared on PostgreSQL" },
        ok as f64 / elapsed,
        hs_calls as f64 / ok.max(1) as f64
    );

    // 2. Hand-overs: one session, moved to the next node before each record.
    if !local && started.len() > 1 && handovers > 0 {
        let addrs: Vec<_> = started.iter().map(|(a, _)| *a).collect();
        let before = calls(&started);
        let lat = bench_rt.block_on(async {
            let mut dev = SessionClient::connect(
                addrs[0],
                identities[0].clone(),
                SessionClientOptions::tcp(),
                None,
            )
            .await?;
            dev.send(PayloadType::QueueProtocol, b"warm").await?;
            dev.recv().await?;
            let mut lat = Vec::with_capacity(handovers);
            for i in 0..handovers {
                dev.reconnect_to(addrs[(i + 1) % addrs.len()]).await?;
                let t = Instant::now();
                dev.send(PayloadType::QueueProtocol, b"moved").await?;
                dev.recv().await?;
                lat.push(t.elapsed());
            }
            // The same round trip without a hand-over, for comparison.
            let mut steady = Vec::with_capacity(handovers);
            for _ in 0..handovers {
                let t = Instant::now();
                dev.send(PayloadType::QueueProtocol, b"steady").await?;
                dev.recv().await?;
                steady.push(t.elapsed());
            }
            Ok::<_, Box<dyn std::error::Error>>((lat, steady))
        })?;
        let (mut lat, mut steady) = lat;
        let ho_calls = calls(&started) - before;
        let exact: u64 = started.iter().map(|(_, h)| stats(h).taken_exact).sum();
        let crash: u64 = started
            .iter()
            .map(|(_, h)| stats(h).taken_after_crash)
            .sum();
        lat.sort();
        steady.sort();
        let pct = |v: &[Duration], percent: usize| {
            v.get(v.len().saturating_sub(1) * percent / 100)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "hand-overs: {handovers} ({exact} exact, {crash} after crash); record round trip with hand-over p50 {:.2} ms p90 {:.2} ms p99 {:.2} ms; without p50 {:.2} ms; store round trips per hand-over {:.2} (includes the extension every K records)",
            pct(&lat, 50),
            pct(&lat, 90),
            pct(&lat, 99),
            pct(&steady, 50),
            ho_calls as f64 / handovers as f64
        );
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average: {}",
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
    }
    // The blocking PostgreSQL clients are dropped with the process, not on a runtime worker.
    std::process::exit(0);
}
