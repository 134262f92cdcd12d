//! The server over real sockets on 127.0.0.1: concurrent provisioning, the failure cases, the
//! ClientInit flood, the concurrency cap, metrics and graceful shutdown.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{start, test_config, wait_idle, wait_until, Fixture, BASENAME};
use rand_core::{CryptoRngCore, OsRng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xtt_ecdaa::{Issuer, Member};
use xtt_proto::cert::RootCertificate;
use xtt_proto::client::{ClientConfig, ClientHandshake};
use xtt_proto::codec::{ERROR_MESSAGE, MAX_HANDSHAKE_LEN};
use xtt_proto::daa::{DaaError, DaaSignature, DaaSigner, GroupId};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::{ClientId, SuiteSpec};
use xtt_server::framing::{read_message, write_message, FrameError};
use xtt_server::{ClientError, Provisioner};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_provision_concurrently_with_distinct_ids() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let server = start(test_config(dir.path()), fx.keys(), registry.clone()).await;
    let members = fx.members(200);

    let tasks: Vec<_> = members
        .iter()
        .map(|m| {
            let p = fx.provisioner(m.clone());
            let addr = server.addr;
            tokio::spawn(async move { p.provision(addr).await })
        })
        .collect();
    let mut provisioned = Vec::new();
    for t in tasks {
        provisioned.push(t.await.unwrap().expect("every device provisions"));
    }
    let ids: HashSet<ClientId> = provisioned.iter().map(|p| p.client_id).collect();
    assert_eq!(ids.len(), 200, "200 distinct ClientIDs");
    assert_eq!(registry.identity_count().unwrap(), 200);
    for p in &provisioned {
        let rec = registry.identity(&p.client_id).unwrap().expect("stored");
        assert_eq!(&rec.longterm_key, p.longterm_key.public_key());
        assert_eq!(Some(rec.pseudonym), p.pseudonym);
    }
    wait_idle(&server.handle).await;
    let metrics = server.handle.metrics();
    assert_eq!(metrics.handshakes_count("ok", "none"), 200);

    // The Prometheus endpoint serves the same numbers on its own address.
    let mut http = TcpStream::connect(server.metrics_addr.unwrap())
        .await
        .unwrap();
    http.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"));
    assert!(body.contains("xtt_handshakes_total{outcome=\"ok\",reason=\"none\"} 200"));
    assert!(body.contains("xtt_handshake_duration_seconds_bucket"));
    assert!(body.contains("xtt_handshakes_in_flight 0"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_device_keeps_its_client_id_and_requested_ids_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let server = start(test_config(dir.path()), fx.keys(), registry.clone()).await;
    let members = fx.members(2);
    let p = fx.provisioner(members[0].clone());
    let first = p.provision(server.addr).await.unwrap();
    let second = p.provision(server.addr).await.unwrap();
    assert_eq!(first.client_id, second.client_id);
    let rec = registry.identity(&first.client_id).unwrap().unwrap();
    assert_eq!(&rec.longterm_key, second.longterm_key.public_key());

    // Another device asking for that id is refused; a free requested id is granted.
    let mut other = fx.provisioner(members[1].clone());
    other.requested_id = first.client_id;
    assert!(matches!(
        other.provision(server.addr).await,
        Err(ClientError::ServerRefused)
    ));
    other.requested_id = ClientId([0xab; 16]);
    assert_eq!(
        other.provision(server.addr).await.unwrap().client_id,
        ClientId([0xab; 16])
    );
    wait_idle(&server.handle).await;
    let m = server.handle.metrics();
    assert_eq!(m.handshakes_count("failed", "identity_refused"), 1);
    server.stop().await;
}

/// Signs correctly, then flips one bit of the Schnorr response.
struct CorruptSigner(Arc<Member>);

impl DaaSigner for CorruptSigner {
    fn group_id(&self) -> GroupId {
        DaaSigner::group_id(&*self.0)
    }
    fn sign(&self, message: &[u8], rng: &mut dyn CryptoRngCore) -> Result<DaaSignature, DaaError> {
        let mut sig = DaaSigner::sign(&*self.0, message, rng)?;
        sig.0[40] ^= 1;
        Ok(sig)
    }
}

/// Runs a full handshake by hand, returning the Identity_ClientAttest bytes it sent.
async fn handshake_by_hand(addr: std::net::SocketAddr, config: ClientConfig) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (st, ci) = ClientHandshake::start(config, SuiteSpec::ALL[0], ClientId::NULL, &mut OsRng);
    write_message(&mut s, &ci, T).await.unwrap();
    let sia = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
    let (st, ca) = st.handle_server_attest(&sia, &mut OsRng).unwrap();
    write_message(&mut s, &ca, T).await.unwrap();
    let fin = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
    st.handle_server_finished(&fin).unwrap();
    ca
}

/// Opens a connection, sends a fresh ClientInit, then the recorded ClientAttest.
async fn replay(addr: std::net::SocketAddr, config: ClientConfig, client_attest: Vec<u8>) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (_st, ci) = ClientHandshake::start(config, SuiteSpec::ALL[0], ClientId::NULL, &mut OsRng);
    write_message(&mut s, &ci, T).await.unwrap();
    let _sia = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
    write_message(&mut s, &client_attest, T).await.unwrap();
    matches!(
        read_message(&mut s, MAX_HANDSHAKE_LEN, T).await,
        Err(FrameError::Protocol(xtt_proto::Error::ReceivedErrorMessage))
    )
}

/// Sends raw bytes and returns what the server answers before closing.
async fn send_raw(addr: std::net::SocketAddr, bytes: Vec<u8>) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    out
}

async fn failures_fail_cleanly(batch: bool) {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let mut config = test_config(dir.path());
    config.limits.read_timeout_ms = 400;
    // Far longer than T: only the read timeout can end the stalled client's handshake.
    config.limits.handshake_timeout_ms = 600_000;
    config.daa.batch = batch;
    let server = start(config, fx.keys(), registry.clone()).await;
    let addr = server.addr;
    let members = fx.members(24);

    // Good devices keep provisioning while the bad ones run.
    let good: Vec<_> = members[..20]
        .iter()
        .map(|m| {
            let p = fx.provisioner(m.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(OsRng.next_u32() as u64 % 200)).await;
                p.provision(addr).await
            })
        })
        .collect();

    // A member of a group the server does not know.
    let stranger = Issuer::generate(&mut OsRng);
    let stranger_member = xtt_server::bench::enroll_devices(&stranger, BASENAME, 1)
        .unwrap()
        .remove(0);
    let wrong_group = fx.provisioner(stranger_member);
    // A device whose root has the server certificate's root id but another key.
    let mut bad_root = fx.provisioner(members[20].clone());
    bad_root.roots = Arc::new(RootCertificate {
        id: fx.root.id,
        public_key: *LongtermKeyPair::generate(&mut OsRng).public_key(),
    });
    // Bad DAA signatures, several of them so that batches contain good and bad ones.
    let bad_daa: Vec<Provisioner> = members[21..24]
        .iter()
        .map(|m| {
            let mut p = fx.provisioner(m.clone());
            p.daa = Arc::new(CorruptSigner(m.clone()));
            p
        })
        .collect();

    let wrong_group_task = tokio::spawn(async move { wrong_group.provision(addr).await });
    let bad_root_task = tokio::spawn(async move { bad_root.provision(addr).await });
    let bad_daa_tasks: Vec<_> = bad_daa
        .into_iter()
        .map(|p| tokio::spawn(async move { p.provision(addr).await }))
        .collect();
    // Random bytes: an unknown message type, and a valid header with a random body.
    let mut junk = vec![0u8; 300];
    OsRng.fill_bytes(&mut junk);
    junk[0] = 0xee;
    let junk_task = tokio::spawn(send_raw(addr, junk));
    let mut fake_init = vec![0x01, 0x00, 0x46, 0x01];
    let mut body = [0u8; 66];
    OsRng.fill_bytes(&mut body);
    body[0] = 0xff; // suite 0xffxx: unknown
    fake_init.extend_from_slice(&body);
    let fake_init_task = tokio::spawn(send_raw(addr, fake_init));
    // A header announcing a message larger than any identity message: refused before reading it.
    let oversized_task = tokio::spawn(send_raw(addr, vec![0x11, 0xff, 0xff, 0x01, 0, 0, 0, 0]));
    // A client that stops mid-message.
    let stall_task = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[0x01, 0x00, 0x46, 0x01, 0x00, 0x01, 7, 7])
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
        out
    });
    // A replayed Identity_ClientAttest.
    let replay_cfg = ClientConfig {
        roots: Arc::new(fx.root.clone()),
        daa: members[0].clone(),
        longterm_key: None,
    };
    let recorded = handshake_by_hand(addr, replay_cfg.clone()).await;
    assert!(
        replay(addr, replay_cfg, recorded).await,
        "replay answered with Error"
    );

    for t in good {
        t.await
            .unwrap()
            .expect("good devices provision despite the bad ones");
    }
    assert!(matches!(
        wrong_group_task.await.unwrap(),
        Err(ClientError::ServerRefused)
    ));
    assert!(matches!(
        bad_root_task.await.unwrap(),
        Err(ClientError::Protocol(xtt_proto::Error::PeerMisbehaved(
            xtt_proto::error::PeerMisbehaved::BadRootSignature
        )))
    ));
    for t in bad_daa_tasks {
        assert!(matches!(t.await.unwrap(), Err(ClientError::ServerRefused)));
    }
    assert_eq!(junk_task.await.unwrap(), ERROR_MESSAGE);
    assert_eq!(fake_init_task.await.unwrap(), ERROR_MESSAGE);
    assert_eq!(oversized_task.await.unwrap(), ERROR_MESSAGE);
    // Told and dropped by the read timeout (within T: the handshake timeout is far longer).
    let out = stall_task.await.unwrap();
    assert_eq!(out, ERROR_MESSAGE, "a stalled client is told and dropped");

    wait_idle(&server.handle).await;
    let m = server.handle.metrics();
    assert_eq!(m.handshakes_count("ok", "none"), 21);
    assert_eq!(m.handshakes_count("failed", "unknown_group"), 1);
    assert_eq!(m.handshakes_count("failed", "bad_daa_signature"), 3);
    assert_eq!(m.handshakes_count("failed", "replayed_cookie"), 1);
    assert_eq!(m.handshakes_count("failed", "invalid_message"), 3);
    assert_eq!(m.handshakes_count("failed", "timeout"), 1);
    // The bad-root client hangs up with an Error message of its own.
    assert_eq!(m.handshakes_count("failed", "peer_error"), 1);
    assert_eq!(server.handle.in_flight(), 0);
    // Only the devices that passed DAA verification are registered.
    assert_eq!(registry.identity_count().unwrap(), 20);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_fail_cleanly_while_good_handshakes_carry_on() {
    failures_fail_cleanly(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_verification_fails_only_the_bad_signatures() {
    failures_fail_cleanly(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_connections_are_refused_at_once_and_shutdown_is_graceful() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let mut config = test_config(dir.path());
    config.limits.max_concurrent_handshakes = 3;
    // The silent connections hold their slots until the test drops them.
    config.limits.read_timeout_ms = 600_000;
    config.limits.handshake_timeout_ms = 600_000;
    let server = start(config, fx.keys(), registry).await;
    let addr = server.addr;
    // Three silent connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    wait_until("the three silent connections hold every slot", || {
        server.handle.in_flight() == 3
    })
    .await;
    // Refused, not queued: a queued connection would wait for a slot (none comes back until
    // the test drops the silent ones) and would not be counted as refused.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, extra.read_to_end(&mut out))
        .await
        .expect("the connection over the cap was queued")
        .unwrap();
    assert_eq!(out, ERROR_MESSAGE);
    assert_eq!(
        server.handle.metrics().handshakes_count("refused", "busy"),
        1
    );
    assert_eq!(
        server.handle.in_flight(),
        3,
        "the silent ones still hold every slot"
    );

    // A handshake in progress at shutdown finishes.
    drop(idle);
    wait_until("the silent connections' slots are released", || {
        server.handle.in_flight() == 0
    })
    .await;
    let member = fx.members(1).remove(0);
    let p = fx.provisioner(member);
    let mut s = TcpStream::connect(addr).await.unwrap();
    wait_until("the server has taken the handshake on", || {
        server.handle.in_flight() == 1
    })
    .await;
    let stop = tokio::spawn(server.stop());
    let identity = p.provision_on(&mut s).await.unwrap();
    assert!(!identity.client_id.is_null());
    stop.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_with_silent_connections_does_not_take_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let mut config = test_config(dir.path());
    config.limits.max_concurrent_handshakes = 8;
    config.limits.max_handshakes_per_client = 2;
    config.limits.read_timeout_ms = 5000;
    let server = start(config, fx.keys(), registry).await;
    let addr = server.addr;
    // One source, 127.0.0.1: two silent connections take its share.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    wait_until("the two silent connections are being served", || {
        server.handle.in_flight() == 2
    })
    .await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut out))
        .await
        .expect("refused at once, not queued")
        .unwrap();
    assert_eq!(out, ERROR_MESSAGE);
    assert_eq!(
        server
            .handle
            .metrics()
            .handshakes_count("refused", "client_busy"),
        1
    );
    // Another source (127.0.0.2, also loopback) still provisions meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let p = fx.provisioner(fx.members(1).remove(0));
    let identity = p.provision_on(&mut s).await.unwrap();
    assert!(!identity.client_id.is_null());
    // Slots come back when the connections go. The server releases a connection's handshake
    // slot and then its per-client slot: a connection made in between is refused (client_busy)
    // and is retried, within a bound.
    drop(idle);
    wait_until("the silent connections' slots are released", || {
        server.handle.in_flight() == 0
    })
    .await;
    let p = fx.provisioner(fx.members(1).remove(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let identity = loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        match p.provision_on(&mut s).await {
            Err(ClientError::ServerRefused) if Instant::now() < deadline => continue,
            other => break other.expect("the client's slots came back"),
        }
    };
    assert!(!identity.client_id.is_null());
    server.stop().await;
}

/// A metrics connection that never finishes its request does not hold shutdown forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_metrics_request_does_not_block_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let server = start(test_config(dir.path()), fx.keys(), registry).await;
    let mut stuck = TcpStream::connect(server.metrics_addr.unwrap())
        .await
        .unwrap();
    stuck.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(15), server.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited for the half-sent request");
    drop(stuck);
}
