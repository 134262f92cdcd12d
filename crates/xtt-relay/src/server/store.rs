//! Storage behind a trait. Every method is one atomic, durable step: when it returns `Ok`, the
//! change is committed, and the HTTP reply is only sent after that.

use crate::proto::mailbox::{AccessError, Change, ClaimDigest, Mailbox};
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
    /// Inserts `mailbox` unless `key` repeats the claim's last request, or the store already
    /// holds `max_mailboxes` (expired ones count until swept).
    fn create(
        &self,
        mailbox: &Mailbox,
        key: &IdempotencyKey,
        now: i64,
        max_mailboxes: u64,
    ) -> Result<CreateOutcome, StoreError>;

    /// Loads the live mailbox `id` (expired ones are [`AccessError::NotFound`]), answers a
    /// repeated `key` with [`ApplyOutcome::Duplicate`], otherwise runs `op` and persists what
    /// it returns, recording `key` as the claim's last request, all in one transaction.
    fn apply(
        &self,
        id: &Uuid,
        now: i64,
        key: Option<&IdempotencyKey>,
        op: MailboxOp<'_>,
    ) -> Result<ApplyOutcome, ApplyError>;

    /// The live mailbox `id`, read-only.
    fn get(&self, id: &Uuid, now: i64) -> Result<Option<Mailbox>, StoreError>;

    /// Deletes every mailbox expired at `now`; returns how many.
    fn sweep(&self, now: i64) -> Result<usize, StoreError>;
}
