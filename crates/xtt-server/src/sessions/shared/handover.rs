//! The node-to-node hand-over request: "release session S". A small TCP listener per node,
//! whose address each node writes into the store with its lease.
//!
//! ```text
//! request (65 bytes)  version(1) ‖ session id(16) ‖ requester node(8) ‖ unix ms(8) ‖ HMAC(32)
//! answer  (1 byte)    0 released (exact state is in the store) | 1 not held here
//!                     | 2 busy (try again) | 3 failed
//! ```
//!
//! No secret crosses this link: the owner writes the exact state into the store itself and
//! only says "done". The HMAC (key derived from the deployment's storage key) keeps anyone
//! else from making nodes drop sessions; a request is honoured within [`MAX_SKEW_MS`] of its
//! timestamp (a replay inside that window only repeats a release, which costs a hand-over).

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

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 8 + 8;
const REQUEST_LEN: usize = BODY_LEN + 32;
/// How far a request's timestamp may be from the receiver's clock.
pub(crate) const MAX_SKEW_MS: i64 = 30_000;

/// The owner's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Released,
    NotHeld,
    Busy,
    Failed,
}

impl Answer {
    fn to_u8(self) -> u8 {
        match self {
            Answer::Released => 0,
            Answer::NotHeld => 1,
            Answer::Busy => 2,
            Answer::Failed => 3,
        }
    }
    fn from_u8(b: u8) -> Self {
        match b {
            0 => Answer::Released,
            1 => Answer::NotHeld,
            2 => Answer::Busy,
            _ => Answer::Failed,
        }
    }
}

fn body(id: &SessionId, from: NodeId, at: UnixMillis) -> [u8; BODY_LEN] {
    let mut b = [0u8; BODY_LEN];
    let parts: [&[u8]; 4] = [
        &[VERSION],
        &id.0,
        &from.0.to_be_bytes(),
        &at.0.to_be_bytes(),
    ];
    for (d, s) in b.iter_mut().zip(parts.iter().flat_map(|p| p.iter())) {
        *d = *s;
    }
    b
}

/// Asks the node at `addr` to release `id`. `None`: unreachable or no answer within `timeout`.
pub(crate) async fn ask(
    addr: &str,
    id: &SessionId,
    me: NodeId,
    key: &StorageKey,
    timeout: Duration,
) -> Option<Answer> {
    let b = body(id, me, UnixMillis::now());
    let mac = key.handover_mac(&b)?;
    let mut req = Vec::with_capacity(REQUEST_LEN);
    req.extend_from_slice(&b);
    req.extend_from_slice(&mac);
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
/// How long a request (65 bytes, written by the asking node right after it connects) may take
/// to arrive.
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
                Some(id) => shared.release_local(&core, id).await,
                None => return,
            };
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.write_all(&[answer.to_u8()]))
                    .await;
        });
    }
}

async fn read_request(
    stream: &mut TcpStream,
    key: &StorageKey,
    peer: SocketAddr,
) -> Option<SessionId> {
    let mut req = [0u8; REQUEST_LEN];
    tokio::time::timeout(REQUEST_DEADLINE, stream.read_exact(&mut req))
        .await
        .ok()?
        .ok()?;
    let (b, mac) = req.split_at(BODY_LEN);
    if !key.handover_mac_ok(b, mac) || b.first() != Some(&VERSION) {
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
    Some(id)
}
