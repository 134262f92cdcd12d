//! Session load without the `xtt` command: an in-process server (Echo application, its own
//! 2-thread runtime, fresh PKI and registry) with `--clients` registered identities, and the
//! load generator on another 2-thread runtime, both on 127.0.0.1.
//!
//! ```text
//! cargo run --release -p xtt-server --example session_loadgen -- --mode handshakes --transport tcp --clients 16 --count 2000
//! cargo run --release -p xtt-server --example session_loadgen -- --mode records --transport udp --clients 4 --count 20000 --payload 1024 --window 32
//! ```

use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use xtt_ecdaa::Issuer;
use xtt_registry::{Durability, SqliteRegistry};
use xtt_server::bench::{
    register_session_devices, run_sessions, SessionBenchConfig, SessionMode, ThrowawayPki,
};
use xtt_server::{
    add_group, Echo, ServerConfig, ServerKeys, SessionClientOptions, SessionOptions, XttServer,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut mode = SessionMode::Handshakes;
    let mut udp = false;
    let mut clients = 16usize;
    let mut count = 2000u64;
    let mut payload_len = 1024usize;
    let mut window = 32usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mode" => {
                mode = match args.next().as_deref() {
                    Some("handshakes") => SessionMode::Handshakes,
                    Some("records") => SessionMode::Records,
                    _ => return Err("--mode handshakes|records".into()),
                }
            }
            "--transport" => udp = args.next().as_deref() == Some("udp"),
            "--clients" => clients = args.next().ok_or("--clients N")?.parse()?,
            "--count" => count = args.next().ok_or("--count N")?.parse()?,
            "--payload" => payload_len = args.next().ok_or("--payload BYTES")?.parse()?,
            "--window" => window = args.next().ok_or("--window N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let ThrowawayPki {
        root,
        server_key,
        certificate,
        ..
    } = ThrowawayPki::generate()?;
    let issuer = Issuer::generate(&mut OsRng);
    let dir = tempfile::tempdir()?;
    let registry = SqliteRegistry::open(&dir.path().join("registry.sqlite"), Durability::Normal)?;
    let (group_id, _) = add_group(
        &registry,
        &issuer.group_public_key().to_bytes(),
        b"session-loadgen",
    )?;
    let identities =
        register_session_devices(&registry, group_id, Arc::new(root.clone()), clients)?;
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        ..ServerConfig::default()
    };
    config.metrics.listen = None;
    config.data_dir = dir.path().to_path_buf();
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
    let target = server_rt.block_on(async {
        let mut server = XttServer::bind(config, keys, Arc::new(registry)).await?;
        server
            .enable_sessions(SessionOptions::new(Arc::new(Echo)))
            .await?;
        let addr = server.local_addr()?;
        tokio::spawn(server.run(std::future::pending()));
        Ok::<_, Box<dyn std::error::Error>>(addr)
    })?;
    let options = if udp {
        SessionClientOptions {
            retransmit_after: Duration::from_millis(200),
            timeout: Duration::from_millis(500),
            ..SessionClientOptions::udp()
        }
    } else {
        SessionClientOptions::tcp()
    };
    let bench_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench")
        .enable_all()
        .build()?;
    let mut report = bench_rt.block_on(run_sessions(SessionBenchConfig {
        targets: vec![target],
        mode,
        options,
        identities,
        count,
        payload_len,
        window,
    }))?;
    // This process runs the server too: its CPU time is not the generator's alone.
    report.load_generator_cpu_secs = None;
    print!("{}", report.to_text());
    println!("{}", report.to_json());
    Ok(())
}
