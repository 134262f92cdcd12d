//! Same-run comparison of XTT sessions with TLS 1.3 (rustls on ring) over loopback TCP, for
//! BENCHMARKS.md (issue 4): record throughput with the same AEAD and record size, and bytes on
//! the wire for one handshake each.
//!
//! - XTT: our server ([`XttServer`], sessions enabled, [`Echo`] application) and
//!   [`bench::run_sessions`] (records mode, [`xtt_server::SessionClient`]), suite 3
//!   (AES-256-GCM) or 1 (ChaCha20-Poly1305).
//! - TLS: a tokio-rustls echo server and client, TLS 1.3 only, X25519, mutual authentication with
//!   ECDSA P-256 leaf certificates (no intermediates sent), TLS13_AES_256_GCM_SHA384 or
//!   TLS13_CHACHA20_POLY1305_SHA256, no session tickets.
//!
//! Both servers run on one 2-thread runtime, both clients on another, so each side of each
//! protocol gets the same threads. Each record is one write of RECORD_SIZE bytes (one TLS record,
//! one XTT record) echoed as one record; clients keep WINDOW records in flight. The two protocols
//! alternate for ROUNDS rounds (default 15); the table gives the median round of each, and a
//! line below it the spread of the per-round ratios: with one client and 16 KiB records both
//! protocols run at the AEAD's speed, and single rounds land ± 20 % either way.
//!
//! Handshake bytes are counted by a TCP relay between client and server (every byte both ways,
//! TCP payload only), from connect to the end of the handshake on both sides.
//!
//! ```text
//! cargo run --release -p xtt-server --example session_vs_tls -- --aead aes --record-size 1024
//! cargo run --release -p xtt-server --example session_vs_tls -- --aead chacha --record-size 16384 --records 5000
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xtt_ecdaa::Issuer;
use xtt_proto::session::SessionClientConfig;
use xtt_proto::SuiteSpec;
use xtt_registry::{Durability, SqliteRegistry};
use xtt_server::bench::{
    self, register_session_devices, SessionBenchConfig, SessionMode, ThrowawayPki,
};
use xtt_server::{
    add_group, Echo, ServerConfig, ServerKeys, SessionClient, SessionClientOptions, SessionOptions,
    XttServer,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug)]
struct Args {
    aes: bool,
    record_size: usize,
    records: u64,
    clients: usize,
    window: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        aes: true,
        record_size: 1024,
        records: 20_000,
        clients: 1,
        window: 32,
        rounds: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--aead" => {
                a.aes = match value()?.as_str() {
                    "aes" => true,
                    "chacha" => false,
                    other => return Err(format!("--aead aes|chacha, not {other}").into()),
                }
            }
            "--record-size" => a.record_size = value()?.parse()?,
            "--records" => a.records = value()?.parse()?,
            "--clients" => a.clients = value()?.parse()?,
            "--window" => a.window = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    // Above 16 KiB TLS splits a write into several records: no longer the same record size.
    if a.record_size == 0 || a.record_size > 16_384 {
        return Err("--record-size must be in 1..=16384 (TLS's largest record)".into());
    }
    if a.clients == 0 || a.window == 0 || a.rounds == 0 || a.records == 0 {
        return Err("--clients, --window, --rounds and --records must be positive".into());
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// XTT side: a fresh PKI, a registry with `clients` identities, our server with Echo.

async fn start_xtt(
    clients: usize,
    dir: &std::path::Path,
) -> Result<(SocketAddr, Vec<SessionClientConfig>), BoxError> {
    let ThrowawayPki {
        root,
        server_key,
        certificate,
        ..
    } = ThrowawayPki::generate()?;
    let issuer = Issuer::generate(&mut OsRng);
    let registry = SqliteRegistry::open(&dir.join("registry.sqlite"), Durability::Normal)?;
    let (group_id, _) = add_group(
        &registry,
        &issuer.group_public_key().to_bytes(),
        b"session-vs-tls",
    )?;
    let identities =
        register_session_devices(&registry, group_id, Arc::new(root.clone()), clients)?;
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.to_path_buf(),
        ..ServerConfig::default()
    };
    config.metrics.listen = None;
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *secret);
    let keys = ServerKeys {
        certificate,
        signing_key: server_key,
        cookie_secret: secret,
    };
    let mut server = XttServer::bind(config, keys, Arc::new(registry)).await?;
    let mut options = SessionOptions::new(Arc::new(Echo));
    options.udp = false;
    server.enable_sessions(options).await?;
    let addr = server.local_addr()?;
    tokio::spawn(server.run(std::future::pending()));
    Ok((addr, identities))
}

// ---------------------------------------------------------------------------------------------
// TLS side: a CA (never sent), ECDSA P-256 leaves for server and client, rustls on ring.

struct Tls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn tls_configs(aes: bool) -> Result<Tls, BoxError> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer as CertIssuer, KeyPair};
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = CertIssuer::new(ca_params, ca_key);
    let leaf = |name: &str| -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), BoxError> {
        let key = KeyPair::generate_for(alg)?;
        let cert = CertificateParams::new(vec![name.to_string()])?.signed_by(&key, &ca)?;
        Ok((
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    };
    let (server_cert, server_key) = leaf("localhost")?;
    let (client_cert, client_key) = leaf("device.invalid")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone())?;
    let roots = Arc::new(roots);

    let ring = rustls::crypto::ring::default_provider();
    let suite = if aes {
        rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384
    } else {
        rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256
    };
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        kx_groups: vec![rustls::crypto::ring::kx_group::X25519],
        ..ring
    });
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_cert], server_key)?;
    server.send_tls13_tickets = 0;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![client_cert], client_key)?;
    client.resumption = rustls::client::Resumption::disabled();
    Ok(Tls {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The TLS echo server: every RECORD_SIZE bytes read are written back as one record.
async fn start_tls_echo(
    config: Arc<rustls::ServerConfig>,
    record_size: usize,
) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; record_size];
                while tls.read_exact(&mut buf).await.is_ok() {
                    if tls.write_all(&buf).await.is_err() || tls.flush().await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn tls_connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    Ok(tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?)
}

/// Records through TLS: every client connected first (not timed), then all send `records`
/// records, `window` at a time, reading the echoes back. Returns (records echoed, seconds).
async fn tls_records(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    a: Args,
) -> Result<(u64, f64), BoxError> {
    let mut streams = Vec::new();
    for _ in 0..a.clients {
        streams.push(tls_connect(config.clone(), addr).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut s in streams {
        tasks.spawn(async move {
            let payload = vec![0x5au8; a.record_size];
            let mut back = vec![0u8; a.record_size];
            let (mut done, window) = (0u64, a.window as u64);
            while done < a.records {
                let burst = window.min(a.records - done);
                for _ in 0..burst {
                    s.write_all(&payload).await?;
                }
                s.flush().await?;
                for _ in 0..burst {
                    s.read_exact(&mut back).await?;
                }
                done += burst;
            }
            Ok::<u64, std::io::Error>(done)
        });
    }
    let mut echoed = 0;
    while let Some(r) = tasks.join_next().await {
        echoed += r??;
    }
    Ok((echoed, started.elapsed().as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------
// Handshake bytes: a relay that counts what crosses it.

/// Relays one connection to `upstream`; resolves to (client → server, server → client) bytes
/// once both directions have ended.
async fn counting_relay(
    upstream: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<(u64, u64)>), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return (0, 0);
        };
        let Ok(server) = TcpStream::connect(upstream).await else {
            return (0, 0);
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move {
            let n = tokio::io::copy(&mut cr, &mut sw).await.unwrap_or(0);
            let _ = sw.shutdown().await;
            n
        });
        let down = tokio::spawn(async move {
            let n = tokio::io::copy(&mut sr, &mut cw).await.unwrap_or(0);
            let _ = cw.shutdown().await;
            n
        });
        (up.await.unwrap_or(0), down.await.unwrap_or(0))
    });
    Ok((addr, task))
}

async fn xtt_handshake_bytes(
    server: SocketAddr,
    identity: SessionClientConfig,
    options: SessionClientOptions,
) -> Result<(u64, u64), BoxError> {
    let (relay, counts) = counting_relay(server).await?;
    let client = SessionClient::connect(relay, identity, options, None).await?;
    drop(client);
    Ok(tokio::time::timeout(Duration::from_secs(10), counts).await??)
}

async fn tls_handshake_bytes(
    config: Arc<rustls::ClientConfig>,
    server: SocketAddr,
) -> Result<(u64, u64), BoxError> {
    let (relay, counts) = counting_relay(server).await?;
    let stream = tls_connect(config, relay).await?;
    // The handshake is complete on the client; give the server its last flight (Finished is
    // the client's) and drop the connection without close_notify, which is not handshake.
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    Ok(tokio::time::timeout(Duration::from_secs(10), counts).await??)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), BoxError> {
    let a = parse_args()?;
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
    };
    let (server_rt, client_rt) = (runtime("servers")?, runtime("clients")?);
    let dir = tempfile::tempdir()?;
    let (xtt_addr, identities) = server_rt.block_on(start_xtt(a.clients, dir.path()))?;
    let tls = tls_configs(a.aes)?;
    let tls_addr = server_rt.block_on(start_tls_echo(tls.server.clone(), a.record_size))?;
    let suite = if a.aes {
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512
    } else {
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512
    };
    let options = SessionClientOptions {
        suite,
        ..SessionClientOptions::tcp()
    };
    let tls_suite = if a.aes {
        "TLS13_AES_256_GCM_SHA384"
    } else {
        "TLS13_CHACHA20_POLY1305_SHA256"
    };

    let (x_up, x_down) = client_rt.block_on(xtt_handshake_bytes(
        xtt_addr,
        identities[0].clone(),
        options.clone(),
    ))?;
    let (t_up, t_down) = client_rt.block_on(tls_handshake_bytes(tls.client.clone(), tls_addr))?;

    let (mut xtt_mbs, mut tls_mbs, mut xtt_rps, mut tls_rps, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        let r = client_rt.block_on(bench::run_sessions(SessionBenchConfig {
            targets: vec![xtt_addr],
            mode: SessionMode::Records,
            options: options.clone(),
            identities: identities.clone(),
            count: a.records,
            payload_len: a.record_size,
            window: a.window,
        }))?;
        let expected = a.records * a.clients as u64;
        if r.records_echoed != expected {
            return Err(format!("XTT: {} of {expected} records echoed", r.records_echoed).into());
        }
        xtt_rps.push(r.records_per_sec);
        xtt_mbs.push(r.mb_per_sec);
        let (echoed, secs) = client_rt.block_on(tls_records(tls.client.clone(), tls_addr, a))?;
        let rps = echoed as f64 / secs;
        tls_rps.push(rps);
        tls_mbs.push(rps * a.record_size as f64 / 1e6);
        ratios.push(r.records_per_sec / rps.max(f64::MIN_POSITIVE));
        eprintln!(
            "round {round}: XTT {:.0} records/s, TLS {:.0} records/s",
            r.records_per_sec, rps
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let aead = if a.aes {
        "AES-256-GCM"
    } else {
        "ChaCha20-Poly1305"
    };
    println!(
        "## XTT sessions vs TLS 1.3 (rustls, ring), {aead}, {} B records, {} client(s) × {} \
         records, window {}, median of {} rounds",
        a.record_size, a.clients, a.records, a.window, a.rounds
    );
    println!(
        "| | XTT ({}) | TLS 1.3 ({tls_suite}) | XTT / TLS |",
        suite.name()
    );
    println!("|---|---|---|---|");
    let (xm, tm) = (median(&mut xtt_mbs), median(&mut tls_mbs));
    let (xr, tr) = (median(&mut xtt_rps), median(&mut tls_rps));
    println!(
        "| echoed records/s | {xr:.0} | {tr:.0} | {:.2} |",
        xr / tr.max(f64::MIN_POSITIVE)
    );
    println!(
        "| payload MB/s each way | {xm:.1} | {tm:.1} | {:.2} |",
        xm / tm.max(f64::MIN_POSITIVE)
    );
    println!(
        "| handshake bytes C→S + S→C | {x_up} + {x_down} = {} | {t_up} + {t_down} = {} | {:.2} |",
        x_up + x_down,
        t_up + t_down,
        (x_up + x_down) as f64 / (t_up + t_down).max(1) as f64
    );
    let below = ratios.iter().filter(|r| **r < 1.0).count();
    let n = ratios.len();
    let mid = median(&mut ratios);
    let (lo, hi) = (
        ratios.first().copied().unwrap_or(0.0),
        ratios.last().copied().unwrap_or(0.0),
    );
    println!(
        "per-round XTT / TLS: median {mid:.2}, range {lo:.2}–{hi:.2}, {below} of {n} rounds below 1"
    );
    println!("load average at the end: {}", load.trim());
    Ok(())
}
