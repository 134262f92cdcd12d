//! The top-level command line.

use clap::{Parser, Subcommand};

use crate::{cert, completions, group, info, keys};

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
Look at any of these files with `xtt info FILE`.";

const AFTER_LONG_HELP: &str = "\
Examples:
  # A root, a server certificate signed by it, a group with 10 devices:
  xtt cert root --generate-key
  xtt cert server --generate-key
  xtt group create acme-sensors
  xtt group enroll acme-sensors --count 10
  xtt info root_cert.bin server_cert.bin acme-sensors

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
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Every subcommand family. Another crate's family is one more variant here (its `Subcommand`
/// type) and one match arm in `main::run`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate ECDSA P-256 key pairs (roots, servers, devices).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Create root and server certificates (and a device's X.509 certificate).
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Explain any key, certificate, ClientID or DAA file, or a group or client directory.
    Info(info::InfoArgs),
    /// DAA groups, issuer side: create a group, enroll members.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}
