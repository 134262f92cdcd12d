//! The TCP server: accepts connections, caps concurrent handshakes, and drives xtt-proto's
//! stateless [`xtt_proto::server::Server`], the DAA verification service (on the bounded CPU
//! pool) and the group-commit registrar.
//!
//! One handshake, as the connection task sees it:
//!
//! ```text
//! read ClientInit ─▶ handle_client_init (on the task: ≈ 100 µs) ─▶ write ServerInitAndAttest
//! read Identity_ClientAttest ─▶ handle_client_attest (on the task: cookie, AEAD, ECDSA,
//!   replay guard; ≈ 45 µs)
//!   ─▶ group verifier (cache) ─▶ DAA service (plain or batched, on the cpu pool)
//!   ─▶ registrar: durable commit ─▶ finish ─▶ write Identity_ServerFinished
//! ```
//!
//! A session handshake's third message runs on the task too ([`crate::sessions::tcp::accept`]).
//! Each message is read with one buffered read (header and body together) through the
//! connection's [`MessageReader`], which the record loop then keeps using.
//!
//! Every read and write has a timeout, the whole handshake has one too, messages are bounded by
//! their header's length field and `max_message_len`, and failures answer with the 4-byte XTT
//! Error message (opaque: no reason on the wire; the reason goes to logs and metrics).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use xtt_proto::codec::{MsgType, ERROR_MESSAGE};
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::daa::GroupId;
use xtt_proto::error::{PeerMisbehaved, Refused};
use xtt_proto::server::{Server as ProtoServer, ServerConfig as ProtoConfig};
use xtt_proto::{ClientId, UnixTime};
use xtt_registry::{CookieUse, Refusal, Registration, Registry, RegistryError};

use crate::anchors::{GroupsError, IdentityRecorder, Provisioned, StoreGroups};
use crate::config::{ServerConfig, ServerKeys};
use crate::cpu::CpuPool;
use crate::daa::{DaaService, Groups, VerifyFailure};
use crate::framing::{write_message, FrameError};
use crate::metrics::Metrics;
use crate::outcome::{FailureReason, Outcome, RefusedReason};
use crate::registrar::{RegisterFailure, Registrar};
use crate::sessions::tcp::{
    is_record, is_session_attest, MessageReader, RecordStream, MAX_RECORD_MESSAGE,
};
use crate::sessions::{self, RegistryKeys, SessionCore, SessionOptions};

/// Errors starting or running the server.
///
/// Each cause is printed once by `{:#}` (the whole chain): `Io` names it as its `source()`
/// only; the others carry theirs in the message only (their causes already include their own
/// causes in their messages, so as sources they would print them again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Binding a socket or starting a thread failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The error (the `source()`, not in the message).
        source: std::io::Error,
    },
    /// The registry failed.
    #[error("registry: {0}")]
    Registry(RegistryError),
    /// The trust-anchor store (`anchors` in the configuration) failed.
    #[error("anchor store: {0}")]
    Anchors(xtt_anchors::AnchorError),
    /// The shared cookie key file could not be used.
    #[error("cookie keys: {0}")]
    CookieKeys(crate::cookie_keys::CookieKeyFileError),
}

impl From<RegistryError> for ServerError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<xtt_anchors::AnchorError> for ServerError {
    fn from(e: xtt_anchors::AnchorError) -> Self {
        Self::Anchors(e)
    }
}

impl From<crate::cookie_keys::CookieKeyFileError> for ServerError {
    fn from(e: crate::cookie_keys::CookieKeyFileError) -> Self {
        Self::CookieKeys(e)
    }
}

impl From<GroupsError> for ServerError {
    fn from(e: GroupsError) -> Self {
        match e {
            GroupsError::Registry(e) => Self::Registry(e),
            GroupsError::Anchors(e) => Self::Anchors(e),
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// The parts every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) proto: ProtoServer,
    replay_guard: Arc<InMemoryReplayGuard>,
    groups: Groups,
    daa: DaaService,
    registrar: Registrar,
    /// With an anchor store: records provisioned identities in it.
    identities: Option<IdentityRecorder>,
    pub(crate) cpu: CpuPool,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) permits: Arc<Semaphore>,
    /// Handshake slots per client, within `permits` (None: no per-client cap).
    pub(crate) client_slots: Option<Arc<xtt_ratelimit::ClientSlots>>,
    config: ServerConfig,
    registry: Arc<dyn Registry>,
    /// Set once by [`XttServer::enable_sessions`].
    sessions: OnceLock<Arc<SessionCore>>,
    /// Turns true when the server stops; session connections and the UDP loop watch it.
    stop: watch::Sender<bool>,
}

/// A bound, not yet running server. [`XttServer::run`] serves until a shutdown future completes.
#[derive(Debug)]
pub struct XttServer {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    udp: Option<Arc<UdpSocket>>,
    shared: Arc<Shared>,
}

/// A view of a running server for status output and tests.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl Shared {
    /// Whether this node's cookie keys come from a key file, i.e. other nodes may open its
    /// cookies: a flight must then be claimed where every node sees it (see
    /// [`crate::sessions::tcp::accept`]).
    pub(crate) fn cookie_keys_shared(&self) -> bool {
        self.config.cookies.key_file.is_some()
    }

    /// The registry (identities, groups, and the deployment-wide record of used cookies).
    pub(crate) fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// The configuration the server runs with.
    pub(crate) fn config(&self) -> &ServerConfig {
        &self.config
    }
}

impl ServerHandle {
    /// The metrics (also served on the metrics address).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }
    /// Cookies remembered by the replay guard: one per ClientAttest whose cookie, AEAD and
    /// long-term signature checked out (whatever happens after: an unknown group or a bad DAA
    /// signature keeps it recorded), never one per ClientInit (the server keeps no state for
    /// those). Entries leave when their cookie expires.
    pub fn replay_cache_len(&self) -> usize {
        self.shared.replay_guard.len()
    }
    /// ServerInitAndAttest results kept for the ClientAttest ([`xtt_proto::handshake_cache`]):
    /// at most 4 × `limits.max_concurrent_handshakes`, however many ClientInits arrive.
    pub fn handshake_cache_len(&self) -> usize {
        self.shared.proto.handshake_cache_len()
    }
    /// Handshakes in progress.
    pub fn in_flight(&self) -> usize {
        self.shared.config.limits.max_concurrent_handshakes
            - self.shared.permits.available_permits()
    }
    /// DAA groups the server accepts (from the registry).
    pub fn group_count(&self) -> usize {
        self.shared.groups.len()
    }
    /// Sends records to clients by ClientID (None unless sessions are enabled).
    pub fn outbox(&self) -> Option<sessions::Outbox> {
        self.shared
            .sessions
            .get()
            .map(|core| sessions::Outbox::new(core.clone()))
    }
    /// The registry the server writes to.
    pub fn registry(&self) -> Arc<dyn Registry> {
        self.shared.registry.clone()
    }
}

pub(crate) fn unix_now() -> UnixTime {
    static LATEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(never_back(&LATEST, wall))
}

/// `wall`, or the latest time returned before if the wall clock has stepped back since (an NTP
/// step, a resumed VM). Cookie expiry, the replay caches' purges and the registry's cookie
/// sweeps all judge by this clock: had it gone back after a purge, a forgotten cookie would open
/// again and a replayed flight would be accepted a second time. Time stands still until the wall
/// clock catches up; one atomic operation per call.
fn never_back(latest: &std::sync::atomic::AtomicU64, wall: u64) -> u64 {
    let before = latest.fetch_max(wall, std::sync::atomic::Ordering::Relaxed);
    before.max(wall)
}

impl XttServer {
    /// Validates the configuration, loads the groups from `registry`, starts the CPU pool, the
    /// DAA service and the registry writer, and binds the XTT and metrics addresses.
    pub async fn bind(
        config: ServerConfig,
        keys: ServerKeys,
        registry: Arc<dyn Registry>,
    ) -> Result<Self, ServerError> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let replay_guard = Arc::new(InMemoryReplayGuard::new(
            config.cookies.replay_cache_capacity,
        ));
        let cert = keys.certificate.as_bytes().to_vec();
        // A shared key file (several nodes, one deployment) or this process's own key.
        let cookie_keys = match &config.cookies.key_file {
            Some(path) => crate::cookie_keys::load(path)?,
            None => CookieKeyring::new(CookieKey::from_secret(1, &keys.cookie_secret)),
        };
        let proto = ProtoServer::new(ProtoConfig {
            certificate: keys.certificate,
            signing_key: keys.signing_key,
            cookie_keys,
            cookie_lifetime_secs: config.cookies.lifetime_secs,
            replay_guard: replay_guard.clone(),
        })
        // Both bounded: the first keeps the ClientInit work for the ClientAttest while the
        // cookie lives (falling back to the stateless path when full); the second answers
        // retransmitted session flights (UDP) with the same ServerFinished.
        .with_handshake_cache(4 * config.limits.max_concurrent_handshakes)
        .with_finished_cache(4 * config.limits.max_concurrent_handshakes);
        let reg = registry.clone();
        let anchors = config.anchors.clone();
        let source = format!("xtt server {}", config.listen);
        let queue = config.limits.max_concurrent_handshakes;
        let (groups, identities) = tokio::task::spawn_blocking(move || {
            let store = anchors.as_deref().map(StoreGroups::open).transpose()?;
            let recorder = anchors
                .as_deref()
                .map(|p| IdentityRecorder::start(p, cert, source, queue))
                .transpose()?;
            Ok::<_, GroupsError>((Groups::load(reg, store)?, recorder))
        })
        .await
        .map_err(|e| io_err("loading groups")(std::io::Error::other(e)))??;
        if groups.len() == 0 {
            tracing::warn!(
                "no DAA groups (registry or anchor store): every device will be refused"
            );
        }
        let cap = config.limits.max_concurrent_handshakes;
        // Each handshake has at most one CPU job at a time, plus batches: 2× the cap bounds it.
        let cpu = CpuPool::new(config.worker_threads(), 2 * cap + 64)
            .map_err(io_err("starting the CPU pool"))?;
        let daa = if config.daa.batch {
            DaaService::batched(
                cpu.clone(),
                metrics.clone(),
                config.daa.batch_max,
                Duration::from_micros(config.daa.batch_window_us),
                cap,
            )
        } else {
            DaaService::plain(cpu.clone(), metrics.clone())
        };
        let registrar = Registrar::start(
            registry.clone(),
            metrics.clone(),
            config.registry.max_commit_batch,
            cap,
        )
        .map_err(io_err("starting the registry writer"))?;
        let listener = bind_tcp(config.listen, config.limits.listen_backlog)
            .map_err(io_err(format!("binding {}", config.listen)))?;
        let metrics_listener = match config.metrics.address() {
            Some(addr) => Some(
                crate::metrics::bind(addr)
                    .await
                    .map_err(io_err(format!("binding metrics address {addr}")))?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            metrics_listener,
            udp: None,
            shared: Arc::new(Shared {
                proto,
                replay_guard,
                groups,
                daa,
                registrar,
                identities,
                cpu,
                metrics,
                permits: Arc::new(Semaphore::new(cap)),
                client_slots: match config.limits.max_handshakes_per_client {
                    0 => None,
                    n => Some(xtt_ratelimit::ClientSlots::new(n)),
                },
                config,
                registry,
                sessions: OnceLock::new(),
                stop: watch::Sender::new(false),
            }),
        })
    }

    /// Serves sessions (XTT-SESSION.md) next to identity provisioning: session handshakes and
    /// records on the TCP port, and, with `options.udp`, on a UDP socket bound to the same
    /// address. Client keys are looked up in the server's registry. Call once, before
    /// [`Self::run`].
    pub async fn enable_sessions(&mut self, options: SessionOptions) -> Result<(), ServerError> {
        let keys = RegistryKeys::new(self.shared.registry.clone(), 16_384, Duration::from_secs(5));
        let core = Arc::new(SessionCore::new(&options, keys));
        if options.udp {
            let addr = self
                .local_addr()
                .map_err(io_err("reading the TCP address"))?;
            let std_sock =
                std::net::UdpSocket::bind(addr).map_err(io_err(format!("binding UDP {addr}")))?;
            std_sock
                .set_nonblocking(true)
                .map_err(io_err("configuring the UDP socket"))?;
            // Sends from synchronous code (the application's Outbox) go through a duplicate
            // descriptor: a plain non-blocking syscall, independent of tokio's readiness state.
            let sender = std_sock
                .try_clone()
                .map_err(io_err("duplicating the UDP socket"))?;
            let sock = UdpSocket::from_std(std_sock).map_err(io_err("registering UDP"))?;
            let _ = core.udp.set(sender);
            self.udp = Some(Arc::new(sock));
        }
        if let Some(opts) = options.shared.clone() {
            let shared = sessions::shared::SharedSessions::start(opts, &core)
                .await
                .map_err(io_err("starting shared sessions"))?;
            let _ = core.shared.set(shared);
        }
        self.shared.sessions.set(core).map_err(|_| ServerError::Io {
            context: "enabling sessions".into(),
            source: std::io::Error::other("sessions are already enabled"),
        })
    }

    /// The UDP address, if sessions over UDP are enabled.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The XTT address actually bound (port 0 in the configuration picks a free port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics address actually bound, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// A handle for status and tests.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes (tie it to [`crate::shutdown_signal`]); then stops
    /// accepting, lets handshakes in progress finish (up to the handshake timeout) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let stop_rx = self.shared.stop.subscribe();
        let metrics_task = self.metrics_listener.map(|l| {
            let mut rx = stop_rx.clone();
            tokio::spawn(crate::metrics::serve(
                l,
                self.shared.metrics.clone(),
                crate::health::Checked {
                    registry: self.shared.registry.clone(),
                    writer: self.shared.registrar.health(),
                    // Shared sessions are enabled before `run`, so they are known here.
                    sessions: self
                        .shared
                        .sessions
                        .get()
                        .and_then(|core| core.shared.get())
                        .map(|shared| shared.store_for_health()),
                },
                async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                },
            ))
        });
        let sh = self.shared;
        let key_watch =
            sh.config.cookies.key_file.clone().map(|path| {
                tokio::spawn(crate::cookie_keys::watch(path, sh.clone(), stop_rx.clone()))
            });
        let session_tasks = sh.sessions.get().map(|core| {
            let sweeper = core.spawn_sweeper(Duration::from_secs(5));
            let udp = self.udp.clone().map(|sock| {
                tokio::spawn(crate::sessions::udp::serve(
                    sh.clone(),
                    core.clone(),
                    sock,
                    stop_rx.clone(),
                ))
            });
            (sweeper, udp)
        });
        tracing::info!(
            addr = %self.listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            groups = sh.groups.len(),
            workers = sh.cpu.threads(),
            batch = sh.config.daa.batch,
            "xtt server listening"
        );
        // The accept loop runs as a task of the runtime, not on the caller's thread (often the
        // thread blocked in `block_on`): a connection task spawned from a worker starts on that
        // worker, without waking another thread for every connection.
        let (stop_accepting, mut accept_stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = self.listener;
        let s = sh.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut accept_stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => on_accept(&s, stream, peer),
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                }
            }
            // Dropped here: no connection is accepted from now on.
            drop(listener);
        });
        shutdown.await;
        let _ = stop_accepting.send(());
        let _ = acceptor.await;
        tracing::info!("shutting down: waiting for handshakes in progress");
        let all = u32::try_from(sh.config.limits.max_concurrent_handshakes).unwrap_or(u32::MAX);
        let drained =
            tokio::time::timeout(sh.config.handshake_timeout(), sh.permits.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!("handshakes still running at the end of the grace period");
        }
        if let Some(recorder) = sh.identities.clone() {
            // The writer thread is not joined (the handle is shared by connection tasks), but
            // what the finished handshakes queued is committed before `run` returns.
            let patience = sh.config.handshake_timeout();
            let flushed = tokio::task::spawn_blocking(move || recorder.flush(patience)).await;
            if !matches!(flushed, Ok(true)) {
                tracing::warn!(
                    "identities provisioned at shutdown may be missing from the anchor store"
                );
            }
        }
        // Every handshake has ended (or had its grace period): the registry writer commits
        // what is queued and ends, so it no longer keeps the database open at exit.
        if !sh.registrar.close(sh.config.handshake_timeout()).await {
            tracing::warn!("the registry writer did not end within the grace period");
        }
        sh.stop.send_replace(true);
        if let Some(mut t) = metrics_task {
            // Graceful shutdown of the metrics server waits for its connections; one that never
            // finishes its request (a stuck scraper, or on purpose) would hold the whole
            // shutdown, and the shared sessions' hand-over after it, forever.
            if tokio::time::timeout(METRICS_GRACE, &mut t).await.is_err() {
                t.abort();
                tracing::warn!("metrics connections still open at shutdown: closed");
            }
        }
        if let Some(t) = key_watch {
            let _ = t.await;
        }
        if let Some((sweeper, udp)) = session_tasks {
            sweeper.abort();
            if let Some(t) = udp {
                let _ = t.await;
            }
            // Shared sessions: every session goes to the store with its exact state (bounded;
            // on failure the other nodes take them over as after a crash).
            if let Some((core, shared)) = sh.sessions.get().and_then(|c| Some((c, c.shared.get()?)))
            {
                let _ = shared.retire(core).await;
            }
        }
        tracing::info!("xtt server stopped");
        Ok(())
    }
}

/// How long shutdown waits for metrics connections to finish.
const METRICS_GRACE: Duration = Duration::from_secs(2);

fn on_accept(sh: &Arc<Shared>, mut stream: TcpStream, peer: SocketAddr) {
    let client_slot = match &sh.client_slots {
        Some(slots) => match slots.try_acquire(peer.ip()) {
            Some(slot) => Some(slot),
            None => {
                let _ = stream.try_write(&ERROR_MESSAGE);
                sh.metrics
                    .record(&Outcome::Refused(RefusedReason::ClientBusy), 0.0);
                tracing::debug!(%peer, "refused: this client has too many handshakes in progress");
                return;
            }
        },
        None => None,
    };
    match sh.permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let sh = sh.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut reader = MessageReader::for_handshake();
                let records = serve_connection(&sh, &mut stream, &mut reader, peer).await;
                // A session connection outlives its handshake: it stops counting against the
                // handshake cap and lives by the session idle timeout instead.
                drop(permit);
                drop(client_slot);
                if let (Some(rs), Some(core)) = (records, sh.sessions.get()) {
                    let idle = Duration::from_secs(core.idle_secs.max(1));
                    let stop = sh.stop.subscribe();
                    sessions::tcp::serve_records(
                        core.clone(),
                        stream,
                        peer,
                        rs,
                        reader,
                        idle,
                        stop,
                    )
                    .await;
                }
            });
        }
        Err(_) => {
            // Over the cap: refuse now, without queueing. The socket's send buffer is empty, so
            // the 4-byte Error fits without waiting.
            let _ = stream.try_write(&ERROR_MESSAGE);
            sh.metrics
                .record(&Outcome::Refused(RefusedReason::Busy), 0.0);
            tracing::debug!(%peer, "refused: too many handshakes in progress");
        }
    }
}

/// How a connection's handshake phase ended successfully.
enum Ended {
    Provisioned(ClientId),
    /// A session handshake completed, or the connection opened with a record: serve records.
    Records(RecordStream),
}

async fn serve_connection(
    sh: &Arc<Shared>,
    stream: &mut TcpStream,
    reader: &mut MessageReader,
    peer: SocketAddr,
) -> Option<RecordStream> {
    sh.metrics.in_flight().inc();
    let started = Instant::now();
    let result = tokio::time::timeout(sh.config.handshake_timeout(), handshake(sh, stream, reader))
        .await
        .unwrap_or(Err(FailureReason::Timeout));
    let elapsed = started.elapsed().as_secs_f64();
    let records = match result {
        Ok(Ended::Provisioned(id)) => {
            sh.metrics.record(&Outcome::Ok, elapsed);
            tracing::info!(%peer, client_id = %id, ms = elapsed * 1e3, "provisioned");
            None
        }
        Ok(Ended::Records(rs)) => {
            tracing::debug!(%peer, conn = rs.conn, "session connection");
            Some(rs)
        }
        Err(reason) => {
            sh.metrics.record(&Outcome::Failed(reason), elapsed);
            tracing::debug!(%peer, reason = reason.as_str(), "handshake failed");
            None
        }
    };
    sh.metrics.in_flight().dec();
    records
}

/// Sends the Error message (best effort, briefly) and classifies `e`.
async fn fail(stream: &mut TcpStream, e: &xtt_proto::Error) -> FailureReason {
    if let Some(alert) = e.alert_bytes() {
        let _ = write_message(stream, &alert, Duration::from_millis(200)).await;
    }
    FailureReason::of(e)
}

async fn read<'r>(
    sh: &Shared,
    stream: &mut TcpStream,
    reader: &'r mut MessageReader,
) -> Result<&'r [u8], FailureReason> {
    read_limited(sh, stream, reader, sh.config.limits.max_message_len).await
}

/// Reads one message (header and body with one system call when both are there); records may
/// be up to `max_record` bytes, everything else is held to the configured handshake message
/// limit.
async fn read_limited<'r>(
    sh: &Shared,
    stream: &mut TcpStream,
    reader: &'r mut MessageReader,
    max_record: usize,
) -> Result<&'r [u8], FailureReason> {
    let max_handshake = sh.config.limits.max_message_len;
    let limit = |t: MsgType| {
        if t == MsgType::RECORD_REGULAR {
            max_record
        } else {
            max_handshake
        }
    };
    match reader.next(&*stream, limit, sh.config.read_timeout()).await {
        Ok(m) => Ok(m),
        Err(FrameError::Timeout) => {
            let _ = write_message(stream, &ERROR_MESSAGE, Duration::from_millis(200)).await;
            Err(FailureReason::Timeout)
        }
        Err(FrameError::Closed) => Err(FailureReason::Closed),
        Err(FrameError::Io(_)) => Err(FailureReason::Io),
        Err(FrameError::Protocol(e)) => Err(fail(stream, &e).await),
    }
}

async fn write(sh: &Shared, stream: &mut TcpStream, bytes: &[u8]) -> Result<(), FailureReason> {
    match write_message(stream, bytes, sh.config.write_timeout()).await {
        Ok(()) => Ok(()),
        Err(FrameError::Timeout) => Err(FailureReason::Timeout),
        Err(FrameError::Closed) => Err(FailureReason::Closed),
        Err(_) => Err(FailureReason::Io),
    }
}

async fn overloaded(stream: &mut TcpStream) -> FailureReason {
    let _ = write_message(stream, &ERROR_MESSAGE, Duration::from_millis(200)).await;
    FailureReason::Overloaded
}

async fn handshake(
    sh: &Arc<Shared>,
    stream: &mut TcpStream,
    reader: &mut MessageReader,
) -> Result<Ended, FailureReason> {
    let sessions = sh.sessions.get();
    let client_init = match sessions {
        // A session connection may open with a record (a reconnect), which can be larger than
        // any handshake message.
        Some(core) => {
            let msg = read_limited(sh, stream, reader, MAX_RECORD_MESSAGE).await?;
            if is_record(msg) {
                let first = msg.to_vec();
                let mut rs = RecordStream::new(core);
                rs.first = Some(first);
                return Ok(Ended::Records(rs));
            }
            msg
        }
        None => read(sh, stream, reader).await?,
    };
    // On this task, not the CPU pool: X25519 twice, one ECDSA signature and an AEAD seal
    // (≈ 100 µs) cost less than a round trip through the pool (two thread wake-ups and
    // context switches); the handshake permit bounds how many run at once.
    let sia = match sh
        .proto
        .handle_client_init(client_init, unix_now(), &mut OsRng)
    {
        Ok(sia) => sia,
        Err(e) => return Err(fail(stream, &e).await),
    };
    write(sh, stream, &sia).await?;

    let client_attest = read(sh, stream, reader).await?;
    if let (Some(core), true) = (sessions, is_session_attest(client_attest)) {
        let attest = client_attest.to_vec();
        return session_handshake(sh, core, stream, reader, attest).await;
    }
    // Boxed: the identity steps hold far more state across their awaits (DAA signature,
    // registration) than a session handshake, and every connection's task would otherwise be
    // that large.
    Box::pin(identity_handshake(sh, stream, client_attest)).await
}

/// The identity-provisioning rest of a handshake, from Identity_ClientAttest on.
async fn identity_handshake(
    sh: &Arc<Shared>,
    stream: &mut TcpStream,
    client_attest: &[u8],
) -> Result<Ended, FailureReason> {
    // On this task too, like ClientInit: with the handshake cache this step is an AEAD open
    // and one ECDSA verification (≈ 45 µs; ≈ 120 µs when the cache has lost the handshake and
    // it is rebuilt), less than a round trip through the pool costs. The DAA signature, the
    // long work, goes to the pool next.
    let attested = match sh.proto.handle_client_attest(client_attest, unix_now()) {
        Ok(a) => a,
        Err(e) => return Err(fail(stream, &e).await),
    };

    let group_id = *attested.group_id();
    let cookie = CookieUse {
        id: attested.cookie_id().0,
        expires_at: attested.cookie_expires_at(),
    };
    let Some(verifier) = group_verifier(sh, &group_id).await else {
        return Err(fail(stream, &Refused::UnknownGroup.into()).await);
    };
    let pseudonym = match sh
        .daa
        .verify(
            group_id,
            verifier,
            *attested.daa_message(),
            attested.daa_signature().clone(),
        )
        .await
    {
        Ok(p) => p,
        Err(VerifyFailure::Invalid(e)) => {
            return Err(fail(stream, &PeerMisbehaved::BadDaaSignature(e).into()).await)
        }
        Err(VerifyFailure::Overloaded) => return Err(overloaded(stream).await),
    };
    let verified = match attested.with_verified_pseudonym(pseudonym) {
        Ok(v) => v,
        Err(e) => return Err(fail(stream, &e).await),
    };

    let longterm_key = *verified.longterm_public_key();
    let registration = Registration {
        group_id,
        pseudonym,
        requested_id: *verified.requested_id(),
        longterm_key: *verified.longterm_public_key(),
        now: unix_now(),
    };
    // Committed durably before the ClientID is sent: a crash after this point loses nothing the
    // device was told.
    let assigned = match sh.registrar.register(registration, cookie).await {
        Ok(a) => a,
        // Accepted by another node already (this node's replay guard only knows its own).
        Err(RegisterFailure::Refused(Refusal::CookieReplayed)) => {
            return Err(fail(stream, &PeerMisbehaved::ReplayedCookie.into()).await)
        }
        Err(RegisterFailure::Refused(Refusal::UnknownGroup)) => {
            return Err(fail(stream, &Refused::UnknownGroup.into()).await)
        }
        Err(RegisterFailure::Refused(r)) => {
            tracing::debug!(reason = %r, "registration refused");
            return Err(fail(stream, &Refused::IdentityRefused.into()).await);
        }
        Err(RegisterFailure::Storage(e)) => {
            tracing::error!(error = %e, "registration failed");
            let _ = write_message(stream, &ERROR_MESSAGE, Duration::from_millis(200)).await;
            return Err(FailureReason::Registry);
        }
    };
    let (server_finished, _) = match verified.finish(assigned.client_id) {
        Ok(f) => f,
        Err(e) => return Err(fail(stream, &e).await),
    };
    // Recorded before the write: the registry holds the identity from here on, whether or not
    // Identity_ServerFinished reaches the device, and the anchor store mirrors the registry.
    if let Some(recorder) = &sh.identities {
        recorder.record(Provisioned {
            client_id: assigned.client_id,
            longterm_key,
            group_id,
        });
    }
    write(sh, stream, &server_finished).await?;
    Ok(Ended::Provisioned(assigned.client_id))
}

/// The third flight of a session handshake on TCP (0x22: the attest, then its record).
async fn session_handshake(
    sh: &Arc<Shared>,
    core: &Arc<SessionCore>,
    stream: &mut TcpStream,
    reader: &mut MessageReader,
    mut flight: Vec<u8>,
) -> Result<Ended, FailureReason> {
    if flight.first() == Some(&MsgType::SESSION_CLIENT_ATTEST_PAYLOAD.0) {
        let record = read_limited(sh, stream, reader, MAX_RECORD_MESSAGE).await?;
        flight.extend_from_slice(record);
    }
    // The connection's record state (queue, id) is made only once the handshake succeeded.
    let mut new_id = None;
    let accepted = sessions::tcp::accept(sh, core, (&flight, true), |id| {
        new_id = Some(id);
        let rs = RecordStream::new(core);
        (rs.peer(), rs)
    })
    .await;
    sh.metrics.record_session("tcp", accepted.is_ok());
    let (finished, early, mut rs) = match accepted {
        Ok(x) => x,
        // Not armed on failure: the id may be another session's (a refused proposal).
        Err(e) => return Err(fail(stream, &e).await),
    };
    // Until Session_ServerFinished is written, the session is removed again if this step fails
    // or is cancelled (the handshake timeout): the client never learnt of it, and it would
    // otherwise count against its device's sessions until the idle timeout.
    let mut unconfirmed = Unconfirmed { core, id: new_id };
    write(sh, stream, &finished).await?;
    unconfirmed.id = None;
    rs.early = early;
    Ok(Ended::Records(rs))
}

/// A session stored by a TCP handshake whose Session_ServerFinished is not written yet: removed
/// (from the table and, with shared sessions, from the store) when dropped still holding an id.
struct Unconfirmed<'a> {
    core: &'a Arc<SessionCore>,
    id: Option<xtt_proto::record::SessionId>,
}

impl Drop for Unconfirmed<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.core.table.remove(&id);
            if let Some(shared) = self.core.shared.get() {
                shared.forget(vec![id]);
            }
            tracing::debug!(
                "session removed: its handshake did not deliver Session_ServerFinished"
            );
        }
    }
}

/// The group's verifier if the group is accepted now; an unknown id reloads the groups
/// (rate-limited) once, and with an anchor store its revision is checked every so often.
async fn group_verifier(
    sh: &Arc<Shared>,
    group_id: &GroupId,
) -> Option<Arc<xtt_ecdaa::GroupVerifier>> {
    let now = unix_now().0;
    if !sh.groups.poll_due() {
        if let Some(v) = sh.groups.get(group_id, now) {
            return Some(v);
        }
    }
    let s = sh.clone();
    let reloaded = tokio::task::spawn_blocking(move || s.groups.reload_if_stale()).await;
    match reloaded {
        Ok(Ok(_)) => sh.groups.get(group_id, now),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reloading groups failed");
            None
        }
        Err(_) => None,
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A TCP listener on `addr` whose kernel queue holds `backlog` connections that are completed
/// but not yet accepted (the kernel caps it at net.core.somaxconn). `TcpListener::bind` uses 128:
/// a burst of more devices than that overflows it, the kernel drops the extra connection
/// attempts, and each of those devices waits a second or more for its retransmission.
/// Must be called within the runtime (the listener registers with its reactor).
pub(crate) fn bind_tcp(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As TcpListener::bind does: a restarted server rebinds while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod clock_tests {
    use super::never_back;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn the_handshake_clock_never_goes_back() {
        let latest = AtomicU64::new(0);
        assert_eq!(never_back(&latest, 100), 100);
        assert_eq!(never_back(&latest, 126), 126);
        // The wall clock steps back 16 s: time stands at 126 until it catches up.
        assert_eq!(never_back(&latest, 110), 126);
        assert_eq!(never_back(&latest, 125), 126);
        assert_eq!(never_back(&latest, 127), 127);
    }
}

#[cfg(test)]
mod listen_tests {
    use super::bind_tcp;
    use std::time::{Duration, Instant};
    use tokio::net::TcpStream;

    /// Connections completed by the kernel and not yet accepted on the IPv4 listener on
    /// `port`: the listening socket's rx_queue in /proc/net/tcp.
    fn accept_queue_len(port: u16) -> usize {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
        let local = format!("0100007F:{port:04X}");
        table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .and_then(|f| f.get(4)?.split_once(':').map(|(_, rx)| rx.to_owned()))
            .and_then(|rx| usize::from_str_radix(&rx, 16).ok())
            .expect("the listener is in /proc/net/tcp")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_within_the_backlog_is_queued_not_dropped() {
        // More than the 128 TcpListener::bind would give, within the 1024 the server asks for.
        const BURST: usize = 300;
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .expect("read net.core.somaxconn")
            .trim()
            .parse()
            .unwrap();
        assert!(
            somaxconn >= BURST,
            "net.core.somaxconn is {somaxconn}: the kernel caps every backlog there, so this \
             machine cannot show a backlog of {BURST}"
        );
        let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing is accepted: every connection that completes stays in the kernel's queue. One
        // the queue had no room for is dropped and never gets in while the queue stays full.
        let connects: Vec<_> = (0..BURST)
            .map(|_| tokio::spawn(TcpStream::connect(addr)))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let queued = accept_queue_len(addr.port());
            if queued == BURST {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{queued} of {BURST} connections queued: the rest were dropped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut streams = Vec::new();
        for c in connects {
            streams.push(c.await.unwrap().expect("a queued connection completes"));
        }
        assert_eq!(streams.len(), BURST);
        drop(listener);
    }
}
