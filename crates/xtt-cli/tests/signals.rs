//! Graceful shutdown of the `xtt server` binary on real signals, sent with `kill(2)` (through
//! nix: the workspace forbids `unsafe`, so not through libc directly).
//!
//! Devices provision with `xtt client provision`; then two handshakes are taken half-way by hand
//! (ClientInit answered, Identity_ClientAttest not yet sent) and the signal arrives. The server
//! must log that it is shutting down, stop accepting, let both handshakes finish, log that it
//! stopped and exit with status 0. Reopened afterwards, the registry holds every ClientID a
//! client was told, with the key that client holds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand_core::OsRng;
use xtt_files::{certs, client_id, daa, keypair};
use xtt_proto::client::{ClientConfig, ClientHandshake, ExpectServerFinished};
use xtt_proto::codec::{decode_header, HEADER_LEN};
use xtt_proto::{ClientId, SuiteSpec};
use xtt_registry::{Durability, Registry, SqliteRegistry};

/// Devices provisioned before the signal, and handshakes in progress when it arrives.
const BEFORE: usize = 3;
const IN_FLIGHT: usize = 2;
/// Bound on every wait in this test.
const PATIENCE: Duration = Duration::from_secs(60);

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtt"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run xtt");
    assert!(
        out.status.success(),
        "xtt {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn member(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("acme/members/{i:06}"))
}

/// `xtt server` with info logs; its stdout and stderr lines arrive on one channel.
struct Server {
    child: Child,
    addr: SocketAddr,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtt"))
            .args([
                "--verbose",
                "server",
                "-l",
                "127.0.0.1:0",
                "--no-metrics",
                "--data-dir",
                "data",
                "--group",
                "acme",
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xtt server");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout piped");
        let err = child.stderr.take().expect("stderr piped");
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
            seen: Vec::new(),
        };
        let line = server.wait_for("xtt server listening on ");
        server.addr = line
            .trim()
            .trim_start_matches("xtt server listening on ")
            .parse()
            .expect("listening address");
        server
    }

    /// The first line (from now on) containing `needle`; panics after [`PATIENCE`].
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} from the server; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        kill(Pid::from_raw(pid), signal).expect("kill(2)");
    }

    /// Waits (bounded) for the process to exit.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every remaining output line (the pipes close when the process has exited).
    fn rest(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_message(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).expect("message header");
    let h = decode_header(&header, 1024).expect("valid header");
    let mut msg = vec![0u8; usize::from(h.length)];
    msg[..HEADER_LEN].copy_from_slice(&header);
    stream
        .read_exact(&mut msg[HEADER_LEN..])
        .expect("message body");
    msg
}

/// A handshake stopped half-way: ServerInitAndAttest processed, Identity_ClientAttest ready.
struct HalfWay {
    stream: TcpStream,
    state: ExpectServerFinished,
    client_attest: Vec<u8>,
}

fn start_handshake(dir: &Path, device: usize, addr: SocketAddr) -> HalfWay {
    let config = ClientConfig {
        roots: Arc::new(certs::read_root(&dir.join("root_cert.bin")).expect("root")),
        daa: Arc::new(daa::read_member(&member(dir, device)).expect("member")),
        longterm_key: None,
    };
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let (state, client_init) = ClientHandshake::start(
        config,
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        ClientId::NULL,
        &mut OsRng,
    );
    stream.write_all(&client_init).expect("send ClientInit");
    let server_attest = read_message(&mut stream);
    let (state, client_attest) = state
        .handle_server_attest(&server_attest, &mut OsRng)
        .expect("ServerInitAndAttest");
    HalfWay {
        stream,
        state,
        client_attest,
    }
}

/// `server_flags`: extra `xtt server` flags (the batched DAA verifier for one of the signals).
fn graceful_shutdown_on(signal: Signal, server_flags: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let count = (BEFORE + IN_FLIGHT).to_string();
    ok(d, &["cert", "root", "--generate-key"]);
    ok(d, &["cert", "server", "--generate-key"]);
    ok(d, &["group", "create", "acme"]);
    ok(
        d,
        &[
            "group",
            "enroll",
            "acme",
            "--count",
            &count,
            "--root",
            "root_cert.bin",
        ],
    );
    let mut server = Server::start(d, server_flags);

    // Devices provisioned by the client binary, concurrently.
    let port = server.addr.port().to_string();
    let clients: Vec<_> = (1..=BEFORE)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_xtt"))
                .args(["client", "provision", "-p", &port, "--dir"])
                .arg(member(d, i))
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start xtt client provision")
        })
        .collect();
    let mut told: Vec<(ClientId, [u8; 65])> = Vec::new();
    for (i, c) in (1..=BEFORE).zip(clients) {
        let out = c.wait_with_output().expect("client exit");
        assert!(
            out.status.success(),
            "device {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = client_id::read(&member(d, i).join("client_id.txt")).unwrap();
        let key = keypair::read(&member(d, i).join("longterm_priv.bin")).unwrap();
        told.push((id, *key.public_key().as_bytes()));
    }

    // Handshakes in progress when the signal arrives.
    let half: Vec<HalfWay> = (BEFORE + 1..=BEFORE + IN_FLIGHT)
        .map(|i| start_handshake(d, i, server.addr))
        .collect();
    server.signal(signal);
    server.wait_for("shutting down: waiting for handshakes in progress");
    // No longer accepting: the listener is closed while the handshakes above are still open.
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut h in half {
        h.stream
            .write_all(&h.client_attest)
            .expect("send Identity_ClientAttest");
        let finished = read_message(&mut h.stream);
        let id = h
            .state
            .handle_server_finished(&finished)
            .expect("Identity_ServerFinished after the signal");
        told.push((id.client_id, *id.longterm_key.public_key().as_bytes()));
    }

    let status = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after {signal}: {status}"
    );
    let lines = server.rest();
    assert!(
        lines.iter().any(|l| l.contains("xtt server stopped")),
        "no stop log line:\n{}",
        lines.join("\n")
    );
    assert!(lines.iter().any(|l| l == "stopped"), "{}", lines.join("\n"));

    let reg = SqliteRegistry::open(&d.join("data/registry.sqlite"), Durability::Full).unwrap();
    let stored = usize::try_from(reg.identity_count().unwrap()).unwrap();
    assert_eq!(stored, BEFORE + IN_FLIGHT);
    for (id, key) in &told {
        let rec = reg
            .identity(id)
            .unwrap()
            .unwrap_or_else(|| panic!("ClientID {id} missing from the registry"));
        assert_eq!(rec.longterm_key.as_bytes(), key, "ClientID {id}");
    }
}

#[test]
fn sigterm_lets_handshakes_in_progress_finish_then_exits_0() {
    graceful_shutdown_on(Signal::SIGTERM, &[]);
}

#[test]
fn sigint_lets_handshakes_in_progress_finish_then_exits_0_batched() {
    graceful_shutdown_on(Signal::SIGINT, &["--batch"]);
}
