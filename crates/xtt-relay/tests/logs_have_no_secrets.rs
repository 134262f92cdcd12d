//! The relay's structured logs: one line per request with route template and status, and no
//! mailbox id, device claim, secret, push token, attestation or payload in any line.

mod common;

use common::*;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;
use xtt_relay::client::{self, Patience};
use xtt_relay::proto::wire::NotificationToken;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_logs_carry_no_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let relay = start(config()).await;
    let marker = "PAYLOAD-MARKER-91c2";
    let mut request = share_request(&info(marker), "RWD");
    request.notification_token = Some(NotificationToken {
        kind: "test".into(),
        token_data: "TOKEN-DATA-55aa".into(),
    });
    request.attestation = Some("ATTESTATION-77bb".into());
    let shared = client::share(&relay.client, &relay.base, &request)
        .await
        .unwrap();
    let reader = Uuid::new_v4();
    let patience = Patience {
        poll: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
    };
    client::receive(&relay.client, &shared.link, reader, patience)
        .await
        .unwrap();
    let stranger = Uuid::new_v4();
    let err = relay
        .client
        .read(shared.link.api_url(), stranger, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    relay
        .client
        .delete(shared.link.api_url(), shared.claim, &client::request_id())
        .await
        .unwrap();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains(r#"route="/v1/m""#) && logs.contains("status=200"),
        "{logs}"
    );
    assert!(
        logs.contains(r#"route="/v1/m/{id}""#) && logs.contains("status=401"),
        "{logs}"
    );
    let secret = shared.link.secret().unwrap().encode();
    let id = shared.link.id();
    for (what, needle) in [
        ("mailbox id", id.to_string()),
        ("mailbox id (simple)", id.simple().to_string()),
        ("initiator claim", shared.claim.to_string()),
        ("recipient claim", reader.to_string()),
        ("stranger claim", stranger.to_string()),
        ("secret", secret.to_string()),
        ("payload", marker.to_owned()),
        ("push token", "TOKEN-DATA-55aa".to_owned()),
        ("attestation", "ATTESTATION-77bb".to_owned()),
    ] {
        assert!(!logs.contains(&needle), "{what} in logs:\n{logs}");
    }
}
