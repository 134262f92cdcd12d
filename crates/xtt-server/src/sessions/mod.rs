//! Sessions over the network (XTT-SESSION.md): the session handshake and the record layer on
//! the same TCP port as identity provisioning and on a UDP socket bound to the same address.
//!
//! ```text
//! TCP  ClientInit ─▶ ServerInitAndAttest ─▶ 3rd message type: 0x11 identity | 0x21/0x22 session
//!      then records (0x31) on that connection, or on any later one (a connection may also
//!      start with a record: reconnect after the session was established)
//! UDP  one message per datagram; ClientInit answered statelessly, a retransmitted identical
//!      ClientAttest answered from the finished cache, records opened by session id
//! ```
//!
//! Records are found by session id alone ([`xtt_proto::session_table::SessionTable`], sharded,
//! idle timeout and maximum lifetime, swept periodically). Each session remembers the
//! [`Peer`] that last delivered an authentic, fresh record (numbered above every one accepted:
//! decision 5 in `xtt_proto::session`); the server's records go there, so a device that
//! reconnects or changes address keeps its session without a new handshake.
//!
//! With [`SessionOptions::shared`], sessions are stored in the deployment's database and move
//! between server nodes with their devices; [`shared`] documents that design.
//!
//! The application sees `(ClientID, payload type, payload)` through [`SessionApp`] and sends with
//! [`Outbox::send`]; [`Echo`] and [`ForwardUdp`] / [`ForwardUnix`] are built in.

mod app;
mod lookup;
mod seal_buffers;
mod settings;
pub mod shared;
pub(crate) mod tcp;
pub(crate) mod udp;
mod updates;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use xtt_proto::record::{PayloadType, RecordError, SessionId};
use xtt_proto::session_table::{SessionTable, SessionTableConfig};
use xtt_proto::ClientId;
use zeroize::Zeroize;

pub use app::{Echo, ForwardUdp, ForwardUnix, IncomingRecord, SessionApp};
pub use lookup::RegistryKeys;
pub use settings::{AppSetting, AppSettingError, SessionSettings};
pub use updates::{UpdateServer, UpdateSummary};

use crate::server::unix_now;

/// A record's sequence number, from its header (not authenticated until the record opens).
pub(crate) fn seq_of(record: &[u8]) -> Option<u32> {
    let b: [u8; 4] = record.get(20..24)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// A record's session id, from its header (not authenticated until the record opens).
pub(crate) fn session_id_of(record: &[u8]) -> Option<SessionId> {
    let mut id = SessionId::NULL;
    id.0.copy_from_slice(record.get(4..20)?);
    Some(id)
}

/// Where a session's records go: the TCP connection or UDP address that last delivered an
/// authentic, fresh record.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A TCP connection (its id and its outgoing queue).
    Tcp {
        /// Connection number (for logs).
        conn: u64,
        /// The connection's bounded outgoing queue.
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// A UDP source address.
    Udp(std::net::SocketAddr),
}

/// Session settings of an [`crate::XttServer`].
#[derive(Clone)]
pub struct SessionOptions {
    /// Table size, shards, idle timeout and maximum lifetime.
    pub table: SessionTableConfig,
    /// Also serve UDP on the TCP listen address (same IP and port).
    pub udp: bool,
    /// The application receiving records.
    pub app: Arc<dyn SessionApp>,
    /// Records queued per TCP connection before new ones are dropped (records are datagrams).
    pub tcp_queue: usize,
    /// TCP connections carrying records at once; more are closed at once (each holds a task
    /// and two buffers until it is idle for the table's idle timeout).
    pub max_tcp_connections: usize,
    /// Of those, the most one client address (IPv4 address, IPv6 /64) may hold; its further
    /// ones are closed at once, so one device (or one source) opening connections cannot take
    /// every slot. Devices behind one NAT address share it.
    pub max_tcp_connections_per_client: u32,
    /// Share sessions with other server nodes through a database (None: this node only).
    pub shared: Option<shared::SharedOptions>,
    /// ClientInit datagrams answered per source address (IPv6: per /64) and second over UDP,
    /// with twice as many at once. A UDP source address is unproven: without a bound, spoofed
    /// ClientInits (70 bytes) would make the server send its 417-byte answers to a victim.
    pub udp_client_inits_per_ip: u32,
    /// Session flights (0x21/0x22) processed per source address (IPv6: per /64) and second over
    /// UDP, with twice as many at once. Each costs the server a key exchange, signatures and a
    /// registry lookup, and a UDP source address is unproven: more are dropped (the device
    /// retransmits).
    pub udp_client_attests_per_ip: u32,
}

impl std::fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOptions")
            .field("table", &self.table)
            .field("udp", &self.udp)
            .field("tcp_queue", &self.tcp_queue)
            .field("max_tcp_connections", &self.max_tcp_connections)
            .field(
                "max_tcp_connections_per_client",
                &self.max_tcp_connections_per_client,
            )
            .field("shared", &self.shared)
            .field("udp_client_inits_per_ip", &self.udp_client_inits_per_ip)
            .field("udp_client_attests_per_ip", &self.udp_client_attests_per_ip)
            .finish_non_exhaustive()
    }
}

impl SessionOptions {
    /// Defaults (table defaults, UDP on, 256 queued records per connection, 10,000 record
    /// connections, 1,000 of them per client address) with `app`.
    pub fn new(app: Arc<dyn SessionApp>) -> Self {
        Self {
            table: SessionTableConfig::default(),
            udp: true,
            app,
            tcp_queue: 256,
            max_tcp_connections: 10_000,
            max_tcp_connections_per_client: 1_000,
            shared: None,
            udp_client_inits_per_ip: 50,
            udp_client_attests_per_ip: 50,
        }
    }
}

/// Why a record could not be sent to a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No live session for the client, or sealing failed (sequence numbers used up).
    #[error("{0}")]
    Record(#[from] RecordError),
    /// The path the session last used is gone or full; the record was dropped (the client's
    /// next record, on whatever path, restores it).
    #[error("no usable path to the client: record dropped")]
    NoPath,
}

/// The state every session driver shares.
pub(crate) struct SessionCore {
    pub(crate) table: SessionTable<Peer>,
    pub(crate) keys: RegistryKeys,
    pub(crate) app: Arc<dyn SessionApp>,
    pub(crate) udp: OnceLock<std::net::UdpSocket>,
    pub(crate) tcp_queue: usize,
    /// Caps the TCP connections in the record phase, in all and per client address.
    pub(crate) tcp_connections: Arc<xtt_ratelimit::ClientSlots>,
    /// A connection silent this long is closed (the session itself may live on).
    pub(crate) idle_secs: u64,
    /// A session's maximum lifetime (stored with shared sessions).
    pub(crate) max_lifetime_secs: u64,
    /// Set when sessions are shared between nodes.
    pub(crate) shared: OnceLock<Arc<shared::SharedSessions>>,
    /// Buffers outgoing records are sealed into, recycled once they are sent.
    pub(crate) seal_buffers: seal_buffers::SealBuffers,
    /// Bounds the ClientInit answers over UDP per source address.
    pub(crate) udp_client_inits: xtt_ratelimit::RateLimiter,
    /// Bounds the session flights processed over UDP per source address.
    pub(crate) udp_client_attests: xtt_ratelimit::RateLimiter,
    next_conn: AtomicU64,
    /// Records whose application callback panicked (see [`Self::to_app`]).
    app_panics: AtomicU64,
}

impl std::fmt::Debug for SessionCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl SessionCore {
    pub(crate) fn new(options: &SessionOptions, keys: RegistryKeys) -> Self {
        Self {
            table: SessionTable::new(options.table.clone()),
            keys,
            app: options.app.clone(),
            udp: OnceLock::new(),
            tcp_queue: options.tcp_queue.max(1),
            idle_secs: options.table.idle_timeout_secs,
            max_lifetime_secs: options.table.max_lifetime_secs,
            shared: OnceLock::new(),
            tcp_connections: xtt_ratelimit::ClientSlots::with_total(
                options.max_tcp_connections_per_client,
                options.max_tcp_connections,
            ),
            seal_buffers: seal_buffers::SealBuffers::default(),
            udp_client_inits: xtt_ratelimit::RateLimiter::new(
                xtt_ratelimit::RateLimits::per_client(
                    f64::from(options.udp_client_inits_per_ip),
                    2.0 * f64::from(options.udp_client_inits_per_ip),
                ),
            ),
            udp_client_attests: xtt_ratelimit::RateLimiter::new(
                xtt_ratelimit::RateLimits::per_client(
                    f64::from(options.udp_client_attests_per_ip),
                    2.0 * f64::from(options.udp_client_attests_per_ip),
                ),
            ),
            next_conn: AtomicU64::new(1),
            app_panics: AtomicU64::new(0),
        }
    }

    pub(crate) fn conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands a record to the application. A panic in its callback is caught here, logged and
    /// counted, and costs only that record: the callback runs on the task that receives for
    /// every UDP client (or for a whole TCP connection), which would otherwise end with it.
    pub(crate) fn to_app(self: &Arc<Self>, record: IncomingRecord<'_>, out: &Outbox) {
        let client_id = record.client_id;
        let app = &self.app;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.on_record(record, out)))
            .is_err()
        {
            self.app_panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%client_id, "the session application panicked: record dropped");
        }
    }

    /// Hands bytes to a peer without waiting: a full queue or a closed connection drops them.
    /// The buffer goes back to [`Self::seal_buffers`] once it is sent (by the connection's
    /// task for TCP) or dropped.
    pub(crate) fn deliver(&self, peer: &Peer, bytes: Vec<u8>) -> Result<(), SendError> {
        match peer {
            Peer::Tcp { tx, .. } => tx.try_send(bytes).map_err(|e| {
                self.seal_buffers.give_back(e.into_inner());
                SendError::NoPath
            }),
            Peer::Udp(addr) => {
                let sent = match self.udp.get() {
                    Some(sock) => sock.send_to(&bytes, *addr).map(|_| ()),
                    None => Err(std::io::ErrorKind::NotConnected.into()),
                };
                self.seal_buffers.give_back(bytes);
                sent.map_err(|_| SendError::NoPath)
            }
        }
    }

    /// Opens a record that arrived from `peer` and hands it to the application; answers an
    /// unknown session with the Error message; drops (counted by the table) everything else.
    /// Returns whether the record was authentic and fresh.
    pub(crate) fn on_record(self: &Arc<Self>, bytes: &[u8], peer: Peer) -> bool {
        self.on_record_then(bytes, peer, None)
    }

    /// [`Self::on_record`] for a record in a buffer of the caller's (a TCP connection's receive
    /// buffer): decrypted where it lies and lent to the application, no copy and no allocation.
    /// The message is zeroized afterwards (it may hold plaintext, in memory the connection keeps
    /// and reuses): the one wipe of this record's plaintext, where the owned-payload path wipes
    /// its own copy when dropped. With shared sessions a record may have to wait for the store
    /// with its bytes intact, so it takes the copying [`Self::on_record`].
    pub(crate) fn on_record_in_place(self: &Arc<Self>, msg: &mut [u8], peer: &Peer) -> bool {
        if self.shared.get().is_some() {
            return self.on_record(msg, peer.clone());
        }
        let accepted = match self.table.open_in_place(msg, peer.clone(), unix_now()) {
            Ok((client_id, opened)) => {
                self.to_app(
                    IncomingRecord {
                        client_id,
                        payload_type: opened.payload_type,
                        payload: opened.payload,
                    },
                    &Outbox { core: self.clone() },
                );
                true
            }
            Err(e) => {
                if let Some(alert) = e.alert_bytes() {
                    let _ = self.deliver(peer, alert.to_vec());
                }
                tracing::trace!(error = %e, "record dropped");
                false
            }
        };
        msg.zeroize();
        accepted
    }

    /// [`Self::on_record`]; `done` learns whether the record was finally accepted (with shared
    /// sessions a record may wait for the store, and then `true` is returned at once).
    pub(crate) fn on_record_then(
        self: &Arc<Self>,
        bytes: &[u8],
        peer: Peer,
        done: Option<tokio::sync::oneshot::Sender<bool>>,
    ) -> bool {
        match self.table.open(bytes, peer.clone(), unix_now()) {
            Ok(d) => {
                if let Some(done) = done {
                    let _ = done.send(true);
                }
                self.to_app(
                    IncomingRecord {
                        client_id: d.client_id,
                        payload_type: d.record.payload_type,
                        payload: &d.record.payload,
                    },
                    &Outbox { core: self.clone() },
                );
                true
            }
            Err(e) => {
                if let Some(sh) = self.shared.get().filter(|_| shared::defers(&e)) {
                    sh.defer_record(self, bytes, peer, done);
                    return true;
                }
                if let Some(alert) = e.alert_bytes() {
                    let _ = self.deliver(&peer, alert.to_vec());
                }
                if let Some(done) = done {
                    let _ = done.send(false);
                }
                tracing::trace!(error = %e, "record dropped");
                false
            }
        }
    }

    /// Removes expired sessions every `period` until the process ends.
    pub(crate) fn spawn_sweeper(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(core) = weak.upgrade() else { break };
                let gone = core.table.sweep_ids(unix_now());
                if !gone.is_empty() {
                    tracing::debug!(expired = gone.len(), "sessions swept");
                }
                if let Some(sh) = core.shared.get() {
                    sh.forget(gone);
                }
            }
        })
    }
}

/// Sends records to clients by ClientID (to the path their session last used).
#[derive(Clone, Debug)]
pub struct Outbox {
    core: Arc<SessionCore>,
}

impl Outbox {
    pub(crate) fn new(core: Arc<SessionCore>) -> Self {
        Self { core }
    }

    /// Seals `payload` in the client's session and sends it on the session's latest path.
    pub fn send(
        &self,
        client_id: &ClientId,
        payload_type: PayloadType,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let bufs = &self.core.seal_buffers;
        let mut bytes = bufs.take(xtt_proto::msgs::RECORD_OVERHEAD + payload.len());
        let sealed = self.core.table.seal_to_client_into(
            client_id,
            payload_type,
            payload,
            unix_now(),
            &mut bytes,
        );
        let peer = match (sealed, self.core.shared.get()) {
            (Err(RecordError::SendReservationExhausted), Some(sh)) => {
                bufs.give_back(bytes);
                // Sent once the reservation is raised (one store round trip).
                if let Some(id) = self.core.table.session_of(client_id) {
                    let payload = zeroize::Zeroizing::new(payload.to_vec());
                    sh.defer(
                        &self.core,
                        id,
                        shared::Op::Send {
                            payload_type,
                            payload,
                        },
                    );
                }
                return Ok(());
            }
            (Ok(peer), _) => peer,
            (Err(e), _) => {
                bufs.give_back(bytes);
                return Err(e.into());
            }
        };
        self.core.deliver(&peer, bytes)
    }

    /// Counters of sessions shared between nodes (None if sessions are not shared).
    pub fn shared_stats(&self) -> Option<shared::SharedStats> {
        self.core.shared.get().map(|s| s.stats())
    }

    /// Records dropped because the application's callback panicked on them.
    pub fn app_panics(&self) -> u64 {
        self.core.app_panics.load(Ordering::Relaxed)
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.core.table.len()
    }

    /// The table's counters (delivered, unknown session, dropped by reason, expired).
    pub fn counters(&self) -> xtt_proto::session_table::TableCounters {
        self.core.table.counters()
    }
}
