//! The relay client reads a bounded amount of any answer: a "relay" on 127.0.0.1 that streams
//! endless bodies cannot make a device hold them.

use url::Url;
use uuid::Uuid;
use xtt_relay::client::{ClientError, RelayClient};
use xtt_tls::test_http::{serve_body, Framing};

/// A "relay" answering every request with `status` and a streamed body of `len` bytes of '{'.
async fn serve(status: &'static str, len: usize) -> Url {
    let addr = serve_body(status, len, b'{', Framing::Chunked).await;
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
