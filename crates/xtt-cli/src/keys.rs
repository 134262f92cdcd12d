//! `xtt keys ...`: ECDSA P-256 key pairs in the C tool's file format.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use rand_core::OsRng;
use xtt_files::keypair;
use xtt_proto::longterm::LongtermKeyPair;

use crate::output::{hex, hint_force, overwrite, wrote};

/// Key pair commands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate an ECDSA P-256 key pair (the C tool's `genkeypair`).
    #[command(
        long_about = "Generate an ECDSA P-256 key pair and write it as the C tool does: a DER \
                      ECPrivateKey (RFC 5915) with the curve and the public key, 121 bytes, \
                      mode 0600, written crash-safely. Roots, servers and devices all use this \
                      format. An existing file is never overwritten unless --force is given.",
        after_long_help = "Examples:\n  \
            xtt keys generate                              # keys.asn1.bin\n  \
            xtt keys generate -k root_keys.asn1.bin\n  \
            xtt keys generate -k server_keys.asn1.bin --force"
    )]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Where to write the key pair.
    #[arg(short = 'k', long = "keypair", default_value = "keys.asn1.bin")]
    keypair: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate(a) => {
            refuse_directory(&a.keypair, "keys.asn1.bin")?;
            let key = LongtermKeyPair::generate(&mut OsRng);
            keypair::write(&a.keypair, &key, overwrite(a.force)).map_err(hint_force)?;
            wrote(&a.keypair, "ECDSA P-256 key pair, 0600");
            println!("public key: {}", hex(key.public_key().as_bytes()));
            Ok(())
        }
    }
}

/// Refuses an output path that is a directory, before anything is generated: neither the
/// "already exists" refusal nor `--force` can help there. `name` is the file name suggested
/// inside it.
pub(crate) fn refuse_directory(path: &Path, name: &str) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!(
            "{}: is a directory; give the path of a file (e.g. {})",
            path.display(),
            path.join(name).display()
        );
    }
    Ok(())
}
