//! SQLite stores: one file per service, WAL journal, `synchronous=FULL`, `BEGIN IMMEDIATE`
//! transactions (the write lock is taken before the checks, so check-then-write is atomic even
//! across processes sharing the file).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tte::api::{DeviceInfo, StoredReading};
use tte::senml::{Reading, Value};
use tte::{DevUrn, Key256};

use super::{
    Added, BindOutcome, ControllerLimits, ControllerStore, Created, Recorded, StoreError,
    TaDeviceState, TaStore,
};

/// Opens the database at `path` and brings its schema up to date: `migrations[i]` takes it
/// from version `i` to `i + 1` (SQLite `user_version`; a file made before the stores were
/// versioned is version 0 and already holds the tables of version 1, which is why that first
/// migration only creates what is missing).
fn open(path: &Path, migrations: &[&str]) -> Result<Connection, StoreError> {
    create_private(path)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Rows hold TaSecrets and DevSecrets: a removed device's must not stay readable in free
    // pages of the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrate(&mut conn, path, migrations)?;
    Ok(conn)
}

/// Runs the migrations `conn` has not had yet, all in one write transaction (two processes
/// opening one old file migrate it once).
fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = migrations.len();
    let start = usize::try_from(found)
        .ok()
        .filter(|v| *v <= supported)
        .ok_or_else(|| {
            StoreError(format!(
                "{}: schema version {found} is not one this program knows (it knows up to \
                 {supported}); was the file written by a newer version?",
                path.display()
            ))
        })?;
    for (i, sql) in migrations.iter().enumerate().skip(start) {
        tx.execute_batch(sql)?;
        let version =
            i64::try_from(i + 1).map_err(|_| StoreError("schema version out of range".into()))?;
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.commit()?;
    Ok(())
}

/// The databases hold secrets (TaSecrets, DevSecrets): owner-only. The file is created 0600
/// before SQLite opens it, because SQLite gives its `-wal` and `-shm` files the database file's
/// mode; an existing database (and its side files) is tightened to 0600 as well.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError(format!("{}: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
    }
    Ok(())
}

/// The key in a column read as `blob`, which is wiped (a zeroizing [`Key256`] is the only copy
/// left).
fn key_from(blob: Vec<u8>) -> Result<Key256, StoreError> {
    let blob = zeroize::Zeroizing::new(blob);
    <[u8; 32]>::try_from(blob.as_slice())
        .map(Key256::from_bytes)
        .map_err(|_| StoreError("stored key has the wrong length".into()))
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a half-done transaction (it rolls back on
    // drop), so the connection stays usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The Transfer Agent's schema migrations (see [`open`]).
const TA_MIGRATIONS: &[&str] = &[
    // v1: devices.
    "CREATE TABLE IF NOT EXISTS ta_device (
         urn        TEXT PRIMARY KEY,
         otp_hash   BLOB NOT NULL,
         ta_secret  BLOB NOT NULL,
         conturl    TEXT,
         created_at INTEGER NOT NULL,
         bound_at   INTEGER
     );",
    // v2: facts about the database as a whole; `otp_key_check` identifies the OTP key its
    // hashes were made under (see `SqliteTaStore::check_otp_key`).
    "CREATE TABLE ta_meta (
         name  TEXT PRIMARY KEY,
         value BLOB NOT NULL
     );",
];

/// What [`SqliteTaStore::check_otp_key`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKeyCheck {
    /// The database knew no key yet: this one is recorded as its key.
    Recorded,
    /// The key is the database's.
    Matches,
    /// The database's OTP hashes were made under another key.
    Mismatch,
}

/// The Transfer Agent's SQLite store.
#[derive(Debug)]
pub struct SqliteTaStore {
    conn: Mutex<Connection>,
}

impl SqliteTaStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Mutex::new(open(path, TA_MIGRATIONS)?),
        })
    }
}

impl SqliteTaStore {
    /// Whether OTPs were hashed into this database under some key already: a key is recorded,
    /// or (a database from before keys were recorded) a device is registered.
    pub fn otp_key_in_use(&self) -> Result<bool, StoreError> {
        let c = lock(&self.conn);
        Ok(c.query_row(
            "SELECT EXISTS (SELECT 1 FROM ta_meta WHERE name = 'otp_key_check')
                 OR EXISTS (SELECT 1 FROM ta_device)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Checks the OTP key (given by its [`tte::otp::OtpHasher::key_check`] value) against the
    /// one the database records, recording it if there is none yet (a new database, or one
    /// from before keys were recorded: there is nothing to check that key against). Compared
    /// in constant time.
    pub fn check_otp_key(&self, check: &[u8; 32]) -> Result<OtpKeyCheck, StoreError> {
        use subtle::ConstantTimeEq as _;
        let mut c = lock(&self.conn);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored: Option<Vec<u8>> = tx
            .query_row(
                "SELECT value FROM ta_meta WHERE name = 'otp_key_check'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let out = match stored {
            Some(v) if bool::from(v.as_slice().ct_eq(&check[..])) => OtpKeyCheck::Matches,
            Some(_) => OtpKeyCheck::Mismatch,
            None => {
                tx.execute(
                    "INSERT INTO ta_meta (name, value) VALUES ('otp_key_check', ?1)",
                    [&check[..]],
                )?;
                OtpKeyCheck::Recorded
            }
        };
        tx.commit()?;
        Ok(out)
    }
}

impl TaStore for SqliteTaStore {
    fn create_device(
        &self,
        urn: &DevUrn,
        otp_hash: &[u8; 32],
        ta_secret: &Key256,
        now: i64,
    ) -> Result<Created, StoreError> {
        let c = lock(&self.conn);
        let n = c.execute(
            "INSERT INTO ta_device (urn, otp_hash, ta_secret, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(urn) DO NOTHING",
            params![urn.as_str(), &otp_hash[..], &ta_secret.as_bytes()[..], now],
        )?;
        Ok(if n == 1 {
            Created::New
        } else {
            Created::Exists
        })
    }

    fn device_state(&self, urn: &DevUrn) -> Result<Option<TaDeviceState>, StoreError> {
        let c = lock(&self.conn);
        Ok(c.query_row(
            "SELECT otp_hash, conturl IS NOT NULL FROM ta_device WHERE urn = ?1",
            [urn.as_str()],
            |r| {
                Ok(TaDeviceState {
                    otp_hash: r.get(0)?,
                    bound: r.get(1)?,
                })
            },
        )
        .optional()?)
    }

    fn bind(
        &self,
        urns: &[DevUrn],
        otp_ok: &(dyn Fn(&DevUrn, &[u8]) -> bool + Sync),
        conturl: &str,
        now: i64,
    ) -> Result<BindOutcome, StoreError> {
        let mut c = lock(&self.conn);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for urn in urns {
            let row: Option<(Vec<u8>, Option<String>)> = tx
                .query_row(
                    "SELECT otp_hash, conturl FROM ta_device WHERE urn = ?1",
                    [urn.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((hash, bound_to)) = row else {
                // The same work as for a wrong OTP: the caller answers both alike.
                let _ = otp_ok(urn, &[0; 32]);
                return Ok(BindOutcome::NotFound(urn.clone()));
            };
            // Check the OTP before revealing whether it was used: someone without the OTP
            // learns nothing about the device's state.
            if !otp_ok(urn, &hash) {
                return Ok(BindOutcome::WrongOtp(urn.clone()));
            }
            match bound_to {
                // The OTP's holder repeating a bind that landed (a reply lost, a box bind
                // resumed after its Controller refused some adds): nothing to change.
                Some(bound) if bound == conturl => continue,
                Some(_) => return Ok(BindOutcome::AlreadyBound(urn.clone())),
                None => {}
            }
            // The `conturl IS NULL` guard makes the update itself single-use as well.
            let n = tx.execute(
                "UPDATE ta_device SET conturl = ?2, bound_at = ?3 WHERE urn = ?1 AND conturl IS NULL",
                params![urn.as_str(), conturl, now],
            )?;
            if n != 1 {
                return Ok(BindOutcome::AlreadyBound(urn.clone()));
            }
        }
        tx.commit()?;
        Ok(BindOutcome::Bound)
    }

    fn fetch(&self, urn: &DevUrn) -> Result<Option<(Key256, Option<String>)>, StoreError> {
        let c = lock(&self.conn);
        let row: Option<(Vec<u8>, Option<String>)> = c
            .query_row(
                "SELECT ta_secret, conturl FROM ta_device WHERE urn = ?1",
                [urn.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(k, u)| Ok((key_from(k)?, u))).transpose()
    }
}

/// The Controller's schema migrations (see [`open`]).
const CONTROLLER_MIGRATIONS: &[&str] = &[
    // v1: devices, their readings, and the replay floor of removed devices by DevURN alone.
    "CREATE TABLE IF NOT EXISTS c_device (
         urn        TEXT PRIMARY KEY,
         dev_secret BLOB NOT NULL,
         label      TEXT,
         added_at   INTEGER NOT NULL,
         last_seq   INTEGER
     );
     CREATE TABLE IF NOT EXISTS c_reading (
         id     INTEGER PRIMARY KEY,
         urn    TEXT NOT NULL REFERENCES c_device(urn),
         seq    INTEGER NOT NULL,
         name   TEXT NOT NULL,
         unit   TEXT,
         value  TEXT NOT NULL,
         time   REAL NOT NULL
     );
     CREATE INDEX IF NOT EXISTS c_reading_urn ON c_reading(urn, id);
     CREATE TABLE IF NOT EXISTS c_removed_seq (
         urn      TEXT PRIMARY KEY,
         last_seq INTEGER NOT NULL
     );",
    // v2: the replay floor of a removed device belongs to the DevSecret its updates were sealed
    // under (see `secret_fingerprint`), not to the DevURN: keyed by DevURN alone, anyone could
    // add a DevURN with a secret of their own, post one update with the highest counter, and
    // once the operator removed that entry the real device would be refused for ever. A v1
    // floor does not say whose secret it was, so it cannot be kept without keeping that
    // danger: it is dropped (a device removed before the upgrade and re-added with the same
    // secret after it is not protected from its own pre-removal updates being replayed).
    "CREATE TABLE c_removed_floor (
         urn       TEXT NOT NULL,
         secret_fp BLOB NOT NULL CHECK (length(secret_fp) = 32),
         last_seq  INTEGER NOT NULL,
         PRIMARY KEY (urn, secret_fp)
     );
     DROP TABLE c_removed_seq;",
];

/// What the Controller keeps of a removed device's DevSecret to know it again: a domain-separated
/// SHA-256 (the secret is 256 random bits, so the hash gives nothing away), never the secret.
fn secret_fingerprint(secret: &Key256) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tte1 controller replay floor\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// The Controller's SQLite store.
///
/// Sensor updates use group commit: a caller queues its update, then takes the connection; if a
/// previous holder already committed its update it just collects the result, otherwise it
/// commits everything queued so far in one transaction (one fsync for many updates). Replay
/// checks run inside that transaction, in queue order, so they are exactly as strict as with one
/// transaction per update; every caller still returns only after its update is durable.
///
/// What it holds is bounded by its [`ControllerLimits`] (defaults unless
/// [`SqliteControllerStore::with_limits`] says otherwise).
#[derive(Debug)]
pub struct SqliteControllerStore {
    conn: Mutex<Connection>,
    queue: Mutex<Vec<PendingUpdate>>,
    limits: ControllerLimits,
}

#[derive(Debug)]
struct PendingUpdate {
    urn: DevUrn,
    seq: u64,
    readings: Vec<Reading>,
    reply: std::sync::mpsc::SyncSender<Result<Recorded, String>>,
}

impl SqliteControllerStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Mutex::new(open(path, CONTROLLER_MIGRATIONS)?),
            queue: Mutex::new(Vec::new()),
            limits: ControllerLimits::default(),
        })
    }

    /// The same store, bounded by `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: ControllerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Commits `batch` in one transaction; returns each update's outcome in order.
    fn commit_batch(
        conn: &mut Connection,
        batch: &[PendingUpdate],
        keep: u64,
    ) -> Result<Vec<Recorded>, StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(batch.len());
        let mut stored: Vec<&DevUrn> = Vec::new();
        for u in batch {
            let r = Self::record_in(&tx, &u.urn, u.seq, &u.readings)?;
            if r == Recorded::Stored && !stored.contains(&&u.urn) {
                stored.push(&u.urn);
            }
            out.push(r);
        }
        // Each device that got readings keeps only its newest `keep` (once per batch: the
        // index on (urn, id) finds the cut-off by walking `keep` entries back from the newest).
        let mut prune = tx.prepare_cached(
            "DELETE FROM c_reading WHERE urn = ?1 AND id <=
               (SELECT id FROM c_reading WHERE urn = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?;
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        for urn in stored {
            prune.execute(params![urn.as_str(), keep])?;
        }
        drop(prune);
        tx.commit()?;
        Ok(out)
    }

    fn device_count(tx: &rusqlite::Transaction<'_>) -> Result<u64, StoreError> {
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM c_device", [], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    fn record_in(
        tx: &rusqlite::Transaction<'_>,
        urn: &DevUrn,
        seq: u64,
        readings: &[Reading],
    ) -> Result<Recorded, StoreError> {
        let last: Option<Option<i64>> = tx
            .query_row(
                "SELECT last_seq FROM c_device WHERE urn = ?1",
                [urn.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(last) = last else {
            return Ok(Recorded::UnknownDevice);
        };
        if let Some(last) = last.map(seq_from_sql) {
            if seq <= last {
                return Ok(Recorded::Replay { last });
            }
        }
        tx.execute(
            "UPDATE c_device SET last_seq = ?2 WHERE urn = ?1",
            params![urn.as_str(), seq_to_sql(seq)],
        )?;
        let mut ins = tx.prepare_cached(
            "INSERT INTO c_reading (urn, seq, name, unit, value, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in readings {
            let value = serde_json::to_string(&r.value).map_err(|e| StoreError(e.to_string()))?;
            ins.execute(params![
                urn.as_str(),
                seq_to_sql(seq),
                r.name,
                r.unit,
                value,
                r.time
            ])?;
        }
        Ok(Recorded::Stored)
    }
}

/// SQLite integers are signed; counters are stored as their two's-complement bit pattern.
fn seq_to_sql(s: u64) -> i64 {
    i64::from_ne_bytes(s.to_ne_bytes())
}
fn seq_from_sql(s: i64) -> u64 {
    u64::from_ne_bytes(s.to_ne_bytes())
}

impl ControllerStore for SqliteControllerStore {
    fn add_device(
        &self,
        urn: &DevUrn,
        dev_secret: &Key256,
        label: Option<&str>,
        now: i64,
    ) -> Result<Added, StoreError> {
        let mut c = lock(&self.conn);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<Vec<u8>> = tx
            .query_row(
                "SELECT dev_secret FROM c_device WHERE urn = ?1",
                [urn.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let out = match existing {
            Some(k) => {
                if key_from(k)? == *dev_secret {
                    Added::Same
                } else {
                    Added::Conflict
                }
            }
            None if Self::device_count(&tx)? >= self.limits.max_devices => Added::Full,
            None => {
                // The floor left by an earlier entry under this very DevSecret, if any: its
                // updates were sealed under this secret and must not be accepted again. A
                // floor left under another secret says nothing about this one's updates.
                tx.execute(
                    "INSERT INTO c_device (urn, dev_secret, label, added_at, last_seq)
                     VALUES (?1, ?2, ?3, ?4,
                             (SELECT last_seq FROM c_removed_floor
                              WHERE urn = ?1 AND secret_fp = ?5))",
                    params![
                        urn.as_str(),
                        &dev_secret.as_bytes()[..],
                        label,
                        now,
                        &secret_fingerprint(dev_secret)[..]
                    ],
                )?;
                Added::New
            }
        };
        tx.commit()?;
        Ok(out)
    }

    fn device_key(&self, urn: &DevUrn) -> Result<Option<Key256>, StoreError> {
        let c = lock(&self.conn);
        let k: Option<Vec<u8>> = c
            .query_row(
                "SELECT dev_secret FROM c_device WHERE urn = ?1",
                [urn.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        k.map(key_from).transpose()
    }

    fn record(&self, urn: &DevUrn, seq: u64, readings: &[Reading]) -> Result<Recorded, StoreError> {
        let (reply, result) = std::sync::mpsc::sync_channel(1);
        let pending = PendingUpdate {
            urn: urn.clone(),
            seq,
            readings: readings.to_vec(),
            reply,
        };
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pending);
        let mut conn = lock(&self.conn);
        // While we waited for the connection, its previous holder may have committed ours.
        if let Ok(r) = result.try_recv() {
            return r.map_err(StoreError);
        }
        let batch = std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        match Self::commit_batch(&mut conn, &batch, self.limits.max_readings_per_device) {
            Ok(outcomes) => {
                for (p, o) in batch.iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(o));
                }
            }
            Err(e) => {
                for p in &batch {
                    let _ = p.reply.send(Err(e.0.clone()));
                }
            }
        }
        drop(conn);
        // Our own update was in the batch we just committed (it was queued before we locked).
        result
            .recv()
            .map_err(|_| StoreError("update was lost from the commit queue".into()))?
            .map_err(StoreError)
    }

    fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError> {
        let c = lock(&self.conn);
        let mut st = c.prepare(
            "SELECT d.urn, d.label, d.added_at, d.last_seq,
                    (SELECT COUNT(*) FROM c_reading r WHERE r.urn = d.urn)
             FROM c_device d ORDER BY d.urn",
        )?;
        let rows = st.query_map([], |r| {
            Ok(DeviceInfo {
                urn: r.get(0)?,
                label: r.get(1)?,
                added: r.get(2)?,
                last_seq: r.get::<_, Option<i64>>(3)?.map(seq_from_sql),
                readings: r.get::<_, i64>(4)?.unsigned_abs(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn remove_device(&self, urn: &DevUrn) -> Result<bool, StoreError> {
        let mut c = lock(&self.conn);
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM c_reading WHERE urn = ?1", [urn.as_str()])?;
        // Its replay floor outlives it, kept for its DevSecret (an update is accepted once,
        // also across a re-add with the same secret). The row's last_seq is at or above any
        // earlier floor of that secret: a re-add with it starts from that floor, and only
        // higher numbers are stored since.
        let row: Option<(Vec<u8>, Option<i64>)> = tx
            .query_row(
                "SELECT dev_secret, last_seq FROM c_device WHERE urn = ?1",
                [urn.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((secret, Some(last))) = row {
            tx.execute(
                "INSERT INTO c_removed_floor (urn, secret_fp, last_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (urn, secret_fp) DO UPDATE SET last_seq = excluded.last_seq",
                params![
                    urn.as_str(),
                    &secret_fingerprint(&key_from(secret)?)[..],
                    last
                ],
            )?;
        }
        let removed = tx.execute("DELETE FROM c_device WHERE urn = ?1", [urn.as_str()])?;
        tx.commit()?;
        // secure_delete zeroes the freed pages, but in WAL mode the old page images stay in the
        // main file until a checkpoint and in the log until it is reset: do both now, so the
        // removed DevSecret leaves the disk files with the device. Best effort: the removal
        // itself is committed, and a busy checkpoint is retried by SQLite later.
        let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(removed > 0)
    }

    fn readings(&self, urn: &DevUrn, limit: u32) -> Result<Option<Vec<StoredReading>>, StoreError> {
        let c = lock(&self.conn);
        let known: Option<i64> = c
            .query_row(
                "SELECT 1 FROM c_device WHERE urn = ?1",
                [urn.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Ok(None);
        }
        let mut st = c.prepare(
            "SELECT seq, name, unit, value, time FROM
               (SELECT id, seq, name, unit, value, time FROM c_reading WHERE urn = ?1
                ORDER BY id DESC LIMIT ?2)
             ORDER BY id",
        )?;
        let rows = st.query_map(params![urn.as_str(), limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, name, unit, value, time) = row?;
            let value: Value =
                serde_json::from_str(&value).map_err(|e| StoreError(e.to_string()))?;
            out.push(StoredReading {
                seq: seq_from_sql(seq),
                reading: Reading {
                    name,
                    unit,
                    value,
                    time,
                },
            });
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tte::senml::Value;

    fn reading() -> Vec<Reading> {
        vec![Reading {
            name: "t".into(),
            unit: None,
            value: Value::Number(1.0),
            time: 0.0,
        }]
    }

    #[test]
    fn a_removed_devices_secret_is_not_left_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let store = SqliteControllerStore::open(&path).unwrap();
        let marker = *b"ZQZQ-DEVSECRET-MARKER-0123456789";
        let urn = DevUrn::parse("urn:dev:test:gone").unwrap();
        store
            .add_device(&urn, &Key256::from_bytes(marker), None, 0)
            .unwrap();
        assert!(store.remove_device(&urn).unwrap());
        // Still open: neither the database file nor its write-ahead log holds it any more.
        let wal = dir.path().join("c.sqlite-wal");
        for file in [&path, &wal] {
            let bytes = std::fs::read(file).unwrap_or_default();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "the removed DevSecret is still in {}",
                file.display()
            );
        }
        drop(store);
    }

    /// Removing a device keeps its replay floor: added again with the same DevSecret (a box's
    /// derived one, or the introducer re-adding it), its old updates replayed are refused.
    #[test]
    fn a_removed_and_re_added_device_refuses_its_old_updates() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteControllerStore::open(&dir.path().join("c.sqlite")).unwrap();
        let urn = DevUrn::parse("urn:dev:test:replay").unwrap();
        let key = Key256::from_bytes([3; 32]);
        assert_eq!(store.add_device(&urn, &key, None, 0).unwrap(), Added::New);
        assert_eq!(store.record(&urn, 5, &reading()).unwrap(), Recorded::Stored);
        assert!(store.remove_device(&urn).unwrap());
        assert_eq!(store.add_device(&urn, &key, None, 1).unwrap(), Added::New);
        assert_eq!(
            store.record(&urn, 5, &reading()).unwrap(),
            Recorded::Replay { last: 5 }
        );
        // Removed again before any new update, then re-added: the floor stays.
        assert!(store.remove_device(&urn).unwrap());
        assert_eq!(store.add_device(&urn, &key, None, 2).unwrap(), Added::New);
        assert_eq!(
            store.record(&urn, 4, &reading()).unwrap(),
            Recorded::Replay { last: 5 }
        );
        assert_eq!(store.record(&urn, 6, &reading()).unwrap(), Recorded::Stored);
    }

    /// A squatter adds a device's DevURN under a secret of its own and posts one update with
    /// the highest counter; the operator removes the entry; the real device, added with its
    /// real DevSecret, is not held to the squatter's counter.
    #[test]
    fn a_squatters_counter_does_not_outlive_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteControllerStore::open(&dir.path().join("c.sqlite")).unwrap();
        let urn = DevUrn::parse("urn:dev:test:squatted").unwrap();
        let squat = Key256::from_bytes([6; 32]);
        let real = Key256::from_bytes([7; 32]);
        assert_eq!(store.add_device(&urn, &squat, None, 0).unwrap(), Added::New);
        assert_eq!(
            store.record(&urn, u64::MAX, &reading()).unwrap(),
            Recorded::Stored
        );
        assert!(store.remove_device(&urn).unwrap());
        assert_eq!(store.add_device(&urn, &real, None, 1).unwrap(), Added::New);
        assert_eq!(store.record(&urn, 1, &reading()).unwrap(), Recorded::Stored);
        // The squatter's floor still holds for the squatter's secret (its updates, if it were
        // let in again, are not accepted twice), and the real device's for the real one.
        assert!(store.remove_device(&urn).unwrap());
        assert_eq!(store.add_device(&urn, &squat, None, 2).unwrap(), Added::New);
        assert_eq!(
            store.record(&urn, u64::MAX, &reading()).unwrap(),
            Recorded::Replay { last: u64::MAX }
        );
        assert!(store.remove_device(&urn).unwrap());
        assert_eq!(store.add_device(&urn, &real, None, 3).unwrap(), Added::New);
        assert_eq!(
            store.record(&urn, 1, &reading()).unwrap(),
            Recorded::Replay { last: 1 }
        );
        assert_eq!(store.record(&urn, 2, &reading()).unwrap(), Recorded::Stored);
    }

    /// A Controller database written before the schema was versioned (floors by DevURN alone)
    /// is migrated in place: its devices, readings and counters stay, and its unattributed
    /// floors are dropped, so a floor a squatter left cannot block the real device.
    #[test]
    fn an_unversioned_controller_database_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let (kept, squatted) = (
            DevUrn::parse("urn:dev:test:kept").unwrap(),
            DevUrn::parse("urn:dev:test:squatted").unwrap(),
        );
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(CONTROLLER_MIGRATIONS[0]).unwrap();
            old.execute(
                "INSERT INTO c_device (urn, dev_secret, label, added_at, last_seq)
                 VALUES (?1, ?2, 'old', 0, 9)",
                params![kept.as_str(), &[8u8; 32][..]],
            )
            .unwrap();
            old.execute(
                "INSERT INTO c_reading (urn, seq, name, unit, value, time)
                 VALUES (?1, 9, 't', NULL, '1.0', 0.0)",
                [kept.as_str()],
            )
            .unwrap();
            old.execute(
                "INSERT INTO c_removed_seq (urn, last_seq) VALUES (?1, -1)",
                [squatted.as_str()],
            )
            .unwrap();
        }
        let store = SqliteControllerStore::open(&path).unwrap();
        let version: i64 = lock(&store.conn)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, i64::try_from(CONTROLLER_MIGRATIONS.len()).unwrap());
        let devices = store.devices().unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!((devices[0].last_seq, devices[0].readings), (Some(9), 1));
        assert_eq!(
            store.record(&kept, 9, &reading()).unwrap(),
            Recorded::Replay { last: 9 }
        );
        let real = Key256::from_bytes([9; 32]);
        assert_eq!(
            store.add_device(&squatted, &real, None, 1).unwrap(),
            Added::New
        );
        assert_eq!(
            store.record(&squatted, 1, &reading()).unwrap(),
            Recorded::Stored
        );
        drop(store);
        // Opening the migrated file again changes nothing.
        let again = SqliteControllerStore::open(&path).unwrap();
        assert_eq!(again.devices().unwrap().len(), 2);
    }

    /// A database from a newer program (a schema version this one does not know) is refused
    /// with an error that says so, not used.
    #[test]
    fn a_database_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = SqliteControllerStore::open(&path).unwrap_err();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }

    fn readings_of(n: usize, first: f64) -> Vec<Reading> {
        (0..n)
            .map(|i| Reading {
                name: "t".into(),
                unit: None,
                value: Value::Number(first + i as f64),
                time: 0.0,
            })
            .collect()
    }

    /// A device keeps its newest `max_readings_per_device` readings: older ones go, oldest
    /// first, also when one update alone carries more than the cap; other devices keep theirs.
    #[test]
    fn readings_beyond_the_cap_are_pruned_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteControllerStore::open(&dir.path().join("c.sqlite"))
            .unwrap()
            .with_limits(ControllerLimits {
                max_devices: 10,
                max_readings_per_device: 5,
            });
        let (a, b) = (
            DevUrn::parse("urn:dev:test:a").unwrap(),
            DevUrn::parse("urn:dev:test:b").unwrap(),
        );
        let key = Key256::from_bytes([4; 32]);
        for u in [&a, &b] {
            assert_eq!(store.add_device(u, &key, None, 0).unwrap(), Added::New);
        }
        let values = |u: &DevUrn| -> Vec<(u64, f64)> {
            let list = store.readings(u, 100).unwrap().unwrap();
            list.iter()
                .map(|r| match r.reading.value {
                    Value::Number(v) => (r.seq, v),
                    _ => unreachable!(),
                })
                .collect()
        };
        assert_eq!(
            store.record(&a, 1, &readings_of(2, 0.0)).unwrap(),
            Recorded::Stored
        );
        assert_eq!(
            store.record(&b, 1, &readings_of(3, 100.0)).unwrap(),
            Recorded::Stored
        );
        assert_eq!(
            store.record(&a, 2, &readings_of(2, 2.0)).unwrap(),
            Recorded::Stored
        );
        assert_eq!(
            store.record(&a, 3, &readings_of(2, 4.0)).unwrap(),
            Recorded::Stored
        );
        assert_eq!(
            values(&a),
            [(1, 1.0), (2, 2.0), (2, 3.0), (3, 4.0), (3, 5.0)]
        );
        assert_eq!(values(&b), [(1, 100.0), (1, 101.0), (1, 102.0)]);
        // One update with more readings than the cap: its newest five stay.
        assert_eq!(
            store.record(&a, 4, &readings_of(7, 10.0)).unwrap(),
            Recorded::Stored
        );
        assert_eq!(
            values(&a),
            [(4, 12.0), (4, 13.0), (4, 14.0), (4, 15.0), (4, 16.0)]
        );
        let devices = store.devices().unwrap();
        let count = |u: &DevUrn| {
            devices
                .iter()
                .find(|d| d.urn == u.as_str())
                .unwrap()
                .readings
        };
        assert_eq!((count(&a), count(&b)), (5, 3));
    }

    /// A new device beyond `max_devices` is refused; a retried add of a held one is not, and
    /// removing a device makes room.
    #[test]
    fn new_devices_beyond_the_cap_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteControllerStore::open(&dir.path().join("c.sqlite"))
            .unwrap()
            .with_limits(ControllerLimits {
                max_devices: 2,
                max_readings_per_device: 5,
            });
        let urn = |i: u32| DevUrn::parse(&format!("urn:dev:test:{i}")).unwrap();
        let key = Key256::from_bytes([5; 32]);
        assert_eq!(
            store.add_device(&urn(1), &key, None, 0).unwrap(),
            Added::New
        );
        assert_eq!(
            store.add_device(&urn(2), &key, None, 0).unwrap(),
            Added::New
        );
        assert_eq!(
            store.add_device(&urn(3), &key, None, 0).unwrap(),
            Added::Full
        );
        assert_eq!(
            store.add_device(&urn(1), &key, None, 0).unwrap(),
            Added::Same
        );
        assert_eq!(store.devices().unwrap().len(), 2);
        assert!(store.remove_device(&urn(2)).unwrap());
        assert_eq!(
            store.add_device(&urn(3), &key, None, 0).unwrap(),
            Added::New
        );
    }

    /// Group commit under contention: two threads per device race the same counters; each
    /// counter is stored at most once, every `Stored` answer is in the database, and the last
    /// counter wins.
    #[test]
    fn group_commit_keeps_replay_checks_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteControllerStore::open(&dir.path().join("c.sqlite")).unwrap());
        let urns: Vec<DevUrn> = (0..4)
            .map(|i| DevUrn::parse(&format!("urn:dev:test:{i}")).unwrap())
            .collect();
        for u in &urns {
            assert_eq!(
                store
                    .add_device(u, &Key256::from_bytes([1; 32]), None, 0)
                    .unwrap(),
                Added::New
            );
        }
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (store, urn) = (store.clone(), urns[t % 4].clone());
                std::thread::spawn(move || {
                    let mut stored = Vec::new();
                    for seq in 1..=40u64 {
                        if store.record(&urn, seq, &reading()).unwrap() == Recorded::Stored {
                            stored.push(seq);
                        }
                    }
                    (urn, stored)
                })
            })
            .collect();
        let mut per_device: std::collections::HashMap<DevUrn, Vec<u64>> = Default::default();
        for t in threads {
            let (u, s) = t.join().unwrap();
            per_device.entry(u).or_default().extend(s);
        }
        let devices = store.devices().unwrap();
        for u in &urns {
            let mut s = per_device.remove(u).unwrap_or_default();
            let n = s.len();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), n, "a counter was accepted twice for {u}");
            let d = devices.iter().find(|d| d.urn == u.as_str()).unwrap();
            assert_eq!(d.readings, n as u64);
            assert_eq!(d.last_seq, Some(40));
        }
        let unknown = DevUrn::parse("urn:dev:test:none").unwrap();
        assert_eq!(
            store.record(&unknown, 1, &reading()).unwrap(),
            Recorded::UnknownDevice
        );
    }
}
