//! Sessions shared between nodes through a real SQLite store, on real sockets on 127.0.0.1: what
//! a take-over may and may not do. A record that does not authenticate takes no session from
//! its owner and sends nobody anything; a session taken over answers only where an authentic
//! record came from; a take-over the node cannot complete gives the session back; a panic in
//! the application does not wedge a session; an old session taken over does not replace the
//! client's newer one.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{test_config, Fixture, Running, BASENAME};
use rand_core::{OsRng, RngCore};
use tokio::net::UdpSocket;
use xtt_proto::record::PayloadType;
use xtt_proto::session::SessionClientConfig;
use xtt_proto::session_table::SessionTableConfig;
use xtt_registry::sessions::open_session_store;
use xtt_registry::{Registry, SqliteRegistry};
use xtt_server::bench::register_session_devices;
use xtt_server::sessions::shared::{SharedOptions, SharedStats, StorageKey};
use xtt_server::sessions::{IncomingRecord, SendError};
use xtt_server::{
    add_group, Echo, Outbox, SessionApp, SessionClient, SessionClientOptions, SessionOptions,
    XttServer,
};

const Q: PayloadType = PayloadType::QueueProtocol;
/// Bound of every wait on the servers (they answer in milliseconds).
const DEADLINE: Duration = Duration::from_secs(10);

/// Echoes, except that a record whose payload is `boom` makes it panic.
struct PanicOnBoom;

impl SessionApp for PanicOnBoom {
    fn on_record(&self, record: IncomingRecord<'_>, out: &Outbox) {
        assert!(
            record.payload != b"boom",
            "the application panics on purpose"
        );
        Echo.on_record(record, out);
    }
}

/// How node `i` of a [`Cluster`] is set up.
struct NodeSetup {
    app: Arc<dyn SessionApp>,
    table: SessionTableConfig,
    reserve: u32,
}

impl Default for NodeSetup {
    fn default() -> Self {
        Self {
            app: Arc::new(Echo),
            table: SessionTableConfig::default(),
            reserve: 256,
        }
    }
}

/// Server nodes sharing one SQLite session store and one SQLite registry.
struct Cluster {
    _dir: tempfile::TempDir,
    fx: Fixture,
    registry: Arc<dyn Registry>,
    group_id: xtt_proto::daa::GroupId,
    nodes: Vec<Option<Running>>,
}

impl Cluster {
    async fn start(setups: Vec<NodeSetup>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fx = Fixture::new();
        let reg_path = dir.path().join("registry.sqlite");
        let store_url = format!("sqlite:{}", dir.path().join("sessions.sqlite").display());
        let registry: Arc<dyn Registry> =
            Arc::new(SqliteRegistry::open(&reg_path, xtt_registry::Durability::Full).unwrap());
        let (group_id, _) = add_group(&*registry, &fx.gpk(), BASENAME).unwrap();
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let key = Arc::new(StorageKey::from_secret(&secret));
        let mut nodes = Vec::new();
        for setup in setups {
            let reg: Arc<dyn Registry> =
                Arc::new(SqliteRegistry::open(&reg_path, xtt_registry::Durability::Full).unwrap());
            let store = open_session_store(&store_url, 4).unwrap();
            let mut server = XttServer::bind(test_config(dir.path()), fx.keys(), reg)
                .await
                .unwrap();
            let mut options = SessionOptions::new(setup.app);
            options.table = setup.table;
            options.shared = Some(SharedOptions {
                reserve: setup.reserve,
                lease: Duration::from_secs(3),
                handover_timeout: Duration::from_millis(500),
                ..SharedOptions::new(store, key.clone())
            });
            server.enable_sessions(options).await.unwrap();
            nodes.push(Some(common::run(server)));
        }
        Self {
            _dir: dir,
            fx,
            registry,
            group_id,
            nodes,
        }
    }

    fn device(&self) -> SessionClientConfig {
        register_session_devices(
            &*self.registry,
            self.group_id,
            Arc::new(self.fx.root.clone()),
            1,
        )
        .unwrap()
        .remove(0)
    }

    fn node(&self, i: usize) -> &Running {
        self.nodes[i].as_ref().expect("node running")
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.node(i).addr
    }

    fn outbox(&self, i: usize) -> Outbox {
        self.node(i).handle.outbox().unwrap()
    }

    fn stats(&self, i: usize) -> SharedStats {
        self.outbox(i).shared_stats().unwrap()
    }

    fn counters(&self, i: usize) -> xtt_proto::session_table::TableCounters {
        self.outbox(i).counters()
    }

    /// Stops node `i` gracefully (its sessions go to the store released, exactly).
    async fn stop_node(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.stop().await;
        }
    }

    async fn stop(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }
}

/// Polls `cond` until it holds; panics with `what` after [`DEADLINE`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < DEADLINE, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn echo(c: &mut SessionClient, payload: &[u8]) {
    c.send(Q, payload).await.unwrap();
    let r = tokio::time::timeout(DEADLINE, c.recv())
        .await
        .unwrap_or_else(|_| panic!("no echo of {payload:?}"))
        .unwrap();
    assert_eq!(&r.payload[..], payload);
}

/// Finding: a panic in the application while a record that waited for the store was replayed
/// left the session marked busy for good: its later records that needed the store queued and
/// were dropped, and hand-over requests were answered Busy until the asker took the session
/// over as if its owner had crashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_replaying_a_queued_record_does_not_wedge_the_session() {
    let k = 4;
    let cl = Cluster::start(vec![
        NodeSetup {
            app: Arc::new(PanicOnBoom),
            reserve: k,
            ..NodeSetup::default()
        },
        NodeSetup {
            reserve: k,
            ..NodeSetup::default()
        },
    ])
    .await;
    let mut dev =
        SessionClient::connect(cl.addr(0), cl.device(), SessionClientOptions::tcp(), None)
            .await
            .unwrap();
    // Records 0..k open at once; record k is beyond the first reservation, waits for the
    // store to raise it and is then replayed: the application panics on it.
    for i in 0..k {
        echo(&mut dev, format!("a{i}").as_bytes()).await;
    }
    dev.send(Q, b"boom").await.unwrap();
    wait_for("the reservation raised for the record that panics", || {
        cl.stats(0).extended >= 1 && cl.counters(0).delivered == u64::from(k) + 1
    })
    .await;
    // The next reservation runs out again (k + 1 + k): those records need the store once more.
    for i in 0..2 * k {
        echo(&mut dev, format!("b{i}").as_bytes()).await;
    }
    // And a hand-over request is answered: the next node takes the session over exactly.
    dev.reconnect_to(cl.addr(1)).await.unwrap();
    echo(&mut dev, b"on the other node").await;
    assert_eq!(cl.stats(0).released, 1, "{:?}", cl.stats(0));
    assert_eq!(cl.stats(1).taken_exact, 1, "{:?}", cl.stats(1));
    assert_eq!(cl.stats(1).taken_after_crash, 0, "{:?}", cl.stats(1));
    cl.stop().await;
}

/// Sends a record on a connection the device just opened to a node that cannot take its session
/// over; returns once that node gave up (it closes the connection, which opened with a record
/// it could not accept).
async fn refused_on(dev: &mut SessionClient, node: SocketAddr) {
    dev.reconnect_to(node).await.unwrap();
    dev.send(Q, b"refused").await.unwrap();
    match tokio::time::timeout(DEADLINE, dev.recv()).await {
        Ok(Err(_)) => {}
        Ok(Ok(r)) => panic!("the node echoed {:?}", r.payload),
        Err(_) => panic!("the node neither answered nor closed the connection"),
    }
}

/// Finding: a take-over whose local insert failed after the store had granted it (table full,
/// the client's session limit, keys that do not open) left the row naming this node as owner
/// while no table held the session; the device's next record, even back on its old node, then
/// ended in "owned by the caller" or "not held" and the row was deleted: the session was
/// destroyed. Here the node's table is full: it does not even ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_full_table_leaves_the_session_to_its_owner() {
    let cl = Cluster::start(vec![
        NodeSetup::default(),
        NodeSetup {
            table: SessionTableConfig {
                max_sessions: 1,
                ..SessionTableConfig::default()
            },
            ..NodeSetup::default()
        },
    ])
    .await;
    let (b, c) = (0, 1);
    // Another device fills node C.
    let mut filler =
        SessionClient::connect(cl.addr(c), cl.device(), SessionClientOptions::tcp(), None)
            .await
            .unwrap();
    echo(&mut filler, b"filler").await;
    let mut dev =
        SessionClient::connect(cl.addr(b), cl.device(), SessionClientOptions::tcp(), None)
            .await
            .unwrap();
    echo(&mut dev, b"on b").await;
    // The device roams to C, which cannot hold its session, and back to B.
    refused_on(&mut dev, cl.addr(c)).await;
    dev.reconnect_to(cl.addr(b)).await.unwrap();
    echo(&mut dev, b"back on b").await;
    assert_eq!(cl.stats(b).released, 0, "{:?}", cl.stats(b));
    assert_eq!(cl.stats(b).taken_exact + cl.stats(b).taken_after_crash, 0);
    assert_eq!(cl.stats(c).taken_exact + cl.stats(c).taken_after_crash, 0);
    echo(&mut filler, b"filler still").await;
    cl.stop().await;
}

/// The same finding where the refusal comes only after the store granted the take-over (the
/// client's per-node session limit, known once the row names the client): the row is given
/// back, and the device continues exactly on its old node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_over_refused_after_the_store_granted_it_gives_the_session_back() {
    let cl = Cluster::start(vec![
        NodeSetup::default(),
        NodeSetup {
            table: SessionTableConfig {
                max_sessions_per_client: 1,
                ..SessionTableConfig::default()
            },
            ..NodeSetup::default()
        },
    ])
    .await;
    let (b, c) = (0, 1);
    let device = cl.device();
    // The device's first session lives on C, its second on B.
    let mut first = SessionClient::connect(
        cl.addr(c),
        device.clone(),
        SessionClientOptions::tcp(),
        None,
    )
    .await
    .unwrap();
    echo(&mut first, b"first").await;
    let mut dev = SessionClient::connect(cl.addr(b), device, SessionClientOptions::tcp(), None)
        .await
        .unwrap();
    echo(&mut dev, b"second, on b").await;
    // The second roams to C: B releases it, C acquires it and cannot insert it.
    refused_on(&mut dev, cl.addr(c)).await;
    assert_eq!(cl.stats(b).released, 1, "{:?}", cl.stats(b));
    assert_eq!(cl.stats(c).taken_exact + cl.stats(c).taken_after_crash, 0);
    // Back on B it is taken back exactly: nothing lost, nothing destroyed.
    dev.reconnect_to(cl.addr(b)).await.unwrap();
    echo(&mut dev, b"back on b").await;
    assert_eq!(cl.stats(b).taken_exact, 1, "{:?}", cl.stats(b));
    assert_eq!(cl.stats(b).taken_after_crash, 0, "{:?}", cl.stats(b));
    echo(&mut first, b"first still").await;
    cl.stop().await;
}

/// A record the device sent and the server accepted (echoed): an attacker on the path has it.
async fn accepted_record(dev: &mut SessionClient, payload: &[u8]) -> Vec<u8> {
    let record = dev.session_mut().seal(Q, payload).unwrap();
    dev.send_raw(&record).await.unwrap();
    let r = tokio::time::timeout(DEADLINE, dev.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&r.payload[..], payload);
    record
}

/// A record naming the device's session that the device never made: its tag is wrong.
fn forged_record(dev: &mut SessionClient) -> Vec<u8> {
    let mut forged = dev.session_mut().seal(Q, b"forged").unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 0x55;
    forged
}

/// Finding: a forged or replayed record naming a session held by node B, sent to node C from
/// any address, made C ask B for the session, B release it and C take it over with the
/// sender's address as its path (C's records for the session went to the attacker, B had lost
/// it). Now B refuses unless the record C shows it is an authentic, fresh record of the
/// session: nothing moves, and C sends nobody anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_replayed_record_takes_no_session_from_its_owner() {
    let cl = Cluster::start(vec![NodeSetup::default(), NodeSetup::default()]).await;
    let (b, c) = (0, 1);
    let device = cl.device();
    let client_id = device.client_id;
    let mut dev = SessionClient::connect(cl.addr(b), device, SessionClientOptions::udp(), None)
        .await
        .unwrap();
    echo(&mut dev, b"on b").await;
    let replayed = accepted_record(&mut dev, b"accepted on b").await;
    let forged = forged_record(&mut dev);
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    attacker.send_to(&forged, cl.addr(c)).await.unwrap();
    wait_for("C refused the forged record", || cl.stats(c).refused == 1).await;
    attacker.send_to(&replayed, cl.addr(c)).await.unwrap();
    wait_for("C refused the replayed record", || cl.stats(c).refused == 2).await;
    // B still holds the session; C never did.
    assert_eq!(cl.stats(b).released, 0, "{:?}", cl.stats(b));
    assert_eq!(cl.stats(c).taken_exact + cl.stats(c).taken_after_crash, 0);
    assert_eq!(cl.outbox(c).session_count(), 0);
    assert!(cl.outbox(c).send(&client_id, Q, b"to whom?").is_err());
    // The device goes on on B, which never had to take its session back.
    echo(&mut dev, b"still on b").await;
    assert_eq!(cl.stats(b).taken_exact + cl.stats(b).taken_after_crash, 0);
    assert_eq!(cl.outbox(b).session_count(), 1);
    // Neither record was answered (the session exists: no Error either).
    let mut buf = [0u8; 64];
    assert!(attacker.try_recv_from(&mut buf).is_err());
    cl.stop().await;
}

/// The same finding where nobody holds the session (its node stopped gracefully and released
/// it): a forged record makes the next node acquire the row, find that the record does not
/// authenticate and give the row back as it was; an authentic record replayed from another
/// address does move the session (nobody held it), but the session has no path until one of
/// the device's own records opens: the application's records are not sent to the replayer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_taken_over_for_a_replayed_record_sends_nothing_to_the_replayer() {
    let mut cl = Cluster::start(vec![NodeSetup::default(), NodeSetup::default()]).await;
    let (b, c) = (0, 1);
    let device = cl.device();
    let client_id = device.client_id;
    let mut dev = SessionClient::connect(cl.addr(b), device, SessionClientOptions::udp(), None)
        .await
        .unwrap();
    echo(&mut dev, b"on b").await;
    let replayed = accepted_record(&mut dev, b"accepted on b").await;
    let forged = forged_record(&mut dev);
    cl.stop_node(b).await;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    attacker.send_to(&forged, cl.addr(c)).await.unwrap();
    wait_for("C refused the forged record", || cl.stats(c).refused == 1).await;
    assert_eq!(cl.stats(c).taken_exact + cl.stats(c).taken_after_crash, 0);
    assert_eq!(cl.outbox(c).session_count(), 0);

    attacker.send_to(&replayed, cl.addr(c)).await.unwrap();
    wait_for("C took the session over and dropped the replay", || {
        cl.stats(c).taken_exact == 1 && cl.counters(c).dropped.duplicate == 1
    })
    .await;
    // The row was given back exactly after the forged record: an exact take-over, not one
    // above a reservation.
    assert_eq!(cl.stats(c).taken_after_crash, 0);
    match cl.outbox(c).send(&client_id, Q, b"for the device") {
        Err(SendError::NoPath) => {}
        other => panic!("a record went somewhere before the device spoke: {other:?}"),
    }
    let mut buf = [0u8; 64];
    assert!(attacker.try_recv_from(&mut buf).is_err());

    // The device's own record gives the session its path.
    dev.reconnect_to(cl.addr(c)).await.unwrap();
    echo(&mut dev, b"on c").await;
    cl.outbox(c).send(&client_id, Q, b"for the device").unwrap();
    let r = tokio::time::timeout(DEADLINE, dev.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&r.payload[..], b"for the device");
    assert!(attacker.try_recv_from(&mut buf).is_err());
    cl.stop().await;
}

/// Waits until the wall clock's second changes: sessions store their creation time in whole
/// seconds, so the next handshake is then strictly newer.
async fn next_second() {
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = secs();
    wait_for("the next second", || secs() > start).await;
}

/// Finding: a session taken over became the client's newest on the node whatever its age, so
/// the application's records for the client were sealed in an old session (one reached by a
/// delayed record, or a device finishing with it) instead of the device's newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_session_taken_over_does_not_become_the_clients_newest() {
    let cl = Cluster::start(vec![NodeSetup::default(), NodeSetup::default()]).await;
    let (b, c) = (0, 1);
    let device = cl.device();
    let client_id = device.client_id;
    let udp = SessionClientOptions::udp;
    // S1 on B; then, a second later, S2 on C.
    let mut s1 = SessionClient::connect(cl.addr(b), device.clone(), udp(), None)
        .await
        .unwrap();
    echo(&mut s1, b"s1 on b").await;
    next_second().await;
    let mut s2 = SessionClient::connect(cl.addr(c), device.clone(), udp(), None)
        .await
        .unwrap();
    echo(&mut s2, b"s2 on c").await;
    // A record of S1 reaches C: C takes S1 over (the record is the device's own).
    s1.reconnect_to(cl.addr(c)).await.unwrap();
    s1.send(Q, b"s1 on c").await.unwrap();
    wait_for("C took S1 over", || cl.stats(c).taken_exact == 1).await;
    // The application's records for the client still go in S2 (Echo answers by client id).
    let r = tokio::time::timeout(DEADLINE, s2.recv())
        .await
        .expect("the echo went in S2")
        .unwrap();
    assert_eq!(&r.payload[..], b"s1 on c");
    cl.outbox(c).send(&client_id, Q, b"push").unwrap();
    let r = tokio::time::timeout(DEADLINE, s2.recv())
        .await
        .expect("the push went in S2")
        .unwrap();
    assert_eq!(&r.payload[..], b"push");
    // A newer session taken over does become the newest: S3 from B, a second later.
    next_second().await;
    let mut s3 = SessionClient::connect(cl.addr(b), device, udp(), None)
        .await
        .unwrap();
    echo(&mut s3, b"s3 on b").await;
    s3.reconnect_to(cl.addr(c)).await.unwrap();
    echo(&mut s3, b"s3 on c").await;
    assert_eq!(cl.stats(c).taken_exact, 2);
    cl.stop().await;
}

/// Finding: any accepted record moved the session's path, also one below the highest number
/// accepted so far (inside the replay window). An attacker who captured record n (kept from the
/// server) and sent it after the server had seen n + 1, from its own address, received the
/// session's records. Only a record above the highest moves the path now. One node, not
/// shared: this is the session table's rule on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_record_from_elsewhere_does_not_move_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let (group_id, _) = add_group(&*registry, &fx.gpk(), BASENAME).unwrap();
    let mut server = XttServer::bind(test_config(dir.path()), fx.keys(), registry.clone())
        .await
        .unwrap();
    server
        .enable_sessions(SessionOptions::new(Arc::new(Echo)))
        .await
        .unwrap();
    let node = common::run(server);
    let device =
        register_session_devices(&*registry, group_id, Arc::new(fx.root.clone()), 1).unwrap();
    let client_id = device[0].client_id;
    let mut dev = SessionClient::connect(
        node.addr,
        device[0].clone(),
        SessionClientOptions::udp(),
        None,
    )
    .await
    .unwrap();
    let outbox = node.handle.outbox().unwrap();
    // Record n is captured on its way and never reaches the server; n + 1 does.
    let withheld = dev.session_mut().seal(Q, b"n").unwrap();
    echo(&mut dev, b"n+1").await;
    // The attacker sends n from its own address: authentic and fresh, so it is delivered (and
    // echoed), but the path stays with the device.
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    attacker.send_to(&withheld, node.addr).await.unwrap();
    wait_for("record n delivered", || outbox.counters().delivered == 2).await;
    let r = tokio::time::timeout(DEADLINE, dev.recv())
        .await
        .expect("the echo of n went to the device")
        .unwrap();
    assert_eq!(&r.payload[..], b"n");
    outbox.send(&client_id, Q, b"push").unwrap();
    let r = tokio::time::timeout(DEADLINE, dev.recv())
        .await
        .expect("the push went to the device")
        .unwrap();
    assert_eq!(&r.payload[..], b"push");
    let mut buf = [0u8; 64];
    assert!(attacker.try_recv_from(&mut buf).is_err());
    node.stop().await;
}
