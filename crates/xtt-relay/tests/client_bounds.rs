//! The relay client reads a bounded amount of any answer: a "relay" on 127.0.0.1 that streams
//! endless bodies cannot make a device hold them.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;
use uuid::Uuid;
use xtt_relay::client::{ClientError, RelayClient};

/// Answers every request with `status` and a chunked body of `len` bytes of '{'.
async fn serve(status: &'static str, len: usize) -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 8192];
                let _ = s.read(&mut req).await;
                let head = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let mut left = len;
                while left > 0 {
                    let n = left.min(16 * 1024);
                    let chunk = format!("{n:x}\r\n{}\r\n", "{".repeat(n));
                    if s.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    Url::parse(&format!("http://{addr}/v1/m/some-mailbox")).unwrap()
}

#[tokio::test]
async fn an_endless_answer_is_refused_and_an_endless_error_page_is_not_kept() {
    let client = RelayClient::new().unwrap();
    let mailbox = serve("200 OK", 64 << 20).await;
    match client.read(&mailbox, Uuid::new_v4(), None).await {
        Err(ClientError::Malformed(m)) => assert!(m.contains("longer than"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mailbox = serve("404 Not Found", 64 << 20).await;
    match client.read(&mailbox, Uuid::new_v4(), None).await {
        Err(ClientError::Status {
            status: 404,
            message,
        }) => {
            assert_eq!(message, "no details")
        }
        other => panic!("{other:?}"),
    }
}
