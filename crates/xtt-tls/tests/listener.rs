//! A router served over TLS on 127.0.0.1 and reached with the project's client setup.

use axum::routing::get;
use xtt_tls::server::TlsListener;
use xtt_tls::test_pki::TestCa;
use xtt_tls::{certificate_problem, TrustRoots};

async fn serve(ca: &TestCa) -> std::net::SocketAddr {
    let config = ca.server_cert().server_config();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TlsListener::new(tcp, config).unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let app = axum::Router::new().route("/hello", get(|| async { "hello over TLS" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_client_given_the_ca_reads_and_one_without_it_gets_a_certificate_error() {
    let ca = TestCa::new("listener test CA");
    let addr = serve(&ca).await;
    let url = format!("https://{addr}/hello");

    let mut roots = TrustRoots::platform();
    roots.add_pem(ca.cert_pem.as_bytes(), "test CA").unwrap();
    let client = roots.client(std::time::Duration::from_secs(10)).unwrap();
    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "hello over TLS");

    let other = TestCa::new("someone else");
    let mut wrong = TrustRoots::platform();
    wrong.add_der(&other.cert_der, "other CA").unwrap();
    let err = wrong
        .client(std::time::Duration::from_secs(10))
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap_err();
    let problem = certificate_problem(&err).unwrap_or_else(|| panic!("{err:?}"));
    assert!(problem.contains("not signed by a trusted"), "{problem}");

    // A client that is not TLS at all does not stop the listener serving the next one.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "hello over TLS");
}

/// Waits for the server to close `stream`; how long that took, or `None` after `within`.
async fn closed_after(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt as _;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

#[tokio::test]
async fn silent_clients_from_one_address_cannot_take_every_handshake_place() {
    use xtt_tls::server::{HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES_PER_IP};
    let ca = TestCa::new("handshake cap CA");
    let addr = serve(&ca).await;
    // Connections that never send a ClientHello, as many as one address may have pending.
    let mut silent = Vec::new();
    for _ in 0..MAX_PENDING_HANDSHAKES_PER_IP {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // One more from the same address is closed at once instead of waiting for a place.
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let took = closed_after(&mut extra, std::time::Duration::from_secs(2)).await;
    assert!(
        took.is_some(),
        "a connection beyond the per-address cap was kept"
    );

    // The silent ones are closed once the (short) handshake deadline passes.
    assert!(HANDSHAKE_TIMEOUT <= std::time::Duration::from_secs(5));
    let first = silent.first_mut().unwrap();
    let took = closed_after(first, std::time::Duration::from_secs(8)).await;
    let took = took.expect("a silent client kept its handshake place");
    assert!(took < std::time::Duration::from_secs(6), "{took:?}");
}
