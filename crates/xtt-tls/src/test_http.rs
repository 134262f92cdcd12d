//! A raw HTTP/1.1 server for tests of how clients read answers (feature `test-pki`, like
//! [`crate::test_pki`]; never use it outside tests).
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How [`serve_body`] frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A `Content-Length` header, then the bytes.
    ContentLength,
    /// `Transfer-Encoding: chunked`, in chunks of at most 16 KiB: the client learns the length
    /// only by reading.
    Chunked,
}

/// Listens on 127.0.0.1 and answers every request with `status` (e.g. `"200 OK"`) and a body of
/// `len` copies of `fill`. A client that stops reading closes the connection; the server then
/// stops writing.
pub async fn serve_body(
    status: &'static str,
    len: usize,
    fill: u8,
    framing: Framing,
) -> SocketAddr {
    serve_body_observed(status, len, fill, framing).await.0
}

/// What [`serve_body_observed`]'s server has done, over all its answers.
#[derive(Debug, Default)]
pub struct Served {
    body_bytes: AtomicUsize,
    ended: AtomicUsize,
}

impl Served {
    /// Body bytes written so far (counted in writes of at most 16 KiB).
    pub fn body_bytes(&self) -> usize {
        self.body_bytes.load(Ordering::SeqCst)
    }
    /// Answers that have ended: written whole, or cut off because the client went away.
    pub fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }
}

/// [`serve_body`], also reporting how much of its answers it wrote.
pub async fn serve_body_observed(
    status: &'static str,
    len: usize,
    fill: u8,
    framing: Framing,
) -> (SocketAddr, Arc<Served>) {
    let served = Arc::new(Served::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    let counters = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let served = counters.clone();
            tokio::spawn(async move {
                let mut req = [0u8; 8192];
                let _ = s.read(&mut req).await;
                let _ = answer(&mut s, status, len, fill, framing, &served).await;
                served.ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, served)
}

/// Writes `len` copies of `fill` in pieces of at most 16 KiB (as chunks if `chunked`), counting
/// each piece once written.
async fn write_body(
    s: &mut tokio::net::TcpStream,
    len: usize,
    fill: u8,
    chunked: bool,
    served: &Served,
) -> std::io::Result<()> {
    let piece = vec![fill; len.min(16 * 1024)];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len());
        if chunked {
            s.write_all(format!("{n:x}\r\n").as_bytes()).await?;
        }
        s.write_all(piece.get(..n).unwrap_or(&piece)).await?;
        if chunked {
            s.write_all(b"\r\n").await?;
        }
        served.body_bytes.fetch_add(n, Ordering::SeqCst);
        left -= n;
    }
    Ok(())
}

async fn answer(
    s: &mut tokio::net::TcpStream,
    status: &str,
    len: usize,
    fill: u8,
    framing: Framing,
    served: &Served,
) -> std::io::Result<()> {
    match framing {
        Framing::ContentLength => {
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n\r\n");
            s.write_all(head.as_bytes()).await?;
            write_body(s, len, fill, false, served).await
        }
        Framing::Chunked => {
            let head = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
            s.write_all(head.as_bytes()).await?;
            write_body(s, len, fill, true, served).await?;
            s.write_all(b"0\r\n\r\n").await
        }
    }
}

/// Reads until the peer closes the connection (or a read fails) and returns what was read;
/// panics if it is still open after `within` (a server that should have closed it did not).
pub async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or(&buf)),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {within:?}"
    );
    out
}
