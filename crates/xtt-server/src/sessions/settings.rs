//! The `[sessions]` section of the server's configuration file ([`SessionSettings`]) and its
//! translation into the [`SessionOptions`] a server is started with.
//!
//! The application is one string, so the file stays flat and a flag can carry it as it is:
//! `"echo"`, `"forward-udp 127.0.0.1:5000"` or `"forward-unix /run/app.sock"`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use xtt_proto::session_table::SessionTableConfig;

use super::{Echo, ForwardUdp, ForwardUnix, SessionApp, SessionOptions};

/// What the server does with the records it receives.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AppSetting {
    /// Send every payload back ([`Echo`]).
    #[default]
    Echo,
    /// Forward to a local UDP service ([`ForwardUdp`]).
    ForwardUdp(SocketAddr),
    /// Forward to a local Unix datagram socket ([`ForwardUnix`]).
    ForwardUnix(PathBuf),
}

/// Why an `app` string is not one of the three forms.
#[derive(Debug, thiserror::Error)]
#[error("session app {0:?}: expected \"echo\", \"forward-udp HOST:PORT\" or \"forward-unix PATH\"")]
pub struct AppSettingError(String);

impl FromStr for AppSetting {
    type Err = AppSettingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AppSettingError(s.to_string());
        let s = s.trim();
        let (kind, arg) = match s.split_once(char::is_whitespace) {
            Some((k, a)) => (k, a.trim()),
            None => (s, ""),
        };
        match (kind, arg.is_empty()) {
            ("echo", true) => Ok(Self::Echo),
            ("forward-udp", false) => arg.parse().map(Self::ForwardUdp).map_err(|_| bad()),
            ("forward-unix", false) => Ok(Self::ForwardUnix(PathBuf::from(arg))),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for AppSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Echo => f.write_str("echo"),
            Self::ForwardUdp(a) => write!(f, "forward-udp {a}"),
            Self::ForwardUnix(p) => write!(f, "forward-unix {}", p.display()),
        }
    }
}

impl Serialize for AppSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AppSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[sessions]`; see [`crate::DEFAULT_CONFIG_TOML`] for what each field means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Serve sessions at all.
    pub enabled: bool,
    /// Also over UDP.
    pub udp: bool,
    /// The application.
    pub app: AppSetting,
    /// Idle timeout (s).
    pub idle_timeout_secs: u64,
    /// Maximum lifetime (s).
    pub max_lifetime_secs: u64,
    /// Table capacity.
    pub max_sessions: usize,
    /// Live sessions per client.
    pub max_sessions_per_client: u32,
    /// Table shards.
    pub shards: usize,
    /// TCP record connections at once.
    pub max_tcp_connections: usize,
    /// Of those, per client address.
    pub max_tcp_connections_per_client: u32,
    /// UDP ClientInits answered per source address and second.
    pub udp_client_inits_per_ip: u32,
    /// UDP session flights processed per source address and second.
    pub udp_client_attests_per_ip: u32,
}

impl Default for SessionSettings {
    fn default() -> Self {
        let table = SessionTableConfig::default();
        Self {
            enabled: true,
            udp: true,
            app: AppSetting::Echo,
            idle_timeout_secs: table.idle_timeout_secs,
            max_lifetime_secs: table.max_lifetime_secs,
            max_sessions: table.max_sessions,
            max_sessions_per_client: table.max_sessions_per_client,
            shards: table.shards,
            max_tcp_connections: 10_000,
            max_tcp_connections_per_client: 1_000,
            udp_client_inits_per_ip: 50,
            udp_client_attests_per_ip: 50,
        }
    }
}

/// Most forwarding sockets [`ForwardUdp`] keeps open (one per device with traffic).
const MAX_FORWARD_CLIENTS: usize = 10_000;

impl SessionSettings {
    /// Checks ranges (as [`crate::ServerConfig::validate`] does for the other sections).
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_timeout_secs == 0 || self.max_lifetime_secs == 0 {
            return Err(
                "sessions: idle_timeout_secs and max_lifetime_secs must be positive".into(),
            );
        }
        if self.idle_timeout_secs > self.max_lifetime_secs {
            return Err("sessions: idle_timeout_secs must not exceed max_lifetime_secs".into());
        }
        if self.max_sessions == 0 || self.shards == 0 || self.shards > 4096 {
            return Err("sessions: max_sessions must be positive and shards in 1..=4096".into());
        }
        if self.max_tcp_connections == 0 || self.max_tcp_connections_per_client == 0 {
            return Err(
                "sessions: max_tcp_connections and max_tcp_connections_per_client must be at least 1"
                    .into(),
            );
        }
        if self.max_sessions_per_client == 0 {
            return Err("sessions: max_sessions_per_client must be at least 1".into());
        }
        if self.udp_client_inits_per_ip == 0 || self.udp_client_attests_per_ip == 0 {
            return Err(
                "sessions: udp_client_inits_per_ip and udp_client_attests_per_ip must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The options to pass to [`crate::XttServer::enable_sessions`], with the application
    /// built (a Unix forwarder opens its socket here).
    pub fn options(&self) -> std::io::Result<SessionOptions> {
        let app: Arc<dyn SessionApp> = match &self.app {
            AppSetting::Echo => Arc::new(Echo),
            AppSetting::ForwardUdp(a) => Arc::new(
                ForwardUdp::new(*a, MAX_FORWARD_CLIENTS)
                    .with_idle_timeout(Duration::from_secs(self.idle_timeout_secs.max(1))),
            ),
            AppSetting::ForwardUnix(p) => Arc::new(ForwardUnix::new(p.clone())?),
        };
        let mut options = SessionOptions::new(app);
        options.udp = self.udp;
        options.max_tcp_connections = self.max_tcp_connections;
        options.max_tcp_connections_per_client = self.max_tcp_connections_per_client;
        options.udp_client_inits_per_ip = self.udp_client_inits_per_ip;
        options.udp_client_attests_per_ip = self.udp_client_attests_per_ip;
        options.table = SessionTableConfig {
            shards: self.shards,
            idle_timeout_secs: self.idle_timeout_secs,
            max_lifetime_secs: self.max_lifetime_secs,
            max_sessions: self.max_sessions,
            max_sessions_per_client: self.max_sessions_per_client,
            ..SessionTableConfig::default()
        };
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_strings_round_trip_and_bad_ones_are_refused() {
        for s in [
            "echo",
            "forward-udp 127.0.0.1:5000",
            "forward-unix /run/app.sock",
        ] {
            let app: AppSetting = s.parse().unwrap();
            assert_eq!(app.to_string(), s);
        }
        assert_eq!(
            "forward-udp   [::1]:9".parse::<AppSetting>().unwrap(),
            AppSetting::ForwardUdp("[::1]:9".parse().unwrap())
        );
        for s in [
            "",
            "echo 1",
            "forward-udp",
            "forward-udp nowhere",
            "forward-unix",
            "tee",
        ] {
            assert!(s.parse::<AppSetting>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn settings_become_table_options() {
        let s = SessionSettings {
            udp: false,
            idle_timeout_secs: 30,
            max_sessions: 7,
            ..SessionSettings::default()
        };
        let o = s.options().unwrap();
        assert!(!o.udp);
        assert_eq!(o.table.idle_timeout_secs, 30);
        assert_eq!(o.table.max_sessions, 7);
        assert!(SessionSettings {
            idle_timeout_secs: 0,
            ..SessionSettings::default()
        }
        .validate()
        .is_err());
        assert!(SessionSettings {
            idle_timeout_secs: 100,
            max_lifetime_secs: 10,
            ..SessionSettings::default()
        }
        .validate()
        .is_err());
    }
}
