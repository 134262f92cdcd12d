//! Small shared helpers for what commands print and how they treat existing files.

use std::path::Path;

use xtt_files::Overwrite;

/// `--force` as an overwrite policy.
pub(crate) fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Allow
    } else {
        Overwrite::Deny
    }
}

/// Adds the command-line way out to "refusing to overwrite" errors.
pub(crate) fn hint_force(e: xtt_files::Error) -> anyhow::Error {
    if matches!(e.kind, xtt_files::ErrorKind::AlreadyExists) {
        anyhow::anyhow!("{e} (pass --force to replace it)")
    } else {
        e.into()
    }
}

/// One line saying a file was written.
pub(crate) fn wrote(path: &Path, what: &str) {
    println!("wrote {} ({what})", path.display());
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
