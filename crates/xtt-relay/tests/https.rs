//! The relay over HTTPS on 127.0.0.1 (rustls, a CA and server certificate made in the test):
//! `share` then `relay receive https://…#secret` trusting the CA through `--ca-file` or a
//! `tls-root` anchor, and a clear certificate error when the CA is not trusted.

mod common;

use std::sync::Arc;

use clap::Parser;
use url::Url;
use xtt_anchors::anchor::AnchorKind;
use xtt_anchors::{AnchorStore, NewAnchor};
use xtt_relay::cli::{self, RelayCommand, TrustArgs};
use xtt_relay::client::{self, ClientError};
use xtt_relay::server::sqlite::SqliteStore;
use xtt_relay::server::RelayServer;
use xtt_tls::test_pki::TestCa;

#[derive(Parser)]
struct Xtt {
    #[command(subcommand)]
    relay: RelayCommand,
}

fn cmd(args: &[&str]) -> RelayCommand {
    let mut v = vec!["xtt"];
    v.extend_from_slice(args);
    Xtt::try_parse_from(v).unwrap().relay
}

struct HttpsRelay {
    server: RelayServer,
    base: Url,
    ca: TestCa,
    dir: tempfile::TempDir,
}

async fn start() -> HttpsRelay {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("relay test CA");
    let tls = ca.server_cert().server_config();
    let store = Arc::new(SqliteStore::open(&dir.path().join("relay.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = Arc::new(xtt_relay::server::clock::ManualClock::new(common::T0));
    let server = RelayServer::start_tls(listener, tls, store, clock, common::config())
        .await
        .unwrap();
    let base = Url::parse(&format!("https://{}", server.local_addr())).unwrap();
    HttpsRelay {
        server,
        base,
        ca,
        dir,
    }
}

/// Shares `token` through the relay as the Sender, trusting the test CA; returns the link.
async fn share(relay: &HttpsRelay, token: &str) -> String {
    let trust = TrustArgs {
        ca_files: vec![relay.ca.write_pem(relay.dir.path(), "sender-ca")],
        anchors: None,
    };
    let info = common::info(token);
    let shared = client::share(
        &trust.client().unwrap(),
        &relay.base,
        &common::share_request(&info, "RD"),
    )
    .await
    .unwrap();
    let link = shared.link.to_link();
    assert!(link.starts_with("https://127.0.0.1:"), "{}", link.as_str());
    link.to_string()
}

fn received_token(path: &std::path::Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["content"]["authorizationToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_over_https_trusting_the_ca_from_a_pem_file() {
    let relay = start().await;
    let link = share(&relay, "pem-token").await;
    let ca = relay.ca.write_pem(relay.dir.path(), "ca");
    let out = relay.dir.path().join("got.json");
    cli::run(cmd(&[
        "receive",
        &link,
        "--ca-file",
        ca.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    assert_eq!(received_token(&out), "pem-token");
    relay.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_over_https_trusting_a_tls_root_anchor() {
    let relay = start().await;
    let link = share(&relay, "anchor-token").await;
    let store_path = relay.dir.path().join("anchors.db");
    {
        let mut store = AnchorStore::open(&store_path).unwrap();
        store
            .import(
                NewAnchor::public(AnchorKind::TlsRoot, relay.ca.cert_der.clone(), "test"),
                1_700_000_000,
            )
            .unwrap();
    }
    let out = relay.dir.path().join("got.json");
    cli::run(cmd(&[
        "receive",
        &link,
        "--anchors",
        store_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    assert_eq!(received_token(&out), "anchor-token");
    relay.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_a_certificate_error_and_the_mailbox_stays_unclaimed() {
    let relay = start().await;
    let link = share(&relay, "unclaimed").await;

    // A store without tls-root anchors, and a PEM file of another CA: neither vouches for it.
    let other = TestCa::new("another CA").write_pem(relay.dir.path(), "other");
    let empty_store = relay.dir.path().join("empty-anchors.db");
    drop(AnchorStore::open(&empty_store).unwrap());
    let out = relay.dir.path().join("got.json");
    for trust in [
        vec!["--ca-file", other.to_str().unwrap()],
        vec!["--anchors", empty_store.to_str().unwrap()],
    ] {
        let mut args = vec!["receive", link.as_str(), "--out", out.to_str().unwrap()];
        args.extend(trust);
        let err = cli::run(cmd(&args)).await.unwrap_err();
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
    assert!(!out.exists());

    // The mailbox was never claimed: a trusting recipient still gets it.
    let ca = relay.ca.write_pem(relay.dir.path(), "ca");
    cli::run(cmd(&[
        "receive",
        &link,
        "--ca-file",
        ca.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    assert_eq!(received_token(&out), "unclaimed");
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
