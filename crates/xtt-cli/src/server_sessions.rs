//! The session flags of `xtt server` (they override `[sessions]` of the configuration file),
//! sharing sessions with the other nodes of a deployment through the storage database, and
//! turning sessions on for a bound server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use xtt_server::sessions::shared::{SharedOptions, StorageKey};
use xtt_server::sessions::{AppSetting, SessionSettings};
use xtt_server::{SessionApp, XttServer};

/// Session flags; each overrides the file's `[sessions]` value.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sessions")]
pub(crate) struct SessionFlags {
    /// Serve identity provisioning only (no session handshakes, no records).
    #[arg(long)]
    no_sessions: bool,
    /// Serve sessions over TCP only (no UDP socket).
    #[arg(long)]
    no_udp: bool,
    /// Where records go: `echo` (every payload sent back), `udp:HOST:PORT` (one local UDP
    /// socket per device; replies go back to the device) or `unix:PATH` (datagrams prefixed
    /// with the 16-byte ClientID). Same as --forward-udp / --forward-unix.
    #[arg(long, value_name = "APP", conflicts_with_all = ["forward_udp", "forward_unix", "no_sessions"])]
    sessions: Option<String>,
    /// Forward each device's records to this local UDP service (one socket per device; its
    /// replies go back to the device) instead of echoing them.
    #[arg(long, value_name = "ADDR", conflicts_with = "forward_unix")]
    forward_udp: Option<SocketAddr>,
    /// Forward each record, prefixed with the 16-byte ClientID, to this Unix datagram socket.
    #[arg(long, value_name = "PATH")]
    forward_unix: Option<PathBuf>,
    /// Remove a session after this many seconds without a record from its device.
    #[arg(long, value_name = "SECS")]
    session_idle_timeout: Option<u64>,
    /// Most sessions at once.
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Share sessions with the other nodes using the same storage database: a device may move
    /// to any node and keep its session. FILE is the deployment's session storage key (32
    /// bytes, mode 0600, the same file on every node; make one with --new-session-key).
    #[arg(long, value_name = "FILE", conflicts_with = "no_sessions")]
    session_key: Option<PathBuf>,
    /// Write a new random session storage key to FILE (0600) and exit.
    #[arg(long, value_name = "FILE", exclusive = true)]
    new_session_key: Option<PathBuf>,
    /// Address for hand-over requests from other nodes (shared sessions) [default:
    /// 127.0.0.1:0].
    #[arg(long, value_name = "ADDR", requires = "session_key")]
    handover_listen: Option<SocketAddr>,
    /// Address other nodes use to reach --handover-listen (default: the bound address).
    #[arg(long, value_name = "HOST:PORT", requires = "session_key")]
    handover_advertise: Option<String>,
    /// Sequence numbers reserved per database write (shared sessions); also the most records a
    /// device can lose when the node holding its session crashes [default: 256].
    #[arg(long, value_name = "K", requires = "session_key")]
    session_reserve: Option<u32>,
    /// Node lease in milliseconds (shared sessions): a node silent this long is considered
    /// dead and its sessions are taken over without asking it [default: 10000].
    #[arg(long, value_name = "MS", requires = "session_key")]
    node_lease_ms: Option<u64>,
}

impl SessionFlags {
    /// Applies the flags to the file's settings.
    pub(crate) fn apply(&self, s: &mut SessionSettings) -> anyhow::Result<()> {
        if self.no_sessions {
            s.enabled = false;
        }
        if self.no_udp {
            s.udp = false;
        }
        if let Some(spec) = &self.sessions {
            s.enabled = true;
            s.app = parse_app(spec)?;
        }
        if let Some(a) = self.forward_udp {
            s.app = AppSetting::ForwardUdp(a);
        }
        if let Some(p) = &self.forward_unix {
            s.app = AppSetting::ForwardUnix(p.clone());
        }
        if let Some(t) = self.session_idle_timeout {
            s.idle_timeout_secs = t;
        }
        if let Some(n) = self.max_sessions {
            s.max_sessions = n;
        }
        // Off (by --no-sessions or the file), a session flag would be accepted and then do
        // nothing: say so instead.
        if !s.enabled {
            let given = [
                ("--no-udp", self.no_udp),
                ("--forward-udp", self.forward_udp.is_some()),
                ("--forward-unix", self.forward_unix.is_some()),
                (
                    "--session-idle-timeout",
                    self.session_idle_timeout.is_some(),
                ),
                ("--max-sessions", self.max_sessions.is_some()),
                ("--session-key", self.session_key.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                bail!(
                    "{flag} needs sessions, which are off (--no-sessions, or [sessions] \
                     enabled = false in the configuration file)"
                );
            }
        }
        Ok(())
    }

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

    /// With --session-key: the settings that share sessions through the database named by
    /// `storage_url` (the registry's).
    pub(crate) async fn shared(&self, storage_url: &str) -> anyhow::Result<Option<SharedOptions>> {
        let Some(key_path) = &self.session_key else {
            return Ok(None);
        };
        let key = Arc::new(StorageKey::read(key_path)?);
        let url = storage_url.to_string();
        let store = tokio::task::spawn_blocking(move || {
            xtt_registry::sessions::open_session_store(&url, 8)
        })
        .await?
        .context("opening the session store")?;
        let mut options = SharedOptions::new(store, key);
        if let Some(addr) = self.handover_listen {
            options.handover_listen = addr;
        }
        if let Some(advertise) = &self.handover_advertise {
            options.handover_advertise = Some(advertise.clone());
        }
        if let Some(k) = self.session_reserve {
            options.reserve = k;
        }
        if let Some(ms) = self.node_lease_ms {
            options.lease = Duration::from_millis(ms);
        }
        Ok(Some(options))
    }
}

/// `echo`, `udp:HOST:PORT` or `unix:PATH`, as --sessions takes them.
fn parse_app(spec: &str) -> anyhow::Result<AppSetting> {
    if spec == "echo" {
        return Ok(AppSetting::Echo);
    }
    if let Some(addr) = spec.strip_prefix("udp:") {
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--sessions {spec}: not a HOST:PORT address"))?;
        return Ok(AppSetting::ForwardUdp(addr));
    }
    if let Some(path) = spec.strip_prefix("unix:") {
        return Ok(AppSetting::ForwardUnix(PathBuf::from(path)));
    }
    bail!("--sessions {spec:?}: use echo, udp:HOST:PORT or unix:PATH")
}

/// Enables sessions on `server` as `settings` say (nothing when disabled), with `app_override`
/// instead of the configured application if given and shared across nodes if `shared` is;
/// returns the line `xtt server` prints about them.
pub(crate) async fn enable(
    server: &mut XttServer,
    settings: &SessionSettings,
    app_override: Option<Arc<dyn SessionApp>>,
    shared: Option<SharedOptions>,
) -> anyhow::Result<String> {
    if !settings.enabled {
        if app_override.is_some() {
            bail!("--updates needs sessions: remove --no-sessions or [sessions] enabled = false");
        }
        return Ok("sessions off".into());
    }
    let mut options = settings
        .options()
        .with_context(|| format!("starting the session application ({})", settings.app))?;
    let app_name = match app_override {
        Some(app) => {
            options.app = app;
            "the update server".to_string()
        }
        None => settings.app.to_string(),
    };
    let is_shared = shared.is_some();
    options.shared = shared;
    server
        .enable_sessions(options)
        .await
        .context("enabling sessions")?;
    let transports = if server.udp_addr().is_some() {
        "TCP and UDP"
    } else {
        "TCP"
    };
    Ok(format!(
        "sessions over {transports}, records to {app_name} (idle timeout {} s, at most {}){}",
        settings.idle_timeout_secs,
        settings.max_sessions,
        if is_shared {
            ", shared with the other nodes"
        } else {
            ""
        }
    ))
}
