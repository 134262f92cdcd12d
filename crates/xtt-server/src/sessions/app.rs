//! The application side of sessions and the built-in handlers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xtt_proto::record::{PayloadType, RecordPayload};
use xtt_proto::ClientId;

use super::Outbox;

/// One authentic, fresh record from a client, lent to the application for the duration of
/// [`SessionApp::on_record`].
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingRecord<'a> {
    /// The sender, authenticated by its session handshake.
    pub client_id: ClientId,
    /// What the payload is.
    pub payload_type: PayloadType,
    /// The payload: usually a slice of the connection's receive buffer, where the record was
    /// decrypted. The server zeroizes it when `on_record` returns; copy what must outlive the
    /// call.
    pub payload: &'a [u8],
}

/// A record the server holds before handing it out (a 0x22 flight's early data): zeroized when
/// dropped.
#[derive(Debug)]
pub(crate) struct HeldRecord {
    pub(crate) client_id: ClientId,
    pub(crate) payload_type: PayloadType,
    pub(crate) payload: RecordPayload,
}

impl HeldRecord {
    pub(crate) fn lend(&self) -> IncomingRecord<'_> {
        IncomingRecord {
            client_id: self.client_id,
            payload_type: self.payload_type,
            payload: &self.payload,
        }
    }
}

/// Receives records; answers (now or later) through the [`Outbox`]. Called on the receiving
/// task: do not block (hand long work to a task of your own).
pub trait SessionApp: Send + Sync + 'static {
    /// One record arrived.
    fn on_record(&self, record: IncomingRecord<'_>, out: &Outbox);
}

/// Sends every payload back to its sender, same payload type.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl SessionApp for Echo {
    fn on_record(&self, record: IncomingRecord<'_>, out: &Outbox) {
        if let Err(e) = out.send(&record.client_id, record.payload_type, record.payload) {
            tracing::debug!(client_id = %record.client_id, error = %e, "echo dropped");
        }
    }
}

/// Forwards each session's payloads, one datagram each, to a local UDP address, from a socket
/// of its own per ClientID; datagrams the target sends back to that socket go to the client as
/// records (payload type queue_protocol). The target thus tells clients apart by source port.
///
/// A client's socket is closed when its session is gone (a reply can no longer be delivered)
/// or when nothing passed either way for the idle timeout, so the `max_clients` sockets are
/// reused as devices come and go instead of running out for good.
#[derive(Debug)]
pub struct ForwardUdp {
    target: SocketAddr,
    sockets: Arc<Mutex<HashMap<ClientId, Arc<Forwarder>>>>,
    max_clients: usize,
    idle: Duration,
}

/// One client's forwarding socket: the sending half (a plain non-blocking socket; the
/// receiving task owns a duplicate registered with tokio) and when it was last used.
#[derive(Debug)]
struct Forwarder {
    sock: std::net::UdpSocket,
    last_used: Mutex<Instant>,
}

impl Forwarder {
    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }
}

impl ForwardUdp {
    /// Forwards to `target`, with at most `max_clients` forwarding sockets open at once, each
    /// closed after 600 s without traffic (the sessions' default idle timeout).
    pub fn new(target: SocketAddr, max_clients: usize) -> Self {
        Self {
            target,
            sockets: Arc::new(Mutex::new(HashMap::new())),
            max_clients,
            idle: Duration::from_secs(600),
        }
    }

    /// Closes a client's socket after `idle` without traffic either way.
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Forwarding sockets open now.
    pub fn open_sockets(&self) -> usize {
        self.sockets.lock().map(|s| s.len()).unwrap_or(0)
    }

    fn socket_for(&self, client_id: ClientId, out: &Outbox) -> Option<Arc<Forwarder>> {
        let mut sockets = self.sockets.lock().ok()?;
        if let Some(f) = sockets.get(&client_id) {
            return Some(f.clone());
        }
        if sockets.len() >= self.max_clients {
            return None;
        }
        let bind: SocketAddr = if self.target.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        };
        let std_sock = std::net::UdpSocket::bind(bind).ok()?;
        std_sock.connect(self.target).ok()?;
        std_sock.set_nonblocking(true).ok()?;
        let forwarder = Arc::new(Forwarder {
            sock: std_sock.try_clone().ok()?,
            last_used: Mutex::new(Instant::now()),
        });
        let reader = tokio::net::UdpSocket::from_std(std_sock).ok()?;
        sockets.insert(client_id, forwarder.clone());
        let (out, all, mine, idle) = (
            out.clone(),
            self.sockets.clone(),
            forwarder.clone(),
            self.idle,
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; xtt_proto::record::MAX_PAYLOAD_LEN];
            loop {
                let wait = idle
                    .saturating_sub(mine.idle_for())
                    .max(Duration::from_millis(1));
                let n = match tokio::time::timeout(wait, reader.recv(&mut buf)).await {
                    Ok(Ok(n)) => n,
                    Ok(Err(_)) => break,
                    // Quiet so far: closed if the client sent nothing meanwhile either.
                    Err(_) if mine.idle_for() >= idle => break,
                    Err(_) => continue,
                };
                let Some(payload) = buf.get(..n) else { break };
                mine.touch();
                if let Err(e) = out.send(&client_id, PayloadType::QueueProtocol, payload) {
                    tracing::debug!(%client_id, error = %e, "forward reply dropped");
                    if matches!(e, super::SendError::Record(_)) {
                        break; // the session is gone
                    }
                }
            }
            // Only this socket's entry: the client may have a newer one by now.
            if let Ok(mut sockets) = all.lock() {
                if sockets
                    .get(&client_id)
                    .is_some_and(|f| Arc::ptr_eq(f, &mine))
                {
                    sockets.remove(&client_id);
                }
            }
        });
        Some(forwarder)
    }
}

impl SessionApp for ForwardUdp {
    fn on_record(&self, record: IncomingRecord<'_>, out: &Outbox) {
        match self.socket_for(record.client_id, out) {
            Some(f) => {
                f.touch();
                let _ = f.sock.send(record.payload);
            }
            None => tracing::warn!(client_id = %record.client_id, "forwarding socket unavailable"),
        }
    }
}

/// Forwards every payload as one datagram to a local Unix datagram socket, prefixed with the
/// sender's 16-byte ClientID (one-way: the Unix target cannot answer an unbound sender).
#[derive(Debug)]
pub struct ForwardUnix {
    target: PathBuf,
    socket: std::os::unix::net::UnixDatagram,
}

impl ForwardUnix {
    /// Forwards to the socket at `target`.
    pub fn new(target: PathBuf) -> std::io::Result<Self> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self { target, socket })
    }
}

impl SessionApp for ForwardUnix {
    fn on_record(&self, record: IncomingRecord<'_>, _out: &Outbox) {
        let mut datagram = Vec::with_capacity(16 + record.payload.len());
        datagram.extend_from_slice(&record.client_id.0);
        datagram.extend_from_slice(record.payload);
        if let Err(e) = self.socket.send_to(&datagram, &self.target) {
            tracing::debug!(error = %e, "unix forward dropped");
        }
    }
}
