//! Load generation without the `xtt` command, for measuring the server library.
//!
//! ```text
//! # Our server (in this process, its own runtime) with a fresh PKI, group and N devices:
//! cargo run --release -p xtt-server --example loadgen -- [--batch] [--devices 32] [--handshakes 3000]
//! # --prepare: the devices prepare what needs nothing from the server before the timed phase
//! # Any XTT server (e.g. the C reference), devices sharing one member credential from a C-style
//! # client directory (daa_secretkey.bin, daa_cred.bin, daa_gpk.bin, basename.bin, root_cert.bin):
//! cargo run --release -p xtt-server --example loadgen -- --target 127.0.0.1:4444 --client-dir DIR
//! ```
//!
//! Prints the report as text and JSON and writes the SVG histogram to `--svg PATH`
//! (default `loadgen.svg`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use xtt_ecdaa::{Issuer, Member};
use xtt_proto::cert::RootCertificate;
use xtt_proto::SuiteSpec;
use xtt_registry::{Durability, SqliteRegistry};
use xtt_server::bench::{cpu_secs_in_stat, enroll_devices, run, BenchConfig, ThrowawayPki};
use xtt_server::{add_group, ServerConfig, ServerKeys, XttServer};

const BASENAME: &[u8] = b"loadgen-basename";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut batch = false;
    let mut devices = 32usize;
    let mut handshakes = 3000u64;
    let mut target = None;
    let mut client_dir = None;
    let mut svg = PathBuf::from("loadgen.svg");
    let mut workers = 0usize;
    let mut durability = Durability::Full;
    let mut prepare = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batch" => batch = true,
            "--devices" => devices = args.next().ok_or("--devices N")?.parse()?,
            "--handshakes" => handshakes = args.next().ok_or("--handshakes N")?.parse()?,
            "--target" => target = Some(args.next().ok_or("--target ADDR")?.parse()?),
            "--client-dir" => client_dir = Some(PathBuf::from(args.next().ok_or("DIR")?)),
            "--svg" => svg = PathBuf::from(args.next().ok_or("--svg PATH")?),
            "--workers" => workers = args.next().ok_or("--workers N")?.parse()?,
            "--normal" => durability = Durability::Normal,
            "--prepare" => prepare = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let bench_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;

    let handle: Option<xtt_server::ServerHandle>;
    let (target, roots, signers, _server_rt, _dir): (_, _, Vec<Arc<Member>>, _, _) =
        if let Some(target) = target {
            let dir = client_dir.ok_or("--target needs --client-dir")?;
            let read = |f: &str| std::fs::read(dir.join(f));
            let member = Arc::new(Member::from_bytes(
                &read("daa_secretkey.bin")?,
                &read("daa_cred.bin")?,
                &read("daa_gpk.bin")?,
                &read("basename.bin")?,
            )?);
            let root = RootCertificate::decode(&read("root_cert.bin")?)?;
            let signers = (0..devices).map(|_| member.clone()).collect();
            handle = None;
            (target, root, signers, None, None)
        } else {
            let ThrowawayPki {
                root,
                server_key,
                certificate,
                ..
            } = ThrowawayPki::generate()?;
            let issuer = Issuer::generate(&mut OsRng);
            let dir = tempfile::tempdir()?;
            let registry = SqliteRegistry::open(&dir.path().join("registry.sqlite"), durability)?;
            add_group(&registry, &issuer.group_public_key().to_bytes(), BASENAME)?;
            let mut config = ServerConfig {
                listen: "127.0.0.1:0".parse()?,
                ..ServerConfig::default()
            };
            config.metrics.listen = None;
            config.data_dir = dir.path().to_path_buf();
            config.daa.batch = batch;
            config.daa.workers = workers;
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(&mut *secret);
            let keys = ServerKeys {
                certificate,
                signing_key: server_key,
                cookie_secret: secret,
            };
            let server_rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("server")
                .enable_all()
                .build()?;
            let server = server_rt.block_on(XttServer::bind(config, keys, Arc::new(registry)))?;
            let addr = server.local_addr()?;
            handle = Some(server.handle());
            server_rt.spawn(server.run(std::future::pending()));
            let signers = enroll_devices(&issuer, BASENAME, devices)?;
            (addr, root, signers, Some(server_rt), Some(dir))
        };

    let config = BenchConfig {
        targets: vec![target],
        suite: SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        roots: Arc::new(roots),
        devices: signers,
        handshakes,
        timeout: Duration::from_secs(10),
        prepare,
    };
    let cpu_before = thread_cpu_secs();
    let step = (handshakes / 10).max(1);
    let mut report = bench_rt.block_on(run(config, move |p| {
        if p.done % step == 0 {
            eprintln!("{}/{} ({} failed)", p.done, p.total, p.failed);
        }
    }))?;
    let cpu_after = thread_cpu_secs();
    let used = |k: &str| cpu_after.get(k).unwrap_or(&0.0) - cpu_before.get(k).unwrap_or(&0.0);
    // The process's CPU time includes an in-process server's: the generator's is its threads'.
    report.load_generator_cpu_secs = Some(used("bench"));
    let ok = report.handshakes_ok.max(1) as f64;
    println!(
        "CPU per handshake: server {:.2} ms, load generator {:.2} ms (thread CPU time, this process)",
        used("server") / ok * 1e3,
        used("bench") / ok * 1e3
    );
    if let Some(h) = &handle {
        let text = h.metrics().render();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        for m in ["xtt_daa_batch_size", "xtt_registry_commit_batch_size"] {
            let n = value(&format!("{m}_count "));
            println!(
                "{m}: mean {:.2} over {n} calls",
                value(&format!("{m}_sum ")) / n.max(1.0)
            );
        }
    }
    println!("{}", report.to_text());
    println!("{}", report.to_json());
    std::fs::write(&svg, report.to_svg_histogram())?;
    Ok(())
}

/// CPU seconds by thread role, from /proc/self/task/*/stat (utime + stime, at 100 ticks/s, the
/// Linux USER_HZ): "bench" for the load generator's runtime, "prepare" for its preparation
/// before the run (`--prepare`), "server" for everything else.
/// The machine is shared, so wall-clock rates depend on the neighbours; CPU time per handshake
/// does not.
fn thread_cpu_secs() -> std::collections::HashMap<&'static str, f64> {
    let mut out = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ..."; comm may contain spaces, so it ends at the last ')'.
        let comm = stat
            .rsplit_once(')')
            .and_then(|(head, _)| head.split_once('('))
            .map_or("", |(_, c)| c);
        let secs = cpu_secs_in_stat(&stat).unwrap_or(0.0);
        // comm holds at most 15 bytes: "bench-prepare-1" fits, "bench-prepare-10" does not.
        let role = if comm.starts_with("bench-prep") {
            "prepare"
        } else if comm.starts_with("bench") {
            "bench"
        } else {
            "server"
        };
        *out.entry(role).or_insert(0.0) += secs;
    }
    out
}
