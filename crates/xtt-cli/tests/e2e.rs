//! End to end over 127.0.0.1 with real processes: `xtt server` as a child process, devices
//! provisioned with `xtt client provision`, the registry read back from its SQLite file.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::{deployment, member, ok, provision, registry, serving, xtt, ServerProcess};
use xtt_files::{client_id, keypair, x509};
use xtt_proto::ClientId;
use xtt_registry::{Durability, Registry, SqliteRegistry};

#[test]
fn provision_with_the_binary_writes_the_c_client_files() {
    let tmp = deployment(4);
    let d = tmp.path();
    // A second group the server does not know, and a root the server's certificate is not from.
    ok(d, &["group", "create", "other"]);
    ok(d, &["group", "enroll", "other", "--root", "root_cert.bin"]);
    ok(
        d,
        &[
            "cert",
            "root",
            "--generate-key",
            "-k",
            "bad_root_keys.asn1.bin",
            "-c",
            "bad_root.bin",
        ],
    );

    let server = ServerProcess::start(d, &[]);
    let suites = [
        "X25519_LRSW_ECDSAP256_CHACHA20POLY1305_SHA512",
        "X25519_LRSW_ECDSAP256_CHACHA20POLY1305_BLAKE2B",
        "X25519_LRSW_ECDSAP256_AES256GCM_SHA512",
        "X25519_LRSW_ECDSAP256_AES256GCM_BLAKE2B",
    ];
    let mut ids = Vec::new();
    for (i, suite) in suites.iter().enumerate() {
        let m = member(d, i + 1);
        let out = provision(d, &m, server.addr, &["-s", suite]);
        assert!(
            out.status.success(),
            "{suite}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = fs::read(m.join("client_id.txt")).unwrap();
        assert_eq!(text.len(), 40);
        assert_eq!(text[39], 0, "NUL-terminated as the C client writes it");
        let id = client_id::read(&m.join("client_id.txt")).unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("provisioned ClientID {id}"))
        );
        assert_eq!(
            fs::metadata(m.join("longterm_priv.bin"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let key = keypair::read(&m.join("longterm_priv.bin")).unwrap();
        let cert = x509::read(&m.join("longterm_cert.bin")).unwrap();
        assert_eq!(cert.client_id, id);
        assert_eq!(&cert.public_key, key.public_key());
        ids.push((id, *key.public_key()));
    }
    // A returning device keeps its ClientID; its new key replaces the old one.
    let out = provision(d, &member(d, 1), server.addr, &[]);
    assert!(out.status.success());
    assert_eq!(
        client_id::read(&member(d, 1).join("client_id.txt")).unwrap(),
        ids[0].0
    );
    ids[0].1 = *keypair::read(&member(d, 1).join("longterm_priv.bin"))
        .unwrap()
        .public_key();
    let info = ok(d, &["info", member(d, 1).to_str().unwrap()]);
    assert!(info.contains(&ids[0].0.to_string()), "{info}");

    // Wrong group: refused by the server, and the device's files are untouched.
    let o = d.join("other/members/000001");
    let out = provision(d, &o, server.addr, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the server refused the handshake"), "{err}");
    assert!(!o.join("client_id.txt").exists());

    // Bad root: the client refuses the server's certificate.
    let out = provision(d, &member(d, 2), server.addr, &["-e", "bad_root.bin"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("provisioning with 127.0.0.1:") && err.contains("handshake failed"),
        "{err}"
    );

    // Unknown suite name, and a missing input file, are named.
    let out = provision(d, &member(d, 2), server.addr, &["-s", "X25519_NOPE"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown suite \"X25519_NOPE\""));
    let out = provision(d, &d.join("nowhere"), server.addr, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere/root_cert.bin: cannot read"));

    // An output that cannot be written is found before connecting: nothing is registered
    // (the count below stays 4) and no ClientID or certificate is written without its key.
    let (fresh_id, fresh_cert) = (d.join("fresh_id.txt"), d.join("fresh_cert.bin"));
    let out = provision(
        d,
        &member(d, 1),
        server.addr,
        &[
            "-i",
            fresh_id.to_str().unwrap(),
            "-b",
            fresh_cert.to_str().unwrap(),
            "-v",
            d.join("nodir/longterm_priv.bin").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("nodir/longterm_priv.bin: cannot write"),
        "{err}"
    );
    assert!(!err.contains("provisioning with"), "{err}");
    assert!(!fresh_id.exists() && !fresh_cert.exists());

    server.stop();
    let reg = registry(d);
    assert_eq!(reg.identity_count().unwrap(), 4);
    for (id, key) in &ids {
        let rec = reg.identity(id).unwrap().expect("ClientID in the registry");
        assert_eq!(&rec.longterm_key, key);
    }
}

/// Per device: every ClientID it was told, and whether its last attempt succeeded.
type Told = HashMap<usize, (Vec<ClientId>, bool)>;

/// kill -9 of the server process while devices provision; restart on the same data directory.
/// Every ClientID a device was told is in the registry exactly once, and no device is ever told
/// two different ClientIDs (a registration lost in the crash would make the restarted server
/// assign a new one).
#[test]
fn kill_9_during_load_then_restart_loses_no_identity() {
    const DEVICES: usize = 12;
    const BEFORE_KILL: usize = 20;
    const AFTER_RESTART: usize = 20;
    let (tmp, server) = serving(DEVICES);
    let d = tmp.path().to_path_buf();
    let addr = Arc::new(RwLock::new(server.addr));
    let successes = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Per device: every ClientID it was told, and whether its last attempt succeeded.
    let told: Arc<Mutex<Told>> = Arc::default();
    let last_error: Arc<Mutex<String>> = Arc::default();

    let workers: Vec<_> = (1..=DEVICES)
        .map(|i| {
            let (d, addr, successes, failures, stop, told, last_error) = (
                d.clone(),
                addr.clone(),
                successes.clone(),
                failures.clone(),
                stop.clone(),
                told.clone(),
                last_error.clone(),
            );
            std::thread::spawn(move || {
                let m = member(&d, i);
                while !stop.load(Ordering::SeqCst) {
                    let target = *addr.read().unwrap();
                    let out = provision(&d, &m, target, &["--timeout", "5"]);
                    let mut t = told.lock().unwrap();
                    let entry = t.entry(i).or_default();
                    if out.status.success() {
                        entry
                            .0
                            .push(client_id::read(&m.join("client_id.txt")).unwrap());
                        entry.1 = true;
                        successes.fetch_add(1, Ordering::SeqCst);
                    } else {
                        entry.1 = false;
                        failures.fetch_add(1, Ordering::SeqCst);
                        *last_error.lock().unwrap() =
                            String::from_utf8_lossy(&out.stderr).into_owned();
                        drop(t);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    let wait_for = |n: usize| {
        let t0 = Instant::now();
        while successes.load(Ordering::SeqCst) < n {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "load stalled at {}; last error: {}",
                successes.load(Ordering::SeqCst),
                last_error.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(BEFORE_KILL);
    server.kill9();
    let at_kill = successes.load(Ordering::SeqCst);

    let restarted = ServerProcess::start(&d, &[]);
    *addr.write().unwrap() = restarted.addr;
    wait_for(at_kill + AFTER_RESTART);
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    restarted.stop();

    let reg = registry(&d);
    let stored = reg.identities().unwrap();
    let mut count: HashMap<[u8; 16], usize> = HashMap::new();
    for r in &stored {
        *count.entry(r.client_id.0).or_default() += 1;
    }
    let told = told.lock().unwrap();
    let mut distinct = HashSet::new();
    for (device, (ids, last_ok)) in told.iter() {
        let unique: HashSet<_> = ids.iter().map(|i| i.0).collect();
        assert!(
            unique.len() <= 1,
            "device {device} was told {} different ClientIDs",
            unique.len()
        );
        for id in ids {
            assert_eq!(
                count.get(&id.0),
                Some(&1),
                "device {device}: ClientID {id} not in the registry exactly once"
            );
            distinct.insert(id.0);
        }
        if *last_ok {
            // Its last handshake succeeded, so the registry holds the key it has now.
            let key = keypair::read(&member(&d, *device).join("longterm_priv.bin")).unwrap();
            let rec = reg.identity(&ids[ids.len() - 1]).unwrap().unwrap();
            assert_eq!(&rec.longterm_key, key.public_key(), "device {device}");
        }
    }
    assert!(
        distinct.len() >= DEVICES / 2,
        "too few devices provisioned: {}",
        distinct.len()
    );
    assert!(
        stored.len() <= DEVICES,
        "at most one identity per device: {}",
        stored.len()
    );
    eprintln!(
        "kill -9 test: {} successes ({} before the kill), {} failures, {} identities",
        successes.load(Ordering::SeqCst),
        at_kill,
        failures.load(Ordering::SeqCst),
        stored.len()
    );
}

#[test]
fn config_file_and_print_config() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = ok(d, &["server", "--print-config"]);
    assert!(
        cfg.contains("[files]") && cfg.contains("max_concurrent_handshakes"),
        "{cfg}"
    );
    // The printed file is valid as it stands; a bad value is reported with the file's name.
    let bad = cfg.replace(
        "max_concurrent_handshakes = 1024",
        "max_concurrent_handshakes = 0",
    );
    fs::write(d.join("bad.toml"), bad).unwrap();
    let out = xtt(d, &["server", "--config", "bad.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml: invalid server configuration")
            && err.contains("max_concurrent_handshakes"),
        "{err}"
    );
    fs::write(d.join("typo.toml"), "[files]\nserver_cert = \"x\"\n").unwrap();
    let err =
        String::from_utf8_lossy(&xtt(d, &["server", "--config", "typo.toml"]).stderr).into_owned();
    assert!(err.contains("typo.toml: in [files]"), "{err}");
    // A misspelt key is reported at its line in the file as written (comments, [files] and
    // all), in the server's tables and in [files].
    for (key, typo) in [
        (
            "max_concurrent_handshakes = 1024",
            "max_concurent_handshakes = 1024",
        ),
        ("server_keypair = ", "server_key = "),
    ] {
        let line = 1 + cfg.lines().position(|l| l.starts_with(key)).unwrap();
        fs::write(d.join("typo.toml"), cfg.replacen(key, typo, 1)).unwrap();
        let out = xtt(d, &["server", "--config", "typo.toml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(&format!("at line {line}, column 1")), "{err}");
        assert!(err.contains(&format!("{line} | {typo}")), "{err}");
    }
    // A server whose key is not its certificate's is refused before binding.
    common::setup(d, 1);
    ok(d, &["keys", "generate", "-k", "other.asn1.bin"]);
    let err = String::from_utf8_lossy(
        &xtt(d, &["server", "-k", "other.asn1.bin", "-l", "127.0.0.1:0"]).stderr,
    )
    .into_owned();
    assert!(
        err.contains("other.asn1.bin: this key pair is not the one server_cert.bin certifies"),
        "{err}"
    );
}

/// Nothing listens on the target: every handshake fails, the report is still printed, and the
/// exit status says the run failed.
#[test]
fn bench_fails_when_no_handshake_succeeds() {
    let tmp = deployment(1);
    let d = tmp.path();
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let args = [
        "bench",
        "-t",
        &target,
        "--group",
        "acme",
        "--devices",
        "2",
        "--handshakes",
        "4",
        "--timeout",
        "5",
    ];
    let out = xtt(d, &args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 ok, 4 failed"),
        "the report is printed: {stdout}"
    );
    assert!(
        stderr.contains(&format!("no handshake with {target} succeeded (4 failed")),
        "{stderr}"
    );
}

#[test]
fn bench_reports_text_json_and_svg() {
    let (tmp, server) = serving(1);
    let d = tmp.path();
    let target = server.addr.to_string();
    let out = ok(
        d,
        &[
            "bench",
            "-t",
            &target,
            "--group",
            "acme",
            "--devices",
            "4",
            "--handshakes",
            "12",
            "--json",
            "r.json",
            "--svg",
            "l.svg",
        ],
    );
    assert!(out.contains("handshakes") && out.contains("p99"), "{out}");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["handshakes_ok"], 12, "{json}");
    assert_eq!(json["devices"], 4);
    // Its own CPU in the run (10 ms ticks: 12 handshakes may read 0).
    assert!(
        out.contains("load generator  ") && out.contains("µs per handshake"),
        "{out}"
    );
    assert!(
        json["load_generator_cpu_secs"].as_f64().unwrap() >= 0.0,
        "{json}"
    );
    assert!(fs::read_to_string(d.join("l.svg"))
        .unwrap()
        .contains("<svg"));
    server.stop();
    // The simulated devices are real group members: the registry holds one identity each.
    assert_eq!(registry(d).identity_count().unwrap(), 4);
}

/// `--prepare`: the devices start from handshakes prepared before the run, which a real server
/// accepts; the report says how many and what they cost.
#[test]
fn bench_prepare_runs_prepared_handshakes_and_reports_them() {
    let (tmp, server) = serving(1);
    let d = tmp.path();
    let target = server.addr.to_string();
    let args = [
        "bench",
        "-t",
        &target,
        "--group",
        "acme",
        "--devices",
        "3",
        "--handshakes",
        "9",
        "--prepare",
        "--json",
        "r.json",
    ];
    let out = ok(d, &args);
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["handshakes_ok"], 9, "{json}");
    // A share of 3 each, a quarter more (0) and two spare.
    assert_eq!(json["prepared_per_device"], 5, "{json}");
    assert!(
        json["preparation_cpu_secs"].as_f64().unwrap() >= 0.0,
        "{json}"
    );
    assert!(
        out.contains("prepared        5 handshakes per device (DAA commitments")
            && out.contains("s CPU before the run, not counted above"),
        "{out}"
    );
    server.stop();
    assert_eq!(registry(d).identity_count().unwrap(), 3);

    // The session modes have nothing to prepare: refused before any connection.
    let out = xtt(
        d,
        &[
            "bench",
            "-t",
            &target,
            "--group",
            "acme",
            "--mode",
            "session-handshakes",
            "--prepare",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--prepare applies to identity handshakes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_provisions_every_device_and_says_where_things_are() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = ok(
        tmp.path(),
        &["demo", "--devices", "6", "--dir", dir.to_str().unwrap()],
    );
    assert!(
        out.contains("provisioned 6 device(s) concurrently"),
        "{out}"
    );
    assert!(
        out.contains("6 distinct ClientIDs; registry holds 6 identities; 0 missing; 0 failed"),
        "{out}"
    );
    assert!(out.contains("where everything lives"), "{out}");
    for i in 1..=6 {
        let m = dir.join(format!("group/members/{i:06}"));
        let id = client_id::read(&m.join("client_id.txt")).unwrap();
        assert_eq!(
            x509::read(&m.join("longterm_cert.bin")).unwrap().client_id,
            id
        );
    }
    // The configuration it leaves behind starts the same server.
    let cfg = fs::read_to_string(dir.join("server.toml")).unwrap();
    assert!(
        cfg.contains("[files]") && cfg.contains("server_cert.bin") && cfg.contains("xtt-data"),
        "{cfg}"
    );
    let reg =
        SqliteRegistry::open(&dir.join("xtt-data/registry.sqlite"), Durability::Full).unwrap();
    assert_eq!(reg.identity_count().unwrap(), 6);
}

/// The "try next" commands survive a directory with a space and a quote in its name: pasted
/// into a shell, each path arrives as one argument, and `xtt info` runs as printed.
#[test]
fn demo_commands_quote_their_paths_for_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my demo's dir");
    let out = ok(
        tmp.path(),
        &["demo", "--devices", "1", "--dir", dir.to_str().unwrap()],
    );
    let commands: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("try next"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands.len(), 5, "{out}");
    // Each command's words as the shell splits them, one per line.
    let words = |command: &str| {
        let script =
            format!("xtt() {{ printf '%s\\n' \"$@\"; }}; sqlite3() {{ xtt \"$@\"; }}; {command}");
        let out = common::run(
            std::process::Command::new("sh").args(["-c", &script]),
            common::COMMAND_LIMIT,
        );
        assert!(out.status.success(), "{command}: {}", common::text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let member = dir.join("group/members/000001");
    let member = member.to_str().unwrap();
    assert_eq!(words(commands[0]), format!("info\n{member}\n"));
    let server = words(commands[1]);
    assert!(
        server.contains(&format!("\n{}\n", dir.join("server.toml").display())),
        "{server}"
    );
    assert!(words(commands[2]).contains(&format!("\n{member}\n")));
    let bench = words(commands[3]);
    assert!(
        bench.contains(&format!("\n{}\n", dir.join("group").display())),
        "{bench}"
    );
    assert!(words(commands[4]).contains("registry.sqlite\nSELECT"));
    // And the first one really runs.
    let run = common::run(
        std::process::Command::new("sh")
            .args(["-c", &commands[0].replacen("xtt", "\"$XTT\"", 1)])
            .env("XTT", env!("CARGO_BIN_EXE_xtt")),
        common::COMMAND_LIMIT,
    );
    assert!(run.status.success(), "{}", common::text(&run));
}
