//! [`SessionClient`]: a provisioned device's session with the server, over TCP or UDP, that
//! survives reconnects and address changes without a new handshake.
//!
//! ```text
//! let mut c = SessionClient::connect(addr, config, SessionClientOptions::tcp(), None).await?;
//! c.send(PayloadType::QueueProtocol, b"hello").await?;
//! let reply = c.recv().await?;              // OpenedRecord
//! c.reconnect().await?;                     // new TCP connection / new UDP source port
//! c.send(PayloadType::QueueProtocol, b"still the same session").await?;
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand_core::OsRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use xtt_proto::codec::{decode_header, MsgType, HEADER_LEN, MAX_HANDSHAKE_LEN};
use xtt_proto::msgs::ErrorMessage;
use xtt_proto::record::{OpenedInPlace, OpenedRecord, PayloadType, RecordError, RecordPayload};
use xtt_proto::session::{ClientSession, SessionClientConfig, SessionClientHandshake};
use xtt_proto::SuiteSpec;
use zeroize::Zeroize;

use crate::framing::{read_message, write_message, FrameError};
use crate::sessions::{seq_of, session_id_of};
use crate::stream_order::StreamOrder;

/// Which transport a [`SessionClient`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One TCP connection at a time, messages framed by their headers.
    Tcp,
    /// One message per datagram; handshake messages retransmitted on timeout.
    Udp,
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct SessionClientOptions {
    /// TCP or UDP.
    pub transport: Transport,
    /// The suite to ask for.
    pub suite: SuiteSpec,
    /// Bound on each network operation (connect, one handshake step over TCP, one receive).
    pub timeout: Duration,
    /// UDP: first retransmission timeout of a handshake message (doubling each time); also how
    /// long an Error must stand unanswered by any authentic record before [`SessionClient::recv`]
    /// reports [`SessionClientError::SessionUnknown`].
    pub retransmit_after: Duration,
    /// UDP: how many times a handshake message is sent at most.
    pub max_sends: u32,
}

impl SessionClientOptions {
    /// TCP, suite 1, 10 s timeout.
    pub fn tcp() -> Self {
        Self {
            transport: Transport::Tcp,
            suite: SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
            timeout: Duration::from_secs(10),
            retransmit_after: Duration::from_secs(1),
            max_sends: 6,
        }
    }
    /// UDP, suite 1, 10 s receive timeout, retransmission after 1 s (doubling), 6 sends.
    pub fn udp() -> Self {
        Self {
            transport: Transport::Udp,
            ..Self::tcp()
        }
    }
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionClientError {
    /// Connecting or binding failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// A socket error.
    #[error("i/o: {0}")]
    Io(std::io::Error),
    /// No answer in time (UDP: after every retransmission).
    #[error("timed out")]
    Timeout,
    /// The TCP connection closed, or the client closed it because a record there broke the
    /// stream's order (XTT-SESSION §3: something was cut out of the stream or reordered).
    /// [`SessionClient::reconnect`] opens a new one for the same session.
    #[error("connection closed")]
    Closed,
    /// The handshake failed (including the server's opaque Error: unknown ClientID, wrong key).
    #[error("handshake: {0}{hint}", hint = refusal_hint(.0))]
    Handshake(xtt_proto::Error),
    /// Sealing failed (payload too long, sequence numbers used up).
    #[error("record: {0}")]
    Record(#[from] RecordError),
    /// The server answered a record with Error: it no longer knows the session (expired,
    /// restarted). Run a new handshake. Over UDP, where an Error is unauthenticated, it is
    /// reported only once no authentic record from the server has followed the Error for
    /// [`SessionClientOptions::retransmit_after`].
    #[error("the server does not know this session any more")]
    SessionUnknown,
}

/// What to add to a handshake error for the user: the server's Error message carries no reason
/// by design (XTT-WIRE §5.5), so the likely ones are listed.
fn refusal_hint(e: &xtt_proto::Error) -> &'static str {
    match e {
        xtt_proto::Error::ReceivedErrorMessage => {
            " (the server refused the session handshake and gives no reason; likely causes: \
             sessions are not enabled on the server, this ClientID is unknown to the server's \
             registry (provisioned by another server or registry), or the long-term key is not \
             the one registered for this ClientID)"
        }
        _ => "",
    }
}

/// During the handshake an Error message is the server refusing it, not an unknown session.
fn handshake_frame(e: FrameError) -> SessionClientError {
    match e {
        FrameError::Protocol(e) => SessionClientError::Handshake(e),
        e => e.into(),
    }
}

impl From<FrameError> for SessionClientError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Timeout => Self::Timeout,
            FrameError::Closed => Self::Closed,
            FrameError::Io(e) => Self::Io(e),
            FrameError::Protocol(xtt_proto::Error::ReceivedErrorMessage) => Self::SessionUnknown,
            FrameError::Protocol(e) => Self::Handshake(e),
        }
    }
}

enum Link {
    Tcp(TcpStream),
    Udp(UdpSocket),
    /// A TCP connection the client closed because a record broke its order: every operation
    /// fails with [`SessionClientError::Closed`] until [`SessionClient::reconnect`].
    Broken,
}

/// An established session and the socket it currently uses.
pub struct SessionClient {
    server: SocketAddr,
    options: SessionClientOptions,
    session: ClientSession,
    link: Link,
    early_sent: bool,
    /// Records that arrived before the session was established (UDP).
    pending: std::collections::VecDeque<Vec<u8>>,
    /// TCP bytes received but not yet a whole message.
    received: RecvBuffer,
    /// TCP: the last authentic record on the current connection; the next must follow it
    /// exactly (XTT-SESSION §3, the same rule as the server's TCP driver). The count starts
    /// again on each new connection. UDP keeps only the session's sliding window.
    order: StreamOrder,
    /// UDP: when an Error message arrived that no authentic record from the server has
    /// followed since (see [`Self::recv_with`]).
    error_hint: Option<tokio::time::Instant>,
    /// UDP receive buffer (one datagram), and the buffer records are sealed into.
    datagram: Vec<u8>,
    sealed: Vec<u8>,
}

impl std::fmt::Debug for SessionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClient")
            .field("server", &self.server)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

const MAX_DATAGRAM: usize = u16::MAX as usize + 1;

async fn open_link(
    server: SocketAddr,
    options: &SessionClientOptions,
) -> Result<Link, SessionClientError> {
    match options.transport {
        Transport::Tcp => {
            let stream = tokio::time::timeout(options.timeout, TcpStream::connect(server))
                .await
                .map_err(|_| SessionClientError::Timeout)?
                .map_err(SessionClientError::Connect)?;
            let _ = stream.set_nodelay(true);
            Ok(Link::Tcp(stream))
        }
        Transport::Udp => {
            let sock = UdpSocket::bind(udp_bind_addr(server))
                .await
                .map_err(SessionClientError::Connect)?;
            sock.connect(server)
                .await
                .map_err(SessionClientError::Connect)?;
            Ok(Link::Udp(sock))
        }
    }
}

/// The local address a UDP client socket for `server` binds (any port): the loopback address
/// of the server's family when the server is on loopback (IPv4-mapped loopback included), so a
/// local client never opens a socket on every interface; otherwise the unspecified address of
/// its family (the system picks the source address, which may change when the client moves).
fn udp_bind_addr(server: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match server.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(v6) if v6.is_loopback() => Ipv6Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()) => {
            Ipv4Addr::LOCALHOST.to_ipv6_mapped().into()
        }
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    SocketAddr::new(ip, 0)
}

/// TCP bytes received and not yet consumed: `buf[start..]`. Whole messages are handed out as
/// slices of the buffer (no copy); the consumed prefix is dropped only when the buffer must
/// grow, so a burst of records costs one read and no shifting per record.
#[derive(Debug, Default)]
struct RecvBuffer {
    buf: Vec<u8>,
    start: usize,
}

impl RecvBuffer {
    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Length of the whole message at the front, if it is all there.
    fn whole_message(&self) -> Result<Option<usize>, SessionClientError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some(header) = pending.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = usize::from(
            decode_header(header, MAX_DATAGRAM - 1)
                .map_err(|e| match e {
                    xtt_proto::Error::ReceivedErrorMessage => SessionClientError::SessionUnknown,
                    e => SessionClientError::Handshake(e),
                })?
                .length,
        );
        Ok((pending.len() >= len).then_some(len))
    }

    /// Takes the message of `len` bytes at the front, mutable (to open the record where it
    /// lies).
    fn take_mut(&mut self, len: usize) -> &mut [u8] {
        let at = self.start;
        self.start = (at + len).min(self.buf.len());
        self.buf.get_mut(at..self.start).unwrap_or_default()
    }

    /// Reads more from `stream` (at least one byte, or an error).
    async fn fill(
        &mut self,
        stream: &mut TcpStream,
        timeout: Duration,
    ) -> Result<(), SessionClientError> {
        const CHUNK: usize = 64 * 1024;
        if self.start > 0 && self.buf.capacity() - self.buf.len() < CHUNK {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(CHUNK);
        // `read_buf` appends, so dropping this future (a timeout, a `select!`) loses no bytes.
        let n = tokio::time::timeout(timeout, stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| SessionClientError::Timeout)?
            .map_err(SessionClientError::Io)?;
        if n == 0 {
            return Err(SessionClientError::Closed);
        }
        Ok(())
    }
}

/// Whether a datagram is the Error message exactly (`41 0004 vv`, XTT-WIRE §5.5): a datagram
/// that merely starts with 0x41 is not one.
fn is_exact_error(bytes: &[u8]) -> bool {
    ErrorMessage::decode(bytes).is_ok()
}

/// UDP: sends `msg` and waits for a datagram of type `want` that `accept` takes, resending
/// `msg` on each timeout. A datagram of that type which `accept` refuses (it does not verify:
/// forged, damaged) is ignored and the wait goes on (XTT-SESSION §5: the client answers only
/// the first one it accepts); if the schedule ends after such refusals, the last refusal is
/// the error. Records are kept in `early` (a server reply to early data can overtake the
/// finished message); other datagrams (late duplicates of an earlier step) are ignored; a
/// second Error ends the step.
async fn udp_exchange<T>(
    sock: &UdpSocket,
    msg: &[u8],
    want: MsgType,
    options: &SessionClientOptions,
    early: &mut Vec<Vec<u8>>,
    mut accept: impl FnMut(&[u8]) -> Result<T, xtt_proto::Error>,
) -> Result<T, SessionClientError> {
    let mut wait = options.retransmit_after;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut errors = 0u32;
    let mut refused = None;
    for _ in 0..options.max_sends.max(1) {
        sock.send(msg).await.map_err(SessionClientError::Io)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(SessionClientError::Io(e)),
                Ok(Ok(n)) => {
                    let got = buf.get(..n).unwrap_or_default();
                    // Error messages are unauthenticated, and one may answer a duplicate of our
                    // own flight that the server processed concurrently with the original: resend
                    // once at once (a finished flight is then answered from the server's cache)
                    // and give up on the second Error. Only the exact 4-byte message counts.
                    if is_exact_error(got) {
                        if errors > 0 {
                            return Err(SessionClientError::Handshake(
                                xtt_proto::Error::ReceivedErrorMessage,
                            ));
                        }
                        errors += 1;
                        break;
                    }
                    if got.first() == Some(&want.0) {
                        match accept(got) {
                            Ok(t) => return Ok(t),
                            Err(e) => {
                                tracing::debug!(error = %e, "handshake answer refused: ignored");
                                refused = Some(e);
                            }
                        }
                        continue;
                    }
                    if got.first() == Some(&MsgType::RECORD_REGULAR.0) && early.len() < 64 {
                        early.push(got.to_vec());
                    }
                }
            }
        }
        wait = wait.saturating_mul(2);
    }
    Err(refused.map_or(SessionClientError::Timeout, SessionClientError::Handshake))
}

impl SessionClient {
    /// Runs a session handshake with `server` as the identity in `config`. With `early_data`
    /// the first record travels with the third handshake message (0x22).
    pub async fn connect(
        server: SocketAddr,
        config: SessionClientConfig,
        options: SessionClientOptions,
        early_data: Option<(PayloadType, &[u8])>,
    ) -> Result<Self, SessionClientError> {
        let mut link = open_link(server, &options).await?;
        let (state, client_init) = SessionClientHandshake::start(config, options.suite, &mut OsRng);
        let t = options.timeout;
        let mut pending = Vec::new();
        let session = match &mut link {
            Link::Tcp(stream) => {
                write_message(stream, &client_init, t)
                    .await
                    .map_err(handshake_frame)?;
                let sia = read_message(stream, MAX_HANDSHAKE_LEN, t)
                    .await
                    .map_err(handshake_frame)?;
                let (state, flight) = state
                    .handle_server_attest(&sia, early_data, &mut OsRng)
                    .map_err(SessionClientError::Handshake)?;
                write_message(stream, &flight, t)
                    .await
                    .map_err(handshake_frame)?;
                let fin = read_message(stream, MAX_HANDSHAKE_LEN, t)
                    .await
                    .map_err(handshake_frame)?;
                state
                    .handle_server_finished(&fin)
                    .map_err(SessionClientError::Handshake)?
            }
            Link::Udp(sock) => {
                let (state, flight) = udp_exchange(
                    sock,
                    &client_init,
                    MsgType::SERVER_INIT_AND_ATTEST,
                    &options,
                    &mut Vec::new(),
                    |sia| state.try_server_attest(sia, early_data, &mut OsRng),
                )
                .await?;
                let fin = udp_exchange(
                    sock,
                    &flight,
                    MsgType::SESSION_SERVER_FINISHED,
                    &options,
                    &mut pending,
                    |fin| state.verify_server_finished(fin).map(|()| fin.to_vec()),
                )
                .await?;
                state
                    .handle_server_finished(&fin)
                    .map_err(SessionClientError::Handshake)?
            }
            // `open_link` never returns it.
            Link::Broken => return Err(SessionClientError::Closed),
        };
        Ok(Self {
            server,
            options,
            session,
            link,
            early_sent: early_data.is_some(),
            pending: pending.into(),
            received: RecvBuffer::default(),
            order: StreamOrder::default(),
            error_hint: None,
            datagram: Vec::new(),
            sealed: Vec::new(),
        })
    }

    /// The session (id, ClientID, suite, counters).
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// The session, for sealing records to send by other means ([`Self::send_raw`], tests).
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.session
    }

    /// Whether the handshake carried early data.
    pub fn sent_early_data(&self) -> bool {
        self.early_sent
    }

    /// The local address now in use (changes with [`Self::reconnect`]).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.link {
            Link::Tcp(s) => s.local_addr(),
            Link::Udp(s) => s.local_addr(),
            Link::Broken => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Seals one record and sends it.
    pub async fn send(
        &mut self,
        payload_type: PayloadType,
        payload: &[u8],
    ) -> Result<(), SessionClientError> {
        let mut sealed = std::mem::take(&mut self.sealed);
        sealed.clear();
        let result = match self.session.seal_into(payload_type, payload, &mut sealed) {
            Ok(()) => self.send_raw(&sealed).await,
            Err(e) => Err(e.into()),
        };
        self.sealed = sealed;
        result
    }

    /// Sends bytes as they are on the current path (tests inject crafted records with it).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), SessionClientError> {
        match &mut self.link {
            Link::Tcp(s) => tokio::time::timeout(self.options.timeout, s.write_all(bytes))
                .await
                .map_err(|_| SessionClientError::Timeout)?
                .map_err(SessionClientError::Io),
            Link::Udp(s) => s
                .send(bytes)
                .await
                .map(|_| ())
                .map_err(SessionClientError::Io),
            Link::Broken => Err(SessionClientError::Closed),
        }
    }

    /// The next authentic, fresh record from the server (forged, duplicated and stale ones are
    /// dropped and counted in [`ClientSession::drops`]). Cancel-safe: TCP bytes are kept in the
    /// client until a whole message is there, so a timeout or a `select!` that drops this
    /// future loses nothing, and receiving can simply be retried.
    pub async fn recv(&mut self) -> Result<OpenedRecord, SessionClientError> {
        self.recv_with(|r| OpenedRecord {
            session_id: r.session_id,
            seq: r.seq,
            payload_type: r.payload_type,
            payload: RecordPayload::from_slice(r.payload),
        })
        .await
    }

    /// [`Self::recv`] without copying the payload: the record is decrypted where it lies in the
    /// client's receive buffer and `f` sees it there; that plaintext is zeroized as soon as `f`
    /// returns (the buffer is kept and reused, so it would otherwise linger). Cancel-safe like
    /// [`Self::recv`].
    pub async fn recv_with<R>(
        &mut self,
        mut f: impl FnMut(&OpenedInPlace<'_>) -> R,
    ) -> Result<R, SessionClientError> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                match self.session.open(&bytes) {
                    Ok(record) => {
                        self.error_hint = None;
                        return Ok(f(&OpenedInPlace {
                            session_id: record.session_id,
                            seq: record.seq,
                            payload_type: record.payload_type,
                            payload: &record.payload,
                        }));
                    }
                    Err(e) => tracing::debug!(error = %e, "early record from server dropped"),
                }
                continue;
            }
            let bytes: &mut [u8] = match &mut self.link {
                Link::Tcp(s) => match self.received.whole_message()? {
                    Some(len) => self.received.take_mut(len),
                    None => {
                        self.received.fill(s, self.options.timeout).await?;
                        continue;
                    }
                },
                Link::Udp(s) => {
                    self.datagram.resize(MAX_DATAGRAM, 0);
                    let now = tokio::time::Instant::now();
                    let hint_ends = self.error_hint.map(|at| at + self.options.retransmit_after);
                    let deadline = hint_ends.map_or(now + self.options.timeout, |end| {
                        end.min(now + self.options.timeout)
                    });
                    let n =
                        match tokio::time::timeout_at(deadline, s.recv(&mut self.datagram)).await {
                            Ok(n) => n.map_err(SessionClientError::Io)?,
                            Err(_) if hint_ends.is_some_and(|end| end <= deadline) => {
                                self.error_hint = None;
                                return Err(SessionClientError::SessionUnknown);
                            }
                            Err(_) => return Err(SessionClientError::Timeout),
                        };
                    let datagram = self.datagram.get_mut(..n).unwrap_or_default();
                    // Anyone who can send from the server's address can send an Error: it
                    // carries nothing authenticated (XTT-SESSION §6: only a hint to
                    // re-handshake). So only the exact 4-byte message counts, and it does not
                    // end the session at once: if no authentic record from the server follows
                    // within `retransmit_after`, `recv` reports `SessionUnknown`; one that
                    // does proves the session alive and cancels the hint. Anything else that
                    // starts with 0x41 is dropped like any record that does not open.
                    if is_exact_error(datagram) {
                        self.error_hint
                            .get_or_insert_with(tokio::time::Instant::now);
                        continue;
                    }
                    datagram
                }
                Link::Broken => return Err(SessionClientError::Closed),
            };
            // (TCP: an Error in the stream ended `recv` at its header, in `whole_message`.)
            let stream = matches!(self.link, Link::Tcp(_));
            if stream && bytes.first() == Some(&MsgType::RECORD_REGULAR.0) {
                if let Some((id, seq)) = session_id_of(bytes).zip(seq_of(bytes)) {
                    if !self.order.expects(&id, seq) {
                        // Not delivered; the connection is done (the server does the same).
                        tracing::debug!(seq, "record out of order on the TCP connection: closed");
                        self.link = Link::Broken;
                        self.received.clear();
                        return Err(SessionClientError::Closed);
                    }
                }
            }
            let out = match self.session.open_in_place(bytes) {
                Ok(record) => {
                    if stream {
                        self.order.accepted(record.session_id, record.seq);
                    }
                    self.error_hint = None;
                    Some(f(&record))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "record from server dropped");
                    None
                }
            };
            bytes.zeroize();
            if let Some(out) = out {
                return Ok(out);
            }
        }
    }

    /// A new path to the server, same session: a new TCP connection, or a new UDP socket (new
    /// source port). The server moves the session to it on the next record sent.
    pub async fn reconnect(&mut self) -> Result<(), SessionClientError> {
        self.link = open_link(self.server, &self.options).await?;
        // A partial message of the old connection never completes, and the new connection's
        // first record starts its own count.
        self.received.clear();
        self.order = StreamOrder::default();
        Ok(())
    }

    /// A new path to another server of the same deployment (sessions shared between nodes),
    /// same session; later reconnects go there too.
    pub async fn reconnect_to(&mut self, server: SocketAddr) -> Result<(), SessionClientError> {
        self.server = server;
        self.reconnect().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_udp_client_binds_loopback_for_a_loopback_server_and_any_address_otherwise() {
        for (server, local) in [
            ("127.0.0.1:4444", "127.0.0.1:0"),
            // Any 127/8 server is reached from 127.0.0.1.
            ("127.0.0.2:4444", "127.0.0.1:0"),
            ("[::1]:4444", "[::1]:0"),
            ("[::ffff:127.0.0.1]:4444", "[::ffff:127.0.0.1]:0"),
            ("192.0.2.7:4444", "0.0.0.0:0"),
            ("[2001:db8::7]:4444", "[::]:0"),
            ("[::ffff:192.0.2.7]:4444", "[::]:0"),
            // An unspecified server address means this host, but not via loopback only.
            ("0.0.0.0:4444", "0.0.0.0:0"),
        ] {
            assert_eq!(udp_bind_addr(addr(server)), addr(local), "server {server}");
        }
    }

    /// The loopback choice is usable: a socket bound that way reaches a loopback server.
    #[tokio::test]
    async fn a_loopback_bound_udp_client_reaches_a_loopback_server() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = server.local_addr().unwrap();
        let link = open_link(to, &SessionClientOptions::udp()).await.unwrap();
        let Link::Udp(sock) = link else {
            panic!("a UDP link")
        };
        assert_eq!(sock.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        sock.send(b"x").await.unwrap();
        let mut buf = [0u8; 4];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (1, sock.local_addr().unwrap()));
    }
}
