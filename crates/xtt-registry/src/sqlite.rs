//! The SQLite backend: one file in the server's data directory, WAL journal, versioned schema.
//!
//! Durability: WAL with `synchronous=FULL` fsyncs the log at every commit, so a commit that
//! returned survives a power loss. `synchronous=NORMAL` (opt-in, [`Durability::Normal`]) fsyncs
//! only at checkpoints: a returned commit is already in the log file (the OS page cache), so it
//! still survives the *process* being killed (`kill -9`), but not a power loss or kernel crash.
//! Group commit ([`Registry::register_all`]) keeps `FULL` affordable: one fsync per batch.
//!
//! Concurrency: one connection behind a mutex serialises this process's writers; every write is
//! a `BEGIN IMMEDIATE` transaction, so other processes on the same file serialise too (waiting up
//! to the busy timeout), and the primary keys make duplicate ClientIDs impossible either way.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use xtt_proto::daa::{GroupId, Pseudonym, GROUP_ID_LEN, PSEUDONYM_LEN};
use xtt_proto::identity::CLIENT_ID_LEN;
use xtt_proto::longterm::{LongtermPublicKey, PUBLIC_KEY_LEN};
use xtt_proto::{ClientId, UnixTime};

use crate::{
    Assigned, CookieUse, GroupRecord, IdentityRecord, Refusal, Registration, Registry,
    RegistryError,
};

/// Inserts the cookie unless present; whether it was new.
fn claim(tx: &rusqlite::Transaction<'_>, cookie: &CookieUse) -> Result<bool, RegistryError> {
    // From the statement cache, like the registration statements: it runs once per handshake.
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO used_cookies (cookie_id, expires_at) VALUES (?1, ?2)",
        )
        .and_then(|mut st| st.execute(params![&cookie.id[..], time_to_sql(cookie.expires_at)]))
        .map_err(db)?;
    Ok(n == 1)
}

/// The schema version this code writes (SQLite `user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// Migrations in order; entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: groups, live identities, and every ClientID ever retired (so none is reused).
    "CREATE TABLE daa_groups (
         group_id  BLOB PRIMARY KEY CHECK (length(group_id) = 32),
         gpk       BLOB NOT NULL,
         basename  BLOB NOT NULL
     );
     CREATE TABLE identities (
         client_id    BLOB PRIMARY KEY CHECK (length(client_id) = 16),
         group_id     BLOB NOT NULL REFERENCES daa_groups (group_id),
         pseudonym    BLOB NOT NULL CHECK (length(pseudonym) = 65),
         longterm_key BLOB NOT NULL CHECK (length(longterm_key) = 65),
         first_seen   INTEGER NOT NULL,
         last_seen    INTEGER NOT NULL
     );
     CREATE UNIQUE INDEX identities_by_device ON identities (group_id, pseudonym);
     CREATE TABLE retired_client_ids (
         client_id  BLOB PRIMARY KEY CHECK (length(client_id) = 16),
         retired_at INTEGER NOT NULL
     );",
    // v2: handshake cookies already accepted (each is accepted once; swept after expiry).
    "CREATE TABLE used_cookies (
         cookie_id  BLOB PRIMARY KEY CHECK (length(cookie_id) = 13),
         expires_at INTEGER NOT NULL
     );
     CREATE INDEX used_cookies_by_expiry ON used_cookies (expires_at);",
];

/// How hard a commit is pushed to disk; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: commits survive power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits survive a killed process, not a power loss.
    Normal,
}

/// The SQLite registry.
#[derive(Debug)]
pub struct SqliteRegistry {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> RegistryError {
    RegistryError::Database(e.to_string())
}

/// Attempts at drawing an unused random ClientID before giving up (a collision of 128-bit
/// random ids means a broken random source, not bad luck).
pub(crate) const FRESH_ID_ATTEMPTS: usize = 8;

/// SQLite stores integers as i64; times beyond that are clamped (year 292 billion).
pub(crate) fn time_to_sql(t: UnixTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// The registry file, created 0600 or narrowed to it if it is a database (see
/// [`xtt_fsio::make_private_sqlite_file`]).
pub(crate) fn private_file(path: &Path) -> Result<(), RegistryError> {
    xtt_fsio::make_private_sqlite_file(path)
        .map(drop)
        .map_err(|e| RegistryError::Database(format!("{}: {e}", path.display())))
}

pub(crate) fn time_from_sql(v: i64) -> UnixTime {
    UnixTime(u64::try_from(v).unwrap_or(0))
}

impl SqliteRegistry {
    /// Opens (creating if needed) the registry file, mode 0600 (it holds the pseudonyms that
    /// link a device's provisionings, and sealed session keys when sessions share it), and
    /// migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: &Path, durability: Durability) -> Result<Self, RegistryError> {
        private_file(path)?;
        let conn = Connection::open(path).map_err(db)?;
        Self::configure(conn, durability)
    }

    /// An in-memory registry (tests, demos): nothing survives the process.
    pub fn open_in_memory() -> Result<Self, RegistryError> {
        let conn = Connection::open_in_memory().map_err(db)?;
        Self::configure(conn, Durability::Full)
    }

    fn configure(mut conn: Connection, durability: Durability) -> Result<Self, RegistryError> {
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        // journal_mode returns the resulting mode as a row; in-memory databases report "memory".
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (rusqlite rolls back on
        // drop), so the connection is still usable.
        match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), RegistryError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    let found = crate::known_version(found, SCHEMA_VERSION)?;
    let start = usize::try_from(found).map_err(|_| RegistryError::Corrupt("negative version"))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql).map_err(db)?;
        let v = i64::try_from(i + 1).map_err(|_| RegistryError::Corrupt("version overflow"))?;
        tx.pragma_update(None, "user_version", v).map_err(db)?;
    }
    tx.commit().map_err(db)
}

pub(crate) fn fixed<const N: usize>(
    v: Vec<u8>,
    what: &'static str,
) -> Result<[u8; N], RegistryError> {
    v.try_into().map_err(|_| RegistryError::Corrupt(what))
}

pub(crate) type IdentityRow = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, i64, i64);

pub(crate) fn identity_from_row(row: IdentityRow) -> Result<IdentityRecord, RegistryError> {
    let (id, gid, pseudonym, key, first, last) = row;
    let key: [u8; PUBLIC_KEY_LEN] = fixed(key, "long-term key length")?;
    Ok(IdentityRecord {
        client_id: ClientId(fixed::<CLIENT_ID_LEN>(id, "ClientID length")?),
        group_id: GroupId(fixed::<GROUP_ID_LEN>(gid, "group id length")?),
        pseudonym: Pseudonym(fixed::<PSEUDONYM_LEN>(pseudonym, "pseudonym length")?),
        longterm_key: LongtermPublicKey::from_bytes(&key)
            .map_err(|_| RegistryError::Corrupt("stored long-term key is not a P-256 point"))?,
        first_seen: time_from_sql(first),
        last_seen: time_from_sql(last),
    })
}

pub(crate) const IDENTITY_COLUMNS: &str =
    "client_id, group_id, pseudonym, longterm_key, first_seen, last_seen";

fn read_identity_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IdentityRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// Whether `id` was ever assigned (live or retired).
fn id_used(tx: &rusqlite::Transaction<'_>, id: &ClientId) -> Result<bool, RegistryError> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM identities WHERE client_id = ?1)
             OR EXISTS (SELECT 1 FROM retired_client_ids WHERE client_id = ?1)",
    )
    .and_then(|mut st| st.query_row(params![&id.0[..]], |r| r.get(0)))
    .map_err(db)
}

fn register_one(
    tx: &rusqlite::Transaction<'_>,
    r: &Registration,
) -> Result<Result<Assigned, Refusal>, RegistryError> {
    // Statements come from the connection's cache: the registry writer runs these for every
    // registration, and parsing them each time cost as much as executing them.
    let known_group: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM daa_groups WHERE group_id = ?1)")
        .and_then(|mut st| st.query_row(params![&r.group_id.0[..]], |row| row.get(0)))
        .map_err(db)?;
    if !known_group {
        return Ok(Err(Refusal::UnknownGroup));
    }
    let now = time_to_sql(r.now);
    let held: Option<Vec<u8>> = tx
        .prepare_cached("SELECT client_id FROM identities WHERE group_id = ?1 AND pseudonym = ?2")
        .and_then(|mut st| {
            st.query_row(params![&r.group_id.0[..], &r.pseudonym.0[..]], |row| {
                row.get(0)
            })
            .optional()
        })
        .map_err(db)?;
    if let Some(held) = held {
        let held = ClientId(fixed(held, "ClientID length")?);
        if !r.requested_id.is_null() && r.requested_id != held {
            return Ok(Err(Refusal::DeviceHoldsOtherId {
                held,
                requested: r.requested_id,
            }));
        }
        tx.prepare_cached(
            "UPDATE identities SET longterm_key = ?2, last_seen = max(last_seen, ?3)
             WHERE client_id = ?1",
        )
        .and_then(|mut st| st.execute(params![&held.0[..], &r.longterm_key.as_bytes()[..], now]))
        .map_err(db)?;
        return Ok(Ok(Assigned {
            client_id: held,
            new_device: false,
        }));
    }
    let client_id = if r.requested_id.is_null() {
        fresh_id(tx)?
    } else if id_used(tx, &r.requested_id)? {
        return Ok(Err(Refusal::RequestedIdTaken(r.requested_id)));
    } else {
        r.requested_id
    };
    tx.prepare_cached(
        "INSERT INTO identities (client_id, group_id, pseudonym, longterm_key, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )
    .and_then(|mut st| {
        st.execute(params![
            &client_id.0[..],
            &r.group_id.0[..],
            &r.pseudonym.0[..],
            &r.longterm_key.as_bytes()[..],
            now
        ])
    })
    .map_err(db)?;
    Ok(Ok(Assigned {
        client_id,
        new_device: true,
    }))
}

fn fresh_id(tx: &rusqlite::Transaction<'_>) -> Result<ClientId, RegistryError> {
    for _ in 0..FRESH_ID_ATTEMPTS {
        let mut id = ClientId::NULL;
        OsRng.fill_bytes(&mut id.0);
        if !id.is_null() && !id_used(tx, &id)? {
            return Ok(id);
        }
    }
    Err(RegistryError::IdSpaceExhausted)
}

impl Registry for SqliteRegistry {
    fn add_group(&self, group: &GroupRecord) -> Result<bool, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let existing: Option<(Vec<u8>, Vec<u8>)> = tx
            .query_row(
                "SELECT gpk, basename FROM daa_groups WHERE group_id = ?1",
                params![&group.group_id.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        match existing {
            Some((gpk, basename)) if gpk == group.gpk && basename == group.basename => Ok(false),
            Some(_) => Err(RegistryError::GroupConflict(group.group_id)),
            None => {
                tx.execute(
                    "INSERT INTO daa_groups (group_id, gpk, basename) VALUES (?1, ?2, ?3)",
                    params![&group.group_id.0[..], &group.gpk, &group.basename],
                )
                .map_err(db)?;
                tx.commit().map_err(db)?;
                Ok(true)
            }
        }
    }

    fn groups(&self) -> Result<Vec<GroupRecord>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT group_id, gpk, basename FROM daa_groups ORDER BY group_id")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (gid, gpk, basename) = row.map_err(db)?;
            out.push(GroupRecord {
                group_id: GroupId(fixed(gid, "group id length")?),
                gpk,
                basename,
            });
        }
        Ok(out)
    }

    fn group(&self, group_id: &GroupId) -> Result<Option<GroupRecord>, RegistryError> {
        let conn = self.conn();
        let row: Option<(Vec<u8>, Vec<u8>)> = conn
            .query_row(
                "SELECT gpk, basename FROM daa_groups WHERE group_id = ?1",
                params![&group_id.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        Ok(row.map(|(gpk, basename)| GroupRecord {
            group_id: *group_id,
            gpk,
            basename,
        }))
    }

    fn register_all(
        &self,
        batch: &[Registration],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut out = Vec::with_capacity(batch.len());
        for r in batch {
            out.push(register_one(&tx, r)?);
        }
        // The commit is the durability point: only after it returns may a ClientID be sent.
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn register_all_once(
        &self,
        batch: &[Registration],
        cookies: &[CookieUse],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        crate::check_cookie_count(batch, cookies)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut out = Vec::with_capacity(batch.len());
        for (r, cookie) in batch.iter().zip(cookies) {
            if claim(&tx, cookie)? {
                out.push(register_one(&tx, r)?);
            } else {
                out.push(Err(Refusal::CookieReplayed));
            }
        }
        tx.commit().map_err(db)?;
        Ok(out)
    }

    fn schema_version(&self) -> Result<i64, RegistryError> {
        self.conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)
    }

    fn claim_cookie(&self, cookie: &CookieUse) -> Result<bool, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let fresh = claim(&tx, cookie)?;
        tx.commit().map_err(db)?;
        Ok(fresh)
    }

    fn sweep_used_cookies(&self, now: UnixTime) -> Result<u64, RegistryError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "DELETE FROM used_cookies WHERE expires_at < ?1",
                params![crate::sweep_before(now)],
            )
            .map_err(db)?;
        Ok(n as u64)
    }

    fn identity(&self, client_id: &ClientId) -> Result<Option<IdentityRecord>, RegistryError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE client_id = ?1"),
                params![&client_id.0[..]],
                read_identity_row,
            )
            .optional()
            .map_err(db)?;
        row.map(identity_from_row).transpose()
    }

    fn identities(&self) -> Result<Vec<IdentityRecord>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT {IDENTITY_COLUMNS} FROM identities"))
            .map_err(db)?;
        let rows = stmt.query_map([], read_identity_row).map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(identity_from_row(row.map_err(db)?)?);
        }
        Ok(out)
    }

    /// One page of the identities table, not a count: health probes take the writer's lock,
    /// and counting a large registry under it would hold up group commits. The same query
    /// reads `user_version`: a file migrated by a newer xtt since it was opened is
    /// [`RegistryError::SchemaTooNew`].
    fn ping(&self) -> Result<(), RegistryError> {
        let conn = self.conn();
        let found: i64 = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM identities),
                        (SELECT user_version FROM pragma_user_version)",
                [],
                |r| {
                    r.get::<_, bool>(0)?;
                    r.get(1)
                },
            )
            .map_err(db)?;
        crate::known_version(found, SCHEMA_VERSION).map(drop)
    }

    fn identity_count(&self) -> Result<u64, RegistryError> {
        let conn = self.conn();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM identities", [], |r| r.get(0))
            .map_err(db)?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt("negative count"))
    }

    fn delete_identity(&self, client_id: &ClientId) -> Result<bool, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let deleted = tx
            .execute(
                "DELETE FROM identities WHERE client_id = ?1",
                params![&client_id.0[..]],
            )
            .map_err(db)?;
        if deleted > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            tx.execute(
                "INSERT OR IGNORE INTO retired_client_ids (client_id, retired_at) VALUES (?1, ?2)",
                params![&client_id.0[..], time_to_sql(UnixTime(now))],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(deleted > 0)
    }
}
