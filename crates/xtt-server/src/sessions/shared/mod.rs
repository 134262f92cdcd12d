//! Sessions shared between server nodes: a session established on node B is usable on node C
//! after the device reconnects there, and no record is ever accepted twice anywhere.
//!
//! # Design
//!
//! **State every node can reach.** Each session handshake stores the session in the
//! deployment's database ([`xtt_registry::sessions::SessionStore`], SQLite or PostgreSQL)
//! before Session_ServerFinished is sent: SessionID, ClientID, suite, expiry, and both
//! directions' record keys **sealed** with XChaCha20-Poly1305 under a key derived from the
//! deployment's storage key (a 0600 file every node reads, [`StorageKey`]). The sealed keys are
//! bound to the row (id, client, suite as associated data). The database alone reveals no key.
//!
//! **One owner at a time.** The row names its owner, a node id drawn at random when the
//! process starts (a restarted node is a new node). Nodes hold a lease in the database
//! (`alive_until`, renewed every `lease / 3`). A node that receives a record for a session it
//! does not hold takes it over ([`SessionStore::acquire`], one transaction):
//!
//! * the row has no owner (released): the new owner continues from the exact state stored;
//! * the owner's lease is live: the new node asks it, over the owner's **hand-over listener**
//!   (address in the database; [`handover`]), to release the session, showing it the record
//!   that named the session. The owner refuses unless that record is an authentic, fresh
//!   record of the session numbered above every one it accepted (a record that would move the
//!   session's path on the owner: an older one, withheld by an attacker and sent elsewhere,
//!   moves nothing either); otherwise it removes the session from its table (atomically, under
//!   the table's shard lock), writes its exact receive window and send counter into the row
//!   with `owner = none`, and answers; the new node then acquires the released row;
//! * the owner's lease expired, or it does not answer within `handover_timeout`, or it answers
//!   that it does not hold the session: the new node takes the row **forcibly** and starts
//!   above the owner's reservation (below).
//!
//! **Only the device moves a session.** A record's session id is in clear, so anyone can send a
//! record naming any session to any node. Such a record takes no session from a live owner (the
//! owner checks it, above). A row the new node acquired (released, or its owner dead) is put in
//! its table only if one of the records waiting for it verifies under the unsealed keys;
//! otherwise, or if the table refuses it, the row is released again as it was given. And a
//! session taken over has **no path** until one of its records opens in the table (authentic
//! and fresh; the first one gives it its path whatever its number, later ones only if numbered
//! above every record accepted): until then the node's records for it are dropped (the
//! application's send reports `NoPath`), so whoever sent the record that triggered the take-over
//! (a replay of an authentic one, from any source address) receives nothing.
//!
//! Why a node-to-node request rather than PostgreSQL LISTEN/NOTIFY or hand-over rows polled
//! from the database: it works the same on both backends (SQLite has no notifications), it
//! costs no dedicated connection per node, and its latency is one local TCP exchange instead
//! of a polling interval; the database stays the only place where state is decided (the
//! request carries no secret and no state, only "release S", authenticated by an HMAC).
//!
//! **Reservations: never accepted twice, never a nonce twice.** The owner of a session may
//! accept client sequence numbers below `recv_reserved` and send server numbers below
//! `send_reserved`, both stored in the row. Before going beyond either it raises them in the
//! database (a conditional update that succeeds only while it is still the owner) and only then
//! in its table (the record layer checks the limits *after* authentication, so forged records
//! never move a reservation). Raising sets `recv_reserved = max(next expected, seq + 1) + K`
//! and `send_reserved = next send + K`, with `K` = [`SharedOptions::reserve`]. A forced take-over
//! starts receiving at `recv_reserved` (refusing everything below) and sending at
//! `send_reserved`. So the ranges of successive owners never overlap — whether the old owner
//! crashed, is partitioned away and still running, or kept a stale copy — and therefore:
//!
//! * no client record is ever accepted by two nodes, or twice by one;
//! * no server sequence number, hence no AEAD nonce, is ever used twice;
//! * at a crash hand-over at most **K** client records are lost: those numbered between the
//!   crashed owner's last accepted record and its reservation, which the device sends again
//!   only as new records. An exact hand-over (a live owner asked, or a graceful stop) loses
//!   none. The device sees a jump in the server's sequence numbers, which its window accepts.
//!
//! Leases do not carry safety; they only decide whether asking the owner is worth a round trip.
//! Clocks matter only for them (and for the hand-over request's freshness window).
//!
//! **Graceful stop: exact, for every session at once.** A node stopped with SIGTERM or SIGINT
//! does not leave its sessions to the crash rule: once its transports have stopped it refuses
//! new store work, lets operations in flight finish, takes every session out of its table and,
//! in **one transaction** ([`SessionStore::retire`]), writes each one's exact receive window
//! and send counter with `owner = none`, then ends its own lease ([`retire`] has the steps).
//! The next node that gets a device's record acquires the released row and continues exactly:
//! no record lost, none accepted twice (a replay of any record the stopped node accepted is
//! below or inside the window handed over). Hand-over requests that arrive during the stop
//! wait for that commit. The stop is bounded ([`RETIRE_BOUND`]); if the database is
//! unreachable or slower than that, the node exits anyway and the crash rule applies (which
//! is also what a session the node did not list gets, e.g. a take-over still running at the
//! deadline: the lease already ended, so the next node takes it at once).
//!
//! **Cost.** The single-node path is untouched: without [`SharedOptions`] no table entry has a
//! limit ([`xtt_proto::record::Reservation::NONE`]) and nothing here runs. With sharing, a session
//! handshake costs one extra database round trip (the insert; the ClientID → key look-up is
//! cached for a few seconds, a miss costs a second round trip: at most two), every
//! `K` records per direction cost one round trip (the record waits for it), and a hand-over
//! costs one round trip (dead owner) or three plus one node-to-node exchange (live owner:
//! acquire → "held", the owner's release, acquire). A graceful stop costs one round trip for
//! all the node's sessions (PostgreSQL: one statement; SQLite: one transaction). Records that
//! arrive for a session while its store operation is in flight wait in a small bounded queue
//! and are then processed in order. [`SharedStats`] counts store calls (= round trips).

mod handover;
mod retire;
mod seal;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use xtt_proto::record::{PayloadType, RecordError, RecordState, Reservation, SessionId};
use xtt_proto::session::ServerSession;
use xtt_proto::session_table::record_authenticates;
use xtt_proto::{SuiteSpec, UnixTime};
use xtt_registry::sessions::{
    Acquired, CreateOutcome, NodeId, SessionStore, StoredSession, UnixMillis,
};
use xtt_registry::{CookieUse, RegistryError};
use zeroize::Zeroizing;

pub use retire::{Retired, RETIRE_BOUND};
pub use seal::{StorageKey, StorageKeyError, STORAGE_KEY_LEN};

use super::{seq_of, session_id_of, Peer, SessionCore};
use handover::Answer;

/// Settings of sessions shared between nodes.
#[derive(Clone)]
pub struct SharedOptions {
    /// The deployment's session store (same database for every node).
    pub store: Arc<dyn SessionStore>,
    /// The deployment's storage key (same file on every node).
    pub key: Arc<StorageKey>,
    /// Where this node listens for hand-over requests from other nodes.
    pub handover_listen: SocketAddr,
    /// The address other nodes should use for it (default: the bound address).
    pub handover_advertise: Option<String>,
    /// `K`: sequence numbers reserved per direction per database write; also the most client
    /// records lost when an owner crashes.
    pub reserve: u32,
    /// Node lease; renewed every third of it.
    pub lease: Duration,
    /// How long to wait for an owner's hand-over answer before taking over forcibly.
    pub handover_timeout: Duration,
}

impl std::fmt::Debug for SharedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedOptions")
            .field("store", &self.store)
            .field("handover_listen", &self.handover_listen)
            .field("reserve", &self.reserve)
            .field("lease", &self.lease)
            .field("handover_timeout", &self.handover_timeout)
            .finish_non_exhaustive()
    }
}

impl SharedOptions {
    /// Defaults: hand-over listener on 127.0.0.1 (any port), `K` = 256, 10 s lease, 1 s
    /// hand-over timeout.
    pub fn new(store: Arc<dyn SessionStore>, key: Arc<StorageKey>) -> Self {
        Self {
            store,
            key,
            handover_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            handover_advertise: None,
            reserve: 256,
            lease: Duration::from_secs(10),
            handover_timeout: Duration::from_secs(1),
        }
    }
}

/// Counters of the shared-session machinery (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedStats {
    /// Store calls made (each is one database round trip).
    pub store_calls: u64,
    /// Sessions stored at handshake.
    pub created: u64,
    /// Sessions taken over with the previous owner's exact state.
    pub taken_exact: u64,
    /// Sessions taken over above a reservation (owner dead, unreachable or not holding it).
    pub taken_after_crash: u64,
    /// Sessions this node released to another node.
    pub released: u64,
    /// Reservation raises.
    pub extended: u64,
    /// Records or sends dropped because the store failed, a queue was full or the node is
    /// stopping.
    pub dropped: u64,
    /// Graceful stops that handed every session over exactly (0 or 1).
    pub retired: u64,
    /// Take-overs refused because none of the records that asked for them authenticated
    /// (forged, or replayed to a session whose owner holds it): the records were dropped.
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    store_calls: AtomicU64,
    created: AtomicU64,
    taken_exact: AtomicU64,
    taken_after_crash: AtomicU64,
    released: AtomicU64,
    extended: AtomicU64,
    dropped: AtomicU64,
    retired: AtomicU64,
    refused: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Work waiting for a session's store operation.
pub(crate) enum Op {
    Record {
        bytes: Vec<u8>,
        peer: Peer,
        /// Told whether the record was finally accepted (a TCP connection opening with it).
        done: Option<oneshot::Sender<bool>>,
    },
    Send {
        payload_type: PayloadType,
        payload: Zeroizing<Vec<u8>>,
    },
}

impl Op {
    fn fail(self, core: &SessionCore, unknown: bool) {
        if let Op::Record { peer, done, .. } = self {
            if unknown {
                let _ = core.deliver(&peer, xtt_proto::codec::ERROR_MESSAGE.to_vec());
            }
            if let Some(d) = done {
                let _ = d.send(false);
            }
        }
    }
}

/// Ops queued per session while its store operation runs.
const MAX_QUEUED: usize = 256;
/// Sessions with a store operation in flight at once (bounds the database load that records
/// for unknown or foreign sessions can cause).
const MAX_BUSY: usize = 4096;
/// Of those, sessions this node does not hold (take-overs). A record for an unknown session is
/// not authenticated before its take-over reads the store, so a flood of records with random
/// session ids (spoofable over UDP) gets only this share: the reservation raises of sessions
/// this node holds, whose records did authenticate, keep the rest.
pub(crate) const MAX_TAKE_OVERS: usize = 64;
/// Of the records waiting for a take-over, how many are tried as the device's word: one forged
/// record queued first does not make the device's own, behind it, fail.
const MAX_PROOFS: usize = 3;

/// Holds a store whose drop may block (the blocking PostgreSQL client ends its connections
/// with a runtime of its own, which panics on a tokio worker): dropped on a plain thread when
/// the last reference goes away inside the async runtime. `/healthz` holds the store through
/// one too ([`SharedSessions::store_for_health`]), as it may outlive the node's sessions.
pub(crate) struct OffRuntimeDrop(Option<Arc<dyn SessionStore>>);

impl OffRuntimeDrop {
    pub(crate) fn new(store: Arc<dyn SessionStore>) -> Self {
        Self(Some(store))
    }

    /// The store (`None` only while being dropped).
    pub(crate) fn store(&self) -> Option<&Arc<dyn SessionStore>> {
        self.0.as_ref()
    }
}

impl Drop for OffRuntimeDrop {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("xtt-store-drop".into())
                    .spawn(move || drop(store));
            }
        }
    }
}

/// One node's share of the deployment's sessions.
pub struct SharedSessions {
    store: Arc<dyn SessionStore>,
    store_drop: Arc<OffRuntimeDrop>,
    /// Tells the hand-over listener to stop when this node's sessions go away.
    closing: tokio::sync::watch::Sender<bool>,
    key: Arc<StorageKey>,
    node: NodeId,
    reserve: u32,
    lease: Duration,
    handover_timeout: Duration,
    handover_addr: String,
    busy: Mutex<HashMap<SessionId, VecDeque<Op>>>,
    /// The path of a session taken over until one of its records opens: a queue nobody reads
    /// (sending to it fails at once, as to a closed connection).
    no_path: Peer,
    /// Take-overs in flight (at most [`MAX_TAKE_OVERS`]).
    take_overs: Arc<tokio::sync::Semaphore>,
    counters: Counters,
    /// Set when the node starts stopping ([`retire`]): no new store operation starts. Read and
    /// set under the `busy` lock's protocol (checked while holding it).
    retiring: AtomicBool,
    /// The graceful stop's outcome once known (`Some(true)`: every session is in the store).
    retired: tokio::sync::watch::Sender<Option<bool>>,
}

impl std::fmt::Debug for SharedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSessions")
            .field("node", &self.node)
            .field("handover_addr", &self.handover_addr)
            .field("reserve", &self.reserve)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Clears session `id`'s entry in `busy` if the store work holding it ends without doing so
/// itself: a panic (in the application, while a queued record is replayed) or a future dropped
/// mid-way. Without it the session's records would queue behind the stale entry and be dropped
/// forever, and hand-over requests for it answered Busy forever. The operations still queued
/// are failed. Disarmed, under the `busy` lock, where the work removes the entry itself (after
/// that the id may belong to newer work, whose entry must stay).
struct BusyGuard<'a> {
    shared: &'a SharedSessions,
    core: &'a SessionCore,
    id: SessionId,
    armed: bool,
}

impl<'a> BusyGuard<'a> {
    fn new(shared: &'a SharedSessions, core: &'a SessionCore, id: SessionId) -> Self {
        Self {
            shared,
            core,
            id,
            armed: true,
        }
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let ops: Vec<Op> = lock(&self.shared.busy)
            .remove(&self.id)
            .map(|q| q.into_iter().collect())
            .unwrap_or_default();
        tracing::error!(session = ?self.id, queued = ops.len(), "session store work ended abnormally");
        for op in ops {
            bump(&self.shared.counters.dropped);
            op.fail(self.core, false);
        }
    }
}

/// What [`SharedSessions::enqueue`] did with an operation.
enum Enqueued {
    /// Behind a store operation already running for the session.
    Queued,
    /// First in a new queue: start the work, holding the take-over permit if it is one.
    Start(Option<tokio::sync::OwnedSemaphorePermit>),
    /// Refused; the caller fails it.
    Dropped(Op),
}

/// Whether a record error means "ask the store" rather than "drop".
pub(crate) fn defers(e: &RecordError) -> bool {
    matches!(
        e,
        RecordError::UnknownSession | RecordError::BeyondReservation(_)
    )
}

impl SharedSessions {
    /// Binds the hand-over listener, registers the node and starts its lease and listener
    /// tasks.
    pub(crate) async fn start(
        options: SharedOptions,
        core: &Arc<SessionCore>,
    ) -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind(options.handover_listen).await?;
        let bound = listener.local_addr()?;
        let handover_addr = options
            .handover_advertise
            .clone()
            .unwrap_or_else(|| bound.to_string());
        // 63 random bits: positive in the database's signed 64-bit column.
        let node = NodeId(i64::try_from(OsRng.next_u64() >> 1).unwrap_or(1));
        let shared = Arc::new(Self {
            store_drop: Arc::new(OffRuntimeDrop::new(options.store.clone())),
            closing: tokio::sync::watch::Sender::new(false),
            store: options.store,
            key: options.key,
            node,
            reserve: options.reserve.max(1),
            lease: options.lease.max(Duration::from_millis(300)),
            handover_timeout: options.handover_timeout,
            handover_addr,
            busy: Mutex::new(HashMap::new()),
            no_path: Peer::Tcp {
                conn: 0,
                tx: tokio::sync::mpsc::channel(1).0,
            },
            take_overs: Arc::new(tokio::sync::Semaphore::new(MAX_TAKE_OVERS)),
            counters: Counters::default(),
            retiring: AtomicBool::new(false),
            retired: tokio::sync::watch::Sender::new(None),
        });
        let s = shared.clone();
        let alive_until = UnixMillis::now().plus(ms(shared.lease));
        tokio::task::spawn_blocking(move || {
            s.call(|st| st.register_node(s.node, &s.handover_addr, alive_until))
        })
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
        tokio::spawn(handover::serve(
            listener,
            Arc::downgrade(&shared),
            Arc::downgrade(core),
            shared.closing.subscribe(),
        ));
        tokio::spawn(Self::keep_alive(
            Arc::downgrade(&shared),
            Arc::downgrade(core),
        ));
        tracing::info!(node = node.0, handover = %shared.handover_addr, "shared sessions on");
        Ok(shared)
    }

    /// The store for `/healthz`'s probe, behind the same off-runtime drop as this node's.
    pub(crate) fn store_for_health(&self) -> Arc<OffRuntimeDrop> {
        self.store_drop.clone()
    }

    /// This node's id in the store.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The counters.
    pub fn stats(&self) -> SharedStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SharedStats {
            store_calls: get(&c.store_calls),
            created: get(&c.created),
            taken_exact: get(&c.taken_exact),
            taken_after_crash: get(&c.taken_after_crash),
            released: get(&c.released),
            extended: get(&c.extended),
            dropped: get(&c.dropped),
            retired: get(&c.retired),
            refused: get(&c.refused),
        }
    }

    fn call<T>(
        &self,
        f: impl FnOnce(&dyn SessionStore) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        bump(&self.counters.store_calls);
        f(&*self.store)
    }

    /// Runs a store call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn SessionStore) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.call(f))
            .await
            .map_err(|e| RegistryError::Database(format!("store task failed: {e}")))?
    }

    /// Renews the lease every third of it; sweeps the store now and then.
    async fn keep_alive(shared: std::sync::Weak<Self>, core: std::sync::Weak<SessionCore>) {
        let Some(period) = shared.upgrade().map(|s| s.lease / 3) else {
            return;
        };
        let mut tick = tokio::time::interval(period);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            let (Some(s), Some(core)) = (shared.upgrade(), core.upgrade()) else {
                break;
            };
            if s.retiring.load(Ordering::SeqCst) {
                break; // the stop ends the lease; renewing it would undo that
            }
            let until = UnixMillis::now().plus(ms(s.lease));
            let node = s.node;
            match s.blocking(move |st| st.heartbeat(node, until)).await {
                Ok(true) => {}
                Ok(false) => {
                    let addr = s.handover_addr.clone();
                    if let Err(e) = s
                        .blocking(move |st| st.register_node(node, &addr, until))
                        .await
                    {
                        tracing::error!(error = %e, "re-registering the node failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "lease renewal failed"),
            }
            n += 1;
            // About every 30 lease periods: drop rows nobody can use any more.
            if n % 90 == 0 {
                let idle = core.idle_secs.saturating_mul(1000);
                if let Err(e) = s
                    .blocking(move |st| st.sweep(UnixMillis::now(), idle))
                    .await
                {
                    tracing::warn!(error = %e, "session store sweep failed");
                }
            }
        }
    }

    /// Stores a freshly accepted session (sealed keys, this node as owner, the first
    /// reservation) and claims the handshake's cookie, in one transaction; returns the session
    /// with that reservation set. Blocking: call it from a blocking thread. `Ok(Err(_))`: the
    /// flight is refused, because its cookie was already used (a replay, possibly accepted by
    /// another node) or the session id is already stored (a client-proposed id colliding).
    pub(crate) fn persist_new(
        &self,
        session: ServerSession,
        cookie: &CookieUse,
        now: UnixTime,
        max_lifetime_secs: u64,
    ) -> Result<Result<ServerSession, xtt_proto::Error>, RegistryError> {
        let suite = session.suite().to_u16();
        let keys = session.export_keys();
        let sealed = self
            .key
            .seal(&session.id(), &session.client_id(), suite, &keys)
            .ok_or(RegistryError::Corrupt("sealing session keys failed"))?;
        let stored = StoredSession {
            session_id: session.id(),
            client_id: session.client_id(),
            suite,
            sealed_keys: sealed,
            created: now,
            expires_at: UnixTime(now.0.saturating_add(max_lifetime_secs)),
        };
        let first = Reservation {
            recv_limit: self.reserve,
            send_limit: self.reserve,
        };
        match self.call(|st| st.create(&stored, cookie, self.node, first, UnixMillis::now()))? {
            CreateOutcome::Created => {}
            CreateOutcome::SessionIdInUse => {
                return Ok(Err(xtt_proto::error::Refused::SessionIdInUse.into()))
            }
            CreateOutcome::CookieUsed => {
                return Ok(Err(xtt_proto::error::PeerMisbehaved::ReplayedCookie.into()))
            }
        }
        bump(&self.counters.created);
        Ok(Ok(session.with_reservation(first)))
    }

    /// Queues `op` for session `id` and starts its store operation if none is running.
    pub(crate) fn defer(self: &Arc<Self>, core: &Arc<SessionCore>, id: SessionId, op: Op) {
        match self.enqueue(core, id, op) {
            Enqueued::Queued => {}
            Enqueued::Start(take_over) => {
                let (me, core) = (self.clone(), core.clone());
                tokio::spawn(async move {
                    me.work(core, id).await;
                    drop(take_over);
                });
            }
            // Failed outside the lock: failing may answer the peer.
            Enqueued::Dropped(op) => {
                bump(&self.counters.dropped);
                op.fail(core, false);
            }
        }
    }

    /// Under the `busy` lock: where `op` goes. Dropped when stopping (the session belongs to
    /// the next node that gets this device's records), when the session's queue or the map of
    /// busy sessions is full, or when a take-over (a session this node does not hold) finds
    /// every take-over permit in use.
    fn enqueue(&self, core: &SessionCore, id: SessionId, op: Op) -> Enqueued {
        let mut busy = lock(&self.busy);
        if self.retiring.load(Ordering::SeqCst) {
            return Enqueued::Dropped(op);
        }
        if let Some(q) = busy.get_mut(&id) {
            if q.len() >= MAX_QUEUED {
                return Enqueued::Dropped(op);
            }
            q.push_back(op);
            return Enqueued::Queued;
        }
        if busy.len() >= MAX_BUSY {
            return Enqueued::Dropped(op);
        }
        let take_over = if core.table.record_state(&id).is_none() {
            match self.take_overs.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Enqueued::Dropped(op),
            }
        } else {
            None
        };
        busy.insert(id, VecDeque::from([op]));
        Enqueued::Start(take_over)
    }

    /// A record that needs the store: an unknown session or one beyond the reservation.
    pub(crate) fn defer_record(
        self: &Arc<Self>,
        core: &Arc<SessionCore>,
        bytes: &[u8],
        peer: Peer,
        done: Option<oneshot::Sender<bool>>,
    ) {
        let Some(id) = session_id_of(bytes) else {
            return;
        };
        self.defer(
            core,
            id,
            Op::Record {
                bytes: bytes.to_vec(),
                peer,
                done,
            },
        );
    }

    /// Runs the store operations session `id` needs until its queue is empty.
    async fn work(self: Arc<Self>, core: Arc<SessionCore>, id: SessionId) {
        let mut guard = BusyGuard::new(&self, &core, id);
        for _round in 0..4 {
            let held = core.table.record_state(&id).is_some();
            let (max_seq, proofs) = {
                let busy = lock(&self.busy);
                let records = || {
                    busy.get(&id)
                        .into_iter()
                        .flatten()
                        .filter_map(|op| match op {
                            Op::Record { bytes, .. } => Some(bytes),
                            Op::Send { .. } => None,
                        })
                };
                let max_seq = records().filter_map(|b| seq_of(b)).max();
                // A take-over needs the device's word: the records that asked for it.
                let proofs: Vec<Vec<u8>> = if held {
                    Vec::new()
                } else {
                    records().take(MAX_PROOFS).cloned().collect()
                };
                (max_seq, proofs)
            };
            let outcome = if held {
                self.extend(&core, id, max_seq).await
            } else if proofs.is_empty() {
                Outcome::Failed
            } else {
                self.take_over(&core, id, &proofs).await
            };
            let ops: Vec<Op> = lock(&self.busy)
                .get_mut(&id)
                .map(|q| q.drain(..).collect())
                .unwrap_or_default();
            match outcome {
                Outcome::Ready => {
                    for op in ops {
                        self.replay(&core, id, op);
                    }
                }
                Outcome::Refused => {
                    // Dropped as forged records are: counted, never answered.
                    bump(&self.counters.refused);
                    for op in ops {
                        op.fail(&core, false);
                    }
                }
                Outcome::Unknown | Outcome::Failed => {
                    let unknown = matches!(outcome, Outcome::Unknown);
                    if !unknown {
                        self.counters
                            .dropped
                            .fetch_add(ops.len() as u64, Ordering::Relaxed);
                    }
                    for op in ops {
                        op.fail(&core, unknown);
                    }
                }
            }
            let mut busy = lock(&self.busy);
            match busy.get(&id) {
                Some(q) if !q.is_empty() => continue,
                _ => {
                    busy.remove(&id);
                    guard.armed = false;
                    return;
                }
            }
        }
        let ops: Vec<Op> = {
            let mut busy = lock(&self.busy);
            guard.armed = false;
            busy.remove(&id)
                .map(|q| q.into_iter().collect())
                .unwrap_or_default()
        };
        for op in ops {
            bump(&self.counters.dropped);
            op.fail(&core, false);
        }
    }

    fn replay(self: &Arc<Self>, core: &Arc<SessionCore>, id: SessionId, op: Op) {
        match op {
            Op::Record { bytes, peer, done } => {
                core.on_record_then(&bytes, peer, done);
            }
            Op::Send {
                payload_type,
                payload,
            } => {
                let now = crate::server::unix_now();
                match core.table.seal_to_session(&id, payload_type, &payload, now) {
                    Ok((peer, bytes)) => {
                        let _ = core.deliver(&peer, bytes);
                    }
                    Err(RecordError::SendReservationExhausted) => self.defer(
                        core,
                        id,
                        Op::Send {
                            payload_type,
                            payload,
                        },
                    ),
                    Err(e) => tracing::debug!(error = %e, "queued send dropped"),
                }
            }
        }
    }

    /// Raises the reservation of a session this node holds.
    async fn extend(
        self: &Arc<Self>,
        core: &Arc<SessionCore>,
        id: SessionId,
        max_seq: Option<u32>,
    ) -> Outcome {
        let Some(state) = core.table.record_state(&id) else {
            return Outcome::Ready; // gone meanwhile: the replay takes the other path
        };
        let recv_need = u64::from(max_seq.map_or(0, |s| s.saturating_add(1))).max(state.recv_next);
        let to = Reservation {
            recv_limit: sat_u32(recv_need + u64::from(self.reserve)),
            send_limit: sat_u32(u64::from(state.send_next) + u64::from(self.reserve)),
        };
        let node = self.node;
        match self
            .blocking(move |st| st.extend(&id, node, to, UnixMillis::now()))
            .await
        {
            Ok(true) => {
                core.table.raise_reservation(&id, to);
                bump(&self.counters.extended);
                Outcome::Ready
            }
            Ok(false) => {
                // Another node took it (this one was thought dead or did not answer): whatever
                // this node still holds is below the new owner's range; drop it and ask again.
                tracing::info!(session = ?id, "session lost to another node");
                core.table.remove(&id);
                Outcome::Ready
            }
            Err(e) => {
                tracing::error!(error = %e, "raising a session reservation failed");
                Outcome::Failed
            }
        }
    }

    /// Takes a session over from the store (asking its owner first if it is alive) for one of
    /// the records in `proofs` (those waiting for it, not yet authenticated).
    async fn take_over(
        self: &Arc<Self>,
        core: &Arc<SessionCore>,
        id: SessionId,
        proofs: &[Vec<u8>],
    ) -> Outcome {
        // A full table cannot take the session: refused before anything changes (the owner
        // keeps it). Other refusals (the client's limit) are known only once it is acquired.
        if core.table.is_full() {
            tracing::debug!(session = ?id, "session table full: no take-over");
            return Outcome::Failed;
        }
        let mut force = false;
        // The record shown to a live owner; the next one if it refuses that one.
        let mut shown = proofs.iter();
        let mut proof = shown.next();
        for attempt in 0..4 {
            let (node, grant) = (self.node, self.reserve);
            let acquired = match self
                .blocking(move |st| st.acquire(&id, node, force, grant, UnixMillis::now()))
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "session take-over failed");
                    return Outcome::Failed;
                }
            };
            match acquired {
                Acquired::Unknown => return Outcome::Unknown,
                Acquired::OwnedByCaller => {
                    // Expired or finished here: the row goes too.
                    let _ = self.blocking(move |st| st.remove(&[id], node)).await;
                    return Outcome::Unknown;
                }
                Acquired::HeldBy {
                    node: holder,
                    handover_addr,
                } => {
                    let Some(record) = proof else {
                        return Outcome::Refused;
                    };
                    let answer = handover::ask(
                        &handover_addr,
                        &id,
                        record,
                        node,
                        &self.key,
                        self.handover_timeout,
                    )
                    .await;
                    tracing::debug!(holder = holder.0, ?answer, "hand-over asked");
                    match answer {
                        Some(Answer::Released) => {}
                        // Not the device's record (forged, or one the owner already accepted).
                        Some(Answer::Refused) => {
                            proof = shown.next();
                            if proof.is_none() {
                                return Outcome::Refused;
                            }
                        }
                        Some(Answer::Busy) if attempt < 2 => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        // Not held there, failed, unreachable or silent: start above its range.
                        _ => force = true,
                    }
                }
                Acquired::Taken {
                    session,
                    start,
                    reservation,
                    exact,
                } => {
                    if let Err(outcome) = self.install(core, &session, &start, reservation, proofs)
                    {
                        // This node owns the row now but holds no session: without giving it
                        // back, the device's next record (on any node) would find the row
                        // "owned by the caller" or "not held" and delete it.
                        self.give_back(id, start).await;
                        return outcome;
                    }
                    bump(if exact {
                        &self.counters.taken_exact
                    } else {
                        &self.counters.taken_after_crash
                    });
                    tracing::debug!(session = ?id, exact, "session taken over");
                    return Outcome::Ready;
                }
            }
        }
        Outcome::Failed
    }

    /// Puts a session this node has just acquired into its table, if one of `proofs` is a
    /// record of it (authentic; whether it is fresh the table decides when it is replayed).
    /// The session gets no path: the first record that opens in the table gives it one.
    fn install(
        &self,
        core: &SessionCore,
        session: &StoredSession,
        start: &RecordState,
        reservation: Reservation,
        proofs: &[Vec<u8>],
    ) -> Result<(), Outcome> {
        let Some(keys) = self.key.unseal(
            &session.session_id,
            &session.client_id,
            session.suite,
            &session.sealed_keys,
        ) else {
            tracing::error!(
                "stored session keys do not open: is the session key file the same on every node?"
            );
            return Err(Outcome::Failed);
        };
        let Ok(suite) = SuiteSpec::from_u16(session.suite) else {
            return Err(Outcome::Failed);
        };
        let s = ServerSession::restore(
            session.session_id,
            session.client_id,
            suite,
            &keys,
            start,
            reservation,
        );
        if !proofs.iter().any(|p| record_authenticates(&s, p)) {
            tracing::debug!(session = ?session.session_id, "take-over refused: no record authenticates");
            return Err(Outcome::Refused);
        }
        let now = crate::server::unix_now();
        core.table
            .insert_taken_over(s, self.no_path.clone(), now, session.created)
            .map_err(|e| {
                tracing::warn!(error = %e, "taken-over session not stored locally");
                Outcome::Failed
            })
    }

    /// Releases a row this node acquired but could not use, with the state it was given: as it
    /// was (no owner, or above the crashed owner's reservation) for the next node that gets one
    /// of the device's records.
    async fn give_back(self: &Arc<Self>, id: SessionId, start: RecordState) {
        let node = self.node;
        match self
            .blocking(move |st| st.release(&id, node, &start, UnixMillis::now()))
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::debug!(session = ?id, "row given back was no longer this node's"),
            Err(e) => tracing::error!(error = %e, "giving a session back to the store failed"),
        }
    }

    /// Another node asks for `id`, showing `record` (from a node of this version; `None` from
    /// the previous one): hand it over with its exact state if `record` is an authentic, fresh
    /// record of the session numbered above every record accepted here (one that would move the
    /// session's path here, see `SessionTable::check`), or if this node does not hold it.
    pub(crate) async fn release_local(
        self: &Arc<Self>,
        core: &Arc<SessionCore>,
        id: SessionId,
        record: Option<Vec<u8>>,
    ) -> Answer {
        {
            let mut busy = lock(&self.busy);
            if self.retiring.load(Ordering::SeqCst) {
                drop(busy);
                return self.answer_when_retired().await;
            }
            if busy.contains_key(&id) {
                return Answer::Busy;
            }
            // Records arriving meanwhile wait instead of taking the session back at once.
            busy.insert(id, VecDeque::new());
        }
        let mut guard = BusyGuard::new(self, core, id);
        let now = crate::server::unix_now();
        let shown = record.map(|r| {
            if session_id_of(&r) == Some(id) {
                core.table.check(&r, now)
            } else {
                Err(RecordError::Forged)
            }
        });
        let answer = match shown {
            // Held here, and the record is not the device's newest: the session stays. (An
            // older one, accepted here, would not even move the session's path.)
            Some(Ok(false)) => {
                tracing::debug!(session = ?id, "hand-over refused: an older record");
                Answer::Refused
            }
            Some(Err(e)) if !matches!(e, RecordError::UnknownSession) => {
                tracing::debug!(session = ?id, error = %e, "hand-over refused: not the device's record");
                Answer::Refused
            }
            _ => self.release_held(core, id, now).await,
        };
        let queued: Vec<Op> = {
            let mut busy = lock(&self.busy);
            guard.armed = false;
            busy.remove(&id)
                .map(|q| q.into_iter().collect())
                .unwrap_or_default()
        };
        for op in queued {
            self.replay(core, id, op);
        }
        answer
    }

    /// Hands session `id` over with its exact state (the caller holds its busy mark).
    async fn release_held(
        self: &Arc<Self>,
        core: &SessionCore,
        id: SessionId,
        now: UnixTime,
    ) -> Answer {
        match core.table.take_state(&id, now) {
            // Not here, or here only past its idle timeout or lifetime. A row that still names
            // this node as owner belongs to a session that ended here (expired, or out of
            // sequence numbers): deleted, so the asker finds it unknown instead of taking it
            // over and bringing it back to life. (A row this node does not own is untouched.)
            None => {
                let node = self.node;
                if let Err(e) = self.blocking(move |st| st.remove(&[id], node)).await {
                    tracing::warn!(error = %e, "removing an ended session from the store failed");
                }
                Answer::NotHeld
            }
            Some(state) => {
                let node = self.node;
                match self
                    .blocking(move |st| st.release(&id, node, &state, UnixMillis::now()))
                    .await
                {
                    Ok(true) => {
                        bump(&self.counters.released);
                        Answer::Released
                    }
                    // Not the owner any more: the asker takes it above the reservation.
                    Ok(false) => Answer::NotHeld,
                    Err(e) => {
                        tracing::error!(error = %e, "releasing a session failed");
                        Answer::Failed
                    }
                }
            }
        }
    }

    /// Sessions this node dropped (expired): their rows go too.
    pub(crate) fn forget(self: &Arc<Self>, gone: Vec<SessionId>) {
        if gone.is_empty() {
            return;
        }
        let s = self.clone();
        tokio::spawn(async move {
            let node = s.node;
            if let Err(e) = s.blocking(move |st| st.remove(&gone, node)).await {
                tracing::warn!(error = %e, "removing expired sessions from the store failed");
            }
        });
    }
}

impl Drop for SharedSessions {
    fn drop(&mut self) {
        self.closing.send_replace(true);
    }
}

enum Outcome {
    /// Replay the queue.
    Ready,
    /// The session does not exist (answer records with the Error message).
    Unknown,
    /// No record that asked for the take-over is the device's: drop them, silently.
    Refused,
    /// The store failed: drop the queue.
    Failed,
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
