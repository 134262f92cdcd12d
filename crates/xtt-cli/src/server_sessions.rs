//! The session flags of `xtt server` (they override `[sessions]` of the configuration file)
//! and turning sessions on for a bound server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use std::sync::Arc;

use xtt_server::sessions::{AppSetting, SessionSettings};
use xtt_server::{SessionApp, XttServer};

/// Session flags; each overrides the file's `[sessions]` value.
#[derive(Debug, Args)]
pub(crate) struct SessionFlags {
    /// Serve identity provisioning only (no session handshakes, no records).
    #[arg(long, help_heading = "Sessions")]
    no_sessions: bool,
    /// Serve sessions over TCP only (no UDP socket).
    #[arg(long, help_heading = "Sessions")]
    no_udp: bool,
    /// Forward each device's records to this local UDP service (one socket per device; its
    /// replies go back to the device) instead of echoing them.
    #[arg(
        long,
        value_name = "ADDR",
        help_heading = "Sessions",
        conflicts_with = "forward_unix"
    )]
    forward_udp: Option<SocketAddr>,
    /// Forward each record, prefixed with the 16-byte ClientID, to this Unix datagram socket.
    #[arg(long, value_name = "PATH", help_heading = "Sessions")]
    forward_unix: Option<PathBuf>,
    /// Remove a session after this many seconds without a record from its device.
    #[arg(long, value_name = "SECS", help_heading = "Sessions")]
    session_idle_timeout: Option<u64>,
    /// Most sessions at once.
    #[arg(long, value_name = "N", help_heading = "Sessions")]
    max_sessions: Option<usize>,
}

impl SessionFlags {
    pub(crate) fn apply(&self, s: &mut SessionSettings) {
        if self.no_sessions {
            s.enabled = false;
        }
        if self.no_udp {
            s.udp = false;
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
    }
}

/// Enables sessions on `server` as `settings` say (nothing when disabled); returns the line
/// `xtt server` prints about them.
pub(crate) async fn enable(
    server: &mut XttServer,
    settings: &SessionSettings,
    app_override: Option<Arc<dyn SessionApp>>,
) -> anyhow::Result<String> {
    if !settings.enabled {
        if app_override.is_some() {
            anyhow::bail!(
                "--updates needs sessions: remove --no-sessions or [sessions] enabled = false"
            );
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
        "sessions over {transports}, records to {app_name} (idle timeout {} s, at most {})",
        settings.idle_timeout_secs, settings.max_sessions
    ))
}
