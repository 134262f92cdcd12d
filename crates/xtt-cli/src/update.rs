//! `xtt update`: the SUIT commands of xtt-anchors (keygen, sign, verify, show) plus `fetch`,
//! the device side of update delivery over an XTT session (it needs the session client, which
//! xtt-anchors does not depend on).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use xtt_anchors::cli::{parse_uuid, Uuid16};
use xtt_anchors::update::{precheck_envelope, UpdateTarget};
use xtt_anchors::AnchorStore;
use xtt_files::client_dir::ClientDir;
use xtt_proto::session::SessionClientConfig;
use xtt_server::update_fetch::{download_update, install_update, FetchOptions};
use xtt_server::{SessionClient, SessionClientOptions};

use crate::connect::TransportArg;
use crate::server_anchors::unix_now;

pub(crate) const LONG_ABOUT: &str = "\
Signed software updates in a subset of SUIT (RFC 9124 information model, CBOR envelope whose \
authentication wrapper is a COSE_Sign1 ES256 over the manifest digest). Vendor side: keygen, \
sign. Device side: verify (files at hand) or fetch (from an XTT server over a session).

fetch runs a session handshake with the identity in --client-dir (client_id.txt, \
longterm_priv.bin, longterm_cert.bin from `xtt client provision`), trusting the xtt-root \
anchors of --anchors. It asks the server (`xtt server --updates DIR`) for its current update, \
checks the envelope first (signed by an update-key anchor valid now, for this vendor and class, \
sequence number newer than the last one accepted) and only then downloads the image, in chunks \
it requests one at a time (asking again after a timeout, so lost records cost a retry). The \
image must have the manifest's size and SHA-256. It is written crash-safely to --out (temporary \
file, fsync, rename, fsync of the directory); the sequence number is recorded after that. On \
any refusal nothing is written.";

const AFTER_LONG_HELP: &str = "\
Examples:
  xtt update keygen --out vendor
  xtt update sign --key vendor.key --image fw.bin --sequence 7 \\
      --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45 --out updates/fw7.suit
  cp fw.bin updates/fw7.bin && xtt server --group acme --updates updates
  xtt anchors --store device.db import xtt-root root_cert.bin
  xtt anchors --store device.db import update-key vendor.pub \\
      --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45
  xtt update fetch --server 127.0.0.1:4444 --client-dir dev1 --anchors device.db \\
      --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45 --out /var/lib/fw/current.bin";

const FETCH_EXAMPLES: &str = "\
Examples:
  # Once: trust the server's root and the vendor's update key.
  xtt anchors --store device.db import xtt-root root_cert.bin
  xtt anchors --store device.db import update-key vendor.pub \\
      --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45
  # Then, with the identity `xtt client provision --dir dev1` wrote:
  xtt update fetch --server 127.0.0.1:4444 --client-dir dev1 --anchors device.db \\
      --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45 --out fw.bin --transport udp";

/// `xtt update`.
#[derive(Debug, Args)]
// Its summary and long help are set on the subcommand in `cli.rs`.
#[command(after_long_help = AFTER_LONG_HELP)]
pub(crate) struct UpdateArgs {
    #[command(subcommand)]
    command: UpdateCommand,
}

#[derive(Debug, Subcommand)]
enum UpdateCommand {
    #[command(flatten)]
    Files(xtt_anchors::cli::UpdateCommand),
    /// Device side: fetch the server's current update over an XTT session, verify, install.
    #[command(after_long_help = FETCH_EXAMPLES)]
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// The XTT server (sessions enabled with --updates).
    #[arg(long, value_name = "ADDR")]
    server: SocketAddr,
    /// The provisioned identity (client_id.txt, longterm_priv.bin, longterm_cert.bin).
    #[arg(long, value_name = "DIR", visible_aliases = ["dir", "xtt-dir"])]
    client_dir: PathBuf,
    /// The device's anchor store: xtt-root anchors for the session, update-key anchors and
    /// accepted sequence numbers for the update.
    #[arg(
        long,
        value_name = "STORE",
        env = "XTT_ANCHOR_STORE",
        visible_alias = "store"
    )]
    anchors: PathBuf,
    /// Where to install the image.
    #[arg(long, value_name = "FILE", visible_alias = "output")]
    out: PathBuf,
    /// The vendor UUID this device accepts.
    #[arg(long, value_parser = parse_uuid)]
    vendor_id: Uuid16,
    /// The class UUID this device accepts.
    #[arg(long, value_parser = parse_uuid)]
    class_id: Uuid16,
    /// The component this device installs (the manifest's must be the same).
    #[arg(long, default_value = "firmware")]
    component: String,
    /// Transport to the server.
    #[arg(long, value_enum, default_value_t = TransportArg::Tcp)]
    transport: TransportArg,
    /// Shorthand for --transport udp.
    #[arg(long, conflicts_with = "transport")]
    udp: bool,
    /// Seconds to wait for each answer before asking again (5 tries).
    #[arg(long, default_value_t = 2)]
    timeout: u64,
}

pub(crate) fn run(args: UpdateArgs) -> anyhow::Result<()> {
    match args.command {
        UpdateCommand::Files(c) => {
            if let xtt_anchors::cli::UpdateCommand::Sign { key, .. } = &c {
                // The C-compatible key readers warn about loose modes; this one is read in
                // xtt-anchors, which does not depend on them.
                xtt_files::fsio::warn_if_exposed(key, "update signing key");
            }
            xtt_anchors::cli::run_update(
                xtt_anchors::cli::UpdateArgs { command: c },
                &mut crate::output::Stdout::lock(),
            )
        }
        UpdateCommand::Fetch(a) => fetch(a),
    }
}

fn fetch(a: FetchArgs) -> anyhow::Result<()> {
    let now = unix_now();
    let (client_id, longterm_key) = ClientDir::new(&a.client_dir)
        .read_provisioned()
        .with_context(|| format!("reading the identity in {}", a.client_dir.display()))?;
    if !a.anchors.exists() {
        anyhow::bail!("{}: no anchor store here", a.anchors.display());
    }
    let mut store = AnchorStore::open(&a.anchors)
        .with_context(|| format!("cannot open anchor store {}", a.anchors.display()))?;
    let roots = store.xtt_roots(now)?;
    if roots.is_empty() {
        anyhow::bail!(
            "{}: no xtt-root anchor valid now: cannot authenticate the server",
            a.anchors.display()
        );
    }
    let target = UpdateTarget {
        vendor_id: a.vendor_id,
        class_id: a.class_id,
        component: a.component.as_bytes(),
    };
    let config = SessionClientConfig {
        roots: std::sync::Arc::new(roots),
        client_id,
        longterm_key,
    };
    let udp = TransportArg::chosen(a.transport, a.udp) == TransportArg::Udp;
    let mut options = if udp {
        SessionClientOptions::udp()
    } else {
        SessionClientOptions::tcp()
    };
    options.timeout = Duration::from_secs(a.timeout.max(1));
    let fetch_options = FetchOptions {
        answer_timeout: Duration::from_secs(a.timeout.max(1)),
        // Datagrams stay below a typical path MTU's worth of fragments.
        chunk: if udp {
            1024
        } else {
            FetchOptions::default().chunk
        },
        ..FetchOptions::default()
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("  fetching [{bar:40.cyan/blue}] {bytes}/{total_bytes}")?
            .progress_chars("=> "),
    );
    let update = crate::block_on(async {
        let mut session = SessionClient::connect(a.server, config, options, None)
            .await
            .with_context(|| format!("session with {}", a.server))?;
        download_update(
            &mut session,
            &fetch_options,
            |envelope| {
                precheck_envelope(&store, envelope, &target, now).map(|a| a.manifest.image_size)
            },
            |have, all| {
                bar.set_length(all);
                bar.set_position(have);
            },
        )
        .await
        .with_context(|| format!("fetching the update from {}", a.server))
    });
    bar.finish_and_clear();
    let update = update?;
    let accepted = install_update(&mut store, &update, &target, &a.out, now)
        .with_context(|| format!("installing into {}", a.out.display()))?;
    let m = &accepted.manifest;
    println!(
        "installed {} ({} bytes, SHA-256 {}): sequence {} (previous {}), signed by update anchor {}",
        a.out.display(),
        m.image_size,
        hex::encode(m.image_digest),
        m.sequence_number,
        accepted
            .previous_sequence
            .map_or("none".into(), |p| p.to_string()),
        accepted.signer.short()
    );
    Ok(())
}
