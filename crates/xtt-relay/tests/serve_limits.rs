//! The relay does not let a client hold a connection by sending nothing, half a request head,
//! or a body that never arrives; and a shutdown does not wait for such a client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use xtt_relay::server::clock::ManualClock;
use xtt_relay::server::sqlite::SqliteStore;
use xtt_relay::server::{RelayConfig, RelayServer, ServeOptions};

const T0: i64 = 1_893_456_000;

/// [`xtt_tls::test_http::read_until_closed`], as text.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let bytes = xtt_tls::test_http::read_until_closed(stream, within).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn status_of(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut s, Duration::from_secs(5)).await
}

#[tokio::test]
async fn silent_and_half_sent_requests_are_closed_within_the_head_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("relay.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = RelayServer::start(
        listener,
        store,
        Arc::new(ManualClock::new(T0)),
        RelayConfig::default(),
    )
    .await
    .unwrap();
    let addr = relay.local_addr();
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"POST /v1/m HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The default head deadline is 10 s.
    read_until_closed(&mut silent, Duration::from_secs(12)).await;
    read_until_closed(&mut half, Duration::from_secs(1)).await;
    assert!(started.elapsed() >= Duration::from_secs(9));
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_and_shutdown_does_not_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("relay.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut options = ServeOptions {
        request_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    options.connections.max_connections_per_ip = 3;
    options.connections.shutdown_grace = Duration::from_millis(500);
    // Far longer than the test: only the shutdown grace can end the stalled request head.
    options.connections.header_read_timeout = Duration::from_secs(3600);
    let relay = RelayServer::start_with(
        listener,
        None,
        store,
        Arc::new(ManualClock::new(T0)),
        RelayConfig::default(),
        options,
    )
    .await
    .unwrap();
    let addr = relay.local_addr();

    let answer = status_of(
        addr,
        "POST /v1/m HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{\"a\":",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("too long"), "{answer}");

    // Per-address cap: three open, a fourth is closed at once. The relay accepts connections in
    // the order they were made and admits each as it accepts it, so the three hold their places
    // by the time the fourth is looked at.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let closed = read_until_closed(&mut fourth, Duration::from_secs(1)).await;
    assert!(closed.is_empty(), "{closed}");

    // A request head that stops halfway does not keep the relay from stopping.
    let held_one = held.first_mut().unwrap();
    held_one
        .write_all(b"GET /v1/m/abc HTTP/1.1\r\n")
        .await
        .unwrap();
    // The 500 ms grace must fire; the guard only bounds the test should it not.
    tokio::time::timeout(Duration::from_secs(60), relay.shutdown())
        .await
        .expect("the relay waited for a stalled client")
        .unwrap();
}

/// The first flight of a TLS client (a ClientHello for `localhost`).
fn client_hello() -> Vec<u8> {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Over TLS, a trusted proxy may have more handshakes in progress than one address is allowed
/// (16): a re-encrypting proxy opens many upstream connections at once. Anyone else is held to
/// the cap.
#[tokio::test]
async fn a_trusted_proxy_is_not_held_to_the_per_address_tls_handshake_cap() {
    xtt_tls::install_ring_provider();
    let tls = xtt_tls::test_pki::TestCa::new("relay test CA")
        .server_cert()
        .server_config();
    let open_after = |trusted: Vec<std::net::IpAddr>| {
        let tls = tls.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(SqliteStore::open(&dir.path().join("relay.db")).unwrap());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let config = RelayConfig {
                trusted_proxies: trusted,
                ..RelayConfig::default()
            };
            let relay = RelayServer::start_with(
                listener,
                Some(tls),
                store,
                Arc::new(ManualClock::new(T0)),
                config,
                ServeOptions::default(),
            )
            .await
            .unwrap();
            // 20 connections, all made before any handshake starts.
            let mut held = Vec::new();
            for _ in 0..20 {
                held.push(TcpStream::connect(relay.local_addr()).await.unwrap());
            }
            // Each sends a ClientHello: a connection given a handshake place answers with a
            // ServerHello, one refused was closed unread. The handshakes are never finished, so
            // no place is given back while this runs.
            let hello = client_hello();
            let mut open = 0;
            for s in &mut held {
                if s.write_all(&hello).await.is_err() {
                    continue; // already reset: refused
                }
                let mut b = [0u8; 1];
                let answer = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::io::AsyncReadExt::read(s, &mut b),
                )
                .await
                .expect("neither answered nor closed");
                if matches!(answer, Ok(1)) {
                    open += 1;
                }
            }
            drop(held);
            relay.shutdown().await.unwrap();
            open
        }
    };
    assert_eq!(open_after(vec!["127.0.0.1".parse().unwrap()]).await, 20);
    assert_eq!(open_after(vec![]).await, 16);
}
