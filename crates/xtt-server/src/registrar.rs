//! Group commit: one thread owns the registry's write path, takes every registration waiting
//! when it becomes free and commits them in one transaction (one fsync), then answers each
//! handshake. Idle, a registration commits at once; under load, many share a commit.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use xtt_registry::{Assigned, Refusal, Registration, Registry};

use crate::metrics::Metrics;

/// Why a registration did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterFailure {
    Refused(Refusal),
    Storage(String),
}

type Request = (
    Registration,
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

    /// Registers durably; returns once committed.
    pub(crate) async fn register(
        &self,
        registration: Registration,
    ) -> Result<Assigned, RegisterFailure> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((registration, reply))
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
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        metrics.observe_commit_batch(batch.len());
        let (regs, replies): (Vec<Registration>, Vec<_>) = batch.into_iter().unzip();
        match registry.register_all(&regs) {
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
    }
}
