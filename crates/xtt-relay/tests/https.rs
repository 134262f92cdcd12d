//! The relay over HTTPS on 127.0.0.1 (rustls, a CA and server certificate made in the test):
//! `share` then `relay receive https://…#secret` trusting the CA through `--ca-file` or a
//! `tls-root` anchor, and a clear certificate error when the CA is not trusted.

mod common;

use std::path::PathBuf;

use common::TestRelay;
use xtt_anchors::anchor::AnchorKind;
use xtt_anchors::{AnchorStore, NewAnchor};
use xtt_relay::cli::{self, TrustArgs};
use xtt_relay::client::{self, ClientError};
use xtt_tls::test_pki::TestCa;

use common::cli::cmd;

/// The relay over HTTPS with `token` shared through it by a Sender trusting the test CA;
/// returns the link.
async fn shared_over_https(token: &str) -> (TestRelay, String) {
    let relay = common::start_https(common::config()).await;
    let info = common::info(token);
    let shared = client::share(
        &relay.client,
        &relay.base,
        &common::share_request(&info, "RD"),
    )
    .await
    .unwrap();
    let link = shared.link.to_link();
    assert!(link.starts_with("https://127.0.0.1:"), "{}", link.as_str());
    (relay, link.to_string())
}

/// Where `relay receive` writes what it received.
fn out(relay: &TestRelay) -> PathBuf {
    relay.dir.path().join("got.json")
}

/// `xtt relay receive LINK --out OUT TRUST…` as the Recipient runs it.
async fn receive(relay: &TestRelay, link: &str, trust: &[&str]) -> anyhow::Result<()> {
    let out = out(relay);
    let mut args = vec!["receive", link, "--out", out.to_str().unwrap()];
    args.extend_from_slice(trust);
    cli::run(cmd(&args)).await
}

/// The token in what `relay receive` wrote.
fn received_token(relay: &TestRelay) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out(relay)).unwrap()).unwrap();
    v["content"]["authorizationToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `relay receive` trusting the relay's CA through `--ca-file`, which must succeed; the token
/// received.
async fn receive_trusting_the_ca_file(relay: &TestRelay, link: &str) -> String {
    let ca = relay.ca.as_ref().unwrap().write_pem(relay.dir.path(), "ca");
    receive(relay, link, &["--ca-file", ca.to_str().unwrap()])
        .await
        .unwrap();
    received_token(relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_over_https_trusting_the_ca_from_a_pem_file() {
    let (relay, link) = shared_over_https("pem-token").await;
    assert_eq!(
        receive_trusting_the_ca_file(&relay, &link).await,
        "pem-token"
    );
    relay.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_over_https_trusting_a_tls_root_anchor() {
    let (relay, link) = shared_over_https("anchor-token").await;
    let store_path = relay.dir.path().join("anchors.db");
    {
        let mut store = AnchorStore::open(&store_path).unwrap();
        store
            .import(
                NewAnchor::public(
                    AnchorKind::TlsRoot,
                    relay.ca.as_ref().unwrap().cert_der.clone(),
                    "test",
                ),
                1_700_000_000,
            )
            .unwrap();
    }
    receive(&relay, &link, &["--anchors", store_path.to_str().unwrap()])
        .await
        .unwrap();
    assert_eq!(received_token(&relay), "anchor-token");
    relay.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_a_certificate_error_and_the_mailbox_stays_unclaimed() {
    let (relay, link) = shared_over_https("unclaimed").await;

    // A store without tls-root anchors, and a PEM file of another CA: neither vouches for it.
    let other = TestCa::new("another CA").write_pem(relay.dir.path(), "other");
    let empty_store = relay.dir.path().join("empty-anchors.db");
    drop(AnchorStore::open(&empty_store).unwrap());
    for trust in [
        ["--ca-file", other.to_str().unwrap()],
        ["--anchors", empty_store.to_str().unwrap()],
    ] {
        let err = receive(&relay, &link, &trust).await.unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("cannot be trusted")
                && message.contains("not signed by a trusted certificate authority"),
            "{message}"
        );
        assert!(matches!(
            err.downcast_ref::<ClientError>(),
            Some(ClientError::Certificate { .. })
        ));
    }
    assert!(!out(&relay).exists());

    // The mailbox was never claimed: a trusting recipient still gets it.
    assert_eq!(
        receive_trusting_the_ca_file(&relay, &link).await,
        "unclaimed"
    );
    relay.server.shutdown().await.unwrap();
}

#[test]
fn a_missing_ca_file_or_store_is_named() {
    let trust = TrustArgs {
        ca_files: vec!["/nonexistent/ca.pem".into()],
        anchors: None,
    };
    let err = trust.roots().unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/ca.pem"),
        "{err:#}"
    );
    let trust = TrustArgs {
        ca_files: vec![],
        anchors: Some("/nonexistent/anchors.db".into()),
    };
    let err = trust.roots().unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/anchors.db"),
        "{err:#}"
    );
}
