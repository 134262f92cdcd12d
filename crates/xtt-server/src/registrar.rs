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
