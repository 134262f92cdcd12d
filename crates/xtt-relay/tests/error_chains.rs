//! The CLI prints an error with `{:#}` (its message and every cause's, joined by ": "): each
//! cause must appear there exactly once, and the message alone (what logs print) still says
//! what went wrong.

use xtt_relay::cli;
use xtt_relay::client::{ClientError, RelayClient};

mod common;

use common::cli::cmd;

fn assert_once(text: &str, cause: &str) {
    assert_eq!(text.matches(cause).count(), 1, "{cause:?} in {text:?}");
}

/// A local address nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn an_unreachable_relay_is_named_once() {
    let addr = closed_port();
    let link = format!("http://{addr}/v1/m/2bba630e-519b-11ec-bf63-0242ac130002");
    let e = cli::run(cmd(&[
        "delete",
        &link,
        "--claim",
        "0e7f5c4a-3a8e-4f0c-9a57-7c1f4a2d8b11",
    ]))
    .await
    .unwrap_err();
    let text = format!("{e:#}");
    assert!(text.starts_with("cannot reach the relay: "), "{text}");
    assert_once(&text, "Connection refused");

    // The message alone, as a log line prints it, keeps the cause.
    let client = RelayClient::new().unwrap();
    let url = url::Url::parse(&link).unwrap();
    let e = client
        .read(&url, uuid::Uuid::new_v4(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    assert!(e.to_string().contains("Connection refused"), "{e}");
}

#[tokio::test]
async fn a_database_path_that_cannot_be_prepared_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().to_str().unwrap();
    let e = cli::run(cmd(&["serve", "--listen", "127.0.0.1:0", "--db", db]))
        .await
        .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("cannot open the database")
            && text.contains("cannot prepare the database file"),
        "{text}"
    );
    assert_once(&text, "(os error");
}
