//! A raw HTTP/1.1 server for tests of how clients read answers (feature `test-pki`, like
//! [`crate::test_pki`]; never use it outside tests).
#![allow(clippy::expect_used)]

use std::net::SocketAddr;

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 8192];
                let _ = s.read(&mut req).await;
                let _ = answer(&mut s, status, len, fill, framing).await;
            });
        }
    });
    addr
}

async fn answer(
    s: &mut tokio::net::TcpStream,
    status: &str,
    len: usize,
    fill: u8,
    framing: Framing,
) -> std::io::Result<()> {
    match framing {
        Framing::ContentLength => {
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\n\r\n");
            s.write_all(head.as_bytes()).await?;
            s.write_all(&vec![fill; len]).await
        }
        Framing::Chunked => {
            let head = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
            s.write_all(head.as_bytes()).await?;
            let mut left = len;
            while left > 0 {
                let n = left.min(16 * 1024);
                s.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                s.write_all(&vec![fill; n]).await?;
                s.write_all(b"\r\n").await?;
                left -= n;
            }
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
