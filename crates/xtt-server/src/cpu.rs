//! The bounded CPU pool: the long work of identity provisioning, the ≈ 1 ms DAA verification
//! (batched or not), runs here, off the async reactor. The short steps (ClientInit, ≈ 85 µs;
//! Identity_ClientAttest, ≈ 45 µs; a session ClientAttest, ≈ 45 µs) run on the connection's task
//! instead: for them a round trip through the pool (a futex wake of a worker, an eventfd wake of
//! a tokio thread, two context switches) cost more than it spared the reactor.
//!
//! A fixed number of threads take jobs from one FIFO queue; async callers await a oneshot. The
//! queue is bounded by the concurrent-handshake cap (each handshake has at most one job queued),
//! and `submit` refuses work outright beyond an explicit queue limit as a second line of defence.
//!
//! Why not rayon: its idle workers spin (`sched_yield`) before they sleep. On a server whose
//! jobs arrive one per network message, that spinning was a large share of the pool's CPU time
//! and took cores from everything else on the host; and a job spawned from a worker runs before
//! the queue (LIFO), where the DAA batcher needs a re-queued job to go to the back. Here idle
//! workers sleep in the kernel at once and the queue is strictly first in, first out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The pool is saturated or shutting down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CPU pool overloaded")]
pub struct Overloaded;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A bounded pool of CPU threads. Clones share the pool; the threads end once every clone is
/// dropped and the queue is drained.
#[derive(Debug, Clone)]
pub struct CpuPool {
    jobs: mpsc::Sender<Job>,
    threads: usize,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl CpuPool {
    /// `threads` workers; at most `max_queued` jobs waiting or running.
    pub fn new(threads: usize, max_queued: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("xtt-cpu-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(Self {
            jobs,
            threads,
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: max_queued.max(1),
        })
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether jobs are waiting for a worker (more queued or running than threads). The DAA
    /// batcher lets such jobs go first while its batch is still filling.
    pub fn has_waiting_jobs(&self) -> bool {
        self.queued.load(Ordering::Acquire) > self.threads
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

    /// Queues `f` at the back of the queue; the receiver yields its result.
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
        let slot = QueueSlot(self.queued.clone());
        let job: Job = Box::new(move || {
            let out = f();
            drop(slot);
            // The handshake may have timed out and dropped its receiver: nothing to do.
            let _ = tx.send(out);
        });
        // Only fails once every worker is gone; the refused job's slot is given back on drop.
        self.jobs.send(job).map_err(|_| Overloaded)?;
        Ok(rx)
    }
}

/// A job's place in the queue count, given back when the job finishes, panics or is refused.
struct QueueSlot(Arc<AtomicUsize>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One worker: takes the next job (sleeping while there is none) and runs it. The receiver's
/// lock is held only while waiting for a job, so the other workers queue behind it in the
/// kernel rather than spinning. A job that panics (a bug) loses only its own result — its
/// caller sees `Overloaded` — and the worker goes on.
fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = next else { return };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a CPU pool job panicked; its handshake fails, the worker goes on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_the_order_they_were_queued() {
        let pool = CpuPool::new(1, 64).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let receivers: Vec<_> = (0..20)
            .map(|i| {
                let order = order.clone();
                pool.submit(move || order.lock().unwrap().push(i)).unwrap()
            })
            .collect();
        for rx in receivers {
            rx.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn work_beyond_the_queue_limit_is_refused_and_the_pool_recovers() {
        let pool = CpuPool::new(1, 2).unwrap();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let first = pool.submit(move || hold_rx.recv().ok()).unwrap();
        let second = pool.submit(|| 2).unwrap();
        assert!(pool.has_waiting_jobs());
        assert_eq!(pool.submit(|| 3).err(), Some(Overloaded));
        hold_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Some(()));
        assert_eq!(second.await.unwrap(), 2);
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_frees_its_slot() {
        let pool = CpuPool::new(1, 1).unwrap();
        let failed = pool.run(|| -> u8 { panic!("a bug in a job") }).await;
        assert_eq!(failed, Err(Overloaded));
        assert!(!pool.has_waiting_jobs());
        assert_eq!(
            pool.run(|| 5).await,
            Ok(5),
            "the one worker and the one slot are back"
        );
    }

    #[tokio::test]
    async fn every_worker_runs_jobs_at_once() {
        // Two jobs that each wait for the other can only finish if two workers run them together.
        let pool = CpuPool::new(2, 8).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let a = {
            let b = barrier.clone();
            pool.submit(move || b.wait().is_leader()).unwrap()
        };
        let b = {
            let b = barrier.clone();
            pool.submit(move || b.wait().is_leader()).unwrap()
        };
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(a ^ b, "exactly one of the two is the barrier's leader");
    }
}
