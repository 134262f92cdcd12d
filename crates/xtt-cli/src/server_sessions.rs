//! `xtt server` flags for XTT sessions: serve them (TCP and UDP on the listen address), and
//! share them with the other server nodes of a deployment through the storage database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use xtt_server::sessions::shared::{SharedOptions, StorageKey};
use xtt_server::sessions::{ForwardUdp, ForwardUnix, SessionApp};
use xtt_server::{Echo, SessionOptions, XttServer};

/// Session flags of `xtt server`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sessions")]
pub(crate) struct SessionFlags {
    /// Serve XTT sessions on the listen address (TCP and UDP), handing records to APP:
    /// `echo` (send every payload back), `udp:HOST:PORT` (one local UDP socket per device;
    /// replies go back to the device) or `unix:PATH` (datagrams prefixed with the ClientID).
    #[arg(long, value_name = "APP")]
    sessions: Option<String>,
    /// Share sessions with the other nodes using the same storage database: a device may move
    /// to any node and keep its session. FILE is the deployment's session storage key (32
    /// bytes, mode 0600, the same file on every node; make one with --new-session-key).
    #[arg(long, value_name = "FILE", requires = "sessions")]
    session_key: Option<PathBuf>,
    /// Write a new random session storage key to FILE (0600) and exit.
    #[arg(long, value_name = "FILE", exclusive = true)]
    new_session_key: Option<PathBuf>,
    /// Address for hand-over requests from other nodes (shared sessions).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    handover_listen: SocketAddr,
    /// Address other nodes use to reach --handover-listen (default: the bound address).
    #[arg(long, value_name = "HOST:PORT")]
    handover_advertise: Option<String>,
    /// Sequence numbers reserved per database write (shared sessions); also the most records a
    /// device can lose when the node holding its session crashes.
    #[arg(long, value_name = "K", default_value_t = 256)]
    session_reserve: u32,
    /// Node lease in milliseconds (shared sessions): a node silent this long is considered
    /// dead and its sessions are taken over without asking it.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    node_lease_ms: u64,
}

impl SessionFlags {
    /// `--new-session-key`: handled before anything else; returns whether it ran.
    pub(crate) fn create_key_if_asked(&self) -> anyhow::Result<bool> {
        let Some(path) = &self.new_session_key else {
            return Ok(false);
        };
        StorageKey::create(path)?;
        println!(
            "wrote a new session storage key to {} (copy it to every node, keep it 0600)",
            path.display()
        );
        Ok(true)
    }

    fn app(&self, spec: &str) -> anyhow::Result<Arc<dyn SessionApp>> {
        if spec == "echo" {
            return Ok(Arc::new(Echo));
        }
        if let Some(addr) = spec.strip_prefix("udp:") {
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("--sessions {spec}: not a HOST:PORT address"))?;
            return Ok(Arc::new(ForwardUdp::new(addr, 10_000)));
        }
        if let Some(path) = spec.strip_prefix("unix:") {
            return Ok(Arc::new(
                ForwardUnix::new(path.into()).context("opening the unix forwarding socket")?,
            ));
        }
        bail!("--sessions {spec:?}: use echo, udp:HOST:PORT or unix:PATH")
    }

    /// Enables sessions on `server` as the flags say; `storage_url` names the database shared
    /// sessions live in (the registry's).
    pub(crate) async fn enable(
        &self,
        server: &mut XttServer,
        storage_url: &str,
    ) -> anyhow::Result<Option<String>> {
        let Some(spec) = &self.sessions else {
            return Ok(None);
        };
        let mut options = SessionOptions::new(self.app(spec)?);
        let mut what = format!("sessions on (TCP+UDP, {spec})");
        if let Some(key_path) = &self.session_key {
            let key = Arc::new(StorageKey::read(key_path)?);
            let url = storage_url.to_string();
            let store = tokio::task::spawn_blocking(move || {
                xtt_registry::sessions::open_session_store(&url, 8)
            })
            .await?
            .context("opening the session store")?;
            options.shared = Some(SharedOptions {
                handover_listen: self.handover_listen,
                handover_advertise: self.handover_advertise.clone(),
                reserve: self.session_reserve,
                lease: Duration::from_millis(self.node_lease_ms),
                ..SharedOptions::new(store, key)
            });
            what.push_str(", shared with the other nodes");
        }
        server.enable_sessions(options).await?;
        Ok(Some(what))
    }
}
