//! Server configuration: a commented TOML file ([`DEFAULT_CONFIG_TOML`]) that deserialises into
//! [`ServerConfig`], and the in-memory key material ([`ServerKeys`]) loaded by the caller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use xtt_proto::cert::ServerCertificate;
use xtt_proto::longterm::LongtermKeyPair;
use zeroize::Zeroizing;

/// The default configuration file, with a comment on every setting. Parsing it gives
/// [`ServerConfig::default`].
pub const DEFAULT_CONFIG_TOML: &str = r#"# xtt server configuration. Every setting is optional; the values shown are the defaults.
# Command-line flags override this file.

# TCP address for XTT identity provisioning. Use 0.0.0.0:4444 to accept devices from the network.
listen = "127.0.0.1:4444"

# Directory holding the registry (registry.sqlite: DAA groups and provisioned identities).
data_dir = "xtt-data"

# Trust-anchor store (`xtt anchors`). When set, the DAA groups the server accepts are the
# store's daa-group anchors with the attestation role, valid at each handshake's time (rotation
# windows close on their own; changes to the store are picked up while running), and every
# provisioned identity is recorded in it ("provisioned by XTT"). Unset: groups come from the
# registry alone.
# anchors = "anchors.db"
# Where the registry lives, as a URL; the default is the SQLite file above
# ("sqlite:DATA_DIR/registry.sqlite"). Several servers share one PostgreSQL database:
#   storage = "postgres://xtt@db.example/xtt?sslmode=verify-full&sslrootcert=/etc/xtt/db-ca.pem"
# The password is best kept out of this file (PGPASSWORD is not read; use a unix socket with peer
# authentication, or a URL in the --storage flag from a secret store). Logs show URLs redacted.
# Schema migrations run at start.
# storage = "sqlite:xtt-data/registry.sqlite"

[limits]
# Handshakes in progress at once. Connections beyond this are refused at once with an XTT Error
# message instead of queueing, so an overload is visible to clients and never grows memory.
max_concurrent_handshakes = 1024
# Of those, the most one client (IPv4 address, IPv6 /64) may hold, so that one source opening
# silent connections cannot take every slot. Devices behind one NAT share it. 0: no such cap.
max_handshakes_per_client = 256
# Connections the kernel may hold completed but not yet accepted (capped by the system's
# net.core.somaxconn). Beyond it the kernel drops new connection attempts, and each such device
# waits for a retransmission (1 s, then 3 s, ...): keep it above the largest burst of devices
# that connect at once, e.g. after a power cut.
listen_backlog = 1024
# Milliseconds to wait for each complete message from a client (a client that stops
# mid-message is dropped after this long).
read_timeout_ms = 5000
# Milliseconds to wait for a reply to be written.
write_timeout_ms = 5000
# Milliseconds a whole handshake may take, from accept to Identity_ServerFinished.
handshake_timeout_ms = 15000
# Largest message accepted, header included (Identity_ClientAttest, the largest, is 750 bytes).
max_message_len = 750

[daa]
# Threads for CPU work (DAA verification, ECDSA, cookies), at most 1024. 0 means one per core.
# This pool is bounded; the async reactor never verifies signatures.
workers = 0
# Batch DAA verification: the signatures of one group that queue up while every worker is busy,
# or that arrive within the window while signatures are frequent, are verified together (much
# cheaper per signature under load); a server that sees signatures rarely verifies each at
# once. A failing batch is split until the bad signatures are found; only their handshakes
# fail.
batch = false
# Most signatures per batch.
batch_max = 32
# Longest a batch that is not full waits for more signatures (while signatures are frequent,
# or while other work is queued and goes first), counted from its oldest signature's arrival,
# in microseconds: the most latency batching adds.
batch_window_us = 5000

[cookies]
# Seconds a stateless cookie stays valid between ServerInitAndAttest and Identity_ClientAttest.
lifetime_secs = 20
# Used cookies remembered (until they expire) to refuse replays. When full, new handshakes are
# refused until entries expire; size it above handshakes/s × lifetime_secs.
replay_cache_capacity = 200000
# Several servers, one deployment: a file with the cookie keys every node reads ("ID HEX" lines,
# current key first, then the previous one; mode 0600), so a device may send its ClientAttest to
# another node than its ClientInit. Replacing the file rotates the keys on every node within a
# second, without a restart. Without it each server draws a random key at start. Make one with:
#   (umask 077; printf '1 %s\n' "$(openssl rand -hex 32)" > /etc/xtt/cookie.keys)
# key_file = "/etc/xtt/cookie.keys"

[registry]
# SQLite only. "full": every registration is fsynced before the device is told its ClientID
# (survives power loss). "normal": survives a killed server process but not a power loss; faster
# on slow disks. (On PostgreSQL every commit is synchronous: the server turns
# synchronous_commit on for its connections whatever the database's default.)
durability = "full"
# Most registrations committed in one transaction (group commit: one fsync for all of them).
max_commit_batch = 256
# PostgreSQL only: connections in the pool.
pool_size = 8

[metrics]
# Serve the Prometheus endpoint (GET /metrics, and GET /healthz); false turns it off, as
# --no-metrics does.
enabled = true
# Its address.
listen = "127.0.0.1:9464"
[sessions]
# Serve XTT sessions (session handshake 0x21/0x22 and records 0x31) next to identity
# provisioning, on the same TCP port. A device needs a ClientID from provisioning first.
enabled = true
# Also serve sessions over UDP on the same IP address and port as TCP.
udp = true
# What the server does with each record a device sends:
#   "echo"                       send every payload back to its sender (testing, demos)
#   "forward-udp 127.0.0.1:5000" one datagram per payload to a local UDP service, from one
#                                socket per device; what the service sends back to that socket
#                                goes to the device
#   "forward-unix /run/app.sock" one datagram per payload, prefixed with the 16-byte ClientID,
#                                to a local Unix datagram socket (one-way)
app = "echo"
# A session with no authentic record from its device for this long is removed (seconds). The
# device then runs a new session handshake.
idle_timeout_secs = 600
# A session is removed this long after its handshake, however busy (seconds).
max_lifetime_secs = 86400
# Most sessions at once (each idle session costs about 320 bytes); handshakes beyond are refused.
max_sessions = 1000000
# Most live sessions of one device; its handshakes beyond are refused until one ends, so one
# device (or whoever holds its key) cannot fill the table. A new handshake leaves the previous
# session to expire after idle_timeout_secs: allow for a device's handshakes in that time.
max_sessions_per_client = 1024
# Shards of the session table (lock striping); a few per core is plenty.
shards = 32
# Most TCP connections carrying records at once; further ones are closed at once.
max_tcp_connections = 10000
# Of those, the most one client (IPv4 address, IPv6 /64) may hold; its further ones are closed at
# once, so that one source opening connections (each needs only one fresh record of a session it
# holds) cannot take every slot. Devices behind one NAT address share it.
max_tcp_connections_per_client = 1000
# UDP ClientInits answered per source address (IPv6: per /64) and second, twice as many at once;
# more are dropped (the device retransmits). A UDP source address can be spoofed, and the answer
# is six times the ClientInit: this bounds what the server sends to any one address. Raise it for
# many devices behind one NAT address that handshake at the same moment.
udp_client_inits_per_ip = 50
# UDP session flights (the handshake's third message) processed per source address and second,
# twice as many at once; more are dropped (the device retransmits). Each costs a key exchange,
# signatures and a registry lookup. A repeat of a flight already tried is never processed again:
# an identical one that succeeded gets the same answer, any other is dropped.
udp_client_attests_per_ip = 50
"#;

/// Everything configurable; see [`DEFAULT_CONFIG_TOML`] for what each field means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// XTT listen address.
    pub listen: SocketAddr,
    /// Data directory (holds `registry.sqlite`).
    pub data_dir: PathBuf,
    /// Trust-anchor store the DAA groups come from (and provisioned identities go to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchors: Option<PathBuf>,
    /// Registry URL (`sqlite:PATH` or `postgres://…`); `None`: `sqlite:DATA_DIR/registry.sqlite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageUrl>,
    /// Connection and message limits.
    pub limits: Limits,
    /// DAA verification pool and batching.
    pub daa: DaaSettings,
    /// Stateless cookies and replay protection.
    pub cookies: CookieSettings,
    /// Registry durability.
    pub registry: RegistrySettings,
    /// Prometheus endpoint.
    pub metrics: MetricsSettings,
    /// Sessions: on/off, UDP, application, table limits.
    pub sessions: crate::sessions::SessionSettings,
}

/// Per-connection limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Handshakes in progress at once; excess connections are refused immediately.
    pub max_concurrent_handshakes: usize,
    /// Of those, the most one client (IPv4 address, IPv6 /64) may hold at once (0: no cap).
    pub max_handshakes_per_client: u32,
    /// The TCP listener's backlog: connections completed by the kernel and not yet accepted.
    pub listen_backlog: u32,
    /// Per-message read timeout (ms).
    pub read_timeout_ms: u64,
    /// Per-message write timeout (ms).
    pub write_timeout_ms: u64,
    /// Whole-handshake timeout (ms).
    pub handshake_timeout_ms: u64,
    /// Largest message accepted (bytes, header included; at most 750 is meaningful).
    pub max_message_len: usize,
}

/// DAA verification settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaaSettings {
    /// CPU worker threads (0: one per core; at most [`MAX_WORKERS`]).
    pub workers: usize,
    /// Batch verification on/off.
    pub batch: bool,
    /// Most signatures per batch.
    pub batch_max: usize,
    /// Longest a batch that is not full waits for more signatures (µs).
    pub batch_window_us: u64,
}

/// Cookie settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieSettings {
    /// Cookie lifetime (s).
    pub lifetime_secs: u64,
    /// Replay cache capacity (live cookies).
    pub replay_cache_capacity: usize,
    /// Shared cookie key file ([`crate::cookie_keys`]); `None`: a random key per start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// Registry settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// `full` or `normal`; see [`xtt_registry::Durability`].
    pub durability: DurabilitySetting,
    /// Most registrations per transaction.
    pub max_commit_batch: usize,
    /// PostgreSQL connection pool size.
    pub pool_size: u32,
}

/// A storage URL as configured. It may carry a password, so `Debug` and `Display` show it
/// redacted ([`xtt_registry::redact_url`]); [`Self::expose`] gives the real one to the opener.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StorageUrl(String);

impl StorageUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }
    /// The URL with its password, for opening the storage only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StorageUrl({:?})", xtt_registry::redact_url(&self.0))
    }
}

impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&xtt_registry::redact_url(&self.0))
    }
}

/// `durability` in the TOML file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilitySetting {
    /// fsync at every commit.
    #[default]
    Full,
    /// fsync at checkpoints only.
    Normal,
}

impl From<DurabilitySetting> for xtt_registry::Durability {
    fn from(d: DurabilitySetting) -> Self {
        match d {
            DurabilitySetting::Full => xtt_registry::Durability::Full,
            DurabilitySetting::Normal => xtt_registry::Durability::Normal,
        }
    }
}

/// Metrics endpoint settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Whether `/metrics` is served at all (TOML cannot say `listen = None`).
    pub enabled: bool,
    /// Where `/metrics` is served; `None` disables it too.
    pub listen: Option<SocketAddr>,
}

impl MetricsSettings {
    /// The address to serve `/metrics` on, if it is served.
    pub fn address(&self) -> Option<SocketAddr> {
        self.listen.filter(|_| self.enabled)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4444)),
            data_dir: PathBuf::from("xtt-data"),
            anchors: None,
            storage: None,
            limits: Limits::default(),
            daa: DaaSettings::default(),
            cookies: CookieSettings::default(),
            registry: RegistrySettings::default(),
            metrics: MetricsSettings::default(),
            sessions: crate::sessions::SessionSettings::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_handshakes: 1024,
            max_handshakes_per_client: 256,
            listen_backlog: 1024,
            read_timeout_ms: 5000,
            write_timeout_ms: 5000,
            handshake_timeout_ms: 15000,
            max_message_len: xtt_proto::codec::MAX_HANDSHAKE_LEN,
        }
    }
}

impl Default for DaaSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            batch: false,
            batch_max: 32,
            batch_window_us: 5000,
        }
    }
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            lifetime_secs: xtt_proto::cookie::DEFAULT_COOKIE_LIFETIME_SECS,
            replay_cache_capacity: 200_000,
            key_file: None,
        }
    }
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            durability: DurabilitySetting::Full,
            max_commit_batch: 256,
            pool_size: xtt_registry::DEFAULT_POOL_SIZE,
        }
    }
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
        }
    }
}

/// Most CPU worker threads (`daa.workers`): far more than any machine has cores.
pub const MAX_WORKERS: usize = 1024;

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML did not parse or has unknown keys. The parser's message is in this one and
    /// deliberately not the `source()`: `{:#}` would print it twice.
    #[error("invalid configuration file: {0}")]
    Toml(toml::de::Error),
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl From<toml::de::Error> for ConfigError {
    fn from(e: toml::de::Error) -> Self {
        ConfigError::Toml(e)
    }
}

impl ServerConfig {
    /// Parses a TOML configuration (missing keys take their defaults) and checks it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The registry file inside the data directory.
    pub fn registry_path(&self) -> PathBuf {
        self.data_dir.join("registry.sqlite")
    }

    /// The registry URL: `storage`, or the SQLite file in the data directory.
    pub fn storage_url(&self) -> StorageUrl {
        self.storage
            .clone()
            .unwrap_or_else(|| StorageUrl(format!("sqlite:{}", self.registry_path().display())))
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        let l = &self.limits;
        if l.max_concurrent_handshakes == 0 {
            return bad("limits.max_concurrent_handshakes must be at least 1");
        }
        if l.listen_backlog == 0 || l.listen_backlog > 65535 {
            return bad("limits.listen_backlog must be between 1 and 65535");
        }
        if l.read_timeout_ms == 0 || l.write_timeout_ms == 0 || l.handshake_timeout_ms == 0 {
            return bad("limits: timeouts must be positive");
        }
        if l.max_message_len < xtt_proto::codec::MAX_HANDSHAKE_LEN {
            return bad("limits.max_message_len must be at least 750 (Identity_ClientAttest)");
        }
        if l.max_message_len > usize::from(u16::MAX) {
            return bad("limits.max_message_len must be at most 65535");
        }
        // Every worker is an OS thread started at once: a mistyped count would try to start
        // thousands and abort the process instead of failing here.
        if self.daa.workers > MAX_WORKERS {
            return Err(ConfigError::Invalid(format!(
                "daa.workers (--workers) is {}; it must be between 1 and {MAX_WORKERS}, \
                 or 0 for one per core",
                self.daa.workers
            )));
        }
        if self.daa.batch_max == 0 || self.daa.batch_max > 1024 {
            return bad("daa.batch_max must be in 1..=1024");
        }
        if self.daa.batch_window_us > 1_000_000 {
            return bad("daa.batch_window_us must be at most 1000000");
        }
        if self.cookies.lifetime_secs == 0 || self.cookies.replay_cache_capacity == 0 {
            return bad("cookies: lifetime_secs and replay_cache_capacity must be positive");
        }
        if self.registry.max_commit_batch == 0 {
            return bad("registry.max_commit_batch must be at least 1");
        }
        self.sessions.validate().map_err(ConfigError::Invalid)?;
        if self.registry.pool_size == 0 {
            return bad("registry.pool_size must be at least 1");
        }
        if let Some(url) = &self.storage {
            let u = url.expose().trim();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return Err(ConfigError::Invalid(format!(
                    "storage {url} is not sqlite:PATH or postgres://USER@HOST/DATABASE"
                )));
            }
            // The server promises that an identity a device was told of survives a restart.
            if u == "sqlite::memory:" {
                return bad(
                    "storage sqlite::memory: loses every registration when the server stops; \
                     give a file (sqlite:PATH) or PostgreSQL",
                );
            }
        }
        Ok(())
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.read_timeout_ms)
    }
    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.write_timeout_ms)
    }
    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.handshake_timeout_ms)
    }
    pub(crate) fn worker_threads(&self) -> usize {
        if self.daa.workers > 0 {
            self.daa.workers
        } else {
            std::thread::available_parallelism().map_or(2, usize::from)
        }
    }
}

/// The server's secrets, loaded by the caller (files, an HSM, a test fixture).
pub struct ServerKeys {
    /// The 169-byte server certificate sent to devices.
    pub certificate: ServerCertificate,
    /// The private key of the certificate.
    pub signing_key: LongtermKeyPair,
    /// Secret for the stateless cookies. Servers sharing it accept each other's cookies.
    pub cookie_secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_file_parses_to_the_defaults() {
        assert_eq!(
            ServerConfig::from_toml(DEFAULT_CONFIG_TOML).unwrap(),
            ServerConfig::default()
        );
    }

    #[test]
    fn the_file_can_turn_metrics_off() {
        assert!(ServerConfig::default().metrics.address().is_some());
        let c = ServerConfig::from_toml("[metrics]\nenabled = false\n").unwrap();
        assert_eq!(c.metrics.address(), None);
        // Only the section, or the address commented out: the default address, still on.
        let c = ServerConfig::from_toml("[metrics]\n").unwrap();
        assert_eq!(c.metrics.address(), MetricsSettings::default().listen);
    }

    #[test]
    fn an_anchor_store_is_a_top_level_path() {
        let c = ServerConfig::from_toml("anchors = \"/var/lib/xtt/anchors.db\"\n").unwrap();
        assert_eq!(c.anchors, Some(PathBuf::from("/var/lib/xtt/anchors.db")));
        assert_eq!(ServerConfig::default().anchors, None);
    }

    #[test]
    fn missing_keys_take_defaults_and_unknown_keys_are_refused() {
        let c =
            ServerConfig::from_toml("listen = \"0.0.0.0:5000\"\n[daa]\nbatch = true\n").unwrap();
        assert_eq!(c.listen.port(), 5000);
        assert!(c.daa.batch);
        assert_eq!(c.limits, Limits::default());
        assert!(ServerConfig::from_toml("lisen = \"0.0.0.0:5000\"").is_err());
        assert!(ServerConfig::from_toml("[limits]\nmax_message_len = 100\n").is_err());
    }

    #[test]
    fn worker_count_is_bounded() {
        for ok in [0, 1, MAX_WORKERS] {
            let c = ServerConfig::from_toml(&format!("[daa]\nworkers = {ok}\n")).unwrap();
            assert_eq!(c.daa.workers, ok);
        }
        let e = ServerConfig::from_toml("[daa]\nworkers = 1025\n").unwrap_err();
        assert!(
            e.to_string().contains("daa.workers (--workers) is 1025"),
            "{e}"
        );
        // The command line sets the field and validates, as the TOML does.
        let mut c = ServerConfig::default();
        c.daa.workers = 100_000_000;
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("between 1 and 1024"), "{e}");
    }

    #[test]
    fn storage_defaults_to_the_sqlite_file_and_urls_are_redacted() {
        let c = ServerConfig::from_toml("data_dir = \"/srv/xtt\"\n").unwrap();
        assert_eq!(c.storage_url().expose(), "sqlite:/srv/xtt/registry.sqlite");
        let c = ServerConfig::from_toml(
            "storage = \"postgres://xtt:hunter2@db.example/xtt?sslmode=require\"\n",
        )
        .unwrap();
        let url = c.storage_url();
        assert_eq!(
            url.expose(),
            "postgres://xtt:hunter2@db.example/xtt?sslmode=require"
        );
        for shown in [format!("{url}"), format!("{url:?}"), format!("{c:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("xtt:***@db.example"), "{shown}");
        }
        let e = ServerConfig::from_toml("storage = \"mysql://root:pw@h/x\"\n").unwrap_err();
        assert!(e.to_string().contains("not sqlite:PATH"), "{e}");
        assert!(!e.to_string().contains(":pw@"), "{e}");
        let e = ServerConfig::from_toml("storage = \"sqlite::memory:\"\n").unwrap_err();
        assert!(e.to_string().contains("loses every registration"), "{e}");
    }
}
