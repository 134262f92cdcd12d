//! Crash-safe file output (see [`xtt_fsio`]); secret files are 0600 from the first byte.

use std::path::Path;

use crate::error::AnchorError;

/// Writes `bytes` to `path` atomically with the given permission bits.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AnchorError> {
    write_file(path, bytes, mode, xtt_fsio::Overwrite::Allow)
}

/// [`write_atomic`], refusing to replace an existing file with [`xtt_fsio::Overwrite::Deny`].
pub fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    overwrite: xtt_fsio::Overwrite,
) -> Result<(), AnchorError> {
    xtt_fsio::write_atomic(path, bytes, mode, overwrite).map_err(|source| AnchorError::Io {
        path: path.display().to_string(),
        cause: source,
    })
}
