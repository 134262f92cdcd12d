//! The server's use of a trust-anchor store (xtt-anchors; `anchors = "PATH"` in the
//! configuration), following the seams documented in `xtt_anchors::seam`:
//!
//! * [`StoreGroups`]: the DAA groups the server accepts are the store's daa-group anchors with
//!   the attestation role. The server keeps its own verifier cache (batched verification needs
//!   shared verifiers), so it reads [`AnchorStore::daa_group_records`] and checks each record's
//!   validity at handshake time; the cache is rebuilt when [`AnchorStore::revision`] changes,
//!   which another process (`xtt anchors rotate`) may cause at any time. Each group is also added
//!   to the registry, whose identity rows refer to their group.
//! * [`IdentityRecorder`]: after a device is told its ClientID, its identity is recorded in the
//!   store ("provisioned by XTT", vouched for by its group and by the server certificate if that
//!   is stored) so that the trust graph shows devices. One writer thread commits whatever has
//!   queued up in one transaction, off the handshake path; the registry remains the record of
//!   truth for identities, the store's copy is for the graph.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use xtt_anchors::seam::xtt_identity_anchor;
use xtt_anchors::{AnchorError, AnchorKind, AnchorStore, Fingerprint, Validity};
use xtt_proto::daa::GroupId;
use xtt_proto::longterm::LongtermPublicKey;
use xtt_proto::ClientId;
use xtt_registry::{GroupRecord, Registry, RegistryError};

/// Loading groups failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GroupsError {
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("anchor store: {0}")]
    Anchors(#[from] AnchorError),
}

fn unix_now() -> u64 {
    crate::server::unix_now().0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Groups with their validity windows (`None`: a registry group, no window).
pub(crate) type LoadedGroups = Vec<(GroupRecord, Option<Validity>)>;

/// The DAA groups of an anchor store, as the server's group cache loads them.
pub(crate) struct StoreGroups {
    path: PathBuf,
    /// One connection (the store is `Send`, not `Sync`); only reloads take it.
    store: Mutex<AnchorStore>,
    /// The revision the current cache was built from.
    revision: Mutex<Option<u64>>,
}

impl std::fmt::Debug for StoreGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreGroups")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StoreGroups {
    /// Opens the store at `path` (blocking). A missing file is an error: a server pointed at a
    /// store that does not exist would otherwise start with an empty one and refuse everyone.
    pub(crate) fn open(path: &Path) -> Result<Self, AnchorError> {
        if !path.exists() {
            return Err(AnchorError::Io {
                path: path.display().to_string(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no anchor store here (create it with `xtt anchors import ...`)",
                ),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            store: Mutex::new(AnchorStore::open(path)?),
            revision: Mutex::new(None),
        })
    }

    /// Every group whose window has not closed, with its window; each is added to the
    /// registry if missing (blocking).
    pub(crate) fn load(&self, registry: &dyn Registry) -> Result<LoadedGroups, GroupsError> {
        let (revision, records) = {
            let store = lock(&self.store);
            // Revision first: a change racing with the read below shows up as a new revision at
            // the next poll, so it is never missed.
            (store.revision()?, store.daa_group_records(unix_now())?)
        };
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let record = GroupRecord {
                group_id: r.group_id,
                gpk: r.gpk,
                basename: r.basename,
            };
            if registry.group(&record.group_id)?.is_none() {
                registry.add_group(&record)?;
            }
            out.push((record, Some(r.validity)));
        }
        *lock(&self.revision) = Some(revision);
        Ok(out)
    }

    /// [`Self::load`] if the store changed since the last load, else `None`.
    pub(crate) fn load_if_changed(
        &self,
        registry: &dyn Registry,
    ) -> Result<Option<LoadedGroups>, GroupsError> {
        let current = lock(&self.store).revision()?;
        if *lock(&self.revision) == Some(current) {
            return Ok(None);
        }
        self.load(registry).map(Some)
    }
}

/// One provisioned identity to record.
#[derive(Debug)]
pub(crate) struct Provisioned {
    pub(crate) client_id: ClientId,
    pub(crate) longterm_key: LongtermPublicKey,
    pub(crate) group_id: GroupId,
}

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Job {
    Record(Provisioned),
    /// Commit everything queued before this, then answer.
    Flush(SyncSender<()>),
}

/// Records provisioned identities in the anchor store from a writer thread of its own.
#[derive(Debug, Clone)]
pub(crate) struct IdentityRecorder {
    tx: SyncSender<Job>,
}

/// Most identities committed in one transaction.
const MAX_RECORD_BATCH: usize = 256;

impl IdentityRecorder {
    /// Opens its own connection to the store at `path` and starts the writer; `server_cert` is
    /// the certificate this server presents (its anchor, if stored, vouches for the devices).
    pub(crate) fn start(
        path: &Path,
        server_cert: Vec<u8>,
        source: String,
        queue: usize,
    ) -> Result<Self, GroupsError> {
        let mut store = AnchorStore::open(path)?;
        let server_fp = Fingerprint::of(AnchorKind::XttServer, &server_cert);
        let commit = move |batch: &[Provisioned]| {
            if let Err(e) = record_batch(&mut store, batch, &server_fp, &source) {
                tracing::error!(error = %e, identities = batch.len(), "recording identities in the anchor store failed");
            }
        };
        Self::spawn(queue, commit).map_err(|e| {
            AnchorError::Io {
                path: path.display().to_string(),
                cause: e,
            }
            .into()
        })
    }

    /// Starts the writer thread, which commits each batch with `commit`. A parameter rather than
    /// a call to [`record_batch`] so that a test can hold a commit and see that no flush is
    /// answered before it (a closure known at compile time: nothing added at run time).
    fn spawn(
        queue: usize,
        commit: impl FnMut(&[Provisioned]) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name("xtt-anchor-recorder".into())
            .spawn(move || record_loop(rx, commit))?;
        Ok(Self { tx })
    }

    /// Queues one identity; a full queue drops it with a warning (the registry has it; only
    /// the graph misses it until the device provisions again).
    pub(crate) fn record(&self, p: Provisioned) {
        match self.tx.try_send(Job::Record(p)) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                if let Job::Record(p) = job {
                    tracing::warn!(client_id = %p.client_id, "anchor store writer busy: identity not recorded in the store")
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("anchor store writer stopped: identity not recorded")
            }
        }
    }

    /// Waits (blocking, at most `patience`) until every identity queued so far is committed:
    /// at shutdown, so a process that exits right after the server stops has recorded what
    /// its last handshakes provisioned. Returns whether it got there.
    pub(crate) fn flush(&self, patience: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + patience;
        let (ack, done) = sync_channel(1);
        let mut job = Job::Flush(ack);
        loop {
            match self.tx.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    job = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        done.recv_timeout(left).is_ok()
    }
}

fn record_loop(rx: Receiver<Job>, mut commit: impl FnMut(&[Provisioned])) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut flushes = Vec::new();
        while let Some(job) = next.take() {
            match job {
                Job::Record(p) => batch.push(p),
                Job::Flush(ack) => flushes.push(ack),
            }
            if batch.len() < MAX_RECORD_BATCH && flushes.is_empty() {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit(&batch);
            batch.clear();
        }
        for ack in flushes {
            let _ = ack.try_send(());
        }
    }
}

fn record_batch(
    store: &mut AnchorStore,
    batch: &[Provisioned],
    server_fp: &Fingerprint,
    source: &str,
) -> Result<(), AnchorError> {
    let server = store.get(server_fp).ok().map(|a| a.fingerprint);
    let mut groups: HashMap<GroupId, Option<Fingerprint>> = HashMap::new();
    let mut anchors = Vec::with_capacity(batch.len());
    for p in batch {
        let group = match groups.get(&p.group_id) {
            Some(g) => *g,
            None => {
                let g = store.daa_group_fingerprint(&p.group_id)?;
                groups.insert(p.group_id, g);
                g
            }
        };
        let vouchers: Vec<Fingerprint> = server.into_iter().chain(group).collect();
        anchors.push(xtt_identity_anchor(
            &p.client_id,
            &p.longterm_key,
            &vouchers,
            source,
        ));
    }
    // `restore` asks whether each new identity is revoked, and refuses the whole batch for one
    // that is: an operator revoked it (`xtt anchors remove`), and the device provisioned again
    // with the same key. Only then is each identity's revocation looked up here, to leave the
    // revoked ones out so that the other devices' identities are still recorded (asking for
    // every identity before every restore would ask twice, for nothing in almost every batch).
    let added = match store.restore(anchors.clone(), Vec::new(), unix_now()) {
        Err(AnchorError::Revoked { .. }) => {
            let mut kept = Vec::with_capacity(anchors.len());
            for (p, anchor) in batch.iter().zip(anchors) {
                let fp = anchor.fingerprint();
                if store.revocation(&fp)?.is_some() {
                    tracing::warn!(client_id = %p.client_id, fingerprint = %fp, "a revoked identity provisioned again: not recorded in the anchor store");
                    continue;
                }
                kept.push(anchor);
            }
            store.restore(kept, Vec::new(), unix_now())?
        }
        other => other?,
    };
    tracing::debug!(
        added = added.len(),
        "provisioned identities recorded in the anchor store"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use xtt_proto::longterm::LongtermKeyPair;

    fn identity(i: usize, key: &LongtermKeyPair) -> Provisioned {
        let mut id = [0u8; xtt_proto::identity::CLIENT_ID_LEN];
        id[..4].copy_from_slice(&u32::try_from(i).unwrap().to_be_bytes());
        Provisioned {
            client_id: ClientId(id),
            longterm_key: *key.public_key(),
            group_id: GroupId([7; xtt_proto::daa::GROUP_ID_LEN]),
        }
    }

    /// A flush is answered only once the batches queued before it are committed, the last one
    /// included: each commit is held until the test has seen that the flush is not answered yet
    /// (so an answer sent before a commit is caught whatever the timing).
    #[test]
    fn a_flush_is_not_answered_before_the_last_batch_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchors.db");
        let mut store = AnchorStore::open(&path).unwrap();
        let server_fp = Fingerprint::of(AnchorKind::XttServer, &[1, 2, 3]);
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let recorder = IdentityRecorder::spawn(1024, move |batch: &[Provisioned]| {
            entered_tx.send(batch.len()).unwrap();
            let _ = gate.recv(); // until the test lets it go (or is gone)
            record_batch(&mut store, batch, &server_fp, "test").unwrap();
        })
        .unwrap();
        let patience = std::time::Duration::from_secs(30);
        let key = LongtermKeyPair::generate(&mut OsRng);
        // One identity, its commit held: all the rest queue up behind it, so the writer then
        // takes two full batches and a last one of six with the flush.
        recorder.record(identity(0, &key));
        assert_eq!(entered.recv_timeout(patience), Ok(1));
        let n = MAX_RECORD_BATCH * 2 + 7;
        for i in 1..n {
            recorder.record(identity(i, &key));
        }
        let (ack, answered) = sync_channel(1);
        recorder.tx.try_send(Job::Flush(ack)).unwrap();
        let mut committing = 1;
        loop {
            assert_eq!(
                answered.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Empty),
                "the flush was answered while a batch queued before it was being committed"
            );
            release.send(()).unwrap();
            if committing == n {
                break;
            }
            committing += entered.recv_timeout(patience).unwrap();
        }
        assert_eq!(committing, n);
        assert_eq!(answered.recv_timeout(patience), Ok(()));
        let recorded = identities(&AnchorStore::open(&path).unwrap()).len();
        assert_eq!(recorded, n, "all committed when the flush is answered");
    }

    /// The device identities in `store`.
    fn identities(store: &AnchorStore) -> Vec<Fingerprint> {
        let all = store.list().unwrap().into_iter();
        all.filter(|a| a.kind == AnchorKind::DeviceIdentity)
            .map(|a| a.fingerprint)
            .collect()
    }

    /// What was queued before a flush is in the store when it returns, across several of the
    /// writer's batches: a process that exits right after the server stops loses none of it.
    #[test]
    fn a_flush_returns_once_everything_queued_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchors.db");
        drop(AnchorStore::open(&path).unwrap());
        let recorder = IdentityRecorder::start(&path, vec![1, 2, 3], "test".into(), 1024).unwrap();
        let key = LongtermKeyPair::generate(&mut OsRng);
        let n = MAX_RECORD_BATCH * 2 + 7;
        for i in 0..n {
            recorder.record(identity(i, &key));
        }
        assert!(recorder.flush(std::time::Duration::from_secs(30)));
        let recorded = identities(&AnchorStore::open(&path).unwrap()).len();
        assert_eq!(recorded, n);
    }

    /// A device whose identity an operator revoked provisions again with the same key: that
    /// identity is left out, and the others of the same batch are still recorded.
    #[test]
    fn a_revoked_identity_does_not_keep_its_batch_out_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = AnchorStore::open(&dir.path().join("anchors.db")).unwrap();
        let server_fp = Fingerprint::of(AnchorKind::XttServer, &[1, 2, 3]);
        let key = LongtermKeyPair::generate(&mut OsRng);
        let first = [identity(0, &key)];
        record_batch(&mut store, &first, &server_fp, "test").unwrap();
        let revoked = identities(&store)[0];
        store.revoke(&revoked, unix_now()).unwrap();
        let batch = [identity(1, &key), identity(0, &key), identity(2, &key)];
        record_batch(&mut store, &batch, &server_fp, "test").unwrap();
        let recorded = identities(&store);
        assert_eq!(recorded.len(), 2, "the other two identities are recorded");
        assert!(!recorded.contains(&revoked), "the revoked one is not back");
    }
}
