//! `xtt client provision`: identity provisioning against an XTT server, with the C client's
//! flags, inputs and outputs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use xtt_proto::SuiteSpec;

/// Client commands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Provision this device's identity with a server (the C tool's `runclient`).
    #[command(
        long_about = "Run one XTT identity-provisioning handshake: prove membership of a DAA \
                      group, check the server's certificate against the root, and receive a \
                      ClientID bound to a fresh long-term ECDSA key. Writes what the C client \
                      writes: client_id.txt (the ClientID as text), longterm_priv.bin (the key \
                      pair, 0600) and longterm_cert.bin (a self-signed X.509 certificate for \
                      the key with the ClientID as its name). Inputs are the C client's files \
                      (daa_gpk.bin, daa_cred.bin, daa_secretkey.bin, basename.bin, \
                      root_cert.bin), by default in --dir; every flag of the C client works.\n\n\
                      The server is --server HOST:PORT (as `xtt bench` and `xtt update fetch` \
                      spell it) or the C client's -a HOST and -p PORT, not both.",
        after_long_help = "Examples:\n  \
            xtt client provision --dir acme-sensors/members/000001\n  \
            xtt client provision -a 10.0.0.5 -p 4444 -s X25519_LRSW_ECDSAP256_AES256GCM_SHA512\n  \
            xtt client provision --dir dev1 --server xtt.example.net:4444\n  \
            xtt client provision --dir dev1 -q dev1/req_id.bin     # ask for a ClientID\n  \
            xtt info dev1                                          # what it got"
    )]
    Provision(ProvisionArgs),
    /// Open a session as a provisioned device and exchange records (stdin/stdout or a socket).
    #[command(
        long_about = crate::connect::LONG_ABOUT,
        after_long_help = crate::connect::AFTER_LONG_HELP
    )]
    Connect(crate::connect::ConnectArgs),
}

/// Flags of the C client (`xtt runclient`), plus --dir.
#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// Directory of the client's files; the file flags default to the C names in it.
    #[arg(long, default_value = ".", visible_aliases = ["client-dir", "xtt-dir"])]
    dir: PathBuf,
    /// Server host (or --server).
    #[arg(short = 'a', long = "serverhost", default_value = "127.0.0.1")]
    serverhost: String,
    /// Server port (or --server).
    #[arg(short = 'p', long = "port", default_value_t = 4444)]
    port: u16,
    /// The server as HOST:PORT (an IPv6 address in brackets), instead of -a and -p.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_server, conflicts_with_all = ["serverhost", "port"])]
    server: Option<ServerAddr>,
    /// Suite: a C name (e.g. X25519_LRSW_ECDSAP256_CHACHA20POLY1305_SHA512) or 1-6 (5 and 6
    /// authenticate records without encrypting them).
    #[arg(short = 's', long = "suitespec", default_value = "X25519_LRSW_ECDSAP256_CHACHA20POLY1305_SHA512", value_parser = parse_suite)]
    suitespec: SuiteSpec,
    /// Requested ClientID, 16 raw bytes [default: none, the server chooses].
    #[arg(short = 'q', long = "requestid", value_name = "FILE")]
    requestid: Option<PathBuf>,
    /// DAA group public key [default: DIR/daa_gpk.bin].
    #[arg(short = 'd', long = "daagpk", value_name = "FILE")]
    daagpk: Option<PathBuf>,
    /// DAA credential [default: DIR/daa_cred.bin].
    #[arg(short = 'c', long = "daacred", value_name = "FILE")]
    daacred: Option<PathBuf>,
    /// DAA member secret key [default: DIR/daa_secretkey.bin].
    #[arg(short = 'k', long = "daasecret", value_name = "FILE")]
    daasecret: Option<PathBuf>,
    /// Root certificate [default: DIR/root_cert.bin].
    #[arg(short = 'e', long = "rcert", value_name = "FILE")]
    rcert: Option<PathBuf>,
    /// Basename [default: DIR/basename.bin].
    #[arg(short = 'n', long = "basename", value_name = "FILE")]
    basename: Option<PathBuf>,
    /// Where to write the assigned ClientID [default: DIR/client_id.txt].
    #[arg(short = 'i', long = "assignedid", value_name = "FILE")]
    assignedid: Option<PathBuf>,
    /// Where to write the long-term key's X.509 certificate [default: DIR/longterm_cert.bin].
    #[arg(short = 'b', long = "longtermpub", value_name = "FILE")]
    longtermpub: Option<PathBuf>,
    /// Where to write the long-term key pair [default: DIR/longterm_priv.bin].
    #[arg(short = 'v', long = "longtermpriv", value_name = "FILE")]
    longtermpriv: Option<PathBuf>,
    /// Seconds to wait for each step (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Trust-anchor store: take the roots from its xtt-root anchors with the transport role
    /// valid now (instead of --rcert), and record the provisioned identity in it.
    #[arg(
        long,
        value_name = "STORE",
        conflicts_with = "rcert",
        visible_alias = "store"
    )]
    anchors: Option<PathBuf>,
}

/// Parses a suite as the C client names it, or its number.
pub(crate) fn parse_suite(s: &str) -> Result<SuiteSpec, String> {
    SuiteSpec::ALL
        .into_iter()
        .find(|suite| suite.name().eq_ignore_ascii_case(s) || suite.to_u16().to_string() == s)
        .ok_or_else(|| {
            let names: Vec<_> = SuiteSpec::ALL.iter().map(|s| s.name()).collect();
            format!("unknown suite {s:?}; one of: {}", names.join(", "))
        })
}

/// A server address as `--server` takes it: a host (name, IPv4, or IPv6 in brackets) and a
/// port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerAddr {
    host: String,
    port: u16,
}

impl ServerAddr {
    /// The server of `--server`, else of `-a HOST -p PORT` (clap refuses both at once).
    pub(crate) fn chosen(server: Option<&ServerAddr>, host: &str, port: u16) -> ServerAddr {
        server.cloned().unwrap_or_else(|| ServerAddr {
            host: host.to_owned(),
            port,
        })
    }
}

/// `HOST:PORT`, an IPv6 host in brackets (so `-a ::1` is `[::1]:PORT` too).
impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') && !self.host.starts_with('[') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `--server HOST:PORT`: a host name, an IPv4 address or a bracketed IPv6 address, and a
/// port.
pub(crate) fn parse_server(s: &str) -> Result<ServerAddr, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{s:?}: expected [IPV6]:PORT"))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|e| format!("{s:?}: {ip:?} is not an IPv6 address ({e})"))?;
        (ip, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected HOST:PORT (e.g. 10.0.0.5:4444)"))?;
        if host.contains(':') {
            return Err(format!(
                "{s:?}: an IPv6 address goes in brackets, e.g. [::1]:4444"
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!("{s:?}: no host before the port"));
    }
    let port = port
        .parse()
        .map_err(|e| format!("{s:?}: {port:?} is not a port ({e})"))?;
    Ok(ServerAddr {
        host: host.to_owned(),
        port,
    })
}

/// Input and output paths, resolved against --dir (shared with the demo and the TTE device's
/// XTT hand-over).
pub(crate) use xtt_server::client_files::ClientFiles as ClientPaths;

pub(crate) fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Provision(a) => provision(a),
        ClientCommand::Connect(a) => crate::connect::run(a),
    }
}

fn provision(a: ProvisionArgs) -> anyhow::Result<()> {
    let defaults = ClientPaths::in_dir(&a.dir);
    let paths = ClientPaths {
        gpk: a.daagpk.unwrap_or(defaults.gpk),
        cred: a.daacred.unwrap_or(defaults.cred),
        secret: a.daasecret.unwrap_or(defaults.secret),
        root: a.rcert.unwrap_or(defaults.root),
        basename: a.basename.unwrap_or(defaults.basename),
        requested: a.requestid,
        client_id: a.assignedid.unwrap_or(defaults.client_id),
        cert: a.longtermpub.unwrap_or(defaults.cert),
        key: a.longtermpriv.unwrap_or(defaults.key),
    };
    let store = a
        .anchors
        .as_deref()
        .map(crate::client_anchors::DeviceAnchors::open)
        .transpose()?;
    let roots = store.as_ref().map(|s| s.roots()).transpose()?;
    let provisioner =
        paths.provisioner_with_roots(a.suitespec, Duration::from_secs(a.timeout), roots)?;
    // After the inputs, before connecting: the server registers the ClientID during the
    // handshake, so outputs that cannot be written must stop us first.
    paths.check_outputs()?;
    let target = ServerAddr::chosen(a.server.as_ref(), &a.serverhost, a.port).to_string();
    let identity = crate::block_on(provisioner.provision(target.as_str()))
        .with_context(|| format!("provisioning with {target}"))?;
    paths.write_results(&identity)?;
    let recorded = match store {
        Some(mut s) => Some(s.record(&identity, &target)?),
        None => None,
    };
    println!("provisioned ClientID {}", identity.client_id);
    println!("  server        {target} ({})", a.suitespec.name());
    println!("  group id      {}", hex::encode(identity.group_id.0));
    println!("  wrote         {}", paths.client_id.display());
    println!("                {} (0600)", paths.key.display());
    println!("                {}", paths.cert.display());
    if let Some((store, fp)) = recorded {
        println!(
            "  recorded      device-identity {} in {}",
            fp.short(),
            store.display()
        );
    }
    Ok(())
}
