//! Sessions shared between server nodes: the storage half (xtt-server's `sessions::shared`
//! module documents the whole design; this module is what it needs from the database).
//!
//! # What is stored
//!
//! One row per session: SessionID, ClientID, suite, the record keys **sealed** by the server
//! (this crate never sees them in clear), creation and expiry, and the ownership and sequence
//! state:
//!
//! * `owner` — the node (a random 64-bit id per server process) that holds the session now, or
//!   none after a clean hand-over;
//! * `recv_reserved`, `send_reserved` — the owner may accept client sequence numbers below the
//!   first and use server sequence numbers below the second. An owner raises them here
//!   ([`SessionStore::extend`], which checks it still owns the row) *before* going beyond them;
//! * `recv_next`, `recv_bits`, `send_next` — the exact record state a releasing owner left
//!   ([`SessionStore::release`], or [`SessionStore::retire`] for all of a stopping node's
//!   sessions at once); meaningful only while `owner` is none.
//!
//! Nodes have a row too: their hand-over address and a lease (`alive_until`) they renew with
//! [`SessionStore::heartbeat`].
//!
//! # Taking a session over
//!
//! [`SessionStore::acquire`] is one transaction (PostgreSQL: one call of a stored function,
//! one round trip) that decides from the row, under its lock:
//!
//! | row | outcome |
//! |---|---|
//! | missing or past its expiry | [`Acquired::Unknown`] (an expired row is deleted) |
//! | released (no owner) | [`Acquired::Taken`] with the exact state (`exact = true`) |
//! | owned by a node whose lease is live, not forced | [`Acquired::HeldBy`] its address |
//! | owned by a dead node, or forced | [`Acquired::Taken`] starting **above the reservation** |
//! | owned by the caller | [`Acquired::OwnedByCaller`] (it dropped the session: expired) |
//!
//! Taking a session writes the new owner and new reservations `start + grant` in the same
//! transaction. Every reservation handed out starts at or above every earlier one (a crash
//! take-over starts at the stored reservation, an exact one at the releasing owner's state,
//! which is at or above its own start), so the ranges of successive owners never overlap:
//! no client record is accepted twice and no server sequence number (nonce) is used twice,
//! whatever crashes, and whether or not a lease expiry was observed correctly. Leases only
//! decide whether asking the owner is worth it.

mod postgres;
mod sqlite;

pub mod conformance;

use std::fmt;
use std::sync::Arc;

use xtt_proto::record::{RecordState, Reservation, SessionId};
use xtt_proto::{ClientId, UnixTime};

use crate::{CookieUse, RegistryError};

pub use self::postgres::PostgresSessionStore;
pub use self::sqlite::SqliteSessionStore;

/// A server process's id in the session store (random per start, so a restarted process never
/// mistakes a predecessor's sessions for its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub i64);

/// Milliseconds since the Unix epoch (leases and activity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// Now, from the system clock.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// Whole seconds.
    pub fn secs(self) -> UnixTime {
        UnixTime(u64::try_from(self.0 / 1000).unwrap_or(0))
    }

    /// `self + ms`, saturating.
    pub fn plus(self, ms: u64) -> Self {
        Self(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

/// The immutable part of a stored session.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The session id.
    pub session_id: SessionId,
    /// The authenticated client.
    pub client_id: ClientId,
    /// The suite (wire value).
    pub suite: u16,
    /// The record keys, sealed by the server under the deployment's storage key.
    pub sealed_keys: Vec<u8>,
    /// When the handshake happened.
    pub created: UnixTime,
    /// When the session ends whatever its traffic (its maximum lifetime).
    pub expires_at: UnixTime,
}

/// The outcome of [`SessionStore::create`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Stored, and its cookie claimed.
    Created,
    /// The session id is already stored; nothing stored.
    SessionIdInUse,
    /// A session was already established with this cookie (a replayed flight, on this node or
    /// another); nothing stored.
    CookieUsed,
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("session_id", &self.session_id)
            .field("client_id", &self.client_id)
            .field("suite", &self.suite)
            .field("sealed_keys_len", &self.sealed_keys.len())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The outcome of [`SessionStore::acquire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// No such session, or it expired.
    Unknown,
    /// The caller owns the session now.
    Taken {
        /// The session.
        session: StoredSession,
        /// Where to continue.
        start: RecordState,
        /// The reservation now durable for the caller.
        reservation: Reservation,
        /// `true`: the previous owner handed over its exact state; `false`: it did not (crash,
        /// unreachable) and the state starts above its reservation.
        exact: bool,
    },
    /// A node with a live lease holds the session: ask it to hand over, then acquire again.
    HeldBy {
        /// The holder.
        node: NodeId,
        /// Its hand-over address.
        handover_addr: String,
    },
    /// The caller's own node is the owner in the store but asked anyway: it no longer holds the
    /// session (expired or finished there).
    OwnedByCaller,
}

/// Storage of sessions shared between server nodes. Synchronous and blocking, like
/// [`crate::Registry`]: call it from blocking threads.
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Records (or refreshes) a node: its hand-over address and lease.
    fn register_node(
        &self,
        node: NodeId,
        handover_addr: &str,
        alive_until: UnixMillis,
    ) -> Result<(), RegistryError>;

    /// Renews a node's lease; `false` if the node has no row.
    fn heartbeat(&self, node: NodeId, alive_until: UnixMillis) -> Result<bool, RegistryError>;

    /// Stores a freshly established session owned by `owner` with `reservation`, and claims
    /// `cookie`, the handshake cookie it was established with, in one transaction: no other
    /// node may accept the same flight again (that would make a second session with the same
    /// keys). A cookie claimed before, or a session id already stored, stores nothing (a cookie
    /// claimed by a session whose id turned out to be in use stays claimed: that flight is
    /// refused for good).
    fn create(
        &self,
        session: &StoredSession,
        cookie: &CookieUse,
        owner: NodeId,
        reservation: Reservation,
        now: UnixMillis,
    ) -> Result<CreateOutcome, RegistryError>;

    /// Tries to take the session over; see the module documentation. `grant` is how many
    /// sequence numbers per direction the new reservation covers.
    fn acquire(
        &self,
        id: &SessionId,
        me: NodeId,
        force: bool,
        grant: u32,
        now: UnixMillis,
    ) -> Result<Acquired, RegistryError>;

    /// Raises the owner's reservation to at least `to`; `false` if `me` no longer owns it (the
    /// caller must then drop the session).
    fn extend(
        &self,
        id: &SessionId,
        me: NodeId,
        to: Reservation,
        now: UnixMillis,
    ) -> Result<bool, RegistryError>;

    /// Gives the session up with its exact state; `false` if `me` did not own it.
    fn release(
        &self,
        id: &SessionId,
        me: NodeId,
        state: &RecordState,
        now: UnixMillis,
    ) -> Result<bool, RegistryError>;

    /// A node stopping gracefully: gives up every listed session it still owns with its exact
    /// state (as [`Self::release`] does one) and ends its lease, in **one transaction**, so the
    /// next owner of each continues from that state, and sessions it owns but did not list are
    /// taken over at once (above their reservation) instead of after the lease. Returns how many
    /// sessions were released (listed sessions `me` no longer owns are left alone).
    fn retire(
        &self,
        me: NodeId,
        sessions: &[(SessionId, RecordState)],
        now: UnixMillis,
    ) -> Result<u64, RegistryError>;

    /// Deletes sessions `me` owns (they expired or finished there); returns how many.
    fn remove(&self, ids: &[SessionId], me: NodeId) -> Result<u64, RegistryError>;

    /// Deletes sessions past their expiry, and sessions inactive for `idle_ms` that no live
    /// node owns; returns how many. Also forgets claimed cookies
    /// [`crate::COOKIE_SWEEP_MARGIN_SECS`] past their expiry.
    fn sweep(&self, now: UnixMillis, idle_ms: u64) -> Result<u64, RegistryError>;

    /// How many sessions are stored.
    fn session_count(&self) -> Result<u64, RegistryError>;

    /// Checks that the store answers (one cheap query, no table scan); for health endpoints.
    /// The query reads the session tables' schema version: tables migrated by a newer program
    /// since the store was opened are [`RegistryError::SchemaTooNew`] (migrations are checked
    /// only at open, so a running node learns it here). Callers bound the wait themselves.
    fn ping(&self) -> Result<(), RegistryError>;
}

/// Opens the session store in the database `url` names (`sqlite:PATH`, `postgres://…`; the
/// same URLs as [`crate::open_storage`]), creating or migrating its tables. Blocking.
pub fn open_session_store(
    url: &str,
    pool_size: u32,
) -> Result<Arc<dyn SessionStore>, RegistryError> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() || path == ":memory:" {
            return Err(RegistryError::StorageUrl(format!(
                "{url:?}: sessions are shared through a file; write sqlite:PATH"
            )));
        }
        return Ok(Arc::new(SqliteSessionStore::open(std::path::Path::new(
            path,
        ))?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresSessionStore::open(url, pool_size)?));
    }
    Err(crate::storage::unknown_scheme(url))
}

/// `a + b` within the sequence-number space.
pub(crate) fn seq_add(a: i64, b: u32) -> i64 {
    a.saturating_add(i64::from(b)).clamp(0, i64::from(u32::MAX))
}

pub(crate) fn seq_u32(v: i64) -> Result<u32, RegistryError> {
    u32::try_from(v).map_err(|_| RegistryError::Corrupt("sequence number out of range"))
}

/// The window bitmap as stored (16 bytes, little-endian words).
pub(crate) fn bits_to_sql(bits: &[u64; 2]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    for w in bits {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v
}

pub(crate) fn bits_from_sql(v: &[u8]) -> Result<[u64; 2], RegistryError> {
    let mut out = [0u64; 2];
    if v.len() != 16 {
        return Err(RegistryError::Corrupt("replay window bitmap length"));
    }
    for (w, chunk) in out.iter_mut().zip(v.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    Ok(out)
}

/// The row's state under lock, as both backends read it for [`SessionStore::acquire`].
pub(crate) struct LockedRow {
    pub(crate) session: StoredSession,
    pub(crate) owner: Option<i64>,
    pub(crate) owner_alive: bool,
    pub(crate) owner_addr: Option<String>,
    pub(crate) recv_reserved: i64,
    pub(crate) send_reserved: i64,
    pub(crate) recv_next: i64,
    pub(crate) recv_bits: Vec<u8>,
    pub(crate) send_next: i64,
}

/// What [`SessionStore::acquire`] decided for a row (SQLite applies it; PostgreSQL's function
/// implements the same table).
pub(crate) enum Decision {
    Unknown {
        delete: bool,
    },
    HeldBy(NodeId, String),
    OwnedByCaller,
    Take {
        start: RecordState,
        reservation: Reservation,
        exact: bool,
    },
}

pub(crate) fn decide(
    row: Option<LockedRow>,
    me: NodeId,
    force: bool,
    grant: u32,
    now: UnixMillis,
) -> Result<(Decision, Option<StoredSession>), RegistryError> {
    let Some(row) = row else {
        return Ok((Decision::Unknown { delete: false }, None));
    };
    if row.session.expires_at <= now.secs() {
        return Ok((Decision::Unknown { delete: true }, None));
    }
    match row.owner {
        Some(o) if o == me.0 => return Ok((Decision::OwnedByCaller, None)),
        Some(o) if row.owner_alive && !force => {
            return Ok((
                Decision::HeldBy(NodeId(o), row.owner_addr.unwrap_or_default()),
                None,
            ))
        }
        _ => {}
    }
    let (start, exact, recv_base) = if row.owner.is_none() {
        let next = row.recv_next.clamp(0, i64::from(u32::MAX) + 1);
        let start = RecordState {
            recv_next: u64::try_from(next).unwrap_or(0),
            recv_bits: bits_from_sql(&row.recv_bits)?,
            send_next: seq_u32(row.send_next)?,
        };
        (start, true, next)
    } else {
        let floor = seq_u32(row.recv_reserved)?;
        (
            RecordState::after_crash(floor, seq_u32(row.send_reserved)?),
            false,
            row.recv_reserved,
        )
    };
    let reservation = Reservation {
        recv_limit: seq_u32(seq_add(recv_base, grant))?,
        send_limit: seq_u32(seq_add(i64::from(start.send_next), grant))?,
    };
    Ok((
        Decision::Take {
            start,
            reservation,
            exact,
        },
        Some(row.session),
    ))
}

/// The session-store probe tests' check: `answer` is [`RegistryError::SchemaTooNew`] naming
/// `found` and this code's `supported` version.
#[cfg(test)]
pub(crate) fn assert_schema_too_new(answer: Result<(), RegistryError>, found: i64, supported: i64) {
    match answer {
        Err(RegistryError::SchemaTooNew {
            found: f,
            supported: s,
        }) => assert_eq!((f, s), (found, supported)),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}
