//! The `tte` subcommands of the project CLI (`xtt tte …`). The binary wires them with
//! `Tte { #[command(subcommand)] cmd: tte_server::cli::TteCommand }` and
//! `tte_server::cli::run(cmd).await`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tte::bulk::{BoxLabel, UrnRange};
use tte::led::{self, LedFrame};
use tte::senml::{Pack, Record};
use tte::{ContUrl, Key256, Otp};

use crate::controller::Controller;
use crate::device::{self, DeviceClient, DeviceSecrets, Enrollment};
use crate::store::sqlite::{SqliteControllerStore, SqliteTaStore};
use crate::ta::TransferAgent;
use crate::{bulk, http, manufacture, qr};

const TA_EXAMPLES: &str = "\
Examples:
  # The token from the environment (not argv, which `ps` shows), at least 16 characters:
  export TTE_MANUFACTURER_TOKEN=\"$(head -c 18 /dev/urandom | base64)\"
  xtt tte transfer-agent serve --listen 127.0.0.1:8080 --db ta.sqlite --otp-key ta-otp.key
  # Then, from the manufacturing line (same token):
  xtt tte manufacture --ta http://127.0.0.1:8080 --count 10 --out batch-1";

const CONTROLLER_EXAMPLES: &str = "\
Examples:
  export TTE_OPERATOR_TOKEN=\"$(head -c 18 /dev/urandom | base64)\"
  xtt tte controller serve --listen 127.0.0.1:8081 --db controller.sqlite \\
      --allow-origin http://127.0.0.1:8080
  # The devices it holds (operator view):
  curl -H \"Authorization: Bearer $TTE_OPERATOR_TOKEN\" http://127.0.0.1:8081/devices";

/// Transitive Trust Enrollment: Transfer Agent, Controller, manufacturer and device tools.
#[derive(Debug, Subcommand)]
pub enum TteCommand {
    /// Run the manufacturer's Transfer Agent.
    #[command(subcommand, after_long_help = TA_EXAMPLES)]
    TransferAgent(TaCommand),
    /// Run a Controller (the system devices report to).
    #[command(subcommand, after_long_help = CONTROLLER_EXAMPLES)]
    Controller(ControllerCommand),
    /// Make N devices: secrets, Transfer Agent registration, QR codes (PNG + SVG).
    #[command(
        long_about = "Make N devices. Each gets a fresh DevURN (random locally administered \
        MAC), OTP, TaSecret and DevSecret; it is registered with the Transfer Agent, and its \
        secrets file (<urn>.json, mode 0600, to flash into the device) and QR code (<urn>.png, \
        <urn>.svg, error-correction level H; also 0600, since they carry the OTP and DevSecret \
        until printed) are written to --out.\n\nExample:\n  \
        xtt tte manufacture --ta https://ta.example --count 100 --out ./batch-7"
    )]
    Manufacture(ManufactureArgs),
    /// Act as a device: fetch the Controller, report readings.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// LED variant (draft §8.1): encode a device's frame as NRZI blinks, or decode blinks.
    #[command(subcommand)]
    Led(LedCommand),
    /// Bulk enrollment (draft §8.2): one label, one bind for a box of devices.
    #[command(subcommand)]
    Bulk(BulkCommand),
}

/// `transfer-agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum TaCommand {
    /// Serve the Transfer Agent over HTTP (put a TLS terminator in front in production).
    #[command(
        long_about = "Serve the Transfer Agent. Production needs HTTPS in front of it: the \
        setup page handles one-time passwords and device secrets.\n\nExample:\n  \
        TTE_MANUFACTURER_TOKEN=… xtt tte transfer-agent serve --listen 127.0.0.1:8443 --db ta.sqlite"
    )]
    Serve(TaServeArgs),
}

/// Options of `transfer-agent serve`.
#[derive(Debug, Args)]
pub struct TaServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// SQLite database file.
    #[arg(long, default_value = "tte-ta.sqlite")]
    pub db: PathBuf,
    /// File holding the OTP-hashing key (created, mode 0600, if missing while the database
    /// is still empty). Keep it apart from the database: with both, an attacker could test OTP
    /// guesses offline. The database records which key it was used with, and the Transfer
    /// Agent refuses to start with another key, or without the file once devices exist.
    #[arg(long, default_value = "tte-ta-otp.key")]
    pub otp_key: PathBuf,
    /// Bearer token the manufacturer presents to register devices, at least 16 characters.
    /// Prefer --manufacturer-token-file or the environment variable: a token given on the
    /// command line can be read by other local users (e.g. in `ps`).
    #[arg(
        long,
        env = "TTE_MANUFACTURER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        required_unless_present = "manufacturer_token_file"
    )]
    pub manufacturer_token: Option<String>,
    /// Read the manufacturer token from this file instead (one trailing newline is dropped;
    /// `<(…)` works too): it stays off the command line and out of the environment.
    #[arg(long, value_name = "FILE", conflicts_with = "manufacturer_token")]
    pub manufacturer_token_file: Option<PathBuf>,
    /// Trust-anchor store: record each registered TaSecret in it (a tte-ta-secret anchor named
    /// by the DevURN) and encrypt devices' answers under the TaSecret read from it.
    #[arg(long, value_name = "STORE", visible_alias = "store")]
    pub anchors: Option<PathBuf>,
    /// A reverse proxy in front of the Transfer Agent (e.g. the TLS terminator production
    /// needs); repeatable. It is not held to the per-address connection cap. Keep its upstream
    /// keep-alive under 10 s: an idle connection is closed then.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// `controller` subcommands.
#[derive(Debug, Subcommand)]
pub enum ControllerCommand {
    /// Serve a Controller over HTTP.
    #[command(long_about = "Serve a Controller.\n\nExample:\n  \
        TTE_OPERATOR_TOKEN=… xtt tte controller serve --listen 0.0.0.0:8081 --db controller.sqlite \\\n    \
        --allow-origin https://ta.example")]
    Serve(ControllerServeArgs),
}

/// Options of `controller serve`.
#[derive(Debug, Args)]
pub struct ControllerServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// SQLite database file.
    #[arg(long, default_value = "tte-controller.sqlite")]
    pub db: PathBuf,
    /// Bearer token for the operator views (`/devices`), at least 16 characters.
    /// Prefer --operator-token-file or the environment variable: a token given on the
    /// command line can be read by other local users (e.g. in `ps`).
    #[arg(
        long,
        env = "TTE_OPERATOR_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        required_unless_present = "operator_token_file"
    )]
    pub operator_token: Option<String>,
    /// Read the operator token from this file instead (one trailing newline is dropped;
    /// `<(…)` works too): it stays off the command line and out of the environment.
    #[arg(long, value_name = "FILE", conflicts_with = "operator_token")]
    pub operator_token_file: Option<PathBuf>,
    /// Page origins (Transfer Agents) allowed to add devices; repeatable. Default (or `*`): any.
    #[arg(long = "allow-origin")]
    pub allow_origin: Vec<String>,
    /// Trust-anchor store: record each DevSecret received from an introducer in it (a
    /// tte-dev-secret anchor named by the DevURN, "delivered by TTE") and decrypt sensor
    /// updates with the DevSecret read from it.
    #[arg(long, value_name = "STORE", visible_alias = "store")]
    pub anchors: Option<PathBuf>,
    /// A reverse proxy in front of the Controller (e.g. a TLS terminator); repeatable. Its
    /// X-Forwarded-For names the client that rate limits apply to, and it is not held to the
    /// per-address connection cap. Keep its upstream keep-alive under 10 s: an idle
    /// connection is closed then.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most devices held at once; adding a new one beyond gets 503 until some are removed.
    #[arg(long, value_name = "N", default_value_t = crate::store::ControllerLimits::default().max_devices,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_devices: u64,
    /// Readings kept per device (the newest; older ones are deleted as new ones arrive).
    #[arg(long, value_name = "N", default_value_t = crate::store::ControllerLimits::default().max_readings_per_device,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_readings_per_device: u64,
    /// Device adds per second from one client (IPv4 address, IPv6 /64).
    #[arg(long, value_name = "PER_SEC", default_value_t = crate::controller::ControllerRates::default().adds.per_client_rate)]
    pub add_rate: f64,
    /// Device adds one client may make at once (a whole box of devices is added in one go).
    #[arg(long, value_name = "N", default_value_t = crate::controller::ControllerRates::default().adds.per_client_burst)]
    pub add_burst: f64,
    /// Sensor updates per second from one client (devices behind one NAT share it).
    #[arg(long, value_name = "PER_SEC", default_value_t = crate::controller::ControllerRates::default().updates.per_client_rate)]
    pub update_rate: f64,
    /// Sensor updates one client may send at once.
    #[arg(long, value_name = "N", default_value_t = crate::controller::ControllerRates::default().updates.per_client_burst)]
    pub update_burst: f64,
}

/// The manufacturer's bearer token of the commands that register devices with a Transfer Agent.
#[derive(Debug, Args)]
pub struct ManufacturerToken {
    /// Manufacturer bearer token: the Transfer Agent's --manufacturer-token (at least 16
    /// characters). Prefer --token-file or the environment variable: a token given on the
    /// command line can be read by other local users (e.g. in `ps`).
    #[arg(
        long,
        env = "TTE_MANUFACTURER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        required_unless_present = "token_file"
    )]
    pub token: Option<String>,
    /// Read the manufacturer token from this file instead (one trailing newline is dropped;
    /// `<(…)` works too): it stays off the command line and out of the environment.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

impl ManufacturerToken {
    /// The token, from the option, its environment variable or the file.
    fn resolve(&self) -> anyhow::Result<zeroize::Zeroizing<String>> {
        bearer_token(
            self.token.as_deref(),
            self.token_file.as_deref(),
            "manufacturer token",
        )
    }
}

/// Options of `manufacture`.
#[derive(Debug, Args)]
pub struct ManufactureArgs {
    /// Transfer Agent base URL for registration.
    #[arg(long, env = "TTE_TA_URL")]
    pub ta: String,
    /// Transfer Agent base URL printed in QR codes (default: --ta).
    #[arg(long)]
    pub qr_base: Option<String>,
    #[command(flatten)]
    pub token: ManufacturerToken,
    /// How many devices to make.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Output directory (created if missing).
    #[arg(long, default_value = "devices", visible_alias = "output")]
    pub out: PathBuf,
    /// Also draw each QR code in the terminal.
    #[arg(long)]
    pub print_qr: bool,
    #[command(flatten)]
    /// Extra certificate authorities for an https:// Transfer Agent.
    pub trust: CaFiles,
    /// Enroll each device into this DAA group (a directory made by `xtt group create`) and put
    /// its membership into its secrets file, so it can provision with an xtt:// Controller.
    #[arg(long, value_name = "DIR")]
    pub daa_group: Option<PathBuf>,
    /// Put this XTT root certificate (root_cert.bin) into each secrets file (with --daa-group).
    #[arg(long, value_name = "FILE", requires = "daa_group")]
    pub xtt_root: Option<PathBuf>,
}

/// Certificate authorities trusted for `https://` Transfer Agents and Controllers, besides the
/// platform's.
#[derive(Debug, Args, Clone, Default)]
pub struct CaFiles {
    /// Also trust the CA certificate(s) in this PEM file (repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
}

impl CaFiles {
    /// The platform's roots plus the files'.
    pub fn roots(&self) -> anyhow::Result<xtt_tls::TrustRoots> {
        let mut roots = xtt_tls::TrustRoots::platform();
        for f in &self.ca_files {
            roots.add_pem_file(f)?;
        }
        Ok(roots)
    }

    /// An HTTP client with these roots.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        Ok(self.roots()?.client(std::time::Duration::from_secs(30))?)
    }
}

/// `device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// First boot: ask the Transfer Agent for the Controller and decrypt the answer.
    #[command(
        long_about = "Ask the Transfer Agent which Controller this device belongs to. The \
        answer is a JWE under TaSecret; it is authenticated and decrypted here. An xtt://host:port \
        Controller means XTT identity provisioning takes over at once: the device proves its DAA \
        group membership (from its secrets file, or --daa-member), checks the server against its \
        XTT root (secrets file, or --xtt-root), and writes the identity it receives to --xtt-dir \
        in the C client's layout (client_id.txt, longterm_priv.bin 0600, longterm_cert.bin).\n\n\
        Examples:\n  \
        xtt tte device fetch --secrets devices/urn_dev_mac_02a1b2c3d4e5.json\n  \
        xtt tte device fetch --secrets dev.json --xtt-dir dev.xtt --xtt-root root_cert.bin"
    )]
    Fetch(FetchArgs),
    /// Fetch the Controller, then send one SenML reading encrypted under DevSecret.
    #[command(
        long_about = "Send a sensor reading. Either --senml with a whole SenML JSON pack, or \
        --name/--value/--unit for one record.\n\nExample:\n  \
        xtt tte device report --secrets dev.json --name temp --value 21.5 --unit Cel"
    )]
    Report(ReportArgs),
}

/// Which device.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The device's secrets file (written by `manufacture`).
    #[arg(long)]
    pub secrets: PathBuf,
    #[command(flatten)]
    /// Extra certificate authorities for https:// services.
    pub trust: CaFiles,
}

/// Options of `device fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    /// Which device.
    pub device: DeviceArgs,
    /// For an xtt:// Controller: where the XTT identity goes (default: the secrets file's path
    /// with the extension `.xtt`).
    #[arg(long, value_name = "DIR", visible_aliases = ["client-dir", "dir"])]
    pub xtt_dir: Option<PathBuf>,
    /// For an xtt:// Controller: a DAA member directory (as `xtt group enroll` writes it) to
    /// use instead of the membership in the secrets file.
    #[arg(long, value_name = "DIR")]
    pub daa_member: Option<PathBuf>,
    /// For an xtt:// Controller: the XTT root certificate (root_cert.bin) to check the server
    /// against, instead of the one in the secrets file.
    #[arg(long, value_name = "FILE")]
    pub xtt_root: Option<PathBuf>,
}

/// Options of `device report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    /// Which device.
    pub device: DeviceArgs,
    /// A whole SenML JSON pack.
    #[arg(long, conflicts_with_all = ["name", "value"])]
    pub senml: Option<String>,
    /// Record name (the DevURN is used as base name).
    #[arg(long, default_value = "temp")]
    pub name: String,
    /// Numeric value.
    #[arg(long, allow_negative_numbers = true)]
    pub value: Option<f64>,
    /// Unit (SenML units, e.g. Cel, %RH).
    #[arg(long)]
    pub unit: Option<String>,
    /// Replay counter (default: microseconds since the epoch).
    #[arg(long)]
    pub seq: Option<u64>,
}

/// `led` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedCommand {
    /// Print a device's LED frame as NRZI levels with timing.
    #[command(
        long_about = "Print the LED bit sequence of a device: frame bytes, bits, and one line \
        per bit period with its start time and the LED level (NRZI: a 1 toggles the LED).\n\n\
        Example:\n  xtt tte led encode --secrets dev.json --ta-urn urn:tte:ta.example --bps 15"
    )]
    Encode(LedEncodeArgs),
    /// Decode NRZI LED levels (a string of 0/1, one per bit period) into the frame's fields.
    Decode(LedDecodeArgs),
}

/// Options of `led encode`.
#[derive(Debug, Args)]
pub struct LedEncodeArgs {
    /// The device's secrets file.
    #[arg(long)]
    pub secrets: PathBuf,
    /// URN naming the Transfer Agent.
    #[arg(long)]
    pub ta_urn: String,
    /// Bit rate.
    #[arg(long, default_value_t = led::DEFAULT_BPS, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub bps: u32,
    /// Print only the level string (no timing table).
    #[arg(long)]
    pub levels_only: bool,
}

/// Options of `led decode`.
#[derive(Debug, Args)]
pub struct LedDecodeArgs {
    /// LED levels, `1` on / `0` off, one per bit period (whitespace ignored). They carry the
    /// device's OTP and DevSecret, and a command line can be read by other local users (`ps`):
    /// prefer --levels-file.
    #[arg(required_unless_present = "levels_file")]
    pub levels: Option<String>,
    /// Read the levels from this file (`-`: standard input) instead.
    #[arg(long, value_name = "FILE", conflicts_with = "levels")]
    pub levels_file: Option<PathBuf>,
}

/// `bulk` subcommands.
#[derive(Debug, Subcommand)]
pub enum BulkCommand {
    /// Manufacturer: make a box of devices with one label.
    #[command(
        long_about = "Make a box: every device in the DevURN range gets an OTP and DevSecret \
        derived (HKDF) from the box's two master secrets, is registered with the Transfer Agent, \
        and gets a secrets file; the box label is written as box-label.png/.svg/.txt.\n\n\
        Example:\n  xtt tte bulk create --ta https://ta.example --prefix urn:dev:mac:90a2da00 \\\n    \
        --first 1a00 --count 16 --width 4 --out ./box-1"
    )]
    Create(BulkCreateArgs),
    /// Introducer: bind a whole box to a Controller and give it every DevSecret.
    #[command(
        long_about = "Bind a whole box to a Controller at the Transfer Agent, then give the \
        Controller every device's DevSecret. A run that stopped part-way (e.g. the Controller \
        answered 503 because it holds as many devices as it may) is finished by running the \
        same command again with the same --conturl once the cause is fixed."
    )]
    Bind(BulkBindArgs),
}

/// Options of `bulk create`.
#[derive(Debug, Args)]
pub struct BulkCreateArgs {
    /// Transfer Agent base URL.
    #[arg(long, env = "TTE_TA_URL")]
    pub ta: String,
    /// Transfer Agent base URL printed on the label (default: --ta).
    #[arg(long)]
    pub qr_base: Option<String>,
    #[command(flatten)]
    pub token: ManufacturerToken,
    /// DevURN text before the counter.
    #[arg(long)]
    pub prefix: String,
    /// First counter value (hex).
    #[arg(long, value_parser = parse_hex)]
    pub first: u64,
    /// Devices in the box.
    #[arg(long)]
    pub count: u32,
    /// Hex digits of the counter.
    #[arg(long, default_value_t = 4)]
    pub width: u8,
    /// Output directory. The label is written there before any device is registered, and
    /// each device's secrets file before its registration: if a run stops half-way, the same
    /// command with the same directory finishes the box with the same label.
    #[arg(long, default_value = "box", visible_alias = "output")]
    pub out: PathBuf,
    #[command(flatten)]
    /// Extra certificate authorities for an https:// Transfer Agent.
    pub trust: CaFiles,
}

fn parse_hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| e.to_string())
}

/// Options of `bulk bind`.
#[derive(Debug, Args)]
pub struct BulkBindArgs {
    /// The box label's URL (scan it). It carries the box's master secrets, and a command line
    /// can be read by other local users (`ps`): prefer --label-file.
    #[arg(long, required_unless_present = "label_file")]
    pub label: Option<String>,
    /// Read the box label's URL from this file (`-`: standard input) instead, e.g. the
    /// box-label.txt `bulk create` wrote.
    #[arg(long, value_name = "FILE", conflicts_with = "label")]
    pub label_file: Option<PathBuf>,
    /// Controller URL.
    #[arg(long)]
    pub conturl: String,
    /// Label prefix for the devices at the Controller.
    #[arg(long)]
    pub device_label: Option<String>,
    #[command(flatten)]
    /// Extra certificate authorities for https:// services.
    pub trust: CaFiles,
}

/// Runs one `tte` subcommand.
pub async fn run(cmd: TteCommand) -> anyhow::Result<()> {
    match cmd {
        TteCommand::TransferAgent(TaCommand::Serve(a)) => serve_ta(a).await,
        TteCommand::Controller(ControllerCommand::Serve(a)) => serve_controller(a).await,
        TteCommand::Manufacture(a) => run_manufacture(a).await,
        TteCommand::Device(DeviceCommand::Fetch(a)) => device_fetch(a).await,
        TteCommand::Device(DeviceCommand::Report(a)) => device_report(a).await,
        TteCommand::Led(LedCommand::Encode(a)) => led_encode(a),
        TteCommand::Led(LedCommand::Decode(a)) => led_decode(a),
        TteCommand::Bulk(BulkCommand::Create(a)) => bulk_create(a).await,
        TteCommand::Bulk(BulkCommand::Bind(a)) => bulk_bind(a).await,
    }
}

/// Reads the OTP key, creating it (0600, crash-safe) if the file does not exist. Of two
/// processes that start together, one creates the key and the other reads that one: a key
/// that hashed OTPs is never replaced.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<Key256> {
    let read = || -> anyhow::Result<Option<Key256>> {
        match std::fs::read_to_string(path) {
            Ok(s) => Key256::from_b64(&s)
                .map(Some)
                .with_context(|| format!("reading key file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading key file {}", path.display())),
        }
    };
    if let Some(k) = read()? {
        return Ok(k);
    }
    let k = Key256::generate(&mut rand_core::OsRng);
    let text = zeroize::Zeroizing::new(format!("{}\n", k.to_b64()));
    match xtt_fsio::write_atomic(
        path,
        text.as_bytes(),
        xtt_fsio::SECRET,
        xtt_fsio::Overwrite::Deny,
    ) {
        Ok(()) => Ok(k),
        // Another process created it first: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read()?
            .with_context(|| format!("key file {} vanished after it was created", path.display())),
        Err(e) => Err(e).with_context(|| format!("writing key file {}", path.display())),
    }
}

/// Why the Transfer Agent's OTP key cannot be used with its database.
#[derive(Debug, thiserror::Error)]
pub enum OtpKeyError {
    /// The database holds OTP hashes, but the key file is missing.
    #[error(
        "the OTP key file {key} does not exist, but the database {db} already holds OTPs \
         hashed under a key: start with the --otp-key file that database was used with (a \
         relative path is looked up from the working directory). A new key would make every \
         stored one-time password fail, so none is created."
    )]
    Missing {
        /// The key file.
        key: PathBuf,
        /// The database.
        db: PathBuf,
    },
    /// The key file holds another key than the one the database's OTP hashes were made under.
    #[error(
        "the OTP key in {key} is not the one the database {db} was used with: every stored \
         one-time password would fail. Start with the --otp-key file that database was \
         created with."
    )]
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The database.
        db: PathBuf,
    },
}

/// Reads an existing key file (no creating).
fn load_key(path: &Path) -> anyhow::Result<Option<Key256>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = zeroize::Zeroizing::new(bytes);
            let text = std::str::from_utf8(&text)
                .map_err(|_| anyhow::anyhow!("key file {} is not text", path.display()))?;
            Key256::from_b64(text)
                .map(Some)
                .with_context(|| format!("reading key file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading key file {}", path.display())),
    }
}

/// The permission bits that let others than the owner read `path`, if any are set.
pub fn readable_by_others(path: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o044 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// The Transfer Agent's OTP key for the database `store` (at `db`): the key file at `key`,
/// created only if the database has no OTP hashes yet, and refused ([`OtpKeyError`]) unless it
/// is the key the database records. A key file others may read is used, with a warning.
pub fn otp_key_for(store: &SqliteTaStore, db: &Path, key: &Path) -> anyhow::Result<Key256> {
    let k = if store.otp_key_in_use()? {
        load_key(key)?.ok_or_else(|| OtpKeyError::Missing {
            key: key.to_owned(),
            db: db.to_owned(),
        })?
    } else {
        load_or_create_key(key)?
    };
    if let Some(mode) = readable_by_others(key)
        .with_context(|| format!("reading the permissions of {}", key.display()))?
    {
        tracing::warn!(
            "the OTP key file {} has mode {mode:o}: other users may read it; \
             it should be 600 (chmod 600 {0})",
            key.display()
        );
    }
    let check = tte::otp::OtpHasher::new(k.clone()).key_check();
    match store.check_otp_key(&check)? {
        crate::store::sqlite::OtpKeyCheck::Recorded => tracing::info!(
            "the database {} now records the OTP key in {}",
            db.display(),
            key.display()
        ),
        crate::store::sqlite::OtpKeyCheck::Matches => {}
        crate::store::sqlite::OtpKeyCheck::Mismatch => {
            return Err(OtpKeyError::Mismatch {
                key: key.to_owned(),
                db: db.to_owned(),
            }
            .into())
        }
    }
    Ok(k)
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve_ta(a: TaServeArgs) -> anyhow::Result<()> {
    let token = bearer_token(
        a.manufacturer_token.as_deref(),
        a.manufacturer_token_file.as_deref(),
        "manufacturer token",
    )?;
    // The port first: a busy one must not leave a new database and OTP key behind.
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let store =
        SqliteTaStore::open(&a.db).with_context(|| format!("opening {}", a.db.display()))?;
    let key = otp_key_for(&store, &a.db, &a.otp_key)?;
    let store: Arc<dyn crate::store::TaStore> = match &a.anchors {
        Some(path) => Arc::new(
            crate::anchored::AnchoredTaStore::open(store, path)
                .with_context(|| format!("opening anchor store {}", path.display()))?,
        ),
        None => Arc::new(store),
    };
    let app = TransferAgent::new(store, key, &token).router();
    eprintln!(
        "Transfer Agent listening on http://{}",
        listener.local_addr()?
    );
    let limits = xtt_tls::serve::ServeLimits {
        unlimited_ips: a.trusted_proxies.clone(),
        ..Default::default()
    };
    http::serve_with(listener, app, limits, shutdown()).await?;
    Ok(())
}

async fn serve_controller(a: ControllerServeArgs) -> anyhow::Result<()> {
    let token = bearer_token(
        a.operator_token.as_deref(),
        a.operator_token_file.as_deref(),
        "operator token",
    )?;
    for (flag, v) in [
        ("--add-rate", a.add_rate),
        ("--add-burst", a.add_burst),
        ("--update-rate", a.update_rate),
        ("--update-burst", a.update_burst),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be a positive number, not {v}");
        }
    }
    // The port first: a busy one must not leave a new database behind.
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let store = SqliteControllerStore::open(&a.db)
        .with_context(|| format!("opening {}", a.db.display()))?
        .with_limits(crate::store::ControllerLimits {
            max_devices: a.max_devices,
            max_readings_per_device: a.max_readings_per_device,
        });
    let store: Arc<dyn crate::store::ControllerStore> = match &a.anchors {
        Some(path) => Arc::new(
            crate::anchored::AnchoredControllerStore::open(store, path)
                .with_context(|| format!("opening anchor store {}", path.display()))?,
        ),
        None => Arc::new(store),
    };
    let mut c = Controller::new(store, &token)
        .with_rates(crate::controller::ControllerRates {
            adds: xtt_ratelimit::RateLimits::per_client(a.add_rate, a.add_burst),
            updates: xtt_ratelimit::RateLimits::per_client(a.update_rate, a.update_burst),
        })
        .with_trusted_proxies(a.trusted_proxies.clone());
    if !a.allow_origin.is_empty() {
        let origins = a
            .allow_origin
            .iter()
            .map(|o| o.parse().with_context(|| format!("bad origin {o:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        c = c.with_allowed_origins(origins);
    }
    eprintln!("Controller listening on http://{}", listener.local_addr()?);
    let limits = xtt_tls::serve::ServeLimits {
        unlimited_ips: a.trusted_proxies.clone(),
        ..Default::default()
    };
    http::serve_with(listener, c.router(), limits, shutdown()).await?;
    Ok(())
}

fn bar(n: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(n);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

async fn run_manufacture(a: ManufactureArgs) -> anyhow::Result<()> {
    // Every input is checked before --out is created, so a mistyped path leaves no empty
    // output directory behind.
    let token = a.token.resolve()?;
    let http = a.trust.client()?;
    let qr_base = a.qr_base.as_deref().unwrap_or(&a.ta);
    manufacture::scheme_authority(qr_base)?;
    let group = match &a.daa_group {
        Some(dir) => Some(
            xtt_files::group::GroupDir::open(dir)
                .with_context(|| format!("opening the DAA group {}", dir.display()))?,
        ),
        None => None,
    };
    if let Some(root) = &a.xtt_root {
        xtt_files::certs::read_root(root).context("the XTT root certificate is unusable")?;
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let members = match &group {
        Some(group) => enroll_members(group, a.count)?,
        None => Vec::new(),
    };
    let mut members = members.into_iter();
    let pb = bar(u64::from(a.count), "manufacturing");
    for _ in 0..a.count {
        let xtt = members
            .next()
            .map(|m| crate::xtt_enroll::XttSecrets::from_member_dir(&m, a.xtt_root.as_deref()))
            .transpose()?;
        let dev = manufacture::manufacture_one_with_xtt(&http, &a.ta, qr_base, &token, &a.out, xtt)
            .await?;
        if a.print_qr {
            pb.suspend(|| -> anyhow::Result<()> {
                println!("{}\n{}", dev.urn, qr::terminal(&dev.setup_url)?);
                Ok(())
            })?;
        }
        pb.inc(1);
    }
    pb.finish_with_message("manufactured");
    eprintln!("{} device(s) written to {}", a.count, a.out.display());
    Ok(())
}

/// Enrolls `count` new members into `group` (the join protocol, as
/// `xtt group enroll`), returning their directories.
fn enroll_members(group: &xtt_files::group::GroupDir, count: u32) -> anyhow::Result<Vec<PathBuf>> {
    let pb = bar(u64::from(count), "enrolling into the DAA group");
    let members = group.enroll(usize::try_from(count)?, 0, &|_| pb.inc(1))?;
    pb.finish_and_clear();
    Ok(members.into_iter().map(|m| m.dir).collect())
}

fn read_secrets(p: &Path) -> anyhow::Result<DeviceClient> {
    read_secrets_trusting(p, &CaFiles::default())
}

fn read_secrets_trusting(p: &Path, trust: &CaFiles) -> anyhow::Result<DeviceClient> {
    let text = zeroize::Zeroizing::new(
        std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
    );
    let s: DeviceSecrets =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", p.display()))?;
    Ok(DeviceClient::with_roots(s, &trust.roots()?)?)
}

async fn device_fetch(a: FetchArgs) -> anyhow::Result<()> {
    let dev = read_secrets_trusting(&a.device.secrets, &a.device.trust)?;
    let mut xtt = crate::xtt_enroll::XttEnrollment::new(
        a.xtt_dir
            .clone()
            .unwrap_or_else(|| a.device.secrets.with_extension("xtt")),
    );
    xtt.daa_member = a.daa_member.clone();
    xtt.xtt_root = a.xtt_root.clone();
    match dev.enroll(Some(&xtt)).await? {
        Enrollment::NotBound => bail!(
            "no Controller is bound to {} yet; try again after setup",
            dev.secrets().urn
        ),
        Enrollment::Controller(c) => println!("{c}"),
        Enrollment::HandedToXtt(c) => {
            let (id, _) = xtt_files::client_dir::ClientDir::new(&xtt.out_dir).read_provisioned()?;
            println!("{c}");
            eprintln!(
                "XTT provisioning done: ClientID {id}, identity in {} (longterm_priv.bin 0600)",
                xtt.out_dir.display()
            );
        }
        Enrollment::XttPending(c) => {
            println!("{c}");
            eprintln!("this Controller is an XTT server: run XTT identity provisioning against it");
        }
    }
    Ok(())
}

async fn device_report(a: ReportArgs) -> anyhow::Result<()> {
    let dev = read_secrets_trusting(&a.device.secrets, &a.device.trust)?;
    let pack = match (&a.senml, a.value) {
        (Some(j), _) => Pack::from_json(j.as_bytes())?,
        (None, Some(v)) => Pack(vec![Record {
            bn: Some(format!("{}:", dev.secrets().urn)),
            n: Some(a.name.clone()),
            u: a.unit.clone(),
            v: Some(v),
            ..Default::default()
        }]),
        (None, None) => bail!("give --value (with --name/--unit) or --senml"),
    };
    pack.resolve(http::now_f64())?;
    let Some(cont) = dev.fetch_controller().await? else {
        bail!("no Controller is bound to {} yet", dev.secrets().urn);
    };
    let seq = a.seq.unwrap_or_else(device::clock_seq);
    dev.report(&cont, &pack, seq).await?;
    eprintln!("reported {} record(s) to {cont} (seq {seq})", pack.0.len());
    Ok(())
}

fn led_encode(a: LedEncodeArgs) -> anyhow::Result<()> {
    let dev = read_secrets(&a.secrets)?;
    let s = dev.secrets();
    let frame = LedFrame {
        ta_urn: a.ta_urn.into_bytes(),
        dev_urn: s.urn.as_str().as_bytes().to_vec(),
        otp: Otp::from_b64(&s.otp)?.as_bytes().to_vec(),
        dev_secret: Key256::from_b64(&s.dev_secret)?.as_bytes().to_vec(),
    };
    let bytes = frame.encode()?;
    let bits = led::to_bits(&bytes);
    let levels = led::nrzi_encode(&bits);
    let level_str: String = levels.iter().map(|&l| if l { '1' } else { '0' }).collect();
    if a.levels_only {
        println!("{level_str}");
        return Ok(());
    }
    let period = led::bit_period_us(a.bps);
    println!(
        "# {} bytes, {} bits at {} bit/s = {:.2} s; bit period {:.3} ms",
        bytes.len(),
        bits.len(),
        a.bps,
        bits.len() as f64 / f64::from(a.bps),
        period as f64 / 1000.0
    );
    println!("# frame: {}", hex::encode(&bytes));
    println!("# time_ms\tbit\tled");
    for (i, (b, l)) in bits.iter().zip(&levels).enumerate() {
        let t = i as f64 * 1000.0 / f64::from(a.bps);
        println!(
            "{t:.1}\t{}\t{}",
            u8::from(*b),
            if *l { "on" } else { "off" }
        );
    }
    println!("# levels: {level_str}");
    Ok(())
}

fn led_decode(a: LedDecodeArgs) -> anyhow::Result<()> {
    let text = secret_text(a.levels.as_deref(), a.levels_file.as_deref(), "LED levels")?;
    let levels = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '1' => Ok(true),
            '0' => Ok(false),
            other => bail!("level string may hold only 0 and 1, found {other:?}"),
        })
        .collect::<anyhow::Result<Vec<bool>>>()?;
    let frame = led::find_frame(&led::nrzi_decode(&levels, false))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    println!("ta_urn:     {}", text(&frame.ta_urn));
    println!("dev_urn:    {}", text(&frame.dev_urn));
    let otp = <[u8; 16]>::try_from(frame.otp.as_slice()).map(Otp::from_bytes);
    let ds = <[u8; 32]>::try_from(frame.dev_secret.as_slice()).map(Key256::from_bytes);
    match (otp, ds) {
        (Ok(o), Ok(d)) => {
            println!("otp:        {}", o.to_b64());
            println!("dev_secret: {}", d.to_b64());
        }
        _ => bail!("frame's OTP or DevSecret has the wrong length"),
    }
    Ok(())
}

async fn bulk_create(a: BulkCreateArgs) -> anyhow::Result<()> {
    let token = a.token.resolve()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let range = UrnRange {
        prefix: a.prefix,
        first: a.first,
        count: a.count,
        width: a.width,
    };
    range.urns()?;
    let http = a.trust.client()?;
    let pb = bar(u64::from(a.count), "registering box");
    let qr_base = a.qr_base.as_deref().unwrap_or(&a.ta);
    let label =
        bulk::create_box(&http, &a.ta, qr_base, &token, range, &a.out, || pb.inc(1)).await?;
    pb.finish_with_message("box registered");
    eprintln!(
        "box label for {} devices written to {}",
        label.range.count,
        a.out.join("box-label.png").display()
    );
    Ok(())
}

async fn bulk_bind(a: BulkBindArgs) -> anyhow::Result<()> {
    let text = secret_text(a.label.as_deref(), a.label_file.as_deref(), "box label")?;
    let label = BoxLabel::parse(&text)?;
    let cont = ContUrl::parse(&a.conturl)?;
    let n = bulk::bind_box(&a.trust.client()?, &label, &cont, a.device_label.as_deref()).await?;
    eprintln!(
        "bound {} devices to {cont}; {n} added to the Controller",
        label.range.count
    );
    Ok(())
}

/// Largest secret read by --label-file or --levels-file (a label is a URL of a few hundred
/// bytes, a level string a few thousand characters).
pub const MAX_SECRET_FILE: usize = 64 * 1024;

/// A secret given inline or in a file or pipe (`-`: standard input), without surrounding
/// whitespace, read up to [`MAX_SECRET_FILE`] bytes. `what` names it in errors, which never
/// quote it.
fn secret_text(
    inline: Option<&str>,
    file: Option<&Path>,
    what: &str,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    xtt_fsio::secret_text(inline, file, what, MAX_SECRET_FILE)?
        .with_context(|| format!("give the {what}"))
}

/// Fewest characters a bearer token may have, however it is given.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token given directly (or by its environment variable) or in a file (the
/// `--…-token-file` options; a pipe such as `<(…)` or `-` for standard input works too): the
/// file's text without one trailing line ending ([`xtt_fsio::secret_line`], read up to
/// [`MAX_SECRET_FILE`] bytes). Either way it must have at least [`MIN_TOKEN_LEN`] characters.
/// `what` names it in errors, which never quote it.
fn bearer_token(
    direct: Option<&str>,
    file: Option<&Path>,
    what: &str,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let token = xtt_fsio::secret_line(direct, file, what, MAX_SECRET_FILE)
        .with_context(|| format!("reading the {what}"))?;
    let Some(token) = token else {
        bail!("give the {what}");
    };
    if token.len() < MIN_TOKEN_LEN {
        bail!("the {what} must be at least {MIN_TOKEN_LEN} characters");
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token option says its minimum length and recommends its file form (which it
    /// conflicts with) or the environment variable.
    #[test]
    fn token_help_gives_the_minimum_and_prefers_the_environment() {
        fn help(cmd: &clap::Command, id: &str) -> String {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            format!("{} {:?}", arg.get_help().unwrap(), arg.get_env())
        }
        for (cmd, id, env) in [
            (
                TaServeArgs::augment_args(clap::Command::new("ta")),
                "manufacturer_token",
                "TTE_MANUFACTURER_TOKEN",
            ),
            (
                ControllerServeArgs::augment_args(clap::Command::new("c")),
                "operator_token",
                "TTE_OPERATOR_TOKEN",
            ),
            (
                ManufactureArgs::augment_args(clap::Command::new("m")),
                "token",
                "TTE_MANUFACTURER_TOKEN",
            ),
            (
                BulkCreateArgs::augment_args(clap::Command::new("b")),
                "token",
                "TTE_MANUFACTURER_TOKEN",
            ),
        ] {
            let text = help(&cmd, id);
            let file_flag = format!("--{}-file", id.replace('_', "-"));
            assert!(text.contains("at least 16 characters"), "{id}: {text}");
            assert!(
                text.contains(&format!("Prefer {file_flag} or the environment variable"))
                    && text.contains("`ps`"),
                "{id}: {text}"
            );
            assert!(text.contains(env), "{id}: {text}");

            let file_id = format!("{id}_file");
            let file = cmd
                .get_arguments()
                .find(|a| a.get_id() == file_id.as_str())
                .unwrap_or_else(|| panic!("{id}: no {file_id}"));
            assert_eq!(format!("--{}", file.get_long().unwrap()), file_flag, "{id}");
            assert!(file.get_env().is_none(), "{file_id}");
            let file_help = help(&cmd, &file_id);
            assert!(
                file_help.contains("from this file") && file_help.contains("newline"),
                "{file_id}: {file_help}"
            );
            let conflicts = cmd.get_arg_conflicts_with(file);
            assert!(
                conflicts.iter().any(|a| a.get_id() == id),
                "{file_id} does not conflict with {id}"
            );
        }
    }

    #[test]
    fn token_files_lose_one_newline_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "a-token-of-some-length\n").unwrap();
        let t = bearer_token(None, Some(&file), "operator token").unwrap();
        assert_eq!(t.as_str(), "a-token-of-some-length");
        // Only one newline goes, and nothing else is trimmed.
        std::fs::write(&file, " a-token-of-some-length\n\n").unwrap();
        let t = bearer_token(None, Some(&file), "operator token").unwrap();
        assert_eq!(t.as_str(), " a-token-of-some-length\n");
        std::fs::write(&file, "a-token-of-some-length\r\n").unwrap();
        let t = bearer_token(None, Some(&file), "operator token").unwrap();
        assert_eq!(t.as_str(), "a-token-of-some-length");

        for text in ["", "\n"] {
            std::fs::write(&file, text).unwrap();
            let e = format!(
                "{:#}",
                bearer_token(None, Some(&file), "operator token").unwrap_err()
            );
            assert!(
                e.contains("is empty") && e.contains("token"),
                "{text:?}: {e}"
            );
        }
        std::fs::write(&file, "short-token\n").unwrap();
        let e = bearer_token(None, Some(&file), "manufacturer token").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the manufacturer token must be at least 16 characters"
        );
        let e = bearer_token(Some("short-token"), None, "manufacturer token").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the manufacturer token must be at least 16 characters"
        );
        assert_eq!(
            bearer_token(Some("a-token-of-some-length"), None, "x")
                .unwrap()
                .as_str(),
            "a-token-of-some-length"
        );

        let missing = dir.path().join("missing-token");
        let e = format!(
            "{:#}",
            bearer_token(None, Some(&missing), "operator token").unwrap_err()
        );
        assert!(e.contains("missing-token"), "{e}");

        std::fs::write(&file, vec![b'x'; MAX_SECRET_FILE + 1]).unwrap();
        let e = format!(
            "{:#}",
            bearer_token(None, Some(&file), "operator token").unwrap_err()
        );
        assert!(e.contains("longer than") && !e.contains("xxxx"), "{e}");
    }

    #[test]
    fn secret_files_are_trimmed_capped_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("label.txt");
        std::fs::write(&file, "  https://ta.example/box#secret \n").unwrap();
        let text = secret_text(None, Some(&file), "box label").unwrap();
        assert_eq!(text.as_str(), "https://ta.example/box#secret");
        assert_eq!(
            secret_text(Some(" 0101\n"), None, "LED levels")
                .unwrap()
                .as_str(),
            "0101"
        );

        std::fs::write(&file, vec![b'1'; MAX_SECRET_FILE + 1]).unwrap();
        let e = format!(
            "{:#}",
            secret_text(None, Some(&file), "LED levels").unwrap_err()
        );
        assert!(e.contains("LED levels") && e.contains("label.txt"), "{e}");
        assert!(!e.contains("1111"), "{e}");

        std::fs::write(&file, b"\xff\xfe").unwrap();
        let e = secret_text(None, Some(&file), "box label").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");

        let missing = dir.path().join("missing.txt");
        let e = format!(
            "{:#}",
            secret_text(None, Some(&missing), "box label").unwrap_err()
        );
        assert!(e.contains("missing.txt"), "{e}");
    }

    /// The database records its OTP key: the same key is accepted on every start, another
    /// key file is refused, and a missing one is refused (not created anew) once the database
    /// holds OTP hashes.
    #[test]
    fn the_ta_refuses_an_otp_key_its_database_was_not_used_with() {
        use crate::store::TaStore as _;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ta.sqlite");
        let key = dir.path().join("otp.key");
        let store = SqliteTaStore::open(&db).unwrap();
        let k = otp_key_for(&store, &db, &key).unwrap();
        assert!(key.exists());
        assert_eq!(otp_key_for(&store, &db, &key).unwrap(), k);

        // Another key file (another --otp-key, another working directory).
        let other = dir.path().join("other.key");
        load_or_create_key(&other).unwrap();
        let e = otp_key_for(&store, &db, &other).unwrap_err();
        assert!(
            matches!(e.downcast_ref(), Some(OtpKeyError::Mismatch { .. })),
            "{e:#}"
        );
        assert!(e.to_string().contains("other.key"), "{e}");

        // The key file gone: refused, and no new key is created in its place.
        let missing = dir.path().join("moved.key");
        let e = otp_key_for(&store, &db, &missing).unwrap_err();
        assert!(
            matches!(e.downcast_ref(), Some(OtpKeyError::Missing { .. })),
            "{e:#}"
        );
        assert!(!missing.exists());

        // A database from before keys were recorded, with devices: a missing key file is
        // refused as well; an existing one is adopted and checked from then on.
        let old_db = dir.path().join("old.sqlite");
        rusqlite::Connection::open(&old_db)
            .unwrap()
            .execute_batch(
                "CREATE TABLE ta_device (
                     urn TEXT PRIMARY KEY, otp_hash BLOB NOT NULL, ta_secret BLOB NOT NULL,
                     conturl TEXT, created_at INTEGER NOT NULL, bound_at INTEGER);
                 INSERT INTO ta_device VALUES ('urn:dev:mac:020000000001', zeroblob(32),
                     zeroblob(32), NULL, 0, NULL);",
            )
            .unwrap();
        let old = SqliteTaStore::open(&old_db).unwrap();
        let urn = tte::DevUrn::parse("urn:dev:mac:020000000001").unwrap();
        assert!(old.device_state(&urn).unwrap().is_some());
        let e = otp_key_for(&old, &old_db, &missing).unwrap_err();
        assert!(
            matches!(e.downcast_ref(), Some(OtpKeyError::Missing { .. })),
            "{e:#}"
        );
        assert_eq!(otp_key_for(&old, &old_db, &key).unwrap(), k);
        assert!(otp_key_for(&old, &old_db, &other).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_noticed() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("otp.key");
        load_or_create_key(&key).unwrap();
        assert_eq!(readable_by_others(&key).unwrap(), None);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(readable_by_others(&key).unwrap(), Some(0o640));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert_eq!(readable_by_others(&key).unwrap(), Some(0o604));
    }

    #[test]
    fn processes_that_create_the_otp_key_together_end_up_with_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otp.key");
        let start = std::sync::Barrier::new(8);
        let keys: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        load_or_create_key(&path).unwrap().to_b64()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = std::fs::read_to_string(&path).unwrap();
        for k in &keys {
            assert_eq!(format!("{k}\n"), on_disk);
        }
        assert_eq!(load_or_create_key(&path).unwrap().to_b64(), keys[0]);
    }
}
