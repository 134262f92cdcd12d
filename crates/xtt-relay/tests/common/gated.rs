//! A relay on 127.0.0.1 whose store is the real SQLite store behind a gate the test opens:
//! each held store step reports its arrival at the store and then waits, as it would behind
//! the store's held lock, until the test opens the gate once; then it runs and reports how it
//! ended. No sleeps order anything; the gate does.
//!
//! Every `apply` is held; a `create` only after [`Gated::hold_creates`]. After
//! [`Gated::claim_deadlines_first`], a held step claims its request's deadline for its commit
//! before it waits: a commit that has begun and takes long.

use super::{config, T0};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;
use xtt_relay::client::RelayClient;
use xtt_relay::proto::mailbox::Mailbox;
use xtt_relay::server::clock::{Clock, ManualClock};
use xtt_relay::server::sqlite::SqliteStore;
use xtt_relay::server::store::{
    ApplyError, ApplyOutcome, CreateQuota, Deadline, IdempotencyKey, MailboxOp, QuotaOutcome,
    Store, StoreError,
};
use xtt_relay::server::{RelayConfig, RelayServer, ServeOptions};

/// How a held store step ended: its outcome (`Debug`) or its error (`Display`).
pub type Ran = Result<String, String>;

pub struct GatedStore {
    inner: SqliteStore,
    hold_creates: AtomicBool,
    claim_first: AtomicBool,
    arrived: mpsc::UnboundedSender<()>,
    gate: Mutex<std_mpsc::Receiver<()>>,
    ran: mpsc::UnboundedSender<Ran>,
}

impl GatedStore {
    fn wait_at_gate(&self, deadline: &Deadline) {
        if self.claim_first.load(Ordering::SeqCst) {
            assert!(deadline.begin_commit(), "held past its deadline already");
        }
        self.arrived.send(()).unwrap();
        self.gate.lock().unwrap().recv().unwrap();
    }

    fn report<T: std::fmt::Debug, E: std::fmt::Display>(&self, outcome: &Result<T, E>) {
        let report = match outcome {
            Ok(done) => Ok(format!("{done:?}")),
            Err(e) => Err(e.to_string()),
        };
        self.ran.send(report).unwrap();
    }
}

impl Store for GatedStore {
    fn create(
        &self,
        mailbox: &Mailbox,
        key: &IdempotencyKey,
        clock: &dyn Clock,
        quota: &CreateQuota,
        deadline: &Deadline,
    ) -> Result<QuotaOutcome, StoreError> {
        if !self.hold_creates.load(Ordering::SeqCst) {
            return self.inner.create(mailbox, key, clock, quota, deadline);
        }
        self.wait_at_gate(deadline);
        let outcome = self.inner.create(mailbox, key, clock, quota, deadline);
        self.report(&outcome);
        outcome
    }

    fn apply(
        &self,
        id: &Uuid,
        clock: &dyn Clock,
        key: Option<&IdempotencyKey>,
        op: MailboxOp<'_>,
        deadline: &Deadline,
    ) -> Result<ApplyOutcome, ApplyError> {
        self.wait_at_gate(deadline);
        let outcome = self.inner.apply(id, clock, key, op, deadline);
        self.report(&outcome);
        outcome
    }

    fn get(&self, id: &Uuid, clock: &dyn Clock) -> Result<Option<Mailbox>, StoreError> {
        self.inner.get(id, clock)
    }

    fn sweep(&self, clock: &dyn Clock) -> Result<usize, StoreError> {
        self.inner.sweep(clock)
    }
}

pub struct Gated {
    pub server: RelayServer,
    pub base: url::Url,
    pub db: std::path::PathBuf,
    pub clock: Arc<ManualClock>,
    pub client: RelayClient,
    pub store: Arc<GatedStore>,
    /// One message per held store step that reached the store.
    pub arrived: mpsc::UnboundedReceiver<()>,
    /// One message lets one held store step run (sent ahead, it lets the next one through).
    pub gate: std_mpsc::Sender<()>,
    /// How each held store step ended.
    pub ran: mpsc::UnboundedReceiver<Ran>,
    _dir: tempfile::TempDir,
}

impl Gated {
    /// From now on creates are held at the gate too.
    pub fn hold_creates(&self) {
        self.store.hold_creates.store(true, Ordering::SeqCst);
    }

    /// From now on held steps claim their deadline for their commit before they wait.
    pub fn claim_deadlines_first(&self) {
        self.store.claim_first.store(true, Ordering::SeqCst);
    }
}

/// [`start_gated_with`] the tests' [`config`].
pub async fn start_gated(request_timeout: Duration) -> Gated {
    start_gated_with(request_timeout, config()).await
}

/// A relay over a gated store, answering 408 after `request_timeout`, with its clock at
/// [`T0`].
pub async fn start_gated_with(request_timeout: Duration, config: RelayConfig) -> Gated {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let (arrived_tx, arrived) = mpsc::unbounded_channel();
    let (gate, gate_rx) = std_mpsc::channel();
    let (ran_tx, ran) = mpsc::unbounded_channel();
    let store = Arc::new(GatedStore {
        inner: SqliteStore::open(&db).unwrap(),
        hold_creates: AtomicBool::new(false),
        claim_first: AtomicBool::new(false),
        arrived: arrived_tx,
        gate: Mutex::new(gate_rx),
        ran: ran_tx,
    });
    let clock = Arc::new(ManualClock::new(T0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ServeOptions {
        request_timeout,
        ..ServeOptions::default()
    };
    let server = RelayServer::start_with(
        listener,
        None,
        store.clone(),
        clock.clone(),
        config,
        options,
    )
    .await
    .unwrap();
    let base = url::Url::parse(&format!("http://{}", server.local_addr())).unwrap();
    Gated {
        server,
        base,
        db,
        clock,
        client: RelayClient::new().unwrap(),
        store,
        arrived,
        gate,
        ran,
        _dir: dir,
    }
}
