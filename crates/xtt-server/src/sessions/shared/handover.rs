//! The node-to-node hand-over request: "release session S, here is the device's record". A
//! small TCP listener per node, whose address each node writes into the store with its lease.
//!
//! ```text
//! request v2          2 ‖ session id(16) ‖ requester node(8) ‖ unix ms(8) ‖ record length(2)
//!                     ‖ record ‖ HMAC(32) of everything before it
//! request v1 (65 B)   1 ‖ session id(16) ‖ requester node(8) ‖ unix ms(8) ‖ HMAC(32)
//! answer  (1 byte)    0 released (exact state is in the store) | 1 not held here
//!                     | 2 busy (try again) | 3 failed | 4 refused: the record is not an
//!                       authentic, fresh record of the session held here numbered above
//!                       every record accepted
//! ```
//!
//! **The record is the reason.** A node asks for a session because a record naming it arrived,
//! and a record's session id is in clear: anyone can send one. The owner releases only if the
//! record carried by the request authenticates under the session's keys, is fresh for its
//! receive window and is numbered above every record it accepted (checked without accepting
//! it): the record that would move the session's path on the owner itself. So a forged or
//! replayed record, or an older one an attacker kept from the owner, takes no session from its
//! owner (answer 4). A v1 request (a node of the previous version, during a
//! rolling upgrade) carries no record and is honoured as before.
//!
//! No secret crosses this link: the owner writes the exact state into the store itself and
//! only says "done" (the record is ciphertext the device sent in the open). The HMAC (key derived
//! from the deployment's storage key) keeps anyone else from making nodes drop sessions; a
//! request is honoured within [`MAX_SKEW_MS`] of its timestamp (a replay inside that window only
//! repeats a release, which costs a hand-over).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xtt_proto::record::SessionId;
use xtt_registry::sessions::{NodeId, UnixMillis};

use super::seal::StorageKey;
use super::SharedSessions;
use crate::sessions::SessionCore;

/// Requests without a record (read, never sent).
const VERSION_1: u8 = 1;
/// Requests carrying the record that made the asker ask.
const VERSION: u8 = 2;
/// Version, session id, requester, time.
const BODY_LEN: usize = 1 + 16 + 8 + 8;
const MAC_LEN: usize = 32;

/// How far a request's timestamp may be from the receiver's clock.
pub(crate) const MAX_SKEW_MS: i64 = 30_000;

/// The owner's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Released,
    NotHeld,
    Busy,
    Failed,
    /// The record is not an authentic, fresh record of the session held here, numbered above
    /// every record accepted.
    Refused,
}

impl Answer {
    fn to_u8(self) -> u8 {
        match self {
            Answer::Released => 0,
            Answer::NotHeld => 1,
            Answer::Busy => 2,
            Answer::Failed => 3,
            Answer::Refused => 4,
        }
    }
    fn from_u8(b: u8) -> Self {
        match b {
            0 => Answer::Released,
            1 => Answer::NotHeld,
            2 => Answer::Busy,
            4 => Answer::Refused,
            _ => Answer::Failed,
        }
    }
}

/// A v2 request: `id` wanted by `from` at `at` because of `record`. `None` if the record is
/// longer than a record can be.
fn request(
    id: &SessionId,
    from: NodeId,
    at: UnixMillis,
    record: &[u8],
    key: &StorageKey,
) -> Option<Vec<u8>> {
    let len = u16::try_from(record.len()).ok()?;
    let mut req = Vec::with_capacity(BODY_LEN + 2 + record.len() + MAC_LEN);
    req.push(VERSION);
    req.extend_from_slice(&id.0);
    req.extend_from_slice(&from.0.to_be_bytes());
    req.extend_from_slice(&at.0.to_be_bytes());
    req.extend_from_slice(&len.to_be_bytes());
    req.extend_from_slice(record);
    let mac = key.handover_mac(&req)?;
    req.extend_from_slice(&mac);
    Some(req)
}

/// Asks the node at `addr` to release `id`, showing it `record`, the device's record that named
/// the session here. `None`: unreachable or no answer within `timeout`.
pub(crate) async fn ask(
    addr: &str,
    id: &SessionId,
    record: &[u8],
    me: NodeId,
    key: &StorageKey,
    timeout: Duration,
) -> Option<Answer> {
    let req = request(id, me, UnixMillis::now(), record, key)?;
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let _ = s.set_nodelay(true);
        s.write_all(&req).await.ok()?;
        let mut a = [0u8; 1];
        s.read_exact(&mut a).await.ok()?;
        Some(Answer::from_u8(a[0]))
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

/// Of the requests served at once, the most from one source address: as many as one node may
/// have in flight ([`super::MAX_TAKE_OVERS`]), so a peer is never refused for its own load;
/// silent connections from one host cannot take every slot (and so force every take-over into
/// the crash path).
const MAX_REQUESTS_PER_SOURCE: usize = super::MAX_TAKE_OVERS;
/// Hand-over requests served at once: room for four busy peers.
const MAX_CONCURRENT_REQUESTS: usize = 4 * MAX_REQUESTS_PER_SOURCE;
/// How long a request (up to 64 KiB, written by the asking node right after it connects) may
/// take to arrive.
const REQUEST_DEADLINE: Duration = Duration::from_millis(500);

/// Serves hand-over requests until the core is gone.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: std::sync::Weak<SharedSessions>,
    core: std::sync::Weak<SessionCore>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    // Other nodes must reach this port, so anyone who can reach it may connect: each connection
    // holds a task and a descriptor for up to its timeouts, and without a cap a connection
    // flood would exhaust the descriptors the XTT listener needs. Over the cap a connection is
    // closed at once (the asking node then falls back as for a crashed owner).
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS));
    let per_source =
        xtt_ratelimit::ClientSlots::new(u32::try_from(MAX_REQUESTS_PER_SOURCE).unwrap_or(u32::MAX));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = closing.wait_for(|c| *c) => break,
        };
        let Ok((mut stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (Some(core), Some(shared)) = (core.upgrade(), shared.upgrade()) else {
            break;
        };
        let Some(slot) = per_source.try_acquire(peer.ip()) else {
            tracing::debug!(%peer, "hand-over request refused: too many from this source");
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "hand-over request refused: too many in progress");
            continue;
        };
        tokio::spawn(async move {
            let _held = (permit, slot);
            let answer = match read_request(&mut stream, &shared.key, peer).await {
                Some((id, record)) => shared.release_local(&core, id, record).await,
                None => return,
            };
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.write_all(&[answer.to_u8()]))
                    .await;
        });
    }
}

/// Reads one request: the session asked for, and the record shown (`None` from a v1 asker).
async fn read_request(
    stream: &mut TcpStream,
    key: &StorageKey,
    peer: SocketAddr,
) -> Option<(SessionId, Option<Vec<u8>>)> {
    let read = async {
        let mut req = vec![0u8; BODY_LEN];
        stream.read_exact(&mut req).await.ok()?;
        let record_len = match req.first() {
            Some(&VERSION_1) => None,
            Some(&VERSION) => {
                let mut len = [0u8; 2];
                stream.read_exact(&mut len).await.ok()?;
                req.extend_from_slice(&len);
                Some(usize::from(u16::from_be_bytes(len)))
            }
            _ => return None,
        };
        let have = req.len();
        let signed = have + record_len.unwrap_or(0);
        req.resize(signed + MAC_LEN, 0);
        stream.read_exact(req.get_mut(have..)?).await.ok()?;
        Some((req, signed, record_len.is_some()))
    };
    let (req, signed, v2) = tokio::time::timeout(REQUEST_DEADLINE, read).await.ok()??;
    let (b, mac) = req.split_at(signed);
    if !key.handover_mac_ok(b, mac) {
        tracing::warn!(%peer, "hand-over request with a bad MAC refused");
        return None;
    }
    let mut id = SessionId::NULL;
    id.0.copy_from_slice(b.get(1..17)?);
    let mut at = [0u8; 8];
    at.copy_from_slice(b.get(25..33)?);
    let at = i64::from_be_bytes(at);
    if (UnixMillis::now().0 - at).abs() > MAX_SKEW_MS {
        tracing::warn!(%peer, "stale hand-over request refused");
        return None;
    }
    let record = v2.then(|| b.get(BODY_LEN + 2..).unwrap_or_default().to_vec());
    Some((id, record))
}
