//! The `tte` subcommands, run in-process against services on 127.0.0.1, as the project CLI will.

mod common;

use clap::{CommandFactory, Parser};
use common::{parse, Xtt};
use tte_server::cli::run;

#[test]
fn clap_definition_is_consistent() {
    Xtt::command().debug_assert();
    assert!(Xtt::try_parse_from([
        "xtt",
        "manufacture",
        "--count",
        "0",
        "--ta",
        "x",
        "--token",
        "t"
    ])
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manufacture_fetch_report_led_through_the_cli() {
    let s = common::start().await;
    let out = s.out().join("batch");
    common::manufacture_cli(&s.ta, &out, &["--count", "3"]).await;
    let jsons = common::secrets_files(&out);
    assert_eq!(jsons.len(), 3);
    for j in &jsons {
        assert!(j.with_extension("png").exists() && j.with_extension("svg").exists());
    }
    let secrets = jsons[0].to_str().unwrap();
    let dev = common::read_secrets(&jsons[0]);

    // Not bound yet: fetch is an error that says so.
    let e = run(parse(&["device", "fetch", "--secrets", secrets]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no Controller is bound"), "{e}");

    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), 204);
    let r = s.add(&dev.urn, &dev.dev_secret, None).await;
    assert_eq!(r.status(), 201);

    run(parse(&["device", "fetch", "--secrets", secrets]))
        .await
        .unwrap();
    run(parse(&[
        "device",
        "report",
        "--secrets",
        secrets,
        "--name",
        "temp",
        "--value",
        "-3.5",
        "--unit",
        "Cel",
    ]))
    .await
    .unwrap();
    let readings: serde_json::Value = s.readings(&dev.urn).await;
    assert_eq!(readings[0]["value"]["number"], -3.5);
    assert_eq!(readings[0]["name"], format!("{}:temp", dev.urn));

    run(parse(&[
        "led",
        "encode",
        "--secrets",
        secrets,
        "--ta-urn",
        "urn:tte:ta.example",
    ]))
    .await
    .unwrap();
    assert!(run(parse(&["led", "decode", "0101"])).await.is_err());
}

/// A local address nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn manufacture_checks_its_inputs_before_creating_the_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("group");
    xtt_files::group::GroupDir::create(&group, b"tte-test-sensors", &mut rand_core::OsRng).unwrap();
    let (group, missing) = (
        group.to_str().unwrap(),
        dir.path().join("missing").to_str().unwrap().to_owned(),
    );
    let out = dir.path().join("b5");
    let ta = format!("http://{}", closed_port());
    for (extra, expected) in [
        (vec!["--daa-group", &missing], "opening the DAA group"),
        (
            vec!["--daa-group", group, "--xtt-root", &missing],
            "the XTT root certificate is unusable",
        ),
        (vec!["--ca-file", &missing], "missing"),
        (vec!["--qr-base", "ftp://ta.example"], "must be http(s)://"),
    ] {
        let mut args = vec![
            "manufacture",
            "--ta",
            &ta,
            "--token",
            common::MANUFACTURER_TOKEN,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(&extra);
        let e = run(parse(&args)).await.unwrap_err();
        assert!(format!("{e:#}").contains(expected), "{extra:?}: {e:#}");
        assert!(!out.exists(), "{extra:?} left {} behind", out.display());
    }
}

#[tokio::test]
async fn manufacture_says_why_the_transfer_agent_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("batch");
    let ta = format!("http://{}", closed_port());
    let e = run(parse(&[
        "manufacture",
        "--ta",
        &ta,
        "--token",
        common::MANUFACTURER_TOKEN,
        "--out",
        out.to_str().unwrap(),
    ]))
    .await
    .unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains("with the Transfer Agent"), "{text}");
    assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
}

#[tokio::test]
async fn a_silent_transfer_agent_is_reported_as_a_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ta = format!("http://{}", silent.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let mut rng = rand_core::OsRng;
    let dev = tte_server::manufacture::new_device(
        tte_server::manufacture::random_mac_urn(&mut rng),
        &ta,
        &ta,
        tte::Otp::generate(&mut rng),
        tte::Key256::generate(&mut rng),
        &mut rng,
    )
    .unwrap();
    xtt_tls::install_ring_provider();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let e = tte_server::manufacture::register(&http, common::MANUFACTURER_TOKEN, &dev)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[test]
fn a_device_file_that_cannot_be_written_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_core::OsRng;
    let dev = tte_server::manufacture::new_device(
        tte_server::manufacture::random_mac_urn(&mut rng),
        "http://ta.example",
        "http://ta.example",
        tte::Otp::generate(&mut rng),
        tte::Key256::generate(&mut rng),
        &mut rng,
    )
    .unwrap();
    let e =
        tte_server::manufacture::write_device_files(&dir.path().join("missing"), &dev).unwrap_err();
    // As the CLI prints it: the message and every cause.
    let text = format!("{:#}", anyhow::Error::from(e));
    assert!(text.starts_with("writing "), "{text}");
    assert_eq!(text.matches("(os error").count(), 1, "{text}");
}

/// `transfer-agent serve` refuses to start with an OTP key its database was not used with, or
/// without its key file once the database holds OTP hashes (instead of creating a new key that
/// would make every stored OTP fail).
#[tokio::test]
async fn the_transfer_agent_refuses_to_start_with_another_otp_key() {
    use tte_server::store::sqlite::SqliteTaStore;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let db = path("ta.sqlite");
    // The database as a first start left it: its key recorded.
    let store = SqliteTaStore::open(&db).unwrap();
    tte_server::cli::otp_key_for(&store, &db, &path("otp.key")).unwrap();
    drop(store);
    tte_server::cli::load_or_create_key(&path("other.key")).unwrap();
    let serve = |key: &str| {
        let (db, key) = (db.to_str().unwrap().to_owned(), path(key));
        async move {
            let started = run(parse(&[
                "transfer-agent",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                &db,
                "--otp-key",
                key.to_str().unwrap(),
                "--manufacturer-token",
                "a-manufacturer-token-of-some-length",
            ]));
            // A refusal returns at once; a Transfer Agent that starts serves until stopped.
            tokio::time::timeout(std::time::Duration::from_secs(60), started)
                .await
                .expect("the Transfer Agent started instead of refusing the key")
                .unwrap_err()
        }
    };
    let e = serve("other.key").await;
    assert!(
        format!("{e:#}").contains("is not the one the database"),
        "{e:#}"
    );
    let e = serve("missing.key").await;
    assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
    assert!(!path("missing.key").exists());
}

/// A busy port stops `transfer-agent serve` and `controller serve` before they create their
/// database (and the Transfer Agent its OTP key): nothing is left behind by a start that failed.
#[tokio::test]
async fn a_busy_port_leaves_no_new_database_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let token = "a-token-of-some-length-here";
    for args in [
        vec![
            "transfer-agent",
            "serve",
            "--listen",
            &addr,
            "--db",
            &path("ta.sqlite"),
            "--otp-key",
            &path("otp.key"),
            "--manufacturer-token",
            token,
        ],
        vec![
            "controller",
            "serve",
            "--listen",
            &addr,
            "--db",
            &path("controller.sqlite"),
            "--operator-token",
            token,
        ],
    ] {
        let e = tokio::time::timeout(std::time::Duration::from_secs(60), run(parse(&args)))
            .await
            .expect("started on a busy port")
            .unwrap_err();
        assert!(format!("{e:#}").contains("listening on"), "{e:#}");
    }
    for name in ["ta.sqlite", "otp.key", "controller.sqlite"] {
        assert!(!dir.path().join(name).exists(), "{name} was created");
    }
}

/// The arguments `child_xtt` runs `xtt` with, one per line.
const CHILD_ARGS: &str = "TTE_CHILD_XTT_ARGS";

/// Not a test by itself: `xtt ARGS…` as the binary runs it, in a child process (this same test
/// binary re-run with `--ignored --exact child_xtt`): clap's own exit status (2) for a bad
/// command line, and `error: …` with status 1 for a failure.
#[test]
#[ignore = "helper process for the token file tests"]
fn child_xtt() {
    let Ok(args) = std::env::var(CHILD_ARGS) else {
        panic!("not a test by itself: run with {CHILD_ARGS} set")
    };
    let xtt = Xtt::parse_from(std::iter::once("xtt").chain(args.lines()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = rt.block_on(run(xtt.tte)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `xtt` run in a child process by `program` (this test binary, or a shell that runs it), with
/// no token in its environment.
fn xtt_child(program: &str, pre: &[&str], args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.args(pre)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_xtt",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ARGS, args.join("\n"))
        .env_remove("TTE_MANUFACTURER_TOKEN")
        .env_remove("TTE_OPERATOR_TOKEN");
    cmd
}

/// `--manufacturer-token-file`: the token is read from a file (or a pipe, `<(…)`), is held to
/// the same minimum length as one given directly, cannot be given both ways, and a file that
/// cannot be read is named.
#[test]
fn transfer_agent_serve_takes_its_token_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let serve = |extra: &[&str]| {
        let (db, key) = (path("ta.sqlite"), path("otp.key"));
        let mut args = vec![
            "transfer-agent",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
            "--otp-key",
            &key,
        ];
        args.extend_from_slice(extra);
        let exe = std::env::current_exe().unwrap();
        let out = common::output_within(
            &mut xtt_child(exe.to_str().unwrap(), &[], &args),
            None,
            common::PEER_LIMIT,
        )
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };

    // A short token in a file is refused like a short one on the command line.
    let short = path("short.token");
    std::fs::write(&short, "too-short-token\n").unwrap();
    let (code, stderr) = serve(&["--manufacturer-token-file", &short]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the manufacturer token must be at least 16 characters"),
        "{stderr}"
    );
    assert!(!stderr.contains("too-short-token"), "{stderr}");

    // Both forms at once: a usage error.
    let good = path("good.token");
    std::fs::write(&good, "a-manufacturer-token-of-some-length\n").unwrap();
    let (code, stderr) = serve(&[
        "--manufacturer-token-file",
        &good,
        "--manufacturer-token",
        "a-manufacturer-token-of-some-length",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");

    // A missing file is named.
    let missing = path("no-such.token");
    let (code, stderr) = serve(&["--manufacturer-token-file", &missing]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("manufacturer token") && stderr.contains(&missing),
        "{stderr}"
    );

    // An empty file is refused.
    let empty = path("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    let (code, stderr) = serve(&["--manufacturer-token-file", &empty]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is empty"), "{stderr}");

    // None of those refusals left a database or key behind.
    for name in ["ta.sqlite", "otp.key"] {
        assert!(!dir.path().join(name).exists(), "{name} was created");
    }
}

/// A good token in a pipe (`<(…)` in a shell) starts the Transfer Agent.
#[test]
fn transfer_agent_serve_starts_with_a_token_from_a_pipe() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (db, key) = (path("ta.sqlite"), path("otp.key"));
    let args = [
        "transfer-agent",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        &db,
        "--otp-key",
        &key,
    ];
    // bash runs the test binary ("$0" "$@"), adding the token file option, with the token
    // in a pipe (`<(…)`), to the arguments xtt gets.
    let script = r#"TTE_CHILD_XTT_ARGS="$TTE_CHILD_XTT_ARGS"$'\n--manufacturer-token-file\n'<(printf '%s\n' a-manufacturer-token-of-some-length) exec "$0" "$@""#;
    let mut cmd = xtt_child("bash", &["-c", script], &args);
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let started = loop {
        match rx.recv_timeout(common::PEER_LIMIT) {
            Ok(line) if line.contains("Transfer Agent listening on") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "the Transfer Agent did not start: {seen:?}");
}
