//! The session store in PostgreSQL: any number of server nodes share sessions through it.
//!
//! Round trips: every call is one statement sent with `query_typed` (Parse, Bind, Execute and
//! Sync in one flight), in autocommit, so each is one round trip and one transaction.
//! [`SessionStore::acquire`] needs a decision under the row lock, so it is a PL/pgSQL function
//! (`xtt_session_acquire`) implementing the same table as the SQLite backend's Rust code
//! ([`super::decide`]); the conformance suite runs on both.

use postgres::types::{ToSql, Type};
use postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;
use xtt_proto::identity::CLIENT_ID_LEN;
use xtt_proto::record::{RecordState, Reservation, SessionId};
use xtt_proto::{ClientId, UnixTime};

use super::{
    bits_from_sql, bits_to_sql, seq_u32, Acquired, CreateOutcome, NodeId, SessionStore,
    StoredSession, UnixMillis,
};
use crate::postgres::{
    checked_version, connect_pool, describe, pool_err, probe_connection, Manager,
};
use crate::sqlite::{fixed, time_from_sql, time_to_sql};
use crate::{CookieUse, RegistryError, COOKIE_SWEEP_MARGIN_SECS};

/// Serialises session-table migrations between nodes ("xttsessn").
const MIGRATION_LOCK: i64 = 0x7874_7473_6573_736e;

/// Migrations of the session tables, tracked in `xtt_session_schema_version`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE xtt_nodes (
    node_id       bigint PRIMARY KEY,
    handover_addr text NOT NULL,
    alive_until   bigint NOT NULL
);
CREATE TABLE xtt_sessions (
    session_id    bytea PRIMARY KEY CHECK (length(session_id) = 16),
    client_id     bytea NOT NULL CHECK (length(client_id) = 16),
    suite         integer NOT NULL,
    sealed_keys   bytea NOT NULL,
    created       bigint NOT NULL,
    expires_at    bigint NOT NULL,
    owner         bigint,
    recv_reserved bigint NOT NULL,
    send_reserved bigint NOT NULL,
    recv_next     bigint NOT NULL DEFAULT 0,
    recv_bits     bytea NOT NULL DEFAULT '\x00000000000000000000000000000000',
    send_next     bigint NOT NULL DEFAULT 0,
    last_active   bigint NOT NULL
);
CREATE INDEX xtt_sessions_by_owner ON xtt_sessions (owner);

-- Takes a session over (see the Rust docs of SessionStore::acquire and decide()).
-- outcome: 0 unknown/expired, 1 taken exactly (released state), 2 held by a live node,
--          3 owned by the caller, 4 taken above the reservation (owner dead or forced).
CREATE FUNCTION xtt_session_acquire(
    p_id bytea, p_me bigint, p_force boolean, p_grant bigint, p_now bigint)
RETURNS TABLE (outcome smallint, client_id bytea, suite integer, sealed_keys bytea,
               created bigint, expires_at bigint, holder bigint, holder_addr text,
               recv_next bigint, recv_bits bytea, send_next bigint,
               recv_limit bigint, send_limit bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    r xtt_sessions%ROWTYPE;
    v_alive boolean;
    v_addr text;
    v_base bigint;
    c_max constant bigint := 4294967295;
BEGIN
    SELECT * INTO r FROM xtt_sessions s WHERE s.session_id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 0; RETURN NEXT; RETURN;
    END IF;
    IF r.expires_at <= p_now / 1000 THEN
        DELETE FROM xtt_sessions s WHERE s.session_id = p_id;
        outcome := 0; RETURN NEXT; RETURN;
    END IF;
    IF r.owner = p_me THEN
        outcome := 3; RETURN NEXT; RETURN;
    END IF;
    IF r.owner IS NOT NULL AND NOT p_force THEN
        SELECT n.handover_addr, n.alive_until > p_now INTO v_addr, v_alive
          FROM xtt_nodes n WHERE n.node_id = r.owner;
        IF coalesce(v_alive, false) THEN
            outcome := 2; holder := r.owner; holder_addr := v_addr; RETURN NEXT; RETURN;
        END IF;
    END IF;
    client_id := r.client_id; suite := r.suite; sealed_keys := r.sealed_keys;
    created := r.created; expires_at := r.expires_at;
    IF r.owner IS NULL THEN
        outcome := 1;
        recv_next := least(greatest(r.recv_next, 0), c_max + 1);
        recv_bits := r.recv_bits; send_next := r.send_next; v_base := recv_next;
    ELSE
        outcome := 4;
        recv_next := r.recv_reserved; recv_bits := NULL; send_next := r.send_reserved;
        v_base := r.recv_reserved;
    END IF;
    recv_limit := least(greatest(v_base + p_grant, 0), c_max);
    send_limit := least(greatest(send_next + p_grant, 0), c_max);
    UPDATE xtt_sessions s
       SET owner = p_me, recv_reserved = recv_limit, send_reserved = send_limit,
           last_active = p_now
     WHERE s.session_id = p_id;
    RETURN NEXT;
END
$fn$;
",
    r"
-- v2: cookies of accepted session handshakes (each accepted once deployment-wide).
CREATE TABLE xtt_session_cookies (
    cookie_id  bytea PRIMARY KEY CHECK (length(cookie_id) = 13),
    expires_at bigint NOT NULL
);
CREATE INDEX xtt_session_cookies_by_expiry ON xtt_session_cookies (expires_at);
",
];

type Pool = r2d2::Pool<Manager>;

/// The PostgreSQL session store: a pool of connections to the deployment's database.
#[derive(Clone)]
pub struct PostgresSessionStore {
    pool: Pool,
}

impl core::fmt::Debug for PostgresSessionStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PostgresSessionStore")
            .field("pool", &self.pool.state())
            .finish()
    }
}

fn db(e: postgres::Error) -> RegistryError {
    RegistryError::Database(describe(&e))
}

impl PostgresSessionStore {
    /// Connects to `url` (the registry's URL; `sslmode` and `sslrootcert` select TLS as for
    /// the registry, [`crate::pg_tls`]) with `pool_size` connections, and migrates the session
    /// tables.
    pub fn open(url: &str, pool_size: u32) -> Result<Self, RegistryError> {
        let target = crate::pg_tls::parse_url(url)?;
        Self::connect(target.config, target.tls, pool_size)
    }

    /// Connects with an explicit configuration (TLS only if it says `SslMode::Require`, then
    /// unverified; use [`Self::open`] to verify the server).
    pub fn from_config(mut config: Config, pool_size: u32) -> Result<Self, RegistryError> {
        let tls = crate::pg_tls::connector_for(&mut config)?;
        Self::connect(config, tls, pool_size)
    }

    fn connect(
        config: Config,
        tls: MakeRustlsConnect,
        pool_size: u32,
    ) -> Result<Self, RegistryError> {
        let pool = connect_pool(config, tls, pool_size, migrate)?;
        Ok(Self { pool })
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, RegistryError> {
        self.pool.get().map_err(pool_err)
    }

    fn rows(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<postgres::Row>, RegistryError> {
        self.conn()?.query_typed(sql, params).map_err(db)
    }
}

/// The session tables' schema version (0 before the first migration); `max` of the primary
/// key, so one index lookup.
const SCHEMA_VERSION_QUERY: &str =
    "SELECT coalesce(max(version), 0)::bigint FROM xtt_session_schema_version";

/// The session tables' schema version, or [`RegistryError::SchemaTooNew`] when a newer xtt
/// migrated them past [`MIGRATIONS`].
fn checked_schema_version(c: &mut impl postgres::GenericClient) -> Result<i64, RegistryError> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    checked_version(c, SCHEMA_VERSION_QUERY, supported)
}

fn migrate(c: &mut postgres::Client) -> Result<(), RegistryError> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target =
            i64::try_from(i + 1).map_err(|_| RegistryError::Corrupt("version overflow"))?;
        let mut tx = c.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS xtt_session_schema_version (
                 version    bigint PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(db)?;
        if checked_schema_version(&mut tx)? >= target {
            continue;
        }
        tx.batch_execute(sql).map_err(db)?;
        tx.execute(
            "INSERT INTO xtt_session_schema_version (version) VALUES ($1)",
            &[&target],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

impl SessionStore for PostgresSessionStore {
    fn register_node(
        &self,
        node: NodeId,
        handover_addr: &str,
        alive_until: UnixMillis,
    ) -> Result<(), RegistryError> {
        self.rows(
            "INSERT INTO xtt_nodes (node_id, handover_addr, alive_until) VALUES ($1, $2, $3)
             ON CONFLICT (node_id) DO UPDATE SET handover_addr = $2, alive_until = $3",
            &[
                (&node.0, Type::INT8),
                (&handover_addr, Type::TEXT),
                (&alive_until.0, Type::INT8),
            ],
        )?;
        Ok(())
    }

    fn heartbeat(&self, node: NodeId, alive_until: UnixMillis) -> Result<bool, RegistryError> {
        let rows = self.rows(
            "UPDATE xtt_nodes SET alive_until = greatest(alive_until, $2) WHERE node_id = $1
             RETURNING 1",
            &[(&node.0, Type::INT8), (&alive_until.0, Type::INT8)],
        )?;
        Ok(rows.len() == 1)
    }

    fn create(
        &self,
        s: &StoredSession,
        cookie: &CookieUse,
        owner: NodeId,
        reservation: Reservation,
        now: UnixMillis,
    ) -> Result<CreateOutcome, RegistryError> {
        // One statement, so one transaction: the session is inserted only if its cookie was
        // claimed here (a concurrent claim of the same cookie waits for this one, then finds it).
        let rows = self.rows(
            "WITH claimed AS (
                 INSERT INTO xtt_session_cookies (cookie_id, expires_at) VALUES ($11, $12)
                 ON CONFLICT (cookie_id) DO NOTHING RETURNING 1
             ), created AS (
                 INSERT INTO xtt_sessions (session_id, client_id, suite, sealed_keys, created,
                     expires_at, owner, recv_reserved, send_reserved, last_active)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM claimed)
                 ON CONFLICT (session_id) DO NOTHING RETURNING 1
             )
             SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM created)",
            &[
                (&&s.session_id.0[..], Type::BYTEA),
                (&&s.client_id.0[..], Type::BYTEA),
                (&i32::from(s.suite), Type::INT4),
                (&s.sealed_keys, Type::BYTEA),
                (&time_to_sql(s.created), Type::INT8),
                (&time_to_sql(s.expires_at), Type::INT8),
                (&owner.0, Type::INT8),
                (&i64::from(reservation.recv_limit), Type::INT8),
                (&i64::from(reservation.send_limit), Type::INT8),
                (&now.0, Type::INT8),
                (&&cookie.id[..], Type::BYTEA),
                (&time_to_sql(cookie.expires_at), Type::INT8),
            ],
        )?;
        let row = rows
            .first()
            .ok_or(RegistryError::Corrupt("no create outcome"))?;
        let claimed: i64 = row.try_get(0).map_err(db)?;
        let created: i64 = row.try_get(1).map_err(db)?;
        Ok(match (claimed, created) {
            (0, _) => CreateOutcome::CookieUsed,
            (_, 0) => CreateOutcome::SessionIdInUse,
            _ => CreateOutcome::Created,
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
        let rows = self.rows(
            "SELECT outcome, client_id, suite, sealed_keys, created, expires_at, holder,
                    holder_addr, recv_next, recv_bits, send_next, recv_limit, send_limit
               FROM xtt_session_acquire($1, $2, $3, $4, $5)",
            &[
                (&&id.0[..], Type::BYTEA),
                (&me.0, Type::INT8),
                (&force, Type::BOOL),
                (&i64::from(grant), Type::INT8),
                (&now.0, Type::INT8),
            ],
        )?;
        let row = rows
            .first()
            .ok_or(RegistryError::Corrupt("acquire returned no row"))?;
        let outcome: i16 = row.try_get(0).map_err(db)?;
        let int = |i: usize| -> Result<i64, RegistryError> {
            row.try_get::<_, Option<i64>>(i)
                .map_err(db)?
                .ok_or(RegistryError::Corrupt("acquire returned a null"))
        };
        match outcome {
            0 => return Ok(Acquired::Unknown),
            2 => {
                return Ok(Acquired::HeldBy {
                    node: NodeId(int(6)?),
                    handover_addr: row
                        .try_get::<_, Option<String>>(7)
                        .map_err(db)?
                        .unwrap_or_default(),
                })
            }
            3 => return Ok(Acquired::OwnedByCaller),
            1 | 4 => {}
            _ => return Err(RegistryError::Corrupt("unknown acquire outcome")),
        }
        let session = StoredSession {
            session_id: *id,
            client_id: ClientId(fixed::<CLIENT_ID_LEN>(
                row.try_get(1).map_err(db)?,
                "ClientID length",
            )?),
            suite: u16::try_from(row.try_get::<_, i32>(2).map_err(db)?)
                .map_err(|_| RegistryError::Corrupt("suite"))?,
            sealed_keys: row.try_get(3).map_err(db)?,
            created: time_from_sql(int(4)?),
            expires_at: time_from_sql(int(5)?),
        };
        let exact = outcome == 1;
        let start = if exact {
            let bits: Vec<u8> = row.try_get(9).map_err(db)?;
            RecordState {
                recv_next: u64::try_from(int(8)?).unwrap_or(0),
                recv_bits: bits_from_sql(&bits)?,
                send_next: seq_u32(int(10)?)?,
            }
        } else {
            RecordState::after_crash(seq_u32(int(8)?)?, seq_u32(int(10)?)?)
        };
        Ok(Acquired::Taken {
            session,
            start,
            reservation: Reservation {
                recv_limit: seq_u32(int(11)?)?,
                send_limit: seq_u32(int(12)?)?,
            },
            exact,
        })
    }

    fn extend(
        &self,
        id: &SessionId,
        me: NodeId,
        to: Reservation,
        now: UnixMillis,
    ) -> Result<bool, RegistryError> {
        let rows = self.rows(
            "UPDATE xtt_sessions SET recv_reserved = greatest(recv_reserved, $3),
                    send_reserved = greatest(send_reserved, $4), last_active = $5
              WHERE session_id = $1 AND owner = $2 RETURNING 1",
            &[
                (&&id.0[..], Type::BYTEA),
                (&me.0, Type::INT8),
                (&i64::from(to.recv_limit), Type::INT8),
                (&i64::from(to.send_limit), Type::INT8),
                (&now.0, Type::INT8),
            ],
        )?;
        Ok(rows.len() == 1)
    }

    fn release(
        &self,
        id: &SessionId,
        me: NodeId,
        state: &RecordState,
        now: UnixMillis,
    ) -> Result<bool, RegistryError> {
        let rows = self.rows(
            "UPDATE xtt_sessions SET owner = NULL, recv_next = $3, recv_bits = $4,
                    send_next = $5, last_active = $6
              WHERE session_id = $1 AND owner = $2 RETURNING 1",
            &[
                (&&id.0[..], Type::BYTEA),
                (&me.0, Type::INT8),
                (
                    &i64::try_from(state.recv_next).unwrap_or(i64::MAX),
                    Type::INT8,
                ),
                (&bits_to_sql(&state.recv_bits), Type::BYTEA),
                (&i64::from(state.send_next), Type::INT8),
                (&now.0, Type::INT8),
            ],
        )?;
        Ok(rows.len() == 1)
    }

    fn retire(
        &self,
        me: NodeId,
        sessions: &[(SessionId, RecordState)],
        now: UnixMillis,
    ) -> Result<u64, RegistryError> {
        let ids: Vec<&[u8]> = sessions.iter().map(|(id, _)| &id.0[..]).collect();
        let recv_next: Vec<i64> = sessions
            .iter()
            .map(|(_, s)| i64::try_from(s.recv_next).unwrap_or(i64::MAX))
            .collect();
        let recv_bits: Vec<Vec<u8>> = sessions
            .iter()
            .map(|(_, s)| bits_to_sql(&s.recv_bits))
            .collect();
        let send_next: Vec<i64> = sessions
            .iter()
            .map(|(_, s)| i64::from(s.send_next))
            .collect();
        // One statement, hence one transaction and one round trip: data-modifying CTEs run to
        // completion whether or not the outer query reads them. The lease ends after the
        // releases in the same commit, so no other node sees the lease gone and a listed row
        // still owned.
        let rows = self.rows(
            "WITH released AS (
                 UPDATE xtt_sessions s
                    SET owner = NULL, recv_next = u.recv_next, recv_bits = u.recv_bits,
                        send_next = u.send_next, last_active = $6
                   FROM unnest($2::bytea[], $3::bigint[], $4::bytea[], $5::bigint[])
                        AS u(session_id, recv_next, recv_bits, send_next)
                  WHERE s.session_id = u.session_id AND s.owner = $1
                 RETURNING 1),
             ended AS (
                 UPDATE xtt_nodes SET alive_until = least(alive_until, $6)
                  WHERE node_id = $1 RETURNING 1)
             SELECT (SELECT count(*) FROM released)::bigint, (SELECT count(*) FROM ended)::bigint",
            &[
                (&me.0, Type::INT8),
                (&ids, Type::BYTEA_ARRAY),
                (&recv_next, Type::INT8_ARRAY),
                (&recv_bits, Type::BYTEA_ARRAY),
                (&send_next, Type::INT8_ARRAY),
                (&now.0, Type::INT8),
            ],
        )?;
        let released: i64 = rows
            .first()
            .ok_or(RegistryError::Corrupt("retire returned no row"))?
            .try_get(0)
            .map_err(db)?;
        u64::try_from(released).map_err(|_| RegistryError::Corrupt("negative count"))
    }

    fn remove(&self, ids: &[SessionId], me: NodeId) -> Result<u64, RegistryError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list: Vec<&[u8]> = ids.iter().map(|i| &i.0[..]).collect();
        let rows = self.rows(
            "DELETE FROM xtt_sessions WHERE session_id = ANY($1) AND owner = $2 RETURNING 1",
            &[(&list, Type::BYTEA_ARRAY), (&me.0, Type::INT8)],
        )?;
        Ok(rows.len() as u64)
    }

    fn sweep(&self, now: UnixMillis, idle_ms: u64) -> Result<u64, RegistryError> {
        let idle_before = now
            .0
            .saturating_sub(i64::try_from(idle_ms).unwrap_or(i64::MAX));
        let cookies_before = UnixTime(now.secs().0.saturating_sub(COOKIE_SWEEP_MARGIN_SECS));
        // Data-modifying WITH clauses all run, read or not: one statement, one round trip. A
        // dead owner's session is idle from the later of its last write and the owner's lease
        // end (an owner does not write the row for every record; see the SQLite backend).
        let rows = self.rows(
            "WITH gone AS (
                 DELETE FROM xtt_sessions s
                  WHERE s.expires_at <= $1
                     OR (s.owner IS NULL AND s.last_active < $2)
                     OR (s.owner IS NOT NULL
                         AND NOT EXISTS (SELECT 1 FROM xtt_nodes n
                                          WHERE n.node_id = s.owner AND n.alive_until > $3)
                         AND GREATEST(s.last_active, coalesce(
                               (SELECT n.alive_until FROM xtt_nodes n
                                 WHERE n.node_id = s.owner), 0)) < $2)
                 RETURNING 1),
             old_cookies AS (
                 DELETE FROM xtt_session_cookies WHERE expires_at < $4)
             SELECT count(*) FROM gone",
            &[
                (&time_to_sql(now.secs()), Type::INT8),
                (&idle_before, Type::INT8),
                (&now.0, Type::INT8),
                (&time_to_sql(cookies_before), Type::INT8),
            ],
        )?;
        let n: i64 = rows
            .first()
            .ok_or(RegistryError::Corrupt("no count"))?
            .try_get(0)
            .map_err(db)?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt("negative count"))
    }

    fn session_count(&self) -> Result<u64, RegistryError> {
        let rows = self.rows("SELECT count(*) FROM xtt_sessions", &[])?;
        let n: i64 = rows
            .first()
            .ok_or(RegistryError::Corrupt("no count"))?
            .try_get(0)
            .map_err(db)?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt("negative count"))
    }

    /// Reads the schema version: a node started before a newer xtt migrated the session tables
    /// learns it here.
    fn ping(&self) -> Result<(), RegistryError> {
        checked_schema_version(&mut *probe_connection(&self.pool)?).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use rand_core::{OsRng, RngCore};

    use super::*;

    /// A database of its own on the test server (`XTT_TEST_POSTGRES_URL`, set by
    /// scripts/test.sh): the session tables are migrated per database.
    fn fresh_database() -> Config {
        let Ok(url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
            panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
        };
        let mut config: Config = url.parse().unwrap();
        let mut admin = config.connect(postgres::NoTls).unwrap();
        let name = format!("xtt_test_sessions_{:016x}", OsRng.next_u64());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        config.dbname(&name);
        config
    }

    /// Another node (a newer xtt) migrates the shared session tables after this store opened
    /// them: the health probe, `Ok` before, says so.
    #[test]
    fn the_probe_reports_session_tables_migrated_after_open() {
        let config = fresh_database();
        let store = PostgresSessionStore::from_config(config.clone(), 1).unwrap();
        store.ping().unwrap();
        let supported = i64::try_from(MIGRATIONS.len()).unwrap();
        let mut newer = config.connect(postgres::NoTls).unwrap();
        newer
            .execute(
                "INSERT INTO xtt_session_schema_version (version) VALUES ($1)",
                &[&(supported + 1)],
            )
            .unwrap();
        crate::sessions::assert_schema_too_new(store.ping(), supported + 1, supported);
        assert!(matches!(
            PostgresSessionStore::from_config(config, 1),
            Err(RegistryError::SchemaTooNew { .. })
        ));
    }
}
