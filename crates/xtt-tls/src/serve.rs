//! Serving an axum [`Router`] with deadlines and connection caps, over TCP or TLS.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read deadline never fires: a client
//! that connects and sends nothing, or half a request line, holds its connection (and a file
//! descriptor, and graceful shutdown) forever. [`serve`] runs hyper's HTTP/1 server itself:
//!
//! * a deadline for each request head ([`ServeLimits::header_read_timeout`]); hyper starts it
//!   whenever the connection waits for a request, so it also closes idle keep-alive connections;
//! * a cap on connections open at once, overall and per client address; a connection beyond
//!   either is closed at once rather than queued;
//! * graceful shutdown: stop accepting, let requests in flight finish, close idle connections,
//!   and after [`ServeLimits::shutdown_grace`] drop whatever is still open.
//!
//! Every request carries `ConnectInfo<SocketAddr>` (the peer address), as with axum's
//! `into_make_service_with_connect_info::<SocketAddr>()`.
//!
//! The request *body* and the handler are not bounded here: routers add a timeout layer for
//! that (a body that never arrives is the handler's wait).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;
use xtt_ratelimit::{ClientSlot, ClientSlots};

/// Connection deadlines and caps for [`serve`].
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// How long a client has to send a complete request head, counted from when the connection
    /// starts waiting for one (so also how long a keep-alive connection may sit idle).
    pub header_read_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Connections open at once from one client (IPv4 address, IPv6 /64).
    pub max_connections_per_ip: usize,
    /// Addresses the per-IP cap does not apply to (reverse proxies carrying many clients).
    pub unlimited_ips: Vec<IpAddr>,
    /// How long shutdown waits for open connections before dropping them.
    pub shutdown_grace: Duration,
}

/// Default [`ServeLimits::header_read_timeout`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ServeLimits::max_connections`].
pub const MAX_CONNECTIONS: usize = 1024;
/// Default [`ServeLimits::max_connections_per_ip`].
pub const MAX_CONNECTIONS_PER_IP: usize = 64;
/// Default [`ServeLimits::shutdown_grace`].
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            unlimited_ips: Vec::new(),
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// A place for a connection from `ip` within `caps`: counted per client (IPv4 address, IPv6
/// /64) unless `ip` is one of `unlimited`, and always toward the total.
pub(crate) fn admit(
    caps: &Arc<ClientSlots>,
    ip: IpAddr,
    unlimited: &[IpAddr],
) -> Option<ClientSlot> {
    // A dual-stack listener sees an IPv4 proxy as ::ffff:a.b.c.d.
    let ip = ip.to_canonical();
    if unlimited.iter().any(|u| u.to_canonical() == ip) {
        caps.try_acquire_exempt()
    } else {
        caps.try_acquire(ip)
    }
}

/// Serves `app` on `listener` (a `tokio::net::TcpListener`, a [`crate::server::TlsListener`],
/// any axum listener with socket addresses) within `limits`, until `shutdown` completes; then
/// shuts down gracefully, waiting at most [`ServeLimits::shutdown_grace`].
///
/// Returns `Ok` once shut down (the `io::Result` is that of `axum::serve`, which this replaces;
/// accept errors are retried by the listener).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let caps = ClientSlots::with_total(
        u32::try_from(limits.max_connections_per_ip).unwrap_or(u32::MAX),
        limits.max_connections,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // Reap finished connections as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            (io, peer) = listener.accept() => {
                let slot = admit(&caps, peer.ip(), &limits.unlimited_ips);
                let Some(slot) = slot else {
                    tracing::debug!(%peer, "connection refused: too many open connections");
                    drop(io);
                    continue;
                };
                connections.spawn(connection(
                    io,
                    peer,
                    app.clone(),
                    limits.header_read_timeout,
                    stop_rx.clone(),
                    slot,
                ));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing connections still open after the shutdown grace period"
        );
        connections.shutdown().await;
    }
    Ok(())
}

async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    _slot: ClientSlot,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: axum::extract::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        tower::ServiceExt::oneshot(app.clone(), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {
            // Finish the request in flight (if any), then close; an idle connection closes now.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_proxy_seen_through_a_dual_stack_listener_is_still_exempt() {
        let caps = ClientSlots::with_total(1, 10);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| admit(&caps, mapped, &[proxy]).expect("exempt from the per-client cap"))
            .collect();
        assert_eq!(held.len(), 3);
        // Anyone else is still held to one.
        let other: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let _one = admit(&caps, other, &[proxy]).unwrap();
        assert!(admit(&caps, "10.0.0.2".parse().unwrap(), &[proxy]).is_none());
    }
}
