//! Trust anchors from the store, end to end over 127.0.0.1 with real processes: `xtt server
//! --anchors` as a child process, devices provisioning with `xtt client provision --anchors`, a
//! DAA group rotated by `xtt anchors rotate` while the server runs, and signed updates fetched
//! over an XTT session with `xtt update fetch` from `xtt server --updates`.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{fails, group_member, ok, text, xtt, ServerProcess};
use xtt_anchors::{AnchorKind, AnchorStore, Provenance};

/// A root, a server certificate and group `name` with `members` devices (client directories
/// WITHOUT root_cert.bin: devices here trust only their anchor store).
fn setup(dir: &Path, groups: &[&str]) {
    common::root_and_server_cert(dir);
    for g in groups {
        ok(dir, &["group", "create", g]);
        ok(dir, &["group", "enroll", g, "--count", "1"]);
        assert!(!member(dir, g).join("root_cert.bin").exists());
    }
}

fn member(dir: &Path, group: &str) -> PathBuf {
    group_member(dir, group, 1)
}

fn store_import(dir: &Path, store: &str, kind: &str, file: &str, extra: &[&str]) {
    let mut args = vec!["anchors", "--store", store, "import", kind, file];
    args.extend_from_slice(extra);
    ok(dir, &args);
}

fn import_group(dir: &Path, store: &str, group: &str) {
    let gpk = format!("{group}/daa_gpk.bin");
    let bsn = format!("{group}/basename.bin");
    store_import(dir, store, "daa-group", &gpk, &["--basename", &bsn]);
}

/// `xtt server` with no `--group` (the tests name their groups, or an anchor store does).
fn start_server(dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--no-metrics", "--data-dir", "data"];
    args.extend_from_slice(extra);
    ServerProcess::start_with(dir, &[], &args)
}

fn provision(dir: &Path, group: &str, addr: SocketAddr, store: &str) -> Output {
    let m = member(dir, group);
    common::provision(dir, &m, addr, &["--anchors", store, "--timeout", "5"])
}

/// How long the tests wait for something the server does in the background (picking up a
/// change to its store, recording an identity from its writer thread): generous, for a loaded
/// machine; it takes well under a second idle.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Provisions, trying again every half second until it succeeds or `deadline` passes (for
/// changes the server picks up on its next poll of the store); the last attempt's output.
fn provision_eventually(
    dir: &Path,
    group: &str,
    addr: SocketAddr,
    store: &str,
    deadline: Instant,
) -> Output {
    loop {
        let out = provision(dir, group, addr, store);
        if out.status.success() || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn device_identities(store: &Path) -> Vec<xtt_anchors::Anchor> {
    AnchorStore::open(store)
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AnchorKind::DeviceIdentity)
        .collect()
}

#[test]
fn provisioning_with_anchors_only_from_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d, &["acme"]);
    // The server's store: the root, its certificate (vouched for by the root on import) and
    // the group. The device's store: the root only. No loose root or group file is passed.
    store_import(d, "server.db", "xtt-root", "root_cert.bin", &[]);
    store_import(d, "server.db", "xtt-server", "server_cert.bin", &[]);
    import_group(d, "server.db", "acme");
    store_import(d, "device.db", "xtt-root", "root_cert.bin", &[]);
    // A device store whose root is someone else's.
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
    store_import(d, "stranger.db", "xtt-root", "other_root.bin", &[]);

    let server = start_server(d, &["--anchors", "server.db"]);
    assert!(
        server.banner.contains("1 DAA group(s) accepted"),
        "{}",
        server.banner
    );

    // Refused: the device's store does not hold the server's root.
    let out = provision(d, "acme", server.addr, "stranger.db");
    assert!(!out.status.success());
    assert!(text(&out).contains("provisioning with"), "{}", text(&out));

    let out = provision(d, "acme", server.addr, "device.db");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("recorded      device-identity"), "{stdout}");
    let client_id = xtt_files::client_id::read(&member(d, "acme").join("client_id.txt")).unwrap();

    // The device recorded its identity, vouched for by the root it trusted.
    let dev = device_identities(&d.join("device.db"));
    assert_eq!(dev.len(), 1);
    assert!(matches!(
        dev[0].provenance,
        Provenance::ProvisionedByXtt { .. }
    ));
    assert_eq!(dev[0].name, format!("device {client_id}"));

    // The server recorded it too (from its writer thread: wait for it, bounded), vouched for
    // by its certificate and the group, so the graph links group and server to the device.
    let deadline = Instant::now() + CATCH_UP;
    let srv = loop {
        let ids = device_identities(&d.join("server.db"));
        if !ids.is_empty() || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        srv.len(),
        1,
        "the server did not record the identity within {CATCH_UP:?}"
    );
    assert_eq!(srv[0].fingerprint, dev[0].fingerprint);
    let store = AnchorStore::open(&d.join("server.db")).unwrap();
    let vouchers: Vec<AnchorKind> = store
        .edges()
        .unwrap()
        .iter()
        .filter(|e| e.to == srv[0].fingerprint)
        .map(|e| store.get(&e.from).unwrap().kind)
        .collect();
    assert!(vouchers.contains(&AnchorKind::DaaGroup), "{vouchers:?}");
    assert!(vouchers.contains(&AnchorKind::XttServer), "{vouchers:?}");
    let graph = ok(d, &["anchors", "--store", "server.db", "graph"]);
    assert!(graph.contains(&client_id.to_string()), "{graph}");
}

#[test]
fn a_store_without_the_group_refuses_and_a_missing_store_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d, &["acme"]);
    store_import(d, "server.db", "xtt-root", "root_cert.bin", &[]);
    store_import(d, "device.db", "xtt-root", "root_cert.bin", &[]);
    // The registry learns the group from a loose-file run without a store...
    drop(start_server(d, &["--group", "acme"]));
    // ...but with a store, only the store's groups count.
    let server = start_server(d, &["--anchors", "server.db"]);
    let out = provision(d, "acme", server.addr, "device.db");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("refused"), "{}", text(&out));
    drop(server);

    let err = fails(
        d,
        &[
            "server",
            "-l",
            "127.0.0.1:0",
            "--no-metrics",
            "--anchors",
            "nowhere.db",
        ],
    );
    assert!(err.contains("no anchor store here"), "{err}");
}

#[test]
fn a_group_rotation_is_seen_by_the_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d, &["acme", "beta"]);
    import_group(d, "server.db", "acme");
    store_import(d, "device.db", "xtt-root", "root_cert.bin", &[]);
    let old = AnchorStore::open(&d.join("server.db"))
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .find(|a| a.kind == AnchorKind::DaaGroup)
        .unwrap()
        .fingerprint;

    let server = start_server(d, &["--anchors", "server.db"]);
    let out = provision(d, "acme", server.addr, "device.db");
    assert!(out.status.success(), "{}", text(&out));
    let out = provision(d, "beta", server.addr, "device.db");
    assert!(!out.status.success(), "beta is not accepted yet");

    // Rotate acme's group key to beta's, from another process. The window must outlast the
    // in-window checks below on a loaded machine (they take about 1 s idle, 6 s when loaded);
    // its end is the store's own record of it, and the server checks it on its own clock.
    let window = 30;
    ok(
        d,
        &[
            "anchors",
            "--store",
            "server.db",
            "rotate",
            &old.to_hex(),
            "daa-group",
            "beta/daa_gpk.bin",
            "--basename",
            "beta/basename.bin",
            "--window",
            &window.to_string(),
        ],
    );
    let window_end = AnchorStore::open(&d.join("server.db"))
        .unwrap()
        .get(&old)
        .unwrap()
        .validity
        .not_after
        .expect("the rotated group has an end");
    // A refusal is blamed on the window only if the window had surely not ended when the server
    // decided (it decides before the client exits).
    let in_window = |what: &str| {
        let now = unix_now();
        assert!(
            now < window_end,
            "timing overrun, not a product failure: {what} finished at {now}, after the {window} s \
             window ended at {window_end}; the machine is too slow for this window"
        );
    };
    // Both groups work during the window, without a restart. The new group is tried until the
    // server has picked it up, at most for CATCH_UP and not past the window's end.
    let window_left = Duration::from_secs(window_end.saturating_sub(unix_now()));
    let out = provision_eventually(
        d,
        "beta",
        server.addr,
        "device.db",
        Instant::now() + CATCH_UP.min(window_left),
    );
    assert!(
        out.status.success(),
        "the new group was not accepted within {:?} of the rotation: {}",
        CATCH_UP.min(window_left),
        text(&out)
    );
    in_window("provisioning with the new group");
    let out = provision(d, "acme", server.addr, "device.db");
    in_window("provisioning with the old group");
    assert!(
        out.status.success(),
        "old group in the window: {}",
        text(&out)
    );

    // After the window only the new one: wait (bounded) for the server's clock to pass the end.
    let deadline = Instant::now() + Duration::from_secs(window + 30);
    while unix_now() < window_end {
        assert!(Instant::now() < deadline, "the window never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = provision(d, "acme", server.addr, "device.db");
    assert!(!out.status.success(), "old group after the window");
    assert!(text(&out).contains("refused"), "{}", text(&out));
    let out = provision(d, "beta", server.addr, "device.db");
    assert!(out.status.success(), "new group after: {}", text(&out));
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const VENDOR: &str = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe";
const CLASS: &str = "1492af14-2569-5e48-bf42-9b2d51f2ab45";

fn sign(dir: &Path, key: &str, image: &str, sequence: u64, out: &str) {
    ok(
        dir,
        &[
            "update",
            "sign",
            "--key",
            key,
            "--image",
            image,
            "--sequence",
            &sequence.to_string(),
            "--vendor-id",
            VENDOR,
            "--class-id",
            CLASS,
            "--out",
            out,
        ],
    );
}

fn fetch(dir: &Path, addr: SocketAddr, extra: &[&str]) -> Output {
    let m = member(dir, "acme");
    let addr = addr.to_string();
    let mut args = vec![
        "update",
        "fetch",
        "--server",
        &addr,
        "--client-dir",
        m.to_str().unwrap(),
        "--anchors",
        "device.db",
        "--out",
        "installed.bin",
        "--vendor-id",
        VENDOR,
        "--class-id",
        CLASS,
    ];
    args.extend_from_slice(extra);
    xtt(dir, &args)
}

/// Replaces the served update with `name`.suit/.bin.
fn publish(dir: &Path, name: &str, image: &[u8], key: &str, sequence: u64, signed_image: &[u8]) {
    let updates = dir.join("updates");
    for e in fs::read_dir(&updates).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    fs::write(dir.join("signed.img"), signed_image).unwrap();
    sign(
        dir,
        key,
        "signed.img",
        sequence,
        &format!("updates/{name}.suit"),
    );
    fs::write(updates.join(format!("{name}.bin")), image).unwrap();
}

#[test]
fn updates_are_fetched_over_a_session_and_bad_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d, &["acme"]);
    store_import(d, "device.db", "xtt-root", "root_cert.bin", &[]);
    ok(d, &["update", "keygen", "--out", "vendor"]);
    ok(d, &["update", "keygen", "--out", "rogue"]);
    store_import(
        d,
        "device.db",
        "update-key",
        "vendor.pub",
        &["--vendor-id", VENDOR, "--class-id", CLASS],
    );

    fs::create_dir(d.join("updates")).unwrap();
    let v2: Vec<u8> = (0..50_000u32)
        .map(|i| u8::try_from(i * 7 % 256).unwrap())
        .collect();
    publish(d, "fw2", &v2, "vendor.key", 2, &v2);
    let server = start_server(d, &["--group", "acme", "--updates", "updates"]);
    assert!(
        server.banner.contains("offering") && server.banner.contains("sequence 2"),
        "{}",
        server.banner
    );
    let out = provision(d, "acme", server.addr, "device.db");
    assert!(out.status.success(), "{}", text(&out));

    // A good update: installed, sequence recorded.
    let out = fetch(d, server.addr, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sequence 2 (previous none)"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(d.join("installed.bin")).unwrap(), v2);

    // The same update again, and an older one: rollbacks.
    let out = fetch(d, server.addr, &[]);
    // Said once: the reason is not repeated by each error of the chain.
    assert_eq!(
        text(&out).matches("rollback refused").count(),
        1,
        "{}",
        text(&out)
    );
    let v1 = b"firmware one".to_vec();
    publish(d, "fw1", &v1, "vendor.key", 1, &v1);
    let out = fetch(d, server.addr, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("sequence number 1 is not newer than the installed 2"),
        "{}",
        text(&out)
    );
    assert_eq!(
        fs::read(d.join("installed.bin")).unwrap(),
        v2,
        "nothing installed"
    );

    // Signed by a key the device does not trust.
    let v3 = b"firmware three".to_vec();
    publish(d, "fw3", &v3, "rogue.key", 3, &v3);
    let out = fetch(d, server.addr, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown or untrusted signer"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(d.join("installed.bin")).unwrap(), v2);

    // The right signer, but the image served is not the one signed (same size).
    let v4 = b"firmware four".to_vec();
    let mut other = v4.clone();
    other[0] ^= 1;
    publish(d, "fw4", &other, "vendor.key", 4, &v4);
    let out = fetch(d, server.addr, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("image digest does not match"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(d.join("installed.bin")).unwrap(), v2);

    // The right signer, and a served image longer than the one signed: refused when the
    // envelope is checked, before the image is fetched (the offer's length is not signed).
    let mut longer = v4.clone();
    longer.extend_from_slice(&[0u8; 40_000]);
    publish(d, "fw4", &longer, "vendor.key", 4, &v4);
    let out = fetch(d, server.addr, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!(
            "offers an image of {} bytes; the signed manifest says {}",
            longer.len(),
            v4.len()
        )),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(d.join("installed.bin")).unwrap(), v2);

    // Nothing was recorded by the refusals: the right image for sequence 4 installs, over UDP.
    publish(d, "fw4", &v4, "vendor.key", 4, &v4);
    let out = fetch(d, server.addr, &["--udp"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sequence 4 (previous 2)"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(d.join("installed.bin")).unwrap(), v4);
}
