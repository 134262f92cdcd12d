//! DAA verification for the server: the per-group verifier cache and the verification service,
//! plain (one signature per job) or batched (the signatures that queue up while the CPU workers
//! are busy, or that arrive within a window while signatures are frequent, verified together
//! with `GroupVerifier::verify_batch`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use tokio::sync::oneshot;
use xtt_ecdaa::{GroupPublicKey, GroupVerifier};
use xtt_proto::daa::{DaaError, DaaSignature, DaaVerifier, GroupId, Pseudonym};
use xtt_registry::{Registry, RegistryError};

use xtt_anchors::Validity;

use crate::anchors::{GroupsError, LoadedGroups, StoreGroups};
use crate::cpu::{CpuPool, Overloaded};
use crate::metrics::Metrics;

/// Verifiers of the accepted groups, built once (each precomputes pairing lines). The groups
/// come from the registry, or from a trust-anchor store ([`crate::anchors::StoreGroups`]) whose
/// groups carry validity windows checked at each lookup.
#[derive(Debug)]
pub(crate) struct Groups {
    registry: Arc<dyn Registry>,
    store: Option<StoreGroups>,
    verifiers: RwLock<HashMap<GroupId, Cached>>,
    last_reload: Mutex<Instant>,
}

#[derive(Debug)]
struct Cached {
    verifier: Arc<GroupVerifier>,
    /// `None` for registry groups (no window).
    validity: Option<Validity>,
}

/// Unknown group ids trigger a reload of the registry's groups at most this often, so a group
/// added while the server runs is picked up without letting clients hammer the database.
const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// With an anchor store, its revision is checked at most this often (on the handshake path):
/// a rotation or a new group is seen within this delay, without a restart.
const STORE_POLL_INTERVAL: Duration = Duration::from_millis(500);

fn build(records: LoadedGroups) -> HashMap<GroupId, Cached> {
    let mut map = HashMap::new();
    for (g, validity) in records {
        let verifier =
            GroupPublicKey::from_bytes(&g.gpk).and_then(|gpk| GroupVerifier::new(gpk, &g.basename));
        match verifier {
            Ok(v) if v.group_id() == g.group_id => {
                map.insert(
                    g.group_id,
                    Cached {
                        verifier: Arc::new(v),
                        validity,
                    },
                );
            }
            Ok(_) => {
                tracing::warn!(group = ?g.group_id, "group id does not match SHA-256(gpk ‖ basename); ignored")
            }
            Err(e) => {
                tracing::warn!(group = ?g.group_id, error = %e, "invalid group; ignored")
            }
        }
    }
    map
}

fn registry_groups(registry: &dyn Registry) -> Result<LoadedGroups, RegistryError> {
    Ok(registry.groups()?.into_iter().map(|g| (g, None)).collect())
}

impl Groups {
    /// Loads every group (blocking).
    pub(crate) fn load(
        registry: Arc<dyn Registry>,
        store: Option<StoreGroups>,
    ) -> Result<Self, GroupsError> {
        let records = match &store {
            Some(s) => s.load(&*registry)?,
            None => registry_groups(&*registry)?,
        };
        Ok(Self {
            registry,
            store,
            verifiers: RwLock::new(build(records)),
            last_reload: Mutex::new(Instant::now()),
        })
    }

    pub(crate) fn len(&self) -> usize {
        match self.verifiers.read() {
            Ok(m) => m.len(),
            Err(p) => p.into_inner().len(),
        }
    }

    /// The verifier of `id` if that group is accepted at `now`.
    pub(crate) fn get(&self, id: &GroupId, now: u64) -> Option<Arc<GroupVerifier>> {
        let map = match self.verifiers.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.get(id)
            .filter(|c| c.validity.is_none_or(|v| v.contains(now)))
            .map(|c| c.verifier.clone())
    }

    /// Whether the anchor store's revision should be checked before a lookup.
    pub(crate) fn poll_due(&self) -> bool {
        self.store.is_some()
            && match self.last_reload.lock() {
                Ok(g) => g.elapsed() >= STORE_POLL_INTERVAL,
                Err(p) => p.into_inner().elapsed() >= STORE_POLL_INTERVAL,
            }
    }

    /// Reloads the groups (blocking) unless that happened recently: from the registry, or
    /// from the anchor store if its revision changed. Returns whether it reloaded.
    pub(crate) fn reload_if_stale(&self) -> Result<bool, GroupsError> {
        {
            let mut last = match self.last_reload.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let interval = if self.store.is_some() {
                STORE_POLL_INTERVAL
            } else {
                MIN_RELOAD_INTERVAL
            };
            if last.elapsed() < interval {
                return Ok(false);
            }
            *last = Instant::now();
        }
        let records = match &self.store {
            Some(s) => match s.load_if_changed(&*self.registry)? {
                Some(r) => r,
                None => return Ok(false),
            },
            None => registry_groups(&*self.registry)?,
        };
        let map = build(records);
        tracing::info!(groups = map.len(), "DAA groups reloaded");
        match self.verifiers.write() {
            Ok(mut m) => *m = map,
            Err(p) => *p.into_inner() = map,
        }
        Ok(true)
    }
}

/// Why a signature was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VerifyFailure {
    Invalid(DaaError),
    Overloaded,
}

type Reply = oneshot::Sender<Result<Pseudonym, VerifyFailure>>;

pub(crate) struct Job {
    group_id: GroupId,
    verifier: Arc<GroupVerifier>,
    message: [u8; 64],
    signature: DaaSignature,
    reply: Reply,
    arrived: Instant,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

/// Verifies DAA signatures off the reactor.
#[derive(Debug)]
pub(crate) enum DaaService {
    Plain { cpu: CpuPool, metrics: Arc<Metrics> },
    Batched(Arc<Batcher>),
}

impl DaaService {
    pub(crate) fn plain(cpu: CpuPool, metrics: Arc<Metrics>) -> Self {
        Self::Plain { cpu, metrics }
    }

    /// Batched verification: at most `max_batch` signatures per batch, a batch held back for
    /// at most `window` after its oldest signature arrived, at most `max_pending` signatures
    /// waiting (beyond that, handshakes fail as overloaded).
    pub(crate) fn batched(
        cpu: CpuPool,
        metrics: Arc<Metrics>,
        max_batch: usize,
        window: Duration,
        max_pending: usize,
    ) -> Self {
        Self::Batched(Arc::new(Batcher {
            cpu,
            metrics,
            max_batch: max_batch.max(1),
            window,
            max_pending: max_pending.max(1),
            state: Mutex::new(BatchState::default()),
        }))
    }

    pub(crate) async fn verify(
        &self,
        group_id: GroupId,
        verifier: Arc<GroupVerifier>,
        message: [u8; 64],
        signature: DaaSignature,
    ) -> Result<Pseudonym, VerifyFailure> {
        match self {
            DaaService::Plain { cpu, metrics } => {
                let metrics = metrics.clone();
                cpu.run(move || {
                    metrics.observe_daa_batch(1);
                    DaaVerifier::verify(&*verifier, &message, &signature, &mut OsRng)
                })
                .await
                .map_err(|Overloaded| VerifyFailure::Overloaded)?
                .map_err(VerifyFailure::Invalid)
            }
            DaaService::Batched(batcher) => {
                let (reply, rx) = oneshot::channel();
                let timer = Batcher::enqueue(
                    batcher,
                    Job {
                        group_id,
                        verifier,
                        message,
                        signature,
                        reply,
                        arrived: Instant::now(),
                    },
                )?;
                if let Some(t) = timer {
                    let batcher = batcher.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(t.at.into()).await;
                        Batcher::timer_fired(&batcher, t.generation);
                    });
                }
                rx.await.map_err(|_| VerifyFailure::Overloaded)?
            }
        }
    }
}

/// Queue-driven batching. Signatures wait in one queue; at most one "verify what is waiting"
/// job sits in the CPU pool's queue at a time. When a worker reaches that job it takes every
/// waiting signature of the oldest signature's group (up to `max_batch`) and verifies them
/// together, so the batch is whatever arrived while the job waited its turn. If other work is
/// queued behind it, the batch is not full and its oldest signature is younger than the window,
/// the job goes to the back of the queue instead (the cheap steps of other handshakes run
/// first, and more signatures join): holding back thus adds at most the window to a
/// signature's wait. While one worker verifies a batch, the next job is already queued, so every
/// worker can verify.
///
/// Gathering: a batch of n costs one pairing product (≈ 4 single verifications' worth) plus n
/// Schnorr checks, so batches of one or two save little. When signatures arrive often enough
/// that several more are expected within the window (a running mean of the gaps between
/// arrivals), the first signature of a new batch does not start a job at once: a timer starts
/// it when the window has passed since that signature arrived, or earlier when `max_batch`
/// have gathered. A server that sees signatures rarely verifies each at once.
#[derive(Debug)]
pub(crate) struct Batcher {
    cpu: CpuPool,
    metrics: Arc<Metrics>,
    max_batch: usize,
    window: Duration,
    max_pending: usize,
    state: Mutex<BatchState>,
}

#[derive(Debug, Default)]
struct BatchState {
    /// Waiting signatures, oldest first.
    waiting: VecDeque<Job>,
    /// Whether a verify job is in the pool's queue and has not started yet.
    scheduled: bool,
    /// The gathering timer armed for the waiting signatures, by generation (a timer that fires
    /// after its batch was started early finds another generation, or none, and does nothing).
    timer: Option<u64>,
    generation: u64,
    /// When the last signature arrived, and the running mean of the gaps between arrivals.
    last_arrival: Option<Instant>,
    mean_gap: Option<Duration>,
}

/// Gather while at least this many more signatures are expected within the window.
const GATHER_MIN_EXPECTED: u32 = 4;

impl BatchState {
    /// Updates the running mean of the arrival gaps (weight 1/8 for the newest gap).
    fn note_arrival(&mut self, now: Instant) {
        if let Some(last) = self.last_arrival {
            let gap = now.saturating_duration_since(last);
            self.mean_gap = Some(match self.mean_gap {
                None => gap,
                Some(m) => (m * 7 + gap) / 8,
            });
        }
        self.last_arrival = Some(now);
    }

    /// Whether signatures arrive often enough that waiting for the window gathers a batch.
    fn busy(&self, window: Duration) -> bool {
        self.mean_gap
            .is_some_and(|g| g.saturating_mul(GATHER_MIN_EXPECTED) <= window)
    }
}

/// A gathering timer [`Batcher::enqueue`] asks its caller to arm: at `at`, call
/// [`Batcher::timer_fired`] with `generation`.
#[derive(Debug)]
pub(crate) struct GatherTimer {
    pub(crate) at: Instant,
    pub(crate) generation: u64,
}

impl Batcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Queues `job`. Returns a timer for the caller to arm when this signature starts a
    /// gathering batch (see the type's docs).
    fn enqueue(this: &Arc<Self>, job: Job) -> Result<Option<GatherTimer>, VerifyFailure> {
        let mut st = this.lock();
        if st.waiting.len() >= this.max_pending {
            return Err(VerifyFailure::Overloaded);
        }
        st.note_arrival(job.arrived);
        let arrived = job.arrived;
        st.waiting.push_back(job);
        if st.scheduled {
            return Ok(None);
        }
        if st.timer.is_some() {
            if st.waiting.len() < this.max_batch {
                return Ok(None);
            }
            st.timer = None; // full: start now
        } else if st.busy(this.window) && this.max_batch > 1 {
            st.generation = st.generation.wrapping_add(1);
            st.timer = Some(st.generation);
            return Ok(Some(GatherTimer {
                at: arrived + this.window,
                generation: st.generation,
            }));
        }
        st.scheduled = true;
        drop(st);
        Self::schedule(this);
        Ok(None)
    }

    /// A gathering timer ran out: starts the batch it was armed for, unless that batch was
    /// already started because it filled up.
    pub(crate) fn timer_fired(this: &Arc<Self>, generation: u64) {
        {
            let mut st = this.lock();
            if st.timer != Some(generation) {
                return;
            }
            st.timer = None;
            if st.scheduled || st.waiting.is_empty() {
                return;
            }
            st.scheduled = true;
        }
        Self::schedule(this);
    }

    /// Queues a verify job. The pool refuses only when saturated: then every waiting
    /// signature's handshake fails as overloaded (their reply senders are dropped).
    fn schedule(this: &Arc<Self>) {
        let me = this.clone();
        if this.cpu.submit(move || me.run_once()).is_err() {
            let dropped = {
                let mut st = this.lock();
                st.scheduled = false;
                std::mem::take(&mut st.waiting)
            };
            drop(dropped);
        }
    }

    /// On a worker: defers (see the type's docs), or takes the batch, queues the next job if
    /// signatures remain, and verifies.
    fn run_once(self: Arc<Self>) {
        let (batch, again) = {
            let mut st = self.lock();
            let hold = st.waiting.front().is_some_and(|oldest| {
                st.waiting.len() < self.max_batch
                    && oldest.arrived.elapsed() < self.window
                    && self.cpu.has_waiting_jobs()
            });
            if hold {
                // `scheduled` stays set: this job goes to the back of the pool's FIFO queue and is
                // still the one in it.
                drop(st);
                Self::schedule(&self);
                return;
            }
            st.scheduled = false;
            let batch = take_batch(&mut st.waiting, self.max_batch);
            let again = !st.waiting.is_empty();
            st.scheduled = again;
            (batch, again)
        };
        if again {
            Self::schedule(&self);
        }
        verify_jobs(batch, &self.metrics);
    }
}

/// Removes up to `max` jobs of the oldest job's group from `waiting`, keeping the order of the
/// rest.
fn take_batch(waiting: &mut VecDeque<Job>, max: usize) -> Vec<Job> {
    let Some(group) = waiting.front().map(|j| j.group_id) else {
        return Vec::new();
    };
    let mut batch = Vec::with_capacity(waiting.len().min(max));
    let mut rest = VecDeque::with_capacity(waiting.len());
    for job in waiting.drain(..) {
        if batch.len() < max && job.group_id == group {
            batch.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *waiting = rest;
    batch
}

/// Verifies one group's jobs together and answers each.
fn verify_jobs(jobs: Vec<Job>, metrics: &Metrics) {
    metrics.observe_daa_batch(jobs.len());
    let Some(verifier) = jobs.first().map(|j| j.verifier.clone()) else {
        return;
    };
    if let [job] = jobs.as_slice() {
        let r = DaaVerifier::verify(&*verifier, &job.message, &job.signature, &mut OsRng)
            .map_err(VerifyFailure::Invalid);
        if let Some(job) = jobs.into_iter().next() {
            let _ = job.reply.send(r);
        }
        return;
    }
    let items: Vec<(&[u8], &[u8])> = jobs
        .iter()
        .map(|j| (&j.message[..], &j.signature.0[..]))
        .collect();
    let results: Vec<Result<Pseudonym, VerifyFailure>> =
        match verifier.verify_batch(&items, &mut OsRng) {
            Ok(all) => all.into_iter().map(to_pseudonym).collect(),
            Err(each) => each
                .into_iter()
                .map(|r| match r {
                    Ok(k) => to_pseudonym(k),
                    Err(e) => Err(VerifyFailure::Invalid(DaaError::from(e))),
                })
                .collect(),
        };
    drop(items);
    for (job, r) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(r);
    }
}

/// XTT requires a basename, so a verified signature always carries a pseudonym; a verifier
/// without one (impossible for registry groups, which are built with their basename) fails.
fn to_pseudonym(k: Option<[u8; 65]>) -> Result<Pseudonym, VerifyFailure> {
    k.map(Pseudonym)
        .ok_or(VerifyFailure::Invalid(DaaError::InvalidSignature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtt_ecdaa::{generate_member_key, Issuer, Member};
    use xtt_proto::daa::DaaSigner;

    #[test]
    fn a_batch_with_bad_signatures_fails_only_those() {
        let issuer = Issuer::generate(&mut OsRng);
        let verifier =
            Arc::new(GroupVerifier::new(issuer.group_public_key().clone(), b"bsn").unwrap());
        let members: Vec<Member> = (0..3)
            .map(|_| {
                let (sk, req) = generate_member_key(b"n", &mut OsRng);
                let (cred, _) = issuer.issue_credential(&req, b"n", &mut OsRng).unwrap();
                Member::new(sk, cred, issuer.group_public_key(), b"bsn").unwrap()
            })
            .collect();
        let mut receivers = Vec::new();
        let mut jobs = Vec::new();
        for i in 0..8usize {
            let member = &members[i % 3];
            let message = [u8::try_from(i).unwrap(); 64];
            let mut signature = DaaSigner::sign(member, &message, &mut OsRng).unwrap();
            if i == 2 || i == 5 {
                signature.0[40] ^= 1;
            }
            let (reply, rx) = oneshot::channel();
            receivers.push((i, member.pseudonym(), rx));
            jobs.push(Job {
                group_id: verifier.group_id(),
                verifier: verifier.clone(),
                message,
                signature,
                reply,
                arrived: Instant::now(),
            });
        }
        let metrics = Metrics::new();
        verify_jobs(jobs, &metrics);
        for (i, nym, mut rx) in receivers {
            let r = rx.try_recv().unwrap();
            if i == 2 || i == 5 {
                assert!(matches!(r, Err(VerifyFailure::Invalid(_))), "item {i}");
            } else {
                assert_eq!(r.map(|p| p.0), Ok(nym.unwrap()), "item {i}");
            }
        }
        assert!(metrics.render().contains("xtt_daa_batch_size_sum 8.0"));
    }

    fn batch_count(metrics: &Metrics) -> usize {
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("xtt_daa_batch_size_count "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// 1 + `n` signatures of one member, each over its own message.
    fn signatures(n: u8) -> (Arc<GroupVerifier>, Vec<([u8; 64], DaaSignature)>) {
        let issuer = Issuer::generate(&mut OsRng);
        let verifier =
            Arc::new(GroupVerifier::new(issuer.group_public_key().clone(), b"bsn").unwrap());
        let (sk, req) = generate_member_key(b"n", &mut OsRng);
        let (cred, _) = issuer.issue_credential(&req, b"n", &mut OsRng).unwrap();
        let member = Member::new(sk, cred, issuer.group_public_key(), b"bsn").unwrap();
        let signed = (0..=n)
            .map(|i| {
                let m = [i; 64];
                (m, DaaSigner::sign(&member, &m, &mut OsRng).unwrap())
            })
            .collect();
        (verifier, signed)
    }

    /// Bounds a wait that ends long before it unless something is held back for its window.
    const GUARD: Duration = Duration::from_secs(60);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_signature_goes_at_once_and_a_stream_of_them_is_gathered() {
        let (verifier, signed) = signatures(12);
        let metrics = Arc::new(Metrics::new());
        // A window far longer than the test: whatever waits for it shows as a hang (GUARD), so
        // the test observes what is verified at once and what is gathered, not how fast.
        let window = Duration::from_secs(3600);
        let service = Arc::new(DaaService::batched(
            CpuPool::new(2, 64).unwrap(),
            metrics.clone(),
            12,
            window,
            64,
        ));
        let gid = verifier.group_id();

        // Nothing arrived before: verified at once, alone, not held for the window.
        let (m, sig) = signed[0].clone();
        let lone = tokio::time::timeout(GUARD, service.verify(gid, verifier.clone(), m, sig))
            .await
            .expect("a lone signature was held back for its window");
        assert!(lone.is_ok());
        assert_eq!(batch_count(&metrics), 1);

        // Twelve more, one after the other: signatures are frequent now, so the first of them
        // waits for others (its window) instead of going alone, and the twelfth fills the
        // batch, which then goes at once. Each is sent once the previous one is either held
        // for gathering (queued under the window's timer, no verify job started) or verified:
        // without gathering, each would be verified alone before the next arrives.
        let DaaService::Batched(batcher) = &*service else {
            unreachable!()
        };
        let mut tasks = Vec::new();
        for (k, (m, sig)) in signed[1..].iter().cloned().enumerate() {
            let (service, verifier) = (service.clone(), verifier.clone());
            let task = tokio::spawn(async move { service.verify(gid, verifier, m, sig).await });
            let deadline = Instant::now() + GUARD;
            loop {
                let held = {
                    let st = batcher.lock();
                    st.timer.is_some() && !st.scheduled && st.waiting.len() == k + 1
                };
                if held || task.is_finished() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "signature {k} neither held nor verified"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tasks.push(task);
        }
        for t in tasks {
            let r = tokio::time::timeout(GUARD, t)
                .await
                .expect("a full batch waited for its window");
            assert!(r.unwrap().is_ok());
        }
        assert_eq!(
            batch_count(&metrics) - 1,
            1,
            "12 frequent signatures are verified as one batch"
        );
        assert!(metrics.render().contains("xtt_daa_batch_size_sum 13.0"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gathered_batch_that_never_fills_goes_when_its_window_ends() {
        let (verifier, signed) = signatures(3);
        let metrics = Arc::new(Metrics::new());
        let service = DaaService::batched(
            CpuPool::new(2, 64).unwrap(),
            metrics.clone(),
            32,
            Duration::from_millis(300),
            64,
        );
        let gid = verifier.group_id();
        let verify = |i: usize| {
            let (m, sig) = signed[i].clone();
            service.verify(gid, verifier.clone(), m, sig)
        };
        assert!(verify(0).await.is_ok());
        // Frequent now: the next ones are gathered, far fewer than a batch; only the window's
        // timer can start them (GUARD only bounds the test should it never fire).
        let (a, b, c) = tokio::time::timeout(GUARD, async {
            tokio::join!(verify(1), verify(2), verify(3))
        })
        .await
        .expect("a batch that never filled was never started");
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert!(metrics.render().contains("xtt_daa_batch_size_sum 4.0"));
    }
}
