//! Storage behind a trait. Every method is one atomic, durable step: when it returns `Ok`, the
//! change is committed, and the HTTP reply is only sent after that.
//!
//! Methods take the [`Clock`], not a time: a store reads it once its lock and transaction are
//! held, so an expiry decision is made at the instant the step runs, however long the request
//! waited for the store.
//!
//! Methods that change something also take the request's [`Deadline`]. A store claims it
//! ([`Deadline::begin_commit`]) inside its transaction, right before it commits; if the
//! deadline has passed, it rolls back and returns [`StoreError::DeadlinePassed`]. So a request
//! whose client was told 408 changes nothing, although its step is not cancelled and still runs
//! once the store is free; and the relay's timeout, which claims the same deadline
//! ([`Deadline::time_out`]), does not answer 408 for a step that has begun to commit.

use crate::proto::mailbox::{AccessError, Change, ClaimDigest, Mailbox};
use crate::server::clock::Clock;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;
use uuid::Uuid;

/// Failure of the storage layer itself (HTTP 500), or a step refused for time (HTTP 408).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request's [`Deadline`] passed before the step could commit: it was rolled back and
    /// nothing changed.
    #[error("the request's deadline passed before its change was committed; nothing changed")]
    DeadlinePassed,
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
    /// The mailbox's expiration is not after the time the store ran the create (it came while
    /// the request waited for the store): nothing new.
    Expired,
}

const OPEN: u8 = 0;
const COMMITTING: u8 = 1;
const PASSED: u8 = 2;

/// The instant by which one request's store step must have begun to commit, shared by the step
/// and the relay's request timeout; whichever claims it first decides the request's fate.
///
/// A store calls [`Deadline::begin_commit`] inside its transaction, right before committing,
/// and commits only if it returns `true`. The timeout calls [`Deadline::time_out`] and answers
/// 408 only if it returns `true`; then no step of the request will commit.
#[derive(Debug)]
pub struct Deadline {
    at: Option<Instant>,
    state: AtomicU8,
}

impl Deadline {
    /// A deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Deadline {
            at: Some(at),
            state: AtomicU8::new(OPEN),
        }
    }

    /// No deadline of its own: only [`Deadline::time_out`] makes it pass (tools, tests).
    pub fn none() -> Self {
        Deadline {
            at: None,
            state: AtomicU8::new(OPEN),
        }
    }

    /// Claims the deadline for a commit, right before it. `true`: commit (from now on the
    /// deadline cannot pass); `false`: the deadline has passed (its instant has come, or the
    /// timeout claimed it) and the step must roll back and return
    /// [`StoreError::DeadlinePassed`].
    pub fn begin_commit(&self) -> bool {
        if self.at.is_some_and(|at| Instant::now() >= at) {
            self.time_out();
        }
        match self
            .state
            .compare_exchange(OPEN, COMMITTING, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// Lets the deadline pass, unless a commit has begun. `true`: it has passed, and no step
    /// claiming it will commit (a 408 is the truth); `false`: a commit has begun, and its
    /// outcome must be awaited and answered.
    pub fn time_out(&self) -> bool {
        match self
            .state
            .compare_exchange(OPEN, PASSED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == PASSED,
        }
    }
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
    /// Refused with [`CreateOutcome::Expired`] when `mailbox` expires at or before `clock` read
    /// inside the transaction, with [`CreateOutcome::Full`] when the store already holds
    /// `quota.max_mailboxes` (expired ones count until swept), with
    /// [`QuotaOutcome::OverQuota`] when the creator already holds `quota.per_creator` live
    /// mailboxes, and with [`StoreError::DeadlinePassed`] when `deadline` has passed before the
    /// insert could commit.
    fn create(
        &self,
        mailbox: &Mailbox,
        key: &IdempotencyKey,
        clock: &dyn Clock,
        quota: &CreateQuota,
        deadline: &Deadline,
    ) -> Result<QuotaOutcome, StoreError>;

    /// Loads the live mailbox `id` (expired ones, at `clock` read inside the transaction, are
    /// [`AccessError::NotFound`]), answers a repeated `key` with [`ApplyOutcome::Duplicate`],
    /// otherwise runs `op` and persists what it returns, recording `key` as the claim's last
    /// request, all in one transaction; unless `deadline` has passed before that transaction
    /// could commit: then nothing changes ([`StoreError::DeadlinePassed`]).
    fn apply(
        &self,
        id: &Uuid,
        clock: &dyn Clock,
        key: Option<&IdempotencyKey>,
        op: MailboxOp<'_>,
        deadline: &Deadline,
    ) -> Result<ApplyOutcome, ApplyError>;

    /// The mailbox `id` if live at `clock` read under the store's lock, read-only.
    fn get(&self, id: &Uuid, clock: &dyn Clock) -> Result<Option<Mailbox>, StoreError>;

    /// Deletes every mailbox expired at `clock` read under the store's lock; returns how many.
    fn sweep(&self, clock: &dyn Clock) -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::Deadline;
    use std::time::{Duration, Instant};

    /// Whoever claims a deadline first decides: a timed-out request commits nothing, and a
    /// request that began to commit is not timed out; both answers hold when asked again.
    #[test]
    fn the_first_claim_on_a_deadline_decides() {
        let timed_out = Deadline::none();
        assert!(timed_out.time_out());
        assert!(!timed_out.begin_commit());
        assert!(timed_out.time_out());

        let committing = Deadline::none();
        assert!(committing.begin_commit());
        assert!(!committing.time_out());
        assert!(committing.begin_commit());

        // Its instant passes it, with or without the timeout's claim.
        let passed = Deadline::at(Instant::now());
        assert!(!passed.begin_commit());
        assert!(passed.time_out());
        let later = Deadline::at(Instant::now() + Duration::from_secs(3600));
        assert!(later.begin_commit());
    }
}
