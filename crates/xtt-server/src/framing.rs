//! XTT messages on a byte stream: each message is delimited by its own 4-byte header, so the
//! driver reads the header, checks the length against a limit, then reads exactly the rest.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use xtt_proto::codec::{decode_header, MsgType, HEADER_LEN};

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The peer closed the connection before a whole message arrived.
    #[error("connection closed")]
    Closed,
    /// Another socket error.
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    /// The header is invalid (unknown type, length out of range) or announces an Error message.
    #[error("{0}")]
    Protocol(#[from] xtt_proto::Error),
}

fn io(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Closed
    } else {
        FrameError::Io(e)
    }
}

/// Reads one whole message (header included) of at most `max_len` bytes. `timeout` bounds the
/// whole message, so a peer that stops mid-message is dropped.
pub async fn read_message<R: AsyncRead + Unpin>(
    stream: &mut R,
    max_len: usize,
    timeout: Duration,
) -> Result<Vec<u8>, FrameError> {
    read_message_limited_by_type(stream, |_| max_len, timeout).await
}

/// As [`read_message`], with the size limit chosen by the message type (a session connection
/// accepts large records but only handshake-sized handshake messages).
pub async fn read_message_limited_by_type<R: AsyncRead + Unpin>(
    stream: &mut R,
    max_len: impl Fn(MsgType) -> usize,
    timeout: Duration,
) -> Result<Vec<u8>, FrameError> {
    tokio::time::timeout(timeout, async {
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header).await.map_err(io)?;
        let h = decode_header(&header, max_len(MsgType(header[0])))?;
        let mut msg = vec![0u8; usize::from(h.length)];
        msg[..HEADER_LEN].copy_from_slice(&header);
        stream
            .read_exact(&mut msg[HEADER_LEN..])
            .await
            .map_err(io)?;
        Ok(msg)
    })
    .await
    .map_err(|_| FrameError::Timeout)?
}

/// Writes `bytes` within `timeout`.
pub async fn write_message<W: AsyncWrite + Unpin>(
    stream: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), FrameError> {
    tokio::time::timeout(timeout, stream.write_all(bytes))
        .await
        .map_err(|_| FrameError::Timeout)?
        .map_err(io)
}
