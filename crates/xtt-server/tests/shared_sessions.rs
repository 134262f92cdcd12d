//! Sessions shared between several XttServer nodes in one process on one PostgreSQL database
//! (the throwaway cluster `scripts/test.sh` starts; these tests fail without it): exact
//! hand-over between live nodes, replays refused on every node, reservations raised as records
//! flow, and a node stopped gracefully handing its session over exactly (no record lost). The
//! crash path (a take-over above the reservation, at most K records lost) is tested with a
//! process killed by -9 in `crates/xtt-cli/tests/nodes.rs` and on the store in its
//! conformance suite.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{test_config, Fixture, Running, BASENAME};
use rand_core::{OsRng, RngCore};
use xtt_proto::codec::MAX_HANDSHAKE_LEN;
use xtt_proto::record::PayloadType;
use xtt_proto::session::{SessionClientConfig, SessionClientHandshake};
use xtt_proto::session_table::SessionTableConfig;
use xtt_proto::SuiteSpec;
use xtt_registry::sessions::open_session_store;
use xtt_registry::{open_storage, Registry};
use xtt_server::bench::register_session_devices;
use xtt_server::framing::{read_message, write_message, FrameError};
use xtt_server::sessions::shared::{SharedOptions, SharedStats, StorageKey};
use xtt_server::{
    add_group, Echo, SessionClient, SessionClientError, SessionClientOptions, SessionOptions,
    XttServer,
};

const Q: PayloadType = PayloadType::QueueProtocol;

/// A new, empty database on the test server; returns its URL.
pub fn fresh_database_url() -> String {
    let Ok(admin) = std::env::var("XTT_TEST_POSTGRES_URL") else {
        panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
    };
    let config: postgres::Config = admin.parse().expect("a PostgreSQL URL");
    let mut c = config
        .connect(postgres::NoTls)
        .expect("connect to PostgreSQL");
    let name = format!("xtt_nodes_{:016x}", OsRng.next_u64());
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    match admin.split_once('?') {
        Some((base, query)) => format!("{}/{name}?{query}", base.rsplit_once('/').unwrap().0),
        None => format!("{}/{name}", admin.rsplit_once('/').unwrap().0),
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    url: String,
    fx: Fixture,
    registry: Arc<dyn Registry>,
    nodes: Vec<Running>,
    /// A reference to every node's registry, dropped last outside the runtime's workers (the
    /// blocking PostgreSQL client must not be dropped on one).
    _keep: Vec<Arc<dyn Registry>>,
}

impl Cluster {
    /// Stops the nodes still running and drops the registries where that may block.
    async fn stop(mut self) {
        for n in std::mem::take(&mut self.nodes) {
            n.stop().await;
        }
        tokio::task::block_in_place(move || drop(self));
    }
}

async fn cluster(n: usize, reserve: u32) -> Cluster {
    cluster_with(n, reserve, SessionTableConfig::default()).await
}

async fn cluster_with(n: usize, reserve: u32, table: SessionTableConfig) -> Cluster {
    cluster_configured(n, reserve, table, |_| {}).await
}

async fn cluster_configured(
    n: usize,
    reserve: u32,
    table: SessionTableConfig,
    configure: impl Fn(&mut xtt_server::ServerConfig),
) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    // The PostgreSQL client blocks: never on a runtime worker's own stack.
    let url = tokio::task::block_in_place(fresh_database_url);
    let registry = tokio::task::block_in_place(|| {
        let r = open_storage(&url).unwrap();
        add_group(&*r, &fx.gpk(), BASENAME).unwrap();
        r
    });
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let key = Arc::new(StorageKey::from_secret(&secret));
    let mut nodes = Vec::new();
    let mut keep = vec![registry.clone()];
    for _ in 0..n {
        // Each node with its own pools, as separate processes would have.
        let u = url.clone();
        let (reg, store) = tokio::task::spawn_blocking(move || {
            (
                open_storage(&u).unwrap(),
                open_session_store(&u, 4).unwrap(),
            )
        })
        .await
        .unwrap();
        keep.push(reg.clone());
        let mut config = test_config(dir.path());
        configure(&mut config);
        let mut server = XttServer::bind(config, fx.keys(), reg).await.unwrap();
        let mut options = SessionOptions::new(Arc::new(Echo));
        options.table = table.clone();
        options.shared = Some(SharedOptions {
            reserve,
            lease: Duration::from_secs(3),
            handover_timeout: Duration::from_millis(500),
            ..SharedOptions::new(store, key.clone())
        });
        server.enable_sessions(options).await.unwrap();
        nodes.push(common::run(server));
    }
    Cluster {
        _dir: dir,
        url,
        fx,
        registry,
        nodes,
        _keep: keep,
    }
}

impl Cluster {
    fn register(&self) -> SessionClientConfig {
        tokio::task::block_in_place(|| self.register_now())
    }

    fn register_now(&self) -> SessionClientConfig {
        let (group_id, _) = add_group(&*self.registry, &self.fx.gpk(), BASENAME).unwrap();
        register_session_devices(&*self.registry, group_id, Arc::new(self.fx.root.clone()), 1)
            .unwrap()
            .remove(0)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    fn stats(&self, i: usize) -> SharedStats {
        self.nodes[i]
            .handle
            .outbox()
            .unwrap()
            .shared_stats()
            .unwrap()
    }

    fn counters(&self, i: usize) -> xtt_proto::session_table::TableCounters {
        self.nodes[i].handle.outbox().unwrap().counters()
    }
}

async fn echo(c: &mut SessionClient, payload: &[u8]) {
    c.send(Q, payload).await.unwrap();
    let r = c.recv().await.unwrap();
    assert_eq!(&r.payload[..], payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_between_live_nodes_exactly_and_replays_are_refused_on_every_node() {
    let k = 8;
    let cl = cluster(3, k).await;
    let (b, c) = (1, 2);
    let mut dev = SessionClient::connect(
        cl.addr(b),
        cl.register(),
        SessionClientOptions::tcp(),
        Some((Q, b"early")),
    )
    .await
    .unwrap();
    assert_eq!(&dev.recv().await.unwrap().payload[..], b"early");
    let replay = dev.session_mut().seal(Q, b"once").unwrap();
    dev.send_raw(&replay).await.unwrap();
    assert_eq!(&dev.recv().await.unwrap().payload[..], b"once");
    for i in 0..3u8 {
        echo(&mut dev, &[i; 64]).await;
    }

    // The device reconnects to C: C asks B, B hands over its exact state.
    dev.reconnect_to(cl.addr(c)).await.unwrap();
    for i in 0..3 * k {
        echo(&mut dev, &i.to_be_bytes()).await;
    }
    assert_eq!(cl.stats(b).released, 1);
    assert_eq!(cl.stats(c).taken_exact, 1);
    assert_eq!(cl.stats(c).taken_after_crash, 0);
    assert!(cl.stats(c).extended >= 2, "{:?}", cl.stats(c));
    assert_eq!(cl.stats(b).created, 1);

    // The replayed record on C, on the device's own connection: out of order in a TCP stream
    // (XTT-SESSION §3), so C closes the connection without delivering it; the device
    // reconnects and goes on. On a fresh connection of its own the replay is a duplicate.
    dev.send_raw(&replay).await.unwrap();
    assert!(matches!(dev.recv().await, Err(SessionClientError::Closed)));
    dev.reconnect_to(cl.addr(c)).await.unwrap();
    echo(&mut dev, b"after the replay").await;
    let dup_before = cl.counters(c).dropped.duplicate + cl.counters(c).dropped.too_old;
    let mut raw = tokio::net::TcpStream::connect(cl.addr(c)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, &replay)
        .await
        .unwrap();
    // The connection is closed without an answer once the replay is counted.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut raw, &mut buf),
    )
    .await
    .expect("node C kept a connection opened by a replay")
    .unwrap_or(0);
    assert_eq!(n, 0, "node C answered a replay");
    assert_eq!(
        cl.counters(c).dropped.duplicate + cl.counters(c).dropped.too_old,
        dup_before + 1
    );
    drop(raw);

    // The replayed record sent to B (which released the session) and to A (which never held
    // it): each asks C, which holds the session, to release it, showing it the record; C
    // refuses (a duplicate), so neither takes the session over and the record is dropped.
    for node in [b, 0] {
        let refused = cl.stats(node).refused;
        let mut raw = tokio::net::TcpStream::connect(cl.addr(node)).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, &replay)
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        // The connection is closed without an answer (no Error: the session exists).
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut raw, &mut buf),
        )
        .await
        .unwrap()
        .unwrap_or(0);
        assert_eq!(n, 0, "node {node} answered a replay");
        assert_eq!(cl.stats(node).refused, refused + 1, "node {node}");
        assert_eq!(cl.stats(node).taken_exact, 0, "node {node}");
    }
    // The device keeps going on C, which never lost the session.
    echo(&mut dev, b"still here").await;
    assert_eq!(cl.stats(c).taken_exact, 1);
    assert_eq!(cl.stats(c).taken_after_crash, 0);
    assert_eq!(cl.stats(c).released, 0);

    // A record for a session nobody has: the Error message, as on one node.
    let mut other =
        SessionClient::connect(cl.addr(0), cl.register(), SessionClientOptions::tcp(), None)
            .await
            .unwrap();
    echo(&mut other, b"x").await;
    let mut forged = other.session_mut().seal(Q, b"y").unwrap();
    forged[4..20].copy_from_slice(&[0xab; 16]);
    let mut raw = tokio::net::TcpStream::connect(cl.addr(c)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, &forged)
        .await
        .unwrap();
    let mut buf = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut raw, &mut buf)
        .await
        .unwrap();
    assert_eq!(buf, xtt_proto::codec::ERROR_MESSAGE);

    cl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ended_on_its_node_is_not_brought_back_by_another() {
    let table = SessionTableConfig {
        idle_timeout_secs: 1,
        ..SessionTableConfig::default()
    };
    let cl = cluster_with(2, 8, table).await;
    let mut dev =
        SessionClient::connect(cl.addr(0), cl.register(), SessionClientOptions::tcp(), None)
            .await
            .unwrap();
    echo(&mut dev, b"before").await;
    // Silent past node 0's idle timeout: the session has ended there (swept or not yet).
    tokio::time::sleep(Duration::from_millis(2600)).await;
    dev.reconnect_to(cl.addr(1)).await.unwrap();
    let unknown_before = cl.counters(1).unknown_session;
    dev.send(Q, b"after").await.unwrap();
    // Node 1 answers that it does not know the session (not an echo, not silence), and counts
    // the record as one for no live session.
    let got = tokio::time::timeout(Duration::from_secs(30), dev.recv())
        .await
        .expect("node 1 neither echoed nor refused the record");
    assert!(
        matches!(got, Err(SessionClientError::SessionUnknown)),
        "node 1 must refuse a session that ended on node 0, got {:?}",
        got.map(|r| r.payload)
    );
    assert_eq!(cl.counters(1).unknown_session, unknown_before + 1);
    assert_eq!(cl.stats(1).taken_exact + cl.stats(1).taken_after_crash, 0);
    cl.stop().await;
}

/// Connects to `addr`, sends a ClientInit of its own and then `flight` (made for a cookie
/// another node issued), and returns the answer.
async fn flight_on(
    addr: SocketAddr,
    config: SessionClientConfig,
    flight: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let t = Duration::from_secs(10);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (_st, ci) = SessionClientHandshake::start(config, SuiteSpec::ALL[0], &mut OsRng);
    write_message(&mut s, &ci, t).await.unwrap();
    read_message(&mut s, MAX_HANDSHAKE_LEN, t).await.unwrap();
    write_message(&mut s, flight, t).await.unwrap();
    read_message(&mut s, MAX_HANDSHAKE_LEN, t).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_flight_replayed_to_another_node_makes_no_second_session() {
    let cl = cluster(2, 8).await;
    let config = cl.register();
    let t = Duration::from_secs(10);
    // The whole handshake on node 0.
    let mut s = tokio::net::TcpStream::connect(cl.addr(0)).await.unwrap();
    let (st, ci) = SessionClientHandshake::start(config.clone(), SuiteSpec::ALL[0], &mut OsRng);
    write_message(&mut s, &ci, t).await.unwrap();
    let sia = read_message(&mut s, MAX_HANDSHAKE_LEN, t).await.unwrap();
    let (st, flight) = st.handle_server_attest(&sia, None, &mut OsRng).unwrap();
    write_message(&mut s, &flight, t).await.unwrap();
    let finished = read_message(&mut s, MAX_HANDSHAKE_LEN, t).await.unwrap();
    st.handle_server_finished(&finished).unwrap();
    assert_eq!(cl.stats(0).created, 1);

    // The same flight on node 1 (its cookie opens there too, the nodes share cookie keys):
    // refused, and no session with the same keys is made.
    match flight_on(cl.addr(1), config, &flight).await {
        Err(FrameError::Protocol(xtt_proto::Error::ReceivedErrorMessage)) => {}
        other => panic!("node 1 accepted a replayed flight: {other:?}"),
    }
    assert_eq!(cl.stats(1).created, 0);
    assert_eq!(cl.nodes[1].handle.outbox().unwrap().session_count(), 0);
    cl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_times_out_while_its_session_is_stored_leaves_no_row() {
    let cl = cluster_configured(1, 8, SessionTableConfig::default(), |c| {
        c.limits.handshake_timeout_ms = 1500;
    })
    .await;
    let config = cl.register();
    let url = cl.url.clone();
    // Another transaction holds the sessions table: the node's insert waits behind it.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("LOCK TABLE xtt_sessions IN EXCLUSIVE MODE")
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        tx.commit().unwrap();
    });
    locked_rx.recv().unwrap();
    let t = Duration::from_secs(10);
    let mut s = tokio::net::TcpStream::connect(cl.addr(0)).await.unwrap();
    let (st, ci) = SessionClientHandshake::start(config, SuiteSpec::ALL[0], &mut OsRng);
    write_message(&mut s, &ci, t).await.unwrap();
    let sia = read_message(&mut s, MAX_HANDSHAKE_LEN, t).await.unwrap();
    let (_st, flight) = st.handle_server_attest(&sia, None, &mut OsRng).unwrap();
    write_message(&mut s, &flight, t).await.unwrap();
    // The handshake times out while the insert waits; the client never hears of a session.
    let answer = read_message(&mut s, MAX_HANDSHAKE_LEN, t).await;
    assert!(
        !matches!(&answer, Ok(m) if m.first() == Some(&0x23)),
        "the client was told of a session: {answer:?}"
    );
    release_tx.send(()).unwrap();
    tokio::task::block_in_place(|| locker.join().unwrap());
    // The insert goes through once the lock is gone (counted when it commits); only then can
    // the store be asked whether its row outlived the handshake.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cl.stats(0).created == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiting insert never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = cl.url.clone();
    let rows = || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM xtt_sessions", &[])
            .unwrap()
            .get(0);
        n
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = tokio::task::block_in_place(rows);
    while left != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = tokio::task::block_in_place(rows);
    }
    assert_eq!(
        left, 0,
        "the timed-out handshake's session row stayed in the store"
    );
    assert_eq!(cl.nodes[0].handle.outbox().unwrap().session_count(), 0);
    cl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_stopped_gracefully_hands_the_session_over_exactly() {
    let k = 8u32;
    let cl = cluster(2, k).await;
    let opts = SessionClientOptions {
        retransmit_after: Duration::from_millis(100),
        timeout: Duration::from_millis(400),
        ..SessionClientOptions::udp()
    };
    let mut dev = SessionClient::connect(cl.addr(0), cl.register(), opts, None)
        .await
        .unwrap();
    // Three records on node 0 (numbers 0..3 of its reservation 0..8).
    for i in 0..3u8 {
        echo(&mut dev, &[i]).await;
    }
    let mut cl = cl;
    let first = cl.nodes.remove(0);
    let to = cl.addr(0);
    // Node 0 stops gracefully: its sessions go to the store with their exact state.
    first.stop().await;
    dev.reconnect_to(to).await.unwrap();
    let mut lost = 0u32;
    let mut seq_after = None;
    for i in 0..2 * k {
        let payload = (1000 + i).to_be_bytes();
        let seq = dev.session().next_send_seq();
        dev.send(Q, &payload).await.unwrap();
        match dev.recv().await {
            Ok(r) => {
                assert_eq!(&r.payload[..], &payload);
                seq_after = Some(seq);
                break;
            }
            Err(SessionClientError::Timeout) => lost += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let seq_after = seq_after.expect("records flow again through the second node");
    assert_eq!(seq_after, 3, "the new owner continues at the next record");
    assert_eq!(lost, 0, "no record lost");
    let s = cl.stats(0);
    assert_eq!(s.taken_exact, 1, "{s:?}");
    assert_eq!(s.taken_after_crash, 0, "{s:?}");
    // And it keeps flowing, reservations raised as needed.
    for i in 0..2 * k {
        echo(&mut dev, &i.to_be_bytes()).await;
    }
    cl.stop().await;
}

/// Records for unknown sessions make the node ask the store before anything is authenticated
/// (spoofable over UDP): only a small share of the store work goes to them. A flood of records
/// with random session ids is mostly dropped, and a held session's reservation raises go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_records_for_unknown_sessions_does_not_starve_held_ones() {
    let k = 4;
    let cl = cluster(1, k).await;
    let mut dev =
        SessionClient::connect(cl.addr(0), cl.register(), SessionClientOptions::tcp(), None)
            .await
            .unwrap();
    echo(&mut dev, b"before").await;
    let template = dev.session_mut().seal(Q, b"flood").unwrap();
    // Its number is used on the device's connection too: over TCP a skipped number closes it.
    dev.send_raw(&template).await.unwrap();
    assert_eq!(&dev.recv().await.unwrap().payload[..], b"flood");
    let flood = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    flood.connect(cl.addr(0)).await.unwrap();
    let sender = tokio::spawn(async move {
        for _ in 0..3000 {
            let mut r = template.clone();
            OsRng.fill_bytes(&mut r[4..20]);
            let _ = flood.send(&r).await;
        }
    });
    for i in 0..6 * k {
        tokio::time::timeout(Duration::from_secs(10), echo(&mut dev, &i.to_be_bytes()))
            .await
            .expect("a held session's records go on during the flood");
    }
    sender.await.unwrap();
    let stats = cl.stats(0);
    assert!(stats.extended >= 4, "{stats:?}");
    assert!(stats.dropped > 0, "the flood was not capped: {stats:?}");
    cl.stop().await;
}
