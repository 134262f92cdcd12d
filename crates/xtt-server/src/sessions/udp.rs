//! Sessions over UDP: one message per datagram (a 0x22 flight is one datagram holding the attest
//! and its record). The server keeps nothing per ClientInit (the cookie carries it), so a client
//! retransmitting ClientInit costs one stateless answer; an identical retransmitted ClientAttest
//! is answered from the finished cache without being processed again. Identity provisioning is
//! TCP only (its DAA flight does not fit the point of a lossy datagram path): its messages get
//! the Error message, unless shorter than it (an unproven source address never gets more bytes
//! back than it sent).
//!
//! A session flight costs the server real work (rebuilding the handshake from its cookie: two
//! X25519 and an ECDSA signature; the AEAD; a registry lookup; an ECDSA verification), and its
//! source address is unproven. So each cookie buys at most one attempt: a flight is processed
//! only if no flight with its cookie was taken before ([`TriedCookies`]); a repeat is either an
//! identical retransmission of a flight that succeeded (answered from the finished cache) or
//! dropped. Flights are also rate-limited per source address, and each attempt is bounded by the
//! handshake timeout.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::OsRng;
use tokio::net::UdpSocket;
use xtt_proto::codec::{MsgType, ERROR_MESSAGE};
use xtt_proto::error::PeerMisbehaved;
use xtt_proto::msgs::SessionClientAttest;

use super::{Outbox, Peer, SessionCore};
use crate::server::{unix_now, Shared};

/// Receives datagrams until the socket fails or `stop` fires.
pub(crate) async fn serve(
    sh: Arc<Shared>,
    core: Arc<SessionCore>,
    sock: Arc<UdpSocket>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; u16::MAX as usize + 1];
    let config = sh.config();
    let mut tried = TriedCookies::new(
        16 * config.limits.max_concurrent_handshakes.max(1),
        Duration::from_secs(config.cookies.lifetime_secs),
    );
    loop {
        let (n, src) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable from an earlier send surfaces here on some systems.
                    tracing::trace!(error = %e, "udp receive error");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(datagram) = buf.get_mut(..n) else {
            continue;
        };
        match datagram.first().copied().map(MsgType) {
            Some(MsgType::RECORD_REGULAR) => {
                core.on_record_in_place(datagram, &Peer::Udp(src));
            }
            Some(MsgType::CLIENT_INIT) => {
                // The answer is six times the datagram and costs a signature: at most a few per
                // second to any one (possibly spoofed) address; the client retransmits.
                if core.udp_client_inits.check(src.ip()).is_ok() {
                    handshake_job(&sh, &sock, src, datagram.to_vec(), None);
                } else {
                    tracing::debug!(%src, "udp ClientInit over the per-address rate: dropped");
                }
            }
            Some(
                MsgType::SESSION_CLIENT_ATTEST_NO_PAYLOAD | MsgType::SESSION_CLIENT_ATTEST_PAYLOAD,
            ) => {
                if let Some(fin) = sh
                    .proto
                    .retransmitted_session_finished(datagram, unix_now())
                {
                    let _ = sock.send_to(&fin, src).await;
                    continue;
                }
                // A malformed flight fails at once in the job, before any expensive step.
                let cookie = SessionClientAttest::decode(
                    datagram
                        .get(..xtt_proto::msgs::SESSION_CLIENT_ATTEST_LEN)
                        .unwrap_or(datagram),
                )
                .ok()
                .map(|a| a.cookie);
                let now = Instant::now();
                if cookie.is_some_and(|c| tried.contains(&c, now)) {
                    // Taken already: in progress (its answer or the finished cache will serve
                    // the client), or done and failed (it was told so). Not worth the work again.
                    tracing::trace!(%src, "udp session flight with a cookie already tried: dropped");
                    continue;
                }
                if core.udp_client_attests.check(src.ip()).is_err() {
                    tracing::debug!(%src, "udp session flight over the per-address rate: dropped");
                    continue;
                }
                if handshake_job(&sh, &sock, src, datagram.to_vec(), Some(core.clone())) {
                    if let Some(c) = cookie {
                        tried.insert(&c, now);
                    }
                }
            }
            Some(MsgType::ERROR) | None => {}
            // The source address is unproven (spoofable): never answer with more bytes than
            // arrived, so the server cannot be used to amplify traffic toward a third party.
            Some(_) if datagram.len() >= ERROR_MESSAGE.len() => {
                let _ = sock.send_to(&ERROR_MESSAGE, src).await;
            }
            Some(_) => {}
        }
    }
}

/// Runs a handshake step on a task of its own under the server's concurrency cap (over the cap
/// the datagram is dropped: the client retransmits); returns whether it was started. The step's
/// crypto runs on that task, not on the CPU pool (see [`super::tcp::accept`]); a task per step
/// lets both reactor threads work on handshakes while this loop goes on receiving. A step runs
/// for at most the handshake timeout (a registry or shared store that does not answer holds no
/// permit longer than a TCP handshake would).
fn handshake_job(
    sh: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    src: SocketAddr,
    msg: Vec<u8>,
    session: Option<Arc<SessionCore>>,
) -> bool {
    let Ok(permit) = sh.permits.clone().try_acquire_owned() else {
        tracing::debug!(%src, "udp handshake dropped: too many in progress");
        return false;
    };
    let sh = sh.clone();
    let sock = sock.clone();
    tokio::spawn(async move {
        let step = match &session {
            None => sh
                .proto
                .handle_client_init(&msg, unix_now(), &mut OsRng)
                .map(|sia| (sia, None)),
            Some(core) => tokio::time::timeout(
                sh.config().handshake_timeout(),
                super::tcp::accept(&sh, core, (&msg, false), |_| (Peer::Udp(src), ())),
            )
            .await
            .unwrap_or_else(|_| Err(xtt_proto::error::Refused::SessionStoreUnavailable.into()))
            .map(|(fin, early, ())| (fin, early)),
        };
        if session.is_some() {
            sh.metrics.record_session("udp", step.is_ok());
        }
        match step {
            Ok((reply, early)) => {
                // Early data reaches the application before the client can send anything else
                // (it needs the finished message first), so records stay in order; a reply the
                // application sends at once may overtake the finished message, and the client
                // keeps such records until its session is established.
                if let (Some(early), Some(core)) = (early, session) {
                    let out = Outbox::new(core.clone());
                    core.to_app(early.lend(), &out);
                }
                let _ = sock.send_to(&reply, src).await;
            }
            Err(e) => {
                tracing::debug!(%src, error = %e, "udp handshake step failed");
                // A flight whose cookie is used is ignored (XTT-SESSION §5): it is usually the
                // client's own retransmission, arriving while its session is being stored; an
                // Error would make the client give up on a session the server keeps. Once the
                // session is stored, the finished cache answers such a retransmission.
                let replayed = matches!(
                    e,
                    xtt_proto::Error::PeerMisbehaved(PeerMisbehaved::ReplayedCookie)
                );
                if let (Some(alert), false) = (e.alert_bytes(), replayed) {
                    let _ = sock.send_to(&alert, src).await;
                }
            }
        }
        drop(permit);
    });
    true
}

/// Cookies of the session flights taken for processing over UDP, each kept for the cookie
/// lifetime (after which the cookie itself is refused), at most `capacity` (the oldest go first:
/// memory stays bounded whatever arrives, and a flood of made-up cookies can at worst let an old
/// cookie be tried once more, still under the per-address rate and the handshake permits).
/// Keys are a keyed 64-bit hash of the cookie: a peer cannot aim collisions at another's flight.
/// Owned by the receive loop: no lock.
#[derive(Debug)]
struct TriedCookies {
    hasher: std::collections::hash_map::RandomState,
    seen: HashMap<u64, Instant>,
    order: VecDeque<(u64, Instant)>,
    capacity: usize,
    lifetime: Duration,
}

impl TriedCookies {
    fn new(capacity: usize, lifetime: Duration) -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            lifetime,
        }
    }

    /// Whether a flight with `cookie` was taken within the lifetime.
    fn contains(&mut self, cookie: &[u8], now: Instant) -> bool {
        self.expire(now);
        self.seen.contains_key(&self.hasher.hash_one(cookie))
    }

    /// Remembers that a flight with `cookie` was taken at `now`.
    fn insert(&mut self, cookie: &[u8], now: Instant) {
        let key = self.hasher.hash_one(cookie);
        while self.order.len() >= self.capacity {
            self.pop_oldest();
        }
        if self.seen.insert(key, now).is_none() {
            self.order.push_back((key, now));
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= self.lifetime)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((key, _)) = self.order.pop_front() {
            self.seen.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tried_cookie_is_remembered_for_its_lifetime_within_the_capacity() {
        let t0 = Instant::now();
        let life = Duration::from_secs(20);
        let mut tried = TriedCookies::new(2, life);
        assert!(!tried.contains(b"a", t0));
        tried.insert(b"a", t0);
        assert!(tried.contains(b"a", t0 + Duration::from_secs(19)));
        assert!(!tried.contains(b"b", t0));
        assert!(!tried.contains(b"a", t0 + life), "gone with the cookie");
        tried.insert(b"a", t0);
        tried.insert(b"b", t0);
        tried.insert(b"c", t0);
        assert!(tried.seen.len() <= 2 && tried.order.len() <= 2);
        assert!(!tried.contains(b"a", t0), "the oldest makes room");
        assert!(tried.contains(b"b", t0) && tried.contains(b"c", t0));
    }
}
