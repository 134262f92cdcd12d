//! A node stopping gracefully (SIGTERM, SIGINT) hands every session it holds over exactly: the
//! next owner continues from its exact receive window and send counter, losing no record and
//! accepting none twice, instead of starting above the reservation as after a crash.
//!
//! ```text
//! 1. stop taking work: records for sessions not in the table, hand-over requests and
//!    reservation raises no longer start store operations (records are dropped silently, not
//!    answered with an Error: the device's session is still good on any other node)
//! 2. wait for store operations in flight (take-overs, raises, releases), at most BUSY_WAIT
//! 3. take every session out of the table, under its shard lock (a record being opened is
//!    either in the state taken or refused as unknown after it)
//! 4. one transaction (SessionStore::retire): every session released with its exact state,
//!    then the node's lease ended, so what it did not list (a take-over still running at the
//!    deadline) is taken over at once by the crash rule
//! 5. answer the hand-over requests that waited, then close the hand-over listener
//! ```
//!
//! The server calls [`SharedSessions::retire`] after its session transports stopped (so no
//! record is being served to a device any more) and before the process exits. Everything is
//! bounded ([`RETIRE_BOUND`]); past the bound the node exits and its sessions are taken over
//! by the crash rule (at most `K` records lost each), which is also what happens when the
//! database is unreachable.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xtt_registry::sessions::UnixMillis;

use super::{bump, handover::Answer, lock, SharedSessions};
use crate::sessions::SessionCore;

/// How long a graceful stop may take for the shared sessions in total.
pub const RETIRE_BOUND: Duration = Duration::from_secs(5);
/// Of which waiting for store operations already in flight.
const BUSY_WAIT: Duration = Duration::from_secs(1);

/// What a graceful stop did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retired {
    /// Sessions taken out of the table.
    pub held: u64,
    /// Of which released with their exact state (the rest were no longer this node's).
    pub released: u64,
}

impl SharedSessions {
    /// Hands every session this node holds over exactly and ends its lease (see the module
    /// documentation). `Err`: the store failed or the bound passed; the sessions are then taken
    /// over by the crash rule.
    pub(crate) async fn retire(
        self: &Arc<Self>,
        core: &Arc<SessionCore>,
    ) -> Result<Retired, xtt_registry::RegistryError> {
        let started = Instant::now();
        self.retiring.store(true, Ordering::SeqCst);
        while !lock(&self.busy).is_empty() && started.elapsed() < BUSY_WAIT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let states = core.table.take_all_states();
        let held = states.len() as u64;
        let node = self.node;
        let outcome = tokio::time::timeout(
            RETIRE_BOUND.saturating_sub(started.elapsed()),
            self.blocking(move |st| st.retire(node, &states, UnixMillis::now())),
        )
        .await
        .unwrap_or_else(|_| {
            Err(xtt_registry::RegistryError::Database(format!(
                "handing sessions over took longer than {RETIRE_BOUND:?}"
            )))
        });
        let result = outcome.map(|released| {
            self.counters
                .released
                .fetch_add(released, Ordering::Relaxed);
            Retired { held, released }
        });
        match &result {
            Ok(r) => {
                bump(&self.counters.retired);
                tracing::info!(
                    held = r.held,
                    released = r.released,
                    ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "sessions handed over exactly"
                );
            }
            Err(e) => tracing::error!(
                error = %e,
                held,
                "handing sessions over failed: other nodes take them over as after a crash"
            ),
        }
        self.retired.send_replace(Some(result.is_ok()));
        self.closing.send_replace(true);
        result
    }

    /// A hand-over request that arrived while this node is stopping: answered once the
    /// sessions are in the store (or the stop failed).
    pub(super) async fn answer_when_retired(&self) -> Answer {
        let mut rx = self.retired.subscribe();
        let done = match tokio::time::timeout(RETIRE_BOUND, rx.wait_for(Option::is_some)).await {
            Ok(Ok(done)) => *done,
            _ => None,
        };
        match done {
            Some(true) => Answer::Released,
            _ => Answer::Failed,
        }
    }
}
