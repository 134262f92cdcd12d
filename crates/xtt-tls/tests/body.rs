//! Bounded body reads against a raw HTTP/1.1 server on 127.0.0.1 that announces or streams
//! bodies of a chosen size.

use xtt_tls::body::{error_text, read_limited, BodyError, MAX_ERROR_TEXT};
use xtt_tls::test_http::{serve_body, serve_body_observed, Framing};

async fn serve(status: &'static str, len: usize, chunked: bool) -> String {
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::ContentLength
    };
    format!("http://{}/", serve_body(status, len, b'a', framing).await)
}

async fn get(url: &str) -> reqwest::Response {
    let client = xtt_tls::TrustRoots::platform()
        .client_builder()
        .unwrap()
        .build()
        .unwrap();
    client.get(url).send().await.unwrap()
}

#[tokio::test]
async fn a_body_up_to_the_limit_is_read_whole() {
    for chunked in [false, true] {
        let url = serve("200 OK", 5000, chunked).await;
        let body = read_limited(get(&url).await, 5000).await.unwrap();
        assert_eq!(body.len(), 5000, "chunked: {chunked}");
        assert!(body.iter().all(|&b| b == b'a'));
    }
}

#[tokio::test]
async fn a_longer_body_is_refused_whether_announced_or_streamed() {
    for chunked in [false, true] {
        let url = serve("200 OK", 5001, chunked).await;
        match read_limited(get(&url).await, 5000).await {
            Err(BodyError::TooLarge { limit: 5000 }) => {}
            other => panic!("chunked: {chunked}: {other:?}"),
        }
    }
    // A stream far past the limit is given up on, not read to its end: the server's writes
    // stop once the client hangs up, with what the socket buffers hold (a few MiB) written.
    const STREAM: usize = 64 << 20;
    let (addr, served) = serve_body_observed("200 OK", STREAM, b'a', Framing::Chunked).await;
    assert!(matches!(
        read_limited(get(&format!("http://{addr}/")).await, 1 << 16).await,
        Err(BodyError::TooLarge { .. })
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while served.ended() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server is still writing: the client kept the connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        served.body_bytes() < STREAM / 4,
        "{} of {STREAM} bytes written: the body was read far past the limit",
        served.body_bytes()
    );
}

#[tokio::test]
async fn an_error_page_becomes_at_most_a_few_kib_of_text() {
    let url = serve("500 Internal Server Error", 100, false).await;
    assert_eq!(error_text(get(&url).await).await, "a".repeat(100));
    let url = serve("500 Internal Server Error", 1 << 20, true).await;
    let text = error_text(get(&url).await).await;
    assert!(text.len() < 100, "{text}");
    assert!(text.contains(&MAX_ERROR_TEXT.to_string()), "{text}");
}
