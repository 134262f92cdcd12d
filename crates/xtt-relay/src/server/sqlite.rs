//! SQLite implementation of [`Store`]: one file (mode 0600), WAL journal with
//! `synchronous=FULL` so a committed change survives a crash of the process or the machine,
//! `secure_delete` so deleted ciphertext is overwritten, and one `BEGIN IMMEDIATE` transaction
//! per request. The clock is read once that transaction has begun: a request that waited for
//! the lock is judged by the time it runs, not the time it arrived. Right before it commits, a
//! transaction claims the request's [`Deadline`]; past it, the transaction is rolled back
//! instead ([`StoreError::DeadlinePassed`]).
//!
//! Little identifying is stored: no user names; device claims only as SHA-256 digests; of a
//! mailbox, its creator (IPv4 address or IPv6 /64) for the
//! per-creator quota. Request ids and creators are deleted with their mailbox.
//!
//! The schema is versioned with `PRAGMA user_version`: [`SCHEMA`] creates the tables as they
//! were before versioning (version 0), and each of [`MIGRATIONS`] is applied once, in order, in
//! its own transaction, so databases written by earlier relays keep working.

use crate::proto::mailbox::{AccessError, Change, ClaimDigest, Mailbox};
use crate::proto::wire::{
    AccessRights, DisplayInformation, NotificationToken, PayloadType, SealedPayload,
};
use crate::server::clock::Clock;
use crate::server::store::{
    ApplyError, ApplyOutcome, CreateOutcome, CreateQuota, Deadline, IdempotencyKey, MailboxOp,
    QuotaOutcome, Store, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mailbox (
    id                   TEXT PRIMARY KEY NOT NULL,
    initiator_claim      BLOB NOT NULL,
    recipient_claim      BLOB,
    access_rights        TEXT NOT NULL,
    expires_at           INTEGER NOT NULL,
    payload_type         TEXT NOT NULL,
    payload              BLOB NOT NULL,
    display_title        TEXT NOT NULL,
    display_description  TEXT NOT NULL,
    display_image_url    TEXT NOT NULL,
    initiator_token_type TEXT,
    initiator_token_data TEXT,
    recipient_token_type TEXT,
    recipient_token_data TEXT,
    attestation          TEXT,
    receivers_bound      INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS mailbox_expiry ON mailbox(expires_at);
CREATE TABLE IF NOT EXISTS last_request (
    claim      BLOB PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL,
    mailbox_id TEXT NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE
) STRICT;
CREATE INDEX IF NOT EXISTS last_request_mailbox ON last_request(mailbox_id);
-- How many mailbox rows there are, kept by triggers (SQLite's count(*) scans the table), so
-- a create can refuse past the cap at O(1) cost. Recounted at every open.
CREATE TABLE IF NOT EXISTS mailbox_count (
    one INTEGER PRIMARY KEY NOT NULL CHECK (one = 1),
    n   INTEGER NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS mailbox_counted_in AFTER INSERT ON mailbox
    BEGIN UPDATE mailbox_count SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS mailbox_counted_out AFTER DELETE ON mailbox
    BEGIN UPDATE mailbox_count SET n = n - 1; END;
INSERT INTO mailbox_count (one, n) VALUES (1, (SELECT count(*) FROM mailbox))
    ON CONFLICT(one) DO UPDATE SET n = excluded.n;
";

/// Schema changes after [`SCHEMA`]; `PRAGMA user_version` is how many have been applied.
/// Append only: a released database may be at any of these versions.
const MIGRATIONS: &[&str] = &[
    // 1: who created each mailbox (IPv4 address or IPv6 /64), for the per-creator quota of
    // live mailboxes; NULL for mailboxes created before, or through `Store::create`.
    "ALTER TABLE mailbox ADD COLUMN creator TEXT;
     CREATE INDEX mailbox_creator ON mailbox(creator, expires_at);",
];

const COLUMNS: &str = "id, initiator_claim, recipient_claim, access_rights, expires_at, \
    payload_type, payload, display_title, display_description, display_image_url, \
    initiator_token_type, initiator_token_data, recipient_token_type, recipient_token_data, \
    attestation, receivers_bound";

/// Mailboxes in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // 0600 (the mailboxes are sealed, but their metadata is not for other users); a file
        // that is not a database keeps its mode and fails below.
        xtt_fsio::make_private_sqlite_file(path)?;
        let mut conn = Connection::open(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt("the database refuses WAL journaling"));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock dropped its transaction (rolled back): the connection
        // is still consistent.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Applies the [`MIGRATIONS`] the database has not seen, each with its version bump in one
/// transaction (another relay opening the same file at once finds the work done).
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len();
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version =
            usize::try_from(version).map_err(|_| StoreError::Corrupt("negative user_version"))?;
        if version > known {
            return Err(StoreError::Corrupt(
                "the database was written by a newer relay (unknown schema version)",
            ));
        }
        if version == known {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[version])?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(version + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
}

fn digest_from(blob: Vec<u8>) -> Result<ClaimDigest, StoreError> {
    <[u8; 32]>::try_from(blob.as_slice())
        .map(ClaimDigest)
        .map_err(|_| StoreError::Corrupt("claim digest length"))
}

fn token_from(kind: Option<String>, data: Option<String>) -> Option<NotificationToken> {
    match (kind, data) {
        (Some(kind), Some(token_data)) => Some(NotificationToken { kind, token_data }),
        _ => None,
    }
}

struct RawRow {
    id: String,
    initiator: Vec<u8>,
    recipient: Option<Vec<u8>>,
    rights: String,
    expires_at: i64,
    payload_type: String,
    payload: Vec<u8>,
    title: String,
    description: String,
    image_url: String,
    it_kind: Option<String>,
    it_data: Option<String>,
    rt_kind: Option<String>,
    rt_data: Option<String>,
    attestation: Option<String>,
    receivers_bound: i64,
}

fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: row.get(0)?,
        initiator: row.get(1)?,
        recipient: row.get(2)?,
        rights: row.get(3)?,
        expires_at: row.get(4)?,
        payload_type: row.get(5)?,
        payload: row.get(6)?,
        title: row.get(7)?,
        description: row.get(8)?,
        image_url: row.get(9)?,
        it_kind: row.get(10)?,
        it_data: row.get(11)?,
        rt_kind: row.get(12)?,
        rt_data: row.get(13)?,
        attestation: row.get(14)?,
        receivers_bound: row.get(15)?,
    })
}

impl RawRow {
    fn into_mailbox(self) -> Result<Mailbox, StoreError> {
        Ok(Mailbox {
            id: Uuid::try_parse(&self.id).map_err(|_| StoreError::Corrupt("mailbox id"))?,
            initiator: digest_from(self.initiator)?,
            recipient: self.recipient.map(digest_from).transpose()?,
            rights: AccessRights::parse(&self.rights)
                .map_err(|_| StoreError::Corrupt("access rights"))?,
            expires_at: self.expires_at,
            payload: SealedPayload {
                kind: PayloadType::from_name(&self.payload_type)
                    .ok_or(StoreError::Corrupt("payload type"))?,
                bytes: self.payload,
            },
            display: DisplayInformation {
                title: self.title,
                description: self.description,
                image_url: self.image_url,
            },
            initiator_token: token_from(self.it_kind, self.it_data),
            recipient_token: token_from(self.rt_kind, self.rt_data),
            attestation: self.attestation,
            receivers_bound: u32::try_from(self.receivers_bound)
                .map_err(|_| StoreError::Corrupt("receivers_bound"))?,
        })
    }
}

fn load(conn: &Connection, id: &Uuid, now: i64) -> Result<Option<Mailbox>, StoreError> {
    let raw = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM mailbox WHERE id = ?1 AND expires_at > ?2"),
            params![id.to_string(), now],
            raw_row,
        )
        .optional()?;
    raw.map(RawRow::into_mailbox).transpose()
}

/// Stores `m`: a new row, or the existing row changed in place. Not `REPLACE`: SQLite carries
/// it out as a delete and an insert, and the delete cascades to `last_request`, which would
/// forget every other device's last request on this mailbox, so their retries would run again.
/// The creator is written by an insert only (`insert: Some(creator)`); an update keeps it.
fn write(conn: &Connection, m: &Mailbox, insert: Option<Option<&str>>) -> Result<(), StoreError> {
    let sql = if insert.is_some() {
        format!(
            "INSERT INTO mailbox ({COLUMNS}, creator) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        )
    } else {
        // The same parameters: ?1 is the id, ?2.. the other columns in COLUMNS' order.
        let set: Vec<String> = COLUMNS
            .split(',')
            .map(str::trim)
            .skip(1)
            .zip(2..)
            .map(|(column, n)| format!("{column} = ?{n}"))
            .collect();
        format!("UPDATE mailbox SET {} WHERE id = ?1", set.join(", "))
    };
    let id = m.id.to_string();
    let recipient = m.recipient.as_ref().map(|d| d.0.to_vec());
    let rights = m.rights.to_string();
    let payload_type = m.payload.kind.as_str();
    let it_kind = m.initiator_token.as_ref().map(|t| &t.kind);
    let it_data = m.initiator_token.as_ref().map(|t| &t.token_data);
    let rt_kind = m.recipient_token.as_ref().map(|t| &t.kind);
    let rt_data = m.recipient_token.as_ref().map(|t| &t.token_data);
    let receivers_bound = i64::from(m.receivers_bound);
    let initiator = &m.initiator.0[..];
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
        &id,
        &initiator,
        &recipient,
        &rights,
        &m.expires_at,
        &payload_type,
        &m.payload.bytes,
        &m.display.title,
        &m.display.description,
        &m.display.image_url,
        &it_kind,
        &it_data,
        &rt_kind,
        &rt_data,
        &m.attestation,
        &receivers_bound,
    ];
    let creator = insert.flatten();
    if insert.is_some() {
        values.push(&creator);
    }
    let changed = conn.execute(&sql, values.as_slice())?;
    if changed != 1 {
        return Err(StoreError::Corrupt(
            "mailbox row vanished inside its transaction",
        ));
    }
    Ok(())
}

/// Commits `tx` if `deadline` can still be claimed; otherwise drops it, which rolls it back.
fn commit(tx: rusqlite::Transaction<'_>, deadline: &Deadline) -> Result<(), StoreError> {
    if !deadline.begin_commit() {
        return Err(StoreError::DeadlinePassed);
    }
    Ok(tx.commit()?)
}

fn record_request(conn: &Connection, key: &IdempotencyKey, id: &Uuid) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO last_request (claim, request_id, mailbox_id) VALUES (?1, ?2, ?3)
         ON CONFLICT(claim) DO UPDATE SET request_id = excluded.request_id,
                                          mailbox_id = excluded.mailbox_id",
        params![&key.claim.0[..], &key.request_id, id.to_string()],
    )?;
    Ok(())
}

impl SqliteStore {
    /// [`Store::create`], in one transaction.
    fn create_checked(
        &self,
        mailbox: &Mailbox,
        key: &IdempotencyKey,
        clock: &dyn Clock,
        quota: &CreateQuota,
        deadline: &Deadline,
    ) -> Result<QuotaOutcome, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = clock.now();
        let previous: Option<(String, String)> = tx
            .query_row(
                "SELECT r.request_id, r.mailbox_id FROM last_request r
                 JOIN mailbox m ON m.id = r.mailbox_id
                 WHERE r.claim = ?1 AND m.expires_at > ?2",
                params![&key.claim.0[..], now],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some((request_id, mailbox_id)) = previous {
            if request_id == key.request_id {
                let id =
                    Uuid::try_parse(&mailbox_id).map_err(|_| StoreError::Corrupt("mailbox id"))?;
                return Ok(QuotaOutcome::Within(CreateOutcome::Duplicate(id)));
            }
        }
        // Valid when the request arrived, but it waited for the store: a mailbox dead on
        // arrival is not stored.
        if mailbox.is_expired(now) {
            return Ok(QuotaOutcome::Within(CreateOutcome::Expired));
        }
        let creator = quota.creator.to_string();
        // A range of the (creator, expires_at) index: at most `per_creator` entries.
        let (live, earliest): (i64, Option<i64>) = tx.query_row(
            "SELECT count(*), min(expires_at) FROM mailbox
             WHERE creator = ?1 AND expires_at > ?2",
            params![creator, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if u64::try_from(live).unwrap_or(0) >= quota.per_creator {
            let wait = earliest.map_or(1, |at| at.saturating_sub(now));
            return Ok(QuotaOutcome::OverQuota {
                retry_after_secs: u64::try_from(wait).unwrap_or(1).max(1),
            });
        }
        let stored: i64 = tx.query_row("SELECT n FROM mailbox_count", [], |r| r.get(0))?;
        if u64::try_from(stored).unwrap_or(0) >= quota.max_mailboxes {
            return Ok(QuotaOutcome::Within(CreateOutcome::Full));
        }
        write(&tx, mailbox, Some(Some(&creator)))?;
        record_request(&tx, key, &mailbox.id)?;
        commit(tx, deadline)?;
        Ok(QuotaOutcome::Within(CreateOutcome::Created))
    }
}

impl Store for SqliteStore {
    fn create(
        &self,
        mailbox: &Mailbox,
        key: &IdempotencyKey,
        clock: &dyn Clock,
        quota: &CreateQuota,
        deadline: &Deadline,
    ) -> Result<QuotaOutcome, StoreError> {
        self.create_checked(mailbox, key, clock, quota, deadline)
    }

    fn apply(
        &self,
        id: &Uuid,
        clock: &dyn Clock,
        key: Option<&IdempotencyKey>,
        op: MailboxOp<'_>,
        deadline: &Deadline,
    ) -> Result<ApplyOutcome, ApplyError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        // Now, not when the request arrived: it may have waited long for the lock.
        let mut mailbox = load(&tx, id, clock.now())?.ok_or(AccessError::NotFound)?;
        if let Some(key) = key {
            let repeated = tx
                .query_row(
                    "SELECT 1 FROM last_request WHERE claim = ?1 AND request_id = ?2 AND mailbox_id = ?3",
                    params![&key.claim.0[..], &key.request_id, id.to_string()],
                    |_| Ok(()),
                )
                .optional()
                .map_err(StoreError::from)?;
            if repeated.is_some() {
                return Ok(ApplyOutcome::Duplicate);
            }
        }
        let change = op(&mut mailbox)?;
        match change {
            Change::Unchanged => {}
            Change::Updated => write(&tx, &mailbox, None)?,
            Change::Deleted => {
                tx.execute("DELETE FROM mailbox WHERE id = ?1", params![id.to_string()])
                    .map_err(StoreError::from)?;
            }
        }
        if let (Some(key), false) = (key, change == Change::Deleted) {
            record_request(&tx, key, id)?;
        }
        commit(tx, deadline)?;
        Ok(ApplyOutcome::Done(change))
    }

    fn get(&self, id: &Uuid, clock: &dyn Clock) -> Result<Option<Mailbox>, StoreError> {
        let conn = self.lock();
        load(&conn, id, clock.now())
    }

    fn sweep(&self, clock: &dyn Clock) -> Result<usize, StoreError> {
        let conn = self.lock();
        let now = clock.now();
        Ok(conn.execute("DELETE FROM mailbox WHERE expires_at <= ?1", params![now])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::clock::FixedClock;

    fn mailbox(id: u128, expires_at: i64) -> Mailbox {
        Mailbox {
            id: Uuid::from_u128(id),
            initiator: ClaimDigest::of(&Uuid::from_u128(1)),
            recipient: None,
            rights: AccessRights::ALL,
            expires_at,
            payload: SealedPayload {
                kind: PayloadType::Aes256Gcm,
                bytes: vec![1; 40],
            },
            display: DisplayInformation {
                title: "t".into(),
                description: "d".into(),
                image_url: "https://x".into(),
            },
            initiator_token: Some(NotificationToken {
                kind: "k".into(),
                token_data: "v".into(),
            }),
            recipient_token: None,
            attestation: Some("att".into()),
            receivers_bound: 0,
        }
    }

    /// A create by one client with no quota of its own: only the relay-wide cap `max`.
    fn create(
        s: &SqliteStore,
        m: &Mailbox,
        key: &IdempotencyKey,
        now: i64,
        max: u64,
    ) -> CreateOutcome {
        let quota = CreateQuota {
            max_mailboxes: max,
            per_creator: u64::MAX,
            ..quota("203.0.113.9", 0)
        };
        match s
            .create(m, key, &FixedClock(now), &quota, &Deadline::none())
            .unwrap()
        {
            QuotaOutcome::Within(outcome) => outcome,
            over => panic!("no quota, yet {over:?}"),
        }
    }

    /// `store.apply` with the clock at 0.
    fn at0(
        store: &SqliteStore,
        id: &Uuid,
        key: Option<&IdempotencyKey>,
        op: MailboxOp<'_>,
        deadline: &Deadline,
    ) -> Result<ApplyOutcome, ApplyError> {
        store.apply(id, &FixedClock(0), key, op, deadline)
    }

    fn key(claim: u128, request: &str) -> IdempotencyKey {
        IdempotencyKey {
            claim: ClaimDigest::of(&Uuid::from_u128(claim)),
            request_id: request.into(),
        }
    }

    #[test]
    fn round_trip_duplicates_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let store = SqliteStore::open(&path).unwrap();
        let m = mailbox(5, 100);
        assert_eq!(
            create(&store, &m, &key(1, "a"), 0, 10),
            CreateOutcome::Created
        );
        assert_eq!(
            create(&store, &mailbox(6, 100), &key(1, "a"), 0, 10),
            CreateOutcome::Duplicate(m.id)
        );
        assert_eq!(store.get(&m.id, &FixedClock(0)).unwrap(), Some(m.clone()));
        assert_eq!(
            store.get(&Uuid::from_u128(6), &FixedClock(0)).unwrap(),
            None
        );

        let reader = ClaimDigest::of(&Uuid::from_u128(2));
        let mut op = |mb: &mut Mailbox| mb.read(&reader, None, 3).map(|(_, c)| c);
        assert!(matches!(
            at0(
                &store,
                &m.id,
                Some(&key(2, "r")),
                &mut op,
                &Deadline::none()
            ),
            Ok(ApplyOutcome::Done(Change::Updated))
        ));
        assert!(matches!(
            at0(
                &store,
                &m.id,
                Some(&key(2, "r")),
                &mut op,
                &Deadline::none()
            ),
            Ok(ApplyOutcome::Duplicate)
        ));
        assert_eq!(
            store.get(&m.id, &FixedClock(0)).unwrap().unwrap().recipient,
            Some(reader)
        );

        // Reopen: everything is still there.
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert!(store.get(&m.id, &FixedClock(99)).unwrap().is_some());
        assert!(
            store.get(&m.id, &FixedClock(100)).unwrap().is_none(),
            "expired at its instant"
        );
        assert!(matches!(
            store.apply(&m.id, &FixedClock(100), None, &mut op, &Deadline::none()),
            Err(ApplyError::Access(AccessError::NotFound))
        ));
        assert_eq!(store.sweep(&FixedClock(99)).unwrap(), 0);
        assert_eq!(store.sweep(&FixedClock(100)).unwrap(), 1);
        let conn = Connection::open(&path).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM mailbox) + (SELECT count(*) FROM last_request)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    /// A request that arrives a second before its mailbox expires but gets the store's lock
    /// only after the expiry instant is judged at the instant it runs: the read is refused (no
    /// content, no Recipient bound) and a delete is not applied. The test holds the store's
    /// lock across the expiry; the requests' threads signal their arrival first.
    #[test]
    fn a_request_that_waits_for_the_lock_across_expiry_finds_the_mailbox_expired() {
        use crate::server::clock::ManualClock;
        use std::sync::mpsc;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("relay.db")).unwrap();
        let m = mailbox(5, 100);
        assert_eq!(
            create(&store, &m, &key(1, "c"), 0, 10),
            CreateOutcome::Created
        );
        let clock = ManualClock::new(99);
        let reader = ClaimDigest::of(&Uuid::from_u128(2));
        let initiator = m.initiator;
        let (arrived, arrivals) = mpsc::channel();
        let (read, deleted) = std::thread::scope(|s| {
            let held = store.lock();
            let read = s.spawn(|| {
                let mut seen = None;
                let mut op = |mb: &mut Mailbox| {
                    let (_, change) = mb.read(&reader, None, 3)?;
                    seen = Some(mb.payload.clone());
                    Ok(change)
                };
                arrived.send(()).unwrap();
                let outcome = store.apply(&m.id, &clock, None, &mut op, &Deadline::none());
                (outcome, seen)
            });
            let deleted = s.spawn(|| {
                let mut op = |mb: &mut Mailbox| {
                    mb.authorize_delete(&initiator)?;
                    Ok(Change::Deleted)
                };
                arrived.send(()).unwrap();
                store.apply(
                    &m.id,
                    &clock,
                    Some(&key(1, "d")),
                    &mut op,
                    &Deadline::none(),
                )
            });
            // Both requests arrived at 99, while the mailbox was live; the lock is still held
            // when its expiry second comes.
            arrivals.recv().unwrap();
            arrivals.recv().unwrap();
            clock.set(100);
            drop(held);
            (read.join().unwrap(), deleted.join().unwrap())
        });
        assert!(
            matches!(read.0, Err(ApplyError::Access(AccessError::NotFound))),
            "read after expiry: {:?}",
            read.0
        );
        assert_eq!(read.1, None, "the content was handed out after expiry");
        assert!(
            matches!(deleted, Err(ApplyError::Access(AccessError::NotFound))),
            "delete after expiry: {deleted:?}"
        );
        // Nothing was written: the row is as created, unbound, until the sweeper takes it.
        let conn = Connection::open(dir.path().join("relay.db")).unwrap();
        let (rows, bound): (i64, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT count(*), max(recipient_claim) FROM mailbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, bound), (1, None));
        assert_eq!(store.get(&m.id, &FixedClock(99)).unwrap(), Some(m));
    }

    /// Rows in the mailbox and last_request tables, through a separate connection.
    fn rows(path: &Path) -> (i64, i64) {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT (SELECT count(*) FROM mailbox), (SELECT count(*) FROM last_request)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    /// A step whose deadline has passed, by its instant or because the request timed out, is
    /// rolled back: nothing is created, bound or changed, and the request id is not recorded,
    /// so a retry with it runs as new.
    #[test]
    fn a_step_past_its_deadline_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let store = SqliteStore::open(&path).unwrap();
        let m = mailbox(5, 100);
        let q = quota("192.0.2.1", 10);
        let passed = Deadline::at(std::time::Instant::now());
        assert!(matches!(
            store.create(&m, &key(1, "c"), &FixedClock(0), &q, &passed),
            Err(StoreError::DeadlinePassed)
        ));
        assert_eq!(rows(&path), (0, 0));
        assert_eq!(
            store
                .create(&m, &key(1, "c"), &FixedClock(0), &q, &Deadline::none())
                .unwrap(),
            CREATED,
            "the retry was not taken as new"
        );

        let timed_out = Deadline::none();
        assert!(timed_out.time_out());
        let reader = ClaimDigest::of(&Uuid::from_u128(2));
        let mut read = |mb: &mut Mailbox| mb.read(&reader, None, 3).map(|(_, c)| c);
        assert!(matches!(
            at0(&store, &m.id, None, &mut read, &timed_out),
            Err(ApplyError::Store(StoreError::DeadlinePassed))
        ));
        let mut touch = |mb: &mut Mailbox| {
            mb.display.title.push('!');
            Ok::<_, AccessError>(Change::Updated)
        };
        assert!(matches!(
            at0(&store, &m.id, Some(&key(1, "u")), &mut touch, &timed_out),
            Err(ApplyError::Store(StoreError::DeadlinePassed))
        ));
        let mut delete = |_: &mut Mailbox| Ok::<_, AccessError>(Change::Deleted);
        assert!(matches!(
            at0(&store, &m.id, Some(&key(1, "d")), &mut delete, &passed),
            Err(ApplyError::Store(StoreError::DeadlinePassed))
        ));
        assert_eq!(store.get(&m.id, &FixedClock(0)).unwrap(), Some(m.clone()));
        assert_eq!(rows(&path), (1, 1));
        assert!(matches!(
            at0(
                &store,
                &m.id,
                Some(&key(1, "u")),
                &mut touch,
                &Deadline::none()
            ),
            Ok(ApplyOutcome::Done(Change::Updated))
        ));
    }

    /// A create that runs at or after its mailbox's expiry (it waited for the store) stores
    /// nothing; a second earlier, it creates.
    #[test]
    fn a_create_that_runs_at_its_expiry_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let store = SqliteStore::open(&path).unwrap();
        let m = mailbox(5, 100);
        assert_eq!(
            create(&store, &m, &key(1, "c"), 100, 10),
            CreateOutcome::Expired
        );
        assert_eq!(rows(&path), (0, 0));
        assert_eq!(
            create(&store, &m, &key(1, "c"), 99, 10),
            CreateOutcome::Created
        );
    }

    /// One device's change to a mailbox must not make the store forget another device's last
    /// request on it: that device's retry would run a second time.
    #[test]
    fn an_update_keeps_other_devices_last_requests() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("relay.db")).unwrap();
        let m = mailbox(5, 100);
        assert_eq!(
            create(&store, &m, &key(1, "c"), 0, 10),
            CreateOutcome::Created
        );
        let mut touch = |mb: &mut Mailbox| {
            mb.display.title.push('!');
            Ok::<_, AccessError>(Change::Updated)
        };
        assert!(matches!(
            at0(
                &store,
                &m.id,
                Some(&key(1, "u1")),
                &mut touch,
                &Deadline::none()
            ),
            Ok(ApplyOutcome::Done(Change::Updated))
        ));
        // Another device changes the mailbox in between...
        let reader = ClaimDigest::of(&Uuid::from_u128(2));
        let mut read = |mb: &mut Mailbox| mb.read(&reader, None, 3).map(|(_, c)| c);
        assert!(matches!(
            at0(
                &store,
                &m.id,
                Some(&key(2, "r")),
                &mut read,
                &Deadline::none()
            ),
            Ok(ApplyOutcome::Done(Change::Updated))
        ));
        // ...and the first device's retry is still recognised, not applied again.
        assert!(matches!(
            at0(
                &store,
                &m.id,
                Some(&key(1, "u1")),
                &mut touch,
                &Deadline::none()
            ),
            Ok(ApplyOutcome::Duplicate)
        ));
        let stored = store.get(&m.id, &FixedClock(0)).unwrap().unwrap();
        assert_eq!(stored.display.title, "t!");
        assert_eq!(stored.recipient, Some(reader));
    }

    /// At the cap a create is refused (its retry still finds the earlier mailbox); deletes and
    /// sweeps make room again, and the count survives a reopen.
    #[test]
    fn creates_stop_at_the_cap_and_resume_when_room_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let store = SqliteStore::open(&path).unwrap();
        let created = |s: &SqliteStore, id, exp, k: &str| {
            Ok::<_, ()>(create(s, &mailbox(id, exp), &key(id, k), 0, 2))
        };
        assert_eq!(
            created(&store, 10, 50, "a").unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(
            created(&store, 11, 100, "a").unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(created(&store, 12, 100, "a").unwrap(), CreateOutcome::Full);
        assert_eq!(
            created(&store, 10, 50, "a").unwrap(),
            CreateOutcome::Duplicate(Uuid::from_u128(10))
        );
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(created(&store, 12, 100, "a").unwrap(), CreateOutcome::Full);
        assert_eq!(store.sweep(&FixedClock(50)).unwrap(), 1);
        assert_eq!(
            created(&store, 12, 100, "a").unwrap(),
            CreateOutcome::Created
        );
        let id = Uuid::from_u128(11);
        let mut delete = |_: &mut Mailbox| Ok::<_, AccessError>(Change::Deleted);
        assert!(matches!(
            at0(&store, &id, None, &mut delete, &Deadline::none()),
            Ok(ApplyOutcome::Done(Change::Deleted))
        ));
        assert_eq!(
            created(&store, 13, 100, "a").unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(created(&store, 14, 100, "a").unwrap(), CreateOutcome::Full);
    }

    fn quota(ip: &str, per_creator: u64) -> CreateQuota {
        CreateQuota {
            max_mailboxes: 100,
            creator: crate::server::store::Creator::of(ip.parse().unwrap()),
            per_creator,
        }
    }

    const CREATED: QuotaOutcome = QuotaOutcome::Within(CreateOutcome::Created);

    /// With a quota of 3, a creator's 4th live mailbox is refused while another creator still
    /// creates; an IPv6 /64 is one creator; expiry and deletion give room back; a retry of an
    /// accepted create still finds its mailbox.
    #[test]
    fn creates_beyond_a_creators_quota_are_refused_while_others_still_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let store = SqliteStore::open(&path).unwrap();
        let by = |s: &SqliteStore, id: u128, exp: i64, ip: &str, now: i64| {
            s.create(
                &mailbox(id, exp),
                &key(id, "c"),
                &FixedClock(now),
                &quota(ip, 3),
                &Deadline::none(),
            )
            .unwrap()
        };
        assert_eq!(by(&store, 1, 50, "192.0.2.1", 0), CREATED);
        assert_eq!(by(&store, 2, 100, "192.0.2.1", 0), CREATED);
        assert_eq!(by(&store, 3, 100, "::ffff:192.0.2.1", 0), CREATED);
        assert_eq!(
            by(&store, 4, 100, "192.0.2.1", 0),
            QuotaOutcome::OverQuota {
                retry_after_secs: 50
            }
        );
        assert_eq!(
            store.get(&Uuid::from_u128(4), &FixedClock(0)).unwrap(),
            None
        );
        // The retry of an accepted create is answered, quota or not.
        assert_eq!(
            by(&store, 3, 100, "192.0.2.1", 0),
            QuotaOutcome::Within(CreateOutcome::Duplicate(Uuid::from_u128(3)))
        );
        // Another client is not held back.
        assert_eq!(by(&store, 5, 100, "192.0.2.2", 0), CREATED);
        // One IPv6 /64 is one creator; the next /64 is another.
        for id in 10..13 {
            let ip = format!("2001:db8:1:2::{id}");
            assert_eq!(by(&store, id, 100, &ip, 0), CREATED);
        }
        assert!(matches!(
            by(&store, 13, 100, "2001:db8:1:2:ffff::1", 0),
            QuotaOutcome::OverQuota { .. }
        ));
        assert_eq!(by(&store, 14, 100, "2001:db8:1:3::1", 0), CREATED);
        // Creators survive a reopen; an expired mailbox no longer counts, before any sweep.
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert!(matches!(
            by(&store, 4, 100, "192.0.2.1", 49),
            QuotaOutcome::OverQuota {
                retry_after_secs: 1
            }
        ));
        assert_eq!(by(&store, 4, 100, "192.0.2.1", 50), CREATED);
        assert!(matches!(
            by(&store, 7, 100, "192.0.2.1", 50),
            QuotaOutcome::OverQuota { .. }
        ));
        // A deleted one neither.
        let mut delete = |_: &mut Mailbox| Ok::<_, AccessError>(Change::Deleted);
        assert!(matches!(
            store.apply(
                &Uuid::from_u128(2),
                &FixedClock(50),
                None,
                &mut delete,
                &Deadline::none()
            ),
            Ok(ApplyOutcome::Done(Change::Deleted))
        ));
        assert_eq!(by(&store, 7, 100, "192.0.2.1", 50), CREATED);
        // The creator is what the row records: the address, or the /64.
        let conn = Connection::open(&path).unwrap();
        let creator = |id: u128| -> Option<String> {
            conn.query_row(
                "SELECT creator FROM mailbox WHERE id = ?1",
                params![Uuid::from_u128(id).to_string()],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(creator(3).as_deref(), Some("192.0.2.1"));
        assert_eq!(creator(10).as_deref(), Some("2001:db8:1:2::/64"));
        // The relay-wide cap still applies to creators within their quota.
        let full = CreateQuota {
            max_mailboxes: 2,
            ..quota("198.51.100.1", 3)
        };
        assert_eq!(
            store
                .create(
                    &mailbox(20, 100),
                    &key(20, "c"),
                    &FixedClock(50),
                    &full,
                    &Deadline::none()
                )
                .unwrap(),
            QuotaOutcome::Within(CreateOutcome::Full)
        );
        assert!(full.refusal().contains("3 live mailboxes"));
    }

    /// A database written before the schema was versioned (user_version 0, no creator column)
    /// opens, keeps its mailboxes and takes creators; a newer schema is refused.
    #[test]
    fn a_database_from_before_versioning_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        {
            // The tables exactly as the relay created them before versioning.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute(
                &format!(
                    "INSERT INTO mailbox ({COLUMNS}) VALUES \
                     (?1, ?2, NULL, 'RWD', 100, 'AEAD_AES_256_GCM', ?3, 't', 'd', 'https://x', \
                      NULL, NULL, NULL, NULL, NULL, 0)"
                ),
                params![
                    Uuid::from_u128(1).to_string(),
                    &ClaimDigest::of(&Uuid::from_u128(1)).0[..],
                    vec![1u8; 40]
                ],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert!(store
            .get(&Uuid::from_u128(1), &FixedClock(0))
            .unwrap()
            .is_some());
        assert_eq!(
            store
                .create(
                    &mailbox(2, 100),
                    &key(2, "c"),
                    &FixedClock(0),
                    &quota("192.0.2.1", 1),
                    &Deadline::none(),
                )
                .unwrap(),
            CREATED
        );
        assert!(matches!(
            store
                .create(
                    &mailbox(3, 100),
                    &key(3, "c"),
                    &FixedClock(0),
                    &quota("192.0.2.1", 1),
                    &Deadline::none(),
                )
                .unwrap(),
            QuotaOutcome::OverQuota { .. }
        ));
        drop(store);
        let version = |path: &Path| -> i64 {
            Connection::open(path)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(version(&path), MIGRATIONS.len() as i64);
        // Reopening applies nothing twice.
        let store = SqliteStore::open(&path).unwrap();
        assert!(store
            .get(&Uuid::from_u128(2), &FixedClock(0))
            .unwrap()
            .is_some());
        drop(store);
        assert_eq!(version(&path), MIGRATIONS.len() as i64);
        // A database from a newer relay is not opened.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("newer relay"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.db");
        let _store = SqliteStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
