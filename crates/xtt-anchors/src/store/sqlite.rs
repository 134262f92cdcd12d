//! The SQLite backend: one file, mode 0600, every write a transaction committed with
//! `synchronous=FULL` before the call returns, `secure_delete` so removed secrets are
//! overwritten in the file.
//!
//! Secrets are stored in their own column in clear; the file's permissions are their
//! protection at rest (as for the `xtt` tool's key files). Buffers inside SQLite and rusqlite
//! cannot be wiped from here; ours are [`SecretBytes`] as soon as they leave the database.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{Backend, Change, ComponentKey, Revocation, UpdateScope};
use crate::anchor::{
    Anchor, AnchorKind, Edge, EdgeKind, Fingerprint, Material, Provenance, Roles, SecretBytes,
    UnixSeconds, Validity,
};
use crate::error::AnchorError;

/// The schema this code writes (SQLite `user_version`). 1: anchors, edges, update_sequence.
/// 2: adds `revoked`. 3: adds `update_scope`. A store of an older version is migrated in place when opened; a newer one
/// is refused, so that a program that does not know about revocations never writes to a store
/// that has them.
const SCHEMA_VERSION: i64 = 3;

/// Version 2 to 3: what each update key may sign for (vendor id, class id). Keys stored before
/// have none, and sign nothing until an operator adds one (`xtt anchors scope`).
const MIGRATE_V3: &str = "
CREATE TABLE IF NOT EXISTS update_scope (
    fingerprint BLOB NOT NULL REFERENCES anchors(fingerprint) ON DELETE CASCADE,
    vendor_id   BLOB NOT NULL CHECK (length(vendor_id) = 16),
    class_id    BLOB NOT NULL CHECK (length(class_id) = 16),
    PRIMARY KEY (fingerprint, vendor_id, class_id)
);
";

/// Version 1, as it always was (`IF NOT EXISTS`: a no-op on an existing store).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS anchors (
    fingerprint      BLOB PRIMARY KEY CHECK (length(fingerprint) = 32),
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    roles            INTEGER NOT NULL,
    not_before       INTEGER NOT NULL,
    not_after        INTEGER,
    provenance       TEXT NOT NULL,
    provenance_detail TEXT NOT NULL,
    added_at         INTEGER NOT NULL,
    public_material  BLOB,
    secret_material  BLOB,
    CHECK ((public_material IS NULL) <> (secret_material IS NULL))
);
CREATE INDEX IF NOT EXISTS anchors_by_name ON anchors(kind, name);
CREATE TABLE IF NOT EXISTS edges (
    from_fp BLOB NOT NULL REFERENCES anchors(fingerprint) ON DELETE CASCADE,
    to_fp   BLOB NOT NULL REFERENCES anchors(fingerprint) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    PRIMARY KEY (from_fp, to_fp, kind)
);
CREATE TABLE IF NOT EXISTS update_sequence (
    component  BLOB PRIMARY KEY,
    sequence   INTEGER NOT NULL,
    signer     BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
";

/// Version 1 to 2: revoked fingerprints (what `xtt anchors remove` leaves behind, so that no
/// import brings a removed anchor back). No foreign key: the anchor row is gone.
const MIGRATE_V2: &str = "
CREATE TABLE IF NOT EXISTS revoked (
    fingerprint BLOB PRIMARY KEY CHECK (length(fingerprint) = 32),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    revoked_at  INTEGER NOT NULL
);
";

/// Anchors in a SQLite file.
#[derive(Debug)]
pub struct SqliteBackend {
    conn: Connection,
}

fn io(path: &Path, source: std::io::Error) -> AnchorError {
    AnchorError::Io {
        path: path.display().to_string(),
        cause: source,
    }
}

/// Creates `path` empty with mode 0600 if nothing is there; whether it did. An existing file
/// keeps its mode until it is known to be an anchor store. Anything but a regular file there is
/// refused (SQLite would block on a FIFO or write to a device), as is a dangling symlink.
fn create_if_missing(path: &Path) -> Result<bool, AnchorError> {
    match xtt_fsio::create_private_file_if_missing(path) {
        Ok(found) => Ok(found == xtt_fsio::PrivateFile::Created),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::IsADirectory
            ) =>
        {
            Err(io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is not a regular file (an anchor store is an SQLite file)",
                ),
            ))
        }
        Err(e) => Err(io(path, e)),
    }
}

/// Whether a database not yet marked as ours (user_version 0) holds tables that are not ours:
/// another program's database, which must not be turned into an anchor store.
fn has_foreign_tables(conn: &Connection) -> Result<bool, AnchorError> {
    let foreign: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
         AND name NOT IN ('anchors', 'edges', 'update_sequence', 'revoked', 'update_scope') AND name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )?;
    Ok(foreign > 0)
}

fn read_revocation(row: &rusqlite::Row<'_>) -> Result<Revocation, AnchorError> {
    let fp: Vec<u8> = row.get(0)?;
    let kind: String = row.get(1)?;
    Ok(Revocation {
        fingerprint: Fingerprint(
            fp.as_slice()
                .try_into()
                .map_err(|_| AnchorError::Corrupt("revoked fingerprint length".into()))?,
        ),
        kind: kind.parse()?,
        name: row.get(2)?,
        revoked_at: to_u64(row.get(3)?)?,
    })
}

/// The revocation of `fingerprint` as `conn` (or a transaction on it) sees it.
fn revocation_in(
    conn: &Connection,
    fingerprint: &Fingerprint,
) -> Result<Option<Revocation>, AnchorError> {
    let mut stmt = conn.prepare_cached(
        "SELECT fingerprint, kind, name, revoked_at FROM revoked WHERE fingerprint = ?1",
    )?;
    let mut rows = stmt.query([fingerprint.0.as_slice()])?;
    rows.next()?.map(read_revocation).transpose()
}

fn to_i64(v: u64) -> Result<i64, AnchorError> {
    i64::try_from(v).map_err(|_| AnchorError::TooLarge(v))
}

fn to_u64(v: i64) -> Result<u64, AnchorError> {
    u64::try_from(v).map_err(|_| AnchorError::Corrupt(format!("negative value {v}")))
}

impl SqliteBackend {
    /// Opens or creates the database. A new file is created with mode 0600 before SQLite
    /// touches it. An existing path must be a regular file holding an SQLite database that is
    /// empty or already an anchor store; only then is it narrowed to 0600. A wrong `--store`
    /// (a certificate, a device, another program's database) is refused and left as it was.
    pub fn open(path: &Path) -> Result<Self, AnchorError> {
        let created = create_if_missing(path)?;
        // Without SQLITE_OPEN_CREATE: the file exists now, and SQLite must not create one with
        // the umask's mode should it vanish in between.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        // The first read fails with "file is not a database" on anything else.
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version == 0 && has_foreign_tables(&conn)? {
            return Err(io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "an SQLite database, but not an anchor store; refusing to use it",
                ),
            ));
        }
        if !created {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io(path, e))?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if version > SCHEMA_VERSION {
            return Err(AnchorError::Corrupt(format!(
                "schema version {version}, this program knows {SCHEMA_VERSION}"
            )));
        }
        let mut conn = conn;
        if version < SCHEMA_VERSION {
            // One transaction per open: the tables and the version number change together,
            // and two processes opening an old store at once migrate it once.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version < 1 {
                tx.execute_batch(SCHEMA_V1)?;
            }
            if version < 2 {
                tx.execute_batch(MIGRATE_V2)?;
            }
            if version < 3 {
                tx.execute_batch(MIGRATE_V3)?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        Ok(SqliteBackend { conn })
    }

    /// The anchors a `WHERE` clause (or "" for all) selects.
    fn select(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Anchor>, AnchorError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT fingerprint, kind, name, roles, not_before, not_after, provenance,
                    provenance_detail, added_at, public_material, secret_material
             FROM anchors {filter}"
        ))?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Self::read_anchor(row)?);
        }
        Ok(out)
    }

    fn read_anchor(row: &rusqlite::Row<'_>) -> Result<Anchor, AnchorError> {
        let fp: Vec<u8> = row.get(0)?;
        let fingerprint = Fingerprint(
            fp.as_slice()
                .try_into()
                .map_err(|_| AnchorError::Corrupt("fingerprint length".into()))?,
        );
        let kind: String = row.get(1)?;
        let kind: AnchorKind = kind.parse()?;
        let roles: i64 = row.get(3)?;
        let roles = Roles::from_bits(
            u8::try_from(roles).map_err(|_| AnchorError::Corrupt(format!("roles {roles}")))?,
        )?;
        let not_after: Option<i64> = row.get(5)?;
        let provenance: String = row.get(6)?;
        let public: Option<Vec<u8>> = row.get(9)?;
        // Wrap the secret at once so the copy rusqlite handed us is wiped on drop.
        let secret: Option<SecretBytes> = row.get::<_, Option<Vec<u8>>>(10)?.map(SecretBytes::new);
        let material = match (public, secret) {
            (Some(p), None) => Material::Public(p),
            (None, Some(s)) => Material::Secret(s),
            _ => return Err(AnchorError::Corrupt("material columns".into())),
        };
        if kind.is_secret() != matches!(material, Material::Secret(_)) {
            return Err(AnchorError::Corrupt(format!(
                "{kind} anchor with the wrong kind of material"
            )));
        }
        Ok(Anchor {
            fingerprint,
            kind,
            name: row.get(2)?,
            roles,
            validity: Validity {
                not_before: to_u64(row.get(4)?)?,
                not_after: not_after.map(to_u64).transpose()?,
            },
            provenance: Provenance::from_parts(&provenance, row.get(7)?)?,
            added_at: to_u64(row.get(8)?)?,
            material,
        })
    }
}

impl Backend for SqliteBackend {
    fn update_scopes(&self) -> Result<Vec<UpdateScope>, AnchorError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT fingerprint, vendor_id, class_id FROM update_scope")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        let bad = || AnchorError::Corrupt("update_scope row".into());
        while let Some(row) = rows.next()? {
            let (fp, vendor, class): (Vec<u8>, Vec<u8>, Vec<u8>) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            out.push(UpdateScope {
                key: Fingerprint(fp.try_into().map_err(|_| bad())?),
                vendor_id: vendor.try_into().map_err(|_| bad())?,
                class_id: class.try_into().map_err(|_| bad())?,
            });
        }
        Ok(out)
    }

    fn revocations(&self) -> Result<Vec<Revocation>, AnchorError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT fingerprint, kind, name, revoked_at FROM revoked")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read_revocation(row)?);
        }
        Ok(out)
    }

    fn revocation(&self, fingerprint: &Fingerprint) -> Result<Option<Revocation>, AnchorError> {
        revocation_in(&self.conn, fingerprint)
    }

    fn anchor(&self, fingerprint: &Fingerprint) -> Result<Option<Anchor>, AnchorError> {
        let mut found = self.select("WHERE fingerprint = ?1", [fingerprint.0.as_slice()])?;
        Ok(found.pop())
    }

    fn anchors_named(&self, kind: AnchorKind, name: &str) -> Result<Vec<Anchor>, AnchorError> {
        self.select(
            "WHERE kind = ?1 AND name = ?2",
            rusqlite::params![kind.as_str(), name],
        )
    }

    fn anchors(&self) -> Result<Vec<Anchor>, AnchorError> {
        self.select("", [])
    }

    fn edges(&self) -> Result<Vec<Edge>, AnchorError> {
        let mut stmt = self
            .conn
            .prepare("SELECT from_fp, to_fp, kind FROM edges")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let from: Vec<u8> = row.get(0)?;
            let to: Vec<u8> = row.get(1)?;
            let kind: String = row.get(2)?;
            let fp = |v: Vec<u8>| {
                v.as_slice()
                    .try_into()
                    .map(Fingerprint)
                    .map_err(|_| AnchorError::Corrupt("edge fingerprint".into()))
            };
            out.push(Edge {
                from: fp(from)?,
                to: fp(to)?,
                kind: EdgeKind::parse(&kind)?,
            });
        }
        Ok(out)
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), AnchorError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for change in changes {
            match change {
                Change::Insert(a) => {
                    if let Some(r) = revocation_in(&tx, &a.fingerprint)? {
                        return Err(r.refusal());
                    }
                    let (public, secret) = match &a.material {
                        Material::Public(p) => (Some(p.as_slice()), None),
                        Material::Secret(s) => (None, Some(s.expose())),
                    };
                    tx.execute(
                        "INSERT INTO anchors (fingerprint, kind, name, roles, not_before,
                             not_after, provenance, provenance_detail, added_at,
                             public_material, secret_material)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                        params![
                            a.fingerprint.0.as_slice(),
                            a.kind.as_str(),
                            a.name,
                            i64::from(a.roles.bits()),
                            to_i64(a.validity.not_before)?,
                            a.validity.not_after.map(to_i64).transpose()?,
                            a.provenance.tag(),
                            a.provenance.detail(),
                            to_i64(a.added_at)?,
                            public,
                            secret,
                        ],
                    )?;
                }
                Change::Remove(fp) => {
                    tx.execute(
                        "DELETE FROM anchors WHERE fingerprint = ?1",
                        [fp.0.as_slice()],
                    )?;
                }
                Change::SetNotAfter(fp, end) => {
                    let n = tx.execute(
                        "UPDATE anchors SET not_after = ?2 WHERE fingerprint = ?1",
                        params![fp.0.as_slice(), end.map(to_i64).transpose()?],
                    )?;
                    if n != 1 {
                        return Err(AnchorError::NotFound(fp.to_hex()));
                    }
                }
                Change::SetRoles(fp, roles) => {
                    let n = tx.execute(
                        "UPDATE anchors SET roles = ?2 WHERE fingerprint = ?1",
                        params![fp.0.as_slice(), i64::from(roles.bits())],
                    )?;
                    if n != 1 {
                        return Err(AnchorError::NotFound(fp.to_hex()));
                    }
                }
                Change::AddEdge(e) => {
                    tx.execute(
                        "INSERT OR IGNORE INTO edges (from_fp, to_fp, kind) VALUES (?1, ?2, ?3)",
                        params![e.from.0.as_slice(), e.to.0.as_slice(), e.kind.as_str()],
                    )?;
                }
                Change::AddScope(scope) => {
                    tx.execute(
                        "INSERT OR IGNORE INTO update_scope (fingerprint, vendor_id, class_id)
                         VALUES (?1, ?2, ?3)",
                        params![
                            scope.key.0.as_slice(),
                            scope.vendor_id.as_slice(),
                            scope.class_id.as_slice()
                        ],
                    )?;
                }
                Change::Revoke(r) => {
                    tx.execute(
                        "INSERT OR REPLACE INTO revoked (fingerprint, kind, name, revoked_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![
                            r.fingerprint.0.as_slice(),
                            r.kind.as_str(),
                            r.name,
                            to_i64(r.revoked_at)?
                        ],
                    )?;
                }
                Change::Unrevoke(fp) => {
                    let n = tx.execute(
                        "DELETE FROM revoked WHERE fingerprint = ?1",
                        [fp.0.as_slice()],
                    )?;
                    if n != 1 {
                        return Err(AnchorError::NotFound(fp.to_hex()));
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn sequence(&self, component: &ComponentKey) -> Result<Option<u64>, AnchorError> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT sequence FROM update_sequence WHERE component = ?1",
                [component.0.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        v.map(to_u64).transpose()
    }

    fn advance_sequence(
        &mut self,
        component: &ComponentKey,
        sequence: u64,
        signer: &Fingerprint,
        now: UnixSeconds,
    ) -> Result<(), AnchorError> {
        // IMMEDIATE takes the write lock before reading, so two verifiers cannot both accept.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> = tx
            .query_row(
                "SELECT sequence FROM update_sequence WHERE component = ?1",
                [component.0.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(current) = current.map(to_u64).transpose()? {
            if sequence <= current {
                return Err(AnchorError::Rollback {
                    offered: sequence,
                    current,
                });
            }
        }
        tx.execute(
            "INSERT INTO update_sequence (component, sequence, signer, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(component) DO UPDATE SET sequence = ?2, signer = ?3, updated_at = ?4",
            params![
                component.0.as_slice(),
                to_i64(sequence)?,
                signer.0.as_slice(),
                to_i64(now)?
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn revision(&self) -> Result<u64, AnchorError> {
        // data_version changes when another connection commits; our own commits are counted
        // through total_changes.
        let data_version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        let own = self.conn.total_changes();
        Ok(to_u64(data_version)?
            .wrapping_mul(1 << 32)
            .wrapping_add(own))
    }
}
