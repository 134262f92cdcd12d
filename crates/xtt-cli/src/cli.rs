//! The top-level command line.

use clap::{Parser, Subcommand};

use crate::{bench, cert, client, completions, demo, group, info, keys, registry, server};

const ABOUT: &str = "XTT for IoT operators: keys, certificates, DAA groups and provisioning";

const LONG_ABOUT: &str = "\
XTT (Xaptum Trusted Transit) gives devices an identity in the field: a device proves it belongs \
to its maker's group with an anonymous DAA group signature, and a server assigns it a ClientID \
and registers its long-term key.

`xtt` makes and inspects everything this needs. It reads and writes the same files as the C \
`xtt` and `ecdaa` tools, so either tool can use the other's keys, certificates and DAA groups.

The pieces, in the order you make them:
  1. a root key pair and root certificate      (xtt keys generate, xtt cert root)
  2. a server key pair and server certificate  (xtt cert server --generate-key)
  3. a DAA group and its members               (xtt group create, xtt group enroll)
  4. the server, with its registry              (xtt server)
  5. devices provisioning                       (xtt client provision; xtt bench for load)
Look at any of these files with `xtt info FILE`. `xtt demo` does all of it at once.";

const AFTER_LONG_HELP: &str = "\
Examples:
  # Everything at once, in a throwaway directory:
  xtt demo

  # A root, a server certificate signed by it, a group with 10 devices:
  xtt cert root --generate-key
  xtt cert server --generate-key
  xtt group create acme-sensors
  xtt group enroll acme-sensors --count 10
  xtt info root_cert.bin server_cert.bin acme-sensors

  # Serve them, provision one device, load-test:
  xtt server --group acme-sensors &
  xtt client provision --dir acme-sensors/members/000001 -e root_cert.bin
  xtt bench --group acme-sensors --rcert root_cert.bin --devices 100

  # Shell completions:
  xtt completions bash > ~/.local/share/bash-completion/completions/xtt";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "xtt",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// More log output on stderr (--verbose info, twice debug, three times trace); RUST_LOG
    /// overrides. (No `-v`: `xtt client provision -v` is the C client's key file flag.)
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Every subcommand family. Another crate's family is one more variant here (its `Subcommand`
/// type) and one match arm in `main::run`. A family whose `Args` struct has a long help names it
/// here with `long_about`: clap lets a variant's one-line doc comment replace the struct's.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate ECDSA P-256 key pairs (roots, servers, devices).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Create root and server certificates (and a device's X.509 certificate).
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Explain any key, certificate, ClientID or DAA file, or a group or client directory.
    #[command(long_about = info::LONG_ABOUT)]
    Info(info::InfoArgs),
    /// DAA groups, issuer side: create a group, enroll members.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Run the XTT server (embedded registry, metrics, graceful shutdown).
    #[command(long_about = server::LONG_ABOUT)]
    Server(server::ServerArgs),
    /// The server's registry without a server: migrate, stats, export (SQLite or PostgreSQL).
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// The device side: provision an identity with a server, then open sessions with it.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Load generator: N concurrent simulated devices against a server.
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::BenchArgs),
    /// Quickstart: throwaway root, server, group and devices, provisioned end to end.
    #[command(long_about = demo::LONG_ABOUT)]
    Demo(demo::DemoArgs),
    /// Transitive Trust Enrollment: Transfer Agent, Controller, manufacturer and device tools.
    #[command(subcommand)]
    Tte(tte_server::cli::TteCommand),
    /// Secure credential transfer through an expiring relay mailbox.
    #[command(subcommand)]
    Relay(xtt_relay::cli::RelayCommand),
    /// The trust-anchor store: every root, group key, enrollment secret and update key, and the
    /// trust graph between them.
    #[command(long_about = xtt_anchors::cli::ANCHORS_LONG_ABOUT)]
    Anchors(xtt_anchors::cli::AnchorsArgs),
    /// Signed software updates (SUIT envelopes with COSE_Sign1): keygen, sign, verify, fetch.
    #[command(long_about = crate::update::LONG_ABOUT)]
    Update(crate::update::UpdateArgs),
    /// Print a shell completion script.
    #[command(long_about = completions::LONG_ABOUT)]
    Completions(completions::CompletionsArgs),
}
