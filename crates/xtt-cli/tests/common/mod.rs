//! What the tests of the built `xtt` binary share: running it in a directory, the files of a
//! small deployment (root, server certificate, DAA group `acme`), `xtt server` as a child
//! process on 127.0.0.1 (port 0), provisioning with `xtt client provision`, and fresh
//! databases on the throwaway PostgreSQL server `scripts/test.sh` starts.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use xtt_registry::{Durability, SqliteRegistry};

/// Bound on every wait for a server process (start, a log line, exit).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The `xtt` binary, run in `dir`. Settings the environment could slip in (a default anchor
/// store, a log filter) are removed so every test sees only its own flags.
pub fn xtt_command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtt"));
    c.current_dir(dir)
        .env_remove("XTT_ANCHOR_STORE")
        .env_remove("RUST_LOG");
    c
}

/// Bound on one run of a command to completion ([`xtt`], [`ok`], [`fails`], [`provision`]).
/// Generous: the longest of these (`demo`, `bench`) take seconds; a run this long is a hang.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// `xtt ARGS…` in `dir`, to completion (at most [`COMMAND_LIMIT`], see [`run`]).
pub fn xtt(dir: &Path, args: &[&str]) -> Output {
    run(xtt_command(dir).args(args), COMMAND_LIMIT)
}

/// `command` to completion, as [`Command::output`] (stdin closed, stdout and stderr captured),
/// but bounded: if it has not exited and closed its output within `limit`, it is killed and
/// the test fails with its command line and everything it printed so far.
pub fn run(command: &mut Command, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let (done, finished) = channel();
    let stdout = collect(child.stdout.take().expect("stdout piped"), done.clone());
    let stderr = collect(child.stderr.take().expect("stderr piped"), done);
    let printed = || {
        let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&lock(b)).into_owned();
        format!("stdout:\n{}\nstderr:\n{}", text(&stdout), text(&stderr))
    };
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish within {limit:?} (killed); it printed:\n{}",
                printed()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Both pipes closed (end of file), or something the command started still holds them.
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if finished.recv_timeout(left).is_err() {
            panic!(
                "{command:?} exited ({status}) but its output stayed open for {limit:?}; it \
                 printed:\n{}",
                printed()
            );
        }
    }
    let take = |b: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *lock(&b));
    Output {
        status,
        stdout: take(stdout),
        stderr: take(stderr),
    }
}

/// Reads `stream` to its end on a thread, into the buffer returned (readable meanwhile); says
/// on `done` when the end is reached.
fn collect(mut stream: impl Read + Send + 'static, done: Sender<()>) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let into = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => lock(&into).extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
    buf
}

fn lock(b: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    b.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything a finished command printed, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `xtt ARGS…`, which must succeed; its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = xtt(dir, args);
    assert!(
        out.status.success(),
        "xtt {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `xtt ARGS…`, which must fail; its stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = xtt(dir, args);
    assert!(
        !out.status.success(),
        "xtt {args:?} should fail:\n{}",
        text(&out)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A device directory `dir/dev` as `xtt client provision` writes it, made offline (no server):
/// a long-term key, `client_id`, the key's X.509 certificate and a copy of `dir/root_cert.bin`.
pub fn offline_device_dir(dir: &Path, client_id: &str) {
    fs::create_dir_all(dir.join("dev")).unwrap();
    ok(dir, &["keys", "generate", "-k", "dev/longterm_priv.bin"]);
    fs::write(dir.join("dev/client_id.txt"), format!("{client_id}\n")).unwrap();
    ok(
        dir,
        &[
            "cert",
            "x509",
            "-k",
            "dev/longterm_priv.bin",
            "--client-id",
            client_id,
            "-c",
            "dev/longterm_cert.bin",
        ],
    );
    fs::copy(dir.join("root_cert.bin"), dir.join("dev/root_cert.bin")).unwrap();
}

/// A root (`root_cert.bin`) and a server certificate (`server_cert.bin`) issued by it.
pub fn root_and_server_cert(dir: &Path) {
    ok(dir, &["cert", "root", "--generate-key"]);
    ok(dir, &["cert", "server", "--generate-key"]);
}

/// A root, a server certificate and group `acme` of `members` devices (client directories
/// with the root in them).
pub fn setup(dir: &Path, members: usize) {
    root_and_server_cert(dir);
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

/// A temporary directory holding [`setup`]'s files.
pub fn deployment(members: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), members);
    tmp
}

/// [`deployment`] with `xtt server` ([`ServerProcess::start`]) running on it.
pub fn serving(members: usize) -> (tempfile::TempDir, ServerProcess) {
    let tmp = deployment(members);
    let server = ServerProcess::start(tmp.path(), &[]);
    (tmp, server)
}

/// Device `i` (from 1) of group `group`: its client directory.
pub fn group_member(dir: &Path, group: &str, i: usize) -> PathBuf {
    dir.join(format!("{group}/members/{i:06}"))
}

/// Device `i` (from 1) of group `acme`.
pub fn member(dir: &Path, i: usize) -> PathBuf {
    group_member(dir, "acme", i)
}

/// `xtt client provision` of the device in `device` against the server at `addr`.
pub fn provision_command(dir: &Path, device: &Path, addr: SocketAddr) -> Command {
    let mut c = xtt_command(dir);
    c.args(["client", "provision", "--dir"])
        .arg(device)
        .args(["-p", &addr.port().to_string()]);
    c
}

/// [`provision_command`] with `extra` flags, to completion (at most [`COMMAND_LIMIT`]).
pub fn provision(dir: &Path, device: &Path, addr: SocketAddr, extra: &[&str]) -> Output {
    run(
        provision_command(dir, device, addr).args(extra),
        COMMAND_LIMIT,
    )
}

/// Provisions the device in `device`, which must succeed; the ClientID it was given.
pub fn provisioned(dir: &Path, device: &Path, addr: SocketAddr) -> xtt_proto::ClientId {
    let out = provision(dir, device, addr, &[]);
    assert!(
        out.status.success(),
        "provisioning {} failed:\n{}",
        device.display(),
        text(&out)
    );
    xtt_files::client_id::read(&device.join("client_id.txt")).unwrap()
}

/// The registry a server run with `--data-dir data` keeps.
pub fn registry(dir: &Path) -> SqliteRegistry {
    SqliteRegistry::open(&dir.join("data/registry.sqlite"), Durability::Full).unwrap()
}

/// The flags most tests run `xtt server` with: no metrics listener, the registry under `data/`,
/// group `acme` accepted.
pub const SERVER_FLAGS: &[&str] = &["--no-metrics", "--data-dir", "data", "--group", "acme"];

/// A line the server printed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Out(String),
    Err(String),
}

impl Line {
    pub fn text(&self) -> &str {
        match self {
            Self::Out(l) | Self::Err(l) => l,
        }
    }
}

/// An `xtt server` child process, killed when dropped. Both its output streams are read by
/// threads (the server never blocks on a full pipe), and every line is kept.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// The startup lines on stdout, from `xtt server listening on …` to the sessions line.
    pub banner: String,
    lines: Receiver<Line>,
    seen: Vec<Line>,
}

impl ServerProcess {
    /// `xtt server -l 127.0.0.1:0` with [`SERVER_FLAGS`] and `extra`.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut args = SERVER_FLAGS.to_vec();
        args.extend_from_slice(extra);
        Self::start_with(dir, &[], &args)
    }

    /// `xtt GLOBAL… server -l 127.0.0.1:0 ARGS…`; returns once the startup banner is printed.
    pub fn start_with(dir: &Path, global: &[&str], args: &[&str]) -> Self {
        let mut child = xtt_command(dir)
            .args(global)
            .args(["server", "-l", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xtt server");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        forward_lines(out, Line::Out, tx.clone());
        forward_lines(err, Line::Err, tx);
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            banner: String::new(),
            lines,
            seen: Vec::new(),
        };
        server.read_banner();
        server
    }

    /// Reads stdout up to the last startup line (the sessions line, printed whatever the
    /// settings); the listening address comes from the first.
    fn read_banner(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        let mut addr = None;
        let mut banner = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(why) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.drain();
                    panic!(
                        "server did not start ({}): {}",
                        match why {
                            RecvTimeoutError::Timeout => "timed out",
                            RecvTimeoutError::Disconnected => "it exited",
                        },
                        self.all_text()
                    );
                }
            };
            self.seen.push(line.clone());
            let Line::Out(l) = line else { continue };
            if let Some(a) = l.strip_prefix("xtt server listening on ") {
                addr = Some(a.trim().parse().expect("listening address"));
            }
            let last = l.starts_with("sessions ");
            banner.push(l);
            if last {
                break;
            }
        }
        self.addr = addr.unwrap_or_else(|| panic!("no listening line in {banner:?}"));
        self.banner = banner.join("\n");
    }

    /// The first line from now on (either stream) containing `needle`; panics after
    /// [`PATIENCE`].
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.text().contains(needle) {
                        return line.text().to_owned();
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} from the server; it printed:\n{}",
                    self.all_text()
                ),
            }
        }
    }

    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        kill(Pid::from_raw(pid), signal).expect("kill(2)");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes every line still to come (the pipes close when the process has exited): until
    /// both pipes close, 5 s pass without a line, or [`PATIENCE`] passes (a process still
    /// running and printing would otherwise keep this going).
    fn drain(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) else {
                break;
            };
            self.seen.push(line);
        }
    }

    /// Every line the server printed, both streams, once it has exited.
    pub fn rest(&mut self) -> Vec<String> {
        self.drain();
        self.seen.iter().map(|l| l.text().to_owned()).collect()
    }

    fn all_text(&self) -> String {
        self.seen
            .iter()
            .map(Line::text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM, the graceful path: the server must exit with status 0. Returns its stderr.
    pub fn stop(mut self) -> String {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit();
        self.drain();
        let stderr = self
            .seen
            .iter()
            .filter_map(|l| match l {
                Line::Err(l) => Some(l.as_str()),
                Line::Out(_) => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(status.success(), "server exit {status}: {stderr}");
        stderr
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Sends every line of `stream`, as `tag` says where it came from, until the stream closes.
fn forward_lines(stream: impl Read + Send + 'static, tag: fn(String) -> Line, tx: Sender<Line>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(tag(line)).is_err() {
                break;
            }
        }
    });
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The throwaway PostgreSQL server's URL (an administrator's connection).
pub fn postgres_admin_config() -> postgres::Config {
    let Ok(url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
        panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
    };
    url.parse().expect("a PostgreSQL URL")
}

/// A new empty database on the test server; returns its URL with `password` in the userinfo
/// (the test server trusts local connections, so the password is never checked: it is there
/// to be kept out of logs).
pub fn fresh_database_url(password: &str) -> String {
    let config = postgres_admin_config();
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
