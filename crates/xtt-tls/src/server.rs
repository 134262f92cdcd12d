//! Serving axum over TLS: [`TlsListener`] implements `axum::serve::Listener`, so a router is
//! served exactly as over TCP (`crate::serve::serve(TlsListener::new(tcp, config), app, ..)`).
//!
//! A background task accepts TCP connections and runs each TLS handshake in its own task with a
//! deadline ([`HANDSHAKE_TIMEOUT`]), so one slow or silent client cannot hold up the others. At
//! most [`MAX_PENDING_HANDSHAKES`] handshakes run at once, and at most
//! [`MAX_PENDING_HANDSHAKES_PER_IP`] from one address, so that one source cannot take every
//! place; a connection beyond either cap is closed at once (accepting never waits for a place).
//! Failed handshakes are logged at debug level (a client refusing our certificate is the
//! client's business) and dropped.
//!
//! Only HTTP/1.1 is offered by ALPN: [`crate::serve`] speaks HTTP/1 only, and a client told
//! "h2" would fail on its first request.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::serve::admit;
use crate::TlsError;
use xtt_ratelimit::ClientSlots;

/// Handshakes allowed to run at once; a connection beyond is closed when accepted.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// Handshakes allowed to run at once from one IP address.
pub const MAX_PENDING_HANDSHAKES_PER_IP: usize = 16;
/// How long a client has to finish its handshake (ClientHello included).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Caps and deadline of the TLS handshakes a [`TlsListener`] runs.
#[derive(Debug, Clone)]
pub struct HandshakeLimits {
    /// Handshakes in progress at once.
    pub max_pending: usize,
    /// Handshakes in progress at once from one IP address.
    pub max_pending_per_ip: usize,
    /// How long one handshake may take.
    pub timeout: Duration,
    /// Addresses the per-IP cap does not apply to (a re-encrypting proxy in front).
    pub unlimited_ips: Vec<IpAddr>,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            max_pending: MAX_PENDING_HANDSHAKES,
            max_pending_per_ip: MAX_PENDING_HANDSHAKES_PER_IP,
            timeout: HANDSHAKE_TIMEOUT,
            unlimited_ips: Vec::new(),
        }
    }
}

/// A server configuration (HTTP/1.1 offered by ALPN) from a PEM certificate chain
/// (leaf first) and a PEM private key (PKCS#8, SEC1 or PKCS#1).
pub fn config_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig, TlsError> {
    let has = |pem: &[u8], label: &[u8]| pem.windows(label.len()).any(|w| w == label);
    const SWAPPED: &str = "are the certificate and key files swapped?";
    if !has(chain_pem, b"-----BEGIN CERTIFICATE-----") {
        let reason = if has(chain_pem, b"PRIVATE KEY-----") {
            format!("holds a private key, not the server's certificate chain ({SWAPPED})")
        } else {
            "no \"-----BEGIN CERTIFICATE-----\" block (expected the server's PEM certificate \
             chain, leaf first)"
                .to_owned()
        };
        return Err(TlsError::Pem {
            source_name: "server certificate".into(),
            reason,
        });
    }
    let chain = crate::parse_pem_certificates(chain_pem, "server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: "server key".into(),
        reason: if has(key_pem, b"PRIVATE KEY-----") {
            format!("malformed PEM private key ({e})")
        } else if has(key_pem, b"-----BEGIN CERTIFICATE-----") {
            format!("holds a certificate, not the server's private key ({SWAPPED})")
        } else {
            "no \"-----BEGIN ... PRIVATE KEY-----\" block (expected the server's PEM private \
             key: PKCS#8, SEC1 or PKCS#1)"
                .to_owned()
        },
    })?;
    config(chain, key)
}

/// The same from files.
pub fn config_from_files(chain: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain_pem = crate::read_limited(chain)?;
    let key_pem = zeroize::Zeroizing::new(crate::read_limited(key)?);
    config_from_pem(&chain_pem, &key_pem).map_err(|e| match e {
        TlsError::Key { reason, .. } => TlsError::Key {
            path: key.display().to_string(),
            reason,
        },
        TlsError::Pem { reason, .. } => TlsError::Pem {
            source_name: chain.display().to_string(),
            reason,
        },
        other => other,
    })
}

fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, TlsError> {
    crate::install_ring_provider();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A TCP listener whose connections come out TLS-terminated.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `config` (must be called inside a tokio runtime).
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        Self::with_limits(tcp, config, HandshakeLimits::default())
    }

    /// The same with other handshake caps and deadline.
    pub fn with_limits(
        tcp: TcpListener,
        config: rustls::ServerConfig,
        limits: HandshakeLimits,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let tls = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(tcp, tls, tx, limits));
        Ok(Self {
            local,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    limits: HandshakeLimits,
) {
    let pending = ClientSlots::with_total(
        u32::try_from(limits.max_pending_per_ip).unwrap_or(u32::MAX),
        limits.max_pending,
    );
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = admit(&pending, peer.ip(), &limits.unlimited_ips);
        let Some(slot) = slot else {
            tracing::debug!(%peer, "connection refused: too many TLS handshakes in progress");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let tx = tx.clone();
        let timeout = limits.timeout;
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(timeout, tls.accept(stream)).await;
            // The place is for the handshake only, not for waiting to be served.
            drop(slot);
            match handshake {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept loop only ends when the listener itself is dropped; never resolve.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
