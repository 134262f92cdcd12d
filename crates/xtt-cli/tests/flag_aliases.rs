//! One concept, one set of spellings: every subcommand that takes an anchor store, a provisioned
//! device directory, a transport or an output file accepts each spelling another subcommand
//! uses for it (the old ones keep working), and both spellings do the same thing.

mod common;

use std::fs;
use std::path::Path;

use common::{fails, ok, xtt};

const VENDOR: &str = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe";
const CLASS: &str = "1492af14-2569-5e48-bf42-9b2d51f2ab45";
const CLIENT_ID: &str = "0000:0000:0000:0000:0000:0000:0000:0001";

/// A TCP and UDP port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

/// A root certificate, an anchor store `device.db` trusting it, and a device directory `dev`
/// with an identity as `xtt client provision` writes it (made offline: no server needed).
fn device(dir: &Path) {
    ok(dir, &["cert", "root", "--generate-key"]);
    ok(
        dir,
        &[
            "anchors",
            "--store",
            "device.db",
            "import",
            "xtt-root",
            "root_cert.bin",
        ],
    );
    common::offline_device_dir(dir, CLIENT_ID);
}

/// `xtt update fetch` against a closed port, with `flags` for the store, directory, output and
/// transport: its stderr (it must fail).
fn fetch(dir: &Path, port: &str, flags: &[&str]) -> String {
    let server = format!("127.0.0.1:{port}");
    let mut args = vec![
        "update",
        "fetch",
        "--server",
        &server,
        "--vendor-id",
        VENDOR,
        "--class-id",
        CLASS,
        "--timeout",
        "1",
    ];
    args.extend_from_slice(flags);
    fails(dir, &args)
}

/// `xtt client connect` against a closed port: its stderr (it must fail).
fn connect(dir: &Path, port: &str, flags: &[&str]) -> String {
    let mut args = vec!["client", "connect", "-p", port, "--timeout", "1"];
    args.extend_from_slice(flags);
    fails(dir, &args)
}

#[test]
fn the_anchor_store_is_both_store_and_anchors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    device(dir);
    // `xtt anchors` (and update verify) took --store; --anchors names the same store.
    let listed = ok(dir, &["anchors", "--store", "device.db", "list"]);
    assert!(listed.contains("xtt-root"), "{listed}");
    assert_eq!(
        ok(dir, &["anchors", "--anchors", "device.db", "list"]),
        listed
    );
    assert_eq!(
        ok(dir, &["anchors", "list", "--anchors", "device.db"]),
        listed
    );
    let missing = fails(dir, &["anchors", "--anchors", "typo.db", "list"]);
    assert!(missing.contains("no anchor store at typo.db"), "{missing}");
    assert!(!dir.join("typo.db").exists());
    let verify = |flag: &str| {
        fails(
            dir,
            &[
                "update",
                "verify",
                "fw.suit",
                "--image",
                "fw.bin",
                "--vendor-id",
                VENDOR,
                "--class-id",
                CLASS,
                flag,
                "device.db",
            ],
        )
    };
    assert_eq!(verify("--anchors"), verify("--store"));

    // update fetch (and server, client provision, tte services) took --anchors; --store too.
    let port = closed_port();
    let common = ["--client-dir", "dev", "--out", "fw.bin"];
    let with = |flag: &str, store: &str| {
        let mut f = common.to_vec();
        f.extend_from_slice(&[flag, store]);
        fetch(dir, &port, &f)
    };
    let by_anchors = with("--anchors", "device.db");
    assert!(by_anchors.contains("Connection refused"), "{by_anchors}");
    assert_eq!(with("--store", "device.db"), by_anchors);
    assert!(with("--store", "typo.db").contains("typo.db: no anchor store here"));
    assert_eq!(with("--anchors", "typo.db"), with("--store", "typo.db"));

    for cmd in [
        &["server"][..],
        &["client", "provision"],
        &["update", "fetch"],
        &["tte", "transfer-agent", "serve"],
        &["tte", "controller", "serve"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = ok(dir, &args);
        assert!(help.contains("--store"), "xtt {cmd:?} --help: {help}");
    }
    assert!(ok(dir, &["anchors", "--help"]).contains("--anchors"));
}

#[test]
fn the_device_directory_is_dir_client_dir_and_xtt_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    device(dir);
    let port = closed_port();

    // client connect took --dir.
    let by_dir = connect(dir, &port, &["--dir", "dev"]);
    assert!(
        by_dir.contains(&format!("as ClientID {CLIENT_ID}")),
        "{by_dir}"
    );
    assert_eq!(connect(dir, &port, &["--client-dir", "dev"]), by_dir);
    assert_eq!(connect(dir, &port, &["--xtt-dir", "dev"]), by_dir);

    // update fetch took --client-dir.
    let store = ["--anchors", "device.db", "--out", "fw.bin"];
    let with = |flag: &str, d: &str| {
        let mut f = store.to_vec();
        f.extend_from_slice(&[flag, d]);
        fetch(dir, &port, &f)
    };
    let by_client_dir = with("--client-dir", "dev");
    assert!(
        by_client_dir.contains("Connection refused"),
        "{by_client_dir}"
    );
    assert_eq!(with("--dir", "dev"), by_client_dir);
    assert_eq!(with("--xtt-dir", "dev"), by_client_dir);
    let nothing = with("--dir", "nodev");
    assert!(
        nothing.contains("reading the identity in nodev"),
        "{nothing}"
    );
    assert_eq!(with("--client-dir", "nodev"), nothing);

    // client provision took --dir: a directory without DAA files is refused, by any name.
    let provision = |flag: &str| {
        fails(
            dir,
            &[
                "client",
                "provision",
                flag,
                "empty",
                "-p",
                &port,
                "--timeout",
                "1",
            ],
        )
    };
    fs::create_dir(dir.join("empty")).unwrap();
    let by_dir = provision("--dir");
    assert!(by_dir.contains("empty"), "{by_dir}");
    assert_eq!(provision("--client-dir"), by_dir);
    assert_eq!(provision("--xtt-dir"), by_dir);

    // tte device fetch took --xtt-dir; the others are accepted (the missing secrets file is
    // what stops it).
    let tte = |flag: &str| {
        fails(
            dir,
            &[
                "tte",
                "device",
                "fetch",
                "--secrets",
                "nothere.json",
                flag,
                "dev.xtt",
            ],
        )
    };
    let by_xtt_dir = tte("--xtt-dir");
    assert!(by_xtt_dir.contains("nothere.json"), "{by_xtt_dir}");
    assert_eq!(tte("--client-dir"), by_xtt_dir);
    assert_eq!(tte("--dir"), by_xtt_dir);
}

#[test]
fn udp_is_both_transport_udp_and_udp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    device(dir);
    let port = closed_port();

    // client connect says which transport it tried.
    let udp = connect(dir, &port, &["--dir", "dev", "--transport", "udp"]);
    assert!(udp.contains("over UDP"), "{udp}");
    assert_eq!(connect(dir, &port, &["--dir", "dev", "--udp"]), udp);
    let tcp = connect(dir, &port, &["--dir", "dev"]);
    assert!(tcp.contains("over TCP"), "{tcp}");
    assert_eq!(
        connect(dir, &port, &["--dir", "dev", "--transport", "tcp"]),
        tcp
    );

    // update fetch took --udp: a refused UDP datagram is an i/o error, a refused TCP
    // connection a connect error.
    let base = [
        "--client-dir",
        "dev",
        "--anchors",
        "device.db",
        "--out",
        "fw.bin",
    ];
    let with = |extra: &[&str]| {
        let mut f = base.to_vec();
        f.extend_from_slice(extra);
        fetch(dir, &port, &f)
    };
    let udp = with(&["--udp"]);
    assert!(udp.contains("i/o: Connection refused"), "{udp}");
    assert_eq!(with(&["--transport", "udp"]), udp);
    let tcp = with(&[]);
    assert!(tcp.contains("connect: Connection refused"), "{tcp}");
    assert_eq!(with(&["--transport", "tcp"]), tcp);

    // Both at once is refused, before anything runs.
    for cmd in [
        &["update", "fetch"][..],
        &["client", "connect"],
        &["bench", "--group", "g"],
    ] {
        let mut args = cmd.to_vec();
        args.extend_from_slice(&["--udp", "--transport", "tcp"]);
        let out = xtt(dir, &args);
        assert_eq!(out.status.code(), Some(2), "xtt {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot be used with"), "xtt {args:?}: {err}");
    }
    assert!(!dir.join("fw.bin").exists());
}

#[test]
fn the_output_file_is_both_out_and_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    device(dir);

    // registry export took -o/--output.
    ok(
        dir,
        &["registry", "migrate", "--storage", "sqlite:reg.sqlite"],
    );
    for (flag, file) in [("-o", "a.csv"), ("--output", "b.csv"), ("--out", "c.csv")] {
        ok(
            dir,
            &[
                "registry",
                "export",
                "--storage",
                "sqlite:reg.sqlite",
                "--format",
                "csv",
                flag,
                file,
            ],
        );
    }
    let a = fs::read(dir.join("a.csv")).unwrap();
    assert!(!a.is_empty());
    assert_eq!(fs::read(dir.join("b.csv")).unwrap(), a);
    assert_eq!(fs::read(dir.join("c.csv")).unwrap(), a);

    // --out elsewhere: update keygen, anchors export, update fetch.
    ok(dir, &["update", "keygen", "--output", "vendor"]);
    assert!(dir.join("vendor.key").is_file() && dir.join("vendor.pub").is_file());
    let listed = ok(dir, &["anchors", "--store", "device.db", "list"]);
    let fp = listed
        .split_whitespace()
        .find(|w| w.len() >= 8 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no fingerprint in {listed}"));
    for (flag, file) in [("--out", "r1.bin"), ("--output", "r2.bin")] {
        ok(
            dir,
            &["anchors", "--store", "device.db", "export", fp, flag, file],
        );
    }
    assert_eq!(
        fs::read(dir.join("r1.bin")).unwrap(),
        fs::read(dir.join("root_cert.bin")).unwrap()
    );
    assert_eq!(
        fs::read(dir.join("r2.bin")).unwrap(),
        fs::read(dir.join("root_cert.bin")).unwrap()
    );
    let port = closed_port();
    let base = ["--client-dir", "dev", "--anchors", "device.db"];
    let with = |flag: &str| {
        let mut f = base.to_vec();
        f.extend_from_slice(&[flag, "fw.bin"]);
        fetch(dir, &port, &f)
    };
    assert_eq!(with("--output"), with("--out"));
    let help = ok(dir, &["registry", "export", "--help"]);
    assert!(help.contains("--out"), "{help}");
}

#[test]
fn the_server_is_both_server_and_serverhost_port() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Group `acme` with one member that can start provisioning, and a provisioned `dev`.
    common::setup(dir, 1);
    common::offline_device_dir(dir, CLIENT_ID);
    let member = common::member(dir, 1);
    let member = member.to_str().unwrap();
    let port = closed_port();

    // bench and update fetch took --server HOST:PORT; client provision and connect take it
    // too, besides the C client's -a HOST -p PORT.
    for cmd in [
        &["client", "provision", "--dir", member][..],
        &["client", "connect", "--dir", "dev"],
    ] {
        let run = |addr: &[&str]| {
            let mut args = cmd.to_vec();
            args.extend_from_slice(&["--timeout", "1"]);
            args.extend_from_slice(addr);
            fails(dir, &args)
        };
        let by_a_p = run(&["-a", "127.0.0.1", "-p", &port]);
        assert!(
            by_a_p.contains(&format!("127.0.0.1:{port}")) && by_a_p.contains("refused"),
            "xtt {cmd:?}: {by_a_p}"
        );
        let server = format!("127.0.0.1:{port}");
        assert_eq!(run(&["--server", &server]), by_a_p, "xtt {cmd:?}");
        assert_eq!(
            run(&["--serverhost", "127.0.0.1", "--port", &port]),
            by_a_p,
            "xtt {cmd:?}"
        );
        // A host name, and IPv6 in brackets, as -a takes them.
        let named = run(&["-a", "localhost", "-p", &port]);
        assert_eq!(run(&["--server", &format!("localhost:{port}")]), named);
        let v6 = run(&["-a", "::1", "-p", &port]);
        assert!(v6.contains(&format!("[::1]:{port}")), "xtt {cmd:?}: {v6}");
        assert_eq!(run(&["--server", &format!("[::1]:{port}")]), v6);

        // --server with -a or -p is a usage error, before anything runs; so is a malformed one.
        for (addr, says) in [
            (
                &["--server", &server, "-a", "127.0.0.1"][..],
                "cannot be used with",
            ),
            (&["--server", &server, "-p", &port], "cannot be used with"),
            (&["-p", &port, "--server", &server], "cannot be used with"),
            (
                &["--server", &server, "--serverhost", "h"],
                "cannot be used with",
            ),
            (&["--server", "::1:4444"], "brackets"),
            (&["--server", "10.0.0.5"], "HOST:PORT"),
            (&["--server", "h:99999"], "not a port"),
        ] {
            let mut args = cmd.to_vec();
            args.extend_from_slice(addr);
            let out = xtt(dir, &args);
            assert_eq!(out.status.code(), Some(2), "xtt {args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(says), "xtt {args:?}: {err}");
        }

        // The help says so, with an example.
        let mut args = cmd[..2].to_vec();
        args.push("--help");
        let help = ok(dir, &args);
        // (Compared word by word: clap wraps help to the terminal's width.)
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("--server <HOST:PORT>"), "{help}");
        assert!(words.contains("-a HOST and -p PORT, not both"), "{help}");
        let name = cmd[..2].join(" ");
        assert!(
            words.contains(&format!(
                "xtt {name} --dir dev1 --server xtt.example.net:4444"
            )),
            "xtt {name} --help has no example with --server:\n{help}"
        );
    }
    // Nothing was provisioned.
    assert!(!Path::new(member).join("client_id.txt").exists());
}
