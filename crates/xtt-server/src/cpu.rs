//! The bounded CPU pool: every signature verification, ECDSA signature and cookie operation runs
//! here, never on the async reactor, whose threads only move bytes.
//!
//! A fixed number of rayon threads; async callers await a oneshot. The queue is bounded by the
//! concurrent-handshake cap (each handshake has at most one job queued), and `try_run` refuses
//! work outright beyond an explicit queue limit as a second line of defence.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

/// The pool is saturated or shutting down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CPU pool overloaded")]
pub struct Overloaded;

/// A bounded pool of CPU threads.
#[derive(Debug, Clone)]
pub struct CpuPool {
    pool: Arc<rayon::ThreadPool>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl CpuPool {
    /// `threads` workers; at most `max_queued` jobs waiting or running.
    pub fn new(threads: usize, max_queued: usize) -> std::io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("xtt-cpu-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            pool: Arc::new(pool),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: max_queued.max(1),
        })
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Whether jobs are waiting for a worker (more queued or running than threads). The DAA
    /// batcher lets such jobs go first while its batch is still filling.
    pub fn has_waiting_jobs(&self) -> bool {
        self.queued.load(Ordering::Acquire) > self.pool.current_num_threads()
    }

    /// Runs `f` on the pool and awaits its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let rx = self.submit(f)?;
        rx.await.map_err(|_| Overloaded)
    }

    /// Queues `f`; the receiver yields its result.
    pub(crate) fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<T>, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded);
        }
        let (tx, rx) = oneshot::channel();
        let queued = self.queued.clone();
        self.pool.spawn(move || {
            let out = f();
            queued.fetch_sub(1, Ordering::AcqRel);
            // The handshake may have timed out and dropped its receiver: nothing to do.
            let _ = tx.send(out);
        });
        Ok(rx)
    }
}
