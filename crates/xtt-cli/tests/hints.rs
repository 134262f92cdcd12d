//! What the `xtt` binary tells its user when something is off: help that matches what is
//! accepted, refusals that list their likely causes, hints that can be pasted as printed, and
//! values that would do nothing refused up front.

mod common;

use common::{fails, ok, ServerProcess};

/// Every `-s` accepts suites 1-6, and every help says so (5 and 6 do not encrypt).
#[test]
fn every_suite_option_says_1_to_6() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for cmd in [
        &["client", "provision"][..],
        &["client", "connect"],
        &["bench"],
        &["demo"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = common::run(
            common::xtt_command(d).args(&args).env("COLUMNS", "1000"),
            common::COMMAND_LIMIT,
        );
        let help = String::from_utf8(help.stdout).unwrap();
        let line = help
            .lines()
            .skip_while(|l| !l.contains("--suitespec"))
            .nth(1)
            .unwrap_or_default();
        assert!(
            line.contains("1-6 (5 and 6 authenticate records without encrypting them)"),
            "xtt {cmd:?} --help: {line}"
        );
        assert!(!help.contains("1-4"), "xtt {cmd:?} --help: {help}");
    }
    // What the help says is what is accepted.
    let err = fails(d, &["bench", "-s", "7", "--handshakes", "1"]);
    assert!(err.contains("unknown suite \"7\""), "{err}");
}

/// A session handshake the server refuses with its Error message (which carries no reason)
/// names the likely causes.
#[test]
fn a_refused_session_handshake_says_what_to_check() {
    let tmp = common::deployment(1);
    let d = tmp.path();
    let device = common::member(d, 1);

    let server = ServerProcess::start(d, &["--no-sessions"]);
    common::provisioned(d, &device, server.addr);
    let out = common::run(
        common::xtt_command(d)
            .args(["client", "connect", "--dir", device.to_str().unwrap()])
            .args(["-p", &server.addr.port().to_string(), "--timeout", "5"]),
        common::COMMAND_LIMIT,
    );
    let err = common::text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("peer sent an Error message (the server refused")
            && err.contains("sessions are not enabled on the server")
            && err.contains("ClientID is unknown to the server's registry")
            && err.contains("long-term key"),
        "{err}"
    );
}

/// An update fetch from a server that has sessions but no `--updates` (it echoes each request)
/// says so, instead of "the server did not answer".
#[test]
fn an_update_fetch_from_a_server_without_updates_says_so() {
    let tmp = common::deployment(1);
    let d = tmp.path();
    let device = common::member(d, 1);
    let server = ServerProcess::start(d, &[]);
    common::provisioned(d, &device, server.addr);
    ok(
        d,
        &[
            "anchors",
            "--store",
            "device.db",
            "import",
            "xtt-root",
            "root_cert.bin",
        ],
    );
    let addr = server.addr.to_string();
    let err = fails(
        d,
        &[
            "update",
            "fetch",
            "--server",
            &addr,
            "--client-dir",
            device.to_str().unwrap(),
            "--anchors",
            "device.db",
            "--out",
            "installed.bin",
            "--vendor-id",
            "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe",
            "--class-id",
            "1492af14-2569-5e48-bf42-9b2d51f2ab45",
            "--timeout",
            "1",
        ],
    );
    assert!(
        err.contains("sent each request back unchanged")
            && err.contains("does it run with --updates DIR?"),
        "{err}"
    );
    assert!(!err.contains("did not answer"), "{err}");
}

/// The import command `update keygen` prints works once its placeholders are filled in.
#[test]
fn the_update_key_import_hint_works_as_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(d, &["update", "keygen", "--out", "vendor"]);
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("xtt anchors import update-key"))
        .unwrap_or_else(|| panic!("no import command in: {out}"));
    let mut args: Vec<&str> = line
        .split_whitespace()
        .skip(1)
        .map(|w| match w {
            "VENDOR_UUID" => "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe",
            "CLASS_UUID" => "1492af14-2569-5e48-bf42-9b2d51f2ab45",
            w => w,
        })
        .collect();
    args.splice(1..1, ["--store", "device.db"]);
    let imported = ok(d, &args);
    assert!(imported.contains("update-key"), "{imported}");
}

/// A key or certificate path that is a directory is refused as such, without a `--force` hint
/// that could not help.
#[test]
fn a_directory_is_not_taken_for_an_output_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("kd")).unwrap();
    for args in [
        &["keys", "generate", "-k", "kd"][..],
        &["keys", "generate", "-k", "kd", "--force"],
        &["cert", "root", "--generate-key", "-k", "kd"],
        &["cert", "root", "--generate-key", "-c", "kd"],
    ] {
        let err = fails(d, args);
        assert!(
            err.contains("kd: is a directory; give the path of a file"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("--force"), "{args:?}: {err}");
    }
    assert!(!d.join("root_keys.asn1.bin").exists(), "nothing written");
}

/// A file of the wrong kind given to `cert` is named for what it is.
#[test]
fn a_file_of_the_wrong_kind_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    common::root_and_server_cert(d);
    let err = fails(d, &["cert", "root", "-k", "root_cert.bin"]);
    assert!(
        err.contains(
            "root_cert.bin: this is an XTT root certificate (81 bytes), not an ECDSA P-256 key pair"
        ),
        "{err}"
    );
    let err = fails(
        d,
        &["cert", "server", "-r", "server_cert.bin", "-c", "s.bin"],
    );
    assert!(
        err.contains(
            "server_cert.bin: this is an XTT server certificate (169 bytes), not an XTT root \
             certificate"
        ),
        "{err}"
    );
}

/// Zero handshakes or a zero timeout would only produce an empty report or a "timed out":
/// refused when the command line is read.
#[test]
fn zero_counts_and_timeouts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for args in [
        &["bench", "-g", "acme", "--handshakes", "0"][..],
        &["bench", "-g", "acme", "--timeout", "0"],
        &["client", "provision", "--timeout", "0"],
        &["client", "connect", "--timeout", "0"],
    ] {
        let out = common::xtt(d, args);
        let err = common::text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("invalid value '0'") && err.contains("1.."),
            "{args:?}: {err}"
        );
    }
}
