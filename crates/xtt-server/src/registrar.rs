//! Group commit: one thread owns the registry's write path, takes every registration waiting
//! when it becomes free and commits them in one transaction (one fsync), then answers each
//! handshake. Idle, a registration commits at once; under load, many share a commit.
//!
//! Each registration carries its handshake cookie, claimed in the same transaction
//! ([`Registry::register_all_once`]), so a cookie is accepted once across every server sharing
//! the registry at no extra round trip. Expired used cookies are swept from this thread every
//! [`SWEEP_EVERY`] (one statement, off the handshake path).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use xtt_registry::{Assigned, CookieUse, Refusal, Registration, Registry};

/// How often the writer deletes expired used cookies.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

use crate::metrics::Metrics;

/// Why a registration did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterFailure {
    Refused(Refusal),
    Storage(String),
}

type Request = (
    Registration,
    CookieUse,
    oneshot::Sender<Result<Assigned, RegisterFailure>>,
);

/// What the writer thread is asked to do.
#[expect(
    clippy::large_enum_variant,
    reason = "Close is sent once per server; boxing would allocate for every registration"
)]
enum Job {
    Register(Request),
    /// Commit what is queued before this, then end (see [`Registrar::close`]).
    Close,
}

#[derive(Debug, Clone)]
pub(crate) struct Registrar {
    tx: mpsc::Sender<Job>,
    health: Arc<WriterHealth>,
    /// The writer thread, taken by the first [`Registrar::close`].
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// What `/healthz` knows of the writer thread: every registration of this node waits for it,
/// so a node whose writer stopped (a panic) or hangs in one commit provisions nobody while its
/// database still answers the health probe's query.
#[derive(Debug)]
pub(crate) struct WriterHealth {
    epoch: Instant,
    stopped: AtomicBool,
    /// When the commit under way began, in ms after `epoch` plus one; 0 when none is.
    busy_since: AtomicU64,
}

/// A commit running longer than this makes the node unhealthy: the database bounds its own
/// calls well below it (PostgreSQL: 10 s statements, retries within 5 s; SQLite: a 10 s busy
/// timeout), and every handshake waiting for it has timed out long before.
pub(crate) const STUCK_COMMIT: Duration = Duration::from_secs(30);

impl WriterHealth {
    pub(crate) fn new() -> Self {
        WriterHealth {
            epoch: Instant::now(),
            stopped: AtomicBool::new(false),
            busy_since: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Why the writer cannot register anything now, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.stopped.load(Ordering::Acquire) {
            return Some("the registry writer stopped; no device can be provisioned until the server restarts".into());
        }
        let since = self.busy_since.load(Ordering::Acquire);
        let running = Duration::from_millis(self.now_ms().saturating_sub(since.saturating_sub(1)));
        (since != 0 && running > STUCK_COMMIT).then(|| {
            format!(
                "a registry commit has been running for {} s; registrations wait behind it",
                running.as_secs()
            )
        })
    }

    fn begin(&self) {
        self.busy_since.store(self.now_ms() + 1, Ordering::Release);
    }

    fn end(&self) {
        self.busy_since.store(0, Ordering::Release);
    }
}

/// Marks the writer stopped when its thread leaves `run`, by returning or by a panic.
struct StoppedOnDrop(Arc<WriterHealth>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Release);
    }
}

impl Registrar {
    /// Starts the writer thread; it ends when every `Registrar` clone is dropped, or at
    /// [`Registrar::close`].
    pub(crate) fn start(
        registry: Arc<dyn Registry>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        queue: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let health = Arc::new(WriterHealth::new());
        let h = health.clone();
        let thread = std::thread::Builder::new()
            .name("xtt-registrar".into())
            .spawn(move || run(rx, registry, metrics, max_batch.max(1), &h))?;
        Ok(Self {
            tx,
            health,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Ends the writer thread once what is queued is committed, and waits up to `patience` for
    /// it. The thread holds a handle on the registry: unless it has ended, the process may exit
    /// with the SQLite connection still open, leaving its `-wal` and `-shm` files behind (no
    /// data lost: the next open replays them). Registrations asked for afterwards fail with
    /// "registry writer stopped". Returns whether the thread ended in time.
    pub(crate) async fn close(&self, patience: Duration) -> bool {
        let taken = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = taken else {
            return true;
        };
        let ended = async {
            // A send error means the thread has already ended (its receiver is gone).
            let _ = self.tx.send(Job::Close).await;
            tokio::task::spawn_blocking(move || thread.join()).await
        };
        matches!(tokio::time::timeout(patience, ended).await, Ok(Ok(_)))
    }

    /// The writer thread's state, for `/healthz`.
    pub(crate) fn health(&self) -> Arc<WriterHealth> {
        self.health.clone()
    }

    /// Claims the cookie and registers, durably; returns once committed.
    pub(crate) async fn register(
        &self,
        registration: Registration,
        cookie: CookieUse,
    ) -> Result<Assigned, RegisterFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Register((registration, cookie, reply)))
            .await
            .map_err(|_| RegisterFailure::Storage("registry writer stopped".into()))?;
        rx.await
            .map_err(|_| RegisterFailure::Storage("registry writer stopped".into()))?
    }
}

fn run(
    mut rx: mpsc::Receiver<Job>,
    registry: Arc<dyn Registry>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    health: &Arc<WriterHealth>,
) {
    let _stopped = StoppedOnDrop(health.clone());
    let mut last_sweep = Instant::now();
    let mut closing = false;
    while !closing {
        let mut batch = Vec::new();
        match rx.blocking_recv() {
            Some(Job::Register(r)) => batch.push(r),
            Some(Job::Close) | None => break,
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Job::Register(r)) => batch.push(r),
                Ok(Job::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        // A handshake that gave up while its request queued (its timeout, a closed connection)
        // dropped the receiver: nobody will tell the device, so nothing is stored for it
        // either. (One that gives up during the commit cannot be helped: the commit comes
        // before the answer.)
        let queued = batch.len();
        batch.retain(|(_, _, reply)| !reply.is_closed());
        if batch.len() < queued {
            tracing::debug!(
                abandoned = queued - batch.len(),
                "registrations whose handshake ended while queued were dropped"
            );
        }
        if batch.is_empty() {
            continue;
        }
        metrics.observe_commit_batch(batch.len());
        let mut regs = Vec::with_capacity(batch.len());
        let mut cookies = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (r, c, reply) in batch {
            regs.push(r);
            cookies.push(c);
            replies.push(reply);
        }
        health.begin();
        let committed = registry.register_all_once(&regs, &cookies);
        health.end();
        match committed {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r.map_err(RegisterFailure::Refused));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = regs.len(), "registry commit failed");
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(RegisterFailure::Storage(msg.clone())));
                }
            }
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            match registry.sweep_used_cookies(crate::server::unix_now()) {
                Ok(n) => tracing::debug!(swept = n, "expired used cookies deleted"),
                Err(e) => tracing::warn!(error = %e, "sweeping used cookies failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtt_proto::daa::{GroupId, Pseudonym, PSEUDONYM_LEN};
    use xtt_proto::longterm::LongtermKeyPair;
    use xtt_proto::{ClientId, UnixTime};
    use xtt_registry::{GroupRecord, SqliteRegistry};

    fn request(
        group_id: GroupId,
        n: u8,
    ) -> (
        Request,
        oneshot::Receiver<Result<Assigned, RegisterFailure>>,
    ) {
        let key = LongtermKeyPair::generate(&mut rand_core::OsRng);
        let registration = Registration {
            group_id,
            pseudonym: Pseudonym([n; PSEUDONYM_LEN]),
            requested_id: ClientId::NULL,
            longterm_key: *key.public_key(),
            now: UnixTime(1),
        };
        let cookie = CookieUse {
            id: [n; 13],
            expires_at: UnixTime(u64::from(u32::MAX)),
        };
        let (reply, rx) = oneshot::channel();
        ((registration, cookie, reply), rx)
    }

    /// An in-memory registry with one group, and that group's id.
    fn registry_with_group() -> (Arc<dyn Registry>, GroupId) {
        let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open_in_memory().unwrap());
        let group_id = GroupId([7; 32]);
        registry
            .add_group(&GroupRecord {
                group_id,
                gpk: vec![1; 258],
                basename: b"b".to_vec(),
            })
            .unwrap();
        (registry, group_id)
    }

    /// A registration whose handshake ended while it waited in the queue is not committed: the
    /// device was never told of a ClientID, so the registry gets no identity (and no claimed
    /// cookie) for it; the registration queued beside it is committed and answered.
    #[test]
    fn a_registration_abandoned_in_the_queue_is_not_committed() {
        let (registry, group_id) = registry_with_group();
        let (tx, rx) = mpsc::channel(4);
        let (abandoned, gave_up) = request(group_id, 1);
        let (waiting, answer) = request(group_id, 2);
        tx.try_send(Job::Register(abandoned)).unwrap();
        tx.try_send(Job::Register(waiting)).unwrap();
        drop(gave_up); // the handshake's timeout dropped its future
        drop(tx);
        // Runs the writer until the queue is empty and closed.
        run(
            rx,
            registry.clone(),
            Arc::new(Metrics::new()),
            16,
            &Arc::new(WriterHealth::new()),
        );
        let assigned = answer.blocking_recv().unwrap().unwrap();
        let stored = registry.identities().unwrap();
        assert_eq!(
            stored.len(),
            1,
            "only the registration still awaited is stored"
        );
        assert_eq!(stored[0].client_id, assigned.client_id);
        assert_eq!(stored[0].pseudonym, Pseudonym([2; PSEUDONYM_LEN]));
        assert!(
            registry
                .claim_cookie(&CookieUse {
                    id: [1; 13],
                    expires_at: UnixTime(u64::from(u32::MAX)),
                })
                .unwrap(),
            "the abandoned registration's cookie was not claimed"
        );
    }

    /// `close` commits what was queued before it, ends the thread (which drops its handle on
    /// the registry, so the last owner closes the database) and answers later registrations
    /// with an error instead of waiting forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_commits_the_queue_then_ends_the_writer() {
        let (registry, group_id) = registry_with_group();
        let r = Registrar::start(registry.clone(), Arc::new(Metrics::new()), 4, 8).unwrap();
        let ((reg, cookie, _), _) = request(group_id, 1);
        let queued = {
            let r = r.clone();
            tokio::spawn(async move { r.register(reg, cookie).await })
        };
        // The registration is in the queue (or committed) before close is asked.
        while r.tx.capacity() == r.tx.max_capacity() && !queued.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(r.close(Duration::from_secs(10)).await, "the writer ended");
        let assigned = queued
            .await
            .unwrap()
            .expect("queued before close: committed");
        assert_eq!(
            registry.identities().unwrap()[0].client_id,
            assigned.client_id
        );
        assert_eq!(
            Arc::strong_count(&registry),
            1,
            "the writer's handle on the registry is gone"
        );
        assert!(r.health().problem().unwrap().contains("writer stopped"));
        let ((reg, cookie, _), _) = request(group_id, 2);
        assert_eq!(
            r.register(reg, cookie).await.unwrap_err(),
            RegisterFailure::Storage("registry writer stopped".into())
        );
        assert!(
            r.close(Duration::from_secs(1)).await,
            "a second close has nothing to wait for"
        );
    }

    /// The writer's state as /healthz reads it: fine while it waits or commits briefly, a
    /// problem once a commit runs past STUCK_COMMIT, and once its thread has stopped.
    #[test]
    fn the_writer_health_names_a_stuck_commit_and_a_stopped_writer() {
        let h = WriterHealth::new();
        assert_eq!(h.problem(), None);
        h.begin();
        assert_eq!(h.problem(), None, "a commit that just began");
        // A commit that began STUCK_COMMIT + 2 s ago (the epoch moved back instead of waiting).
        let h = WriterHealth {
            epoch: Instant::now() - STUCK_COMMIT - Duration::from_secs(2),
            ..WriterHealth::new()
        };
        h.busy_since.store(1, Ordering::Release);
        let p = h.problem().unwrap();
        assert!(p.contains("has been running for 32 s"), "{p}");
        h.end();
        assert_eq!(h.problem(), None);

        // The thread ends when every Registrar is dropped: health says it stopped.
        let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open_in_memory().unwrap());
        let r = Registrar::start(registry, Arc::new(Metrics::new()), 4, 4).unwrap();
        let health = r.health();
        assert_eq!(health.problem(), None);
        drop(r);
        let t0 = Instant::now();
        while health.problem().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the writer never stopped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(health.problem().unwrap().contains("writer stopped"));
    }
}
