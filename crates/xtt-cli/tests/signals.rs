//! Graceful shutdown of the `xtt server` binary on real signals, sent with `kill(2)` (through
//! nix: the workspace forbids `unsafe`, so not through libc directly).
//!
//! Devices provision with `xtt client provision`; then two handshakes are taken half-way by hand
//! (ClientInit answered, Identity_ClientAttest not yet sent) and the signal arrives. The server
//! must log that it is shutting down, stop accepting, let both handshakes finish, log that it
//! stopped and exit with status 0. Reopened afterwards, the registry holds every ClientID a
//! client was told, with the key that client holds.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{member, provision_command, registry, ServerProcess, PATIENCE, SERVER_FLAGS};
use nix::sys::signal::Signal;
use rand_core::OsRng;
use xtt_files::{certs, client_id, daa, keypair};
use xtt_proto::client::{ClientConfig, ClientHandshake, ExpectServerFinished};
use xtt_proto::codec::{decode_header, HEADER_LEN};
use xtt_proto::{ClientId, SuiteSpec};
use xtt_registry::Registry;

/// Devices provisioned before the signal, and handshakes in progress when it arrives.
const BEFORE: usize = 3;
const IN_FLIGHT: usize = 2;

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
    let tmp = common::deployment(BEFORE + IN_FLIGHT);
    let d = tmp.path();
    let mut args = SERVER_FLAGS.to_vec();
    args.extend_from_slice(server_flags);
    // Info logs: the shutdown is checked in them.
    let mut server = ServerProcess::start_with(d, &["--verbose"], &args);

    // Devices provisioned by the client binary, concurrently.
    let clients: Vec<_> = (1..=BEFORE)
        .map(|i| {
            provision_command(d, &member(d, i), server.addr)
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
    let line = server.wait_for("shutting down: waiting for handshakes in progress");
    // Logs into a pipe (a file, the journal) carry no colour escape codes.
    assert!(!line.contains('\x1b'), "{line:?}");
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

    let reg = registry(d);
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
