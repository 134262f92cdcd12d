//! Sessions on a TCP connection: the session branch of the handshake and the record loop.
//!
//! A connection carries records of any session (usually one); the session's records go back on
//! the connection that last delivered one, through a bounded queue, so the application never
//! waits on a slow socket (a full queue drops records, as UDP would). One task per connection
//! reads and writes ([`serve_records`]). Records are opened where they lie in the connection's
//! receive buffer ([`SessionCore::on_record_in_place`]).

use std::sync::Arc;
use std::time::Duration;

use std::io::IoSlice;

use rand_core::OsRng;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use xtt_proto::codec::{decode_header, MsgType, HEADER_LEN};
use xtt_proto::error::{PeerMisbehaved, Refused};
use xtt_proto::record::SessionId;
use xtt_registry::CookieUse;

use super::app::HeldRecord;
use super::seal_buffers::SealBuffers;
use super::{seq_of, session_id_of, Peer, SessionCore};
use crate::framing::FrameError;
use crate::server::unix_now;
use crate::stream_order::StreamOrder;

/// Largest message on a session connection (a record with a full payload).
pub(crate) const MAX_RECORD_MESSAGE: usize = u16::MAX as usize;

/// A connection that finished its session handshake (or started with a record) and now carries
/// records.
pub(crate) struct RecordStream {
    pub(crate) conn: u64,
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
    /// Taken by the record loop.
    pub(crate) rx: Option<mpsc::Receiver<Vec<u8>>>,
    /// A record read before the loop started (a connection that opens with a record).
    pub(crate) first: Option<Vec<u8>>,
    /// Early data of a 0x22 flight, for the application.
    pub(crate) early: Option<HeldRecord>,
}

impl RecordStream {
    pub(crate) fn new(core: &SessionCore) -> Self {
        let (tx, rx) = mpsc::channel(core.tcp_queue);
        Self {
            conn: core.conn_id(),
            tx,
            rx: Some(rx),
            first: None,
            early: None,
        }
    }

    pub(crate) fn peer(&self) -> Peer {
        Peer::Tcp {
            conn: self.conn,
            tx: self.tx.clone(),
        }
    }
}

/// Whether `msg` is the third message of a session handshake.
pub(crate) fn is_session_attest(msg: &[u8]) -> bool {
    matches!(
        msg.first().copied().map(MsgType),
        Some(MsgType::SESSION_CLIENT_ATTEST_NO_PAYLOAD | MsgType::SESSION_CLIENT_ATTEST_PAYLOAD)
    )
}

/// Whether `msg` is a record.
pub(crate) fn is_record(msg: &[u8]) -> bool {
    msg.first() == Some(&MsgType::RECORD_REGULAR.0)
}

/// Runs the session handshake's third flight (`stream`: it came over TCP) and stores the
/// session with the peer `path` makes from the new session's id (called only once the handshake
/// succeeded, so a failed one leaves no per-connection state behind); returns
/// Session_ServerFinished, the early data and what `path` returned besides the peer (a TCP
/// connection's record state).
///
/// The crypto runs here, on the calling (reactor) task, not on the CPU pool: it is one AEAD
/// open, one ECDSA verification, a few prf calls and one AEAD seal (≈ 100 µs), where a pool
/// round trip costs a futex wake of a pool thread, an eventfd wake of a tokio worker and two
/// context switches. The pool is for the DAA verification of identity provisioning (≈ 2 ms).
/// Concurrency stays bounded by the callers: the handshake permits (TCP connections, UDP
/// handshake tasks) and the reactor's threads. A long-term key missing from
/// [`super::RegistryKeys`]' cache is looked up on a blocking thread (it may query a database);
/// with shared sessions the new session is written to the shared store there too, and goes
/// into the table only once that write is durable.
pub(crate) async fn accept<T>(
    sh: &crate::server::Shared,
    core: &Arc<SessionCore>,
    (flight, stream): (&[u8], bool),
    path: impl FnOnce(SessionId) -> (Peer, T),
) -> Result<(Vec<u8>, Option<HeldRecord>, T), xtt_proto::Error> {
    let mut opened = sh.proto.open_session_client_attest(flight, unix_now())?;
    if stream {
        // Only datagram clients retransmit a flight: TCP's need no room in the finished cache.
        opened = opened.from_reliable_stream();
    }
    let client_id = opened.client_id();
    let key = match core.keys.cached_verdict(&client_id) {
        Some(verdict) => verdict,
        None => {
            let c = core.clone();
            tokio::task::spawn_blocking(move || {
                use xtt_proto::session::ClientRegistry;
                c.keys.longterm_key(&client_id)
            })
            .await
            .ok()
            .flatten()
        }
    };
    let now = unix_now();
    let accepted = sh
        .proto
        .finish_session_client_attest(opened, key.as_ref(), now, &mut OsRng)?;
    let finished = accepted.finished;
    let retransmission = accepted.retransmission;
    let early = accepted.early_data.map(|r| HeldRecord {
        client_id,
        payload_type: r.payload_type,
        payload: r.payload,
    });
    // Accepted at most once deployment-wide: with cookie keys shared between nodes, the same
    // flight replayed to another node would otherwise make a second session with the same keys
    // (and so reuse its nonces). The claim is durable before Session_ServerFinished goes out.
    let cookie = CookieUse {
        id: accepted.cookie_id.0,
        expires_at: accepted.cookie_expires_at,
    };
    let shared = core.shared.get().cloned();
    let session = match &shared {
        None if sh.cookie_keys_shared() => {
            let registry = sh.registry().clone();
            match tokio::task::spawn_blocking(move || registry.claim_cookie(&cookie)).await {
                Ok(Ok(true)) => accepted.session,
                Ok(Ok(false)) => return Err(PeerMisbehaved::ReplayedCookie.into()),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "claiming a session cookie failed");
                    return Err(Refused::SessionStoreUnavailable.into());
                }
                Err(_) => return Err(Refused::SessionStoreUnavailable.into()),
            }
        }
        None => accepted.session,
        Some(shared) => {
            let (shared, session) = (shared.clone(), accepted.session);
            let lifetime = core.max_lifetime_secs;
            let (stored_tx, stored_rx) = tokio::sync::oneshot::channel();
            tokio::task::spawn_blocking(move || {
                let stored = shared.persist_new(session, &cookie, now, lifetime);
                // Nobody waits any more (the handshake timed out during the write): no client
                // was told of this session and nothing will put it in the table, so its row
                // goes now rather than at the sweep.
                if let Err(Ok(Ok(orphan))) = stored_tx.send(stored) {
                    shared.forget(vec![orphan.id()]);
                }
            });
            match stored_rx.await {
                Ok(Ok(Ok(s))) => s,
                Ok(Ok(Err(refused))) => return Err(refused),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "storing a session failed");
                    return Err(Refused::SessionStoreUnavailable.into());
                }
                Err(_) => return Err(Refused::SessionStoreUnavailable.into()),
            }
        }
    };
    let id = session.id();
    let (peer, with_peer) = path(id);
    if let Err(refused) = core.table.insert(session, peer, now) {
        // The client is refused: the shared store must not keep a row for it either.
        if let Some(shared) = &shared {
            shared.forget(vec![id]);
        }
        return Err(refused.into());
    }
    // Only now may a retransmission of the flight be answered as established.
    if let Some(receipt) = retransmission {
        sh.proto.remember_finished(receipt, &finished, now);
    }
    Ok((finished, early, with_peer))
}

/// Whole messages from a byte stream through one reusable buffer: a read takes whatever has
/// arrived (often several records; a whole handshake message with its header in one system
/// call), and each message is handed out as a slice of the buffer, so the record loop makes no
/// allocation and, under load, far fewer than two reads per record. One reader serves a
/// connection from its first message on, so bytes read past the handshake are kept for the
/// record loop.
#[derive(Debug)]
pub(crate) struct MessageReader {
    /// Received bytes; `buf[start..]` is not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// Room one read asks for: starts small and doubles whenever a read fills it, up to
    /// `max_chunk` (a connection that only did a handshake never takes a 64 KiB buffer).
    chunk: usize,
    max_chunk: usize,
}

/// Queued records written with one vectored write at most.
const WRITE_BATCH: usize = 64;

/// The most one read asks room for in the record loop: a whole record of the largest size fits.
const READ_CHUNK: usize = MAX_RECORD_MESSAGE + 1;

/// What one read asks room for at first (handshake messages are a few hundred bytes; a larger
/// early-data record is read in several steps).
const HANDSHAKE_CHUNK: usize = 1024;

/// How long a record connection waits with nothing to read before it gives its read buffer
/// back (an idle connection holds none; a busy one keeps it between bursts).
const KEEP_BUFFER: Duration = Duration::from_millis(200);

impl MessageReader {
    /// A reader for a connection's handshake (small reads).
    pub(crate) fn for_handshake() -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            chunk: HANDSHAKE_CHUNK,
            max_chunk: HANDSHAKE_CHUNK,
        }
    }

    /// From now on reads may grow to whole records of any size (several per read).
    pub(crate) fn for_records(&mut self) {
        self.max_chunk = READ_CHUNK;
    }

    /// The next whole message (at most `limit(type)` bytes), reading as needed; `timeout`
    /// bounds the wait for the whole message. Cancel-safe: bytes read stay in the buffer.
    pub(crate) async fn next(
        &mut self,
        stream: &TcpStream,
        limit: impl Fn(MsgType) -> usize,
        timeout: Duration,
    ) -> Result<&mut [u8], FrameError> {
        let len = tokio::time::timeout(timeout, async {
            loop {
                if let Some(len) = self.whole_message(&limit)? {
                    return Ok(len);
                }
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                } else if self.start > 0 && self.buf.capacity() - self.buf.len() < self.chunk {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                self.buf.reserve(self.chunk);
                match read_draining(stream, &mut self.buf) {
                    Ok(0) => return Err(FrameError::Closed),
                    Ok(n) => {
                        if n >= self.chunk {
                            self.chunk = (2 * self.chunk).min(self.max_chunk);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if !self.buf.is_empty() {
                            stream.readable().await.map_err(FrameError::Io)?;
                        } else if tokio::time::timeout(KEEP_BUFFER, stream.readable())
                            .await
                            .is_err()
                        {
                            // Nothing pending and nothing arriving: give the buffer back, so an
                            // idle connection (there may be thousands) holds no 64 KiB while it
                            // waits; it is taken again once bytes are there to read.
                            self.buf = Vec::new();
                            self.chunk = HANDSHAKE_CHUNK;
                            stream.readable().await.map_err(FrameError::Io)?;
                        }
                    }
                    Err(e) => return Err(FrameError::Io(e)),
                }
            }
        })
        .await
        .map_err(|_| FrameError::Timeout)??;
        let at = self.start;
        self.start = (at + len).min(self.buf.len());
        Ok(self.buf.get_mut(at..self.start).unwrap_or_default())
    }

    /// Whether a whole message (or a bad header, which [`Self::next`] reports) is buffered, so
    /// that [`Self::next`] returns without reading the socket.
    fn holds_message(&self) -> bool {
        !matches!(self.whole_message(&|_| MAX_RECORD_MESSAGE), Ok(None))
    }

    fn whole_message(
        &self,
        limit: &impl Fn(MsgType) -> usize,
    ) -> Result<Option<usize>, FrameError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some(header) = pending.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let h = decode_header(header, limit(MsgType(header.first().copied().unwrap_or(0))))?;
        let len = usize::from(h.length);
        Ok((pending.len() >= len).then_some(len))
    }
}

/// One non-blocking read into `buf`'s spare room (as `try_read_buf`). A read that leaves room
/// unused has emptied the socket's receive queue, so it also clears the stream's read readiness,
/// as tokio's own `poll_read` does after a short read: the next wait then goes straight to the
/// reactor instead of first paying for a `recv` that can only answer EAGAIN. A session handshake
/// waits for the peer three times; a record loop after every burst. Readiness is cleared only if
/// no event arrived since it was read (tokio checks the event's tick), so bytes that land after
/// this read still wake the next wait.
fn read_draining(stream: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::io::ErrorKind::WouldBlock;
    let mut got = 0;
    let read = stream.try_io(tokio::io::Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        got = stream.try_read_buf(buf)?;
        if got > 0 && got < room {
            Err(WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match read {
        Err(e) if e.kind() == WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// Records queued for a connection and not written yet, in order; the first may be written in
/// part.
#[derive(Debug, Default)]
struct Outgoing {
    bufs: Vec<Vec<u8>>,
    /// Bytes of `bufs[0]` already written.
    off: usize,
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Writes as much as the socket takes now without waiting, [`WRITE_BATCH`] records per
    /// vectored write at most. Written buffers go back to `recycle` for the next records.
    fn write_now(&mut self, stream: &TcpStream, recycle: &SealBuffers) -> std::io::Result<()> {
        while !self.bufs.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
            let mut used = 0;
            for (slot, (k, b)) in slices.iter_mut().zip(self.bufs.iter().enumerate()) {
                *slot = IoSlice::new(if k == 0 {
                    b.get(self.off..).unwrap_or_default()
                } else {
                    b
                });
                used += 1;
            }
            match stream.try_write_vectored(slices.get(..used).unwrap_or_default()) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n, recycle),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Drops the first `n` bytes (whole buffers go back to `recycle`).
    fn advance(&mut self, mut n: usize, recycle: &SealBuffers) {
        let mut whole = 0;
        for b in &self.bufs {
            let left = b.len().saturating_sub(self.off);
            if n < left {
                self.off += n;
                break;
            }
            n -= left;
            self.off = 0;
            whole += 1;
        }
        recycle.give_back_all(self.bufs.drain(..whole));
    }

    /// Writes everything, waiting for the socket as needed.
    async fn write_all(
        &mut self,
        stream: &TcpStream,
        recycle: &SealBuffers,
    ) -> std::io::Result<()> {
        while !self.is_empty() {
            stream.writable().await?;
            self.write_now(stream, recycle)?;
        }
        Ok(())
    }
}

/// Serves records on `stream` until the peer closes it, it breaks, it stays silent for `idle`,
/// or the server stops.
///
/// One task reads and writes, like a TLS echo: once the records already read are handled (and
/// before the socket is read again), whatever they produced is written. A burst's echoes thus
/// leave while the rest of it arrives, instead of after its last record; a separate writer task
/// would wait for the reader to run dry, since tokio runs a task woken by its worker's current
/// task only when that one yields. A full socket does not stop reading: the records wait, and
/// once the connection's queue is full the application's next ones are dropped, as UDP would.
pub(crate) async fn serve_records(
    core: Arc<SessionCore>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    mut rs: RecordStream,
    mut messages: MessageReader,
    idle: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Per client address as well as in all: a connection that opens with one fresh record of
    // any session it holds keeps its slot for the idle timeout, so one device (or one source)
    // could otherwise hold every slot.
    // The address accept returned: no getpeername on every session connection.
    let Some(_slot) = core.tcp_connections.try_acquire(peer.ip()) else {
        tracing::debug!(
            conn = rs.conn,
            "too many session connections (in all or from this client): closed"
        );
        return;
    };
    let Some(mut rx) = rs.rx.take() else { return };
    let mut out = Outgoing::default();
    let recycle = &core.seal_buffers;
    let peer = rs.peer();
    let outbox = super::Outbox::new(core.clone());
    if let Some(early) = rs.early.take() {
        core.to_app(early.lend(), &outbox);
    }
    let mut order = StreamOrder::default();
    // A connection that opens with a record must prove itself with it: otherwise anyone could
    // park idle connections here without a session.
    if let Some(first) = rs.first.take() {
        let header = session_id_of(&first).zip(seq_of(&first));
        // With shared sessions the record may wait for a hand-over: wait for its verdict.
        let (done, verdict) = tokio::sync::oneshot::channel();
        let accepted =
            core.on_record_then(&first, peer.clone(), Some(done)) && verdict.await == Ok(true);
        if !accepted {
            // Its answer (an Error) goes out, then the connection closes.
            while let Ok(b) = rx.try_recv() {
                out.bufs.push(b);
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(1), out.write_all(&stream, recycle)).await;
            return;
        }
        if let Some((id, seq)) = header {
            order.accepted(id, seq);
        }
    }
    messages.for_records();
    // Silence is counted from the peer's last message: records written to it do not keep the
    // connection open.
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            w = stream.writable(), if !out.is_empty() => {
                if w.and_then(|()| out.write_now(&stream, recycle)).is_err() {
                    break;
                }
                continue;
            }
            // Every record read so far is handled: what it produced goes out before the next read.
            n = rx.recv_many(&mut out.bufs, WRITE_BATCH),
                if out.is_empty() && !messages.holds_message() =>
            {
                if n == 0 || out.write_now(&stream, recycle).is_err() {
                    break;
                }
                continue;
            }
            m = messages.next(&stream, |_| MAX_RECORD_MESSAGE,
                idle.saturating_sub(last_heard.elapsed())) => m,
        };
        match msg {
            Ok(msg) if is_record(msg) => {
                last_heard = tokio::time::Instant::now();
                let header = session_id_of(msg).zip(seq_of(msg));
                if let Some((id, seq)) = header {
                    if !order.expects(&id, seq) {
                        tracing::debug!(
                            conn = rs.conn,
                            seq,
                            "record out of order on a TCP connection: closed"
                        );
                        break;
                    }
                }
                if core.on_record_in_place(msg, &peer) {
                    if let Some((id, seq)) = header {
                        order.accepted(id, seq);
                    }
                }
            }
            Ok(_) => {
                tracing::debug!(conn = rs.conn, "non-record message on a session connection");
                break;
            }
            Err(e) => {
                tracing::debug!(conn = rs.conn, error = %e, "session connection ends");
                break;
            }
        }
    }
    // The table may still hold this connection's sender: dropping the queue's receiver on
    // return makes later sends to it fail fast (NoPath) until the client's next record moves
    // the session. Dropping the stream closes the socket and sends the FIN (no separate
    // shutdown call: most of these connections only did a handshake).
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A read that leaves room unused clears the read readiness (a wait now goes to the
    /// reactor), bytes that arrive afterwards still wake that wait, and a read that fills its
    /// room keeps the readiness (more may be queued).
    #[tokio::test]
    async fn a_draining_read_clears_readiness_and_later_bytes_still_wake_the_reader() {
        use tokio::io::AsyncWriteExt;
        use tokio::time::timeout;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let patience = Duration::from_secs(5);

        client.write_all(b"first").await.unwrap();
        timeout(patience, server.readable()).await.unwrap().unwrap();
        let mut buf = Vec::with_capacity(64);
        assert_eq!(read_draining(&server, &mut buf).unwrap(), 5);
        assert!(
            timeout(Duration::from_millis(50), server.readable())
                .await
                .is_err(),
            "a short read cleared the readiness"
        );
        client.write_all(b"second").await.unwrap();
        timeout(patience, server.readable())
            .await
            .expect("bytes sent after the short read wake the reader")
            .unwrap();
        assert_eq!(read_draining(&server, &mut buf).unwrap(), 6);
        assert_eq!(buf, b"firstsecond");

        client.write_all(&[7u8; 100]).await.unwrap();
        timeout(patience, server.readable()).await.unwrap().unwrap();
        let mut small = Vec::with_capacity(10);
        assert_eq!(read_draining(&server, &mut small).unwrap(), 10);
        timeout(Duration::from_millis(50), server.readable())
            .await
            .expect("a read that filled its room keeps the readiness")
            .unwrap();

        drop(client);
        let mut rest = Vec::with_capacity(1024);
        let mut total = 0;
        loop {
            timeout(patience, server.readable()).await.unwrap().unwrap();
            match read_draining(&server, &mut rest) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(total, 90, "the rest, then end of stream");
    }

    /// More than the socket takes at once, so writes stop part-way through buffers (several
    /// times in the large ones): what arrives is every buffer, whole and in order, and the
    /// written ones are recycled.
    #[tokio::test]
    async fn queued_records_arrive_whole_and_in_order_through_a_full_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let recycle = SealBuffers::default();
        let mut out = Outgoing::default();
        for i in 0..16usize {
            // The socket takes at most a few MB per write (its send buffer), so the largest
            // buffer goes out in several pieces.
            let len = match i {
                7 => 16_000_003,
                _ if i % 2 == 0 => 40_000,
                _ => 1_000_003,
            };
            out.bufs.push(
                (0..len)
                    .map(|j| u8::try_from((i * 31 + j * 7 + j / 251) % 256).unwrap_or(0))
                    .collect(),
            );
        }
        let expected: Vec<u8> = out.bufs.concat();

        out.write_now(&server, &recycle).unwrap();
        assert!(
            !out.is_empty(),
            "the socket took part of the queue (23 MB) and no more without a reader"
        );
        let total = expected.len();
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut got = vec![0u8; total];
            client.read_exact(&mut got).await.map(|_| got)
        });
        out.write_all(&server, &recycle).await.unwrap();
        assert!(out.is_empty() && out.off == 0);
        let got = reader.await.unwrap().unwrap();
        assert!(got == expected, "bytes arrive whole and in order");
        assert!(
            recycle.take(1).capacity() >= 40_000,
            "written buffers are reused"
        );
    }
}
