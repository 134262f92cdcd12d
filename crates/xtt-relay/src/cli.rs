//! `relay` subcommands for the project's CLI: the lead's binary wires them with
//! `Relay { #[command(subcommand)] cmd: xtt_relay::cli::RelayCommand }` and
//! `xtt_relay::cli::run(cmd).await`.

use crate::client::{self, Patience, RelayClient, ShareRequest};
use crate::proto::confirm::{fingerprint, SenderConfirm};
use crate::proto::secret::ProvisioningInfo;
use crate::proto::share_url::{ShareUrl, Vertical};
use crate::proto::wire::{
    AccessRights, CreateLimits, DisplayInformation, PayloadType, MIN_SEALED_LEN,
};
use crate::server::clock::SystemClock;
use crate::server::rate_limit::RateLimits;
use crate::server::sqlite::SqliteStore;
use crate::server::{RelayConfig, RelayServer};
use anyhow::{bail, Context as _};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rand_core::OsRng;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Credential vertical of a share link (`?v=`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerticalArg {
    /// General access (`v=a`).
    General,
    /// Home key (`v=h`).
    Home,
    /// Car key (`v=c`).
    Car,
}

impl From<VerticalArg> for Vertical {
    fn from(v: VerticalArg) -> Self {
        match v {
            VerticalArg::General => Vertical::GeneralAccess,
            VerticalArg::Home => Vertical::HomeKey,
            VerticalArg::Car => Vertical::CarKey,
        }
    }
}

/// Secure credential transfer through an expiring relay mailbox.
#[derive(clap::Subcommand, Debug)]
pub enum RelayCommand {
    /// Run a relay server (HTTPS with --tls-cert/--tls-key, or HTTP behind a TLS proxy).
    #[command(
        long_about = "Run a relay server: the TIGRESS mailbox API under /v1/m, storing \
mailboxes in one SQLite file. Every change is committed before the reply, expired \
mailboxes are swept periodically, and the secret needed to decrypt a mailbox never reaches \
the relay. Serve HTTPS yourself with --tls-cert and --tls-key (rustls), or plain HTTP behind \
a TLS-terminating reverse proxy with --public-url set to the https address clients see.",
        after_help = "Examples:\n  xtt relay serve --listen 0.0.0.0:8443 --tls-cert relay.crt \\\n      --tls-key relay.key --public-url https://relay.example.com\n  xtt relay serve --db /var/lib/xtt/relay.db \\\n      --public-url https://relay.example.com\n  xtt relay serve --listen 127.0.0.1:8080 \\\n      --push-webhook http://127.0.0.1:9000/push"
    )]
    Serve(ServeArgs),
    /// Encrypt provisioning information into a new mailbox and print the share link.
    #[command(
        long_about = "Encrypt provisioning information ({format, content} JSON) with \
AES-GCM under a fresh random secret, create a mailbox on the relay, and print the share link \
https://HOST/v1/m/ID?v=V#SECRET. The secret is only in the fragment: send the link to the \
recipient over a channel you trust. The initiator's device claim is printed on stderr; keep \
it to delete the mailbox later. With --confirm, wait for the recipient's TxInfo, sign it \
with ECDSA P-256 and hand the signature back (three-message flow).",
        after_help = "Examples:\n  xtt relay share --relay http://127.0.0.1:8080 --content '{\"token\":\"abc\"}' \\\n      --title 'Car key' --vertical car --qr\n  xtt relay share --relay https://relay.example.com --content-file key.json \\\n      --confirm --signing-key owner.pem"
    )]
    Share(ShareArgs),
    /// Claim a mailbox from a share link, decrypt it and print or save the content.
    #[command(
        long_about = "Claim the mailbox named by a share link as its recipient, read and \
decrypt its provisioning information, and print it (or save it with --out). The secret is \
taken from the link's fragment and never sent. If the sender asked for confirmation, run the \
three-message flow and delete the mailbox when the sender's signature verifies. The device \
claim used is printed on stderr; reuse it with --claim, relinquish or delete. A link or \
claim given on the command line is visible to other users of this machine (e.g. in `ps`): \
pass them with --link-file and --claim-file (\"-\" reads stdin) instead.",
        after_help = "Examples:\n  xtt relay receive --link-file link.txt --out key.json\n  xtt relay receive --link-file - --out key.json < link.txt\n  xtt relay receive 'https://relay.example.com/v1/m/UUID?v=c#SECRET' \\\n      --out key.json   # the link is visible in ps\n  xtt relay receive LINK --relinquish\n  xtt relay receive LINK --ca-file private-ca.pem   # a relay with a private CA\n  xtt relay receive LINK --anchors /etc/xtt/anchors.db   # or a tls-root anchor"
    )]
    Receive(ReceiveArgs),
    /// Give up a mailbox you claimed as recipient, so another device may claim it.
    #[command(after_help = RELINQUISH_HELP)]
    Relinquish(ClaimArgs),
    /// Delete a mailbox as its initiator or bound recipient.
    #[command(after_help = DELETE_HELP)]
    Delete(ClaimArgs),
}

/// The warning `relay relinquish --help` and `relay delete --help` both open with: a link or
/// claim on the command line is visible in `ps`. A macro so that `concat!` can build each help
/// text as a `&'static str` for clap's `after_help`.
macro_rules! claim_on_command_line_note {
    () => {
        "A link or claim given on the command line is visible to other users of this machine \
(e.g. in `ps`); --link-file and --claim-file (\"-\" reads stdin) keep them off it.\n"
    };
}

/// `relay relinquish --help`: the claim is the one `receive` printed.
const RELINQUISH_HELP: &str = concat!(
    claim_on_command_line_note!(),
    "Example (claim.txt holds the recipient claim `xtt relay receive` printed):\n  \
xtt relay relinquish --link-file link.txt --claim-file claim.txt"
);

/// `relay delete --help`: the claim is the initiator's (from `share`) or the recipient's.
const DELETE_HELP: &str = concat!(
    claim_on_command_line_note!(),
    "Example (claim.txt holds the claim `xtt relay share` or `xtt relay receive` printed):\n  \
xtt relay delete --link-file link.txt --claim-file claim.txt"
);

/// What `relay share` prints on stderr about the initiator's claim: how to keep it and delete
/// the mailbox with it, the claim in a file rather than on a command line (visible in `ps`).
fn initiator_claim_note(claim: Uuid) -> String {
    format!(
        "initiator claim: {claim}\n\
         to delete the mailbox later, save the claim and the link in files only you can \
         read (e.g. claim.txt, link.txt) and run: \
         xtt relay delete --link-file link.txt --claim-file claim.txt"
    )
}

/// Which certificate authorities an `https://` relay may be certified by, besides the
/// platform's.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// Also trust the CA certificate(s) in this PEM file (repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// Also trust the tls-root anchors (role transport, valid now) of this trust-anchor store.
    #[arg(long = "anchors", value_name = "STORE")]
    pub anchors: Option<PathBuf>,
}

impl TrustArgs {
    /// The roots: the platform's, the PEM files', the store's.
    pub fn roots(&self) -> anyhow::Result<xtt_tls::TrustRoots> {
        let mut roots = xtt_tls::TrustRoots::platform();
        for file in &self.ca_files {
            roots.add_pem_file(file)?;
        }
        if let Some(path) = &self.anchors {
            if !path.exists() {
                bail!("no trust-anchor store at {}", path.display());
            }
            let store = xtt_anchors::AnchorStore::open(path)
                .with_context(|| format!("cannot open the anchor store {}", path.display()))?;
            let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp())
                .context("the clock is before 1970")?;
            for (fp, der) in store.tls_roots(now)? {
                roots.add_der(&der, &format!("tls-root anchor {}", fp.short()))?;
            }
        }
        Ok(roots)
    }

    /// A relay client with these roots.
    pub fn client(&self) -> anyhow::Result<RelayClient> {
        Ok(RelayClient::with_roots(&self.roots()?)?)
    }
}

/// `relay serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// SQLite database file (created with mode 0600).
    #[arg(long, default_value = "relay.db")]
    pub db: PathBuf,
    /// Base URL clients see, used in the links handed out (default: http://LISTEN).
    #[arg(long)]
    pub public_url: Option<Url>,
    /// Largest encrypted payload in bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_payload: usize,
    /// Largest request body in bytes (413 above); must hold a --max-payload payload in base64
    /// plus about 13 KiB for the rest of a create request.
    #[arg(long, default_value_t = 64 * 1024)]
    pub body_limit: usize,
    /// Lifetime of a mailbox created without mailboxConfiguration (e.g. 30m, 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub default_lifetime: Duration,
    /// Longest lifetime; later expirations are capped to it.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub max_lifetime: Duration,
    /// Recipients that may bind a mailbox over its life (relinquish does not give one back).
    #[arg(long, default_value_t = 3)]
    pub max_receivers: u32,
    /// Requests per second per client address (IPv6: per /64).
    #[arg(long, default_value_t = 20.0)]
    pub rate_per_client: f64,
    /// Burst per client address.
    #[arg(long, default_value_t = 40.0)]
    pub burst_per_client: f64,
    /// Requests per second for the whole relay.
    #[arg(long, default_value_t = 2000.0)]
    pub rate_global: f64,
    /// Global burst.
    #[arg(long, default_value_t = 4000.0)]
    pub burst_global: f64,
    /// How often expired mailboxes are deleted (at least 1s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// A reverse proxy in front of the relay (repeatable): its requests are rate-limited by the
    /// client address it puts in X-Forwarded-For, not by its own, and it is not held to the
    /// per-address connection and TLS-handshake caps. Give the proxy's address as the relay
    /// sees it (e.g. 127.0.0.1); keep its upstream keep-alive under 10 s (an idle connection
    /// is closed then).
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Most mailboxes stored at once (expired ones count until swept); creates beyond get 503.
    /// Each holds up to about 60 KiB, so the default bounds the database near 6 GB.
    #[arg(long, default_value_t = 100_000)]
    pub max_mailboxes: u64,
    /// Most live mailboxes one client address (IPv6: per /64) may hold; creates beyond get
    /// 429 until one of its mailboxes expires or is deleted.
    #[arg(long, default_value_t = 1_000)]
    pub max_mailboxes_per_client: u64,
    /// POST a JSON notification here when one side updates a mailbox.
    #[arg(long)]
    pub push_webhook: Option<Url>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key (PKCS#8, SEC1 or PKCS#1).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

/// `relay share`.
#[derive(clap::Args, Debug)]
pub struct ShareArgs {
    /// Relay base URL (http:// or https://).
    #[arg(long, env = "XTT_RELAY_URL", value_parser = parse_relay_url)]
    pub relay: Url,
    /// Provisioning information format.
    #[arg(long, default_value = "digitalwallet.generic.authorizationToken")]
    pub format: String,
    /// The `content` object, as JSON. Given here it is visible to other local users (e.g. in
    /// `ps`): prefer --content-file.
    #[arg(
        long,
        conflicts_with = "content_file",
        required_unless_present = "content_file"
    )]
    pub content: Option<String>,
    /// Read the `content` object from a file or a pipe ("-" for stdin), at most 64 KiB.
    #[arg(long)]
    pub content_file: Option<PathBuf>,
    /// Preview title (public: shown in link previews).
    #[arg(long, default_value = "Shared credential")]
    pub title: String,
    /// Preview description (public).
    #[arg(
        long,
        default_value = "Open this link on your device to accept the credential"
    )]
    pub description: String,
    /// Preview image URL (public).
    #[arg(long, default_value = "https://example.com/credential.png")]
    pub image_url: Url,
    /// Credential vertical added to the link as ?v=.
    #[arg(long, value_enum)]
    pub vertical: Option<VerticalArg>,
    /// How long the mailbox lives (e.g. 15m, 1h, 2d); the relay may cap it.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub expires_in: Duration,
    /// Access rights of both sides: a combination of R, W, D (--confirm needs RWD).
    #[arg(long, default_value = "RD")]
    pub access: String,
    /// Use AES-256-GCM instead of AES-128-GCM.
    #[arg(long)]
    pub aes256: bool,
    /// Also print the link as a QR code.
    #[arg(long)]
    pub qr: bool,
    /// Run the three-message flow: wait for the recipient's TxInfo and sign it.
    #[arg(long)]
    pub confirm: bool,
    /// P-256 private key (PKCS#8 PEM) to sign with; default: a fresh key for this share.
    #[arg(long, requires = "confirm")]
    pub signing_key: Option<PathBuf>,
    /// How long --confirm waits for the recipient.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `relay receive`.
#[derive(clap::Args, Debug)]
pub struct ReceiveArgs {
    /// The share link, secret in its fragment. Given here it is visible to other local users
    /// (e.g. in `ps`): prefer --link-file.
    #[arg(required_unless_present = "link_file", conflicts_with = "link_file")]
    pub link: Option<String>,
    /// Read the share link from this file ("-" for stdin), keeping its secret off the
    /// command line.
    #[arg(long, value_name = "FILE")]
    pub link_file: Option<PathBuf>,
    /// Device claim to use (default: a fresh one, printed on stderr). Given here it is visible
    /// to other local users: prefer --claim-file.
    #[arg(long, conflicts_with = "claim_file")]
    pub claim: Option<Uuid>,
    /// Read the device claim from this file ("-" for stdin).
    #[arg(long, value_name = "FILE")]
    pub claim_file: Option<PathBuf>,
    /// Save the provisioning information here (mode 0600) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// After reading, give the mailbox up so another device may claim it.
    #[arg(long)]
    pub relinquish: bool,
    /// In a confirmed share, save the new key the sender endorsed (PKCS#8 PEM, mode 0600).
    #[arg(long)]
    pub key_out: Option<PathBuf>,
    /// How long to wait for the sender's signature in a confirmed share.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `relay relinquish` / `relay delete`.
#[derive(clap::Args, Debug)]
pub struct ClaimArgs {
    /// The share link (the fragment is ignored). Given here it is visible to other local users
    /// (e.g. in `ps`): prefer --link-file.
    #[arg(required_unless_present = "link_file", conflicts_with = "link_file")]
    pub link: Option<String>,
    /// Read the share link from this file ("-" for stdin).
    #[arg(long, value_name = "FILE")]
    pub link_file: Option<PathBuf>,
    /// The device claim printed by `share` or `receive`. It is what lets the mailbox be
    /// deleted, and given here it is visible to other local users: prefer --claim-file.
    #[arg(
        long,
        required_unless_present = "claim_file",
        conflicts_with = "claim_file"
    )]
    pub claim: Option<Uuid>,
    /// Read the device claim from this file ("-" for stdin).
    #[arg(long, value_name = "FILE")]
    pub claim_file: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Longest share link or claim read from a file or stdin: a link is a URL of a few hundred
/// bytes, a claim 36 characters.
pub const MAX_SECRET_INPUT: usize = 8 * 1024;

/// Longest content (`--content-file`) read: as much as a relay accepts in a request body by
/// default.
const MAX_CONTENT_INPUT: usize = 64 * 1024;

/// Longest PEM signing key read: a P-256 PKCS#8 key is about 250 bytes.
const MAX_KEY_FILE: usize = 16 * 1024;

/// The text of a secret given inline or in a file or pipe (`-`: stdin), without surrounding
/// whitespace, at most [`MAX_SECRET_INPUT`] bytes. `what` names it in errors, which never
/// repeat the content.
pub fn secret_input(
    inline: Option<&str>,
    file: Option<&Path>,
    what: &str,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    Ok(xtt_fsio::secret_text(inline, file, what, MAX_SECRET_INPUT)?)
}

/// Refuses `-` for both files: stdin can be read once.
fn one_stdin(link_file: Option<&Path>, claim_file: Option<&Path>) -> anyhow::Result<()> {
    let stdin = |p: Option<&Path>| p.is_some_and(|p| p.as_os_str() == "-");
    if stdin(link_file) && stdin(claim_file) {
        bail!("--link-file and --claim-file cannot both be - (stdin)");
    }
    Ok(())
}

fn parse_claim(text: &str) -> anyhow::Result<Uuid> {
    Uuid::try_parse(text).map_err(|_| anyhow::anyhow!("the device claim is not a UUID"))
}

/// The share link, from the argument or its file.
fn share_link(link: Option<&str>, file: Option<&Path>) -> anyhow::Result<ShareUrl> {
    let text = secret_input(link, file, "share link")?
        .context("give the share link as an argument or with --link-file")?;
    Ok(ShareUrl::parse(&text)?)
}

impl ReceiveArgs {
    /// The share link, from the argument or --link-file.
    pub fn share_link(&self) -> anyhow::Result<ShareUrl> {
        share_link(self.link.as_deref(), self.link_file.as_deref())
    }

    /// The device claim, from --claim or --claim-file, if given.
    pub fn device_claim(&self) -> anyhow::Result<Option<Uuid>> {
        secret_input(
            self.claim.map(|c| c.to_string()).as_deref(),
            self.claim_file.as_deref(),
            "device claim",
        )?
        .map(|text| parse_claim(&text))
        .transpose()
    }
}

impl ClaimArgs {
    /// The share link, from the argument or --link-file.
    pub fn share_link(&self) -> anyhow::Result<ShareUrl> {
        one_stdin(self.link_file.as_deref(), self.claim_file.as_deref())?;
        share_link(self.link.as_deref(), self.link_file.as_deref())
    }

    /// The device claim, from --claim or --claim-file.
    pub fn device_claim(&self) -> anyhow::Result<Uuid> {
        one_stdin(self.link_file.as_deref(), self.claim_file.as_deref())?;
        let text = secret_input(
            self.claim.map(|c| c.to_string()).as_deref(),
            self.claim_file.as_deref(),
            "device claim",
        )?
        .context("give the device claim with --claim or --claim-file")?;
        parse_claim(&text)
    }
}

/// A relay base URL: http:// or https:// only (reqwest's own refusal of another scheme says
/// "builder error: URL scheme is not allowed").
pub fn parse_relay_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "a relay URL starts with https:// (or http://), not {other}://"
        )),
    }
}

/// Parses `90`, `90s`, `15m`, `2h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 15m, 2h or 7d"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} (use s, m, h or d)")),
    };
    n.checked_mul(factor)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Runs one relay subcommand.
pub async fn run(cmd: RelayCommand) -> anyhow::Result<()> {
    match cmd {
        RelayCommand::Serve(args) => serve(args).await,
        RelayCommand::Share(args) => share(args).await,
        RelayCommand::Receive(args) => receive(args).await,
        RelayCommand::Relinquish(args) => {
            let link = args.share_link()?;
            let claim = args.device_claim()?;
            args.trust
                .client()?
                .relinquish(link.api_url(), claim, &client::request_id())
                .await?;
            eprintln!("relinquished: another device may now claim the mailbox");
            Ok(())
        }
        RelayCommand::Delete(args) => {
            let link = args.share_link()?;
            let claim = args.device_claim()?;
            args.trust
                .client()?
                .delete(link.api_url(), claim, &client::request_id())
                .await?;
            eprintln!("deleted");
            Ok(())
        }
    }
}

/// Room a create request needs besides its base64 payload: the preview and push token at the
/// largest the relay accepts (title 256, description 2048, image URL 2048, token type and data
/// 4096 each; see `proto::wire`), plus 1 KiB for field names, the payload type and the
/// mailbox configuration. A body limit below base64(max payload) + this would turn away
/// requests that every other check accepts.
const CREATE_ENVELOPE: usize = 256 + 2048 + 2048 + 2 * 4096 + 1024;

impl ServeArgs {
    /// Rejects settings the relay would accept and then misbehave with: a zero sweep interval
    /// (the sweeper's timer panics, so expired mailboxes are never deleted), a payload limit
    /// below the smallest sealed payload (every share gets 413), or a body limit too small to
    /// carry a payload of the largest size allowed.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.sweep_interval.is_zero() {
            bail!("--sweep-interval must be at least 1s (it is how often expired mailboxes are deleted)");
        }
        if self.max_payload < MIN_SEALED_LEN {
            bail!(
                "--max-payload {} is too small: a sealed payload holds at least a {MIN_SEALED_LEN}-byte \
                 AES-GCM IV and tag, so every share would be refused",
                self.max_payload
            );
        }
        let needed = self
            .max_payload
            .div_ceil(3)
            .checked_mul(4)
            .and_then(|b64| b64.checked_add(CREATE_ENVELOPE));
        match needed {
            Some(needed) if needed <= self.body_limit => Ok(()),
            Some(needed) => bail!(
                "--body-limit {} cannot carry a --max-payload of {} bytes: a create request \
                 may take {needed} bytes (the payload in base64, a preview and a push token); \
                 raise --body-limit to at least {needed} or lower --max-payload",
                self.body_limit,
                self.max_payload
            ),
            None => bail!("--max-payload {} is too large", self.max_payload),
        }
    }
}

fn secs(d: Duration) -> anyhow::Result<i64> {
    i64::try_from(d.as_secs()).context("duration too long")
}

/// The relay's database; a file that is not SQLite is said once, with its path (rusqlite's
/// error repeats "file is not a database" in each of its layers).
fn open_store(path: &Path) -> anyhow::Result<SqliteStore> {
    use crate::server::store::StoreError;
    match SqliteStore::open(path) {
        Ok(store) => Ok(store),
        Err(StoreError::Database(e))
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) =>
        {
            bail!(
                "cannot open the database {}: the file is not a SQLite database \
                 (is --db the right file?)",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot open the database {}", path.display())),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything is opened or bound: a bad setting leaves no database behind.
    args.check()?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let config = RelayConfig {
        public_base: args.public_url,
        limits: CreateLimits {
            max_payload: args.max_payload,
            default_lifetime_secs: secs(args.default_lifetime)?,
            max_lifetime_secs: secs(args.max_lifetime)?,
        },
        max_receivers: args.max_receivers,
        body_limit: args.body_limit,
        rate: RateLimits {
            per_client_rate: args.rate_per_client,
            per_client_burst: args.burst_per_client,
            global_rate: args.rate_global,
            global_burst: args.burst_global,
        },
        sweep_interval: args.sweep_interval,
        max_mailboxes: args.max_mailboxes,
        max_mailboxes_per_creator: args.max_mailboxes_per_client,
        trusted_proxies: args.trusted_proxies,
        push_webhook: args.push_webhook,
    };
    let store = open_store(&args.db)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(xtt_tls::server::config_from_files(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let (store, clock) = (Arc::new(store), Arc::new(SystemClock));
    let (server, scheme) = match tls {
        Some(tls) => (
            RelayServer::start_tls(listener, tls, store, clock, config).await?,
            "https",
        ),
        None => (
            RelayServer::start(listener, store, clock, config).await?,
            "http",
        ),
    };
    eprintln!("relay listening on {scheme}://{}", server.local_addr());
    tokio::select! {
        result = server.wait() => result.context("relay stopped")?,
        _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
    }
    Ok(())
}

fn read_content(args: &ShareArgs) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text = xtt_fsio::secret_text(
        args.content.as_deref(),
        args.content_file.as_deref(),
        "content",
        MAX_CONTENT_INPUT,
    )?
    .context("give the content with --content or --content-file")?;
    match serde_json::from_str(&text).context("the content is not valid JSON")? {
        serde_json::Value::Object(map) => Ok(map),
        _ => bail!("the content must be a JSON object"),
    }
}

async fn share(args: ShareArgs) -> anyhow::Result<()> {
    let info = ProvisioningInfo::new(args.format.clone(), read_content(&args)?);
    let mut rights = AccessRights::parse(&args.access)?;
    let mut sender = None;
    let plaintext = if args.confirm {
        if !(rights.read && rights.write) {
            eprintln!("note: --confirm needs read and write rights; using RWD");
            rights = AccessRights::ALL;
        }
        let key = match &args.signing_key {
            Some(path) => {
                let pem = Zeroizing::new(
                    xtt_fsio::read_limited(path, MAX_KEY_FILE)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                );
                let pem = std::str::from_utf8(&pem)
                    .ok()
                    .context("the signing key is not a P-256 PKCS#8 PEM key")?;
                SigningKey::from_pkcs8_pem(pem)
                    .context("the signing key is not a P-256 PKCS#8 PEM key")?
            }
            None => SigningKey::random(&mut OsRng),
        };
        eprintln!(
            "signing key fingerprint: {}",
            fingerprint(key.verifying_key())
        );
        let (state, message1) = SenderConfirm::start(&info, key);
        sender = Some(state);
        message1
    } else {
        info.to_bytes()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let request = ShareRequest {
        plaintext,
        display: DisplayInformation {
            title: args.title,
            description: args.description,
            image_url: args.image_url.into(),
        },
        vertical: args.vertical.map(Vertical::from),
        cipher: if args.aes256 {
            PayloadType::Aes256Gcm
        } else {
            PayloadType::Aes128Gcm
        },
        rights,
        expires_at: now.saturating_add(secs(args.expires_in)?),
        notification_token: None,
        attestation: None,
    };
    let client = args.trust.client()?;
    let shared = client::share(&client, &args.relay, &request).await?;
    let link = shared.link.to_link();
    println!("{}", link.as_str());
    if args.qr {
        let code =
            qrcode::QrCode::new(link.as_bytes()).context("the link is too long for a QR code")?;
        println!(
            "{}",
            code.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        );
    }
    eprintln!("{}", initiator_claim_note(shared.claim));
    std::io::stdout().flush()?;
    if let Some(state) = sender {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message("waiting for the recipient's TxInfo");
        spinner.enable_steady_tick(Duration::from_millis(120));
        let patience = Patience {
            poll: Duration::from_millis(500),
            timeout: args.timeout,
        };
        let result = client::confirm_as_sender(&client, &shared, &state, patience).await;
        spinner.finish_and_clear();
        result?;
        eprintln!("confirmed: the recipient verified our signature and deleted the mailbox");
    }
    Ok(())
}

async fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    one_stdin(args.link_file.as_deref(), args.claim_file.as_deref())?;
    let link = args.share_link()?;
    link.require_secret()?;
    let claim = args.device_claim()?.unwrap_or_else(Uuid::new_v4);
    eprintln!("recipient claim: {claim}");
    let client = args.trust.client()?;
    let patience = Patience {
        poll: Duration::from_millis(500),
        timeout: args.timeout,
    };
    let received = client::receive(&client, &link, claim, patience).await?;
    eprintln!(
        "\"{}\" (mailbox expires {})",
        received.display.title, received.expiration
    );
    if let Some(done) = &received.confirmation {
        eprintln!(
            "confirmed by sender key {}; endorsed key {}",
            fingerprint(&done.sender_key),
            fingerprint(done.receiver_key.verifying_key())
        );
        if let Some(path) = &args.key_out {
            let pem = done
                .receiver_key
                .to_pkcs8_pem(LineEnding::LF)
                .context("cannot encode the key")?;
            write_private(path, pem.as_bytes())?;
        }
    }
    let json = zeroize::Zeroizing::new(serde_json::to_vec_pretty(&received.info)?);
    match &args.out {
        Some(path) => {
            write_private(path, &json)?;
            eprintln!("saved to {}", path.display());
        }
        None => {
            std::io::stdout().write_all(&json)?;
            println!();
        }
    }
    if args.relinquish && received.confirmation.is_none() {
        client
            .relinquish(link.api_url(), claim, &client::request_id())
            .await?;
        eprintln!("relinquished");
    }
    Ok(())
}

/// The link as a terminal QR code (two modules per character cell, with quiet zone).
pub fn qr_text(link: &str) -> anyhow::Result<String> {
    let code =
        qrcode::QrCode::new(link.as_bytes()).context("the link is too long for a QR code")?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

/// Writes a secret file crash-safely (0600; see [`xtt_fsio`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    xtt_fsio::write_secret(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Top {
        #[command(subcommand)]
        cmd: RelayCommand,
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn command_line_parses() {
        use clap::CommandFactory as _;
        Top::command().debug_assert();
        let top = Top::try_parse_from([
            "xtt",
            "share",
            "--relay",
            "http://127.0.0.1:1",
            "--content",
            "{}",
            "--vertical",
            "car",
        ])
        .unwrap();
        assert!(matches!(
            top.cmd,
            RelayCommand::Share(ShareArgs {
                vertical: Some(VerticalArg::Car),
                ..
            })
        ));
        assert!(Top::try_parse_from(["xtt", "share", "--relay", "http://x"]).is_err());
    }

    fn serve_args(extra: &[&str]) -> (tempfile::TempDir, Top) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relay.db");
        let mut argv = vec!["xtt", "serve", "--listen", "127.0.0.1:0", "--db"];
        argv.push(db.to_str().unwrap());
        argv.extend_from_slice(extra);
        let top = Top::try_parse_from(argv).unwrap();
        (dir, top)
    }

    #[test]
    fn default_serve_settings_pass_the_check() {
        let (_dir, top) = serve_args(&[]);
        let RelayCommand::Serve(args) = top.cmd else {
            panic!("not serve")
        };
        args.check().unwrap();
        // The smallest body limit that carries a 3000-byte payload is accepted.
        let (_dir, top) = serve_args(&["--max-payload", "3000", "--body-limit", "17568"]);
        let RelayCommand::Serve(args) = top.cmd else {
            panic!("not serve")
        };
        args.check().unwrap();
    }

    #[tokio::test]
    async fn unusable_serve_settings_are_refused_before_starting() {
        for (extra, expected) in [
            (
                &["--sweep-interval", "0s"][..],
                "--sweep-interval must be at least 1s",
            ),
            (
                &["--sweep-interval", "0"][..],
                "--sweep-interval must be at least 1s",
            ),
            (&["--max-payload", "0"][..], "--max-payload 0 is too small"),
            (
                &["--max-payload", "27"][..],
                "--max-payload 27 is too small",
            ),
            (
                &["--max-payload", "65536"][..],
                "--body-limit 65536 cannot carry a --max-payload of 65536 bytes",
            ),
            (
                &["--max-payload", "3000", "--body-limit", "17567"][..],
                "raise --body-limit to at least 17568",
            ),
            (&["--body-limit", "0"][..], "--body-limit 0 cannot carry"),
            (
                &["--max-payload", &usize::MAX.to_string()][..],
                "is too large",
            ),
        ] {
            let (dir, top) = serve_args(extra);
            // A relay that starts despite the setting would serve until stopped.
            let e = tokio::time::timeout(Duration::from_secs(10), run(top.cmd))
                .await
                .unwrap_or_else(|_| panic!("{extra:?}: the relay started"))
                .unwrap_err();
            assert!(format!("{e:#}").contains(expected), "{extra:?}: {e:#}");
            // Refused before the database is created or the address bound.
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                0,
                "{extra:?}"
            );
        }
    }

    fn help_of(sub: &str) -> String {
        use clap::CommandFactory as _;
        let mut top = Top::command();
        top.find_subcommand_mut(sub)
            .unwrap()
            .render_long_help()
            .to_string()
    }

    #[test]
    fn each_claim_command_shows_its_own_example() {
        let relinquish = help_of("relinquish");
        assert!(
            relinquish.contains("xtt relay relinquish --link-file link.txt --claim-file"),
            "{relinquish}"
        );
        assert!(!relinquish.contains("xtt relay delete"), "{relinquish}");
        let delete = help_of("delete");
        assert!(
            delete.contains("xtt relay delete --link-file link.txt --claim-file"),
            "{delete}"
        );
        assert!(!delete.contains("xtt relay relinquish"), "{delete}");
    }

    #[test]
    fn the_share_hint_keeps_the_claim_off_the_command_line() {
        let claim = Uuid::new_v4();
        let note = initiator_claim_note(claim);
        assert!(
            note.starts_with(&format!("initiator claim: {claim}\n")),
            "{note}"
        );
        assert!(note.contains("--claim-file"), "{note}");
        // The claim appears once: as the value to save, never inside a suggested command.
        assert_eq!(note.matches(&claim.to_string()).count(), 1, "{note}");
        assert!(!note.contains("--claim "), "{note}");
    }

    #[test]
    fn qr_code_of_a_share_link_is_square() {
        let link = "https://relay.example.com/v1/m/2bba630e-519b-11ec-bf63-0242ac130002?v=c#hXlr6aRC7KgJpOLTNZaLsw";
        let text = qr_text(link).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let width = lines[0].chars().count();
        // Version 4 (33 modules) or more, plus a 4-module quiet zone each side.
        assert!(width >= 41, "{width}");
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
    }

    #[test]
    fn private_files_are_0600_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
