//! Limits of the session drivers against one remote peer, over real sockets on 127.0.0.1: what
//! one cookie buys over UDP, what a made-up ClientID costs the registry, how long a UDP handshake
//! may wait on it, what one device may hold over TCP, an application that panics, a handshake
//! that fails at its last step, and what shutdown keeps.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{test_config, wait_until, Fixture, Running, BASENAME};
use rand_core::{OsRng, RngCore};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use xtt_proto::codec::{MsgType, ERROR_MESSAGE};
use xtt_proto::daa::GroupId;
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::record::PayloadType;
use xtt_proto::session::{SessionClientConfig, SessionClientHandshake};
use xtt_proto::{ClientId, UnixTime};
use xtt_registry::{
    Assigned, CookieUse, GroupRecord, IdentityRecord, Refusal, Registration, Registry,
    RegistryError,
};
use xtt_server::bench::register_session_devices;
use xtt_server::framing::{read_message, write_message, FrameError};
use xtt_server::sessions::{IncomingRecord, SessionApp};
use xtt_server::{
    add_group, Echo, Outbox, ServerConfig, SessionClient, SessionClientOptions, SessionOptions,
    XttServer,
};

const Q: PayloadType = PayloadType::QueueProtocol;

/// How long any wait on the server may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

struct Env {
    _dir: tempfile::TempDir,
    fx: Fixture,
    registry: Arc<dyn Registry>,
    server: Running,
    udp: SocketAddr,
}

async fn env(options: impl FnOnce(&mut SessionOptions)) -> Env {
    env_with(Arc::new(Echo), options).await
}

async fn env_with(app: Arc<dyn SessionApp>, options: impl FnOnce(&mut SessionOptions)) -> Env {
    env_full(app, |_| {}, |r| r, options).await
}

/// A server with a watched registry: its lookups of `watched` are counted, and wait while the
/// probe's gate is closed.
async fn env_probed(
    watched: ClientId,
    config: impl FnOnce(&mut ServerConfig),
) -> (Env, Arc<Probe>) {
    let mut probe = None;
    let e = env_full(
        Arc::new(Echo),
        config,
        |inner| {
            let p = Arc::new(Probe {
                inner,
                watched,
                lookups: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                closed: Mutex::new(false),
                opened: Condvar::new(),
            });
            probe = Some(p.clone());
            p
        },
        |_| {},
    )
    .await;
    (e, probe.unwrap())
}

async fn env_full(
    app: Arc<dyn SessionApp>,
    config: impl FnOnce(&mut ServerConfig),
    wrap: impl FnOnce(Arc<dyn Registry>) -> Arc<dyn Registry>,
    options: impl FnOnce(&mut SessionOptions),
) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let mut cfg = test_config(dir.path());
    config(&mut cfg);
    let mut server = XttServer::bind(cfg, fx.keys(), wrap(registry.clone()))
        .await
        .unwrap();
    let mut opts = SessionOptions::new(app);
    options(&mut opts);
    server.enable_sessions(opts).await.unwrap();
    let udp = server.udp_addr().unwrap();
    Env {
        _dir: dir,
        fx,
        registry,
        server: common::run(server),
        udp,
    }
}

impl Env {
    /// `n` registered devices.
    fn devices(&self, n: usize) -> Vec<SessionClientConfig> {
        let (group_id, _) = add_group(&*self.registry, &self.fx.gpk(), BASENAME).unwrap();
        register_session_devices(&*self.registry, group_id, Arc::new(self.fx.root.clone()), n)
            .unwrap()
    }

    /// A device with a session, its handshake done over UDP (so it holds no TCP connection).
    async fn udp_session(&self, config: SessionClientConfig) -> SessionClient {
        SessionClient::connect(self.udp, config, SessionClientOptions::udp(), None)
            .await
            .unwrap()
    }

    /// A session flight (0x21) with a fresh cookie for `client_id` (signed with a key of its
    /// own: the server refuses it whether the ClientID is known or not, after doing the work).
    async fn flight(&self, client_id: ClientId) -> Vec<u8> {
        let config = SessionClientConfig {
            roots: Arc::new(self.fx.root.clone()),
            client_id,
            longterm_key: LongtermKeyPair::generate(&mut OsRng),
        };
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(self.udp).await.unwrap();
        let (st, ci) =
            SessionClientHandshake::start(config, xtt_proto::SuiteSpec::ALL[0], &mut OsRng);
        let mut buf = vec![0u8; 4096];
        // ClientInit may be lost (it is a datagram): resend until answered.
        let deadline = Instant::now() + PATIENCE;
        let n = loop {
            sock.send(&ci).await.unwrap();
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                break r.unwrap();
            }
            assert!(Instant::now() < deadline, "no ServerInitAndAttest");
        };
        let (_, flight) = st
            .handle_server_attest(&buf[..n], None, &mut OsRng)
            .unwrap();
        flight
    }

    /// Returns once the UDP loop has read every datagram sent to it before this call (from any
    /// socket of 127.0.0.1; loopback keeps their order in the server's receive queue) and the
    /// handshake jobs they started are done.
    async fn udp_settled(&self) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(self.udp).await.unwrap();
        // A message of no UDP meaning, answered by the loop itself with the Error message.
        let probe = [MsgType::IDENTITY_CLIENT_ATTEST.0, 0, 8, 1, 0, 0, 0, 0];
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + PATIENCE;
        loop {
            sock.send(&probe).await.unwrap();
            if let Ok(r) =
                tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await
            {
                assert_eq!(&buf[..r.unwrap()], &ERROR_MESSAGE);
                break;
            }
            assert!(Instant::now() < deadline, "the UDP loop never answered");
        }
        let deadline = Instant::now() + PATIENCE;
        while self.server.handle.in_flight() != 0 {
            assert!(Instant::now() < deadline, "UDP handshake jobs never ended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// UDP session flights the server processed (each one fully: cookie, handshake rebuild,
    /// AEAD, key lookup, signature check), by outcome.
    fn udp_flights_processed(&self) -> u64 {
        let m = self.server.handle.metrics();
        m.session_handshakes_count("udp", "ok") + m.session_handshakes_count("udp", "failed")
    }
}

fn random_client_id() -> ClientId {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    ClientId(id)
}

/// One cookie buys one attempt: the same valid flight naming an unknown ClientID, sent again
/// and again from several source ports, is processed once; the repeats are dropped unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_udp_session_flight_is_processed_once() {
    let e = env(|_| {}).await;
    let flight = e.flight(random_client_id()).await;
    let mut senders = Vec::new();
    for _ in 0..4 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(e.udp).await.unwrap();
        senders.push(s);
    }
    for round in 0..10 {
        for s in &senders {
            s.send(&flight).await.unwrap();
        }
        if round == 0 {
            // Let the first one be taken and finished, so later ones are replays of a failed
            // attempt, not only retransmissions racing it.
            e.udp_settled().await;
        }
    }
    e.udp_settled().await;
    assert_eq!(
        e.udp_flights_processed(),
        1,
        "40 copies of one flight: processed once"
    );
    // Only the first copy got an answer (its Error): the repeats cost the sender nothing back.
    let mut buf = [0u8; 64];
    let mut answers = 0;
    for s in &senders {
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(100), s.recv(&mut buf)).await
        {
            answers += 1;
        }
    }
    assert_eq!(answers, 1, "one Error for the one attempt");
    e.server.stop().await;
}

/// Flights with distinct cookies from one address are processed at the per-address rate: a
/// burst of them beyond the allowance is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_session_flights_are_processed_at_a_bounded_rate_per_address() {
    let e = env(|o| {
        o.udp_client_inits_per_ip = 1_000;
        o.udp_client_attests_per_ip = 1; // two at once, then one a second
    })
    .await;
    let mut flights = Vec::new();
    for _ in 0..12 {
        flights.push(e.flight(random_client_id()).await);
    }
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(e.udp).await.unwrap();
    let started = Instant::now();
    for f in &flights {
        sock.send(f).await.unwrap();
    }
    e.udp_settled().await;
    // The allowance is two at once and one more per second since the burst began (a bound,
    // not a measurement: a slow machine only allows more).
    let allowed = 2 + started.elapsed().as_secs() + 1;
    let processed = e.udp_flights_processed();
    assert!(
        (1..=allowed).contains(&processed),
        "{processed} of 12 flights processed, at most {allowed} allowed"
    );
    e.server.stop().await;
}

/// The real registry, except that lookups of one ClientID are counted and, while the gate is
/// closed, wait for it to open (at most [`PATIENCE`], so a failing test cannot hang on them).
#[derive(Debug)]
struct Probe {
    inner: Arc<dyn Registry>,
    watched: ClientId,
    lookups: AtomicUsize,
    waiting: AtomicUsize,
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Probe {
    /// Lookups of the watched ClientID so far (counted when they start).
    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    /// Lookups of the watched ClientID waiting at the gate now.
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    fn set_closed(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }
}

impl Registry for Probe {
    fn identity(&self, client_id: &ClientId) -> Result<Option<IdentityRecord>, RegistryError> {
        if *client_id == self.watched {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let closed = self.closed.lock().unwrap();
            drop(
                self.opened
                    .wait_timeout_while(closed, PATIENCE, |closed| *closed)
                    .unwrap(),
            );
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.identity(client_id)
    }
    fn add_group(&self, group: &GroupRecord) -> Result<bool, RegistryError> {
        self.inner.add_group(group)
    }
    fn groups(&self) -> Result<Vec<GroupRecord>, RegistryError> {
        self.inner.groups()
    }
    fn group(&self, group_id: &GroupId) -> Result<Option<GroupRecord>, RegistryError> {
        self.inner.group(group_id)
    }
    fn register_all(
        &self,
        batch: &[Registration],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        self.inner.register_all(batch)
    }
    fn register_all_once(
        &self,
        batch: &[Registration],
        cookies: &[CookieUse],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        self.inner.register_all_once(batch, cookies)
    }
    fn claim_cookie(&self, cookie: &CookieUse) -> Result<bool, RegistryError> {
        self.inner.claim_cookie(cookie)
    }
    fn sweep_used_cookies(&self, now: UnixTime) -> Result<u64, RegistryError> {
        self.inner.sweep_used_cookies(now)
    }
    fn schema_version(&self) -> Result<i64, RegistryError> {
        self.inner.schema_version()
    }
    fn identities(&self) -> Result<Vec<IdentityRecord>, RegistryError> {
        self.inner.identities()
    }
    fn identity_count(&self) -> Result<u64, RegistryError> {
        self.inner.identity_count()
    }
    fn delete_identity(&self, client_id: &ClientId) -> Result<bool, RegistryError> {
        self.inner.delete_identity(client_id)
    }
}

/// A made-up ClientID costs one registry lookup while its "unknown" verdict is cached (2 s):
/// flights naming it, each with a cookie of its own and each processed in full, do not each
/// query the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flights_naming_one_unknown_client_id_cost_one_registry_lookup() {
    let id = random_client_id();
    let (e, probe) = env_probed(id, |_| {}).await;
    let mut flights = Vec::new();
    for _ in 0..6 {
        flights.push(e.flight(id).await);
    }
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(e.udp).await.unwrap();
    let started = Instant::now();
    for f in &flights {
        sock.send(f).await.unwrap();
        // One at a time: flights in progress together could all miss the cache.
        e.udp_settled().await;
    }
    let elapsed = started.elapsed();
    assert_eq!(
        e.udp_flights_processed(),
        6,
        "each flight processed in full"
    );
    // A lookup inserts a verdict that keeps the next one 2 s away: a bound, not a measurement
    // (a slow machine only allows more).
    let allowed = 1 + usize::try_from(elapsed.as_secs() / 2).unwrap();
    let lookups = probe.lookups();
    assert!(
        (1..=allowed).contains(&lookups),
        "{lookups} registry lookups for 6 flights in {elapsed:?}, at most {allowed} allowed"
    );
    e.server.stop().await;
}

/// A UDP handshake job waits on the registry for at most the handshake timeout: with a lookup
/// that does not answer, the flight is refused and counted as failed and its permit is given
/// back while that lookup is still stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_handshake_stuck_on_the_registry_ends_at_the_handshake_timeout() {
    let id = random_client_id();
    let (e, probe) = env_probed(id, |c| c.limits.handshake_timeout_ms = 300).await;
    let flight = e.flight(id).await;
    probe.set_closed(true);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(e.udp).await.unwrap();
    sock.send(&flight).await.unwrap();
    wait_until("the lookup waiting in the registry", || {
        probe.waiting() == 1
    })
    .await;
    let handle = &e.server.handle;
    let m = handle.metrics();
    wait_until("the job given up", || {
        m.session_handshakes_count("udp", "failed") == 1 && handle.in_flight() == 0
    })
    .await;
    assert_eq!(
        probe.waiting(),
        1,
        "given up while the lookup is still stuck"
    );
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(PATIENCE, sock.recv(&mut buf))
        .await
        .expect("the refusal")
        .unwrap();
    assert_eq!(&buf[..n], &ERROR_MESSAGE);
    probe.set_closed(false);
    wait_until("the lookup released", || probe.waiting() == 0).await;
    e.server.stop().await;
}

/// A TCP connection from `source` (an address of 127.0.0.0/8) that opens with a fresh record of
/// `device`'s session; returns it and whether the server took it (it echoed the record) or
/// closed it.
async fn record_connection(
    server: SocketAddr,
    source: &str,
    device: &mut SessionClient,
) -> (TcpStream, bool) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let record = device.session_mut().seal(Q, b"ping").unwrap();
    write_message(&mut stream, &record, PATIENCE).await.unwrap();
    match read_message(&mut stream, 70_000, PATIENCE).await {
        Ok(m) => {
            assert_eq!(m.first(), Some(&MsgType::RECORD_REGULAR.0), "the echo");
            (stream, true)
        }
        Err(FrameError::Closed | FrameError::Io(_)) => (stream, false),
        Err(e) => panic!("no answer and no close: {e}"),
    }
}

/// One device opening record connections gets its per-address share and no more; another
/// device, from another address, still gets a connection although the hog tried to open every
/// slot there is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_tcp_record_connection() {
    let e = env(|o| {
        o.max_tcp_connections = 6;
        o.max_tcp_connections_per_client = 3;
    })
    .await;
    let mut devices = e.devices(2);
    let mut victim = e.udp_session(devices.pop().unwrap()).await;
    let mut hog = e.udp_session(devices.pop().unwrap()).await;
    let mut held = Vec::new();
    let mut taken = 0;
    for _ in 0..6 {
        let (stream, took) = record_connection(e.server.addr, "127.0.0.1", &mut hog).await;
        taken += usize::from(took);
        held.push(stream);
    }
    assert_eq!(taken, 3, "the hog's address gets its share of connections");
    let (_victim_stream, took) = record_connection(e.server.addr, "127.0.0.2", &mut victim).await;
    assert!(took, "another client still gets a record connection");
    drop(held);
    e.server.stop().await;
}

/// Echoes, except that it panics on the payload "boom" (an application bug).
struct Fragile;

impl SessionApp for Fragile {
    fn on_record(&self, r: IncomingRecord<'_>, out: &Outbox) {
        assert_ne!(r.payload, b"boom", "application bug");
        let _ = out.send(&r.client_id, r.payload_type, r.payload);
    }
}

/// A panic in the application's callback costs the record that caused it, not the UDP loop (every
/// UDP client's) nor the TCP connection it came on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_application_loses_one_record_not_the_transport() {
    let e = env_with(Arc::new(Fragile), |_| {}).await;
    let mut devices = e.devices(3);
    let mut udp = SessionClientOptions::udp();
    udp.timeout = Duration::from_secs(2);
    let mut a = SessionClient::connect(e.udp, devices.pop().unwrap(), udp.clone(), None)
        .await
        .unwrap();
    a.send(Q, b"boom").await.unwrap();
    a.send(Q, b"after").await.unwrap();
    assert_eq!(
        &a.recv().await.unwrap().payload[..],
        b"after",
        "UDP goes on"
    );
    let mut b = SessionClient::connect(e.udp, devices.pop().unwrap(), udp, None)
        .await
        .expect("another device's UDP handshake after the panic");
    b.send(Q, b"hello").await.unwrap();
    assert_eq!(&b.recv().await.unwrap().payload[..], b"hello");

    let mut c = SessionClient::connect(
        e.server.addr,
        devices.pop().unwrap(),
        SessionClientOptions::tcp(),
        None,
    )
    .await
    .unwrap();
    c.send(Q, b"boom").await.unwrap();
    c.send(Q, b"still here").await.unwrap();
    assert_eq!(
        &c.recv().await.unwrap().payload[..],
        b"still here",
        "the TCP connection goes on"
    );
    assert_eq!(e.server.handle.outbox().unwrap().app_panics(), 2);
    e.server.stop().await;
}

/// A TCP session handshake whose Session_ServerFinished cannot be written (the client reset the
/// connection right after its flight) leaves no session behind: the client never learnt of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_finished_message_was_not_delivered_is_removed() {
    let e = env(|_| {}).await;
    let mut devices = e.devices(5);
    let m = e.server.handle.metrics();
    let write_failures =
        || m.handshakes_count("failed", "io") + m.handshakes_count("failed", "closed");
    // The reset must reach the server before it writes Session_ServerFinished; it nearly always
    // does (the server verifies a signature and looks a key up first). An attempt where it did
    // not is a session handshake that succeeded, and the next attempt runs.
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(
            attempts <= 5,
            "the server wrote every Session_ServerFinished"
        );
        let failures_before = write_failures();
        let oks_before = m.session_handshakes_count("tcp", "ok");
        let (st, ci) = SessionClientHandshake::start(
            devices.pop().unwrap(),
            xtt_proto::SuiteSpec::ALL[0],
            &mut OsRng,
        );
        let mut stream = TcpStream::connect(e.server.addr).await.unwrap();
        write_message(&mut stream, &ci, PATIENCE).await.unwrap();
        let sia = read_message(&mut stream, 4096, PATIENCE).await.unwrap();
        let (_, flight) = st.handle_server_attest(&sia, None, &mut OsRng).unwrap();
        write_message(&mut stream, &flight, PATIENCE).await.unwrap();
        // A zero linger does not block on drop (it sends the reset at once).
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream); // a reset, right behind the flight
        let deadline = Instant::now() + PATIENCE;
        while e.server.handle.in_flight() != 0 || m.in_flight_now() != 0 {
            assert!(Instant::now() < deadline, "the handshake never ended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            m.session_handshakes_count("tcp", "ok"),
            oks_before + 1,
            "the server accepted the flight"
        );
        if write_failures() > failures_before {
            break;
        }
    }
    assert_eq!(
        e.server.handle.outbox().unwrap().session_count(),
        attempts - 1,
        "no session for the handshake whose Session_ServerFinished was not written"
    );
    e.server.stop().await;
}
