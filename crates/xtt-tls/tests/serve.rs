//! `xtt_tls::serve::serve` on 127.0.0.1: request-head deadline, connection caps, bounded
//! graceful shutdown, and the peer address handed to handlers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use xtt_tls::serve::{serve, ServeLimits};
use xtt_tls::test_http::read_until_closed;

fn app() -> axum::Router {
    app_telling(mpsc::unbounded_channel().0)
}

/// The test app; each request to `/slow` is announced on `entered` when its handler starts.
fn app_telling(entered: mpsc::UnboundedSender<()>) -> axum::Router {
    axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/slow",
            get(move || {
                let _ = entered.send(());
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }
            }),
        )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ServeLimits) -> Server {
    start_app(limits, app()).await
}

async fn start_app(limits: ServeLimits, app: axum::Router) -> Server {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(tcp, app, limits, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

/// True if the server has not closed the connection within `wait`.
async fn still_open(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(wait, stream.read(&mut buf))
        .await
        .is_err()
}

async fn get_body(addr: SocketAddr, path: &str) -> String {
    let text = answer(addr, path).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split("\r\n\r\n").nth(1).unwrap().to_owned()
}

/// The whole answer to `GET path` on a new connection (empty if the server closed it without
/// one).
async fn answer(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A connection the server closes at once may refuse the request (broken pipe, reset): no
    // answer either way.
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let raw = read_until_closed(&mut s, Duration::from_secs(5)).await;
    String::from_utf8(raw).unwrap()
}

fn short() -> ServeLimits {
    ServeLimits {
        header_read_timeout: Duration::from_millis(400),
        ..ServeLimits::default()
    }
}

#[tokio::test]
async fn silent_half_sent_and_idle_connections_are_closed_after_the_head_deadline() {
    let server = start(short()).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut silent, Duration::from_secs(3)).await;
    read_until_closed(&mut half, Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A keep-alive connection is answered, then closed once it has sat idle as long.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text =
        String::from_utf8(read_until_closed(&mut kept, Duration::from_secs(3)).await).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello"), "{text}");

    // The server still answers.
    assert_eq!(get_body(server.addr, "/hello").await, "hello");
}

#[tokio::test]
async fn a_connection_beyond_the_per_address_cap_is_closed_at_once() {
    let server = start(ServeLimits {
        max_connections_per_ip: 2,
        header_read_timeout: Duration::from_secs(30),
        ..ServeLimits::default()
    })
    .await;
    let mut a = TcpStream::connect(server.addr).await.unwrap();
    let mut b = TcpStream::connect(server.addr).await.unwrap();
    // Let the server accept both before the third arrives.
    assert!(still_open(&mut a, Duration::from_millis(200)).await);
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    read_until_closed(&mut c, Duration::from_secs(2)).await;
    assert!(still_open(&mut b, Duration::from_millis(100)).await);

    // A place freed is a place again: once the server has seen a's close (no fixed wait, the
    // server may be slow to), a new connection is answered. Until then one is closed unanswered.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = answer(server.addr, "/hello").await;
        if !text.is_empty() {
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.ends_with("\r\n\r\nhello"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the place a closed connection held was not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_overall_cap_applies_to_unlimited_addresses_too() {
    let server = start(ServeLimits {
        max_connections: 2,
        max_connections_per_ip: 1,
        unlimited_ips: vec!["127.0.0.1".parse().unwrap()],
        header_read_timeout: Duration::from_secs(30),
        ..ServeLimits::default()
    })
    .await;
    // Two from one address: the per-address cap of 1 does not apply to it.
    let mut a = TcpStream::connect(server.addr).await.unwrap();
    let mut b = TcpStream::connect(server.addr).await.unwrap();
    assert!(still_open(&mut a, Duration::from_millis(200)).await);
    assert!(still_open(&mut b, Duration::from_millis(50)).await);
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    read_until_closed(&mut c, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn handlers_get_the_peer_address() {
    let server = start(ServeLimits::default()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = String::from_utf8(read_until_closed(&mut s, Duration::from_secs(5)).await).unwrap();
    assert!(text.ends_with(&me.to_string()), "{text}");
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_does_not_wait_for_a_stalled_client() {
    let (entered, mut slow_entered) = mpsc::unbounded_channel();
    let mut server = start_app(
        ServeLimits {
            header_read_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_millis(800),
            ..ServeLimits::default()
        },
        app_telling(entered),
    )
    .await;
    // Half a request head: hyper's graceful shutdown alone would wait for the rest.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(b"GET /hel").await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The request is in flight once its handler runs (and the server, accepting in order, has
    // taken the two connections before it).
    tokio::time::timeout(Duration::from_secs(10), slow_entered.recv())
        .await
        .expect("GET /slow did not reach its handler")
        .unwrap();

    let started = Instant::now();
    let _ = server.stop.take().unwrap().send(());
    // The request in flight is answered, then its connection closed.
    let text =
        String::from_utf8(read_until_closed(&mut slow, Duration::from_secs(3)).await).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("slow"), "{text}");
    read_until_closed(&mut idle, Duration::from_secs(3)).await;
    tokio::time::timeout(Duration::from_secs(3), &mut server.task)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(700), "{took:?}");
    read_until_closed(&mut stalled, Duration::from_secs(1)).await;
    // No longer listening.
    assert!(TcpStream::connect(server.addr).await.is_err());
}
