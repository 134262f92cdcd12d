//! A 408 means nothing happened: a request whose client was told it took too long must not
//! take effect afterwards, though its store step still runs once the store is free (the
//! blocking task is not cancelled). Nor may a create store a mailbox that expired while the
//! create waited for the store.
//!
//! The store is the real SQLite store behind a gate the test opens (`common::gated`): the
//! request reaches the store and waits there, as behind the store's held lock, until the test
//! opens the gate: after the client got its 408, or after the clock passed the expiry.

mod common;

use common::gated::{start_gated, start_gated_with, Gated};
use common::*;
use std::time::Duration;
use uuid::Uuid;
use xtt_relay::client::{self, Written};
use xtt_relay::proto::mailbox::ClaimDigest;
use xtt_relay::proto::wire::{
    format_timestamp, CreateMailboxRequest, MailboxConfiguration, Payload, PayloadType,
    UpdateMailboxRequest,
};
use xtt_relay::server::RelayConfig;

/// Short enough for a test, long enough for a request that is not held.
const TIMEOUT: Duration = Duration::from_millis(300);

/// The stored payload, Recipient and count of Recipients bound of the only mailbox.
fn stored(db: &std::path::Path) -> (Vec<u8>, Option<Vec<u8>>, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT payload, recipient_claim, receivers_bound FROM mailbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn create_body(expires_at: i64) -> CreateMailboxRequest {
    CreateMailboxRequest {
        payload: Payload {
            kind: PayloadType::Aes128Gcm,
            data: "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJ".into(),
        },
        display_information: display(),
        notification_token: None,
        mailbox_configuration: Some(MailboxConfiguration {
            access_rights: Some("RWD".into()),
            expiration: format_timestamp(expires_at),
        }),
    }
}

/// Runs `request` until it is held at the store and then answered without the store (the
/// gate stays closed), returns that answer's status, then lets the held step run and returns
/// how it ended.
async fn answered_while_held<T: std::fmt::Debug>(
    relay: &mut Gated,
    request: impl std::future::Future<Output = Result<T, client::ClientError>>,
) -> (Option<u16>, common::gated::Ran) {
    let arrived = &mut relay.arrived;
    let (answer, ()) = tokio::join!(request, async {
        arrived.recv().await.unwrap();
    });
    let status = match &answer {
        Ok(done) => panic!("answered {done:?} while its store step was held"),
        Err(e) => e.status(),
    };
    relay.gate.send(()).unwrap();
    let ran = relay.ran.recv().await.unwrap();
    (status, ran)
}

/// A read that got 408 while it waited for the store binds no Recipient when it runs later:
/// with one Recipient allowed, a fresh device still binds and gets the content.
#[tokio::test]
async fn a_read_answered_408_binds_no_recipient() {
    let config = RelayConfig {
        max_receivers: 1,
        ..config()
    };
    let mut relay = start_gated_with(TIMEOUT, config).await;
    let shared = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let url = shared.link.api_url().clone();
    let before = stored(&relay.db);
    assert_eq!((&before.1, before.2), (&None, 0));

    let reader = relay.client.clone();
    let read = reader.read(&url, Uuid::new_v4(), None);
    let (status, ran) = answered_while_held(&mut relay, read).await;
    assert_eq!(status, Some(408));
    assert!(
        stored(&relay.db) == before,
        "the read that got 408 bound a Recipient when it ran (store: {ran:?})"
    );

    // The one Recipient slot is still free.
    let fresh = Uuid::new_v4();
    relay.gate.send(()).unwrap();
    relay.client.read(&url, fresh, None).await.unwrap();
    let after = stored(&relay.db);
    assert_eq!(after.1, Some(ClaimDigest::of(&fresh).0.to_vec()));
    assert_eq!(after.2, 1);
    relay.server.shutdown().await.unwrap();
}

/// A live mailbox with all rights, shared by a device: its URL and that device's claim.
async fn shared_mailbox(relay: &Gated) -> (url::Url, Uuid) {
    let request = share_request(&info("t"), "RWD");
    let shared = client::share(&relay.client, &relay.base, &request)
        .await
        .unwrap();
    (shared.link.api_url().clone(), shared.claim)
}

/// An update that got 408 while it waited for the store changes nothing when it runs later,
/// on a mailbox that is still live; its retry, with the same request id, is executed (200),
/// not recognised as a repeat (201).
#[tokio::test]
async fn an_update_answered_408_changes_nothing_and_its_retry_runs() {
    let mut relay = start_gated(TIMEOUT).await;
    let (url, claim) = shared_mailbox(&relay).await;
    let before = stored(&relay.db);
    let update = UpdateMailboxRequest {
        payload: Payload {
            kind: PayloadType::Aes128Gcm,
            data: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        },
        notification_token: None,
    };
    let (client, update_id) = (relay.client.clone(), client::request_id());
    let updated = client.update(&url, claim, &update_id, &update);
    let (status, ran) = answered_while_held(&mut relay, updated).await;
    assert_eq!(status, Some(408));
    assert!(
        stored(&relay.db) == before,
        "the update that got 408 was applied when it ran (store: {ran:?})"
    );
    relay.gate.send(()).unwrap();
    let (written, _) = client
        .update(&url, claim, &update_id, &update)
        .await
        .unwrap();
    assert_eq!(
        written,
        Written::Executed,
        "the retry was taken as a repeat"
    );
    relay.ran.recv().await.unwrap().unwrap();
    assert_ne!(stored(&relay.db).0, before.0, "the retry was not applied");
    relay.server.shutdown().await.unwrap();
}

/// A delete that got 408 while it waited for the store deletes nothing when it runs later, on
/// a mailbox that is still live; its retry, with the same request id, is executed (200).
#[tokio::test]
async fn a_delete_answered_408_deletes_nothing_and_its_retry_runs() {
    let mut relay = start_gated(TIMEOUT).await;
    let (url, claim) = shared_mailbox(&relay).await;
    let (client, delete_id) = (relay.client.clone(), client::request_id());
    let deleted = client.delete(&url, claim, &delete_id);
    let (status, ran) = answered_while_held(&mut relay, deleted).await;
    assert_eq!(status, Some(408));
    assert_eq!(
        rows(&relay.db, "mailbox"),
        1,
        "the delete that got 408 was applied when it ran (store: {ran:?})"
    );
    relay.gate.send(()).unwrap();
    let written = client.delete(&url, claim, &delete_id).await.unwrap();
    assert_eq!(
        written,
        Written::Executed,
        "the retry was taken as a repeat"
    );
    assert_eq!(rows(&relay.db, "mailbox"), 0);
    relay.server.shutdown().await.unwrap();
}

/// A create that got 408 while it waited for the store stores nothing when it runs later; its
/// retry, with the same request id, creates the mailbox (200), not a repeat (201).
#[tokio::test]
async fn a_create_answered_408_stores_nothing_and_its_retry_creates() {
    let mut relay = start_gated(TIMEOUT).await;
    relay.hold_creates();
    let (claim, request_id, body) = (Uuid::new_v4(), client::request_id(), create_body(T0 + 600));
    let (client, base) = (relay.client.clone(), relay.base.clone());
    let created = client.create(&base, claim, &request_id, &body, None);
    let (status, ran) = answered_while_held(&mut relay, created).await;
    assert_eq!(status, Some(408));
    assert_eq!(
        (rows(&relay.db, "mailbox"), rows(&relay.db, "last_request")),
        (0, 0),
        "the create that got 408 stored its mailbox when it ran (store: {ran:?})"
    );
    relay.gate.send(()).unwrap();
    let (written, _) = client
        .create(&base, claim, &request_id, &body, None)
        .await
        .unwrap();
    assert_eq!(
        written,
        Written::Executed,
        "the retry was taken as a repeat"
    );
    assert_eq!(rows(&relay.db, "mailbox"), 1);
    relay.server.shutdown().await.unwrap();
}

/// A create valid when it arrived, whose mailbox's expiry second comes while it waits for the
/// store, is refused when it runs, and stores nothing.
#[tokio::test]
async fn a_create_that_waits_past_its_expiry_is_refused_and_stores_nothing() {
    let mut relay = start_gated(Duration::from_secs(30)).await;
    relay.hold_creates();
    let (client, base) = (relay.client.clone(), relay.base.clone());
    let body = create_body(T0 + 60);
    let request_id = client::request_id();
    let created = client.create(&base, Uuid::new_v4(), &request_id, &body, None);
    let (arrived, clock, gate) = (&mut relay.arrived, &relay.clock, &relay.gate);
    let (answer, ()) = tokio::join!(created, async {
        arrived.recv().await.unwrap();
        // Held at the store when the mailbox's expiry second comes.
        clock.set(T0 + 60);
        gate.send(()).unwrap();
    });
    let ran = relay.ran.recv().await.unwrap();
    let error = answer.expect_err("a mailbox that expired before it was stored was created");
    assert_eq!(error.status(), Some(408), "{error} (store: {ran:?})");
    assert!(error.to_string().contains("expired"), "{error}");
    assert_eq!(
        (rows(&relay.db, "mailbox"), rows(&relay.db, "last_request")),
        (0, 0)
    );

    // The control: the same wait, with an expiry after it, creates.
    let (request_id, body) = (client::request_id(), create_body(T0 + 61));
    let created = client.create(&base, Uuid::new_v4(), &request_id, &body, None);
    let (arrived, gate) = (&mut relay.arrived, &relay.gate);
    let (answer, ()) = tokio::join!(created, async {
        arrived.recv().await.unwrap();
        gate.send(()).unwrap();
    });
    assert_eq!(answer.unwrap().0, Written::Executed);
    assert_eq!(rows(&relay.db, "mailbox"), 1);
    relay.server.shutdown().await.unwrap();
}

/// A store step that began to commit before the request timeout passed is answered with its
/// outcome, not 408: the change is made, and the client must not be told otherwise. The held
/// update claims its deadline for its commit, then waits until the timeout has passed.
#[tokio::test]
async fn a_step_that_began_to_commit_before_the_timeout_is_answered_with_its_outcome() {
    let mut relay = start_gated(TIMEOUT).await;
    let (url, claim) = shared_mailbox(&relay).await;
    let before = stored(&relay.db);
    relay.claim_deadlines_first();
    let update = UpdateMailboxRequest {
        payload: Payload {
            kind: PayloadType::Aes128Gcm,
            data: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB".into(),
        },
        notification_token: None,
    };
    let (client, update_id) = (relay.client.clone(), client::request_id());
    let updated = client.update(&url, claim, &update_id, &update);
    let (arrived, gate) = (&mut relay.arrived, &relay.gate);
    let (answer, ()) = tokio::join!(updated, async {
        arrived.recv().await.unwrap();
        // The timeout is a real timer: nothing to wait on but time. Were it late, the test
        // would pass without the race it is about.
        tokio::time::sleep(TIMEOUT * 2).await;
        gate.send(()).unwrap();
    });
    let ran = relay.ran.recv().await.unwrap();
    let (written, _) = answer.unwrap_or_else(|e| panic!("{e} (store: {ran:?})"));
    assert_eq!(written, Written::Executed);
    assert_ne!(stored(&relay.db).0, before.0, "answered 200, not applied");
    relay.server.shutdown().await.unwrap();
}
