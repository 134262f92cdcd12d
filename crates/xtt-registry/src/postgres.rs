//! The PostgreSQL backend: several server nodes share one database.
//!
//! # Client and pool
//!
//! The [`Registry`] trait is synchronous and the server already calls it from blocking threads
//! (its group-commit writer thread, `spawn_blocking`), so this backend uses the blocking
//! [`postgres`] client with an [`r2d2`] pool: a checkout blocks the calling thread (with a
//! timeout), which is exactly the caller's model. `tokio-postgres` with `deadpool-postgres` would
//! need a runtime of our own inside a blocking adapter, for no gain here. Checkouts are **not**
//! tested with a query (`test_on_check_out(false)`), since that would cost a round trip per call;
//! a connection the server closed is noticed by the client (`is_closed`) and discarded by the
//! pool, and a call that fails on a dead connection returns [`RegistryError::Database`] (the
//! handshake fails; the device retries).
//!
//! # Round trips
//!
//! * [`Registry::register_all`] — the only call a handshake makes (groups are cached by the
//!   server) — is **one round trip** whatever the batch size: one statement,
//!   `SELECT … FROM xtt_register_batch($1, …)`, sent with [`postgres::Client::query_typed`]
//!   (Parse, Bind, Execute and Sync in one flight, no separate prepare). The statement runs in
//!   autocommit, so it *is* the transaction: all of the batch or none of it, committed and
//!   flushed before the reply arrives (pooled connections never run with
//!   `synchronous_commit = off`: a server configured so is overridden per connection). So a handshake
//!   costs one database round trip (the bound asked for is two).
//! * Every statement is sent the same way, so [`Registry::delete_identity`] (one statement) and
//!   each read are one round trip too; [`Registry::add_group`] is one, or two when the group
//!   already exists. (Named prepared statements would cost a prepare round trip, plus a Close
//!   message when dropped.) A pool checkout costs none.
//!
//! The test `a_handshake_costs_one_round_trip_whatever_the_batch` counts them, by relaying the
//! connection through a socket that counts the server's `ReadyForQuery` messages.
//!
//! # Uniqueness and never reusing ClientIDs
//!
//! Every ClientID ever assigned has a row in `client_ids` (primary key), which is never deleted:
//! retiring an identity deletes its `identities` row and stamps `retired_at`. So "unique across
//! all nodes" and "never reused" are one database constraint: assigning an id *is* inserting it
//! into `client_ids` (`ON CONFLICT DO NOTHING` tells whether it was free). Concurrent inserts of
//! one id from two nodes serialise on the primary key: the second waits for the first to commit
//! and then sees the conflict. A device is unique per `(group_id, pseudonym)`; if two nodes race
//! to register the same new device, the loser gives back the id it claimed in its own
//! transaction (it was never handed out) and takes the winner's as a returning device.
//!
//! The batch logic lives in a PL/pgSQL function created by the migrations, applying requests in
//! order exactly like the SQLite backend. Fresh ids are drawn here, from the OS random source
//! ([`FRESH_ID_ATTEMPTS`] candidates per request), not by the database.
//!
//! # Migrations
//!
//! `xtt_schema_version` records every applied migration. At open, each missing migration runs
//! in its own transaction holding a transaction-level advisory lock, so nodes starting together
//! migrate once. A database newer than this code is refused ([`RegistryError::SchemaTooNew`]).
//!
//! # TLS
//!
//! `sslmode=require|verify-ca|verify-full` and `sslrootcert=PATH` in the URL select TLS with
//! rustls (ring); see [`crate::pg_tls`] for what each mode checks. Without `sslmode` the
//! connection is plain: use a unix socket or a trusted network.

use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::Config;
use r2d2_postgres::PostgresConnectionManager;
use rand_core::{OsRng, RngCore};
use tokio_postgres_rustls::MakeRustlsConnect;
use xtt_proto::daa::GroupId;
use xtt_proto::identity::CLIENT_ID_LEN;
use xtt_proto::{ClientId, UnixTime};

use crate::sqlite::{fixed, identity_from_row, time_to_sql, FRESH_ID_ATTEMPTS, IDENTITY_COLUMNS};
use crate::{
    Assigned, CookieUse, GroupRecord, IdentityRecord, Refusal, Registration, Registry,
    RegistryError,
};

/// The schema version this code writes (the highest row of `xtt_schema_version`).
pub const POSTGRES_SCHEMA_VERSION: i64 = 3;

/// Connections in the pool unless the caller asks otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// Serialises migrations between nodes (`pg_advisory_xact_lock` key, "xttregst" in ASCII).
const MIGRATION_LOCK: i64 = 0x7874_7472_6567_7374;

/// SQLSTATE the batch function raises when every candidate ClientID was already used.
const SQLSTATE_IDS_EXHAUSTED: &str = "XT001";

/// Migrations in order; entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: groups, every ClientID ever assigned, live identities, and the batch registration.
    r"
CREATE TABLE daa_groups (
    group_id  bytea PRIMARY KEY CHECK (length(group_id) = 32),
    gpk       bytea NOT NULL,
    basename  bytea NOT NULL
);
-- Never deleted: an id in here is taken forever (unique across nodes, never reused).
CREATE TABLE client_ids (
    client_id   bytea PRIMARY KEY CHECK (length(client_id) = 16),
    assigned_at bigint NOT NULL,
    retired_at  bigint
);
CREATE TABLE identities (
    client_id    bytea PRIMARY KEY REFERENCES client_ids (client_id),
    group_id     bytea NOT NULL REFERENCES daa_groups (group_id),
    pseudonym    bytea NOT NULL CHECK (length(pseudonym) = 65),
    longterm_key bytea NOT NULL CHECK (length(longterm_key) = 65),
    first_seen   bigint NOT NULL,
    last_seen    bigint NOT NULL,
    UNIQUE (group_id, pseudonym)
);

-- Registers a batch in order; one output row per request, in request order.
-- outcome: 0 new device, 1 returning device, 2 unknown group, 3 requested id taken,
--          4 device holds another id (assigned_id = the id it holds).
CREATE FUNCTION xtt_register_batch(
    p_group_ids bytea[], p_pseudonyms bytea[], p_requested bytea[], p_keys bytea[],
    p_nows bigint[], p_candidates bytea[])
RETURNS TABLE (outcome smallint, assigned_id bytea)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_held bytea;
    v_id bytea;
    v_got bytea;
    v_done boolean;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_group_ids, 1), 0) LOOP
        IF NOT EXISTS (SELECT 1 FROM daa_groups g WHERE g.group_id = p_group_ids[i]) THEN
            outcome := 2; assigned_id := NULL; RETURN NEXT; CONTINUE;
        END IF;
        v_done := false;
        -- Twice at most: another node may register this very device between our look-up and
        -- our insert; the second pass then finds it.
        FOR pass IN 1 .. 2 LOOP
            SELECT d.client_id INTO v_held FROM identities d
             WHERE d.group_id = p_group_ids[i] AND d.pseudonym = p_pseudonyms[i]
               FOR UPDATE;
            IF FOUND THEN
                IF p_requested[i] IS NOT NULL AND p_requested[i] <> v_held THEN
                    outcome := 4; assigned_id := v_held;
                ELSE
                    UPDATE identities d
                       SET longterm_key = p_keys[i], last_seen = greatest(d.last_seen, p_nows[i])
                     WHERE d.client_id = v_held;
                    outcome := 1; assigned_id := v_held;
                END IF;
                v_done := true;
                EXIT;
            END IF;
            v_id := NULL;
            IF p_requested[i] IS NOT NULL THEN
                INSERT INTO client_ids AS c (client_id, assigned_at)
                     VALUES (p_requested[i], p_nows[i])
                ON CONFLICT DO NOTHING RETURNING c.client_id INTO v_id;
                IF v_id IS NULL THEN
                    outcome := 3; assigned_id := p_requested[i]; v_done := true;
                    EXIT;
                END IF;
            ELSE
                FOR k IN 0 .. coalesce(length(p_candidates[i]), 0) / 16 - 1 LOOP
                    INSERT INTO client_ids AS c (client_id, assigned_at)
                         VALUES (substring(p_candidates[i] FROM k * 16 + 1 FOR 16), p_nows[i])
                    ON CONFLICT DO NOTHING RETURNING c.client_id INTO v_id;
                    EXIT WHEN v_id IS NOT NULL;
                END LOOP;
                IF v_id IS NULL THEN
                    RAISE EXCEPTION 'every candidate ClientID is already used'
                        USING ERRCODE = 'XT001';
                END IF;
            END IF;
            INSERT INTO identities AS d
                   (client_id, group_id, pseudonym, longterm_key, first_seen, last_seen)
            VALUES (v_id, p_group_ids[i], p_pseudonyms[i], p_keys[i], p_nows[i], p_nows[i])
            ON CONFLICT (group_id, pseudonym) DO NOTHING
            RETURNING d.client_id INTO v_got;
            IF v_got IS NOT NULL THEN
                outcome := 0; assigned_id := v_id; v_done := true;
                EXIT;
            END IF;
            -- Lost the race for this device: the id was claimed by this transaction only and
            -- never handed out, so giving it back reuses nothing.
            DELETE FROM client_ids c WHERE c.client_id = v_id;
        END LOOP;
        IF NOT v_done THEN
            RAISE EXCEPTION 'device registration kept racing';
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
",
    // v2: handshake cookies accepted once deployment-wide, claimed in the registration's own
    // statement (so still one round trip per handshake).
    r"
CREATE TABLE xtt_used_cookies (
    cookie_id  bytea PRIMARY KEY CHECK (length(cookie_id) = 13),
    expires_at bigint NOT NULL
);
CREATE INDEX xtt_used_cookies_by_expiry ON xtt_used_cookies (expires_at);

-- Claims each request's cookie, then registers the requests whose cookie was fresh (in order,
-- through xtt_register_batch); a request whose cookie was already used gets outcome 5.
-- Two nodes claiming one cookie serialise on the primary key: the second waits for the first
-- to commit and then sees the conflict.
CREATE FUNCTION xtt_register_batch_once(
    p_group_ids bytea[], p_pseudonyms bytea[], p_requested bytea[], p_keys bytea[],
    p_nows bigint[], p_candidates bytea[], p_cookies bytea[], p_cookie_expiry bigint[])
RETURNS TABLE (outcome smallint, assigned_id bytea)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    n int := coalesce(array_length(p_group_ids, 1), 0);
    v_fresh boolean[] := '{}';
    v_got bytea;
    g bytea[] := '{}'; ps bytea[] := '{}'; rq bytea[] := '{}'; ks bytea[] := '{}';
    ns bigint[] := '{}'; cs bytea[] := '{}';
    o_out smallint[]; o_ids bytea[];
    j int := 0;
BEGIN
    IF coalesce(array_length(p_cookies, 1), 0) <> n THEN
        RAISE EXCEPTION 'one cookie per registration';
    END IF;
    FOR i IN 1 .. n LOOP
        v_got := NULL;
        INSERT INTO xtt_used_cookies AS u (cookie_id, expires_at)
             VALUES (p_cookies[i], p_cookie_expiry[i])
        ON CONFLICT DO NOTHING RETURNING u.cookie_id INTO v_got;
        v_fresh := array_append(v_fresh, v_got IS NOT NULL);
        IF v_got IS NOT NULL THEN
            g := array_append(g, p_group_ids[i]);
            ps := array_append(ps, p_pseudonyms[i]);
            rq := array_append(rq, p_requested[i]);
            ks := array_append(ks, p_keys[i]);
            ns := array_append(ns, p_nows[i]);
            cs := array_append(cs, p_candidates[i]);
        END IF;
    END LOOP;
    SELECT array_agg(r.outcome ORDER BY r.k), array_agg(r.assigned_id ORDER BY r.k)
      INTO o_out, o_ids
      FROM xtt_register_batch(g, ps, rq, ks, ns, cs) WITH ORDINALITY AS r(outcome, assigned_id, k);
    FOR i IN 1 .. n LOOP
        IF v_fresh[i] THEN
            j := j + 1;
            outcome := o_out[j]; assigned_id := o_ids[j];
        ELSE
            outcome := 5; assigned_id := NULL;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
",
    // v3: a requested ClientID found taken is looked up once more before it is refused: a
    // concurrent registration of the same device (two nodes) may have just taken it for it.
    r"
CREATE OR REPLACE FUNCTION xtt_register_batch(
    p_group_ids bytea[], p_pseudonyms bytea[], p_requested bytea[], p_keys bytea[],
    p_nows bigint[], p_candidates bytea[])
RETURNS TABLE (outcome smallint, assigned_id bytea)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_held bytea;
    v_id bytea;
    v_got bytea;
    v_done boolean;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_group_ids, 1), 0) LOOP
        IF NOT EXISTS (SELECT 1 FROM daa_groups g WHERE g.group_id = p_group_ids[i]) THEN
            outcome := 2; assigned_id := NULL; RETURN NEXT; CONTINUE;
        END IF;
        v_done := false;
        -- Twice at most: another node may register this very device between our look-up and
        -- our insert; the second pass then finds it.
        FOR pass IN 1 .. 2 LOOP
            SELECT d.client_id INTO v_held FROM identities d
             WHERE d.group_id = p_group_ids[i] AND d.pseudonym = p_pseudonyms[i]
               FOR UPDATE;
            IF FOUND THEN
                IF p_requested[i] IS NOT NULL AND p_requested[i] <> v_held THEN
                    outcome := 4; assigned_id := v_held;
                ELSE
                    UPDATE identities d
                       SET longterm_key = p_keys[i], last_seen = greatest(d.last_seen, p_nows[i])
                     WHERE d.client_id = v_held;
                    outcome := 1; assigned_id := v_held;
                END IF;
                v_done := true;
                EXIT;
            END IF;
            v_id := NULL;
            IF p_requested[i] IS NOT NULL THEN
                INSERT INTO client_ids AS c (client_id, assigned_at)
                     VALUES (p_requested[i], p_nows[i])
                ON CONFLICT DO NOTHING RETURNING c.client_id INTO v_id;
                IF v_id IS NULL THEN
                    -- Taken, perhaps by another node registering this very device with this
                    -- id a moment ago: the second pass looks for the device again and, if it
                    -- is there now, answers it as a returning device with that id.
                    IF pass = 1 THEN
                        CONTINUE;
                    END IF;
                    outcome := 3; assigned_id := p_requested[i]; v_done := true;
                    EXIT;
                END IF;
            ELSE
                FOR k IN 0 .. coalesce(length(p_candidates[i]), 0) / 16 - 1 LOOP
                    INSERT INTO client_ids AS c (client_id, assigned_at)
                         VALUES (substring(p_candidates[i] FROM k * 16 + 1 FOR 16), p_nows[i])
                    ON CONFLICT DO NOTHING RETURNING c.client_id INTO v_id;
                    EXIT WHEN v_id IS NOT NULL;
                END LOOP;
                IF v_id IS NULL THEN
                    RAISE EXCEPTION 'every candidate ClientID is already used'
                        USING ERRCODE = 'XT001';
                END IF;
            END IF;
            INSERT INTO identities AS d
                   (client_id, group_id, pseudonym, longterm_key, first_seen, last_seen)
            VALUES (v_id, p_group_ids[i], p_pseudonyms[i], p_keys[i], p_nows[i], p_nows[i])
            ON CONFLICT (group_id, pseudonym) DO NOTHING
            RETURNING d.client_id INTO v_got;
            IF v_got IS NOT NULL THEN
                outcome := 0; assigned_id := v_id; v_done := true;
                EXIT;
            END IF;
            -- Lost the race for this device: the id was claimed by this transaction only and
            -- never handed out, so giving it back reuses nothing.
            DELETE FROM client_ids c WHERE c.client_id = v_id;
        END LOOP;
        IF NOT v_done THEN
            RAISE EXCEPTION 'device registration kept racing';
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
",
];

pub(crate) type Manager = PostgresConnectionManager<MakeRustlsConnect>;

/// A pool of `pool_size` connections (durable commits on each) after one direct connection has
/// run `migrate`: its error says why (refused, authentication, unknown database), where the pool
/// would only report a timeout. Shared by the registry and the session store.
pub(crate) fn connect_pool(
    mut config: Config,
    tls: MakeRustlsConnect,
    pool_size: u32,
    migrate: fn(&mut postgres::Client) -> Result<(), RegistryError>,
) -> Result<r2d2::Pool<Manager>, RegistryError> {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let mut first = config.connect(tls.clone()).map_err(|e| {
        RegistryError::Database(format!("cannot connect to PostgreSQL: {}", describe(&e)))
    })?;
    migrate(&mut first)?;
    drop(first);
    r2d2::Pool::builder()
        .max_size(pool_size.max(1))
        .min_idle(Some(1))
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(DurableCommits))
        .build(PostgresConnectionManager::new(config, tls))
        .map_err(pool_err)
}
type Pool = r2d2::Pool<Manager>;

/// The PostgreSQL registry: a pool of connections to one database.
#[derive(Clone)]
pub struct PostgresRegistry {
    pool: Pool,
}

impl core::fmt::Debug for PostgresRegistry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The connection parameters may hold a password: never printed.
        f.debug_struct("PostgresRegistry")
            .field("pool", &self.pool.state())
            .finish()
    }
}

fn db(e: postgres::Error) -> RegistryError {
    if e.code().map(|c| c.code()) == Some(SQLSTATE_IDS_EXHAUSTED) {
        return RegistryError::IdSpaceExhausted;
    }
    RegistryError::Database(describe(&e))
}

/// The client's own `Display` says only "db error" for server errors: add the server's
/// message, or the underlying I/O error.
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(d) = e.as_db_error() {
        return format!("{} {}: {}", d.severity(), d.code().code(), d.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

pub(crate) fn pool_err(e: r2d2::Error) -> RegistryError {
    RegistryError::Database(format!("PostgreSQL connection pool: {e}"))
}

impl PostgresRegistry {
    /// Connects to `url` (`postgres://user@host/db`, `postgresql:///db?host=/run/postgresql`,
    /// or the `key=value` form), with [`DEFAULT_POOL_SIZE`] connections, and migrates the schema.
    /// `sslmode` and `sslrootcert` select TLS ([`crate::pg_tls`]).
    pub fn open(url: &str) -> Result<Self, RegistryError> {
        Self::open_with_pool(url, DEFAULT_POOL_SIZE)
    }

    /// [`Self::open`] with `pool_size` connections.
    pub fn open_with_pool(url: &str, pool_size: u32) -> Result<Self, RegistryError> {
        let target = crate::pg_tls::parse_url(url)?;
        Self::connect(target.config, target.tls, pool_size)
    }

    /// Connects with an explicit configuration and pool size, and migrates the schema. TLS is
    /// used only if `config` says `SslMode::Require`, and then without checking the server's
    /// certificate (libpq's `require`); use [`Self::open`] with `sslmode=verify-full` for that.
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

    /// One statement for the whole batch (one round trip); with `cookies`, each request first
    /// claims its cookie in the same statement.
    fn register_batch(
        &self,
        batch: &[Registration],
        cookies: Option<&[CookieUse]>,
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut group_ids = Vec::with_capacity(batch.len());
        let mut pseudonyms = Vec::with_capacity(batch.len());
        let mut requested = Vec::with_capacity(batch.len());
        let mut keys = Vec::with_capacity(batch.len());
        let mut nows = Vec::with_capacity(batch.len());
        let mut candidates = Vec::with_capacity(batch.len());
        for r in batch {
            group_ids.push(&r.group_id.0[..]);
            pseudonyms.push(&r.pseudonym.0[..]);
            keys.push(&r.longterm_key.as_bytes()[..]);
            nows.push(time_to_sql(r.now));
            if r.requested_id.is_null() {
                requested.push(None);
                candidates.push(fresh_candidates());
            } else {
                requested.push(Some(&r.requested_id.0[..]));
                candidates.push(Vec::new());
            }
        }
        let cookie_ids: Vec<&[u8]> = cookies
            .unwrap_or_default()
            .iter()
            .map(|c| &c.id[..])
            .collect();
        let cookie_expiry: Vec<i64> = cookies
            .unwrap_or_default()
            .iter()
            .map(|c| time_to_sql(c.expires_at))
            .collect();
        let params: [(&(dyn ToSql + Sync), Type); 8] = [
            (&group_ids, Type::BYTEA_ARRAY),
            (&pseudonyms, Type::BYTEA_ARRAY),
            (&requested, Type::BYTEA_ARRAY),
            (&keys, Type::BYTEA_ARRAY),
            (&nows, Type::INT8_ARRAY),
            (&candidates, Type::BYTEA_ARRAY),
            (&cookie_ids, Type::BYTEA_ARRAY),
            (&cookie_expiry, Type::INT8_ARRAY),
        ];
        let mut c = self.conn()?;
        // One statement in autocommit: one round trip, one transaction, committed on return.
        let rows = match cookies {
            Some(_) => c.query_typed(
                "SELECT outcome, assigned_id
                   FROM xtt_register_batch_once($1, $2, $3, $4, $5, $6, $7, $8)",
                &params,
            ),
            None => c.query_typed(
                "SELECT outcome, assigned_id FROM xtt_register_batch($1, $2, $3, $4, $5, $6)",
                &params[..6],
            ),
        }
        .map_err(db)?;
        if rows.len() != batch.len() {
            return Err(RegistryError::Corrupt(
                "registration function returned the wrong number of rows",
            ));
        }
        rows.iter()
            .zip(batch)
            .map(|(row, r)| {
                let outcome: i16 = row.try_get(0).map_err(db)?;
                let id = |row: &postgres::Row| -> Result<ClientId, RegistryError> {
                    let v: Option<Vec<u8>> = row.try_get(1).map_err(db)?;
                    let v = v.ok_or(RegistryError::Corrupt("registration returned no ClientID"))?;
                    Ok(ClientId(fixed::<CLIENT_ID_LEN>(v, "ClientID length")?))
                };
                Ok(match outcome {
                    0 => Ok(Assigned {
                        client_id: id(row)?,
                        new_device: true,
                    }),
                    1 => Ok(Assigned {
                        client_id: id(row)?,
                        new_device: false,
                    }),
                    2 => Err(Refusal::UnknownGroup),
                    3 => Err(Refusal::RequestedIdTaken(r.requested_id)),
                    4 => Err(Refusal::DeviceHoldsOtherId {
                        held: id(row)?,
                        requested: r.requested_id,
                    }),
                    5 => Err(Refusal::CookieReplayed),
                    _ => return Err(RegistryError::Corrupt("unknown registration outcome")),
                })
            })
            .collect()
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64, RegistryError> {
        let mut c = self.conn()?;
        let row = c
            .query_typed_one(
                "SELECT coalesce(max(version), 0)::bigint FROM xtt_schema_version",
                &[],
            )
            .map_err(db)?;
        Ok(row.get(0))
    }
}

/// Refuses to run with `synchronous_commit = off` (a commit could be lost after the device got
/// its ClientID): such connections are switched to `on`. One round trip per new connection.
#[derive(Debug)]
pub(crate) struct DurableCommits;

impl r2d2::CustomizeConnection<postgres::Client, postgres::Error> for DurableCommits {
    fn on_acquire(&self, conn: &mut postgres::Client) -> Result<(), postgres::Error> {
        conn.batch_execute(
            "SELECT set_config('synchronous_commit', 'on', false)
              WHERE current_setting('synchronous_commit') = 'off'",
        )
    }
}

/// Brings the schema to [`POSTGRES_SCHEMA_VERSION`]; see the module documentation.
fn migrate(c: &mut postgres::Client) -> Result<(), RegistryError> {
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target =
            i64::try_from(i + 1).map_err(|_| RegistryError::Corrupt("version overflow"))?;
        let mut tx = c.transaction().map_err(db)?;
        // The lock comes first, so nodes starting together do not race on creating the
        // version table either.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS xtt_schema_version (
                 version    bigint PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(db)?;
        let found: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0)::bigint FROM xtt_schema_version",
                &[],
            )
            .map_err(db)?
            .get(0);
        if found > POSTGRES_SCHEMA_VERSION {
            return Err(RegistryError::SchemaTooNew {
                found,
                supported: POSTGRES_SCHEMA_VERSION,
            });
        }
        if found >= target {
            continue; // dropping `tx` rolls back the (empty) transaction
        }
        tx.batch_execute(sql).map_err(db)?;
        tx.execute(
            "INSERT INTO xtt_schema_version (version) VALUES ($1)",
            &[&target],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
    }
    // A database migrated by newer code and no migration left for us to run. (On the
    // connection already held: a pool of one has no second connection to give.)
    let found: i64 = c
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM xtt_schema_version",
            &[],
        )
        .map_err(db)?
        .get(0);
    if found > POSTGRES_SCHEMA_VERSION {
        return Err(RegistryError::SchemaTooNew {
            found,
            supported: POSTGRES_SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn now_unix() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

fn identity_from_pg(row: &postgres::Row) -> Result<IdentityRecord, RegistryError> {
    let get = |i: usize| row.try_get::<_, Vec<u8>>(i).map_err(db);
    let time = |i: usize| row.try_get::<_, i64>(i).map_err(db);
    identity_from_row((get(0)?, get(1)?, get(2)?, get(3)?, time(4)?, time(5)?))
}

impl Registry for PostgresRegistry {
    fn add_group(&self, group: &GroupRecord) -> Result<bool, RegistryError> {
        let mut c = self.conn()?;
        let inserted = c
            .query_typed(
                "INSERT INTO daa_groups (group_id, gpk, basename) VALUES ($1, $2, $3)
                 ON CONFLICT (group_id) DO NOTHING RETURNING 1",
                &[
                    (&&group.group_id.0[..], Type::BYTEA),
                    (&group.gpk, Type::BYTEA),
                    (&group.basename, Type::BYTEA),
                ],
            )
            .map_err(db)?;
        if !inserted.is_empty() {
            return Ok(true);
        }
        let row = c
            .query_typed_one(
                "SELECT gpk, basename FROM daa_groups WHERE group_id = $1",
                &[(&&group.group_id.0[..], Type::BYTEA)],
            )
            .map_err(db)?;
        let (gpk, basename): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
        if gpk == group.gpk && basename == group.basename {
            Ok(false)
        } else {
            Err(RegistryError::GroupConflict(group.group_id))
        }
    }

    fn groups(&self) -> Result<Vec<GroupRecord>, RegistryError> {
        let mut c = self.conn()?;
        let rows = c
            .query_typed(
                "SELECT group_id, gpk, basename FROM daa_groups ORDER BY group_id",
                &[],
            )
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(GroupRecord {
                    group_id: GroupId(fixed(r.try_get(0).map_err(db)?, "group id length")?),
                    gpk: r.try_get(1).map_err(db)?,
                    basename: r.try_get(2).map_err(db)?,
                })
            })
            .collect()
    }

    fn group(&self, group_id: &GroupId) -> Result<Option<GroupRecord>, RegistryError> {
        let mut c = self.conn()?;
        let row = c
            .query_typed_opt(
                "SELECT gpk, basename FROM daa_groups WHERE group_id = $1",
                &[(&&group_id.0[..], Type::BYTEA)],
            )
            .map_err(db)?;
        row.map(|r| {
            Ok(GroupRecord {
                group_id: *group_id,
                gpk: r.try_get(0).map_err(db)?,
                basename: r.try_get(1).map_err(db)?,
            })
        })
        .transpose()
    }

    fn register_all(
        &self,
        batch: &[Registration],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        self.register_batch(batch, None)
    }

    fn register_all_once(
        &self,
        batch: &[Registration],
        cookies: &[CookieUse],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        crate::check_cookie_count(batch, cookies)?;
        self.register_batch(batch, Some(cookies))
    }

    fn schema_version(&self) -> Result<i64, RegistryError> {
        PostgresRegistry::schema_version(self)
    }

    fn ping(&self) -> Result<(), RegistryError> {
        // A short checkout: a dead server fails fast instead of after the pool's 10 s.
        let mut c = self
            .pool
            .get_timeout(Duration::from_secs(2))
            .map_err(pool_err)?;
        c.query_typed("SELECT 1", &[]).map_err(db)?;
        Ok(())
    }

    fn claim_cookie(&self, cookie: &CookieUse) -> Result<bool, RegistryError> {
        let mut c = self.conn()?;
        let rows = c
            .query_typed(
                "INSERT INTO xtt_used_cookies (cookie_id, expires_at) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING RETURNING 1",
                &[
                    (&&cookie.id[..], Type::BYTEA),
                    (&time_to_sql(cookie.expires_at), Type::INT8),
                ],
            )
            .map_err(db)?;
        Ok(!rows.is_empty())
    }

    fn sweep_used_cookies(&self, now: UnixTime) -> Result<u64, RegistryError> {
        let mut c = self.conn()?;
        let n = c
            .execute_typed(
                "DELETE FROM xtt_used_cookies WHERE expires_at < $1",
                &[(&crate::sweep_before(now), Type::INT8)],
            )
            .map_err(db)?;
        Ok(n)
    }

    fn identity(&self, client_id: &ClientId) -> Result<Option<IdentityRecord>, RegistryError> {
        let mut c = self.conn()?;
        let row = c
            .query_typed_opt(
                &format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE client_id = $1"),
                &[(&&client_id.0[..], Type::BYTEA)],
            )
            .map_err(db)?;
        row.as_ref().map(identity_from_pg).transpose()
    }

    fn identities(&self) -> Result<Vec<IdentityRecord>, RegistryError> {
        let mut c = self.conn()?;
        let rows = c
            .query_typed(&format!("SELECT {IDENTITY_COLUMNS} FROM identities"), &[])
            .map_err(db)?;
        rows.iter().map(identity_from_pg).collect()
    }

    fn identity_count(&self) -> Result<u64, RegistryError> {
        let mut c = self.conn()?;
        let n: i64 = c
            .query_typed_one("SELECT count(*) FROM identities", &[])
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        u64::try_from(n).map_err(|_| RegistryError::Corrupt("negative count"))
    }

    fn delete_identity(&self, client_id: &ClientId) -> Result<bool, RegistryError> {
        let mut c = self.conn()?;
        // One statement, hence one transaction: the identity goes, its id stays taken.
        let rows = c
            .query_typed(
                "WITH gone AS (DELETE FROM identities WHERE client_id = $1 RETURNING client_id)
                 UPDATE client_ids SET retired_at = $2
                  WHERE client_id IN (SELECT client_id FROM gone) RETURNING 1",
                &[
                    (&&client_id.0[..], Type::BYTEA),
                    (&time_to_sql(now_unix()), Type::INT8),
                ],
            )
            .map_err(db)?;
        Ok(!rows.is_empty())
    }
}

/// [`FRESH_ID_ATTEMPTS`] random 16-byte candidates, concatenated; the database takes the first
/// one never used. The all-zero id (`ClientId::NULL`) is never a candidate.
fn fresh_candidates() -> Vec<u8> {
    let mut out = Vec::with_capacity(FRESH_ID_ATTEMPTS * CLIENT_ID_LEN);
    while out.len() < FRESH_ID_ATTEMPTS * CLIENT_ID_LEN {
        let mut id = [0u8; CLIENT_ID_LEN];
        OsRng.fill_bytes(&mut id);
        if id != ClientId::NULL.0 {
            out.extend_from_slice(&id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use r2d2::CustomizeConnection;

    use super::*;

    #[test]
    fn pooled_connections_never_commit_asynchronously() {
        let Ok(url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
            panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
        };
        let mut config: Config = url.parse().unwrap();
        // As if the role or database were configured with synchronous_commit = off.
        config.options("-c synchronous_commit=off");
        let mut c = config.connect(postgres::NoTls).unwrap();
        let show = |c: &mut postgres::Client| -> String {
            c.query_one("SHOW synchronous_commit", &[]).unwrap().get(0)
        };
        assert_eq!(show(&mut c), "off");
        DurableCommits.on_acquire(&mut c).unwrap();
        assert_eq!(show(&mut c), "on");
        // A stronger setting is left alone.
        c.batch_execute("SET synchronous_commit = remote_apply")
            .unwrap();
        DurableCommits.on_acquire(&mut c).unwrap();
        assert_eq!(show(&mut c), "remote_apply");
    }
}
