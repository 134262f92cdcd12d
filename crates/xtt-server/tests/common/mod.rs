//! Shared test fixture: a throwaway PKI and DAA group, and a server on 127.0.0.1:0.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use rand_core::{OsRng, RngCore};
use tokio::sync::oneshot;
use xtt_ecdaa::{Issuer, Member};
use xtt_proto::cert::{RootCertificate, ServerCertificate};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::session::SessionClientConfig;
use xtt_proto::session_table::SessionTableConfig;
use xtt_registry::{Registry, SqliteRegistry};
use xtt_server::bench::{enroll_devices, register_session_devices, ThrowawayPki};
use xtt_server::sessions::SessionApp;
use xtt_server::{
    add_group, Provisioner, ServerConfig, ServerHandle, ServerKeys, SessionOptions, XttServer,
};
use zeroize::Zeroizing;

pub const BASENAME: &[u8] = b"test-manufacturer";

pub struct Fixture {
    pub root_key: LongtermKeyPair,
    pub root: RootCertificate,
    pub certificate: ServerCertificate,
    pub server_key: LongtermKeyPair,
    pub cookie_secret: [u8; 32],
    pub issuer: Issuer,
}

impl Fixture {
    pub fn new() -> Self {
        let ThrowawayPki {
            root_key,
            root,
            server_key,
            certificate,
        } = ThrowawayPki::generate().unwrap();
        let mut cookie_secret = [0u8; 32];
        OsRng.fill_bytes(&mut cookie_secret);
        Self {
            root_key,
            root,
            certificate,
            server_key,
            cookie_secret,
            issuer: Issuer::generate(&mut OsRng),
        }
    }

    pub fn keys(&self) -> ServerKeys {
        ServerKeys {
            certificate: self.certificate.clone(),
            signing_key: self.server_key.clone(),
            cookie_secret: Zeroizing::new(self.cookie_secret),
        }
    }

    pub fn gpk(&self) -> Vec<u8> {
        self.issuer.group_public_key().to_bytes().to_vec()
    }

    pub fn members(&self, n: usize) -> Vec<Arc<Member>> {
        enroll_devices(&self.issuer, BASENAME, n).unwrap()
    }

    pub fn provisioner(&self, member: Arc<Member>) -> Provisioner {
        Provisioner::new(self.root.clone(), member)
    }

    /// A registry file in `dir` holding this fixture's group.
    pub fn registry(&self, dir: &std::path::Path) -> Arc<dyn Registry> {
        let reg =
            SqliteRegistry::open(&dir.join("registry.sqlite"), xtt_registry::Durability::Full)
                .unwrap();
        add_group(&reg, &self.gpk(), BASENAME).unwrap();
        Arc::new(reg)
    }
}

pub fn test_config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    config.data_dir = dir.to_path_buf();
    config
}

pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub handle: ServerHandle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), xtt_server::ServerError>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

pub async fn start(config: ServerConfig, keys: ServerKeys, registry: Arc<dyn Registry>) -> Running {
    let server = XttServer::bind(config, keys, registry).await.unwrap();
    run(server)
}

/// Runs a bound server until [`Running::stop`].
pub fn run(server: XttServer) -> Running {
    let addr = server.local_addr().unwrap();
    let metrics_addr = server.metrics_addr();
    let handle = server.handle();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        metrics_addr,
        handle,
        stop: Some(tx),
        task,
    }
}

/// A running server with sessions on (TCP and UDP on one address), its registry, and the
/// fixture to register devices with.
pub struct SessionEnv {
    pub _dir: tempfile::TempDir,
    pub fx: Fixture,
    pub registry: Arc<dyn Registry>,
    pub server: Running,
    pub udp: SocketAddr,
}

/// A server whose sessions go to `app`, with a session table of 4 shards and `max_sessions`.
pub async fn session_env(app: Arc<dyn SessionApp>, max_sessions: usize) -> SessionEnv {
    session_env_with_table(
        app,
        SessionTableConfig {
            shards: 4,
            max_sessions,
            ..SessionTableConfig::default()
        },
    )
    .await
}

/// A server whose sessions go to `app`, with the session table `table`.
pub async fn session_env_with_table(
    app: Arc<dyn SessionApp>,
    table: SessionTableConfig,
) -> SessionEnv {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let mut server = XttServer::bind(test_config(dir.path()), fx.keys(), registry.clone())
        .await
        .unwrap();
    let mut options = SessionOptions::new(app);
    options.table = table;
    server.enable_sessions(options).await.unwrap();
    let udp = server.udp_addr().unwrap();
    assert_eq!(udp, server.local_addr().unwrap(), "UDP on the TCP address");
    SessionEnv {
        _dir: dir,
        fx,
        registry,
        server: run(server),
        udp,
    }
}

impl SessionEnv {
    /// A device registered as identity provisioning would leave it (ClientID → long-term key).
    pub fn register(&self) -> SessionClientConfig {
        let (group_id, _) = add_group(&*self.registry, &self.fx.gpk(), BASENAME).unwrap();
        register_session_devices(&*self.registry, group_id, Arc::new(self.fx.root.clone()), 1)
            .unwrap()
            .remove(0)
    }
}

/// Waits (up to 10 s) until no handshake is in progress: a client can finish before the server
/// task has recorded its outcome.
pub async fn wait_idle(handle: &ServerHandle) {
    let t0 = std::time::Instant::now();
    while handle.in_flight() != 0 || handle.metrics().in_flight_now() != 0 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "server never idle"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Polls `condition` until it holds, for at most 10 s (then fails naming `what`).
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 10 s for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
