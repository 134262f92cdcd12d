//! DAA verification for the server: the per-group verifier cache and the verification service,
//! plain (one signature per job) or batched (signatures of one group collected while the CPU
//! workers are busy, for at most a window, verified together with
//! `GroupVerifier::verify_batch`).

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
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
}

/// Verifies DAA signatures off the reactor.
#[derive(Debug)]
pub(crate) enum DaaService {
    Plain { cpu: CpuPool, metrics: Arc<Metrics> },
    Batched { jobs: SyncSender<Job> },
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

impl DaaService {
    pub(crate) fn plain(cpu: CpuPool, metrics: Arc<Metrics>) -> Self {
        Self::Plain { cpu, metrics }
    }

    /// Starts the batch collector thread; it ends when the service is dropped.
    pub(crate) fn batched(
        cpu: CpuPool,
        metrics: Arc<Metrics>,
        max_batch: usize,
        window: Duration,
        queue: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name("xtt-daa-batcher".into())
            .spawn(move || collect(rx, cpu, metrics, max_batch.max(1), window))?;
        Ok(Self::Batched { jobs: tx })
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
            DaaService::Batched { jobs } => {
                let (reply, rx) = oneshot::channel();
                let job = Job {
                    group_id,
                    verifier,
                    message,
                    signature,
                    reply,
                };
                match jobs.try_send(job) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                        return Err(VerifyFailure::Overloaded)
                    }
                }
                rx.await.map_err(|_| VerifyFailure::Overloaded)?
            }
        }
    }
}

/// How often the collector checks for an idle worker while it holds signatures back.
const IDLE_POLL: Duration = Duration::from_micros(250);

/// The collector. A signature is held back only while every CPU worker is busy: then signatures
/// of one group accumulate until `max_batch` of them are there, a worker becomes free, or the
/// window (counted from the first one held) ends. An idle server therefore adds no latency, and
/// a loaded one verifies in batches as large as the load allows.
fn collect(
    rx: Receiver<Job>,
    cpu: CpuPool,
    metrics: Arc<Metrics>,
    max_batch: usize,
    window: Duration,
) {
    let mut pending: HashMap<GroupId, Vec<Job>> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + window;
        add(&mut pending, first, max_batch, &cpu, &metrics);
        let mut disconnected = false;
        while !pending.is_empty() && !cpu.has_idle_worker() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout((deadline - now).min(IDLE_POLL)) {
                Ok(job) => add(&mut pending, job, max_batch, &cpu, &metrics),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        // Everything that arrived meanwhile goes too, without waiting.
        while let Ok(job) = rx.try_recv() {
            add(&mut pending, job, max_batch, &cpu, &metrics);
        }
        for (_, jobs) in pending.drain() {
            dispatch(jobs, &cpu, &metrics);
        }
        if disconnected {
            return;
        }
    }
}

fn add(
    pending: &mut HashMap<GroupId, Vec<Job>>,
    job: Job,
    max_batch: usize,
    cpu: &CpuPool,
    metrics: &Arc<Metrics>,
) {
    let group = job.group_id;
    let jobs = pending.entry(group).or_default();
    jobs.push(job);
    if jobs.len() >= max_batch {
        if let Some(full) = pending.remove(&group) {
            dispatch(full, cpu, metrics);
        }
    }
}

fn dispatch(jobs: Vec<Job>, cpu: &CpuPool, metrics: &Arc<Metrics>) {
    let metrics = metrics.clone();
    // The pool refuses only when saturated; the jobs' handshakes then fail as overloaded (their
    // reply senders are dropped with the closure).
    let _ = cpu.submit(move || verify_jobs(jobs, &metrics));
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
}
