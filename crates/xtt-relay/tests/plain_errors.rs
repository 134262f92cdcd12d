//! Errors a person makes with `relay serve` and `relay share` / `receive` (a swapped
//! certificate and key, a missing key, a file that is not a database, a wrong URL scheme)
//! are said once, in words, with a hint at the fix.

mod common;

use xtt_relay::cli;

use common::cli::{cmd, parse};

/// `relay serve --db DB ARGS…`'s error, `{:#}` as the CLI prints it; the relay must not start.
async fn serve_error(db: &std::path::Path, args: &[&str]) -> String {
    let mut v = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
    ];
    v.extend_from_slice(args);
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), cli::run(cmd(&v)))
        .await
        .expect("the relay started")
        .unwrap_err();
    format!("{e:#}")
}

fn assert_once(text: &str, part: &str) {
    assert_eq!(text.matches(part).count(), 1, "{part:?} in {text:?}");
}

/// A certificate chain and key for 127.0.0.1 written to `dir`: (chain, key).
fn cert_files(dir: &std::path::Path) -> (String, String) {
    let sc = xtt_tls::test_pki::TestCa::new("ca").server_cert();
    let (cert, key) = (dir.join("relay.crt"), dir.join("relay.key"));
    std::fs::write(&cert, &sc.chain_pem).unwrap();
    std::fs::write(&key, &sc.key_pem).unwrap();
    (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn swapped_or_missing_tls_files_are_said_once_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let (cert, key) = cert_files(dir.path());

    let text = serve_error(&db, &["--tls-cert", &key, "--tls-key", &cert]).await;
    assert!(text.contains(&key), "{text}");
    assert!(
        text.contains("not the server's certificate chain") && text.contains("swapped"),
        "{text}"
    );
    assert!(!text.contains("CA certificate"), "{text}");

    let text = serve_error(&db, &["--tls-cert", &cert, "--tls-key", &cert]).await;
    assert!(
        text.contains("not the server's private key") && text.contains("swapped"),
        "{text}"
    );

    let text = serve_error(
        &db,
        &["--tls-cert", &cert, "--tls-key", "/nonexistent/nothere.pem"],
    )
    .await;
    assert!(text.contains("/nonexistent/nothere.pem"), "{text}");
    assert_once(&text, "(os error 2)");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let not_db = dir.path().join("root_cert.bin");
    std::fs::write(&not_db, vec![7u8; 4096]).unwrap();
    let text = serve_error(&not_db, &[]).await;
    assert!(text.contains(not_db.to_str().unwrap()), "{text}");
    assert!(text.contains("not a SQLite database"), "{text}");
    assert_eq!(text.matches("not a").count(), 1, "{text}");
    assert_eq!(std::fs::read(&not_db).unwrap(), vec![7u8; 4096]);
}

#[test]
fn a_relay_url_must_be_http_or_https() {
    let e = parse(&[
        "share",
        "--relay",
        "ftp://relay.example/",
        "--content",
        "{}",
    ])
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("https://") && e.contains("ftp://"), "{e}");
    assert!(!e.contains("builder error"), "{e}");
    parse(&[
        "share",
        "--relay",
        "https://relay.example/",
        "--content",
        "{}",
    ])
    .unwrap();
    parse(&[
        "share",
        "--relay",
        "http://127.0.0.1:8080",
        "--content",
        "{}",
    ])
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_scheme_for_the_port_says_which_to_use() {
    let http = common::start(common::config()).await;
    let https = common::start_https(common::config()).await;
    let other = |u: &url::Url, scheme: &str| {
        format!("{scheme}://{}", u.as_str().split_once("://").unwrap().1)
    };
    for (relay, fix) in [
        (other(&http.base, "https"), "use an http:// URL"),
        (other(&https.base, "http"), "use an https:// URL"),
    ] {
        let e = cli::run(cmd(&["share", "--relay", &relay, "--content", "{}"]))
            .await
            .unwrap_err();
        let text = format!("{e:#}");
        assert!(text.starts_with("cannot reach the relay: "), "{text}");
        assert!(text.contains(fix), "{relay}: {text}");
        assert!(!text.contains("InvalidContentType"), "{text}");
    }
}
