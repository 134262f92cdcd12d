//! The project's HTTP clients do not follow redirects: a server (or a proxy rule in front of
//! it) answering 307/308 must not get a request body, which carries secrets, resent elsewhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counts the connections made to it, answering each with 200 and an empty body.
async fn elsewhere() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/stolen", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    (url, seen)
}

/// Answers every request with `status` and `Location: target`.
async fn redirecting(status: &'static str, target: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/tte1/x",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer =
                format!("HTTP/1.1 {status}\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n");
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_redirect_comes_back_as_a_status_and_the_body_goes_nowhere_else() {
    let (target, seen) = elsewhere().await;
    let roots = xtt_tls::TrustRoots::platform();
    let clients = [
        roots.client(std::time::Duration::from_secs(10)).unwrap(),
        roots.client_builder().unwrap().build().unwrap(),
    ];
    for client in clients {
        for status in [
            "307 Temporary Redirect",
            "308 Permanent Redirect",
            "302 Found",
        ] {
            let url = redirecting(status, target.clone()).await;
            let resp = client
                .put(&url)
                .body("otp-master-secret")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16().to_string(), status[..3], "{status}");
        }
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a request followed the redirect"
    );
}
