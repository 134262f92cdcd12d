//! Sessions on a TCP connection: the session branch of the handshake and the record loop.
//!
//! A connection carries records of any session (usually one); the session's records go back on
//! the connection that last delivered one. The writer is a task draining a bounded queue, so the
//! application never waits on a slow socket (a full queue drops records, as UDP would).

use std::sync::Arc;
use std::time::Duration;

use std::io::IoSlice;

use rand_core::OsRng;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use xtt_proto::codec::{decode_header, MsgType, HEADER_LEN};
use xtt_proto::server::Server as ProtoServer;

use super::{IncomingRecord, Peer, SessionCore};
use crate::framing::FrameError;
use crate::server::unix_now;

/// Largest message on a session connection (a record with a full payload).
pub(crate) const MAX_RECORD_MESSAGE: usize = u16::MAX as usize;

/// A connection that finished its session handshake (or started with a record) and now carries
/// records.
pub(crate) struct RecordStream {
    pub(crate) conn: u64,
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
    pub(crate) rx: mpsc::Receiver<Vec<u8>>,
    /// A record read before the loop started (a connection that opens with a record).
    pub(crate) first: Option<Vec<u8>>,
    /// Early data of a 0x22 flight, for the application.
    pub(crate) early: Option<IncomingRecord>,
}

impl RecordStream {
    pub(crate) fn new(core: &SessionCore) -> Self {
        let (tx, rx) = mpsc::channel(core.tcp_queue);
        Self {
            conn: core.conn_id(),
            tx,
            rx,
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

/// Runs the session handshake's third flight (CPU work: call on the pool), stores the session
/// with `peer`, and returns Session_ServerFinished and the early data.
pub(crate) fn accept(
    proto: &ProtoServer,
    core: &SessionCore,
    flight: &[u8],
    peer: Peer,
) -> Result<(Vec<u8>, Option<IncomingRecord>), xtt_proto::Error> {
    let now = unix_now();
    let accepted = proto.handle_session_client_attest(flight, now, &core.keys, &mut OsRng)?;
    let client_id = accepted.session.client_id();
    core.table.insert(accepted.session, peer, now)?;
    let early = accepted.early_data.map(|r| IncomingRecord {
        client_id,
        payload_type: r.payload_type,
        payload: r.payload,
    });
    Ok((accepted.finished, early))
}

/// Runs the third flight on the CPU pool and stores the session. With shared sessions the
/// session is first written to the shared store, on a blocking thread (the CPU pool never waits
/// on the database), and goes into the table only once that write is durable.
pub(crate) async fn accept_async(
    sh: &Arc<crate::server::Shared>,
    core: &Arc<SessionCore>,
    flight: Vec<u8>,
    peer: Peer,
) -> Result<Result<(Vec<u8>, Option<IncomingRecord>), xtt_proto::Error>, crate::cpu::Overloaded> {
    let (s, c) = (sh.clone(), core.clone());
    let Some(shared) = core.shared.get().cloned() else {
        return sh
            .cpu
            .run(move || accept(&s.proto, &c, &flight, peer))
            .await;
    };
    let handshake = sh
        .cpu
        .run(move || {
            s.proto
                .handle_session_client_attest(&flight, unix_now(), &c.keys, &mut OsRng)
        })
        .await?;
    let accepted = match handshake {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    let finished = accepted.finished;
    let session = accepted.session;
    let client_id = session.client_id();
    let early = accepted.early_data.map(|r| IncomingRecord {
        client_id,
        payload_type: r.payload_type,
        payload: r.payload,
    });
    let now = unix_now();
    let lifetime = core.max_lifetime_secs;
    let stored =
        tokio::task::spawn_blocking(move || shared.persist_new(session, now, lifetime)).await;
    let session = match stored {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return Ok(Err(xtt_proto::error::Refused::SessionIdInUse.into())),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "storing a session failed");
            return Ok(Err(
                xtt_proto::error::Refused::SessionStoreUnavailable.into()
            ));
        }
        Err(_) => {
            return Ok(Err(
                xtt_proto::error::Refused::SessionStoreUnavailable.into()
            ))
        }
    };
    Ok(core
        .table
        .insert(session, peer, now)
        .map(|()| (finished, early))
        .map_err(Into::into))
}

/// Whole messages from a byte stream through one reusable buffer: a read takes whatever has
/// arrived (often several records), and each message is handed out as a slice of the buffer,
/// so the record loop makes no allocation and, under load, far fewer than two reads per record.
#[derive(Debug, Default)]
pub(crate) struct MessageReader {
    /// Received bytes; `buf[start..]` is not consumed yet.
    buf: Vec<u8>,
    start: usize,
}

/// Queued records written with one vectored write at most.
const WRITE_BATCH: usize = 64;

/// What one read asks room for: a whole record of the largest size fits.
const READ_CHUNK: usize = MAX_RECORD_MESSAGE + 1;

impl MessageReader {
    /// The next whole message (at most `max_len` bytes), reading as needed; `timeout` bounds
    /// the wait for the whole message. Cancel-safe: bytes read stay in the buffer.
    pub(crate) async fn next(
        &mut self,
        stream: &mut OwnedReadHalf,
        max_len: usize,
        timeout: Duration,
    ) -> Result<&[u8], FrameError> {
        let len = tokio::time::timeout(timeout, async {
            loop {
                if let Some(len) = self.whole_message(max_len)? {
                    return Ok(len);
                }
                if self.start == self.buf.len() {
                    // Everything consumed: give the buffer back, so an idle connection (there may
                    // be thousands) holds no 64 KiB while it waits; it is taken again once bytes
                    // are there to read.
                    self.buf = Vec::new();
                    self.start = 0;
                } else if self.start > 0 && self.buf.capacity() - self.buf.len() < READ_CHUNK {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                stream.readable().await.map_err(FrameError::Io)?;
                self.buf.reserve(READ_CHUNK);
                match stream.try_read_buf(&mut self.buf) {
                    Ok(0) => return Err(FrameError::Closed),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(FrameError::Io(e)),
                }
            }
        })
        .await
        .map_err(|_| FrameError::Timeout)??;
        let at = self.start;
        self.start = (at + len).min(self.buf.len());
        Ok(self.buf.get(at..self.start).unwrap_or_default())
    }

    fn whole_message(&self, max_len: usize) -> Result<Option<usize>, FrameError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some(header) = pending.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let h = decode_header(header, max_len)?;
        let len = usize::from(h.length);
        Ok((pending.len() >= len).then_some(len))
    }
}

/// Writes every buffer in `queue` (in order) with as few system calls as the socket allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queue: &[Vec<u8>],
) -> std::io::Result<()> {
    let (mut i, mut off) = (0usize, 0usize);
    while i < queue.len() {
        let slices: Vec<IoSlice<'_>> = queue
            .iter()
            .skip(i)
            .enumerate()
            .map(|(k, b)| {
                IoSlice::new(if k == 0 {
                    b.get(off..).unwrap_or_default()
                } else {
                    b
                })
            })
            .take(64)
            .collect();
        let mut n = writer.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && i < queue.len() {
            let left = queue.get(i).map_or(0, |b| b.len() - off);
            if n >= left {
                n -= left;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Serves records on `stream` until the peer closes it, it breaks, it stays silent for `idle`,
/// or the server stops.
pub(crate) async fn serve_records(
    core: Arc<SessionCore>,
    stream: TcpStream,
    mut rs: RecordStream,
    idle: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(_slot) = core.tcp_connections.clone().try_acquire_owned() else {
        tracing::debug!(conn = rs.conn, "too many session connections: closed");
        return;
    };
    let (mut reader, mut writer) = stream.into_split();
    let mut rx = std::mem::replace(&mut rs.rx, mpsc::channel(1).1);
    let write_task = tokio::spawn(async move {
        // Whatever is queued goes out in one vectored write (fewer system calls under load).
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            if write_all_vectored(&mut writer, &batch).await.is_err() {
                break;
            }
            batch.clear();
        }
    });
    let peer = rs.peer();
    let outbox = super::Outbox::new(core.clone());
    if let Some(early) = rs.early.take() {
        core.app.on_record(early, &outbox);
    }
    // A connection that opens with a record must prove itself with it: otherwise anyone could
    // park idle connections here without a session.
    if let Some(first) = rs.first.take() {
        // With shared sessions the record may wait for a hand-over: wait for its verdict.
        let (done, verdict) = tokio::sync::oneshot::channel();
        let accepted =
            core.on_record_then(&first, peer.clone(), Some(done)) && verdict.await == Ok(true);
        if !accepted {
            // No session holds this connection's sender (the record did not move one): once
            // ours are dropped the writer flushes what is queued (an Error) and ends.
            drop(peer);
            drop(rs);
            // (A shared session taken over for this record holds the sender: stop the writer.)
            let mut write_task = write_task;
            if tokio::time::timeout(Duration::from_secs(1), &mut write_task)
                .await
                .is_err()
            {
                write_task.abort();
            }
            return;
        }
    }
    let mut messages = MessageReader::default();
    loop {
        let msg = tokio::select! {
            m = messages.next(&mut reader, MAX_RECORD_MESSAGE, idle) => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        match msg {
            Ok(msg) if is_record(msg) => {
                core.on_record(msg, peer.clone());
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
    // The table may still hold this connection's sender; stopping the writer makes later sends
    // to it fail fast (NoPath) until the client's next record moves the session.
    write_task.abort();
}
