//! Crash-safe writes of secret files: temp file in the same directory, mode 0600, fsync, rename,
//! fsync the directory. A crash leaves either the old file or the new one, never half of one.

use std::io::Write as _;
use std::path::Path;

/// Writes `data` to `path` atomically with owner-only permissions.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tte-").tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes a non-secret file (QR images) the same crash-safe way, world-readable.
pub fn write_public(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_private(path, data)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}
