//! `relay receive`, `relinquish` and `delete` take the share link (its fragment is the key) and
//! the device claim (a bearer credential for the mailbox) from files, so neither has to be on
//! the command line where other local users can read it; inline and file forms exclude each
//! other, and what is read is bounded.

mod common;

use std::path::{Path, PathBuf};
use xtt_relay::cli;
use xtt_relay::client;

use common::cli::{cmd, parse};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_and_claim_are_read_from_files() {
    let relay = common::start(common::config()).await;
    let info = common::info("file-token");
    let shared = client::share(
        &relay.client,
        &relay.base,
        &common::share_request(&info, "RD"),
    )
    .await
    .unwrap();
    let dir = relay.dir.path();
    // A trailing newline, as `echo LINK > FILE` leaves it.
    let link_file = write(
        dir,
        "link.txt",
        &format!("{}\n", shared.link.to_link().as_str()),
    );
    let claim = uuid::Uuid::new_v4();
    let claim_file = write(dir, "claim.txt", &format!("{claim}\n"));
    let out = dir.join("got.json");
    cli::run(cmd(&[
        "receive",
        "--link-file",
        link_file.to_str().unwrap(),
        "--claim-file",
        claim_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(got["content"]["authorizationToken"], "file-token");

    // The claim read from the file is the one the mailbox is now bound to: relinquish with it.
    cli::run(cmd(&[
        "relinquish",
        "--link-file",
        link_file.to_str().unwrap(),
        "--claim-file",
        claim_file.to_str().unwrap(),
    ]))
    .await
    .unwrap();

    // The initiator deletes with its claim from a file.
    let initiator = write(dir, "initiator.txt", &shared.claim.to_string());
    assert_eq!(common::rows(&relay.db, "mailbox"), 1);
    cli::run(cmd(&[
        "delete",
        "--link-file",
        link_file.to_str().unwrap(),
        "--claim-file",
        initiator.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    assert_eq!(common::rows(&relay.db, "mailbox"), 0);
    relay.server.shutdown().await.unwrap();
}

#[test]
fn inline_and_file_forms_exclude_each_other() {
    let link =
        "http://127.0.0.1:1/v1/m/2bba630e-519b-11ec-bf63-0242ac130002#hXlr6aRC7KgJpOLTNZaLsw";
    let claim = "2bba630e-519b-11ec-bf63-0242ac130003";
    for args in [
        &["receive", link, "--link-file", "f"][..],
        &[
            "receive",
            "--link-file",
            "f",
            "--claim",
            claim,
            "--claim-file",
            "c",
        ][..],
        &["receive"][..],
        &["delete", link, "--link-file", "f", "--claim", claim][..],
        &[
            "delete",
            "--link-file",
            "f",
            "--claim",
            claim,
            "--claim-file",
            "c",
        ][..],
        &["delete", "--link-file", "f"][..],
        &["relinquish", "--claim-file", "c"][..],
    ] {
        assert!(parse(args).is_err(), "{args:?} was accepted");
    }
    // The inline forms still work.
    assert!(parse(&["delete", link, "--claim", claim]).is_ok());
    assert!(parse(&["receive", link]).is_ok());
}

#[tokio::test]
async fn oversized_empty_or_malformed_inputs_are_refused_without_being_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = write(d, "big.txt", &"SECRETSECRET".repeat(1000));
    let empty = write(d, "empty.txt", " \n");
    let bad_claim = write(d, "claim.txt", "SECRET-not-a-uuid");
    let link = write(
        d,
        "link.txt",
        "http://127.0.0.1:1/v1/m/2bba630e-519b-11ec-bf63-0242ac130002#hXlr6aRC7KgJpOLTNZaLsw",
    );
    let missing = d.join("missing.txt");
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    for (args, expected) in [
        (
            vec!["receive".into(), "--link-file".into(), path(&big)],
            "longer than 8192 bytes",
        ),
        (
            vec!["receive".into(), "--link-file".into(), path(&empty)],
            "empty.txt is empty",
        ),
        (
            vec!["receive".into(), "--link-file".into(), path(&missing)],
            "cannot read",
        ),
        (
            vec![
                "delete".into(),
                "--link-file".into(),
                path(&link),
                "--claim-file".into(),
                path(&bad_claim),
            ],
            "the device claim is not a UUID",
        ),
        (
            vec![
                "receive".into(),
                "--link-file".into(),
                "-".into(),
                "--claim-file".into(),
                "-".into(),
            ],
            "cannot both be - (stdin)",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), cli::run(cmd(&args)))
            .await
            .unwrap()
            .unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains(expected), "{args:?}: {text}");
        assert!(!text.contains("SECRET"), "{args:?}: {text}");
    }
}
