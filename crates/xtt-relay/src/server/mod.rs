//! The relay server: axum routes over a [`Store`], an injectable [`Clock`], rate limits, a
//! body limit, a request deadline, a periodic sweeper and an optional push webhook, served by
//! [`xtt_tls::serve`] (request-head deadline, connection caps, bounded graceful shutdown).

pub mod clock;
mod http;
pub mod preview;
pub mod push;
pub mod rate_limit;
pub mod sqlite;
pub mod store;

use crate::proto::wire::CreateLimits;
use clock::Clock;
use push::Pusher;
use rate_limit::{RateLimiter, RateLimits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

/// Everything configurable about a relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Base of the `urlLink`s handed out, e.g. `https://relay.example.com` (the relay usually
    /// sits behind a TLS-terminating proxy). `None`: `http://{listen address}`.
    pub public_base: Option<Url>,
    /// Payload size and lifetime bounds.
    pub limits: CreateLimits,
    /// Distinct Recipient bindings a mailbox accepts over its life.
    pub max_receivers: u32,
    /// Largest request body in bytes (413 above).
    pub body_limit: usize,
    /// Request rates.
    pub rate: RateLimits,
    /// Reverse proxies in front of the relay: requests from these addresses are charged to the
    /// client address in their `X-Forwarded-For` (else every client behind the proxy would
    /// share one rate-limit bucket).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How often expired mailboxes are deleted.
    pub sweep_interval: Duration,
    /// Most mailboxes stored at once; a create beyond gets 503 (nothing else bounds how much
    /// disk clients can fill: each mailbox lives up to the maximum lifetime).
    pub max_mailboxes: u64,
    /// Most live mailboxes one client (IPv4 address, IPv6 /64) may hold; a create beyond
    /// gets 429. `u64::MAX`: no limit.
    pub max_mailboxes_per_creator: u64,
    /// Where update notifications are POSTed; `None` disables push.
    pub push_webhook: Option<Url>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            public_base: None,
            limits: CreateLimits {
                max_payload: 32 * 1024,
                default_lifetime_secs: 24 * 3600,
                max_lifetime_secs: 7 * 24 * 3600,
            },
            max_receivers: 3,
            body_limit: 64 * 1024,
            rate: RateLimits::default(),
            trusted_proxies: Vec::new(),
            sweep_interval: Duration::from_secs(60),
            max_mailboxes: 100_000,
            max_mailboxes_per_creator: 1_000,
            push_webhook: None,
        }
    }
}

/// Longest a request may take, body upload included, by default (408 after).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How connections and requests are bounded in time and number; the defaults suit production.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Request-head deadline, connection caps, shutdown grace. The relay's trusted proxies are
    /// added to [`ServeLimits::unlimited_ips`](xtt_tls::serve::ServeLimits::unlimited_ips):
    /// they carry many clients.
    pub connections: xtt_tls::serve::ServeLimits,
    /// Longest a request may take once its head is read (a body that never arrives included);
    /// the client gets 408 after, and nothing it asked for is done (unless the change had begun
    /// to commit in time: then the client gets its answer).
    pub request_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            connections: xtt_tls::serve::ServeLimits::default(),
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Errors starting a relay.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cause is the `source()`: `{:#}` prints it once.
    #[error("cannot read the listening address")]
    Io(#[from] std::io::Error),
    #[error("the public base URL {0} cannot carry a path")]
    PublicBase(String),
    #[error("cannot build the push client")]
    Push(#[from] reqwest::Error),
    /// A setting the relay cannot run with (the CLI checks these too, with its flag names).
    #[error("{0}")]
    Config(&'static str),
}

pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: RelayConfig,
    pub(crate) public_base: Url,
    pub(crate) limiter: RateLimiter,
    pub(crate) pusher: Option<Pusher>,
    pub(crate) request_timeout: Duration,
}

/// A running relay.
#[derive(Debug)]
pub struct RelayServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    sweeper: JoinHandle<()>,
}

impl RelayServer {
    /// Serves HTTP on `listener` until [`RelayServer::shutdown`].
    pub async fn start(
        listener: TcpListener,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: RelayConfig,
    ) -> Result<Self, StartError> {
        Self::start_with(
            listener,
            None,
            store,
            clock,
            config,
            ServeOptions::default(),
        )
        .await
    }

    /// Serves HTTPS on `listener` with `tls` (see [`xtt_tls::server`]) until
    /// [`RelayServer::shutdown`]; without a configured public base, links say `https://`.
    pub async fn start_tls(
        listener: TcpListener,
        tls: rustls::ServerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: RelayConfig,
    ) -> Result<Self, StartError> {
        let options = ServeOptions::default();
        Self::start_with(listener, Some(tls), store, clock, config, options).await
    }

    /// Serves HTTP, or HTTPS with `tls`, on `listener` with `options` until
    /// [`RelayServer::shutdown`].
    pub async fn start_with(
        listener: TcpListener,
        tls: Option<rustls::ServerConfig>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: RelayConfig,
        options: ServeOptions,
    ) -> Result<Self, StartError> {
        match tls {
            None => Self::start_on(listener, "http", store, clock, config, options).await,
            Some(tls) => {
                // A proxy that re-encrypts to the relay opens many handshakes from one address.
                let limits = xtt_tls::server::HandshakeLimits {
                    unlimited_ips: config.trusted_proxies.clone(),
                    ..Default::default()
                };
                let listener = xtt_tls::server::TlsListener::with_limits(listener, tls, limits)?;
                Self::start_on(listener, "https", store, clock, config, options).await
            }
        }
    }

    async fn start_on<L>(
        listener: L,
        scheme: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: RelayConfig,
        options: ServeOptions,
    ) -> Result<Self, StartError>
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
        L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // tokio's interval panics on a zero period, in a task nobody joins: the sweeper would
        // be gone while the relay serves on, and expired mailboxes would never be deleted.
        if config.sweep_interval.is_zero() {
            return Err(StartError::Config(
                "the sweep interval must be longer than zero",
            ));
        }
        let addr = axum::serve::Listener::local_addr(&listener)?;
        let mut public_base = match &config.public_base {
            Some(url) => url.clone(),
            None => Url::parse(&format!("{scheme}://{addr}"))
                .map_err(|e| StartError::PublicBase(e.to_string()))?,
        };
        if public_base.cannot_be_a_base() {
            return Err(StartError::PublicBase(public_base.to_string()));
        }
        // Normalise to a trailing slash so joining keeps any path prefix.
        if !public_base.path().ends_with('/') {
            let path = format!("{}/", public_base.path());
            public_base.set_path(&path);
        }
        let pusher = config.push_webhook.clone().map(Pusher::new).transpose()?;
        let mut limits = options.connections;
        limits
            .unlimited_ips
            .extend(config.trusted_proxies.iter().copied());
        let state = Arc::new(AppState {
            request_timeout: options.request_timeout,
            store,
            clock,
            limiter: RateLimiter::new(config.rate),
            public_base,
            pusher,
            config,
        });
        let (shutdown, mut stop) = watch::channel(false);
        let sweeper = tokio::spawn(sweep_loop(state.clone(), shutdown.subscribe()));
        let app = http::router(state);
        // Every request carries the peer's ConnectInfo, which the rate limiter reads.
        let server = tokio::spawn(xtt_tls::serve::serve(listener, app, limits, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }));
        tracing::info!(%addr, "relay listening");
        Ok(RelayServer {
            addr,
            shutdown,
            server,
            sweeper,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, finishes in-flight requests (waiting at most the shutdown grace of
    /// [`ServeOptions::connections`]), stops the sweeper.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.sweeper.abort();
        match self.server.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Waits until the server stops by itself (an I/O error) — used by `relay serve`.
    pub async fn wait(self) -> std::io::Result<()> {
        let RelayServer {
            server,
            sweeper,
            shutdown,
            ..
        } = self;
        let result = server.await;
        drop(shutdown);
        sweeper.abort();
        match result {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

async fn sweep_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(state.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (store, clock) = (state.store.clone(), state.clock.clone());
        match tokio::task::spawn_blocking(move || store.sweep(&*clock)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(deleted = n, "swept expired mailboxes"),
            Ok(Err(e)) => tracing::error!(error = %e, "sweep failed"),
            Err(e) => tracing::error!(error = %e, "sweep task failed"),
        }
    }
}
