//! Sessions over UDP: one message per datagram (a 0x22 flight is one datagram holding the attest
//! and its record). The server keeps nothing per ClientInit (the cookie carries it), so a client
//! retransmitting ClientInit costs one stateless answer; an identical retransmitted ClientAttest
//! is answered from the finished cache without being processed again. Identity provisioning is
//! TCP only (its DAA flight does not fit the point of a lossy datagram path): its messages get
//! the Error message, unless shorter than it (an unproven source address never gets more bytes
//! back than it sent).

use std::net::SocketAddr;
use std::sync::Arc;

use rand_core::OsRng;
use tokio::net::UdpSocket;
use xtt_proto::codec::{MsgType, ERROR_MESSAGE};
use xtt_proto::error::PeerMisbehaved;

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
                } else {
                    handshake_job(&sh, &sock, src, datagram.to_vec(), Some(core.clone()));
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
/// the datagram is dropped: the client retransmits). The step's crypto runs on that task, not
/// on the CPU pool (see [`super::tcp::accept`]); a task per step lets both reactor threads work
/// on handshakes while this loop goes on receiving.
fn handshake_job(
    sh: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    src: SocketAddr,
    msg: Vec<u8>,
    session: Option<Arc<SessionCore>>,
) {
    let Ok(permit) = sh.permits.clone().try_acquire_owned() else {
        tracing::debug!(%src, "udp handshake dropped: too many in progress");
        return;
    };
    let sh = sh.clone();
    let sock = sock.clone();
    tokio::spawn(async move {
        let step = match &session {
            None => sh
                .proto
                .handle_client_init(&msg, unix_now(), &mut OsRng)
                .map(|sia| (sia, None)),
            Some(core) => super::tcp::accept(&sh, core, (&msg, false), || (Peer::Udp(src), ()))
                .await
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
                    core.app.on_record(early.lend(), &out);
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
}
