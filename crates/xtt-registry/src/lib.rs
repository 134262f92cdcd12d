//! The registry of an XTT identity server: DAA groups (group id → group public key, basename)
//! and provisioned identities (ClientID, long-term public key, group, DAA pseudonym, first and
//! last seen).
//!
//! # The contract
//!
//! Storage sits behind the [`Registry`] trait, with two backends: SQLite ([`SqliteRegistry`], one
//! server) and PostgreSQL ([`PostgresRegistry`], several server nodes sharing one database).
//! [`open_storage`] picks one from a URL (`sqlite:PATH` or `postgres://…`). The trait is **synchronous**: every call may block on I/O (an fsync,
//! a network round trip), so async drivers call it from a blocking thread (`spawn_blocking` or a
//! dedicated writer thread), never from the reactor. A synchronous trait keeps the contract
//! object-safe and simple, and both `rusqlite` and the blocking `postgres` client fit it.
//!
//! * **One round trip per handshake.** Groups are read once at startup (the server caches its
//!   verifiers); a handshake costs exactly one [`Registry::register_all`] call, which backends
//!   implement as one transaction (PostgreSQL: one call of a stored function, i.e. one statement
//!   and one round trip for the whole batch).
//! * **Group commit.** [`Registry::register_all`] registers many devices in one durable
//!   transaction, so a server under load pays one fsync for many handshakes.
//! * **Durable before reply.** When `register_all` returns `Ok`, the registrations are committed
//!   and survive the server process being killed (`kill -9`); the SQLite backend additionally
//!   survives power loss with [`Durability::Full`], the default.
//! * **ClientIDs are unique and never reused.** Fresh ids are 128 random bits, checked against
//!   every id ever assigned, including deleted ones ([`Registry::delete_identity`] retires an id
//!   forever). A requested id is granted only if it was never assigned, or if it already belongs
//!   to the same device.
//! * **A device keeps its ClientID.** A device is recognised by its DAA pseudonym, which is
//!   stable per member and basename. A device that provisions again gets its existing ClientID
//!   back, with its new long-term key and an updated `last_seen`; this is what makes first/last
//!   seen meaningful without the server ever learning which member signed.
//!
//! Sessions shared between server nodes have a store of their own, [`sessions::SessionStore`],
//! in the same database (SQLite file or PostgreSQL), opened with
//! [`sessions::open_session_store`].
//!
//! The [`conformance`] module holds the storage test suite, written against the trait so that
//! every backend runs the same checks.

use core::fmt;

use xtt_proto::daa::{GroupId, Pseudonym};
use xtt_proto::longterm::LongtermPublicKey;
use xtt_proto::{ClientId, UnixTime};

pub mod conformance;
pub mod pg_tls;
mod postgres;
pub mod sessions;
mod sqlite;
mod storage;

pub use pg_tls::TlsMode;
pub use postgres::{PostgresRegistry, DEFAULT_POOL_SIZE, POSTGRES_SCHEMA_VERSION};
pub use sqlite::{Durability, SqliteRegistry, SCHEMA_VERSION};
/// `expires_at` below which used cookies may be deleted at `now`.
pub(crate) fn sweep_before(now: UnixTime) -> i64 {
    sqlite::time_to_sql(UnixTime(now.0.saturating_sub(COOKIE_SWEEP_MARGIN_SECS)))
}

/// `found`, the version a schema is at, or [`RegistryError::SchemaTooNew`] when a newer xtt
/// migrated it past `supported`, the newest this code knows. Every backend and version table
/// (registry, sessions) decides it here, so opening and health probes agree.
pub(crate) fn known_version(found: i64, supported: i64) -> Result<i64, RegistryError> {
    if found > supported {
        return Err(RegistryError::SchemaTooNew { found, supported });
    }
    Ok(found)
}

fn check_cookie_count(batch: &[Registration], cookies: &[CookieUse]) -> Result<(), RegistryError> {
    if batch.len() == cookies.len() {
        Ok(())
    } else {
        Err(RegistryError::Corrupt(
            "register_all_once: one cookie per registration is required",
        ))
    }
}

pub use storage::{open_storage, open_storage_with, redact_url, sqlite_path, StorageOptions};

/// A DAA group the server accepts devices from.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// The group id devices announce (the `xtt` tool derives it as SHA-256(gpk ‖ basename)).
    pub group_id: GroupId,
    /// The group public key in the ECDAA wire form (258 bytes for FP256BN).
    pub gpk: Vec<u8>,
    /// The basename the group's members sign with.
    pub basename: Vec<u8>,
}

impl fmt::Debug for GroupRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupRecord")
            .field("group_id", &self.group_id)
            .field("gpk_len", &self.gpk.len())
            .field("basename", &String::from_utf8_lossy(&self.basename))
            .finish()
    }
}

/// One device's request to be registered, after its DAA signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The verified group.
    pub group_id: GroupId,
    /// The verified pseudonym (identifies the device within the group and basename).
    pub pseudonym: Pseudonym,
    /// The ClientID the device asked for; [`ClientId::NULL`] lets the registry choose.
    pub requested_id: ClientId,
    /// The long-term key to bind to the ClientID.
    pub longterm_key: LongtermPublicKey,
    /// When the handshake happened.
    pub now: UnixTime,
}

/// A granted registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assigned {
    /// The device's ClientID.
    pub client_id: ClientId,
    /// `true` for a device seen for the first time, `false` for a returning one.
    pub new_device: bool,
}

/// Why a registration was refused (the device gets an XTT Error; no identity is stored, and
/// the handshake's cookie stays claimed, see [`Registry::register_all_once`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The group is not in the registry.
    #[error("unknown DAA group")]
    UnknownGroup,
    /// The requested ClientID is, or was, assigned to another device.
    #[error("requested ClientID {0} is taken")]
    RequestedIdTaken(ClientId),
    /// The handshake's cookie was already used (on this node or another): a replayed
    /// Identity_ClientAttest. Nothing is registered.
    #[error("cookie already used")]
    CookieReplayed,
    /// The device already holds another ClientID and asked for a different one.
    #[error("device already holds ClientID {held}, requested {requested}")]
    DeviceHoldsOtherId {
        /// The id the device has.
        held: ClientId,
        /// The id it asked for.
        requested: ClientId,
    },
}

/// A handshake cookie to be accepted at most once deployment-wide (see
/// [`Registry::register_all_once`]): its identifier (`key_id ‖ nonce`, 13 bytes) and the time
/// after which no node accepts it anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CookieUse {
    /// `key_id ‖ nonce` of the cookie (xtt-proto's `CookieId`).
    pub id: [u8; 13],
    /// When the cookie expires (issue time + lifetime, by the issuing node's clock).
    pub expires_at: UnixTime,
}

/// Used cookies are kept this long past their expiry before [`Registry::sweep_used_cookies`]
/// deletes them, so a node whose clock is up to this far behind still finds them.
pub const COOKIE_SWEEP_MARGIN_SECS: u64 = 300;

/// A provisioned identity as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRecord {
    /// The ClientID.
    pub client_id: ClientId,
    /// The group the device proved membership of.
    pub group_id: GroupId,
    /// The device's pseudonym.
    pub pseudonym: Pseudonym,
    /// The long-term key bound to the ClientID (the latest one the device registered).
    pub longterm_key: LongtermPublicKey,
    /// First provisioning.
    pub first_seen: UnixTime,
    /// Latest provisioning.
    pub last_seen: UnixTime,
}

/// A storage failure (not a refusal): the handshake fails and the caller may retry later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The request was refused; see [`Refusal`]. (The reason is in the message, not a
    /// `source()`, so `{:#}` names it once.)
    #[error("registration refused: {0}")]
    Refused(Refusal),
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// The database holds data this code cannot interpret (corruption or a foreign schema).
    #[error("corrupt registry data: {0}")]
    Corrupt(&'static str),
    /// The database schema is newer than this program. Said without naming the tables (the
    /// registry's and the session store's have versions of their own): callers say which.
    #[error(
        "schema version {found} is newer than the supported version {supported}: a newer xtt \
         migrated these tables; run that version"
    )]
    SchemaTooNew {
        /// The version found (SQLite `user_version`, PostgreSQL `xtt_schema_version`; for the
        /// session store, `xtt_session_schema_version`).
        found: i64,
        /// The newest version this program knows.
        supported: i64,
    },
    /// A group with this id exists with a different key or basename.
    #[error("group {0:?} already exists with other parameters")]
    GroupConflict(GroupId),
    /// No fresh ClientID could be drawn (the random source keeps hitting used ids).
    #[error("could not draw an unused ClientID")]
    IdSpaceExhausted,
    /// The storage URL is not `sqlite:PATH` or `postgres://…`; the message says what is wrong.
    #[error("invalid storage URL: {0}")]
    StorageUrl(String),
}

impl From<Refusal> for RegistryError {
    fn from(r: Refusal) -> Self {
        RegistryError::Refused(r)
    }
}

/// Storage of groups and identities. Implementations are shared between threads; every method
/// may block (see the crate documentation for the contract).
pub trait Registry: Send + Sync + fmt::Debug {
    /// Adds a group. Returns `false` if the identical group is already present; a different
    /// group under the same id is [`RegistryError::GroupConflict`].
    fn add_group(&self, group: &GroupRecord) -> Result<bool, RegistryError>;

    /// Every group.
    fn groups(&self) -> Result<Vec<GroupRecord>, RegistryError>;

    /// One group.
    fn group(&self, group_id: &GroupId) -> Result<Option<GroupRecord>, RegistryError>;

    /// Registers every request in **one durable transaction** and returns one outcome per
    /// request, in order. Requests are applied in order, so two requests for the same id in one
    /// batch grant it at most once. `Err` means nothing was stored.
    fn register_all(
        &self,
        batch: &[Registration],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError>;

    /// Like [`Self::register_all`], but each request first claims its handshake cookie
    /// (`cookies[i]` for `batch[i]`) in the **same transaction**: a cookie already claimed, by
    /// any node sharing this storage, refuses its request with [`Refusal::CookieReplayed`] and
    /// registers nothing. A claimed cookie stays claimed whatever the registration's outcome.
    /// `cookies` must be as long as `batch`.
    fn register_all_once(
        &self,
        batch: &[Registration],
        cookies: &[CookieUse],
    ) -> Result<Vec<Result<Assigned, Refusal>>, RegistryError>;

    /// Claims one cookie on its own (for handshakes that register nothing, e.g. sessions):
    /// `true` the first time deployment-wide, `false` after.
    fn claim_cookie(&self, cookie: &CookieUse) -> Result<bool, RegistryError>;

    /// Deletes used cookies that expired more than [`COOKIE_SWEEP_MARGIN_SECS`] before `now`;
    /// returns how many. Servers call it now and then, off the handshake path.
    fn sweep_used_cookies(&self, now: UnixTime) -> Result<u64, RegistryError>;

    /// The schema version the storage is at (SQLite `user_version`, PostgreSQL
    /// `xtt_schema_version`); opening a registry migrates it to the newest this code knows.
    fn schema_version(&self) -> Result<i64, RegistryError>;

    /// Checks that the storage answers (one cheap query); for health endpoints. Callers bound
    /// the wait themselves: a database that stops answering may block this call. The built-in
    /// backends also read the schema version in that query: storage migrated by a newer
    /// program since it was opened is [`RegistryError::SchemaTooNew`].
    fn ping(&self) -> Result<(), RegistryError> {
        self.identity_count().map(|_| ())
    }

    /// Registers one request (a batch of one).
    fn register(&self, registration: &Registration) -> Result<Assigned, RegistryError> {
        let mut out = self.register_all(core::slice::from_ref(registration))?;
        match out.pop() {
            Some(r) => Ok(r?),
            None => Err(RegistryError::Corrupt("register_all returned no outcome")),
        }
    }

    /// The live identity with this ClientID.
    fn identity(&self, client_id: &ClientId) -> Result<Option<IdentityRecord>, RegistryError>;

    /// Every live identity, in no particular order.
    fn identities(&self) -> Result<Vec<IdentityRecord>, RegistryError>;

    /// How many live identities there are.
    fn identity_count(&self) -> Result<u64, RegistryError>;

    /// Deletes an identity; its ClientID is retired and never assigned again. Returns whether it
    /// existed.
    fn delete_identity(&self, client_id: &ClientId) -> Result<bool, RegistryError>;
}
