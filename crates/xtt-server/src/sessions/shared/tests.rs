//! The shared-session machinery on one node with a real SQLite store, driven from inside the
//! crate where the network tests cannot reach: store work cut short, rows left behind.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xtt_proto::record::{PayloadType, RecordState, Reservation, SessionId};
use xtt_proto::session::ServerSession;
use xtt_proto::{ClientId, SuiteSpec};
use xtt_registry::sessions::{
    Acquired, CreateOutcome, NodeId, SessionStore, SqliteSessionStore, StoredSession, UnixMillis,
};
use xtt_registry::{CookieUse, RegistryError, SqliteRegistry};
use zeroize::Zeroizing;

use super::handover::Answer;
use super::{lock, Op, SharedOptions, SharedSessions, StorageKey};
use crate::sessions::{Echo, Peer, RegistryKeys, SessionCore, SessionOptions};

/// Bound of every wait.
const DEADLINE: Duration = Duration::from_secs(10);

/// A SQLite store whose `extend` can be held: it reports that it was entered and waits for
/// the test to let it go.
#[derive(Debug)]
struct GatedStore {
    inner: SqliteSessionStore,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    go: Mutex<Option<mpsc::Receiver<()>>>,
}

impl SessionStore for GatedStore {
    fn register_node(
        &self,
        node: NodeId,
        handover_addr: &str,
        alive_until: UnixMillis,
    ) -> Result<(), RegistryError> {
        self.inner.register_node(node, handover_addr, alive_until)
    }
    fn heartbeat(&self, node: NodeId, alive_until: UnixMillis) -> Result<bool, RegistryError> {
        self.inner.heartbeat(node, alive_until)
    }
    fn create(
        &self,
        session: &StoredSession,
        cookie: &CookieUse,
        owner: NodeId,
        reservation: Reservation,
        now: UnixMillis,
    ) -> Result<CreateOutcome, RegistryError> {
        self.inner.create(session, cookie, owner, reservation, now)
    }
    fn acquire(
        &self,
        id: &SessionId,
        me: NodeId,
        force: bool,
        grant: u32,
        now: UnixMillis,
    ) -> Result<Acquired, RegistryError> {
        self.inner.acquire(id, me, force, grant, now)
    }
    fn extend(
        &self,
        id: &SessionId,
        me: NodeId,
        to: Reservation,
        now: UnixMillis,
    ) -> Result<bool, RegistryError> {
        if let Some(entered) = lock(&self.entered).take() {
            let _ = entered.send(());
            if let Some(go) = lock(&self.go).take() {
                let _ = go.recv_timeout(DEADLINE);
            }
        }
        self.inner.extend(id, me, to, now)
    }
    fn release(
        &self,
        id: &SessionId,
        me: NodeId,
        state: &RecordState,
        now: UnixMillis,
    ) -> Result<bool, RegistryError> {
        self.inner.release(id, me, state, now)
    }
    fn retire(
        &self,
        me: NodeId,
        sessions: &[(SessionId, RecordState)],
        now: UnixMillis,
    ) -> Result<u64, RegistryError> {
        self.inner.retire(me, sessions, now)
    }
    fn remove(&self, ids: &[SessionId], me: NodeId) -> Result<u64, RegistryError> {
        self.inner.remove(ids, me)
    }
    fn sweep(&self, now: UnixMillis, idle_ms: u64) -> Result<u64, RegistryError> {
        self.inner.sweep(now, idle_ms)
    }
    fn session_count(&self) -> Result<u64, RegistryError> {
        self.inner.session_count()
    }
    fn ping(&self) -> Result<(), RegistryError> {
        self.inner.ping()
    }
}

/// One node: its session core and shared sessions over `store`.
struct Node {
    _dir: tempfile::TempDir,
    core: Arc<SessionCore>,
    shared: Arc<SharedSessions>,
    key: Arc<StorageKey>,
}

async fn node(dir: tempfile::TempDir, store: Arc<dyn SessionStore>, reserve: u32) -> Node {
    let registry = Arc::new(
        SqliteRegistry::open(
            &dir.path().join("registry.sqlite"),
            xtt_registry::Durability::Full,
        )
        .unwrap(),
    );
    let options = SessionOptions::new(Arc::new(Echo));
    let keys = RegistryKeys::new(registry, 16, Duration::from_secs(5));
    let core = Arc::new(SessionCore::new(&options, keys));
    let mut secret = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
    let key = Arc::new(StorageKey::from_secret(&secret));
    let shared = SharedSessions::start(
        SharedOptions {
            reserve,
            ..SharedOptions::new(store, key.clone())
        },
        &core,
    )
    .await
    .unwrap();
    let _ = core.shared.set(shared.clone());
    Node {
        _dir: dir,
        core,
        shared,
        key,
    }
}

const SUITE: SuiteSpec = SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512;

/// A session made from a seed, stored (this node owning it) and in the node's table.
fn session(n: &Node, byte: u8) -> SessionId {
    let id = SessionId([byte; 16]);
    let s =
        ServerSession::new_for_testing_only(id, ClientId([byte ^ 0xff; 16]), SUITE, &[byte; 64]);
    let cookie = CookieUse {
        id: [byte; 13],
        expires_at: xtt_proto::UnixTime(crate::server::unix_now().0 + 60),
    };
    let s = n
        .shared
        .persist_new(s, &cookie, crate::server::unix_now(), 3600)
        .unwrap()
        .unwrap();
    assert_eq!(s.id(), id);
    n.core
        .table
        .insert(
            s,
            Peer::Udp(([127, 0, 0, 1], 9).into()),
            crate::server::unix_now(),
        )
        .unwrap();
    id
}

/// Finding: store work on a session that ended without clearing the session's busy mark (a
/// panic while a queued record was replayed, or its future dropped) left the mark for good:
/// every later operation on the session queued behind it and was dropped, and hand-over
/// requests for it were answered Busy. Here the work's future is dropped while its store call
/// is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_work_cut_short_frees_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let store = Arc::new(GatedStore {
        inner: SqliteSessionStore::open(&dir.path().join("sessions.sqlite")).unwrap(),
        entered: Mutex::new(Some(entered_tx)),
        go: Mutex::new(Some(go_rx)),
    });
    let n = node(dir, store, 4).await;
    let id = session(&n, 0x51);
    let send = || Op::Send {
        payload_type: PayloadType::QueueProtocol,
        payload: Zeroizing::new(b"queued".to_vec()),
    };
    // A record waiting for the reservation raise, and the raise's work, cut short while the
    // store holds it.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let record = Op::Record {
        bytes: vec![0x31; 64],
        peer: Peer::Udp(([127, 0, 0, 1], 9).into()),
        done: Some(done_tx),
    };
    assert!(matches!(
        n.shared.enqueue(&n.core, id, send()),
        super::Enqueued::Start(None)
    ));
    assert!(matches!(
        n.shared.enqueue(&n.core, id, record),
        super::Enqueued::Queued
    ));
    let work = n.shared.clone().work(n.core.clone(), id);
    let entered = tokio::task::spawn_blocking(move || entered_rx.recv_timeout(DEADLINE));
    tokio::select! {
        _ = work => panic!("the work finished while its store call was held"),
        e = entered => e.unwrap().unwrap(),
    }
    // The work is gone: its session is free again, and what waited behind it was failed.
    assert!(
        !lock(&n.shared.busy).contains_key(&id),
        "the session stays marked busy"
    );
    assert_eq!(
        tokio::time::timeout(DEADLINE, done_rx).await.unwrap(),
        Ok(false)
    );
    go_tx.send(()).unwrap();
    // The next operation on the session starts work of its own and completes.
    let t0 = Instant::now();
    n.shared.defer(&n.core, id, send());
    while lock(&n.shared.busy).contains_key(&id) || n.shared.stats().extended == 0 {
        assert!(t0.elapsed() < DEADLINE, "{:?}", n.shared.stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The device's half of [`session`]'s session.
fn device(byte: u8) -> xtt_proto::session::ClientSession {
    let pki = crate::bench::ThrowawayPki::generate().unwrap();
    ServerSession::client_for_testing_only(
        SessionId([byte; 16]),
        ClientId([byte ^ 0xff; 16]),
        SUITE,
        &[byte; 64],
        pki.certificate,
    )
}

/// The hand-over request carries the record that made the asker ask: the owner releases the
/// session for the device's newest record only, not for a forged or replayed one, nor for an
/// older one kept from it; a request of the previous version (no record, from a node not yet
/// upgraded) is still honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_releases_a_session_only_for_the_devices_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteSessionStore::open(&dir.path().join("sessions.sqlite")).unwrap());
    let n = node(dir, store, 64).await;
    let addr = n.shared.handover_addr.clone();
    let asker = NodeId(7);
    let ask = |id: SessionId, record: Vec<u8>| {
        let (addr, key) = (addr.clone(), n.key.clone());
        async move { super::handover::ask(&addr, &id, &record, asker, &key, DEADLINE).await }
    };
    let id = session(&n, 0x61);
    let mut dev = device(0x61);
    let accepted = dev.seal(PayloadType::QueueProtocol, b"accepted").unwrap();
    n.core
        .table
        .open(
            &accepted,
            Peer::Udp(([127, 0, 0, 1], 9).into()),
            crate::server::unix_now(),
        )
        .unwrap();
    // Sealed, kept from the node, then outrun by a later record the node accepts.
    let withheld = dev.seal(PayloadType::QueueProtocol, b"withheld").unwrap();
    let later = dev.seal(PayloadType::QueueProtocol, b"later").unwrap();
    n.core
        .table
        .open(
            &later,
            Peer::Udp(([127, 0, 0, 1], 9).into()),
            crate::server::unix_now(),
        )
        .unwrap();
    let mut forged = dev.seal(PayloadType::QueueProtocol, b"forged").unwrap();
    if let Some(b) = forged.last_mut() {
        *b ^= 1;
    }
    let fresh = dev.seal(PayloadType::QueueProtocol, b"fresh").unwrap();
    let mut other = device(0x62);
    let elsewhere = other.seal(PayloadType::QueueProtocol, b"other").unwrap();
    for (what, record) in [
        ("forged", forged),
        ("replayed", accepted),
        ("older than one accepted", withheld),
        ("of another session", elsewhere),
    ] {
        assert_eq!(ask(id, record).await, Some(Answer::Refused), "{what}");
        assert!(n.core.table.record_state(&id).is_some(), "{what}");
    }
    assert_eq!(n.shared.stats().released, 0);
    assert_eq!(ask(id, fresh.clone()).await, Some(Answer::Released));
    assert!(n.core.table.record_state(&id).is_none());
    assert_eq!(n.shared.stats().released, 1);
    // The records were only looked at: the next owner still accepts them.
    assert_eq!(n.core.table.counters().delivered, 2);

    // A node of the previous version asks without a record.
    let id = session(&n, 0x63);
    let mut req = vec![1u8];
    req.extend_from_slice(&id.0);
    req.extend_from_slice(&asker.0.to_be_bytes());
    req.extend_from_slice(&UnixMillis::now().0.to_be_bytes());
    let mac = n.key.handover_mac(&req).unwrap();
    req.extend_from_slice(&mac);
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, &req)
        .await
        .unwrap();
    let mut answer = [0u8; 1];
    tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(answer, [0], "released");
    assert!(n.core.table.record_state(&id).is_none());
}

/// Finding: a session whose server sequence numbers ran out was removed from the table, but
/// its row stayed in the store, owned by this node, until swept as idle or found by the
/// device's next record. The sweeper now forgets it with the sessions that expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_out_of_sequence_numbers_leaves_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite");
    let store = Arc::new(SqliteSessionStore::open(&path).unwrap());
    let rows = SqliteSessionStore::open(&path).unwrap();
    let n = node(dir, store, 64).await;
    let id = session(&n, 0x71);
    let client_id = ClientId([0x71 ^ 0xff; 16]);
    let _sweeper = n.core.spawn_sweeper(Duration::from_millis(20));
    assert_eq!(rows.session_count().unwrap(), 1);
    assert!(n
        .core
        .table
        .set_next_send_seq_for_testing_only(&id, u32::MAX));
    let sent = crate::sessions::Outbox::new(n.core.clone()).send(
        &client_id,
        PayloadType::QueueProtocol,
        b"one too many",
    );
    assert!(
        matches!(
            sent,
            Err(crate::sessions::SendError::Record(
                xtt_proto::record::RecordError::RekeyRequired
            ))
        ),
        "{sent:?}"
    );
    assert!(n.core.table.record_state(&id).is_none());
    let t0 = Instant::now();
    while rows.session_count().unwrap() != 0 {
        assert!(t0.elapsed() < DEADLINE, "the row outlived its session");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
