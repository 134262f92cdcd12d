//! Identity provisioning over TCP: the client side of the handshake, driving xtt-proto's
//! [`ClientHandshake`] with per-message timeouts.
//!
//! The client's cryptography (ECDSA, DAA signing: about 1.5 ms) runs inline on the calling task:
//! a device provisions once, and the load generator wants no extra thread hops.

use std::sync::Arc;
use std::time::Duration;

use rand_core::OsRng;
use tokio::net::{TcpStream, ToSocketAddrs};
use xtt_ecdaa::Member;
use xtt_proto::cert::{RootCertificate, RootStore};
use xtt_proto::client::{ClientConfig, ClientHandshake, PreparedClientInit, ProvisionedIdentity};
use xtt_proto::codec::MAX_HANDSHAKE_LEN;
use xtt_proto::daa::DaaSigner;
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::{ClientId, SuiteSpec};

use crate::framing::{read_message, write_message, FrameError};

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// A step took longer than its timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// Another socket error.
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    /// The server answered with an XTT Error message (it refused the handshake; the reason is in
    /// the server's log, never on the wire).
    #[error("the server refused the handshake (XTT Error message)")]
    ServerRefused,
    /// The server's messages failed a check (bad root, bad signature, wrong echo, ...).
    #[error("handshake failed: {0}")]
    Protocol(xtt_proto::Error),
}

impl ClientError {
    /// A short snake_case name, for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Connect(_) => "connect",
            ClientError::Timeout => "timeout",
            ClientError::Closed => "closed",
            ClientError::Io(_) => "io",
            ClientError::ServerRefused => "server_refused",
            ClientError::Protocol(_) => "protocol",
        }
    }
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Timeout => ClientError::Timeout,
            FrameError::Closed => ClientError::Closed,
            FrameError::Io(e) => ClientError::Io(e),
            FrameError::Protocol(xtt_proto::Error::ReceivedErrorMessage) => {
                ClientError::ServerRefused
            }
            FrameError::Protocol(e) => ClientError::Protocol(e),
        }
    }
}

/// Everything a device needs to provision, besides the server address.
#[derive(Clone)]
pub struct Provisioner {
    /// Trusted roots (the server certificate must chain to one).
    pub roots: Arc<dyn RootStore + Send + Sync>,
    /// The device's DAA group membership.
    pub daa: Arc<dyn DaaSigner + Send + Sync>,
    /// The suite to offer.
    pub suite: SuiteSpec,
    /// The ClientID to ask for ([`ClientId::NULL`]: the server chooses).
    pub requested_id: ClientId,
    /// The long-term key to register; `None` draws a fresh one (as the C client does).
    pub longterm_key: Option<LongtermKeyPair>,
    /// Timeout for connecting and for each message.
    pub timeout: Duration,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("group_id", &self.daa.group_id())
            .field("suite", &self.suite)
            .field("requested_id", &self.requested_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    /// A provisioner for one root and one DAA member, with suite 1, a null request, a fresh
    /// long-term key and a 10 s timeout.
    pub fn new(root: RootCertificate, member: Arc<Member>) -> Self {
        Self::new_with_roots(Arc::new(root), member)
    }

    /// The same defaults, trusting every root of `roots`.
    pub fn new_with_roots(roots: Arc<dyn RootStore + Send + Sync>, member: Arc<Member>) -> Self {
        Self {
            roots,
            daa: member,
            suite: SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
            requested_id: ClientId::NULL,
            longterm_key: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Runs one identity handshake against `addr`.
    pub async fn provision(
        &self,
        addr: impl ToSocketAddrs,
    ) -> Result<ProvisionedIdentity, ClientError> {
        self.provision_prepared(addr, None).await
    }

    /// Runs one identity handshake against `addr`, starting from `prepared` when given (its
    /// long-term key is registered unless [`Provisioner::longterm_key`] names one).
    pub async fn provision_prepared(
        &self,
        addr: impl ToSocketAddrs,
        prepared: Option<PreparedClientInit>,
    ) -> Result<ProvisionedIdentity, ClientError> {
        let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        self.handshake(&mut stream, prepared).await
    }

    /// Runs one identity handshake on an open stream.
    pub async fn provision_on(
        &self,
        stream: &mut TcpStream,
    ) -> Result<ProvisionedIdentity, ClientError> {
        self.handshake(stream, None).await
    }

    async fn handshake(
        &self,
        stream: &mut TcpStream,
        prepared: Option<PreparedClientInit>,
    ) -> Result<ProvisionedIdentity, ClientError> {
        let config = ClientConfig {
            roots: self.roots.clone(),
            daa: self.daa.clone(),
            longterm_key: self.longterm_key.clone(),
        };
        let (state, client_init) = match prepared {
            Some(p) => ClientHandshake::start_prepared(config, self.suite, self.requested_id, p),
            None => ClientHandshake::start(config, self.suite, self.requested_id, &mut OsRng),
        };
        write_message(stream, &client_init, self.timeout).await?;
        let server_attest = read_message(stream, MAX_HANDSHAKE_LEN, self.timeout).await?;
        let (state, client_attest) = match state.handle_server_attest(&server_attest, &mut OsRng) {
            Ok(x) => x,
            Err(e) => return Err(alert(stream, e, self.timeout).await),
        };
        write_message(stream, &client_attest, self.timeout).await?;
        let server_finished = read_message(stream, MAX_HANDSHAKE_LEN, self.timeout).await?;
        match state.handle_server_finished(&server_finished) {
            Ok(identity) => Ok(identity),
            Err(e) => Err(alert(stream, e, self.timeout).await),
        }
    }
}

/// Tells the server the handshake failed (best effort) and returns the error.
async fn alert(stream: &mut TcpStream, e: xtt_proto::Error, timeout: Duration) -> ClientError {
    if let Some(bytes) = e.alert_bytes() {
        let _ = write_message(stream, &bytes, timeout.min(Duration::from_millis(500))).await;
    }
    ClientError::Protocol(e)
}
