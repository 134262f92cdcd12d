//! The session store in a SQLite file: several server processes on one machine share sessions
//! through it (every write is a `BEGIN IMMEDIATE` transaction, so processes serialise).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use xtt_proto::identity::CLIENT_ID_LEN;
use xtt_proto::record::{RecordState, Reservation, SessionId, SESSION_ID_LEN};
use xtt_proto::{ClientId, UnixTime};

use super::{
    bits_to_sql, decide, Acquired, CreateOutcome, Decision, LockedRow, NodeId, SessionStore,
    StoredSession, UnixMillis,
};
use crate::sqlite::{fixed, time_from_sql, time_to_sql};
use crate::RegistryError;
use crate::{CookieUse, COOKIE_SWEEP_MARGIN_SECS};

/// Migrations of the session tables, tracked in their own version table (the session store is
/// opened on its own and versioned independently of the registry's tables).
const MIGRATIONS: &[&str] = &[
    // v1: nodes and sessions.
    "CREATE TABLE xtt_nodes (
         node_id       INTEGER PRIMARY KEY,
         handover_addr TEXT NOT NULL,
         alive_until   INTEGER NOT NULL
     );
     CREATE TABLE xtt_sessions (
         session_id    BLOB PRIMARY KEY CHECK (length(session_id) = 16),
         client_id     BLOB NOT NULL CHECK (length(client_id) = 16),
         suite         INTEGER NOT NULL,
         sealed_keys   BLOB NOT NULL,
         created       INTEGER NOT NULL,
         expires_at    INTEGER NOT NULL,
         owner         INTEGER,
         recv_reserved INTEGER NOT NULL,
         send_reserved INTEGER NOT NULL,
         recv_next     INTEGER NOT NULL DEFAULT 0,
         recv_bits     BLOB NOT NULL DEFAULT x'00000000000000000000000000000000',
         send_next     INTEGER NOT NULL DEFAULT 0,
         last_active   INTEGER NOT NULL
     );
     CREATE INDEX xtt_sessions_by_owner ON xtt_sessions (owner);",
    // v2: cookies of accepted session handshakes (each accepted once deployment-wide).
    "CREATE TABLE xtt_session_cookies (
         cookie_id  BLOB PRIMARY KEY CHECK (length(cookie_id) = 13),
         expires_at INTEGER NOT NULL
     );
     CREATE INDEX xtt_session_cookies_by_expiry ON xtt_session_cookies (expires_at);",
];

/// The SQLite session store.
#[derive(Debug)]
pub struct SqliteSessionStore {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> RegistryError {
    RegistryError::Database(e.to_string())
}

impl SqliteSessionStore {
    /// Opens (creating if needed) the session tables in the SQLite file at `path` (usually the
    /// registry's own file) and migrates them.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        crate::sqlite::private_file(path)?;
        let mut conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        // Reservations must survive a power loss as well as a crash: losing one could let a
        // later owner reuse sequence numbers.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }
}

/// The session tables' schema version (0 before the first migration), or
/// [`RegistryError::SchemaTooNew`] when a newer xtt migrated them past [`MIGRATIONS`]. `max`
/// of an `INTEGER PRIMARY KEY` (the rowid): SQLite reads one end of the table's b-tree.
fn checked_schema_version(conn: &Connection) -> Result<i64, RegistryError> {
    let found: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM xtt_session_schema_version",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    crate::known_version(found, supported)
}

fn migrate(conn: &mut Connection) -> Result<(), RegistryError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS xtt_session_schema_version (version INTEGER PRIMARY KEY)",
    )
    .map_err(db)?;
    let found = checked_schema_version(&tx)?;
    let start = usize::try_from(found).map_err(|_| RegistryError::Corrupt("negative version"))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql).map_err(db)?;
        let v = i64::try_from(i + 1).map_err(|_| RegistryError::Corrupt("version overflow"))?;
        tx.execute(
            "INSERT INTO xtt_session_schema_version (version) VALUES (?1)",
            params![v],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)
}

fn locked_row(
    tx: &rusqlite::Transaction<'_>,
    id: &SessionId,
    now: UnixMillis,
) -> Result<Option<LockedRow>, RegistryError> {
    type Raw = (
        Vec<u8>,
        i64,
        Vec<u8>,
        i64,
        i64,
        Option<i64>,
        i64,
        i64,
        i64,
        Vec<u8>,
        i64,
        Option<i64>,
        Option<String>,
    );
    let raw: Option<Raw> = tx
        .query_row(
            "SELECT s.client_id, s.suite, s.sealed_keys, s.created, s.expires_at, s.owner,
                    s.recv_reserved, s.send_reserved, s.recv_next, s.recv_bits, s.send_next,
                    n.alive_until, n.handover_addr
               FROM xtt_sessions s LEFT JOIN xtt_nodes n ON n.node_id = s.owner
              WHERE s.session_id = ?1",
            params![&id.0[..]],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                ))
            },
        )
        .optional()
        .map_err(db)?;
    let Some((cid, suite, sealed, created, expires, owner, rr, sr, rn, rb, sn, alive, addr)) = raw
    else {
        return Ok(None);
    };
    Ok(Some(LockedRow {
        session: StoredSession {
            session_id: *id,
            client_id: ClientId(fixed::<CLIENT_ID_LEN>(cid, "ClientID length")?),
            suite: u16::try_from(suite).map_err(|_| RegistryError::Corrupt("suite"))?,
            sealed_keys: sealed,
            created: time_from_sql(created),
            expires_at: time_from_sql(expires),
        },
        owner,
        owner_alive: alive.is_some_and(|a| a > now.0),
        owner_addr: addr,
        recv_reserved: rr,
        send_reserved: sr,
        recv_next: rn,
        recv_bits: rb,
        send_next: sn,
    }))
}

impl SessionStore for SqliteSessionStore {
    fn register_node(
        &self,
        node: NodeId,
        handover_addr: &str,
        alive_until: UnixMillis,
    ) -> Result<(), RegistryError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO xtt_nodes (node_id, handover_addr, alive_until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (node_id) DO UPDATE SET handover_addr = ?2, alive_until = ?3",
                params![node.0, handover_addr, alive_until.0],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    fn heartbeat(&self, node: NodeId, alive_until: UnixMillis) -> Result<bool, RegistryError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE xtt_nodes SET alive_until = max(alive_until, ?2) WHERE node_id = ?1",
                    params![node.0, alive_until.0],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    fn create(
        &self,
        s: &StoredSession,
        cookie: &CookieUse,
        owner: NodeId,
        reservation: Reservation,
        now: UnixMillis,
    ) -> Result<CreateOutcome, RegistryError> {
        self.write(|tx| {
            let claimed = tx
                .execute(
                    "INSERT INTO xtt_session_cookies (cookie_id, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (cookie_id) DO NOTHING",
                    params![&cookie.id[..], time_to_sql(cookie.expires_at)],
                )
                .map_err(db)?;
            if claimed != 1 {
                return Ok(CreateOutcome::CookieUsed);
            }
            let n = tx
                .execute(
                    "INSERT INTO xtt_sessions (session_id, client_id, suite, sealed_keys, created,
                         expires_at, owner, recv_reserved, send_reserved, last_active)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (session_id) DO NOTHING",
                    params![
                        &s.session_id.0[..],
                        &s.client_id.0[..],
                        i64::from(s.suite),
                        &s.sealed_keys,
                        time_to_sql(s.created),
                        time_to_sql(s.expires_at),
                        owner.0,
                        i64::from(reservation.recv_limit),
                        i64::from(reservation.send_limit),
                        now.0
                    ],
                )
                .map_err(db)?;
            Ok(if n == 1 {
                CreateOutcome::Created
            } else {
                CreateOutcome::SessionIdInUse
            })
        })
    }

    fn acquire(
        &self,
        id: &SessionId,
        me: NodeId,
        force: bool,
        grant: u32,
        now: UnixMillis,
    ) -> Result<Acquired, RegistryError> {
        self.write(|tx| {
            let row = locked_row(tx, id, now)?;
            let (decision, session) = decide(row, me, force, grant, now)?;
            Ok(match (decision, session) {
                (Decision::Unknown { delete }, _) => {
                    if delete {
                        tx.execute(
                            "DELETE FROM xtt_sessions WHERE session_id = ?1",
                            params![&id.0[..]],
                        )
                        .map_err(db)?;
                    }
                    Acquired::Unknown
                }
                (Decision::HeldBy(node, handover_addr), _) => Acquired::HeldBy {
                    node,
                    handover_addr,
                },
                (Decision::OwnedByCaller, _) => Acquired::OwnedByCaller,
                (
                    Decision::Take {
                        start,
                        reservation,
                        exact,
                    },
                    Some(session),
                ) => {
                    tx.execute(
                        "UPDATE xtt_sessions SET owner = ?2, recv_reserved = ?3,
                                send_reserved = ?4, last_active = ?5
                          WHERE session_id = ?1",
                        params![
                            &id.0[..],
                            me.0,
                            i64::from(reservation.recv_limit),
                            i64::from(reservation.send_limit),
                            now.0
                        ],
                    )
                    .map_err(db)?;
                    Acquired::Taken {
                        session,
                        start,
                        reservation,
                        exact,
                    }
                }
                (Decision::Take { .. }, None) => {
                    return Err(RegistryError::Corrupt("take-over without a session"))
                }
            })
        })
    }

    fn extend(
        &self,
        id: &SessionId,
        me: NodeId,
        to: Reservation,
        now: UnixMillis,
    ) -> Result<bool, RegistryError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE xtt_sessions SET recv_reserved = max(recv_reserved, ?3),
                            send_reserved = max(send_reserved, ?4), last_active = ?5
                      WHERE session_id = ?1 AND owner = ?2",
                    params![
                        &id.0[..],
                        me.0,
                        i64::from(to.recv_limit),
                        i64::from(to.send_limit),
                        now.0
                    ],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    fn release(
        &self,
        id: &SessionId,
        me: NodeId,
        state: &RecordState,
        now: UnixMillis,
    ) -> Result<bool, RegistryError> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE xtt_sessions SET owner = NULL, recv_next = ?3, recv_bits = ?4,
                            send_next = ?5, last_active = ?6
                      WHERE session_id = ?1 AND owner = ?2",
                    params![
                        &id.0[..],
                        me.0,
                        i64::try_from(state.recv_next).unwrap_or(i64::MAX),
                        bits_to_sql(&state.recv_bits),
                        i64::from(state.send_next),
                        now.0
                    ],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    fn retire(
        &self,
        me: NodeId,
        sessions: &[(SessionId, RecordState)],
        now: UnixMillis,
    ) -> Result<u64, RegistryError> {
        // One immediate transaction: the releases and the end of the lease commit together.
        self.write(|tx| {
            let mut n = 0u64;
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE xtt_sessions SET owner = NULL, recv_next = ?3, recv_bits = ?4,
                            send_next = ?5, last_active = ?6
                      WHERE session_id = ?1 AND owner = ?2",
                )
                .map_err(db)?;
            for (id, state) in sessions {
                n += stmt
                    .execute(params![
                        &id.0[..],
                        me.0,
                        i64::try_from(state.recv_next).unwrap_or(i64::MAX),
                        bits_to_sql(&state.recv_bits),
                        i64::from(state.send_next),
                        now.0
                    ])
                    .map_err(db)? as u64;
            }
            tx.execute(
                "UPDATE xtt_nodes SET alive_until = min(alive_until, ?2) WHERE node_id = ?1",
                params![me.0, now.0],
            )
            .map_err(db)?;
            Ok(n)
        })
    }

    fn remove(&self, ids: &[SessionId], me: NodeId) -> Result<u64, RegistryError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write(|tx| {
            let mut n = 0u64;
            let mut stmt = tx
                .prepare_cached("DELETE FROM xtt_sessions WHERE session_id = ?1 AND owner = ?2")
                .map_err(db)?;
            for id in ids {
                n += stmt.execute(params![&id.0[..], me.0]).map_err(db)? as u64;
            }
            Ok(n)
        })
    }

    fn sweep(&self, now: UnixMillis, idle_ms: u64) -> Result<u64, RegistryError> {
        let idle_before = now
            .0
            .saturating_sub(i64::try_from(idle_ms).unwrap_or(i64::MAX));
        self.write(|tx| {
            let n = tx
                .execute(
                    // An owner writes last_active only now and then (records between
                    // reservation raises do not touch the row): while it lived, its session may
                    // have been busy, so a dead owner's session is idle from the later of the
                    // two, its last write and the end of the owner's lease.
                    "DELETE FROM xtt_sessions
                      WHERE expires_at <= ?1
                         OR (owner IS NULL AND last_active < ?2)
                         OR (owner IS NOT NULL
                             AND NOT EXISTS (SELECT 1 FROM xtt_nodes n
                                              WHERE n.node_id = xtt_sessions.owner
                                                AND n.alive_until > ?3)
                             AND max(last_active, coalesce(
                                   (SELECT n.alive_until FROM xtt_nodes n
                                     WHERE n.node_id = xtt_sessions.owner), 0)) < ?2)",
                    params![time_to_sql(now.secs()), idle_before, now.0],
                )
                .map_err(db)?;
            tx.execute(
                "DELETE FROM xtt_session_cookies WHERE expires_at < ?1",
                params![time_to_sql(UnixTime(
                    now.secs().0.saturating_sub(COOKIE_SWEEP_MARGIN_SECS)
                ))],
            )
            .map_err(db)?;
            Ok(n as u64)
        })
    }

    fn session_count(&self) -> Result<u64, RegistryError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM xtt_sessions", [], |r| r.get(0))
            .map_err(db)?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt("negative count"))
    }

    /// Reads the schema version: another process (a newer xtt) may have migrated the file's
    /// session tables since this store opened it.
    fn ping(&self) -> Result<(), RegistryError> {
        checked_schema_version(&self.conn()).map(drop)
    }
}

const _: () = assert!(SESSION_ID_LEN == 16);

#[cfg(test)]
mod tests {
    use super::*;

    /// Another process (a newer xtt) migrates the file's session tables after this store
    /// opened it: the health probe, `Ok` before, says so.
    #[test]
    fn the_probe_reports_session_tables_migrated_after_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.sqlite");
        let store = SqliteSessionStore::open(&path).unwrap();
        store.ping().unwrap();
        let supported = i64::try_from(MIGRATIONS.len()).unwrap();
        let newer = Connection::open(&path).unwrap();
        newer
            .execute(
                "INSERT INTO xtt_session_schema_version (version) VALUES (?1)",
                params![supported + 1],
            )
            .unwrap();
        crate::sessions::assert_schema_too_new(store.ping(), supported + 1, supported);
        assert!(matches!(
            SqliteSessionStore::open(&path),
            Err(RegistryError::SchemaTooNew { .. })
        ));
    }
}
