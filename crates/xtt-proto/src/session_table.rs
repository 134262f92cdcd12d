//! The server's table of established sessions (sans-IO: the driver supplies bytes, the peer it
//! got them from, and the time).
//!
//! - Keyed by [`SessionId`] alone (XTT-SESSION §6): a record is accepted from any connection or
//!   address, and the table remembers, per session, the opaque peer token `P` (a socket address,
//!   a connection id, ...) that delivered the **authentic, fresh record with the highest
//!   sequence number so far**. Sealing returns that token, so the server answers wherever the
//!   device is now. Forged, replayed or stale records change nothing, so a spoofed source
//!   address cannot redirect a session.
//! - **Which record moves the path.** XTT-SESSION §6 sends the server's records to "the
//!   connection or address that most recently delivered" an authentic, fresh record. This table
//!   reads "most recently" in sequence-number order, as QUIC does (RFC 9000 §9.3: an endpoint
//!   only changes the address it sends to for a packet with the highest number seen so far): a
//!   record below the highest accepted one (still inside the replay window, hence accepted and
//!   delivered) does **not** move the path. Otherwise an attacker who captured record `n` and
//!   kept it from the server could send it, after the server saw `n + 1`, from its own address
//!   and receive the session's traffic; and plain reordering during a move would send replies
//!   back to the old address. A session taken over from another server node
//!   ([`SessionTable::insert_taken_over`]) has no path until its first record opens: that
//!   record gives it one whatever its number. (The server's driver lists its mobility decisions
//!   in `xtt-server`'s `sessions` module; this is one of them.)
//! - Sharded: `N` shards, each a `Mutex<HashMap>`, chosen by a keyed hash of the session id, so
//!   concurrent records of different sessions rarely contend. A second sharded map finds a
//!   client's newest session for [`SessionTable::seal_to_client`]. No thread ever holds a session
//!   shard while locking an index shard, so the two cannot deadlock.
//! - Small: an idle session is one table entry (`size_of::<Entry<P>>()`, ~130 bytes + `P`) plus
//!   one 88-byte allocation for both directions' raw keys (boxed so that table growth never copies
//!   key material) plus, per client, one index entry (40 bytes). See
//!   [`SessionTable::bytes_per_session_estimate`] and the tests for measurements.
//! - Fast when busy: expanding an AEAD key (AES round keys, GHASH table) costs about as much as
//!   sealing a kilobyte, so each shard keeps the expanded keys of its
//!   [`SessionTableConfig::hot_sessions_per_shard`] most recently used sessions (~1 KiB each,
//!   boxed in the session's record layer) and evicts the least recently used one when another
//!   session needs room. A session is warmed only by an authentic record or by sealing, never
//!   by a forged record, so garbage aimed at a session id cannot evict anyone's keys. Idle
//!   sessions hold no expanded key: their memory stays as above.
//! - Bounded in time: a session expires `idle_timeout_secs` after its last authentic record from
//!   the client, and `max_lifetime_secs` after its handshake, whatever the traffic. Expired
//!   sessions are removed when touched and by [`SessionTable::sweep`], which the driver calls
//!   periodically. Bounded in number by `max_sessions`, and per client by
//!   `max_sessions_per_client`, so that one device (however many handshakes it runs, or an
//!   attacker holding its key) cannot fill the table for everyone else.

use core::fmt;
use core::hash::BuildHasher;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::Refused;
use crate::identity::ClientId;
use crate::msgs::RecordRegular;
use crate::record::{
    Delivered, DropCounters, Keep, OpenedInPlace, PayloadType, RecordError, RecordInPlace,
    RecordLayer, RecordState, Reservation, SessionId,
};
use crate::replay_window::ReplayWindow;
use crate::session::ServerSession;
use crate::UnixTime;

/// Default of [`SessionTableConfig::hot_sessions_per_shard`]: with the default 32 shards, 512
/// busy sessions at full speed for ≈ 0.5 MiB of expanded keys.
pub const DEFAULT_HOT_SESSIONS_PER_SHARD: usize = 16;

/// Limits of a [`SessionTable`].
#[derive(Clone, Debug)]
pub struct SessionTableConfig {
    /// Number of shards (rounded up to at least 1). A few per core is plenty.
    pub shards: usize,
    /// A session with no authentic record from its client for this long is removed.
    pub idle_timeout_secs: u64,
    /// A session is removed this long after its handshake; the client must re-handshake.
    pub max_lifetime_secs: u64,
    /// At most this many sessions; further inserts are refused.
    pub max_sessions: usize,
    /// At most this many live sessions per client; further inserts for it are refused until
    /// one ends (expires, or the driver removes it). A device that runs a new handshake
    /// leaves its previous session to expire, so this must allow for a device's handshakes
    /// within an idle timeout.
    pub max_sessions_per_client: u32,
    /// Sessions per shard that keep their expanded AEAD keys between records (the most recently
    /// used ones); 0 expands the keys for every record.
    pub hot_sessions_per_shard: usize,
}

impl Default for SessionTableConfig {
    fn default() -> Self {
        Self {
            shards: 32,
            idle_timeout_secs: 600,
            max_lifetime_secs: 24 * 3600,
            max_sessions: 1_000_000,
            max_sessions_per_client: 1024,
            hot_sessions_per_shard: DEFAULT_HOT_SESSIONS_PER_SHARD,
        }
    }
}

/// One stored session. Kept small: see the module docs.
struct Entry<P> {
    client_id: ClientId,
    created: u64,
    last_seen: u64,
    layer: RecordLayer,
    peer: P,
    /// `peer` is a placeholder (a session taken over): the first record that opens, whatever
    /// its number, gives the session its path.
    pathless: bool,
}

impl<P> Entry<P> {
    fn expired(&self, now: UnixTime, c: &SessionTableConfig) -> bool {
        now.0.saturating_sub(self.last_seen) > c.idle_timeout_secs
            || now.0.saturating_sub(self.created) > c.max_lifetime_secs
    }
}

/// Table-wide counters (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCounters {
    /// Records accepted and delivered.
    pub delivered: u64,
    /// Records naming no live session.
    pub unknown_session: u64,
    /// Records dropped inside a live session, by reason.
    pub dropped: DropCounters,
    /// Sessions removed because they expired (idle or lifetime).
    pub expired: u64,
}

#[derive(Default)]
struct AtomicCounters {
    delivered: AtomicU64,
    unknown_session: AtomicU64,
    duplicate: AtomicU64,
    too_old: AtomicU64,
    forged: AtomicU64,
    unknown_payload_type: AtomicU64,
    expired: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// One shard of sessions, and which of them keep expanded keys.
struct Shard<P> {
    sessions: HashMap<SessionId, Entry<P>>,
    /// Ids of the sessions that were given expanded keys, at most the configured number (an id
    /// may linger after its session was removed; eviction skips it).
    hot: Vec<SessionId>,
    /// Counts operations, to tell which hot session was used least recently.
    tick: u64,
}

impl<P> Shard<P> {
    fn new() -> Self {
        Self {
            sessions: HashMap::new(),
            hot: Vec::new(),
            tick: 0,
        }
    }

    /// The `Keep` for the next operation: keep keys if this shard keeps any.
    fn keep(&mut self, capacity: usize) -> Keep {
        if capacity == 0 {
            return Keep::No;
        }
        self.tick += 1;
        Keep::Yes(self.tick)
    }

    /// After an operation on `id` that may have warmed it: registers it among the hot sessions
    /// and cools the least recently used one beyond `capacity`.
    fn settle(&mut self, id: &SessionId, was_hot: bool, capacity: usize) {
        if was_hot {
            return;
        }
        let warmed = self
            .sessions
            .get(id)
            .is_some_and(|e| e.layer.hot_since().is_some());
        if !warmed {
            return;
        }
        if !self.hot.contains(id) {
            self.hot.push(*id);
        }
        while self.hot.len() > capacity {
            // Least recently used; an id whose session is gone or cold goes first.
            let victim = self
                .hot
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let used = self.sessions.get(h).and_then(|e| e.layer.hot_since());
                    (i, used.unwrap_or(0))
                })
                .min_by_key(|&(_, used)| used)
                .map(|(i, _)| i);
            let Some(i) = victim else { break };
            let gone = self.hot.swap_remove(i);
            if let Some(e) = self.sessions.get_mut(&gone) {
                e.layer.cool();
            }
        }
    }
}

// The table's methods mostly work on the sessions map.
impl<P> core::ops::Deref for Shard<P> {
    type Target = HashMap<SessionId, Entry<P>>;
    fn deref(&self) -> &Self::Target {
        &self.sessions
    }
}

impl<P> core::ops::DerefMut for Shard<P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.sessions
    }
}

type SessionShard<P> = Mutex<Shard<P>>;
/// One shard of the ClientID index.
type ClientShard = Mutex<HashMap<ClientId, ClientSessions>>;

/// What the index knows of one client's sessions.
#[derive(Clone, Copy, Debug)]
struct ClientSessions {
    /// The newest, while it lives (`None` once it ended, even if older ones live on: the table
    /// does not know which of those is next).
    newest: Option<SessionId>,
    /// How many live.
    live: u32,
}

/// The sharded session table; share it (`&self` everywhere) between the driver's tasks.
pub struct SessionTable<P> {
    config: SessionTableConfig,
    hasher: RandomState,
    sessions: Box<[SessionShard<P>]>,
    by_client: Box<[ClientShard]>,
    len: AtomicUsize,
    counters: AtomicCounters,
    /// Sessions the table ended when they were touched (expired, or out of sequence numbers)
    /// since the last sweep, which reports them with the ones it removes.
    ended: Mutex<Vec<SessionId>>,
}

impl<P> fmt::Debug for SessionTable<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTable")
            .field("config", &self.config)
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave an entry half-updated in a way that matters
    // more than losing the whole shard would; keep serving.
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Whether `bytes` is a record of `session` whose tag verifies under the session's keys. Its
/// freshness is not checked: that is the table's job once the session is in it. (A server node
/// taking a session over from the shared store checks that the record that made it ask is the
/// device's before it puts the session in its table.)
pub fn record_authenticates(session: &ServerSession, bytes: &[u8]) -> bool {
    RecordRegular::decode(bytes).is_ok_and(|record| {
        record.session_id == session.id.0 && authentic(&session.layer, &record).is_ok()
    })
}

/// Verifies a record's tag with a key expanded for this check only (the layer's kept keys are
/// left alone, and the plaintext, if any, is wiped when dropped).
fn authentic(layer: &RecordLayer, record: &RecordRegular<'_>) -> Result<(), RecordError> {
    layer
        .keys()
        .recv
        .open(layer.suite, None, record)
        .map(|_| ())
}

impl<P: Clone> SessionTable<P> {
    /// An empty table.
    pub fn new(config: SessionTableConfig) -> Self {
        let n = config.shards.max(1);
        let sessions = (0..n).map(|_| Mutex::new(Shard::new())).collect();
        let by_client = (0..n).map(|_| Mutex::new(HashMap::new())).collect();
        Self {
            config,
            hasher: RandomState::new(),
            sessions,
            by_client,
            len: AtomicUsize::new(0),
            counters: AtomicCounters::default(),
            ended: Mutex::new(Vec::new()),
        }
    }

    fn shard_index<K: core::hash::Hash>(&self, key: &K) -> usize {
        let n = self.sessions.len().max(1) as u64;
        usize::try_from(self.hasher.hash_one(key) % n).unwrap_or(0)
    }

    // Both shard arrays have the same non-zero length (`new`) and `shard_index` reduces modulo
    // it, so the index is always in range.
    #[allow(clippy::indexing_slicing)]
    fn session_shard(&self, id: &SessionId) -> MutexGuard<'_, Shard<P>> {
        lock(&self.sessions[self.shard_index(id)])
    }

    #[allow(clippy::indexing_slicing)]
    fn client_shard(&self, id: &ClientId) -> MutexGuard<'_, HashMap<ClientId, ClientSessions>> {
        lock(&self.by_client[self.shard_index(id)])
    }

    /// Number of live (not yet removed) sessions.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table holds [`SessionTableConfig::max_sessions`] sessions: an insert now
    /// would be refused (a server node asks before taking a session over from another).
    pub fn is_full(&self) -> bool {
        self.len() >= self.config.max_sessions
    }

    /// Stores a freshly accepted session; `peer` is where its handshake came from. Refuses a
    /// session id already in use (a client-proposed id colliding with a live session must not
    /// replace it) and a full table. The session becomes the client's newest: records sealed
    /// with [`Self::seal_to_client`] go to it.
    pub fn insert(&self, session: ServerSession, peer: P, now: UnixTime) -> Result<(), Refused> {
        self.insert_entry(session, peer, now, now, true)
    }

    /// Stores a session taken over from another server node, whose handshake happened at
    /// `created` (it keeps its maximum lifetime). It has **no path** yet: sealing returns
    /// `placeholder` (which the driver cannot send to) until a record of the session opens,
    /// whatever that record's number; from then on the usual rule applies. So whoever sent the
    /// record that made this node take the session over gets nothing unless that record opens.
    ///
    /// It becomes the client's newest only if the client's newest live session here was created
    /// before it: a session taken over is often an older one (a delayed record, a device still
    /// finishing with it), and must not take the application's records from the device's newer
    /// session. (Creation times are whole seconds: of two sessions created in the same second,
    /// the one here stays.)
    pub fn insert_taken_over(
        &self,
        session: ServerSession,
        placeholder: P,
        now: UnixTime,
        created: UnixTime,
    ) -> Result<(), Refused> {
        self.insert_entry(session, placeholder, now, created, false)
    }

    fn insert_entry(
        &self,
        session: ServerSession,
        peer: P,
        now: UnixTime,
        created: UnixTime,
        fresh: bool,
    ) -> Result<(), Refused> {
        let ServerSession {
            id,
            client_id,
            layer,
        } = session;
        // Index shard first, then session shards one at a time: the only place locks nest.
        let mut index = self.client_shard(&client_id);
        if index
            .get(&client_id)
            .is_some_and(|c| c.live >= self.config.max_sessions_per_client)
        {
            return Err(Refused::TooManySessions);
        }
        {
            let mut shard = self.session_shard(&id);
            if shard.contains_key(&id) {
                return Err(Refused::SessionIdInUse);
            }
            if self.len.fetch_add(1, Ordering::Relaxed) >= self.config.max_sessions {
                self.len.fetch_sub(1, Ordering::Relaxed);
                return Err(Refused::SessionTableFull);
            }
            shard.insert(
                id,
                Entry {
                    client_id,
                    created: created.0,
                    last_seen: now.0,
                    layer,
                    peer,
                    pathless: !fresh,
                },
            );
        }
        // A newer (or as new) live session stays the newest. Its shard is locked while the index
        // shard is held, the allowed order; the new session's shard is no longer held.
        let newer_here = !fresh
            && index
                .get(&client_id)
                .and_then(|c| c.newest)
                .is_some_and(|n| {
                    self.session_shard(&n)
                        .get(&n)
                        .is_some_and(|e| e.created >= created.0)
                });
        let entry = index.entry(client_id).or_insert(ClientSessions {
            newest: None,
            live: 0,
        });
        if !newer_here {
            entry.newest = Some(id);
        }
        entry.live = entry.live.saturating_add(1);
        Ok(())
    }

    fn forget_index(&self, client_id: &ClientId, id: &SessionId) {
        let mut index = self.client_shard(client_id);
        if let Some(c) = index.get_mut(client_id) {
            c.live = c.live.saturating_sub(1);
            if c.newest == Some(*id) {
                c.newest = None;
            }
            if c.live == 0 {
                index.remove(client_id);
            }
        }
    }

    fn removed(&self, client_id: &ClientId, id: &SessionId, expired: bool) {
        self.len.fetch_sub(1, Ordering::Relaxed);
        if expired {
            bump(&self.counters.expired);
        }
        self.forget_index(client_id, id);
    }

    /// Opens one Record_Regular received from `peer`. On success the session's idle timer
    /// restarts, and its peer becomes `peer` if the record is the highest numbered accepted so
    /// far (see the module docs); on any failure nothing changes (the drop is counted).
    /// [`RecordError::alert_bytes`] says whether to answer (only unknown sessions are).
    pub fn open(&self, bytes: &[u8], peer: P, now: UnixTime) -> Result<Delivered, RecordError> {
        let record = RecordRegular::decode(bytes)?;
        let id = SessionId(record.session_id);
        self.open_with(&id, peer, now, |layer, keep| layer.open(&record, keep))
            .map(|(client_id, record)| Delivered { client_id, record })
    }

    /// [`Self::open`], decrypting the record where it lies in `bytes` (no copy, no allocation):
    /// the payload is handed out as a slice of `bytes`, which then holds plaintext; zeroize it
    /// once done. (A record that fails to authenticate leaves no plaintext: ring overwrites it.)
    /// Not for sessions with a [`crate::record::Reservation`] (shared between server nodes): an
    /// authentic record beyond the reservation is refused after decryption, so the buffer holds
    /// plaintext and cannot be opened again once the reservation is raised; use [`Self::open`].
    pub fn open_in_place<'a>(
        &self,
        bytes: &'a mut [u8],
        peer: P,
        now: UnixTime,
    ) -> Result<(ClientId, OpenedInPlace<'a>), RecordError> {
        let record = RecordInPlace::decode(bytes)?;
        let id = SessionId(record.session_id);
        self.open_with(&id, peer, now, |layer, keep| {
            layer.open_in_place(record, keep)
        })
    }

    /// Finds session `id`, opens a record with `open` and updates the session and the counters.
    fn open_with<T>(
        &self,
        id: &SessionId,
        peer: P,
        now: UnixTime,
        open: impl FnOnce(&mut RecordLayer, Keep) -> Result<T, RecordError>,
    ) -> Result<(ClientId, T), RecordError> {
        let capacity = self.config.hot_sessions_per_shard;
        let mut shard = self.session_shard(id);
        let keep = shard.keep(capacity);
        let Some(entry) = shard.get_mut(id) else {
            bump(&self.counters.unknown_session);
            return Err(RecordError::UnknownSession);
        };
        if entry.expired(now, &self.config) {
            let client_id = entry.client_id;
            shard.remove(id);
            drop(shard);
            self.removed(&client_id, id, true);
            lock(&self.ended).push(*id);
            bump(&self.counters.unknown_session);
            return Err(RecordError::UnknownSession);
        }
        let was_hot = entry.layer.hot_since().is_some();
        let result = self.open_entry(entry, peer, now, |layer| open(layer, keep));
        shard.settle(id, was_hot, capacity);
        result
    }

    fn open_entry<T>(
        &self,
        entry: &mut Entry<P>,
        peer: P,
        now: UnixTime,
        open: impl FnOnce(&mut RecordLayer) -> Result<T, RecordError>,
    ) -> Result<(ClientId, T), RecordError> {
        // Highest accepted + 1: an accepted record that raises it is the newest the device sent.
        let highest = entry.layer.state().recv_next;
        let result = open(&mut entry.layer);
        let newest = entry.layer.state().recv_next > highest;
        match result {
            Ok(opened) => {
                entry.last_seen = now.0;
                if newest || entry.pathless {
                    entry.peer = peer;
                    entry.pathless = false;
                }
                bump(&self.counters.delivered);
                Ok((entry.client_id, opened))
            }
            Err(e) => {
                match e {
                    RecordError::Duplicate => bump(&self.counters.duplicate),
                    RecordError::TooOld => bump(&self.counters.too_old),
                    RecordError::Forged => bump(&self.counters.forged),
                    RecordError::UnknownPayloadType(_) => {
                        // Authentic: the client is alive (at this address, if it is the newest).
                        entry.last_seen = now.0;
                        if newest || entry.pathless {
                            entry.peer = peer;
                            entry.pathless = false;
                        }
                        bump(&self.counters.unknown_payload_type)
                    }
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// Whether the table would accept the record `bytes` now, without accepting it: well-formed,
    /// of a live session, fresh for the session's receive window and authentic; `Ok(true)` if
    /// it would also move the session's path (it is numbered above every record accepted so
    /// far), `Ok(false)` if it is an older one. Nothing changes: no window, counter, peer or
    /// idle timer moves, and no key is kept expanded. (A server node holding a session checks
    /// the record another node wants to take the session over for: only one that would move
    /// the path here may move the session elsewhere.)
    pub fn check(&self, bytes: &[u8], now: UnixTime) -> Result<bool, RecordError> {
        let record = RecordRegular::decode(bytes)?;
        let id = SessionId(record.session_id);
        let shard = self.session_shard(&id);
        let entry = shard
            .get(&id)
            .filter(|e| !e.expired(now, &self.config))
            .ok_or(RecordError::UnknownSession)?;
        let state = entry.layer.state();
        ReplayWindow::<2>::from_parts(state.recv_next, state.recv_bits).check(record.seq_num)?;
        authentic(&entry.layer, &record)?;
        Ok(u64::from(record.seq_num) >= state.recv_next)
    }

    /// Seals one record for session `id`; returns where to send it (the peer that delivered the
    /// highest numbered authentic record) and the bytes. When the server's sequence numbers run
    /// out the session is removed (and reported by the next [`Self::sweep_ids`]) and
    /// [`RecordError::RekeyRequired`] returned: the client's next record gets an Error and it
    /// re-handshakes.
    pub fn seal_to_session(
        &self,
        id: &SessionId,
        payload_type: PayloadType,
        payload: &[u8],
        now: UnixTime,
    ) -> Result<(P, Vec<u8>), RecordError> {
        let mut out = Vec::with_capacity(crate::msgs::RECORD_OVERHEAD + payload.len());
        self.seal_to_session_into(id, payload_type, payload, now, &mut out)
            .map(|peer| (peer, out))
    }

    /// [`Self::seal_to_session`] appending the record to `out` (a buffer the caller recycles:
    /// no allocation per record once it is large enough); returns where to send it. On failure
    /// `out` is as it was (no plaintext left in its spare capacity).
    pub fn seal_to_session_into(
        &self,
        id: &SessionId,
        payload_type: PayloadType,
        payload: &[u8],
        now: UnixTime,
        out: &mut Vec<u8>,
    ) -> Result<P, RecordError> {
        let capacity = self.config.hot_sessions_per_shard;
        let mut shard = self.session_shard(id);
        let keep = shard.keep(capacity);
        let Some(entry) = shard.get_mut(id) else {
            return Err(RecordError::UnknownSession);
        };
        let client_id = entry.client_id;
        let expired = entry.expired(now, &self.config);
        let was_hot = entry.layer.hot_since().is_some();
        let result = if expired {
            Err(RecordError::UnknownSession)
        } else {
            entry
                .layer
                .seal_append(id, payload_type, payload, keep, out)
                .map(|()| entry.peer.clone())
        };
        shard.settle(id, was_hot, capacity);
        if expired || matches!(result, Err(RecordError::RekeyRequired)) {
            shard.remove(id);
            drop(shard);
            self.removed(&client_id, id, expired);
            lock(&self.ended).push(*id);
        }
        result
    }

    /// Seals one record for the newest live session of `client_id` (the application-facing
    /// send). [`RecordError::UnknownSession`] if the client has none.
    pub fn seal_to_client(
        &self,
        client_id: &ClientId,
        payload_type: PayloadType,
        payload: &[u8],
        now: UnixTime,
    ) -> Result<(P, Vec<u8>), RecordError> {
        let mut out = Vec::with_capacity(crate::msgs::RECORD_OVERHEAD + payload.len());
        self.seal_to_client_into(client_id, payload_type, payload, now, &mut out)
            .map(|peer| (peer, out))
    }

    /// [`Self::seal_to_client`] appending the record to `out` (see
    /// [`Self::seal_to_session_into`]).
    pub fn seal_to_client_into(
        &self,
        client_id: &ClientId,
        payload_type: PayloadType,
        payload: &[u8],
        now: UnixTime,
        out: &mut Vec<u8>,
    ) -> Result<P, RecordError> {
        let id = {
            let index = self.client_shard(client_id);
            index
                .get(client_id)
                .and_then(|c| c.newest)
                .ok_or(RecordError::UnknownSession)?
        };
        self.seal_to_session_into(&id, payload_type, payload, now, out)
    }

    /// The newest live session of `client_id`, if any.
    pub fn session_of(&self, client_id: &ClientId) -> Option<SessionId> {
        self.client_shard(client_id)
            .get(client_id)
            .and_then(|c| c.newest)
    }

    /// Where `id`'s records go: the peer that delivered its highest numbered authentic, fresh
    /// record.
    pub fn peer_of(&self, id: &SessionId) -> Option<P> {
        self.session_shard(id).get(id).map(|e| e.peer.clone())
    }

    /// Drop counters of one session.
    pub fn drops_of(&self, id: &SessionId) -> Option<DropCounters> {
        self.session_shard(id).get(id).map(|e| e.layer.drops())
    }

    /// Removes a session (e.g. the application revoked the client). Returns whether it existed.
    pub fn remove(&self, id: &SessionId) -> bool {
        let removed = self.session_shard(id).remove(id);
        match removed {
            Some(e) => {
                self.removed(&e.client_id, id, false);
                true
            }
            None => false,
        }
    }

    /// Removes a session and returns where its record layer stood (to hand it over to another
    /// node). `None` if the table does not hold it, or holds it only past its idle timeout or
    /// lifetime (then it is removed as the sweep would: an ended session is not handed on).
    pub fn take_state(&self, id: &SessionId, now: UnixTime) -> Option<RecordState> {
        let removed = self.session_shard(id).remove(id)?;
        let expired = removed.expired(now, &self.config);
        self.removed(&removed.client_id, id, expired);
        (!expired).then(|| removed.layer.state())
    }

    /// Removes every session and returns where each record layer stood (a server node
    /// stopping gracefully hands them all over). Locks one shard at a time: a session inserted
    /// meanwhile into an already emptied shard stays.
    pub fn take_all_states(&self) -> Vec<(SessionId, RecordState)> {
        let mut all = Vec::new();
        for shard in self.sessions.iter() {
            let taken: Vec<(SessionId, Entry<P>)> = lock(shard).drain().collect();
            for (id, e) in taken {
                self.removed(&e.client_id, &id, false);
                all.push((id, e.layer.state()));
            }
        }
        all
    }

    /// Where a session's record layer stands, without removing it.
    pub fn record_state(&self, id: &SessionId) -> Option<RecordState> {
        self.session_shard(id).get(id).map(|e| e.layer.state())
    }

    /// Raises a session's reservation (after the new limits are durable). Returns whether the
    /// table holds the session.
    pub fn raise_reservation(&self, id: &SessionId, to: Reservation) -> bool {
        match self.session_shard(id).get_mut(id) {
            Some(e) => {
                e.layer.raise_limits(to);
                true
            }
            None => false,
        }
    }

    /// Removes every expired session; returns how many. Call it periodically (e.g. every few
    /// seconds); it locks one shard at a time.
    pub fn sweep(&self, now: UnixTime) -> usize {
        // Nobody asks which sessions ended: forget them.
        lock(&self.ended).clear();
        self.sweep_expired(now).len()
    }

    /// [`Self::sweep`], returning the ids removed, and those of the sessions the table ended
    /// since the last sweep when they were touched: expired, or out of sequence numbers
    /// ([`Self::seal_to_session`]). A shared session store forgets them all: their rows must
    /// not outlive them (a node would otherwise keep owning the row of a session it no longer
    /// has until the device's next record, or another node's hand-over request, found it).
    pub fn sweep_ids(&self, now: UnixTime) -> Vec<SessionId> {
        let mut all = core::mem::take(&mut *lock(&self.ended));
        all.extend(self.sweep_expired(now));
        all
    }

    fn sweep_expired(&self, now: UnixTime) -> Vec<SessionId> {
        let mut all = Vec::new();
        for shard in self.sessions.iter() {
            let mut gone = Vec::new();
            {
                let mut g = lock(shard);
                g.retain(|id, e| {
                    let keep = !e.expired(now, &self.config);
                    if !keep {
                        gone.push((e.client_id, *id));
                    }
                    keep
                });
            }
            for (client_id, id) in &gone {
                self.removed(client_id, id, true);
            }
            all.extend(gone.into_iter().map(|(_, id)| id));
        }
        all
    }

    /// Moves a session's send counter (tests of sequence exhaustion).
    #[doc(hidden)]
    pub fn set_next_send_seq_for_testing_only(&self, id: &SessionId, seq: u32) -> bool {
        match self.session_shard(id).get_mut(id) {
            Some(e) => {
                e.layer.set_next_send_seq(seq);
                true
            }
            None => false,
        }
    }

    /// Table-wide counters.
    pub fn counters(&self) -> TableCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TableCounters {
            delivered: get(&c.delivered),
            unknown_session: get(&c.unknown_session),
            dropped: DropCounters {
                duplicate: sat32(get(&c.duplicate)),
                too_old: sat32(get(&c.too_old)),
                forged: sat32(get(&c.forged)),
                unknown_payload_type: sat32(get(&c.unknown_payload_type)),
            },
            expired: get(&c.expired),
        }
    }

    /// Sessions holding expanded keys now (at most `shards × hot_sessions_per_shard`).
    pub fn hot_sessions(&self) -> usize {
        self.sessions
            .iter()
            .map(|s| {
                let g = lock(s);
                g.hot
                    .iter()
                    .filter(|id| {
                        g.sessions
                            .get(id)
                            .is_some_and(|e| e.layer.hot_since().is_some())
                    })
                    .count()
            })
            .sum()
    }

    /// Heap bytes of one session's expanded keys (both directions), while it is busy.
    pub fn hot_key_bytes() -> usize {
        RecordLayer::HOT_HEAP_BYTES
    }

    /// Bytes one stored entry occupies inside its hash table (key, value, control byte), before
    /// the table's spare capacity.
    pub fn entry_bytes() -> usize {
        core::mem::size_of::<(SessionId, Entry<P>)>() + 1
    }

    /// Estimated bytes per session now: both hash tables' allocated buckets (including spare
    /// capacity) plus each session's key allocation (without the allocator's own per-chunk
    /// overhead, ~8 bytes), divided by the number of sessions.
    pub fn bytes_per_session_estimate(&self) -> Option<usize> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        // hashbrown's usable capacity is 7/8 of its power-of-two bucket count (all of it below
        // 8 buckets); each bucket holds one entry and one control byte.
        let buckets = |cap: usize| {
            if cap == 0 {
                0
            } else {
                cap.saturating_mul(8).div_ceil(7).next_power_of_two()
            }
        };
        let mut bytes = 0usize;
        for s in self.sessions.iter() {
            bytes += buckets(lock(s).capacity()) * Self::entry_bytes();
        }
        let idx_entry = core::mem::size_of::<(ClientId, ClientSessions)>() + 1;
        for s in self.by_client.iter() {
            bytes += buckets(lock(s).capacity()) * idx_entry;
        }
        bytes += n * RecordLayer::HEAP_BYTES;
        Some(bytes / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SuiteSpec;

    const SUITE: SuiteSpec = SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512;
    const CLIENT: ClientId = ClientId([0xc1; 16]);

    fn table() -> SessionTable<u32> {
        SessionTable::new(SessionTableConfig::default())
    }

    fn session(byte: u8) -> ServerSession {
        ServerSession::new_for_testing_only(SessionId([byte; 16]), CLIENT, SUITE, &[byte; 64])
    }

    /// The device's record layer for `s` (its keys, directions swapped).
    fn device(s: &ServerSession) -> RecordLayer {
        let k = s.layer.keys();
        RecordLayer::new(
            SUITE,
            crate::record::DuplexKeys {
                send: k.recv.clone(),
                recv: k.send.clone(),
            },
        )
    }

    /// Finding: a session removed because its sequence numbers ran out (or found expired when
    /// touched) was never reported, so a shared session store kept its row, owned by the node,
    /// until the device's next record or another node's request found it.
    #[test]
    fn sessions_ended_when_touched_are_reported_by_the_next_sweep() {
        let t = table();
        let now = UnixTime(1_800_000_000);
        let (a, b) = (session(8), session(9));
        let (ida, idb) = (a.id(), b.id());
        t.insert(a, 0, now).unwrap();
        t.insert(b, 0, now).unwrap();
        assert!(t.set_next_send_seq_for_testing_only(&ida, u32::MAX));
        assert_eq!(
            t.seal_to_session(&ida, PayloadType::QueueProtocol, b"x", now),
            Err(RecordError::RekeyRequired)
        );
        assert!(t.record_state(&ida).is_none());
        assert_eq!(t.sweep_ids(now), vec![ida]);
        assert_eq!(t.sweep_ids(now), Vec::<SessionId>::new());
        // Expired, and found so by a record before the sweep came.
        let later = UnixTime(now.0 + SessionTableConfig::default().idle_timeout_secs + 1);
        let mut dev = device(&session(9));
        let record = dev
            .seal(&idb, PayloadType::QueueProtocol, b"late", Keep::No)
            .unwrap();
        assert_eq!(
            t.open(&record, 1, later).map(|_| ()),
            Err(RecordError::UnknownSession)
        );
        assert_eq!(t.sweep_ids(later), vec![idb]);
        assert!(t.is_empty());
    }

    /// Finding: any accepted record moved the session's path, also one below the highest
    /// number accepted (inside the replay window): an attacker who kept record n from the
    /// server and sent it after n + 1 from its own address got the session's traffic.
    #[test]
    fn only_the_highest_numbered_record_moves_the_path() {
        let t = table();
        let now = UnixTime(1_800_000_000);
        let s = session(7);
        let id = s.id();
        let mut dev = device(&s);
        t.insert(s, 0, now).unwrap();
        let mut seal = |payload: &[u8]| {
            dev.seal(&id, PayloadType::QueueProtocol, payload, Keep::No)
                .unwrap()
        };
        let (n, n1, n2) = (seal(b"n"), seal(b"n+1"), seal(b"n+2"));
        t.open(&n1, 1, now).unwrap();
        assert_eq!(t.peer_of(&id), Some(1));
        // Accepted (inside the window, never seen) but older: the path stays.
        t.open(&n, 2, now).unwrap();
        assert_eq!(t.peer_of(&id), Some(1));
        let (to, _) = t
            .seal_to_session(&id, PayloadType::QueueProtocol, b"reply", now)
            .unwrap();
        assert_eq!(to, 1);
        // The next highest moves it.
        t.open(&n2, 3, now).unwrap();
        assert_eq!(t.peer_of(&id), Some(3));
        assert_eq!(t.counters().delivered, 3);
    }

    /// A session taken over has no path until one of its records opens; that record gives it
    /// one whatever its number (here one below the highest the previous node accepted), and
    /// then the rule above applies.
    #[test]
    fn a_session_taken_over_gets_its_path_from_its_first_record() {
        let t = table();
        let now = UnixTime(1_800_000_000);
        let s = session(10);
        let id = s.id();
        let mut dev = device(&s);
        let records: Vec<Vec<u8>> = (0..4u8)
            .map(|i| {
                dev.seal(&id, PayloadType::QueueProtocol, &[i], Keep::No)
                    .unwrap()
            })
            .collect();
        // The previous node accepted record 2 only.
        let state = RecordState {
            recv_next: 3,
            recv_bits: [1 << 2, 0],
            send_next: 0,
        };
        let taken = ServerSession::restore(
            id,
            CLIENT,
            SUITE,
            &s.export_keys(),
            &state,
            Reservation::NONE,
        );
        t.insert_taken_over(taken, 0, now, now).unwrap();
        let (to, _) = t
            .seal_to_session(&id, PayloadType::QueueProtocol, b"nowhere", now)
            .unwrap();
        assert_eq!(to, 0, "the placeholder");
        // A replay opens nothing and gives no path.
        assert_eq!(
            t.open(&records[2], 4, now).map(|_| ()),
            Err(RecordError::Duplicate)
        );
        assert_eq!(t.peer_of(&id), Some(0));
        t.open(&records[1], 5, now).unwrap();
        assert_eq!(t.peer_of(&id), Some(5));
        t.open(&records[0], 6, now).unwrap();
        assert_eq!(t.peer_of(&id), Some(5));
        t.open(&records[3], 7, now).unwrap();
        assert_eq!(t.peer_of(&id), Some(7));
    }

    /// Finding: a session taken over from another node became the client's newest whatever its
    /// age, so the application's records for the client went to an old session the device no
    /// longer used.
    #[test]
    fn a_session_taken_over_does_not_replace_a_newer_one_as_the_clients_newest() {
        let t = table();
        let now = UnixTime(1_800_000_000);
        t.insert(session(2), 2, now).unwrap();
        // Older, or created in the same second: the newest stays.
        t.insert_taken_over(session(1), 1, now, UnixTime(now.0 - 100))
            .unwrap();
        assert_eq!(t.session_of(&CLIENT), Some(SessionId([2; 16])));
        t.insert_taken_over(session(3), 3, now, now).unwrap();
        assert_eq!(t.session_of(&CLIENT), Some(SessionId([2; 16])));
        let (to, _) = t
            .seal_to_client(&CLIENT, PayloadType::QueueProtocol, b"x", now)
            .unwrap();
        assert_eq!(to, 2);
        // Newer: it becomes the newest.
        t.insert_taken_over(session(4), 4, now, UnixTime(now.0 + 1))
            .unwrap();
        assert_eq!(t.session_of(&CLIENT), Some(SessionId([4; 16])));
        // With no newest left (it ended), a session taken over is the newest, however old.
        assert!(t.remove(&SessionId([4; 16])));
        t.insert_taken_over(session(5), 5, now, UnixTime(now.0 - 200))
            .unwrap();
        assert_eq!(t.session_of(&CLIENT), Some(SessionId([5; 16])));
        // A handshake's session is always the newest.
        t.insert(session(6), 6, UnixTime(now.0 - 300)).unwrap();
        assert_eq!(t.session_of(&CLIENT), Some(SessionId([6; 16])));
    }
}
