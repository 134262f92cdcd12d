//! Crash-safe writes of the files TTE tools produce (see [`xtt_fsio`]): a crash leaves either the
//! old file or the new one, never half of one.

use std::path::Path;

/// Writes `data` to `path` atomically with owner-only permissions (0600).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    xtt_fsio::write_secret(path, data)
}

/// Writes a non-secret file (QR images) the same crash-safe way, world-readable (0644).
pub fn write_public(path: &Path, data: &[u8]) -> std::io::Result<()> {
    xtt_fsio::write_public(path, data)
}
