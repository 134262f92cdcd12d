//! The device's session client against an attacker on the path, over real sockets on
//! 127.0.0.1: a TCP proxy that cuts a record out of the stream (XTT-SESSION §3: over TCP the
//! next record must carry exactly the next number), and a UDP proxy that injects datagrams from
//! the server's address (a forged ServerInitAndAttest / ServerFinished before the real one,
//! §5; a stray 0x41 byte or an unauthenticated Error during a working session, §6).

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait_until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use xtt_proto::codec::{MsgType, ERROR_MESSAGE};
use xtt_proto::record::PayloadType;
use xtt_server::{Echo, SessionClient, SessionClientError, SessionClientOptions};

const Q: PayloadType = PayloadType::QueueProtocol;

async fn env() -> common::SessionEnv {
    common::session_env(Arc::new(Echo), 1_000_000).await
}

async fn echo(c: &mut SessionClient, payload: &[u8]) {
    c.send(Q, payload).await.unwrap();
    let r = c.recv().await.unwrap();
    assert_eq!(&r.payload[..], payload);
}

/// What the TCP proxy saw and does.
#[derive(Default)]
struct TcpProxyState {
    /// Server records with these numbers are not passed on to the device.
    cut: Mutex<HashSet<u32>>,
    /// Server records cut so far.
    cut_count: AtomicU64,
    /// Connections whose device side ended (EOF or reset) so far.
    device_closed: AtomicU64,
}

/// One whole message (header `type u8, length u16` counts itself) from `r`, or None at the end.
async fn read_msg(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut msg = vec![0u8; 3];
    r.read_exact(&mut msg).await.ok()?;
    let len = usize::from(u16::from_be_bytes([msg[1], msg[2]]));
    if len < 3 {
        return None;
    }
    msg.resize(len, 0);
    r.read_exact(&mut msg[3..]).await.ok()?;
    Some(msg)
}

/// A TCP proxy in front of `upstream`: device bytes go through unchanged; the server's
/// messages are passed on one by one, except records whose number is in `state.cut`.
async fn tcp_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<TcpProxyState>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(TcpProxyState::default());
    let st = state.clone();
    tokio::spawn(async move {
        while let Ok((device, _)) = listener.accept().await {
            let server = TcpStream::connect(upstream).await.unwrap();
            let (mut device_rx, mut device_tx) = device.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            let st_up = st.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match device_rx.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if server_tx.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                st_up.device_closed.fetch_add(1, Ordering::SeqCst);
            });
            let st_down = st.clone();
            tokio::spawn(async move {
                while let Some(msg) = read_msg(&mut server_rx).await {
                    if msg[0] == MsgType::RECORD_REGULAR.0 && msg.len() >= 24 {
                        let seq = u32::from_be_bytes(msg[20..24].try_into().unwrap());
                        if st_down.cut.lock().unwrap().contains(&seq) {
                            st_down.cut_count.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                    }
                    if device_tx.write_all(&msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, state)
}

/// XTT-SESSION §3: once a TCP connection has carried an authentic record, the next one must be
/// numbered exactly one more. An attacker on the path cuts the server's record 2 out of the
/// stream: record 3 must not be delivered, and the client must close that connection (the
/// proxy sees its device side end). After a reconnect (the count starts again on the new
/// connection) in-order records are delivered again, in the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_cut_out_of_the_tcp_stream_breaks_the_connection_and_is_not_skipped() {
    let e = env().await;
    let (proxy, state) = tcp_proxy(e.server.addr).await;
    let options = SessionClientOptions {
        timeout: Duration::from_secs(10),
        ..SessionClientOptions::tcp()
    };
    let mut c = SessionClient::connect(proxy, e.register(), options, None)
        .await
        .unwrap();
    let id = c.session().session_id();
    // Server records 0 and 1: in order, delivered.
    echo(&mut c, b"r0").await;
    echo(&mut c, b"r1").await;
    state.cut.lock().unwrap().insert(2);
    for p in [&b"r2"[..], b"r3"] {
        c.send(Q, p).await.unwrap();
    }
    let got = c.recv().await;
    assert!(
        matches!(got, Err(SessionClientError::Closed)),
        "record 3 after record 1 on one TCP connection must not be delivered: {:?}",
        got.map(|r| (r.seq, r.payload.to_vec()))
    );
    assert_eq!(state.cut_count.load(Ordering::SeqCst), 1);
    wait_until(
        "the client closes the connection that lost a record",
        || state.device_closed.load(Ordering::SeqCst) >= 1,
    )
    .await;
    // The broken connection stays broken until a reconnect.
    assert!(matches!(
        c.send(Q, b"x").await,
        Err(SessionClientError::Closed)
    ));
    c.reconnect().await.unwrap();
    // The server's next records (numbers 4.. on the new connection) are delivered, in order.
    for i in 0..5u8 {
        c.send(Q, &[i; 10]).await.unwrap();
        let r = c.recv().await.unwrap();
        assert_eq!(&r.payload[..], &[i; 10]);
        assert_eq!(r.seq, 4 + u32::from(i));
    }
    assert_eq!(c.session().session_id(), id, "same session");
    e.server.stop().await;
}

/// A UDP proxy in front of `upstream` for one device, which can also send datagrams of its
/// own to the device from the server's address (what an attacker on the path, or one spoofing
/// the server's address, can do).
struct UdpProxy {
    addr: SocketAddr,
    front: Arc<UdpSocket>,
    device: Arc<Mutex<Option<SocketAddr>>>,
    /// Before passing on a server datagram of type ServerInitAndAttest or
    /// Session_ServerFinished, send forged ones of that type first.
    forge_handshake: Arc<AtomicBool>,
    forged: Arc<AtomicU64>,
}

impl UdpProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(upstream).await.unwrap();
        let device = Arc::new(Mutex::new(None));
        let forge_handshake = Arc::new(AtomicBool::new(false));
        let forged = Arc::new(AtomicU64::new(0));
        let (f, b, d) = (front.clone(), back.clone(), device.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, src)) = f.recv_from(&mut buf).await {
                *d.lock().unwrap() = Some(src);
                let _ = b.send(&buf[..n]).await;
            }
        });
        let (f, d, forge, count) = (
            front.clone(),
            device.clone(),
            forge_handshake.clone(),
            forged.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                let Some(to) = *d.lock().unwrap() else {
                    continue;
                };
                let msg = &buf[..n];
                let handshake = [
                    MsgType::SERVER_INIT_AND_ATTEST.0,
                    MsgType::SESSION_SERVER_FINISHED.0,
                ];
                if forge.load(Ordering::SeqCst) && handshake.contains(&msg[0]) {
                    // The right type byte, the rest wrong: one copy with a flipped bit near
                    // the end (the signature / tag), one the type byte and garbage.
                    let mut flipped = msg.to_vec();
                    flipped[n - 5] ^= 0x10;
                    let mut garbage = vec![0x5a; n];
                    garbage[0] = msg[0];
                    for forgery in [flipped, garbage] {
                        f.send_to(&forgery, to).await.unwrap();
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let _ = f.send_to(msg, to).await;
            }
        });
        Self {
            addr: front.local_addr().unwrap(),
            front,
            device,
            forge_handshake,
            forged,
        }
    }

    /// Sends `bytes` to the device from the server's address (as the device sees it).
    async fn inject(&self, bytes: &[u8]) {
        let to = self.device.lock().unwrap().expect("the device has sent");
        self.front.send_to(bytes, to).await.unwrap();
    }
}

fn udp_options() -> SessionClientOptions {
    SessionClientOptions {
        // Generous: nothing is lost on this path, and a retransmission is not what is tested.
        retransmit_after: Duration::from_secs(2),
        max_sends: 4,
        timeout: Duration::from_secs(10),
        ..SessionClientOptions::udp()
    }
}

/// XTT-SESSION §5: the client answers only the first ServerInitAndAttest it *accepts*. Forged
/// datagrams of the right type arriving first (from the server's address) are ignored, and so
/// are forged Session_ServerFinished ones: the handshake completes with the real answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_handshake_answers_over_udp_are_ignored_and_the_handshake_completes() {
    let e = env().await;
    let proxy = UdpProxy::start(e.server.addr).await;
    proxy.forge_handshake.store(true, Ordering::SeqCst);
    let mut c = SessionClient::connect(proxy.addr, e.register(), udp_options(), None)
        .await
        .expect("forged handshake answers must not end the handshake");
    assert!(
        proxy.forged.load(Ordering::SeqCst) >= 4,
        "forgeries of both answers were sent first"
    );
    proxy.forge_handshake.store(false, Ordering::SeqCst);
    echo(&mut c, b"works").await;
    e.server.stop().await;
}

/// A datagram that merely starts with 0x41 is not an Error message and must not end a working
/// UDP session; even a well-formed Error (unauthenticated, XTT-SESSION §6) is only a hint that
/// the records which keep arriving from the server overrule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_error_byte_or_an_unauthenticated_error_does_not_end_a_working_udp_session() {
    let e = env().await;
    let proxy = UdpProxy::start(e.server.addr).await;
    let mut c = SessionClient::connect(proxy.addr, e.register(), udp_options(), None)
        .await
        .unwrap();
    echo(&mut c, b"before").await;
    let id = c.session().session_id();
    for injected in [
        &[MsgType::ERROR.0][..],
        &[MsgType::ERROR.0, 0, 7, 1, 9, 9, 9],
        &ERROR_MESSAGE,
    ] {
        // Sent before the device's next record, so it reaches the device before the echo.
        proxy.inject(injected).await;
        for i in 0..3u8 {
            c.send(Q, &[i; 20]).await.unwrap();
            let r = c
                .recv()
                .await
                .unwrap_or_else(|err| panic!("after {injected:02x?}: {err}"));
            assert_eq!(&r.payload[..], &[i; 20]);
        }
    }
    assert_eq!(
        c.session().session_id(),
        id,
        "same session, no re-handshake"
    );
    e.server.stop().await;
}
