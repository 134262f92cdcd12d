//! The relay over real HTTP on 127.0.0.1 and a real SQLite file.

mod common;

use base64::Engine as _;
use common::*;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;
use xtt_relay::client::{self, ClientError, Patience, RelayClient, Written};
use xtt_relay::proto::confirm::SenderConfirm;
use xtt_relay::proto::secret::CryptoError;
use xtt_relay::proto::share_url::ShareUrl;
use xtt_relay::proto::wire::{
    CreateMailboxRequest, MailboxConfiguration, Payload, PayloadType, UpdateMailboxRequest,
};
use xtt_relay::server::RelayConfig;

fn patience() -> Patience {
    Patience {
        poll: Duration::from_millis(20),
        timeout: Duration::from_secs(20),
    }
}

fn raw_create_body(expiration: &str, rights: &str) -> CreateMailboxRequest {
    CreateMailboxRequest {
        payload: Payload {
            kind: PayloadType::Aes128Gcm,
            data: base64::engine::general_purpose::STANDARD.encode([9u8; 48]),
        },
        display_information: display(),
        notification_token: None,
        mailbox_configuration: Some(MailboxConfiguration {
            access_rights: Some(rights.into()),
            expiration: expiration.into(),
        }),
    }
}

#[tokio::test]
async fn share_then_receive_round_trip() {
    let relay = start(config()).await;
    let info = info("tok-round-trip");
    let shared = client::share(&relay.client, &relay.base, &share_request(&info, "RD"))
        .await
        .unwrap();
    let link = shared.link.to_link();
    assert!(
        link.starts_with(&format!("{}v1/m/", relay.base)),
        "{}",
        link.as_str()
    );
    // What the Recipient gets over SMS/mail: parse it back from text.
    let parsed = ShareUrl::parse(&link).unwrap();
    let received = client::receive(&relay.client, &parsed, Uuid::new_v4(), patience())
        .await
        .unwrap();
    assert_eq!(received.info, info);
    assert_eq!(received.display, display());
    assert_eq!(received.expiration, "2030-01-01T01:00:00Z");
    assert!(received.confirmation.is_none());
}

#[tokio::test]
async fn second_claimant_is_401_until_relinquish() {
    let relay = start(config()).await;
    let shared = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let url = shared.link.api_url();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    relay.client.read(url, first, None).await.unwrap();
    let err = relay.client.read(url, second, None).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    // The bound Recipient keeps reading; the Initiator's claim is not a Recipient claim.
    relay.client.read(url, first, None).await.unwrap();
    let err = relay
        .client
        .relinquish(url, shared.claim, &client::request_id())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(
        relay
            .client
            .relinquish(url, first, &client::request_id())
            .await
            .unwrap(),
        Written::Executed
    );
    relay.client.read(url, second, None).await.unwrap();
    assert_eq!(
        relay
            .client
            .read(url, first, None)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
}

#[tokio::test]
async fn receivers_per_mailbox_are_limited() {
    let relay = start(RelayConfig {
        max_receivers: 2,
        ..config()
    })
    .await;
    let shared = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let url = shared.link.api_url();
    for _ in 0..2 {
        let claim = Uuid::new_v4();
        relay.client.read(url, claim, None).await.unwrap();
        relay
            .client
            .relinquish(url, claim, &client::request_id())
            .await
            .unwrap();
    }
    let err = relay
        .client
        .read(url, Uuid::new_v4(), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(
        err.to_string().contains("maximum number of recipients"),
        "{err}"
    );
}

#[tokio::test]
async fn a_full_relay_refuses_new_mailboxes_with_503() {
    let relay = start(RelayConfig {
        max_mailboxes: 1,
        ..config()
    })
    .await;
    client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let err = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(
        err.to_string().contains("maximum number of mailboxes"),
        "{err}"
    );
}

#[tokio::test]
async fn duplicate_requests_answer_201_without_effect() {
    let relay = start(config()).await;
    let claim = Uuid::new_v4();
    let request_id = client::request_id();
    let body = raw_create_body("2030-01-01T02:00:00Z", "RWD");
    let (w1, r1) = relay
        .client
        .create(
            &relay.base,
            claim,
            &request_id,
            &body,
            Some("opaque-attestation"),
        )
        .await
        .unwrap();
    let (w2, r2) = relay
        .client
        .create(&relay.base, claim, &request_id, &body, None)
        .await
        .unwrap();
    assert_eq!((w1, w2), (Written::Executed, Written::Duplicate));
    assert_eq!(
        r1.url_link, r2.url_link,
        "the repeat names the same mailbox"
    );
    assert_eq!(rows(&relay.db, "mailbox"), 1, "the repeat created nothing");
    // A new request id from the same device creates a new mailbox.
    let (w3, r3) = relay
        .client
        .create(&relay.base, claim, &client::request_id(), &body, None)
        .await
        .unwrap();
    assert_eq!(w3, Written::Executed);
    assert_ne!(r3.url_link, r1.url_link);
    assert_eq!(rows(&relay.db, "mailbox"), 2);

    // Repeated update: 201 and the payload is not overwritten by the repeat's body.
    let url = url::Url::parse(&r1.url_link).unwrap();
    let update_id = client::request_id();
    let first = UpdateMailboxRequest {
        payload: Payload {
            kind: PayloadType::Aes128Gcm,
            data: base64::engine::general_purpose::STANDARD.encode([1u8; 40]),
        },
        notification_token: None,
    };
    let mut second = first.clone();
    second.payload.data = base64::engine::general_purpose::STANDARD.encode([2u8; 40]);
    let (a, _) = relay
        .client
        .update(&url, claim, &update_id, &first)
        .await
        .unwrap();
    let (b, _) = relay
        .client
        .update(&url, claim, &update_id, &second)
        .await
        .unwrap();
    assert_eq!((a, b), (Written::Executed, Written::Duplicate));
    let now = relay.client.read(&url, claim, None).await.unwrap();
    assert_eq!(now.payload, first.payload);

    // The echo of Mailbox-Request-ID is checked by the client on every call; check it raw too.
    let resp = reqwest::Client::new()
        .post(url.clone())
        .header("Mailbox-Device-Claim", Uuid::new_v4().to_string())
        .header("Mailbox-Request-ID", "echo-me")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["mailbox-request-id"], "echo-me");

    // Delete, then the repeat finds nothing (404, as the draft allows).
    let del = client::request_id();
    assert_eq!(
        relay.client.delete(&url, claim, &del).await.unwrap(),
        Written::Executed
    );
    assert_eq!(
        relay
            .client
            .delete(&url, claim, &del)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        relay
            .client
            .read(&url, claim, None)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn expired_mailbox_is_404_before_any_sweep() {
    let relay = start(config()).await; // sweeper every hour: it will not run during the test
    let shared = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let url = shared.link.api_url().clone();
    let reader = Uuid::new_v4();
    relay.client.read(&url, reader, None).await.unwrap();
    relay.clock.advance(3599);
    relay.client.read(&url, reader, None).await.unwrap();
    relay.clock.advance(1);
    assert_eq!(
        relay
            .client
            .read(&url, reader, None)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    let preview = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(preview.status(), 404);
    assert_eq!(
        relay
            .client
            .delete(&url, shared.claim, &client::request_id())
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        rows(&relay.db, "mailbox"),
        1,
        "the row waits for the sweeper"
    );
}

#[tokio::test]
async fn sweeper_deletes_expired_rows() {
    let relay = start(RelayConfig {
        sweep_interval: Duration::from_millis(50),
        ..config()
    })
    .await;
    let short = client::share(&relay.client, &relay.base, &share_request(&info("a"), "RD"))
        .await
        .unwrap();
    let mut long_request = share_request(&info("b"), "RD");
    long_request.expires_at = common::T0 + 7200;
    let long = client::share(&relay.client, &relay.base, &long_request)
        .await
        .unwrap();
    assert_eq!(rows(&relay.db, "mailbox"), 2);
    relay.clock.advance(3600);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rows(&relay.db, "mailbox") != 1 {
        assert!(std::time::Instant::now() < deadline, "sweeper did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        rows(&relay.db, "last_request"),
        1,
        "request ids go with their mailbox"
    );
    assert_eq!(
        relay
            .client
            .read(short.link.api_url(), Uuid::new_v4(), None)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    relay
        .client
        .read(long.link.api_url(), Uuid::new_v4(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn access_rights_are_enforced() {
    let relay = start(config()).await;
    let c = &relay.client;
    let update = |data: u8| UpdateMailboxRequest {
        payload: Payload {
            kind: PayloadType::Aes128Gcm,
            data: base64::engine::general_purpose::STANDARD.encode([data; 40]),
        },
        notification_token: None,
    };

    // Default RD: no writes by either side.
    let rd = client::share(c, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let reader = Uuid::new_v4();
    c.read(rd.link.api_url(), reader, None).await.unwrap();
    for claim in [rd.claim, reader] {
        let err = c
            .update(rd.link.api_url(), claim, &client::request_id(), &update(1))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(401), "{err}");
    }

    // R only: nobody deletes.
    let r = client::share(c, &relay.base, &share_request(&info("t"), "R"))
        .await
        .unwrap();
    let err = c
        .delete(r.link.api_url(), r.claim, &client::request_id())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));

    // WD: nobody reads.
    let wd = client::share(c, &relay.base, &share_request(&info("t"), "WD"))
        .await
        .unwrap();
    assert_eq!(
        c.read(wd.link.api_url(), Uuid::new_v4(), None)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );

    // RWD: both sides write; a stranger cannot write or delete.
    let rwd = client::share(c, &relay.base, &share_request(&info("t"), "RWD"))
        .await
        .unwrap();
    let url = rwd.link.api_url();
    c.read(url, reader, None).await.unwrap();
    c.update(url, reader, &client::request_id(), &update(3))
        .await
        .unwrap();
    assert_eq!(
        c.read(url, rwd.claim, None).await.unwrap().payload,
        update(3).payload
    );
    let stranger = Uuid::new_v4();
    assert_eq!(
        c.update(url, stranger, &client::request_id(), &update(4))
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    assert_eq!(
        c.delete(url, stranger, &client::request_id())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    c.delete(url, reader, &client::request_id()).await.unwrap();
    assert_eq!(
        c.read(url, rwd.claim, None).await.unwrap_err().status(),
        Some(404)
    );
}

#[tokio::test]
async fn ciphertext_tampered_at_the_relay_fails_to_decrypt() {
    let relay = start(config()).await;
    let shared = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    // A malicious relay flips one ciphertext bit in its database.
    let conn = rusqlite::Connection::open(&relay.db).unwrap();
    let mut blob: Vec<u8> = conn
        .query_row("SELECT payload FROM mailbox", [], |r| r.get(0))
        .unwrap();
    blob[20] ^= 0x01;
    conn.execute("UPDATE mailbox SET payload = ?1", [&blob])
        .unwrap();
    let err = client::receive(&relay.client, &shared.link, Uuid::new_v4(), patience())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Crypto(CryptoError::Decrypt)),
        "{err}"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn database_never_holds_the_secret_plaintext_or_claims() {
    let relay = start(config()).await;
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    let shared = client::share(
        &relay.client,
        &relay.base,
        &share_request(&info(marker), "RWD"),
    )
    .await
    .unwrap();
    let reader = Uuid::new_v4();
    let got = client::receive(&relay.client, &shared.link, reader, patience())
        .await
        .unwrap();
    assert_eq!(got.info, info(marker));
    let secret = shared.link.secret().unwrap().expose().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let needles: Vec<(String, Vec<u8>)> = vec![
        ("raw secret".into(), secret.clone()),
        (
            "base64 secret".into(),
            b64.encode(&secret)
                .trim_end_matches('=')
                .as_bytes()
                .to_vec(),
        ),
        (
            "base64url secret".into(),
            b64url.encode(&secret).into_bytes(),
        ),
        ("plaintext".into(), marker.as_bytes().to_vec()),
        (
            "initiator claim".into(),
            shared.claim.to_string().into_bytes(),
        ),
        ("recipient claim".into(), reader.to_string().into_bytes()),
        (
            "initiator claim bytes".into(),
            shared.claim.as_bytes().to_vec(),
        ),
    ];
    let mut scanned = 0;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", relay.db.display());
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        scanned += bytes.len();
        for (what, needle) in &needles {
            assert!(!contains(&bytes, needle), "{what} found in {path}");
        }
    }
    assert!(scanned > 4096, "nothing was scanned");
    // The ciphertext is there (so the scan looked at the right file).
    let stored: Vec<u8> = rusqlite::Connection::open(&relay.db)
        .unwrap()
        .query_row("SELECT payload FROM mailbox", [], |r| r.get(0))
        .unwrap();
    assert!(stored.len() > marker.len());
}

#[tokio::test]
async fn malformed_oversized_and_unauthenticated_requests() {
    let relay = start(RelayConfig {
        body_limit: 4096,
        limits: xtt_relay::proto::wire::CreateLimits {
            max_payload: 1024,
            ..config().limits
        },
        ..config()
    })
    .await;
    let http = reqwest::Client::new();
    let create = relay.base.join("v1/m").unwrap();
    let send = |body: String, claim: Option<&str>, rid: Option<&str>| {
        let mut r = http
            .post(create.clone())
            .header("content-type", "application/json")
            .body(body);
        if let Some(c) = claim {
            r = r.header("Mailbox-Device-Claim", c);
        }
        if let Some(id) = rid {
            r = r.header("Mailbox-Request-ID", id);
        }
        r.send()
    };
    let good = serde_json::to_string(&raw_create_body("2030-01-01T00:10:00Z", "RD")).unwrap();
    let claim = Uuid::new_v4().to_string();
    assert_eq!(
        send(good.clone(), Some(&claim), Some("r1"))
            .await
            .unwrap()
            .status(),
        200
    );
    let past = serde_json::to_string(&raw_create_body("2029-12-31T23:59:59Z", "RD")).unwrap();
    let bad_rights = serde_json::to_string(&raw_create_body("2030-01-01T00:10:00Z", "RX")).unwrap();
    // 400, in turn: no claim, a claim that is not a UUID, no request id, broken JSON, an
    // expiration in the past, unknown access rights.
    for (body, claim, rid) in [
        (good.clone(), None, Some("r2")),
        (good.clone(), Some("not-a-uuid"), Some("r3")),
        (good.clone(), Some(claim.as_str()), None),
        ("{".to_owned(), Some(claim.as_str()), Some("r4")),
        (past, Some(claim.as_str()), Some("r5")),
        (bad_rights, Some(claim.as_str()), Some("r6")),
    ] {
        let status = send(body.clone(), claim, rid).await.unwrap().status();
        assert_eq!(status, 400, "{body} claim {claim:?} request id {rid:?}");
    }
    let mut big = raw_create_body("2030-01-01T00:10:00Z", "RD");
    for (size, rid, why) in [
        (2000, "r7", "payload over max_payload"),
        (8000, "r8", "body over body_limit"),
    ] {
        big.payload.data = base64::engine::general_purpose::STANDARD.encode(vec![0u8; size]);
        let body = serde_json::to_string(&big).unwrap();
        let resp = send(body, Some(&claim), Some(rid)).await.unwrap();
        assert_eq!(resp.status(), 413, "{why}");
    }
    // Unknown and malformed mailbox ids are 404 on every verb.
    for path in ["v1/m/00000000-0000-4000-8000-000000000000", "v1/m/nope"] {
        let url = relay.base.join(path).unwrap();
        assert_eq!(http.get(url.clone()).send().await.unwrap().status(), 404);
        let r = http
            .delete(url)
            .header("Mailbox-Device-Claim", &claim)
            .header("Mailbox-Request-ID", "x");
        assert_eq!(r.send().await.unwrap().status(), 404);
    }
    assert_eq!(rows(&relay.db, "mailbox"), 1);
}

#[tokio::test]
async fn rate_limit_answers_429() {
    let mut cfg = config();
    cfg.rate.per_client_rate = 0.01;
    cfg.rate.per_client_burst = 3.0;
    let relay = start(cfg).await;
    let url = relay
        .base
        .join("v1/m/00000000-0000-4000-8000-000000000000")
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let resp = reqwest::get(url.clone()).await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert!(resp.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
}

/// Behind a trusted reverse proxy each client gets its own bucket (by X-Forwarded-For); from
/// an untrusted peer the header is ignored, so a client cannot pick its own bucket.
#[tokio::test]
async fn rate_limits_follow_x_forwarded_for_only_from_trusted_proxies() {
    async fn statuses(relay: &TestRelay, forwarded_for: &[&str]) -> Vec<u16> {
        let url = relay
            .base
            .join("v1/m/00000000-0000-4000-8000-000000000000")
            .unwrap();
        let mut out = Vec::new();
        for xff in forwarded_for {
            let resp = reqwest::Client::new()
                .get(url.clone())
                .header("x-forwarded-for", *xff)
                .send()
                .await
                .unwrap();
            out.push(resp.status().as_u16());
        }
        out
    }
    let limited = |trusted: Vec<std::net::IpAddr>| {
        let mut cfg = config();
        cfg.rate.per_client_rate = 0.01;
        cfg.rate.per_client_burst = 2.0;
        cfg.trusted_proxies = trusted;
        cfg
    };
    // The test client connects from 127.0.0.1: the "proxy".
    let proxied = start(limited(vec!["127.0.0.1".parse().unwrap()])).await;
    let a = "198.51.100.7";
    let b = "spoofed, 203.0.113.9";
    assert_eq!(statuses(&proxied, &[a, a, a]).await, [404, 404, 429]);
    assert_eq!(
        statuses(&proxied, &[b, b]).await,
        [404, 404],
        "b has its own bucket"
    );
    // Not trusted: the header changes nothing, one bucket for the peer.
    let direct = start(limited(vec![])).await;
    assert_eq!(
        statuses(&direct, &[a, b, "192.0.2.1"]).await,
        [404, 404, 429]
    );
}

#[tokio::test]
async fn push_webhook_gets_the_other_sides_token() {
    use axum::{routing::post, Json, Router};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let hook = Router::new().route(
        "/push",
        post(move |Json(v): Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hook).await });
    let relay = start(RelayConfig {
        push_webhook: Some(url::Url::parse(&format!("http://{hook_addr}/push")).unwrap()),
        ..config()
    })
    .await;
    let mut request = share_request(&info("t"), "RWD");
    request.notification_token = Some(xtt_relay::proto::wire::NotificationToken {
        kind: "test.webhook".into(),
        token_data: "initiator-token".into(),
    });
    let shared = client::share(&relay.client, &relay.base, &request)
        .await
        .unwrap();
    assert!(shared.push_supported);
    let reader = Uuid::new_v4();
    let url = shared.link.api_url();
    let token = xtt_relay::proto::wire::NotificationToken {
        kind: "test.webhook".into(),
        token_data: "recipient-token".into(),
    };
    relay.client.read(url, reader, Some(token)).await.unwrap();
    let body = UpdateMailboxRequest {
        payload: Payload {
            kind: PayloadType::Aes128Gcm,
            data: base64::engine::general_purpose::STANDARD.encode([5u8; 40]),
        },
        notification_token: None,
    };
    relay
        .client
        .update(url, reader, &client::request_id(), &body)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        json!({"event": "mailboxUpdated",
               "notificationToken": {"type": "test.webhook", "tokenData": "initiator-token"}})
    );
    relay
        .client
        .update(url, shared.claim, &client::request_id(), &body)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["notificationToken"]["tokenData"], "recipient-token");
}

#[tokio::test]
async fn three_message_confirm_flow() {
    let relay = start(config()).await;
    let info = info("car-key-share");
    let (sender, message1) = SenderConfirm::start(
        &info,
        p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
    );
    let mut request = share_request(&info, "RWD");
    request.plaintext = message1;
    let shared = client::share(&relay.client, &relay.base, &request)
        .await
        .unwrap();
    let sender_client = relay.client.clone();
    let sender_shared = shared.clone();
    let sender_task = tokio::spawn(async move {
        client::confirm_as_sender(&sender_client, &sender_shared, &sender, patience()).await
    });
    let received = client::receive(&relay.client, &shared.link, Uuid::new_v4(), patience())
        .await
        .unwrap();
    assert_eq!(
        received.info, info,
        "the confirm key is stripped from what is returned"
    );
    let done = received.confirmation.expect("confirmed");
    assert_eq!(done.signature.len(), 64);
    sender_task.await.unwrap().unwrap();
    assert_eq!(
        rows(&relay.db, "mailbox"),
        0,
        "the Receiver deleted the mailbox"
    );
}

#[tokio::test]
async fn restart_keeps_live_mailboxes() {
    let relay = start(config()).await;
    let shared = client::share(&relay.client, &relay.base, &share_request(&info("t"), "RD"))
        .await
        .unwrap();
    let TestRelay {
        server, dir, db, ..
    } = relay;
    server.shutdown().await.unwrap();
    let relay = start_at(dir, db, config()).await;
    // Same mailbox id on the new port.
    let link = format!(
        "{}v1/m/{}#{}",
        relay.base,
        shared.link.id(),
        *shared.link.secret().unwrap().encode()
    );
    let link = ShareUrl::parse(&link).unwrap();
    let got = client::receive(
        &RelayClient::new().unwrap(),
        &link,
        Uuid::new_v4(),
        patience(),
    )
    .await
    .unwrap();
    assert_eq!(got.info, info("t"));
}

#[tokio::test]
async fn a_relay_with_a_zero_sweep_interval_is_refused_at_start_not_left_without_a_sweeper() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        xtt_relay::server::sqlite::SqliteStore::open(&dir.path().join("r.db")).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = xtt_relay::server::RelayConfig {
        sweep_interval: Duration::ZERO,
        ..config()
    };
    let clock = std::sync::Arc::new(xtt_relay::server::clock::ManualClock::new(T0));
    match xtt_relay::server::RelayServer::start(listener, store, clock, config).await {
        Err(e) => assert!(e.to_string().contains("sweep interval"), "{e}"),
        Ok(_) => panic!("started without a working sweeper"),
    }
}

#[tokio::test]
async fn a_clients_fourth_live_mailbox_is_429_while_another_client_creates() {
    let mut cfg = config();
    cfg.max_mailboxes_per_creator = 3;
    cfg.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let relay = start(cfg).await;
    let create = |xff: &'static str| {
        let url = relay.base.join("v1/m").unwrap();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("mailbox-device-claim", Uuid::new_v4().to_string())
                .header("mailbox-request-id", client::request_id())
                .header("x-forwarded-for", xff)
                .json(&raw_create_body("2030-01-01T01:00:00Z", "RD"))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(create("198.51.100.7").await.status(), 200);
    }
    let refused = create("198.51.100.7").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.unwrap().contains("3 live mailboxes"));
    assert_eq!(create("203.0.113.9").await.status(), 200);
    assert_eq!(rows(&relay.db, "mailbox"), 4);
}
