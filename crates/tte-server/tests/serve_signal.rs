//! `transfer-agent serve` and `controller serve` close connections that never send a whole
//! request head, and stop on SIGINT even while a client holds half a request.
//!
//! The only test in this file: it sends SIGINT to its own process (both services listen for it).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::parse;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tte_server::cli::run;

/// A port on 127.0.0.1 free a moment ago.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Connects, retrying while the service starts.
async fn connect(addr: SocketAddr) -> TcpStream {
    let started = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => return s,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(10), "{addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// [`xtt_tls::test_http::read_until_closed`], as text.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let bytes = xtt_tls::test_http::read_until_closed(stream, within).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_neither_stay_open_nor_block_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let ta_addr = free_port();
    let ctl_addr = free_port();
    let ta = tokio::spawn(run(parse(&[
        "transfer-agent",
        "serve",
        "--listen",
        &ta_addr.to_string(),
        "--db",
        &path("ta.sqlite"),
        "--otp-key",
        &path("otp.key"),
        "--manufacturer-token",
        "a-manufacturer-token-of-some-length",
    ])));
    let ctl = tokio::spawn(run(parse(&[
        "controller",
        "serve",
        "--listen",
        &ctl_addr.to_string(),
        "--db",
        &path("controller.sqlite"),
        "--operator-token",
        "an-operator-token-of-some-length",
    ])));

    let mut held = Vec::new();
    for addr in [ta_addr, ctl_addr] {
        // A whole request is answered (and the service now listens for SIGINT).
        let mut s = connect(addr).await;
        s.write_all(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        // Half a request head, and nothing at all.
        let mut half = connect(addr).await;
        half.write_all(b"POST /devices HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(half);
        held.push(connect(addr).await);
    }

    let started = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The request-head deadline (10 s) closes the held connections, and the services stop.
    for task in [ta, ctl] {
        let left = Duration::from_secs(13).saturating_sub(started.elapsed());
        tokio::time::timeout(left, task)
            .await
            .expect("a service did not stop after SIGINT")
            .unwrap()
            .unwrap();
    }
    for mut s in held {
        read_until_closed(&mut s, Duration::from_secs(1)).await;
    }
}
