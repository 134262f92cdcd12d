//! Group commit: one thread owns the registry's write path, takes every registration waiting
//! when it becomes free and commits them in one transaction (one fsync), then answers each
//! handshake. Idle, a registration commits at once; under load, many share a commit.
//!
//! Each registration carries its handshake cookie, claimed in the same transaction
//! ([`Registry::register_all_once`]), so a cookie is accepted once across every server sharing
//! the registry at no extra round trip. Expired used cookies are swept from this thread every
//! [`SWEEP_EVERY`] (one statement, off the handshake path).

use std::sync::Arc;
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

#[derive(Debug, Clone)]
pub(crate) struct Registrar {
    tx: mpsc::Sender<Request>,
}

impl Registrar {
    /// Starts the writer thread; it ends when every `Registrar` clone is dropped.
    pub(crate) fn start(
        registry: Arc<dyn Registry>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        queue: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        std::thread::Builder::new()
            .name("xtt-registrar".into())
            .spawn(move || run(rx, registry, metrics, max_batch.max(1)))?;
        Ok(Self { tx })
    }

    /// Claims the cookie and registers, durably; returns once committed.
    pub(crate) async fn register(
        &self,
        registration: Registration,
        cookie: CookieUse,
    ) -> Result<Assigned, RegisterFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((registration, cookie, reply))
            .await
            .map_err(|_| RegisterFailure::Storage("registry writer stopped".into()))?;
        rx.await
            .map_err(|_| RegisterFailure::Storage("registry writer stopped".into()))?
    }
}

fn run(
    mut rx: mpsc::Receiver<Request>,
    registry: Arc<dyn Registry>,
    metrics: Arc<Metrics>,
    max_batch: usize,
) {
    let mut last_sweep = Instant::now();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
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
        match registry.register_all_once(&regs, &cookies) {
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

    /// A registration whose handshake ended while it waited in the queue is not committed: the
    /// device was never told of a ClientID, so the registry gets no identity (and no claimed
    /// cookie) for it; the registration queued beside it is committed and answered.
    #[test]
    fn a_registration_abandoned_in_the_queue_is_not_committed() {
        let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open_in_memory().unwrap());
        let group_id = GroupId([7; 32]);
        registry
            .add_group(&GroupRecord {
                group_id,
                gpk: vec![1; 258],
                basename: b"b".to_vec(),
            })
            .unwrap();
        let (tx, rx) = mpsc::channel(4);
        let (abandoned, gave_up) = request(group_id, 1);
        let (waiting, answer) = request(group_id, 2);
        tx.try_send(abandoned).unwrap();
        tx.try_send(waiting).unwrap();
        drop(gave_up); // the handshake's timeout dropped its future
        drop(tx);
        // Runs the writer until the queue is empty and closed.
        run(rx, registry.clone(), Arc::new(Metrics::new()), 16);
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
}
