//! `xtt server --storage` and `xtt registry` through the binary, against SQLite files and the
//! throwaway PostgreSQL server `scripts/test.sh` starts (`XTT_TEST_POSTGRES_URL`; these tests
//! fail without it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use xtt_files::client_id;

fn xtt(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtt"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run xtt")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = xtt(dir, args);
    assert!(
        out.status.success(),
        "xtt {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A root, a server certificate and a group of `members` devices.
fn setup(dir: &Path, members: usize) {
    ok(dir, &["cert", "root", "--generate-key"]);
    ok(dir, &["cert", "server", "--generate-key"]);
    ok(dir, &["group", "create", "acme"]);
    ok(
        dir,
        &[
            "group",
            "enroll",
            "acme",
            "--count",
            &members.to_string(),
            "--root",
            "root_cert.bin",
        ],
    );
}

fn admin_config() -> postgres::Config {
    let Ok(url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
        panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
    };
    url.parse().expect("a PostgreSQL URL")
}

/// A new empty database on the test server; returns its URL with `password` in the userinfo
/// (the test server trusts local connections, so the password is never checked: it is there
/// to be kept out of logs).
fn fresh_database_url(password: &str) -> String {
    let config = admin_config();
    let mut admin = config
        .connect(postgres::NoTls)
        .expect("connect to PostgreSQL");
    let name = format!(
        "xtt_cli_{:016x}",
        rand_core::RngCore::next_u64(&mut rand_core::OsRng)
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let user = config.get_user().unwrap();
    let Some(postgres::config::Host::Unix(socket_dir)) = config.get_hosts().first() else {
        panic!("the test server is reached over its unix socket")
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{user}:{password}@/{name}?host={}&port={port}",
        socket_dir.display()
    )
}

/// An `xtt server` child process, killed when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    stdout_head: Vec<String>,
}

impl ServerProcess {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtt"))
            .args(["server", "-l", "127.0.0.1:0", "--group", "acme"])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xtt server");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut head = Vec::new();
        let mut addr = None;
        // The banner: listening, metrics (if any), registry.
        while head.len() < 3 {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(a) = line.trim().strip_prefix("xtt server listening on ") {
                addr = Some(a.parse().unwrap());
            }
            let registry_line = line.starts_with("registry ");
            head.push(line.trim().to_string());
            if registry_line {
                break;
            }
        }
        let Some(addr) = addr else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "server did not start: {head:?}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::thread::spawn(move || for _ in stdout.lines() {});
        Self {
            child,
            addr,
            stdout_head: head,
        }
    }

    /// SIGTERM, wait, and return stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "server exit {status}: {err}");
        err
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provision(dir: &Path, member: usize, addr: SocketAddr) -> xtt_proto::ClientId {
    let device = dir.join(format!("acme/members/{member:06}"));
    let port = addr.port().to_string();
    ok(
        dir,
        &[
            "client",
            "provision",
            "--dir",
            device.to_str().unwrap(),
            "-p",
            &port,
        ],
    );
    client_id::read(&device.join("client_id.txt")).unwrap()
}

#[test]
fn server_runs_on_postgres_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2);
    let url = fresh_database_url("Sup3rSecretPw");
    let server = ServerProcess::start(
        dir.path(),
        &["--no-metrics", "--verbose", "--storage", &url],
    );
    let banner = server.stdout_head.join("\n");
    assert!(banner.contains("registry postgresql://"), "{banner}");
    assert!(banner.contains(":***@"), "{banner}");
    let id = provision(dir.path(), 1, server.addr);
    let stderr = server.stop();
    for text in [&banner, &stderr] {
        assert!(!text.contains("Sup3rSecretPw"), "password shown:\n{text}");
    }
    assert!(stderr.contains("registry opened"), "{stderr}");
    // The identity is in the database, not in a SQLite file.
    assert!(!dir.path().join("xtt-data").exists());
    let reg = xtt_registry::open_storage(&url).unwrap();
    let rec = reg
        .identity(&id)
        .unwrap()
        .expect("identity stored in PostgreSQL");
    assert_eq!(rec.client_id, id);
    assert_eq!(reg.identity_count().unwrap(), 1);
}

#[test]
fn a_bad_storage_url_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 1);
    let out = xtt(
        dir.path(),
        &[
            "server",
            "--storage",
            "postgres://xtt:Sup3rSecretPw@127.0.0.1:1/none?connect_timeout=2",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("postgres://xtt:***@127.0.0.1:1/none"), "{err}");
    assert!(!err.contains("Sup3rSecretPw"), "{err}");
    let out = xtt(dir.path(), &["server", "--storage", "mysql://root:pw@h/x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not sqlite:PATH or postgres://"), "{err}");
}
