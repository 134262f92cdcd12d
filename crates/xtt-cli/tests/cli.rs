//! The built `xtt` binary: key, certificate, info and group commands, file modes, and error
//! messages on bad input.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{fails, ok};

fn mode(p: PathBuf) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn vectors() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    dir
}

#[test]
fn help_teaches_on_every_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let top = ok(tmp.path(), &["--help"]);
    for family in ["keys", "cert", "info", "group", "completions"] {
        assert!(top.contains(family), "{family} missing from --help");
    }
    for sub in [
        &["keys", "generate"][..],
        &["cert", "root"],
        &["cert", "server"],
        &["cert", "x509"],
        &["info"],
        &["group", "create"],
        &["group", "enroll"],
        &["completions"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let help = ok(tmp.path(), &args);
        assert!(help.contains("Examples:"), "{sub:?} --help has no examples");
    }
}

/// `xtt PATH --help` as clap lays it out with room for any line (so nothing is wrapped).
fn unwrapped_help(dir: &Path, path: &[String]) -> String {
    let out = common::run(
        common::xtt_command(dir)
            .args(path)
            .arg("--help")
            .env("COLUMNS", "1000"),
        common::COMMAND_LIMIT,
    );
    assert!(
        out.status.success(),
        "xtt {path:?} --help: {}",
        common::text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands `xtt PATH --help` lists.
fn subcommands(dir: &Path, path: &[String]) -> Vec<String> {
    unwrapped_help(dir, path)
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A name sits two columns in; deeper lines continue a wrapped description.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every example in every `--help` fits in clap's default width (100 columns) as written, so
/// none is wrapped in the middle of a command; longer ones continue with `\`.
#[test]
fn help_examples_are_never_wrapped_mid_command() {
    let tmp = tempfile::tempdir().unwrap();
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let help = unwrapped_help(tmp.path(), &path);
        let examples = help
            .lines()
            .skip_while(|l| !l.starts_with("Examples"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '));
        for line in examples {
            assert!(
                line.chars().count() <= 100,
                "xtt {} --help: {} columns: {line}",
                path.join(" "),
                line.chars().count()
            );
        }
        seen += 1;
        for sub in subcommands(tmp.path(), &path) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
    }
    assert!(seen > 40, "only {seen} commands walked");
}

/// `--help` gives each top-level command's long description, `-h` its one-line summary (a
/// doc comment on the subcommand must not replace the long text).
#[test]
fn every_top_level_command_has_its_long_help() {
    let tmp = tempfile::tempdir().unwrap();
    let first = |s: &str| s.lines().next().unwrap_or_default().to_string();
    for cmd in [
        "server",
        "bench",
        "demo",
        "info",
        "completions",
        "update",
        "anchors",
    ] {
        let short = ok(tmp.path(), &[cmd, "-h"]);
        let long = ok(tmp.path(), &[cmd, "--help"]);
        assert_ne!(
            first(&short),
            first(&long),
            "`xtt {cmd} --help` starts with the one-line summary only"
        );
        assert!(
            long.len() > short.len() + 200,
            "`xtt {cmd} --help` is hardly longer than -h"
        );
    }
}

#[test]
fn root_server_and_x509_in_c_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ok(d, &["keys", "generate", "-k", "root_keys.asn1.bin"]);
    assert!(out.contains("wrote root_keys.asn1.bin"));
    assert_eq!(fs::read(d.join("root_keys.asn1.bin")).unwrap().len(), 121);
    assert_eq!(mode(d.join("root_keys.asn1.bin")), 0o600);

    // Never overwrites a key without --force.
    let before = fs::read(d.join("root_keys.asn1.bin")).unwrap();
    let err = fails(d, &["keys", "generate", "-k", "root_keys.asn1.bin"]);
    assert!(
        err.contains("root_keys.asn1.bin: already exists; refusing to overwrite it (pass --force"),
        "{err}"
    );
    assert_eq!(fs::read(d.join("root_keys.asn1.bin")).unwrap(), before);

    ok(
        d,
        &[
            "cert",
            "root",
            "--root-id",
            "00112233445566778899aabbccddeeff",
        ],
    );
    let root = fs::read(d.join("root_cert.bin")).unwrap();
    assert_eq!(root.len(), 81);
    assert_eq!(hex::encode(&root[..16]), "00112233445566778899aabbccddeeff");
    assert_eq!(
        root[16..],
        before[56..],
        "root certificate carries the key file's public key"
    );
    assert_eq!(mode(d.join("root_cert.bin")), 0o644);

    ok(d, &["cert", "server", "--generate-key"]);
    assert_eq!(fs::read(d.join("server_cert.bin")).unwrap().len(), 169);
    assert_eq!(mode(d.join("server_keys.asn1.bin")), 0o600);
    let info = ok(d, &["info", "server_cert.bin"]);
    assert!(
        info.contains("XTT server certificate") && info.contains("verifies under root_cert.bin"),
        "{info}"
    );

    // A root key that is not the root certificate's is refused.
    ok(d, &["keys", "generate", "-k", "other.asn1.bin"]);
    let err = fails(
        d,
        &["cert", "server", "-k", "other.asn1.bin", "-c", "x.bin"],
    );
    assert!(
        err.contains("other.asn1.bin: this key is not the key of root 00112233"),
        "{err}"
    );
    assert!(!d.join("x.bin").exists());

    ok(
        d,
        &[
            "cert",
            "x509",
            "-k",
            "server_keys.asn1.bin",
            "--client-id",
            "0001:0203:0405:0607:0809:0A0B:0C0D:0E0F",
        ],
    );
    let info = ok(d, &["info", "cert.bin"]);
    assert!(info.contains("XTT long-term X.509 certificate"), "{info}");
    assert!(
        info.contains("0001:0203:0405:0607:0809:0A0B:0C0D:0E0F"),
        "{info}"
    );
    assert!(
        info.lines()
            .any(|l| l.trim_start().starts_with("self-signature")
                && l.trim_end().ends_with("verifies")),
        "{info}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["info", "--json", "root_cert.bin"])).unwrap();
    assert_eq!(json[0]["kind"], "XTT root certificate");
    assert_eq!(
        json[0]["fields"]["root id"],
        "00112233445566778899aabbccddeeff"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let err = fails(d, &["cert", "root"]);
    assert!(
        err.contains("root_keys.asn1.bin: no key pair there; create one with `xtt keys generate"),
        "{err}"
    );

    fs::write(d.join("root_keys.asn1.bin"), b"garbage").unwrap();
    let err = fails(d, &["cert", "root"]);
    assert!(
        err.contains("root_keys.asn1.bin: not a valid ECDSA P-256 key pair file"),
        "{err}"
    );

    ok(d, &["keys", "generate", "-k", "k.bin"]);
    let err = fails(d, &["cert", "root", "-k", "k.bin", "--root-id", "abc"]);
    assert!(err.contains("--root-id must be 32 hex digits"), "{err}");

    fs::write(d.join("root_cert.bin"), [4u8; 80]).unwrap();
    let err = fails(d, &["cert", "server", "--generate-key"]);
    assert!(
        err.contains("root_cert.bin: XTT root certificate must be 81 bytes, this file has 80"),
        "{err}"
    );

    fs::write(d.join("blob"), [9u8; 5]).unwrap();
    let err = fails(d, &["info", "blob"]);
    assert!(
        err.contains("blob: not a valid XTT or DAA file: 5 bytes match none"),
        "{err}"
    );

    let err = fails(d, &["group", "enroll", "nowhere"]);
    assert!(err.contains("nowhere/ipk.bin: cannot read"), "{err}");

    let err = fails(d, &["keys", "frobnicate"]);
    assert!(err.contains("unrecognized subcommand"), "{err}");

    // Session flags that would do nothing are refused, not ignored.
    let err = fails(
        d,
        &["server", "--no-sessions", "--forward-udp", "127.0.0.1:5000"],
    );
    assert!(
        err.contains("--forward-udp needs sessions, which are off"),
        "{err}"
    );
    fs::write(d.join("off.toml"), "[sessions]\nenabled = false\n").unwrap();
    let err = fails(
        d,
        &["server", "--config", "off.toml", "--max-sessions", "9"],
    );
    assert!(err.contains("--max-sessions needs sessions"), "{err}");
    for flag in [
        "--handover-listen=127.0.0.1:1",
        "--handover-advertise=h:1",
        "--session-reserve=5",
        "--node-lease-ms=5",
    ] {
        let err = fails(d, &["server", flag]);
        assert!(err.contains("--session-key"), "{flag}: {err}");
    }
}

/// `--generate-key --force` replaces a key only when the whole command succeeds: a refused
/// root id, a root key that is not the root's, or an output that cannot be written leaves the
/// old key, and the certificate that names it, as they were.
#[test]
fn a_refused_certificate_command_keeps_the_old_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &["cert", "root", "--generate-key"]);
    ok(d, &["cert", "server", "--generate-key"]);
    let read = |name: &str| fs::read(d.join(name)).unwrap();
    let files = [
        "root_keys.asn1.bin",
        "root_cert.bin",
        "server_keys.asn1.bin",
        "server_cert.bin",
    ];
    let before: Vec<_> = files.iter().map(|f| read(f)).collect();
    let unchanged = |why: &str| {
        for (f, old) in files.iter().zip(&before) {
            assert_eq!(&read(f), old, "{f} changed after {why}");
        }
    };

    let err = fails(
        d,
        &[
            "cert",
            "root",
            "--generate-key",
            "--force",
            "--root-id",
            "zz",
        ],
    );
    assert!(err.contains("--root-id must be 32 hex digits"), "{err}");
    unchanged("a bad --root-id");

    let nowhere = d.join("nowhere/root_cert.bin");
    let err = fails(
        d,
        &[
            "cert",
            "root",
            "--generate-key",
            "--force",
            "-c",
            nowhere.to_str().unwrap(),
        ],
    );
    assert!(err.contains("nowhere/root_cert.bin: cannot write"), "{err}");
    unchanged("an unwritable root certificate");

    // A valid root that is not the one root_keys.asn1.bin belongs to.
    ok(
        d,
        &[
            "cert",
            "root",
            "--generate-key",
            "-k",
            "other_keys.bin",
            "-c",
            "other_root.bin",
        ],
    );
    let err = fails(
        d,
        &[
            "cert",
            "server",
            "--generate-key",
            "--force",
            "-r",
            "other_root.bin",
        ],
    );
    assert!(err.contains("this key is not the key of root"), "{err}");
    unchanged("a wrong root");

    // Without --force an existing certificate stops the command before a new key is written.
    fs::remove_file(d.join("server_keys.asn1.bin")).unwrap();
    let err = fails(d, &["cert", "server", "--generate-key"]);
    assert!(err.contains("server_cert.bin: already exists"), "{err}");
    assert!(!d.join("server_keys.asn1.bin").exists());
}

/// Output into a pipe nobody reads ends the command quietly with the shell's SIGPIPE status,
/// and output to a full disk is an error with status 1; neither panics (status 101).
#[test]
fn a_closed_or_full_stdout_is_not_a_panic() {
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &["cert", "root", "--generate-key"]);
    // Reading commands need a registry and an anchor store to read.
    ok(d, &["registry", "migrate", "--storage", "sqlite:r.sqlite"]);
    ok(
        d,
        &[
            "anchors",
            "--store",
            "a.db",
            "import",
            "xtt-root",
            "root_cert.bin",
        ],
    );
    let commands: [&[&str]; 5] = [
        &["info", "root_cert.bin"],
        &["completions", "bash"],
        &["keys", "generate", "-k", "k.bin", "--force"],
        &["anchors", "--store", "a.db", "list"],
        &[
            "registry",
            "export",
            "--storage",
            "sqlite:r.sqlite",
            "--format",
            "csv",
        ],
    ];
    for args in commands {
        // A socket whose other end is already closed: every write fails with EPIPE.
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(ours);
        let out = common::xtt_command(d)
            .args(args)
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");

        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = common::xtt_command(d)
            .args(args)
            .stdout(Stdio::from(full))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: cannot write to stdout: No space left on device"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn group_create_and_enroll_with_progress_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &["cert", "root", "--generate-key"]);
    let out = ok(d, &["group", "create", "acme", "--basename", "BASENAME"]);
    assert!(out.contains("group id"), "{out}");
    assert_eq!(mode(d.join("acme/isk.bin")), 0o600);
    let out = ok(
        d,
        &[
            "group",
            "enroll",
            "acme",
            "--count",
            "4",
            "--root",
            "root_cert.bin",
        ],
    );
    assert!(out.contains("enrolled 4 member(s)"), "{out}");
    for i in 1..=4 {
        let m = d.join(format!("acme/members/{i:06}"));
        assert_eq!(mode(m.join("daa_secretkey.bin")), 0o600);
        assert_eq!(
            fs::read(m.join("root_cert.bin")).unwrap(),
            fs::read(d.join("root_cert.bin")).unwrap()
        );
        assert_eq!(fs::read(m.join("basename.bin")).unwrap(), b"BASENAME");
    }
    let info = ok(d, &["info", "acme"]);
    assert!(
        info.contains("DAA group directory") && info.contains("members   4"),
        "{info}"
    );
    let err = fails(d, &["group", "create", "acme"]);
    assert!(err.contains("acme: directory is not empty"), "{err}");
}

#[test]
fn reads_the_c_sample_files() {
    let tmp = tempfile::tempdir().unwrap();
    let client = vectors().join("xaptum-data/client");
    let out = ok(tmp.path(), &["info", client.to_str().unwrap()]);
    assert!(out.contains("XTT client directory"), "{out}");
    // SHA-256(gpk ‖ "BASENAME") of the sample group, as in gid.bin.
    let gid = hex::encode(fs::read(client.join("gid.bin")).unwrap());
    assert!(out.contains(&gid), "{out}");
    for f in [
        "daa_gpk.bin",
        "daa_cred.bin",
        "basename.bin",
        "gid.bin",
        "daa_secretkey.bin",
    ] {
        ok(tmp.path(), &["info", client.join(f).to_str().unwrap()]);
    }
}

#[test]
fn completions_for_each_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(tmp.path(), &["completions", shell]);
        assert!(
            script.contains("xtt") && script.contains("enroll"),
            "{shell}"
        );
    }
}

/// The bound on every command these tests run to completion (`common::run`, under `xtt`, `ok`,
/// `fails` and `provision`): a command that outlives it is killed, and the failure names it and
/// shows what it printed; one that finishes gives what `Command::output` gives.
#[test]
fn a_command_that_hangs_is_killed_and_reported() {
    let mut hangs = Command::new("sh");
    hangs.args(["-c", "echo started; echo on stderr >&2; exec sleep 300"]);
    let started = Instant::now();
    let failure = std::panic::catch_unwind(AssertUnwindSafe(|| {
        common::run(&mut hangs, Duration::from_secs(5))
    }))
    .expect_err("a command that hangs fails the test");
    assert!(started.elapsed() < Duration::from_secs(60), "not bounded");
    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    for part in [
        "did not finish within 5s (killed)",
        "sleep 300",
        "stdout:\nstarted\n",
        "stderr:\non stderr\n",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }

    let out = common::run(
        Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
}
