//! `xtt anchors ...` and `xtt update ...`, ready for the `xtt` binary to mount:
//!
//! ```text
//! #[derive(clap::Subcommand)]
//! enum Command {
//!     Anchors(xtt_anchors::cli::AnchorsArgs),
//!     Update(xtt_anchors::cli::UpdateArgs),
//! }
//! // ...
//! Command::Anchors(a) => xtt_anchors::cli::run_anchors(a, &mut std::io::stdout().lock()),
//! Command::Update(u) => xtt_anchors::cli::run_update(u, &mut std::io::stdout().lock()),
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::anchor::{
    Anchor, AnchorKind, Fingerprint, Material, Provenance, Roles, SecretBytes, UnixSeconds,
    Validity,
};
use crate::fsio::{write_atomic, write_file};
use crate::material;
use crate::store::{AnchorStore, NewAnchor};
use crate::suit::{Envelope, Manifest};
use crate::update::{verify_update, UpdateSigningKey, UpdateTarget};

/// The long help of `xtt anchors`.
pub const ANCHORS_LONG_ABOUT: &str = "\
One store for every trust anchor of an installation: XTT root certificates (a device trusts its \
server), XTT server certificates, DAA group public keys (a server trusts a manufacturer's \
devices), TTE TaSecret/DevSecret (onboarding), TTE controller keys, update-signing keys, \
manufacturer keys and the device identities XTT provisioned.

Each anchor has a kind, the roles it serves (onboarding, attestation, update, transport), a \
SHA-256 fingerprint, a validity window, a provenance (imported by hand, delivered by TTE, \
provisioned by XTT, generated) and the anchors that vouched for it. Secrets are never printed: \
list, show and graph give only their fingerprints. The store is one SQLite file, created with \
mode 0600.

Fingerprints may be abbreviated to any unique prefix of at least 8 hex digits.

Examples:
  xtt anchors import xtt-root root_cert.bin --name 'Xaptum root'
  xtt anchors import daa-group daa_gpk.bin --basename basename.bin --vouched-by 3f2a9c01
  xtt anchors import update-key vendor.pub --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45 --vouched-by 3f2a9c01
  xtt anchors list
  xtt anchors show 3f2a9c01
  xtt anchors rotate 3f2a9c01 xtt-root new_root_cert.bin --window 7d
  xtt anchors graph --format svg --out trust.svg
  xtt anchors graph --impact 3f2a9c01";

/// `xtt anchors`: the store path, the time, and a subcommand.
#[derive(Debug, clap::Args)]
#[command(
    about = "Inspect and manage the trust anchors of this installation",
    long_about = ANCHORS_LONG_ABOUT
)]
pub struct AnchorsArgs {
    /// The anchor store (SQLite; created with mode 0600 by the first import; other commands
    /// refuse a missing one).
    #[arg(
        long,
        env = "XTT_ANCHOR_STORE",
        default_value = "anchors.db",
        global = true,
        visible_alias = "anchors"
    )]
    pub store: PathBuf,
    /// Evaluate validity at this time instead of now (Unix seconds or RFC 3339).
    #[arg(long, global = true, value_parser = parse_time, value_name = "TIME")]
    pub at: Option<UnixSeconds>,
    /// What to do.
    #[command(subcommand)]
    pub command: AnchorsCommand,
}

/// The `xtt anchors` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AnchorsCommand {
    /// List every anchor: fingerprint, kind, name, roles, state, provenance.
    #[command(after_long_help = "Examples:\n  \
        xtt anchors list\n  \
        xtt anchors list --kind daa-group --valid\n  \
        xtt anchors --store /var/lib/xtt/anchors.db list --at 2027-01-01T00:00:00Z")]
    List {
        /// Only anchors of this kind.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<AnchorKind>,
        /// Only anchors valid now.
        #[arg(long)]
        valid: bool,
    },
    /// Everything about one anchor (never a secret's bytes) and its relations.
    #[command(after_long_help = "Examples:\n  \
        xtt anchors show 3f2a9c01          # a unique prefix of the fingerprint `list` gives\n  \
        xtt anchors show 3f2a9c01 --at 2027-01-01T00:00:00Z")]
    Show {
        /// Fingerprint or unique prefix.
        fingerprint: String,
    },
    /// Import an anchor from a loose file (the `xtt` tool's formats, raw or PEM keys).
    #[command(long_about = IMPORT_LONG_ABOUT)]
    Import(ImportArgs),
    /// Import the anchors among the `xtt` tool's files in a directory (root_cert.bin;
    /// daa_gpk.bin with basename.bin); files already imported are skipped.
    #[command(long_about = "\
Migration from loose files: imports root_cert.bin and daa_gpk.bin + basename.bin from a \
directory laid out like the xtt tool's (e.g. its data/client or data/server folder). Running \
it again changes nothing: files already imported are skipped, and an anchor removed since \
(`xtt anchors remove` revokes it) is refused, with nothing imported, rather than brought back.

Example:
  xtt anchors import-dir /etc/xtt")]
    ImportDir {
        /// The directory.
        dir: PathBuf,
    },
    /// Export the whole store with its relations into a directory (secrets only if asked).
    #[command(long_about = "\
Writes one loose file per anchor (the formats `import` reads) and anchors.json, the index with \
kinds, names, roles, validity, provenance, fingerprints and edges. TTE secrets are left out \
unless --include-secrets is given (their files are then 0600). `import-bundle` reads it back.

Example:
  xtt anchors export-bundle /media/usb/anchors
  xtt anchors --store /var/lib/xtt/anchors.db import-bundle /media/usb/anchors")]
    ExportBundle {
        /// The directory (created if needed).
        dir: PathBuf,
        /// Also write TTE secrets.
        #[arg(long)]
        include_secrets: bool,
    },
    /// Import a directory written by export-bundle (fingerprints checked, one transaction;
    /// refused as a whole if it holds an anchor that was revoked with `remove`).
    #[command(long_about = "\
Imports a directory written by export-bundle, in one transaction. Each file is checked against \
its fingerprint in anchors.json, but the index itself is not signed: the provenance recorded \
is 'from bundle DIR', with the index's provenance kept only as a claim; a rotated-to edge is \
refused unless the old anchor's validity ends; edges show as 'recorded' (not verified) unless \
a signature checks them. Refused as a whole if it holds an anchor revoked with `remove`.")]
    ImportBundle {
        /// The directory.
        dir: PathBuf,
    },
    /// Write an anchor back out in its loose-file format.
    #[command(after_long_help = "Examples:\n  \
        xtt anchors export 3f2a9c01 --out root_cert.bin\n  \
        xtt anchors export 5d1e0b77 --out daa_gpk.bin      # also writes daa_gpk.bin.basename\n  \
        xtt anchors export 7be41d22 --out ta.secret --include-secret")]
    Export {
        /// Fingerprint or unique prefix.
        fingerprint: String,
        /// Where to write (a daa-group also writes OUT.basename).
        #[arg(long, short, visible_alias = "output")]
        out: PathBuf,
        /// Allow writing a TTE secret (file mode 0600).
        #[arg(long)]
        include_secret: bool,
    },
    /// Revoke an anchor: remove it and its relations, and refuse to import it again.
    #[command(long_about = "\
Revokes an anchor: removes it and its relations (what it vouched for is listed) and records its \
fingerprint as revoked. Every later import of it is refused (import, import-dir, import-bundle, \
and the XTT server and TTE services recording anchors), so re-running a migration or restoring \
an older bundle cannot bring a compromised key back. `list` and `show` still name it as \
revoked. To allow importing it again, run `xtt anchors unrevoke FINGERPRINT`.

Example:
  xtt anchors remove 3f2a9c01")]
    Remove {
        /// Fingerprint or unique prefix.
        fingerprint: String,
    },
    /// Undo a revocation: the anchor may be imported again (nothing is imported here).
    #[command(long_about = "\
Undoes `xtt anchors remove` for imports: the fingerprint is no longer refused. Nothing is \
imported by this command; import the anchor again afterwards, with the validity it should have \
(an import without --not-after makes it valid without end).

Example:
  xtt anchors unrevoke 3f2a9c01
  xtt anchors import daa-group daa_gpk.bin --basename basename.bin --not-after 2027-01-01T00:00:00Z")]
    Unrevoke {
        /// Fingerprint or unique prefix of a revoked anchor (as `list` shows them).
        fingerprint: String,
    },
    /// Replace an anchor: the new one is valid from now, the old one until the window ends.
    #[command(long_about = "\
Rotation adds the successor (same kind, same roles unless --roles is given) valid from now, and \
ends the old anchor's validity WINDOW from now. During the window both are accepted; afterwards \
only the new one. The graph shows the old anchor 'rotated to' the new one.

Example:
  xtt anchors rotate 3f2a9c01 xtt-root new_root_cert.bin --window 30d")]
    Rotate {
        /// The anchor being replaced (fingerprint or unique prefix).
        old: String,
        /// How long both stay valid: seconds, or a number with s, m, h or d.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        window: u64,
        /// The successor.
        #[command(flatten)]
        new: ImportArgs,
    },
    /// Record that one anchor vouches for another.
    #[command(long_about = "\
Records that one anchor vouches for another, as an edge of the trust graph that `show`, `graph` \
and `graph --impact` follow. An XTT root may vouch for a server certificate only if its \
signature is on it (checked now; refused otherwise). Every other edge has no signature the store \
could check: it is recorded as you state it, and labelled 'recorded' in the graph.

Example:
  xtt anchors vouch 3f2a9c01 7be41d22")]
    Vouch {
        /// The voucher.
        voucher: String,
        /// The anchor it vouches for.
        subject: String,
    },
    /// Allow an update key to sign for one more vendor id and class id.
    #[command(long_about = "\
An update key signs only for the vendor and device class it was imported for (`import \
update-key FILE --vendor-id V --class-id C`), so that one vendor's key cannot sign updates for \
another vendor's devices (and, with a high sequence number, block their genuine updates as \
rollbacks). This adds another vendor/class pair to a key, or gives one to a key stored before \
scopes existed: such a key signs nothing until it has one (`show` warns about it).

Example:
  xtt anchors scope 3f2a9c01 --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45")]
    Scope {
        /// The update key (fingerprint or unique prefix).
        fingerprint: String,
        /// The vendor UUID it may sign for.
        #[arg(long, value_parser = parse_uuid)]
        vendor_id: Uuid16,
        /// The device class UUID it may sign for.
        #[arg(long, value_parser = parse_uuid)]
        class_id: Uuid16,
    },
    /// Change the roles an anchor serves.
    #[command(after_long_help = "Examples:\n  \
        xtt anchors roles 3f2a9c01 transport\n  \
        xtt anchors roles 5d1e0b77 onboarding,attestation")]
    Roles {
        /// Fingerprint or unique prefix.
        fingerprint: String,
        /// Comma-separated: onboarding, attestation, update, transport.
        #[arg(value_parser = parse_roles)]
        roles: Roles,
    },
    /// Fill an empty store with a small demo installation (fresh keys, thrown away).
    #[command(long_about = "\
Fills an EMPTY store with a demo installation: a manufacturer key vouching for a DAA group and \
an update key (rotated to a successor), an operator's XTT root vouching for a server and a TTE \
controller, TTE secrets, and one provisioned device identity. Every private key is thrown away.

Example:
  xtt anchors --store /tmp/demo.db demo
  xtt anchors --store /tmp/demo.db graph --format svg --out /tmp/trust.svg")]
    Demo,
    /// Draw the trust graph, or list what a compromised key affects.
    #[command(long_about = "\
The trust cycle of this installation: which anchor vouches for which identity, group, server, \
controller and update key. As text (default), Graphviz DOT, or a self-contained SVG picture.

Each edge is labelled 'checked' (a signature verifies it: an XTT root's on a server \
certificate) or 'recorded' (an operator's, service's or bundle's statement, not verified).

With --impact FINGERPRINT, lists everything the recorded edges lead to from that anchor: what \
an attacker holding its key could affect, as far as those edges are right and complete.

Examples:
  xtt anchors graph
  xtt anchors graph --format svg --out trust.svg
  xtt anchors graph --format dot | dot -Tpng > trust.png
  xtt anchors graph --impact 3f2a9c01")]
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short, visible_alias = "output")]
        out: Option<PathBuf>,
        /// Show what this anchor vouches for, directly or transitively.
        #[arg(long, value_name = "FINGERPRINT")]
        impact: Option<String>,
    },
}

const IMPORT_LONG_ABOUT: &str = "\
Import an anchor from a loose file. Formats by kind:
  xtt-root         root_cert.bin, 81 bytes: root_id(16) || P-256 key(65)
  xtt-server       server certificate, 169 bytes (linked to its stored root after the root's
                   signature on it is checked)
  daa-group        daa_gpk.bin (258 bytes) with --basename basename.bin
  update-key, manufacturer, controller
                   P-256 public key: 65 raw bytes or PEM 'PUBLIC KEY'
  tte-ta-secret, tte-dev-secret
                   the raw secret, 16 to 1024 bytes (stored, never printed)
                   (an update-key also needs --vendor-id and --class-id: whose updates it
                   may sign; more with `xtt anchors scope`)
  device-identity  ClientID(16) || long-term P-256 key(65)
  tls-root         an X.509 CA certificate, PEM or DER (role transport: HTTPS clients such as
                   `xtt relay receive --anchors STORE` trust it besides the platform's roots)

Examples:
  xtt anchors import xtt-root root_cert.bin --name 'Xaptum root'
  xtt anchors import daa-group daa_gpk.bin --basename basename.bin --vouched-by 3f2a9c01
  xtt anchors import tte-ta-secret ta.secret --provenance tte --source 'enrolment 42'
  xtt anchors import tls-root relay-ca.pem --name 'Relay CA'";

/// What to import (also the successor in a rotation).
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// What the file holds: xtt-root, xtt-server, daa-group, update-key, manufacturer,
    /// controller, tte-ta-secret, tte-dev-secret, device-identity, tls-root.
    #[arg(value_parser = parse_kind)]
    pub kind: AnchorKind,
    /// The file.
    pub file: PathBuf,
    /// For daa-group: the basename file.
    #[arg(long)]
    pub basename: Option<PathBuf>,
    /// A name for people (default: kind and short fingerprint).
    #[arg(long)]
    pub name: Option<String>,
    /// Roles (comma-separated); default depends on the kind.
    #[arg(long, value_parser = parse_roles)]
    pub roles: Option<Roles>,
    /// An anchor that vouches for this one (repeatable).
    #[arg(long = "vouched-by", value_name = "FINGERPRINT")]
    pub vouched_by: Vec<String>,
    /// How the anchor came here.
    #[arg(long, value_enum, default_value_t = ProvenanceArg::Hand)]
    pub provenance: ProvenanceArg,
    /// Free text for the provenance (default: the file path).
    #[arg(long)]
    pub source: Option<String>,
    /// Valid from (Unix seconds or RFC 3339; default now).
    #[arg(long, value_parser = parse_time)]
    pub not_before: Option<UnixSeconds>,
    /// Valid until (Unix seconds or RFC 3339; default no end).
    #[arg(long, value_parser = parse_time)]
    pub not_after: Option<UnixSeconds>,
    /// For update-key (required on import): the vendor UUID whose updates it may sign. A
    /// rotation's successor inherits the old key's vendor and class unless given.
    #[arg(long, value_parser = parse_uuid, requires = "class_id")]
    pub vendor_id: Option<Uuid16>,
    /// For update-key (required on import): the device class UUID it may sign for.
    #[arg(long, value_parser = parse_uuid, requires = "vendor_id")]
    pub class_id: Option<Uuid16>,
}

/// Provenance on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProvenanceArg {
    /// Imported by hand.
    Hand,
    /// Delivered by TTE.
    Tte,
    /// Provisioned by XTT.
    Xtt,
    /// Generated here.
    Generated,
}

/// Graph output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Indented text.
    Text,
    /// Graphviz DOT.
    Dot,
    /// SVG picture (laid out here, no Graphviz needed).
    Svg,
}

const UPDATE_LONG_ABOUT: &str = "\
Signed software updates in a subset of SUIT (draft-ietf-suit-manifest, the CBOR form of the \
RFC 9124 information model): an envelope whose authentication wrapper holds a COSE_Sign1 \
(ES256) over the manifest digest; the manifest carries a sequence number, vendor and class \
ids, the component, and the image's SHA-256 digest and size.

Vendor side:
  xtt update keygen --out vendor            # vendor.key (0600) and vendor.pub
  xtt update sign --key vendor.key --image fw.bin --sequence 7 \\
      --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45 --out fw.suit

Device side (the vendor's key imported once, for the vendor and class it signs for:
  xtt anchors import update-key vendor.pub --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45):
  xtt update verify fw.suit --image fw.bin \\
      --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\
      --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45

verify refuses a signature by a key that is not an update anchor valid now or may not sign for \
the manifest's vendor and class (see `xtt anchors scope`), a sequence number \
not greater than the last one accepted for the component (rollback), another vendor or class, \
and an image whose size or digest differ. On success the sequence number is recorded in the \
store (unless --dry-run). --at TIME (which keys count as valid then) is accepted only with \
--dry-run: a verification as of another time never records a sequence number.";

/// `xtt update`.
#[derive(Debug, clap::Args)]
#[command(about = "Sign and verify software updates (SUIT subset, COSE_Sign1 ES256)", long_about = UPDATE_LONG_ABOUT)]
pub struct UpdateArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: UpdateCommand,
}

/// The `xtt update` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UpdateCommand {
    /// Make an update-signing key pair: OUT.key (PKCS#8 PEM, 0600) and OUT.pub (PEM). Existing
    /// files are never replaced unless --force is given: devices trust only the key they have,
    /// so losing it means rotating their anchors.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, short, visible_alias = "output")]
        out: PathBuf,
        /// Replace OUT.key and OUT.pub if they exist (the old key is lost).
        #[arg(long)]
        force: bool,
    },
    /// Vendor side: sign a manifest for an image.
    #[command(after_long_help = "Examples:\n  \
        xtt update keygen --out vendor\n  \
        xtt update sign --key vendor.key --image fw.bin --sequence 7 \\\n      \
        --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\\n      \
        --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45 --out fw.suit")]
    Sign {
        /// The private key (PKCS#8 or SEC1 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The image the manifest describes.
        #[arg(long)]
        image: PathBuf,
        /// Anti-rollback counter; devices accept only increasing numbers, at most 2^63-1
        /// (9223372036854775807, what a device can record).
        #[arg(long)]
        sequence: u64,
        /// Vendor UUID (with or without dashes).
        #[arg(long, value_parser = parse_uuid)]
        vendor_id: Uuid16,
        /// Device class UUID.
        #[arg(long, value_parser = parse_uuid)]
        class_id: Uuid16,
        /// Component name.
        #[arg(long, default_value = "firmware")]
        component: String,
        /// Where to write the envelope.
        #[arg(long, short, visible_alias = "output")]
        out: PathBuf,
    },
    /// Device side: verify an envelope and its image against the update anchors.
    #[command(after_long_help = "Examples:\n  \
        # Once: trust the vendor's key for its vendor and class.\n  \
        xtt anchors import update-key vendor.pub \\\n      \
        --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\\n      \
        --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45\n  \
        # Check only, then verify and record the sequence number:\n  \
        xtt update verify fw.suit --image fw.bin --dry-run \\\n      \
        --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\\n      \
        --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45\n  \
        xtt update verify fw.suit --image fw.bin \\\n      \
        --vendor-id fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe \\\n      \
        --class-id 1492af14-2569-5e48-bf42-9b2d51f2ab45")]
    Verify {
        /// The envelope.
        envelope: PathBuf,
        /// The image.
        #[arg(long)]
        image: PathBuf,
        /// The vendor UUID this device accepts.
        #[arg(long, value_parser = parse_uuid)]
        vendor_id: Uuid16,
        /// The class UUID this device accepts.
        #[arg(long, value_parser = parse_uuid)]
        class_id: Uuid16,
        /// The component this device installs (the manifest's must be the same).
        #[arg(long, default_value = "firmware")]
        component: String,
        /// The anchor store holding the update keys and the accepted sequence numbers.
        #[arg(
            long,
            env = "XTT_ANCHOR_STORE",
            default_value = "anchors.db",
            visible_alias = "anchors"
        )]
        store: PathBuf,
        /// Check only; do not record the sequence number.
        #[arg(long)]
        dry_run: bool,
        /// Only with --dry-run: check as if it were TIME (Unix seconds or RFC 3339), e.g. to see
        /// whether an envelope verified while a since rotated-out key was valid. A check at
        /// another time never records a sequence number.
        #[arg(long, value_parser = parse_time, value_name = "TIME")]
        at: Option<UnixSeconds>,
    },
    /// Print an envelope's manifest without verifying it.
    #[command(after_long_help = "Example:\n  \
        xtt update show fw.suit")]
    Show {
        /// The envelope.
        envelope: PathBuf,
    },
}

/// A UUID's 16 bytes.
pub type Uuid16 = [u8; 16];

fn parse_kind(s: &str) -> Result<AnchorKind, String> {
    s.parse().map_err(|e: crate::AnchorError| e.to_string())
}

fn parse_roles(s: &str) -> Result<Roles, String> {
    let r: Roles = s.parse().map_err(|e: crate::AnchorError| e.to_string())?;
    if r.is_empty() {
        return Err("give at least one role".into());
    }
    Ok(r)
}

/// Unix seconds or RFC 3339.
pub fn parse_time(s: &str) -> Result<UnixSeconds, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is neither Unix seconds nor RFC 3339: {e}"))?;
    u64::try_from(t.unix_timestamp()).map_err(|_| format!("{s:?} is before 1970"))
}

/// `90`, `90s`, `15m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (s.get(..i).unwrap_or_default(), c),
        _ => (s, 's'),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 3600, 90m, 12h, 7d)"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (s, m, h, d)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// A UUID with or without dashes, or 32 hex digits.
pub fn parse_uuid(s: &str) -> Result<Uuid16, String> {
    let hex_only: String = s.chars().filter(|c| *c != '-').collect();
    let bytes = hex::decode(&hex_only).map_err(|_| format!("{s:?} is not a UUID"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{s:?} is not 16 bytes"))
}

fn fmt_uuid(b: &Uuid16) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..).unwrap_or_default()
    )
}

fn now_or(at: Option<UnixSeconds>) -> anyhow::Result<UnixSeconds> {
    match at {
        Some(t) => Ok(t),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs()),
    }
}

fn fmt_time(t: UnixSeconds) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// "valid", "valid until 2026-02-01T00:00:00Z", "expired", "not yet valid".
fn state_text(a: &Anchor, now: UnixSeconds) -> String {
    match (a.validity.status(now), a.validity.not_after) {
        (crate::anchor::Status::ValidUntilEnd, Some(end)) => {
            format!("valid until {}", fmt_time(end))
        }
        (status, _) => status.to_string(),
    }
}

/// The most a key, certificate, secret, basename or envelope file may hold. Real ones are a few
/// KiB at most (a PEM TLS root under 16 KiB of DER); the cap keeps `/dev/zero` or a wrong path
/// to a disk image from filling memory.
const MAX_INPUT_LEN: usize = 1 << 20;

/// A key, certificate, secret, basename or envelope file (at most [`MAX_INPUT_LEN`] bytes).
fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    xtt_fsio::read_limited(path, MAX_INPUT_LEN)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// An update image: a regular file of at most [`crate::delivery::MAX_IMAGE`] bytes, the most an
/// update server serves.
fn read_image(path: &Path) -> anyhow::Result<Vec<u8>> {
    let max = usize::try_from(crate::delivery::MAX_IMAGE).unwrap_or(usize::MAX);
    xtt_fsio::read_limited(path, max).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs `xtt anchors ...`, writing results to `out`.
pub fn run_anchors(args: AnchorsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let now = now_or(args.at)?;
    // Only the commands that add anchors may create the store: any other, pointed at a wrong
    // path, would create an empty one and then report that it holds nothing.
    let adds = matches!(
        args.command,
        AnchorsCommand::Import(_)
            | AnchorsCommand::ImportDir { .. }
            | AnchorsCommand::ImportBundle { .. }
            | AnchorsCommand::Demo
    );
    if !adds && !args.store.exists() {
        bail!(
            "no anchor store at {} (importing an anchor creates one); check --store or \
             XTT_ANCHOR_STORE",
            args.store.display()
        );
    }
    let mut store = AnchorStore::open(&args.store)
        .with_context(|| format!("cannot open anchor store {}", args.store.display()))?;
    match args.command {
        AnchorsCommand::List { kind, valid } => {
            let anchors: Vec<Anchor> = store
                .list()?
                .into_iter()
                .filter(|a| kind.is_none_or(|k| a.kind == k))
                .filter(|a| !valid || a.validity.contains(now))
                .collect();
            // Revoked fingerprints are listed too (not with --valid): an operator asking about
            // one learns it was revoked rather than that it is unknown.
            let revoked: Vec<crate::store::Revocation> = if valid {
                Vec::new()
            } else {
                store
                    .revocations()?
                    .into_iter()
                    .filter(|r| kind.is_none_or(|k| r.kind == k))
                    .collect()
            };
            if anchors.is_empty() && revoked.is_empty() {
                writeln!(out, "no anchors in {}", args.store.display())?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<16}  {:<15}  {:<24}  {:<28}  {:<26}  PROVENANCE",
                "FINGERPRINT", "KIND", "NAME", "ROLES", "STATE"
            )?;
            for a in anchors {
                writeln!(
                    out,
                    "{:<16}  {:<15}  {:<24}  {:<28}  {:<26}  {}",
                    a.fingerprint.short(),
                    a.kind.as_str(),
                    a.name,
                    a.roles.to_string(),
                    state_text(&a, now),
                    a.provenance.tag()
                )?;
            }
            for r in revoked {
                writeln!(
                    out,
                    "{:<16}  {:<15}  {:<24}  {:<28}  {:<26}  -",
                    r.fingerprint.short(),
                    r.kind.as_str(),
                    r.name,
                    "-",
                    format!("revoked {}", fmt_time(r.revoked_at)),
                )?;
            }
        }
        AnchorsCommand::Show { fingerprint } => match store.resolve(&fingerprint) {
            Ok(fp) => show(&store, &fp, now, out)?,
            Err(crate::AnchorError::NotFound(_)) if store.resolve_revoked(&fingerprint).is_ok() => {
                let r = store.resolve_revoked(&fingerprint)?;
                writeln!(out, "fingerprint  {}", r.fingerprint)?;
                writeln!(out, "kind         {}", r.kind)?;
                writeln!(out, "name         {}", r.name)?;
                writeln!(
                    out,
                    "state        REVOKED at {} (removed; every import of it is refused)",
                    fmt_time(r.revoked_at)
                )?;
                writeln!(
                    out,
                    "undo         xtt anchors unrevoke {} (then import it again)",
                    r.fingerprint
                )?;
            }
            Err(e) => return Err(e.into()),
        },
        AnchorsCommand::Import(import) => {
            let new = new_anchor(&import, &store, now, false)?;
            let fp = store.import(new, now)?;
            let a = store.get(&fp)?;
            writeln!(out, "imported {} {} {}", a.kind, a.name, fp)?;
            for e in store.edges()?.iter().filter(|e| e.to == fp) {
                writeln!(out, "  vouched for by {}", e.from.short())?;
            }
        }
        AnchorsCommand::ImportDir { dir } => {
            let done = crate::seam::import_xtt_tool_dir(&mut store, &dir, now)?;
            if done.is_empty() {
                writeln!(
                    out,
                    "no root_cert.bin or daa_gpk.bin + basename.bin in {}",
                    dir.display()
                )?;
            }
            for d in done {
                match d {
                    crate::seam::LooseImport::Imported(k, fp) => {
                        writeln!(out, "imported {k} {fp}")?
                    }
                    crate::seam::LooseImport::AlreadyStored(k, fp) => {
                        writeln!(out, "already stored {k} {fp}")?
                    }
                }
            }
        }
        AnchorsCommand::ExportBundle {
            dir,
            include_secrets,
        } => {
            let n = crate::bundle::export(&store, &dir, include_secrets)?;
            writeln!(out, "exported {n} anchors to {}", dir.display())?;
        }
        AnchorsCommand::ImportBundle { dir } => {
            let added = crate::bundle::import(&mut store, &dir, now)?;
            writeln!(
                out,
                "imported {} new anchors from {}",
                added.len(),
                dir.display()
            )?;
        }
        AnchorsCommand::Export {
            fingerprint,
            out: path,
            include_secret,
        } => {
            let fp = store.resolve(&fingerprint)?;
            let a = store.get(&fp)?;
            export(&a, &path, include_secret)?;
            writeln!(out, "wrote {} {} to {}", a.kind, fp.short(), path.display())?;
        }
        AnchorsCommand::Remove { fingerprint } => {
            let fp = store.resolve(&fingerprint)?;
            let a = store.get(&fp)?;
            let orphans = store.revoke(&fp, now)?;
            writeln!(out, "removed and revoked {} {} {}", a.kind, a.name, fp)?;
            for o in orphans {
                writeln!(out, "  no longer vouched for by it: {}", o.short())?;
            }
            writeln!(
                out,
                "importing it again is refused; to allow it: xtt anchors unrevoke {}",
                fp.short()
            )?;
        }
        AnchorsCommand::Unrevoke { fingerprint } => {
            let r = store.resolve_revoked(&fingerprint)?;
            store.unrevoke(&r.fingerprint)?;
            writeln!(
                out,
                "unrevoked {} {} {}: it may be imported again (nothing was imported)",
                r.kind, r.name, r.fingerprint
            )?;
        }
        AnchorsCommand::Rotate { old, window, new } => {
            let old = store.resolve(&old)?;
            let successor = new_anchor(&new, &store, now, true)?;
            let fp = store.rotate(&old, successor, window, now)?;
            let old_a = store.get(&old)?;
            writeln!(out, "rotated {} to {}", old.short(), fp)?;
            if let Some(end) = old_a.validity.not_after {
                writeln!(
                    out,
                    "both valid until {}; only the new one afterwards",
                    fmt_time(end)
                )?;
            }
        }
        AnchorsCommand::Demo => {
            if !store.list()?.is_empty() {
                bail!(
                    "{} is not empty; the demo only fills an empty store",
                    args.store.display()
                );
            }
            let fps = crate::demo::build(&mut store, &mut rand_core::OsRng, now)?;
            writeln!(
                out,
                "demo installation with {} anchors in {}",
                fps.len(),
                args.store.display()
            )?;
            writeln!(
                out,
                "look at it: xtt anchors --store {} graph",
                args.store.display()
            )?;
        }
        AnchorsCommand::Vouch { voucher, subject } => {
            let v = store.resolve(&voucher)?;
            let s = store.resolve(&subject)?;
            store.vouch(v, s)?;
            writeln!(out, "{} vouches for {}", v.short(), s.short())?;
        }
        AnchorsCommand::Scope {
            fingerprint,
            vendor_id,
            class_id,
        } => {
            let fp = store.resolve(&fingerprint)?;
            store.add_update_scope(&fp, vendor_id, class_id)?;
            writeln!(
                out,
                "{} may sign for vendor {} class {}",
                fp.short(),
                fmt_uuid(&vendor_id),
                fmt_uuid(&class_id)
            )?;
        }
        AnchorsCommand::Roles { fingerprint, roles } => {
            let fp = store.resolve(&fingerprint)?;
            store.set_roles(&fp, roles)?;
            writeln!(out, "{} roles: {roles}", fp.short())?;
        }
        AnchorsCommand::Graph {
            format,
            out: path,
            impact,
        } => {
            let graph = store.graph(now)?;
            let text = match impact {
                Some(fp) => {
                    let fp = store.resolve(&fp)?;
                    graph
                        .impact(&fp)
                        .ok_or_else(|| anyhow::anyhow!("no anchor {}", fp.short()))?
                        .to_text()
                }
                None => match format {
                    GraphFormat::Text => graph.to_text(),
                    GraphFormat::Dot => graph.to_dot(),
                    GraphFormat::Svg => graph.to_svg(),
                },
            };
            match path {
                Some(p) => {
                    write_atomic(&p, text.as_bytes(), 0o644)?;
                    writeln!(out, "wrote {}", p.display())?;
                }
                None => out.write_all(text.as_bytes())?,
            }
        }
    }
    Ok(())
}

/// What `args` import; `rotating`: a successor, which may inherit an update key's scope.
fn new_anchor<B: crate::store::Backend>(
    args: &ImportArgs,
    store: &AnchorStore<B>,
    now: UnixSeconds,
    rotating: bool,
) -> anyhow::Result<NewAnchor> {
    let kind = args.kind;
    // clap makes the two flags go together.
    let update_scopes: Vec<(Uuid16, Uuid16)> =
        args.vendor_id.zip(args.class_id).into_iter().collect();
    if kind == AnchorKind::UpdateKey && update_scopes.is_empty() && !rotating {
        bail!(
            "an update-key needs --vendor-id and --class-id: the vendor and device class whose \
             updates it may sign (a key trusted for every vendor could sign updates for any \
             device that trusts this store)"
        );
    }
    if kind != AnchorKind::UpdateKey && !update_scopes.is_empty() {
        bail!("--vendor-id and --class-id are only for an update-key");
    }
    let bytes = read(&args.file)?;
    let material = match kind {
        AnchorKind::TteTaSecret | AnchorKind::TteDevSecret => {
            Material::Secret(SecretBytes::new(bytes))
        }
        AnchorKind::DaaGroup => {
            let Some(bsn) = &args.basename else {
                bail!("a daa-group needs --basename FILE (the xtt tool's basename.bin)");
            };
            Material::Public(material::daa_group_material(&bytes, &read(bsn)?)?)
        }
        AnchorKind::UpdateKey | AnchorKind::Manufacturer | AnchorKind::Controller => {
            Material::Public(material::parse_p256_public_file(kind, &bytes)?)
        }
        AnchorKind::TlsRoot => Material::Public(material::parse_tls_root_file(&bytes)?),
        _ => Material::Public(bytes),
    };
    let source = args
        .source
        .clone()
        .unwrap_or_else(|| args.file.display().to_string());
    let provenance = match args.provenance {
        ProvenanceArg::Hand => Provenance::ImportedByHand { source },
        ProvenanceArg::Tte => Provenance::DeliveredByTte { source },
        ProvenanceArg::Xtt => Provenance::ProvisionedByXtt { source },
        ProvenanceArg::Generated => Provenance::Generated { source },
    };
    let validity = match (args.not_before, args.not_after) {
        (None, None) => None,
        (nb, na) => Some(Validity {
            not_before: nb.unwrap_or(now),
            not_after: na,
        }),
    };
    let vouched_by = args
        .vouched_by
        .iter()
        .map(|v| store.resolve(v))
        .collect::<Result<Vec<Fingerprint>, _>>()?;
    Ok(NewAnchor {
        kind,
        name: args.name.clone().unwrap_or_default(),
        roles: args.roles,
        validity,
        provenance,
        material,
        vouched_by,
        update_scopes,
    })
}

fn show<B: crate::store::Backend>(
    store: &AnchorStore<B>,
    fp: &Fingerprint,
    now: UnixSeconds,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let a = store.get(fp)?;
    writeln!(out, "fingerprint  {}", a.fingerprint)?;
    writeln!(out, "kind         {}", a.kind)?;
    writeln!(out, "name         {}", a.name)?;
    writeln!(out, "roles        {}", a.roles)?;
    writeln!(out, "state        {}", state_text(&a, now))?;
    writeln!(out, "not before   {}", fmt_time(a.validity.not_before))?;
    writeln!(
        out,
        "not after    {}",
        a.validity.not_after.map_or("-".to_string(), fmt_time)
    )?;
    writeln!(out, "provenance   {}", a.provenance)?;
    writeln!(out, "added        {}", fmt_time(a.added_at))?;
    match &a.material {
        Material::Secret(s) => {
            writeln!(out, "material     secret, {} bytes (never shown)", s.len())?
        }
        Material::Public(m) => describe_public(a.kind, m, out)?,
    }
    if a.kind == AnchorKind::UpdateKey {
        let scopes = store.update_scopes_of(fp)?;
        if scopes.is_empty() {
            writeln!(
                out,
                "may sign     NOTHING: no vendor/class scope (stored before scopes existed?); \
                 updates it signs are refused until `xtt anchors scope {} --vendor-id V --class-id C`",
                fp.short()
            )?;
        }
        for s in scopes {
            writeln!(
                out,
                "may sign     vendor {} class {}",
                fmt_uuid(&s.vendor_id),
                fmt_uuid(&s.class_id)
            )?;
        }
    }
    let edges = store.edges()?;
    let anchors = store.list()?;
    // Only a root's signature on a server certificate is verified; every other edge is a
    // statement (an operator's `vouch`, a service's record, a bundle's index) and says so.
    let status = |e: &crate::anchor::Edge| {
        if crate::store::signature_checked(&anchors, e) {
            "(checked: signature verified)"
        } else {
            "(recorded: not verified)"
        }
    };
    let name = |f: &Fingerprint| {
        store
            .get(f)
            .map(|x| format!("{} {} [{}]", x.kind, x.name, f.short()))
            .unwrap_or_else(|_| f.short())
    };
    for e in edges.iter().filter(|e| e.to == *fp) {
        writeln!(
            out,
            "{:<12} {}  {}",
            match e.kind {
                crate::anchor::EdgeKind::Vouches => "vouched by",
                crate::anchor::EdgeKind::RotatedTo => "rotated from",
            },
            name(&e.from),
            status(e)
        )?;
    }
    for e in edges.iter().filter(|e| e.from == *fp) {
        writeln!(
            out,
            "{:<12} {}  {}",
            match e.kind {
                crate::anchor::EdgeKind::Vouches => "vouches for",
                crate::anchor::EdgeKind::RotatedTo => "rotated to",
            },
            name(&e.to),
            status(e)
        )?;
    }
    Ok(())
}

fn describe_public(kind: AnchorKind, m: &[u8], out: &mut dyn Write) -> anyhow::Result<()> {
    match kind {
        AnchorKind::XttRoot => {
            let r = material::root_certificate(m)?;
            writeln!(out, "root id      {}", hex::encode(r.id.0))?;
            writeln!(out, "public key   {}", hex::encode(r.public_key.as_bytes()))?;
        }
        AnchorKind::XttServer => {
            let c = xtt_proto::cert::ServerCertificate::decode(m)
                .map_err(|e| anyhow::anyhow!("stored certificate: {e}"))?;
            writeln!(out, "root id      {}", hex::encode(c.root_id().0))?;
            writeln!(out, "server key   {}", hex::encode(c.public_key_bytes()))?;
            writeln!(
                out,
                "reserved     {}",
                String::from_utf8_lossy(&c.reserved())
            )?;
        }
        AnchorKind::DaaGroup => {
            let (_, bsn) = material::daa_group_parts(m).map_err(anyhow::Error::msg)?;
            writeln!(
                out,
                "group id     {}",
                hex::encode(material::daa_group_id(m).0)
            )?;
            writeln!(out, "basename     {:?}", String::from_utf8_lossy(bsn))?;
        }
        AnchorKind::DeviceIdentity => {
            writeln!(
                out,
                "client id    {}",
                hex::encode(m.get(..16).unwrap_or_default())
            )?;
            writeln!(
                out,
                "public key   {}",
                hex::encode(m.get(16..).unwrap_or_default())
            )?;
        }
        AnchorKind::TlsRoot => {
            let c = material::tls_certificate(m)?;
            let tbs = &c.tbs_certificate;
            writeln!(out, "subject      {}", tbs.subject)?;
            writeln!(out, "issuer       {}", tbs.issuer)?;
            writeln!(
                out,
                "certificate  valid {} to {}",
                tbs.validity.not_before, tbs.validity.not_after
            )?;
        }
        _ => writeln!(out, "public key   {}", hex::encode(m))?,
    }
    Ok(())
}

fn export(a: &Anchor, path: &Path, include_secret: bool) -> anyhow::Result<()> {
    match &a.material {
        Material::Secret(s) => {
            if !include_secret {
                bail!(
                    "{} is a secret; pass --include-secret to write it (the file is created 0600)",
                    a.fingerprint.short()
                );
            }
            write_atomic(path, s.expose(), 0o600)?;
        }
        Material::Public(m) => match a.kind {
            AnchorKind::DaaGroup => {
                let (gpk, bsn) = material::daa_group_parts(m).map_err(anyhow::Error::msg)?;
                write_atomic(path, gpk, 0o644)?;
                let mut b = path.as_os_str().to_owned();
                b.push(".basename");
                write_atomic(Path::new(&b), bsn, 0o644)?;
            }
            AnchorKind::UpdateKey | AnchorKind::Manufacturer | AnchorKind::Controller => {
                let key = p256::PublicKey::from_sec1_bytes(m)
                    .map_err(|_| anyhow::anyhow!("stored key is not on P-256"))?;
                let pem = key
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| anyhow::anyhow!("PEM encoding: {e}"))?;
                write_atomic(path, pem.as_bytes(), 0o644)?;
            }
            AnchorKind::TlsRoot => {
                use x509_cert::der::EncodePem as _;
                let pem = material::tls_certificate(m)?
                    .to_pem(LineEnding::LF)
                    .map_err(|e| anyhow::anyhow!("PEM encoding: {e}"))?;
                write_atomic(path, pem.as_bytes(), 0o644)?;
            }
            _ => write_atomic(path, m, 0o644)?,
        },
    }
    Ok(())
}

/// Runs `xtt update ...`, writing results to `out`.
pub fn run_update(args: UpdateArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match args.command {
        UpdateCommand::Keygen { out: prefix, force } => {
            let key = UpdateSigningKey::generate(&mut rand_core::OsRng);
            let mut k = prefix.as_os_str().to_owned();
            k.push(".key");
            let mut p = prefix.as_os_str().to_owned();
            p.push(".pub");
            let overwrite = if force {
                xtt_fsio::Overwrite::Allow
            } else {
                // Both checked before either is written, so a refusal leaves no half pair.
                if let Some(existing) = [&k, &p].map(Path::new).into_iter().find(|f| f.exists()) {
                    bail!(
                        "{} exists: an update-signing key is not replaced without --force \
                         (devices that trust the old key would refuse updates signed by a new one)",
                        existing.display()
                    );
                }
                xtt_fsio::Overwrite::Deny
            };
            write_file(Path::new(&k), key.to_pem()?.as_bytes(), 0o600, overwrite)?;
            write_file(
                Path::new(&p),
                key.public_pem()?.as_bytes(),
                0o644,
                overwrite,
            )?;
            writeln!(
                out,
                "wrote {} (private, 0600) and {}",
                Path::new(&k).display(),
                Path::new(&p).display()
            )?;
            writeln!(out, "update-key fingerprint {}", key.fingerprint())?;
            // An update-key anchor is scoped to one vendor and device class: the import needs
            // both, which this command does not know (they are chosen per product).
            writeln!(
                out,
                "devices trust it after (with your vendor and device-class UUIDs):\n  \
                 xtt anchors import update-key {} --vendor-id VENDOR_UUID --class-id CLASS_UUID",
                Path::new(&p).display()
            )?;
        }
        UpdateCommand::Sign {
            key,
            image,
            sequence,
            vendor_id,
            class_id,
            component,
            out: path,
        } => {
            let pem = zeroize::Zeroizing::new(
                String::from_utf8(read(&key)?).context("key file is not PEM text")?,
            );
            let key = UpdateSigningKey::from_pem(&pem)?;
            let image_bytes = read_image(&image)?;
            let manifest = Manifest::for_image(
                &image_bytes,
                sequence,
                vendor_id,
                class_id,
                vec![component.into_bytes()],
            );
            let envelope = key.sign(&manifest)?;
            write_atomic(&path, &envelope, 0o644)?;
            writeln!(
                out,
                "signed {} ({} bytes, sequence {sequence}) with update key {} into {} ({} bytes)",
                image.display(),
                manifest.image_size,
                key.fingerprint().short(),
                path.display(),
                envelope.len()
            )?;
        }
        UpdateCommand::Verify {
            envelope,
            image,
            vendor_id,
            class_id,
            component,
            store,
            dry_run,
            at,
        } => {
            // --at decides which update keys count as valid. Recording a sequence number on a
            // verification at another time would let a key rotated out (e.g. after a leak) sign
            // a newer sequence that is then enforced on this device.
            if at.is_some() && !dry_run {
                bail!(
                    "--at needs --dry-run: a verification as of another time must not record a \
                     sequence number (a key that is no longer valid would get to set it); add \
                     --dry-run to check at that time, or drop --at to verify and record now"
                );
            }
            let now = now_or(at)?;
            let mut s = AnchorStore::open(&store)
                .with_context(|| format!("cannot open anchor store {}", store.display()))?;
            let accepted = verify_update(
                &mut s,
                &read(&envelope)?,
                &read_image(&image)?,
                &UpdateTarget {
                    vendor_id,
                    class_id,
                    component: component.as_bytes(),
                },
                now,
                dry_run,
            )
            .with_context(|| format!("update {} refused", envelope.display()))?;
            let m = &accepted.manifest;
            writeln!(
                out,
                "OK: {} signed by update anchor {}; sequence {} (previous {}); image {} bytes, SHA-256 {}",
                envelope.display(),
                accepted.signer.short(),
                m.sequence_number,
                accepted
                    .previous_sequence
                    .map_or("none".into(), |p| p.to_string()),
                m.image_size,
                hex::encode(m.image_digest)
            )?;
            if accepted.recorded {
                writeln!(
                    out,
                    "sequence {} recorded: older manifests are refused from now on",
                    m.sequence_number
                )?;
            } else {
                writeln!(out, "dry run: sequence not recorded")?;
            }
        }
        UpdateCommand::Show { envelope } => {
            let e = Envelope::decode(&read(&envelope)?)?;
            let m = e.unverified_manifest();
            writeln!(out, "NOT VERIFIED (use `xtt update verify`)")?;
            writeln!(out, "sequence     {}", m.sequence_number)?;
            writeln!(out, "vendor id    {}", fmt_uuid(&m.vendor_id))?;
            writeln!(out, "class id     {}", fmt_uuid(&m.class_id))?;
            let comps: Vec<String> = m
                .component_id
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            writeln!(out, "component    {}", comps.join("/"))?;
            writeln!(out, "image size   {}", m.image_size)?;
            writeln!(out, "image digest {}", hex::encode(m.image_digest))?;
            writeln!(out, "signer kid   {}", hex::encode(e.key_id()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").is_err());
    }

    /// `xtt anchors ARGS…` against a store in `dir`; what it printed, or the error.
    fn anchors(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            anchors: AnchorsArgs,
        }
        let store = dir.join("anchors.db");
        let mut argv = vec!["anchors", "--store", store.to_str().unwrap_or_default()];
        argv.extend_from_slice(args);
        let cli = <Cli as clap::Parser>::try_parse_from(argv)?;
        let mut out = Vec::new();
        run_anchors(cli.anchors, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn imports_refuse_special_and_oversized_files_before_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.bin");
        // Sparse: the size is what matters, not the disk it takes.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(u64::try_from(MAX_INPUT_LEN).unwrap() * 4)
            .unwrap();
        let big = big.to_str().unwrap();
        let cases = [
            (
                ["import", "xtt-root", big],
                "more than the 1048576 accepted",
            ),
            (["import", "xtt-root", "/dev/null"], "is not a regular file"),
            (["import", "xtt-root", "/dev/zero"], "is not a regular file"),
        ];
        for (args, expected) in cases {
            let err = format!("{:#}", anchors(dir.path(), &args).unwrap_err());
            assert!(err.contains(expected), "{args:?}: {err}");
            assert!(err.contains(&format!("cannot read {}", args[2])), "{err}");
        }
    }

    #[test]
    fn uuids_parse_with_or_without_dashes() {
        let a = parse_uuid("fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe").unwrap();
        assert_eq!(parse_uuid("fa6b4a53d5ad5fdfbe9de663e4d41ffe").unwrap(), a);
        assert_eq!(fmt_uuid(&a), "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe");
        assert!(parse_uuid("fa6b").is_err());
    }
}
