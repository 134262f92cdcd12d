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
//!   each read are one round trip too, except the export [`Registry::identities`] (four: see
//!   "Bounded calls"); [`Registry::add_group`] is one, or two when the group already exists.
//!   (Named prepared statements would cost a prepare round trip, plus a Close message when
//!   dropped.) A pool checkout costs none.
//!
//! The test `a_handshake_costs_one_round_trip_whatever_the_batch` counts them, by relaying the
//! connection through a socket that counts the server's `ReadyForQuery` messages.
//!
//! # Bounded calls
//!
//! Every registration goes through one writer thread per server node, so a call that never
//! returns would stall all provisioning on that node. Each call is therefore bounded, and a
//! call that runs into a bound fails with [`RegistryError::Database`] (the batch's handshakes
//! fail; the devices retry):
//!
//! * on every pooled connection (one round trip when the pool opens it, see [`SessionDefaults`]),
//!   `statement_timeout` is at most [`STATEMENT_TIMEOUT`] and `lock_timeout` at most
//!   [`LOCK_TIMEOUT`] (a smaller value configured for the role or database is kept). This
//!   catches a lock held elsewhere (a DBA's `LOCK TABLE`, a stuck transaction) and a statement
//!   that runs away. [`Registry::identities`] alone, an export whose size grows with the
//!   registry, lifts the statement bound for its own transaction.
//! * TCP keepalives ([`KEEPALIVES_IDLE`], every [`KEEPALIVES_INTERVAL`], [`KEEPALIVES_RETRIES`]
//!   probes) and `tcp_user_timeout` ([`TCP_USER_TIMEOUT`]) close a connection whose server stopped
//!   answering (a partition, a frozen host) after about 11 s, where the defaults would wait 2
//!   hours. They apply to TCP connections only; over a unix socket the server cannot vanish
//!   that way.
//!
//! Not bounded: a commit waiting for a synchronous standby (`synchronous_standby_names`). The
//! server ends a statement's timeout before it commits, and cancelling that wait would only
//! turn it into a commit that is local to the primary; configure the standbys (e.g. `ANY 1
//! (a, b)`) so that losing one does not stop commits.
//!
//! # Isolation, lock order and retries
//!
//! The batch function relies on READ COMMITTED (each statement sees what other nodes committed
//! before it, which is how a node losing the race for a new device finds the winner's row), so
//! every pooled connection pins it, whatever `default_transaction_isolation` the role or
//! database sets: under REPEATABLE READ that race would fail with a serialization error.
//!
//! Two batches that hold the same devices lock them as they go, so they could deadlock if they
//! met them in opposite orders. A batch is therefore sent sorted by device (group id, then
//! pseudonym), answers put back in the caller's order, and so every batch locks devices, and
//! claims replayed flights' cookies, in one global order. Sorting keeps the meaning of a batch:
//! the requests of one device keep their order, and a batch in which two devices share a
//! requested ClientID or a cookie (which one gets it depends on the order) is sent unsorted.
//! What remains (such a batch; a device whose two handshakes were both replayed) is covered by
//! retrying the whole statement, at most [`BATCH_ATTEMPTS`] times in all, on a serialization
//! failure (`40001`) or a deadlock (`40P01`): the server rolled the failed statement back
//! entirely (its cookie claims, its ids, its identities), so the retry registers and claims
//! everything once, and only the answers of the attempt that committed are returned.
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
//! migrate once. A database newer than this code is refused ([`RegistryError::SchemaTooNew`]);
//! one that a newer node migrates later, while this one runs, makes the health probe
//! ([`Registry::ping`]) fail with the same error.
//!
//! # TLS
//!
//! `sslmode=require|verify-ca|verify-full` and `sslrootcert=PATH` in the URL select TLS with
//! rustls (ring); see [`crate::pg_tls`] for what each mode checks. Without `sslmode` the
//! connection is plain: use a unix socket or a trusted network.

use std::time::{Duration, Instant};

use postgres::error::SqlState;
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

/// Longest a statement on a pooled connection may run (its `statement_timeout`). The server
/// gives a handshake 15 s (`handshake_timeout_ms`), and all of a node's registrations wait for
/// one writer: a batch still running after 10 s will not answer its devices in time, and every
/// handshake queued behind it would time out too. So it is failed, leaving a few seconds for the
/// batches queued behind it.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a statement on a pooled connection waits for one lock (its `lock_timeout`). Locks
/// taken by the registrations themselves are held for milliseconds; a wait this long means a
/// lock held by something else (a DBA's `LOCK TABLE`, a transaction left open), which is
/// reported as such ("lock timeout") well before [`STATEMENT_TIMEOUT`].
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle time before the first TCP keepalive probe (the default is 2 hours).
pub(crate) const KEEPALIVES_IDLE: Duration = Duration::from_secs(5);
/// Time between keepalive probes.
pub(crate) const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(2);
/// Unanswered keepalive probes after which the connection is closed.
pub(crate) const KEEPALIVES_RETRIES: u32 = 3;
/// Longest sent data may stay unacknowledged (also ending the keepalive probes): a server that
/// stopped answering is given up after about 11 s (5 s idle, then probes every 2 s), shorter
/// than a handshake's 15 s, whether a request or a reply was in flight.
pub(crate) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at most, in all, of a batch that failed with a serialization failure or a deadlock.
pub(crate) const BATCH_ATTEMPTS: u32 = 3;

/// No new attempt starts this long after the first one did: the handshakes waiting for the
/// batch would time out before another attempt could answer them.
const RETRY_WINDOW: Duration = Duration::from_secs(5);

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

/// A pool of `pool_size` connections ([`SessionDefaults`] on each, network bounds from
/// [`bound_network`]) after one direct connection has run `migrate`: its error says why
/// (refused, authentication, unknown database), where the pool would only report a timeout.
/// Shared by the registry and the session store.
pub(crate) fn connect_pool(
    mut config: Config,
    tls: MakeRustlsConnect,
    pool_size: u32,
    migrate: fn(&mut postgres::Client) -> Result<(), RegistryError>,
) -> Result<r2d2::Pool<Manager>, RegistryError> {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    bound_network(&mut config);
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
        .connection_customizer(Box::new(SessionDefaults))
        .build(PostgresConnectionManager::new(config, tls))
        .map_err(pool_err)
}

/// Turns TCP keepalives on and bounds how long a silent server is waited for: each setting is
/// at most [`KEEPALIVES_IDLE`], [`KEEPALIVES_INTERVAL`], [`KEEPALIVES_RETRIES`] and
/// [`TCP_USER_TIMEOUT`] (a smaller one from the URL is kept). Keepalives cannot be turned off.
pub(crate) fn bound_network(config: &mut Config) {
    config.keepalives(true);
    if config.get_keepalives_idle() > KEEPALIVES_IDLE {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config
        .get_keepalives_interval()
        .is_none_or(|d| d > KEEPALIVES_INTERVAL)
    {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
    if config
        .get_keepalives_retries()
        .is_none_or(|n| n > KEEPALIVES_RETRIES)
    {
        config.keepalives_retries(KEEPALIVES_RETRIES);
    }
    // Zero is the system default (no limit).
    if config
        .get_tcp_user_timeout()
        .is_none_or(|d| d.is_zero() || *d > TCP_USER_TIMEOUT)
    {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
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

/// How long a health probe waits for a pooled connection: a dead server fails the probe fast
/// instead of after the pool's 10 s.
const PROBE_CHECKOUT: Duration = Duration::from_secs(2);

/// A connection for a health probe (the registry's or the session store's), checked out within
/// [`PROBE_CHECKOUT`].
pub(crate) fn probe_connection(
    pool: &r2d2::Pool<Manager>,
) -> Result<r2d2::PooledConnection<Manager>, RegistryError> {
    pool.get_timeout(PROBE_CHECKOUT).map_err(pool_err)
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
    /// claims its cookie in the same statement. Sent in [`lock_order`], retried as the module
    /// documentation says, answered in the caller's order.
    fn register_batch(
        &self,
        batch: &[Registration],
        cookies: Option<&[CookieUse]>,
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let order = lock_order(batch, cookies);
        let mut group_ids = Vec::with_capacity(batch.len());
        let mut pseudonyms = Vec::with_capacity(batch.len());
        let mut requested = Vec::with_capacity(batch.len());
        let mut keys = Vec::with_capacity(batch.len());
        let mut nows = Vec::with_capacity(batch.len());
        let mut candidates = Vec::with_capacity(batch.len());
        let mut cookie_ids: Vec<&[u8]> = Vec::new();
        let mut cookie_expiry: Vec<i64> = Vec::new();
        for &i in &order {
            let r = &batch[i];
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
            if let Some(c) = cookies.and_then(|c| c.get(i)) {
                cookie_ids.push(&c.id[..]);
                cookie_expiry.push(time_to_sql(c.expires_at));
            }
        }
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
        // A retried attempt sends the same statement again (the same candidate ids too: the
        // failed attempt's were rolled back with it).
        let rows = with_retries(
            || match cookies {
                Some(_) => c.query_typed(
                    "SELECT outcome, assigned_id
                       FROM xtt_register_batch_once($1, $2, $3, $4, $5, $6, $7, $8)",
                    &params,
                ),
                None => c.query_typed(
                    "SELECT outcome, assigned_id FROM xtt_register_batch($1, $2, $3, $4, $5, $6)",
                    &params[..6],
                ),
            },
            is_transient,
            retry_pause,
        )
        .map_err(db)?;
        if rows.len() != batch.len() {
            return Err(RegistryError::Corrupt(
                "registration function returned the wrong number of rows",
            ));
        }
        let mut out = vec![None; batch.len()];
        for (row, &i) in rows.iter().zip(&order) {
            let r = &batch[i];
            let outcome: i16 = row.try_get(0).map_err(db)?;
            let id = |row: &postgres::Row| -> Result<ClientId, RegistryError> {
                let v: Option<Vec<u8>> = row.try_get(1).map_err(db)?;
                let v = v.ok_or(RegistryError::Corrupt("registration returned no ClientID"))?;
                Ok(ClientId(fixed::<CLIENT_ID_LEN>(v, "ClientID length")?))
            };
            out[i] = Some(match outcome {
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
            });
        }
        // `order` is a permutation of the batch's indices: every answer is filled in.
        out.into_iter()
            .map(|o| o.ok_or(RegistryError::Corrupt("a registration got no answer")))
            .collect()
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64, RegistryError> {
        let mut c = self.conn()?;
        let row = c.query_typed_one(SCHEMA_VERSION_QUERY, &[]).map_err(db)?;
        Ok(row.get(0))
    }
}

/// The order in which `batch` is sent (indices into it): sorted by device, group id then
/// pseudonym, so that batches lock the devices they share in one order (see the module
/// documentation). The sort is stable: one device's requests keep their order. If two
/// different devices share a requested ClientID or a cookie, the batch's order decides which
/// one gets it, so the batch is sent in its own order.
fn lock_order(batch: &[Registration], cookies: Option<&[CookieUse]>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    let device = |i: usize| (&batch[i].group_id.0, &batch[i].pseudonym.0[..]);
    let mut by_requested = std::collections::HashMap::new();
    let mut by_cookie = std::collections::HashMap::new();
    for (i, r) in batch.iter().enumerate() {
        let requested = &r.requested_id;
        let shared_id = !requested.is_null()
            && *by_requested.entry(requested.0).or_insert(device(i)) != device(i);
        let shared_cookie = cookies
            .and_then(|c| c.get(i))
            .is_some_and(|c| *by_cookie.entry(c.id).or_insert(device(i)) != device(i));
        if shared_id || shared_cookie {
            return order;
        }
    }
    order.sort_by(|&a, &b| device(a).cmp(&device(b)));
    order
}

/// Runs `attempt` until it succeeds, fails for good (`transient` says no), [`BATCH_ATTEMPTS`]
/// attempts were made, or [`RETRY_WINDOW`] has passed; `pause(n)` runs after failed attempt
/// `n`. Only for a statement that a transient failure rolled back entirely.
fn with_retries<T, E>(
    mut attempt: impl FnMut() -> Result<T, E>,
    transient: impl Fn(&E) -> bool,
    mut pause: impl FnMut(u32),
) -> Result<T, E> {
    let started = Instant::now();
    let mut n = 1;
    loop {
        match attempt() {
            Err(e) if n < BATCH_ATTEMPTS && transient(&e) && started.elapsed() < RETRY_WINDOW => {
                pause(n);
                n += 1;
            }
            done => return done,
        }
    }
}

/// A serialization failure or a deadlock: the server aborted the statement's transaction, so
/// nothing of it was kept, and the same statement may succeed when run again.
fn is_transient(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// 10 to 40 ms after the first failed attempt, 20 to 50 ms after the second: random, so that
/// the batches that collided do not collide again in step.
fn retry_pause(n: u32) {
    let jitter = u64::from(OsRng.next_u32() % 31);
    std::thread::sleep(Duration::from_millis(10 * u64::from(n) + jitter));
}

/// What every pooled connection is set to when the pool opens it, in one round trip:
///
/// * transactions run at READ COMMITTED, whatever `default_transaction_isolation` says;
/// * `synchronous_commit = off` becomes `on` (a commit could otherwise be lost after the
///   device got its ClientID); stronger settings are kept;
/// * `statement_timeout` and `lock_timeout` are at most [`STATEMENT_TIMEOUT`] and
///   [`LOCK_TIMEOUT`] (none, 0, counts as the longest).
#[derive(Debug)]
pub(crate) struct SessionDefaults;

impl r2d2::CustomizeConnection<postgres::Client, postgres::Error> for SessionDefaults {
    fn on_acquire(&self, conn: &mut postgres::Client) -> Result<(), postgres::Error> {
        // Constants only in the text (no parameters in a simple query); one message, so one
        // round trip, and one implicit transaction: all of it applies or none.
        conn.batch_execute(&format!(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
             SELECT set_config('synchronous_commit', 'on', false)
              WHERE current_setting('synchronous_commit') = 'off';
             SELECT set_config(b.name, b.bound, false)
               FROM (VALUES ('statement_timeout', '{}ms'), ('lock_timeout', '{}ms'))
                    AS b(name, bound)
              WHERE current_setting(b.name)::interval = interval '0'
                 OR current_setting(b.name)::interval > b.bound::interval",
            STATEMENT_TIMEOUT.as_millis(),
            LOCK_TIMEOUT.as_millis(),
        ))
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
        if checked_schema_version(&mut tx)? >= target {
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
    checked_schema_version(c).map(drop)
}

/// The database's schema version (0 before the first migration).
const SCHEMA_VERSION_QUERY: &str =
    "SELECT coalesce(max(version), 0)::bigint FROM xtt_schema_version";

/// The database's schema version, or [`RegistryError::SchemaTooNew`] when newer code migrated
/// it past [`POSTGRES_SCHEMA_VERSION`].
fn checked_schema_version(c: &mut impl postgres::GenericClient) -> Result<i64, RegistryError> {
    checked_version(c, SCHEMA_VERSION_QUERY, POSTGRES_SCHEMA_VERSION)
}

/// The version `query` reads (one row, one bigint), checked against `supported` with
/// [`crate::known_version`]; shared with the session store's own version table.
pub(crate) fn checked_version(
    c: &mut impl postgres::GenericClient,
    query: &str,
    supported: i64,
) -> Result<i64, RegistryError> {
    let found: i64 = c
        .query_typed_one(query, &[])
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    crate::known_version(found, supported)
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

    /// Reads the schema version (one index lookup): a node started before a newer xtt migrated
    /// the shared database learns it here, as [`RegistryError::SchemaTooNew`].
    fn ping(&self) -> Result<(), RegistryError> {
        checked_schema_version(&mut *probe_connection(&self.pool)?).map(drop)
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
        // An export, as long as the registry is big: not held to STATEMENT_TIMEOUT (the lock
        // and network bounds still apply), in a transaction of its own so that the lifted
        // bound ends with it. Not on any handshake's path; four round trips.
        let mut tx = c.transaction().map_err(db)?;
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .map_err(db)?;
        let rows = tx
            .query_typed(&format!("SELECT {IDENTITY_COLUMNS} FROM identities"), &[])
            .map_err(db)?;
        tx.commit().map_err(db)?;
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

    fn test_config() -> Config {
        let Ok(url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
            panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
        };
        url.parse().unwrap()
    }

    fn show(c: &mut impl postgres::GenericClient, name: &str) -> String {
        c.query_one(&format!("SHOW {name}"), &[]).unwrap().get(0)
    }

    #[test]
    fn pooled_connections_never_commit_asynchronously() {
        let mut config = test_config();
        // As if the role or database were configured with synchronous_commit = off.
        config.options("-c synchronous_commit=off");
        let mut c = config.connect(postgres::NoTls).unwrap();
        assert_eq!(show(&mut c, "synchronous_commit"), "off");
        SessionDefaults.on_acquire(&mut c).unwrap();
        assert_eq!(show(&mut c, "synchronous_commit"), "on");
        // A stronger setting is left alone.
        c.batch_execute("SET synchronous_commit = remote_apply")
            .unwrap();
        SessionDefaults.on_acquire(&mut c).unwrap();
        assert_eq!(show(&mut c, "synchronous_commit"), "remote_apply");
    }

    #[test]
    fn pooled_connections_are_read_committed_and_bounded() {
        // As if the role or database asked for another isolation and no (or longer) timeouts.
        let mut config = test_config();
        config.options(
            "-c default_transaction_isolation=serializable -c statement_timeout=0 \
             -c lock_timeout=1h",
        );
        let mut c = config.connect(postgres::NoTls).unwrap();
        SessionDefaults.on_acquire(&mut c).unwrap();
        assert_eq!(show(&mut c, "transaction_isolation"), "read committed");
        let mut tx = c.transaction().unwrap();
        assert_eq!(show(&mut tx, "transaction_isolation"), "read committed");
        tx.commit().unwrap();
        assert_eq!(show(&mut c, "statement_timeout"), "10s");
        assert_eq!(show(&mut c, "lock_timeout"), "5s");
        assert!(Duration::from_secs(10) == STATEMENT_TIMEOUT && LOCK_TIMEOUT < STATEMENT_TIMEOUT);

        // Shorter bounds configured for the role or database are kept.
        let mut config = test_config();
        config.options("-c statement_timeout=2s -c lock_timeout=500ms");
        let mut c = config.connect(postgres::NoTls).unwrap();
        SessionDefaults.on_acquire(&mut c).unwrap();
        assert_eq!(show(&mut c, "statement_timeout"), "2s");
        assert_eq!(show(&mut c, "lock_timeout"), "500ms");
    }

    #[test]
    fn connections_probe_a_silent_server() {
        // Nothing in the URL: every bound is set (the client's defaults: no interval, no retry
        // count, no user timeout, 2 h idle).
        let mut config: Config = "postgres://u@db.example/x".parse().unwrap();
        bound_network(&mut config);
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(config.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));
        assert_eq!(config.get_keepalives_retries(), Some(KEEPALIVES_RETRIES));
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));

        // Shorter settings from the URL are kept, longer ones and `keepalives=0` are not.
        let mut config: Config = "postgres://u@db.example/x?keepalives=0&keepalives_idle=1\
                                  &keepalives_interval=60&keepalives_retries=1\
                                  &tcp_user_timeout=3"
            .parse()
            .unwrap();
        bound_network(&mut config);
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(1));
        assert_eq!(config.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));
        assert_eq!(config.get_keepalives_retries(), Some(1));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(3)));
        // Zero means "the system's default" (no limit) and is replaced.
        let mut config: Config = "postgres://u@db.example/x?tcp_user_timeout=0"
            .parse()
            .unwrap();
        bound_network(&mut config);
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
    }

    /// Injected failures: `Err(true)` is transient, `Err(false)` is not.
    fn run_with(failures: &[Result<u8, bool>]) -> (Result<u8, bool>, usize, Vec<u32>) {
        let mut calls = 0;
        let mut pauses = Vec::new();
        let out = with_retries(
            || {
                calls += 1;
                failures.get(calls - 1).copied().unwrap_or(Ok(0))
            },
            |transient: &bool| *transient,
            |n| pauses.push(n),
        );
        (out, calls, pauses)
    }

    #[test]
    fn transient_failures_are_retried_a_bounded_number_of_times() {
        assert_eq!(BATCH_ATTEMPTS, 3);
        // Succeeds at once: one attempt, no pause.
        assert_eq!(run_with(&[Ok(7)]), (Ok(7), 1, vec![]));
        // Two transient failures, then success: three attempts, its answer only.
        assert_eq!(
            run_with(&[Err(true), Err(true), Ok(9)]),
            (Ok(9), 3, vec![1, 2])
        );
        // Transient every time: gives up after BATCH_ATTEMPTS with the last error.
        assert_eq!(
            run_with(&[Err(true), Err(true), Err(true), Ok(1)]),
            (Err(true), 3, vec![1, 2])
        );
        // Not transient (a timeout, a dropped connection, a constraint): never retried.
        assert_eq!(run_with(&[Err(false), Ok(1)]), (Err(false), 1, vec![]));
        assert_eq!(
            run_with(&[Err(true), Err(false), Ok(1)]),
            (Err(false), 2, vec![1])
        );
        // Past the retry window, no new attempt starts.
        let mut calls = 0;
        let out: Result<(), bool> = with_retries(
            || {
                calls += 1;
                std::thread::sleep(RETRY_WINDOW);
                Err(true)
            },
            |t| *t,
            |_| {},
        );
        assert_eq!((out, calls), (Err(true), 1));
    }

    #[test]
    fn the_pause_between_attempts_is_short_and_jittered() {
        for n in 1..BATCH_ATTEMPTS {
            let t = Instant::now();
            retry_pause(n);
            let took = t.elapsed();
            let least = Duration::from_millis(10 * u64::from(n));
            assert!(
                took >= least && took < least + Duration::from_millis(500),
                "{took:?}"
            );
        }
    }

    fn registration(group: u8, pseudonym: u8, requested: u8) -> Registration {
        let mut r = crate::conformance::sample_registration(&GroupId([group; 32]), ClientId::NULL);
        r.pseudonym.0[1] = pseudonym;
        r.requested_id = ClientId([requested; CLIENT_ID_LEN]);
        r
    }

    fn cookie(id: u8) -> CookieUse {
        CookieUse {
            id: [id; 13],
            expires_at: UnixTime(0),
        }
    }

    #[test]
    fn batches_are_sent_in_device_order_unless_the_order_decides_an_outcome() {
        // Sorted by group, then pseudonym; one device's requests keep their order.
        let first = registration(2, 1, 0);
        let mut again = registration(2, 1, 5);
        again.pseudonym = first.pseudonym;
        let batch = [first, registration(1, 9, 0), registration(1, 3, 0), again];
        assert_eq!(lock_order(&batch, None), vec![2, 1, 0, 3]);
        let cookies = [cookie(1), cookie(2), cookie(3), cookie(4)];
        assert_eq!(lock_order(&batch, Some(&cookies)), vec![2, 1, 0, 3]);
        // One device presenting one cookie twice (a replayed flight in the same batch): sorted.
        let cookies = [cookie(1), cookie(2), cookie(3), cookie(1)];
        assert_eq!(lock_order(&batch, Some(&cookies)), vec![2, 1, 0, 3]);
        // Two devices presenting one cookie: the first in the batch gets it, so as is.
        let cookies = [cookie(1), cookie(2), cookie(1), cookie(4)];
        assert_eq!(lock_order(&batch, Some(&cookies)), vec![0, 1, 2, 3]);
        // Two devices asking for one ClientID: likewise.
        let mut shared = batch.clone();
        shared[1].requested_id = ClientId([5; CLIENT_ID_LEN]);
        assert_eq!(lock_order(&shared, None), vec![0, 1, 2, 3]);
    }
}
