//! `xtt server`: the concurrent XTT identity-provisioning server (crate xtt-server) with its
//! embedded SQLite registry, configured by a commented TOML file and flags, reading the key,
//! certificate and DAA group files that `xtt` and the C tools write.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use xtt_files::{certs, daa, keypair};
use xtt_registry::Registry;
use xtt_server::config::ConfigError;
use xtt_server::{ServerConfig, ServerKeys, XttServer, DEFAULT_CONFIG_TOML};
use zeroize::Zeroizing;

/// The `[files]` section `xtt server` adds to xtt-server's configuration file.
pub(crate) const FILES_SECTION_TOML: &str = r#"
[files]
# The server certificate (169 bytes, `xtt cert server`) and the key pair it certifies (DER
# ECPrivateKey, 0600). Relative paths are relative to the working directory.
server_certificate = "server_cert.bin"
server_keypair = "server_keys.asn1.bin"
# DAA groups to add to the registry at start: directories holding daa_gpk.bin and basename.bin
# (`xtt group create` makes them). Groups added earlier stay in the registry.
groups = []
"#;

/// The long help of `xtt server` (set on its subcommand in `cli.rs`).
pub(crate) const LONG_ABOUT: &str = "\
                  Run the XTT identity-provisioning server. Devices connect over TCP, prove \
                  membership of a DAA group, and are assigned a ClientID that is stored, with \
                  their long-term key, in the registry (DATA_DIR/registry.sqlite) before they \
                  are told. Handshakes run concurrently; DAA verification runs on a bounded \
                  CPU pool; every read, write and handshake has a timeout; messages are size \
                  limited; beyond the cap on concurrent handshakes new connections are refused \
                  at once. Prometheus metrics are served at http://METRICS/metrics. SIGINT or \
                  SIGTERM stops it gracefully (handshakes in progress finish).\n\n\
                  Settings come from the defaults, then the TOML file (--config; \
                  `xtt server --print-config` prints a commented one), then flags. The C \
                  tool's flags work: -p PORT, -k server key pair, -c server certificate, \
                  -d group public key, -b basename.\n\n\
                  Sessions (on by default): provisioned devices run a session handshake on the \
                  same port (TCP, and UDP on the same port) and then exchange records; the \
                  server echoes them, or forwards them to a local UDP or Unix socket \
                  (--forward-udp, --forward-unix; [sessions] in the file).";

/// Run the XTT server.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
        xtt server --group acme-sensors                     # 127.0.0.1:4444, ./xtt-data\n  \
        xtt server --print-config > server.toml && xtt server --config server.toml\n  \
        xtt server -p 4444 -k server_keys.asn1.bin -c server_cert.bin -d daa_gpk.bin -b basename.bin\n  \
        xtt server --listen 0.0.0.0:4444 --data-dir /var/lib/xtt --metrics 127.0.0.1:9464\n  \
        xtt server --storage 'postgres://xtt@db.example/xtt?sslmode=verify-full&sslrootcert=ca.pem'\n  \
        xtt server --group acme-sensors --forward-udp 127.0.0.1:5000   # records to a local app\n  \
        xtt server --group acme-sensors --no-sessions                   # identity only\n  \
        xtt server --new-session-key sessions.key           # once per deployment, then on each node:\n  \
        xtt server --storage postgres://… --session-key sessions.key --handover-listen 10.0.0.5:4445\n  \
        curl -s http://127.0.0.1:9464/metrics | grep xtt_")]
pub(crate) struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the commented default configuration file and exit.
    #[arg(long)]
    print_config: bool,
    /// Address to listen on [default: 127.0.0.1:4444].
    #[arg(short = 'l', long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Port to listen on (keeps the configured IP address).
    #[arg(short = 'p', long, conflicts_with = "listen")]
    port: Option<u16>,
    /// Directory for the registry [default: xtt-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Registry URL: sqlite:PATH or postgres://USER@HOST/DB[?sslmode=verify-full&sslrootcert=CA.pem]
    /// [default: sqlite:DATA_DIR/registry.sqlite]. Several servers on one PostgreSQL database
    /// form one deployment. Also read from XTT_STORAGE (keeps a password off the command line).
    #[arg(long, value_name = "URL", env = "XTT_STORAGE", hide_env_values = true)]
    storage: Option<String>,
    /// Server certificate [default: server_cert.bin].
    #[arg(short = 'c', long = "servercert", value_name = "FILE")]
    servercert: Option<PathBuf>,
    /// Server key pair [default: server_keys.asn1.bin].
    #[arg(short = 'k', long = "skeypair", value_name = "FILE")]
    skeypair: Option<PathBuf>,
    /// A DAA group directory (daa_gpk.bin, basename.bin) to add to the registry; repeatable.
    #[arg(short = 'g', long = "group", value_name = "DIR")]
    groups: Vec<PathBuf>,
    /// A group public key file to add (with --basename), as the C server takes it.
    #[arg(
        short = 'd',
        long = "daagpk",
        value_name = "FILE",
        requires = "basename"
    )]
    daagpk: Option<PathBuf>,
    /// The basename file for --daagpk.
    #[arg(
        short = 'b',
        long = "basename",
        value_name = "FILE",
        requires = "daagpk"
    )]
    basename: Option<PathBuf>,
    /// Prometheus endpoint address.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_metrics")]
    metrics: Option<SocketAddr>,
    /// Serve no metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Cap on concurrent handshakes.
    #[arg(long, value_name = "N")]
    max_handshakes: Option<usize>,
    /// Threads for DAA verification and other CPU work: 1 to 1024, or 0 for one per core.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Verify DAA signatures in batches (cheaper per signature under load).
    #[arg(long)]
    batch: bool,
    /// Trust-anchor store: accept the DAA groups it holds (valid now; rotations and new groups
    /// are seen while running) and record provisioned devices in it. --group files are
    /// imported into it.
    #[arg(long, value_name = "STORE", visible_alias = "store")]
    anchors: Option<PathBuf>,
    /// Serve signed updates to devices over XTT sessions (TCP and UDP): the newest NAME.suit
    /// (with its image NAME.bin) in DIR.
    #[arg(long, value_name = "DIR")]
    updates: Option<PathBuf>,
    #[command(flatten)]
    sessions: crate::server_sessions::SessionFlags,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FilesSection {
    server_certificate: Option<PathBuf>,
    server_keypair: Option<PathBuf>,
    groups: Vec<PathBuf>,
}

/// Everything `xtt server` runs with, after defaults, file and flags.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) config: ServerConfig,
    pub(crate) server_certificate: PathBuf,
    pub(crate) server_keypair: PathBuf,
    /// (group public key file, basename file) pairs.
    pub(crate) groups: Vec<(PathBuf, PathBuf)>,
    /// Directory of signed updates to serve over sessions.
    pub(crate) updates: Option<PathBuf>,
}

/// Splits our `[files]` table off and parses the rest as xtt-server's configuration. Both are
/// deserialized from the parsed original document, so an error points at its line and column
/// in the file as written (re-serialising the rest would number the lines of another text).
pub(crate) fn parse_config_file(path: &Path) -> anyhow::Result<(ServerConfig, FilesSection)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the configuration file", path.display()))?;
    // Errors render their position against the text they carry.
    let located = |mut e: toml::de::Error| {
        e.set_input(Some(&text));
        e
    };
    let mut doc = toml::de::DeTable::parse(&text)
        .map_err(located)
        .with_context(|| format!("{}: not valid TOML", path.display()))?;
    let files = match doc.get_mut().remove("files") {
        Some(v) => FilesSection::deserialize(toml::de::ValueDeserializer::from(v))
            .map_err(located)
            .with_context(|| format!("{}: in [files]", path.display()))?,
        None => FilesSection::default(),
    };
    let config = ServerConfig::deserialize(toml::de::Deserializer::from(doc))
        .map_err(|e| ConfigError::from(located(e)))
        .and_then(|c| c.validate().map(|()| c))
        .with_context(|| format!("{}: invalid server configuration", path.display()))?;
    Ok((config, files))
}

impl ServerArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let (mut config, files) = match &self.config {
            Some(p) => parse_config_file(p)?,
            None => (ServerConfig::default(), FilesSection::default()),
        };
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(p) = self.port {
            config.listen.set_port(p);
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(url) = &self.storage {
            config.storage = Some(xtt_server::StorageUrl::new(url.clone()));
        }
        if let Some(m) = self.metrics {
            config.metrics.enabled = true;
            config.metrics.listen = Some(m);
        }
        if self.no_metrics {
            config.metrics.enabled = false;
        }
        if let Some(n) = self.max_handshakes {
            config.limits.max_concurrent_handshakes = n;
        }
        if let Some(n) = self.workers {
            config.daa.workers = n;
        }
        if self.batch {
            config.daa.batch = true;
        }
        if let Some(a) = &self.anchors {
            config.anchors = Some(a.clone());
        }
        self.sessions.apply(&mut config.sessions)?;
        config.validate().context("invalid server settings")?;
        let mut groups: Vec<(PathBuf, PathBuf)> = files
            .groups
            .iter()
            .chain(&self.groups)
            .map(|d| (d.join("daa_gpk.bin"), d.join("basename.bin")))
            .collect();
        if let (Some(g), Some(b)) = (&self.daagpk, &self.basename) {
            groups.push((g.clone(), b.clone()));
        }
        Ok(Settings {
            config,
            server_certificate: self
                .servercert
                .clone()
                .or(files.server_certificate)
                .unwrap_or_else(|| "server_cert.bin".into()),
            server_keypair: self
                .skeypair
                .clone()
                .or(files.server_keypair)
                .unwrap_or_else(|| "server_keys.asn1.bin".into()),
            groups,
            updates: self.updates.clone(),
        })
    }
}

/// Loads the server's key and certificate and checks that they belong together.
pub(crate) fn load_keys(cert_path: &Path, key_path: &Path) -> anyhow::Result<ServerKeys> {
    let certificate = certs::read_server(cert_path)?;
    let signing_key = keypair::read(key_path)?;
    if certificate.public_key_bytes() != *signing_key.public_key().as_bytes() {
        bail!(
            "{}: this key pair is not the one {} certifies",
            key_path.display(),
            cert_path.display()
        );
    }
    // Cookies only need to outlive one handshake, so a fresh secret per start is enough.
    let mut cookie_secret = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(cookie_secret.as_mut_slice());
    Ok(ServerKeys {
        certificate,
        signing_key,
        cookie_secret,
    })
}

/// Adds each group to the registry (validated); returns how many were new.
pub(crate) fn add_groups(
    registry: &dyn Registry,
    groups: &[(PathBuf, PathBuf)],
) -> anyhow::Result<usize> {
    let mut added = 0;
    for (gpk_path, basename_path) in groups {
        let gpk = daa::read_gpk(gpk_path)?;
        let basename = daa::read_basename(basename_path)?;
        let (gid, new) = xtt_server::add_group(registry, &gpk.to_bytes(), &basename)
            .with_context(|| format!("adding the group in {}", gpk_path.display()))?;
        tracing::info!(group_id = %hex::encode(gid.0), new, "DAA group");
        added += usize::from(new);
    }
    Ok(added)
}

pub(crate) fn run(args: ServerArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{DEFAULT_CONFIG_TOML}{FILES_SECTION_TOML}");
        return Ok(());
    }
    if args.sessions.create_key_if_asked()? {
        return Ok(());
    }
    let settings = args.settings()?;
    let keys = load_keys(&settings.server_certificate, &settings.server_keypair)?;
    // Opened (connected, migrated) before the runtime starts, and dropped after it stops: the
    // PostgreSQL client blocks, and must not be used or dropped on an async worker thread.
    let storage = settings.config.storage_url();
    let registry = xtt_server::open_storage(&settings.config)
        .with_context(|| format!("opening the registry {storage}"))?;
    // With an anchor store the groups are anchors (loose files are imported into it).
    let added = match &settings.config.anchors {
        Some(store) => crate::server_anchors::import_groups(store, &settings.groups)?,
        None => add_groups(&*registry, &settings.groups)?,
    };
    let identities = registry.identity_count().unwrap_or(0);
    let result = crate::block_on(serve(
        settings,
        keys,
        registry.clone(),
        added,
        identities,
        args.sessions,
    ));
    drop(registry);
    result
}

async fn serve(
    settings: Settings,
    keys: ServerKeys,
    registry: Arc<dyn Registry>,
    added: usize,
    identities: u64,
    sessions: crate::server_sessions::SessionFlags,
) -> anyhow::Result<()> {
    let config = settings.config;
    let registry_path = config.storage_url();
    let anchors = config.anchors.clone();
    let session_settings = config.sessions.clone();
    let mut server = XttServer::bind(config, keys, registry).await?;
    // --updates makes the update server the session application; the other session settings
    // (table, UDP, limits) still apply.
    let (update_app, updates) = match settings.updates {
        Some(dir) => {
            let (app, line) = crate::server_anchors::prepare_updates(dir).await?;
            (Some(app), Some(line))
        }
        None => (None, None),
    };
    // Shared sessions live in the same database as the registry.
    let shared = sessions.shared(registry_path.expose()).await?;
    let sessions_line =
        crate::server_sessions::enable(&mut server, &session_settings, update_app, shared).await?;
    let handle = server.handle();
    // One line tools and tests can parse; flushed before serving.
    println!("xtt server listening on {}", server.local_addr()?);
    if let Some(m) = server.metrics_addr() {
        println!("metrics on http://{m}/metrics");
    }
    println!(
        "registry {} ({} group(s), {} new; {} identities)",
        registry_path,
        handle.group_count(),
        added,
        identities
    );
    if let Some(a) = anchors {
        println!(
            "anchors {} ({} DAA group(s) accepted)",
            a.display(),
            handle.group_count()
        );
    }
    if let Some(u) = updates {
        println!("{u}");
    }
    println!("{sessions_line}");
    use std::io::Write;
    std::io::stdout().flush()?;
    server.run(xtt_server::shutdown_signal()).await?;
    println!("stopped");
    Ok(())
}
