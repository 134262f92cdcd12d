//! `xtt cert ...`: root certificates, server certificates and a device's X.509 certificate, in
//! the C tool's formats.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rand_core::{OsRng, RngCore};
use xtt_files::{certs, client_id, keypair, x509};
use xtt_proto::cert::{RootCertificate, RootId, DEFAULT_RESERVED, ROOT_ID_LEN};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::ClientId;

use crate::info::wrong_kind;
use crate::keys::refuse_directory;

/// What `xtt info` calls the files these commands read.
const KEY_PAIR: &str = "ECDSA P-256 key pair";
const ROOT_CERT: &str = "XTT root certificate";
use crate::output::{hex, hint_force, overwrite, wrote};

/// Certificate commands.
#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Create a root certificate from a root key pair (the C tool's `genrootcert`).
    #[command(
        long_about = "Create a root certificate: root_id (16 bytes) followed by the root's \
                      public key (65 bytes), 81 bytes in all, the C tool's root_cert.bin. \
                      Clients hold it as their trust anchor; server certificates name it by \
                      its id. The id is random unless given.",
        after_long_help = "Examples:\n  \
            xtt cert root --generate-key                  # root_keys.asn1.bin + root_cert.bin\n  \
            xtt keys generate -k root_keys.asn1.bin && xtt cert root\n  \
            xtt cert root --root-id 00112233445566778899aabbccddeeff -c my_root.bin"
    )]
    Root(RootArgs),
    /// Create a server certificate signed by a root (the C tool's `genservercert`).
    #[command(
        long_about = "Create a server certificate: reserved (24) ‖ root id (16) ‖ server public \
                      key (65) ‖ root signature (64), 169 bytes, the C tool's server_cert.bin. \
                      The root key pair must be the one in the root certificate (checked, \
                      unlike the C tool). The reserved field defaults to the C tool's \
                      \"XAPTUMSERVER000199991231\"; clients ignore it.",
        after_long_help = "Examples:\n  \
            xtt cert server --generate-key               # server_keys.asn1.bin + server_cert.bin\n  \
            xtt cert server -r root_cert.bin -k root_keys.asn1.bin -s server_keys.asn1.bin \
            -c server_cert.bin"
    )]
    Server(ServerArgs),
    /// Create the self-signed X.509 certificate a device makes for its long-term key (the C
    /// tool's `genx509cert`).
    #[command(
        long_about = "Create the X.509 certificate the C client writes after provisioning \
                      (longterm_cert.bin): v1, self-signed with ecdsa-with-SHA256, subject and \
                      issuer CN = the ClientID text, valid from 0000-01-01 to 9999-12-31.",
        after_long_help = "Examples:\n  \
            xtt cert x509 -k longterm_priv.bin --client-id 335F:07C3:E552:CA00:54E3:E336:5B59:025B\n  \
            xtt cert x509 -k keys.asn1.bin -d id.bin -c cert.bin"
    )]
    X509(X509Args),
}

#[derive(Debug, Args)]
pub(crate) struct RootArgs {
    /// The root's key pair.
    #[arg(short = 'k', long = "keypair", default_value = "root_keys.asn1.bin")]
    keypair: PathBuf,
    /// Generate the root key pair into --keypair first.
    #[arg(long)]
    generate_key: bool,
    /// Read the root id from this 16-byte file.
    #[arg(short = 'd', long = "rid", conflicts_with = "root_id")]
    rid: Option<PathBuf>,
    /// The root id as 32 hex digits.
    #[arg(long)]
    root_id: Option<String>,
    /// Where to write the root certificate.
    #[arg(short = 'c', long = "rcert", default_value = "root_cert.bin")]
    rcert: PathBuf,
    /// Replace existing output files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The root certificate.
    #[arg(short = 'r', long = "rcert", default_value = "root_cert.bin")]
    rcert: PathBuf,
    /// The root's key pair (signs the certificate).
    #[arg(short = 'k', long = "rkeypair", default_value = "root_keys.asn1.bin")]
    rkeypair: PathBuf,
    /// The server's key pair.
    #[arg(short = 's', long = "skeypair", default_value = "server_keys.asn1.bin")]
    skeypair: PathBuf,
    /// Generate the server key pair into --skeypair first.
    #[arg(long)]
    generate_key: bool,
    /// A 24-byte file for the reserved field.
    #[arg(short = 'x', long = "reserved")]
    reserved: Option<PathBuf>,
    /// Where to write the server certificate.
    #[arg(
        short = 'c',
        long = "out-servercert",
        default_value = "server_cert.bin"
    )]
    out: PathBuf,
    /// Replace existing output files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct X509Args {
    /// The key pair to certify.
    #[arg(short = 'k', long = "keypair", default_value = "keys.asn1.bin")]
    keypair: PathBuf,
    /// A file with the ClientID as 16 raw bytes.
    #[arg(short = 'd', long = "id", conflicts_with = "client_id")]
    id: Option<PathBuf>,
    /// The ClientID as text (XXXX:XXXX:...) or a client_id.txt file [default: the null id].
    #[arg(long)]
    client_id: Option<String>,
    /// Where to write the certificate.
    #[arg(short = 'c', long = "certificate", default_value = "cert.bin")]
    certificate: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Root(a) => root(a),
        CertCommand::Server(a) => server(a),
        CertCommand::X509(a) => x509_cert(a),
    }
}

/// A key pair read from its file, or generated in memory and not yet written: a command writes
/// it only once every other input has been checked, so a refused command never replaces a key.
enum KeySource {
    Existing(LongtermKeyPair),
    Generated(LongtermKeyPair),
}

impl KeySource {
    fn key(&self) -> &LongtermKeyPair {
        match self {
            Self::Existing(k) | Self::Generated(k) => k,
        }
    }
}

/// Reads the key pair at `path`, or (with --generate-key) makes a new one in memory after
/// checking that `path` can take it.
fn load_or_generate(path: &Path, generate: bool, force: bool) -> anyhow::Result<KeySource> {
    if generate {
        refuse_directory(path, "keys.asn1.bin")?;
        if !force && path.symlink_metadata().is_ok() {
            bail!(
                "{}: already exists; refusing to overwrite it (drop --generate-key to use this \
                 key, or pass --force to replace it)",
                path.display()
            );
        }
        writable(path)?;
        Ok(KeySource::Generated(LongtermKeyPair::generate(&mut OsRng)))
    } else {
        if !path.exists() {
            bail!(
                "{}: no key pair there; create one with `xtt keys generate -k {}` or pass \
                 --generate-key",
                path.display(),
                path.display()
            );
        }
        Ok(KeySource::Existing(
            keypair::read(path).map_err(|e| wrong_kind(path, KEY_PAIR, e))?,
        ))
    }
}

/// Checks, before anything is written, that the certificate can go to `path`.
fn check_output(path: &Path, force: bool) -> anyhow::Result<()> {
    refuse_directory(path, "cert.bin")?;
    if !force && path.symlink_metadata().is_ok() {
        bail!(
            "{}: already exists; refusing to overwrite it (pass --force to replace it)",
            path.display()
        );
    }
    writable(path)
}

fn writable(path: &Path) -> anyhow::Result<()> {
    xtt_fsio::check_writable(path).with_context(|| format!("{}: cannot write", path.display()))
}

/// Writes a generated key (every check has passed by now).
fn save_key(path: &Path, key: &KeySource, force: bool) -> anyhow::Result<()> {
    if let KeySource::Generated(key) = key {
        keypair::write(path, key, overwrite(force)).map_err(|e| {
            if matches!(e.kind, xtt_files::ErrorKind::AlreadyExists) {
                anyhow::anyhow!(
                    "{e} (drop --generate-key to use this key, or pass --force to replace it)"
                )
            } else {
                e.into()
            }
        })?;
        wrote(path, "ECDSA P-256 key pair, 0600");
    }
    Ok(())
}

fn root(a: RootArgs) -> anyhow::Result<()> {
    let id = match (&a.rid, &a.root_id) {
        (Some(file), _) => certs::read_root_id(file)?,
        (None, Some(text)) => {
            let bytes = hex::decode(text)
                .ok()
                .and_then(|b| <[u8; ROOT_ID_LEN]>::try_from(b).ok());
            match bytes {
                Some(b) => RootId(b),
                None => bail!("--root-id must be 32 hex digits (16 bytes), got {text:?}"),
            }
        }
        (None, None) => {
            let mut b = [0u8; ROOT_ID_LEN];
            OsRng.fill_bytes(&mut b);
            RootId(b)
        }
    };
    let key = load_or_generate(&a.keypair, a.generate_key, a.force)?;
    check_output(&a.rcert, a.force)?;
    let root = RootCertificate {
        id,
        public_key: *key.key().public_key(),
    };
    save_key(&a.keypair, &key, a.force)?;
    certs::write_root(&a.rcert, &root, overwrite(a.force)).map_err(hint_force)?;
    wrote(&a.rcert, "XTT root certificate, 81 bytes");
    println!("root id: {}", hex(&id.0));
    Ok(())
}

fn server(a: ServerArgs) -> anyhow::Result<()> {
    let root = certs::read_root(&a.rcert).map_err(|e| wrong_kind(&a.rcert, ROOT_CERT, e))?;
    let root_key = keypair::read(&a.rkeypair).map_err(|e| wrong_kind(&a.rkeypair, KEY_PAIR, e))?;
    let reserved = match &a.reserved {
        Some(p) => certs::read_reserved(p)?,
        None => DEFAULT_RESERVED,
    };
    let server_key = load_or_generate(&a.skeypair, a.generate_key, a.force)?;
    // Issuing checks that the root key is the root certificate's: before the key is written.
    let cert = certs::issue_server(
        &root,
        &root_key,
        &a.rkeypair,
        server_key.key().public_key(),
        &reserved,
    )?;
    check_output(&a.out, a.force)?;
    save_key(&a.skeypair, &server_key, a.force)?;
    certs::write_server(&a.out, &cert, overwrite(a.force)).map_err(hint_force)?;
    wrote(&a.out, "XTT server certificate, 169 bytes");
    println!("signed by root {}", hex(&root.id.0));
    Ok(())
}

fn x509_cert(a: X509Args) -> anyhow::Result<()> {
    let key = keypair::read(&a.keypair).map_err(|e| wrong_kind(&a.keypair, KEY_PAIR, e))?;
    let id = match (&a.id, &a.client_id) {
        (Some(file), _) => client_id::read_raw(file)?,
        (None, Some(text)) if Path::new(text).is_file() => client_id::read(Path::new(text))?,
        (None, Some(text)) => text
            .parse::<ClientId>()
            .with_context(|| format!("--client-id {text:?}"))?,
        (None, None) => ClientId::NULL,
    };
    refuse_directory(&a.certificate, "cert.bin")?;
    let der = x509::build(&key, &id, &mut OsRng).map_err(anyhow::Error::msg)?;
    x509::write(&a.certificate, &der, overwrite(a.force)).map_err(hint_force)?;
    wrote(&a.certificate, "X.509 certificate");
    println!("subject CN: {id}");
    Ok(())
}
