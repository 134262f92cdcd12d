//! Storage behind a trait. Every method is one atomic, durable step: when it returns `Ok`, the
//! change is committed, and the HTTP reply is only sent after that.
//!
//! Methods take the [`Clock`], not a time: a store reads it once its lock and transaction are
//! held, so an expiry decision is made at the instant the step runs, however long the request
//! waited for the store (or after its client got a 408 and the step still ran).

use crate::proto::mailbox::{AccessError, Change, ClaimDigest, Mailbox};
use crate::server::clock::Clock;
use std::fmt;
use std::net::IpAddr;
use uuid::Uuid;

/// Failure of the storage layer itself (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored row is corrupt: {0}")]
    Corrupt(&'static str),
    /// The OS error is the `source()` only (only `open` fails this way, and its caller prints
    /// the chain): with it also in the message, `{:#}` printed it twice.
    #[error("cannot prepare the database file")]
    Io(#[from] std::io::Error),
}

/// Failure of [`Store::apply`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `Mailbox-Request-ID` of a device: the last successful one is kept per claim.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub claim: ClaimDigest,
    pub request_id: String,
}

/// Result of [`Store::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// Same claim and request id as an earlier create: nothing new; the earlier mailbox's id.
    Duplicate(Uuid),
    /// The store already holds its maximum number of mailboxes: nothing new.
    Full,
}

/// Who created a mailbox, for the per-creator quota: the client's IPv4 address, or the /64 of
/// its IPv6 address (one host usually holds a whole /64, as the rate limiter assumes too). An
/// IPv4-mapped IPv6 address counts as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Creator(IpAddr);

impl Creator {
    /// The creator a request from `client` is charged to (behind trusted proxies, the address
    /// [`crate::server::rate_limit::client_ip`] finds).
    pub fn of(client: IpAddr) -> Self {
        Creator(xtt_ratelimit::client_key(client))
    }
}

/// As stored: `192.0.2.7` or `2001:db8:1:2::/64`.
impl fmt::Display for Creator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The bounds a create by `creator` must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateQuota {
    /// Most mailboxes stored at once, by every creator together.
    pub max_mailboxes: u64,
    /// Who asks.
    pub creator: Creator,
    /// Most live (unexpired) mailboxes one creator may hold; `u64::MAX`: no limit.
    pub per_creator: u64,
}

/// Result of [`Store::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaOutcome {
    /// The creator is within its quota: created, found again, or refused as the store is full.
    Within(CreateOutcome),
    /// The creator already holds `per_creator` live mailboxes: nothing new (HTTP 429). Its
    /// earliest one expires `retry_after_secs` seconds from now (at least 1).
    OverQuota { retry_after_secs: u64 },
}

impl CreateQuota {
    /// The reply to a create refused as [`QuotaOutcome::OverQuota`].
    pub fn refusal(&self) -> String {
        format!(
            "this client already holds {} live mailboxes, the most one client may hold; \
             delete one or wait until one expires",
            self.per_creator
        )
    }
}

/// Result of [`Store::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Done(Change),
    /// Same claim, request id and mailbox as the last successful request: not re-executed.
    Duplicate,
}

/// An operation on one mailbox, run inside the store's transaction.
pub type MailboxOp<'a> = &'a mut (dyn FnMut(&mut Mailbox) -> Result<Change, AccessError> + Send);

/// Durable mailbox storage.
pub trait Store: Send + Sync + 'static {
    /// Inserts `mailbox` on behalf of `quota.creator`, recorded with it, unless `key` repeats
    /// the claim's last request (then the earlier mailbox is found, at the quota or not).
    /// Refused with [`CreateOutcome::Full`] when the store already holds `quota.max_mailboxes`
    /// (expired ones count until swept), and with [`QuotaOutcome::OverQuota`] when the creator
    /// already holds `quota.per_creator` live mailboxes.
    fn create(
        &self,
        mailbox: &Mailbox,
        key: &IdempotencyKey,
        clock: &dyn Clock,
        quota: &CreateQuota,
    ) -> Result<QuotaOutcome, StoreError>;

    /// Loads the live mailbox `id` (expired ones, at `clock` read inside the transaction, are
    /// [`AccessError::NotFound`]), answers a repeated `key` with [`ApplyOutcome::Duplicate`],
    /// otherwise runs `op` and persists what it returns, recording `key` as the claim's last
    /// request, all in one transaction.
    fn apply(
        &self,
        id: &Uuid,
        clock: &dyn Clock,
        key: Option<&IdempotencyKey>,
        op: MailboxOp<'_>,
    ) -> Result<ApplyOutcome, ApplyError>;

    /// The mailbox `id` if live at `clock` read under the store's lock, read-only.
    fn get(&self, id: &Uuid, clock: &dyn Clock) -> Result<Option<Mailbox>, StoreError>;

    /// Deletes every mailbox expired at `clock` read under the store's lock; returns how many.
    fn sweep(&self, clock: &dyn Clock) -> Result<usize, StoreError>;
}
