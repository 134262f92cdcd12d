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

/// A rustls client trusting `ca` that offers `alpn`.
fn connector(ca: &TestCa, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    xtt_tls::install_ring_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.cert_der.clone()))
        .unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

#[tokio::test]
async fn a_client_preferring_h2_is_answered_over_the_protocol_agreed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ca = TestCa::new("alpn test CA");
    let addr = serve(&ca).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector(&ca, &[b"h2", b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    // The server must not agree to a protocol it does not speak (curl then fails with
    // "HTTP/2 stream 1 was not closed cleanly").
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tls.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8(answer).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello over TLS"), "{text}");
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
    let connected_at = std::time::Instant::now();
    let mut silent = Vec::new();
    for _ in 0..MAX_PENDING_HANDSHAKES_PER_IP {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // One more from the same address is closed at once instead of waiting for a place. The
    // listener accepts connections in the order they were made and gives each its place as it
    // accepts it, so the silent ones hold theirs by the time this one is looked at.
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let took = closed_after(&mut extra, std::time::Duration::from_secs(2)).await;
    assert!(
        took.is_some(),
        "a connection beyond the per-address cap was kept"
    );

    // The silent ones keep their places until the (short) handshake deadline, and are closed
    // then. The bound only keeps the test from hanging should the deadline never fire.
    assert!(HANDSHAKE_TIMEOUT <= std::time::Duration::from_secs(5));
    let first = silent.first_mut().unwrap();
    closed_after(first, std::time::Duration::from_secs(60))
        .await
        .expect("a silent client kept its handshake place");
    assert!(
        connected_at.elapsed() >= HANDSHAKE_TIMEOUT,
        "a silent client was closed before the handshake deadline"
    );
}
