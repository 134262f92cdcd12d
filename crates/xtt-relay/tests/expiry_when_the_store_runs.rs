//! Expiry is decided when the store runs a request, not when the request arrived: a relay whose
//! store is busy (one lock) must not hand out content, bind a Recipient, or apply a change after
//! a mailbox's expiry second because the request came in a second earlier; nor must a request
//! its client already got 408 for, whose store task still runs.
//!
//! The store here is the real SQLite store behind a gate the test opens (`common::gated`):
//! each mailbox request reports its arrival at the store and then waits, as it would behind a
//! held lock. No sleeps order anything; the gate does.

mod common;

use common::gated::start_gated;
use common::*;
use std::time::Duration;
use uuid::Uuid;
use xtt_relay::client;
use xtt_relay::proto::wire::UpdateMailboxRequest;

/// The stored payload and Recipient of the only mailbox, through a separate connection.
fn stored(db: &std::path::Path) -> (Vec<u8>, Option<Vec<u8>>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT payload, recipient_claim FROM mailbox", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

/// A read that reaches the store at T0+3599, one second before its mailbox expires, and runs
/// at T0+3600 is 404, and binds no Recipient. The same read without the wait is 200.
#[tokio::test]
async fn a_read_that_waits_for_the_store_across_the_expiry_second_is_404() {
    let mut relay = start_gated(Duration::from_secs(30)).await;
    // Expires at T0 + 3600.
    let shared = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let url = shared.link.api_url().clone();
    let before = stored(&relay.db);
    assert_eq!(before.1, None);
    relay.clock.set(T0 + 3599);

    let reader = relay.client.clone();
    let read = tokio::spawn({
        let url = url.clone();
        async move { reader.read(&url, Uuid::new_v4(), None).await }
    });
    relay.arrived.recv().await.unwrap();
    // The read is at the store, waiting, when the expiry second comes.
    relay.clock.set(T0 + 3600);
    relay.gate.send(()).unwrap();
    let ran = relay.ran.recv().await.unwrap();
    let answer = read.await.unwrap();
    assert_eq!(
        answer.as_ref().map_err(|e| e.status()).err(),
        Some(Some(404)),
        "a read that ran after the expiry second was answered {answer:?} (store: {ran:?})"
    );
    assert_eq!(
        stored(&relay.db),
        before,
        "a Recipient was bound after expiry"
    );

    // The control: a read that runs at T0+3599 gets the content.
    relay.clock.set(T0 + 3599);
    relay.gate.send(()).unwrap();
    relay.client.read(&url, Uuid::new_v4(), None).await.unwrap();
    relay.server.shutdown().await.unwrap();
}

/// An update and a delete whose clients already got 408 while they waited for the store, and
/// whose store tasks run only after the mailbox expired, change nothing.
#[tokio::test]
async fn a_timed_out_update_or_delete_that_runs_after_expiry_changes_nothing() {
    let mut relay = start_gated(Duration::from_millis(300)).await;
    let shared = client::share(
        &relay.client,
        &relay.base,
        &share_request(&info("t"), "RWD"),
    )
    .await
    .unwrap();
    let url = shared.link.api_url().clone();
    let before = stored(&relay.db);
    relay.clock.set(T0 + 3599);

    let update = UpdateMailboxRequest {
        payload: xtt_relay::proto::wire::Payload {
            kind: xtt_relay::proto::wire::PayloadType::Aes128Gcm,
            data: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        },
        notification_token: None,
    };
    let (update_id, delete_id) = (client::request_id(), client::request_id());
    let updated = relay.client.update(&url, shared.claim, &update_id, &update);
    let (answer, ()) = tokio::join!(updated, async {
        relay.arrived.recv().await.unwrap();
    });
    assert_eq!(answer.unwrap_err().status(), Some(408));
    let deleted = relay.client.delete(&url, shared.claim, &delete_id);
    let (answer, ()) = tokio::join!(deleted, async {
        relay.arrived.recv().await.unwrap();
    });
    assert_eq!(answer.unwrap_err().status(), Some(408));

    // Both store tasks still wait; the mailbox expires; then they run.
    relay.clock.set(T0 + 3600);
    for request in ["update", "delete"] {
        relay.gate.send(()).unwrap();
        let ran = relay.ran.recv().await.unwrap();
        assert!(
            ran.as_ref().is_err_and(|e| e == "no such mailbox"),
            "the timed-out {request} ran after expiry: {ran:?}"
        );
    }
    assert_eq!(rows(&relay.db, "mailbox"), 1, "deleted after expiry");
    assert_eq!(stored(&relay.db), before, "updated after expiry");
    relay.server.shutdown().await.unwrap();
}
