//! A private key file that group or other users may read (as the C tool or a careless `cp`
//! leaves them) is still used, with a warning on stderr that names the file, its mode and the
//! fix; at 0600 nothing is said. The key itself is never printed.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{fails, ok, xtt};

const VENDOR: &str = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe";
const CLASS: &str = "1492af14-2569-5e48-bf42-9b2d51f2ab45";
const CLIENT_ID: &str = "0000:0000:0000:0000:0000:0000:0000:0001";

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `check` (which returns the command's stderr) with `key` at 0644, then at 0600: the first
/// must warn about it, the second not; neither may print the key's bytes.
fn warns_only_when_exposed(key: &Path, check: impl Fn() -> String) {
    let shown = key.file_name().unwrap().to_string_lossy().into_owned();
    let secret = fs::read(key).unwrap();
    chmod(key, 0o644);
    let err = check();
    let line = err
        .lines()
        .find(|l| l.contains(&shown) && l.contains("644"))
        .unwrap_or_else(|| panic!("no warning about {shown} at 0644:\n{err}"));
    // The file as the command named it, which may be relative.
    let fix = line.split("chmod 600 ").nth(1).unwrap_or_default();
    assert!(fix.trim_end().ends_with(&shown), "{line}");
    for window in secret.windows(16) {
        assert!(!err.contains(&hex(window)), "key bytes printed:\n{err}");
    }
    assert_eq!(err.matches("chmod 600").count(), 1, "warned twice:\n{err}");
    chmod(key, 0o600);
    let err = check();
    assert!(
        !err.contains("chmod 600"),
        "warning about {shown} at 0600:\n{err}"
    );
}

#[test]
fn server_key_readable_by_others_is_used_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::setup(dir, 1);
    // The port is taken, so the server loads its key and then fails to bind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let key = dir.join("server_keys.asn1.bin");
    warns_only_when_exposed(&key, || {
        fails(
            dir,
            &[
                "server",
                "--group",
                "acme",
                "--listen",
                &listen,
                "--data-dir",
                "data",
            ],
        )
    });
}

#[test]
fn device_keys_readable_by_others_are_used_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::setup(dir, 1);
    let port = closed_port();

    // DAA member secret key: provisioning reads it, then finds no server.
    let member = common::member(dir, 1);
    warns_only_when_exposed(&member.join("daa_secretkey.bin"), || {
        let out = xtt(
            &member,
            &["client", "provision", "-p", &port, "--timeout", "1"],
        );
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    });

    // Client long-term key: a session reads it, then finds no server.
    common::offline_device_dir(dir, CLIENT_ID);
    warns_only_when_exposed(&dir.join("dev/longterm_priv.bin"), || {
        let err = fails(
            dir,
            &[
                "client",
                "connect",
                "--dir",
                "dev",
                "-p",
                &port,
                "--timeout",
                "1",
            ],
        );
        assert!(err.contains("Connection refused"), "{err}");
        err
    });
}

#[test]
fn update_signing_key_readable_by_others_signs_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["update", "keygen", "--out", "vendor"]);
    fs::write(dir.join("fw.bin"), b"firmware").unwrap();
    warns_only_when_exposed(&dir.join("vendor.key"), || {
        let out = xtt(
            dir,
            &[
                "update",
                "sign",
                "--key",
                "vendor.key",
                "--image",
                "fw.bin",
                "--sequence",
                "1",
                "--vendor-id",
                VENDOR,
                "--class-id",
                CLASS,
                "--out",
                "fw.suit",
            ],
        );
        assert!(out.status.success(), "{}", common::text(&out));
        String::from_utf8(out.stderr).unwrap()
    });
}

/// `xtt info` already lists a loose mode among a file's problems; it must not also warn.
#[test]
fn info_reports_a_loose_key_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::setup(dir, 1);
    let sk = common::member(dir, 1).join("daa_secretkey.bin");
    chmod(&sk, 0o644);
    let out = xtt(dir, &["info", &sk.display().to_string()]);
    let all = common::text(&out);
    assert_eq!(all.matches("chmod 600").count(), 1, "{all}");
}
