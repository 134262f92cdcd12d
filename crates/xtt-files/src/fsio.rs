//! Reading small files with a size cap, and writing files crash-safely: a temporary file in the
//! same directory, written, fsynced, renamed over the target, then the directory fsynced. A
//! reader therefore sees the old file or the new one, never a torn one, even after a power cut.

use std::io;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// Who may read a file once written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Private keys and secrets: owner read/write only (0600).
    Secret,
    /// Certificates, public keys, ids: world-readable (0644), as the C tool writes them.
    Public,
}

impl Access {
    /// The Unix mode bits this access level writes.
    pub fn mode(self) -> u32 {
        match self {
            Access::Secret => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// Whether an existing file may be replaced.
pub use xtt_fsio::Overwrite;

/// Reads a whole file of at most `max` bytes (larger files are refused before being read into
/// memory, so a wrong path to a huge file costs nothing). Only regular files: a FIFO would block
/// the open or the read forever and a device has no size, so they are refused before opening.
pub fn read_limited(path: &Path, what: &'static str, max: usize) -> Result<Vec<u8>> {
    match xtt_fsio::read_capped(path, max) {
        Ok(xtt_fsio::Capped::Whole(buf)) => Ok(buf),
        Ok(xtt_fsio::Capped::TooLarge { actual }) => Err(Error::new(
            path,
            ErrorKind::TooLarge {
                what,
                max,
                actual: usize::try_from(actual).unwrap_or(usize::MAX),
            },
        )),
        Ok(xtt_fsio::Capped::NotRegular) => Err(Error::new(path, ErrorKind::NotRegular)),
        Err(e) => Err(Error::new(path, ErrorKind::Read(e))),
    }
}

/// Reads a file that must be exactly `N` bytes.
pub fn read_exact<const N: usize>(path: &Path, what: &'static str) -> Result<[u8; N]> {
    let bytes = zeroize::Zeroizing::new(read_limited(path, what, N.max(4096))?);
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| Error::wrong_length(path, what, N, bytes.len()))
}

/// Reads a private key file like [`read_limited`], then warns if others may read it
/// ([`warn_if_exposed`]).
pub fn read_secret_limited(path: &Path, what: &'static str, max: usize) -> Result<Vec<u8>> {
    let bytes = read_limited(path, what, max)?;
    warn_if_exposed(path, what);
    Ok(bytes)
}

/// Reads a private key file like [`read_exact`], then warns if others may read it
/// ([`warn_if_exposed`]).
pub fn read_secret_exact<const N: usize>(path: &Path, what: &'static str) -> Result<[u8; N]> {
    let bytes = read_exact::<N>(path, what)?;
    warn_if_exposed(path, what);
    Ok(bytes)
}

/// The permission bits (as `0o644`) of a file that its group or other users have any access
/// to; `None` when only its owner has, when it cannot be read, or off Unix.
pub fn exposed_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Distinct files warned about so far in this process, and how many more at most.
static WARNED: std::sync::Mutex<std::collections::BTreeSet<std::path::PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());
const MAX_WARNINGS: usize = 8;

/// Warns on stderr that the secret file `path` (a `what`) is open to group or other users:
/// its name, its mode and the fix, never its contents. The file is still used (the C tool and
/// hand copies leave 0644 keys; refusing them would break working installations). Each file
/// is named once per process, and after [`MAX_WARNINGS`] files a last line says the rest are
/// not listed (a bench or a batch may read hundreds of member keys). The warning is a
/// `tracing` event when a subscriber shows it (`xtt` logs to stderr), else a plain line.
pub fn warn_if_exposed(path: &Path, what: &str) {
    let Some(mode) = exposed_mode(path) else {
        return;
    };
    let count = {
        let mut warned = WARNED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.len() > MAX_WARNINGS || !warned.insert(path.to_path_buf()) {
            return;
        }
        warned.len()
    };
    let message = if count > MAX_WARNINGS {
        "more private key files are open to other users (not listed); run chmod 600 on each, \
         or chmod -R go-rwx their directories"
            .to_string()
    } else {
        format!(
            "{0}: this {what} has mode {mode:o}, open to other users; run chmod 600 {0}",
            path.display()
        )
    };
    if tracing::enabled!(tracing::Level::WARN) {
        tracing::warn!("{message}");
    } else {
        eprintln!("warning: {message}");
    }
}

/// Writes `bytes` to `path` crash-safely with the mode of `access` (see [`xtt_fsio`]).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access, overwrite: Overwrite) -> Result<()> {
    xtt_fsio::write_atomic(path, bytes, access.mode(), overwrite).map_err(|e| write_error(path, e))
}

/// Creates a new file (never replacing one) with the mode of `access`, writes it and fsyncs it,
/// without a rename: for files inside a staging directory that is itself renamed into place
/// (the caller then syncs the directory once), which saves a directory sync per file.
pub fn write_new_synced(path: &Path, bytes: &[u8], access: Access) -> Result<()> {
    xtt_fsio::write_new_synced(path, bytes, access.mode()).map_err(|e| write_error(path, e))
}

/// Makes a rename or a new directory entry durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    xtt_fsio::sync_dir(dir)
}

/// Creates a directory (and parents) that only the owner can enter (0700), for directories
/// that hold secrets.
pub fn create_private_dir(path: &Path) -> Result<()> {
    xtt_fsio::create_private_dir(path).map_err(|e| Error::new(path, ErrorKind::Write(e)))
}

fn write_error(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::AlreadyExists {
        Error::new(path, ErrorKind::AlreadyExists)
    } else {
        Error::new(path, ErrorKind::Write(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_files_are_0600_and_public_0644() {
        let dir = tempfile::tempdir().unwrap();
        for (access, mode) in [(Access::Secret, 0o600), (Access::Public, 0o644)] {
            let p = dir.path().join(format!("{mode:o}"));
            write_atomic(&p, b"abc", access, Overwrite::Deny).unwrap();
            let m = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, mode);
            assert_eq!(fs::read(&p).unwrap(), b"abc");
        }
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn deny_refuses_existing_and_allow_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", Access::Public, Overwrite::Deny).unwrap();
        let err = write_atomic(&p, b"two", Access::Public, Overwrite::Deny).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::AlreadyExists), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"));
        write_atomic(&p, b"two", Access::Secret, Overwrite::Allow).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn exposed_mode_is_any_group_or_other_bit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write_atomic(&p, b"k", Access::Secret, Overwrite::Deny).unwrap();
        assert_eq!(exposed_mode(&p), None);
        for mode in [0o644, 0o640, 0o604, 0o620, 0o700 | 0o001] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(exposed_mode(&p), Some(mode), "{mode:o}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(exposed_mode(&p), None);
        assert_eq!(exposed_mode(&dir.path().join("missing")), None);
        // Still read: a warning, not a refusal.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_secret_limited(&p, "key", 10).unwrap(), b"k");
    }

    #[test]
    fn read_limited_refuses_large_files_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        fs::write(&p, vec![0u8; 100]).unwrap();
        let err = read_limited(&p, "thing", 99).unwrap_err();
        assert!(err.to_string().contains("big"), "{err}");
        assert!(err.to_string().contains("too large for thing"), "{err}");
        assert_eq!(read_limited(&p, "thing", 100).unwrap().len(), 100);
        let err = read_exact::<32>(&p, "a 32-byte thing").unwrap_err();
        assert!(
            err.to_string()
                .contains("must be 32 bytes, this file has 100"),
            "{err}"
        );
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Before the fix, opening the FIFO blocked forever; run it where a hang is detected.
        let (tx, rx) = std::sync::mpsc::channel();
        let p = fifo.clone();
        std::thread::spawn(move || tx.send(read_limited(&p, "thing", 10).map(|_| ())));
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO must not block")
            .unwrap_err();
        assert!(matches!(err.kind, ErrorKind::NotRegular), "{err}");
        assert!(err.to_string().contains("is not a regular file"), "{err}");
        for special in ["/dev/zero", "/dev/null"] {
            let err = read_limited(Path::new(special), "thing", 10).unwrap_err();
            assert_eq!(err.to_string(), format!("{special}: is not a regular file"));
        }
        let err = read_limited(dir.path(), "thing", 10).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::NotRegular), "{err}");
    }

    #[test]
    fn missing_file_error_names_path() {
        let err = read_limited(Path::new("/nonexistent/x.bin"), "thing", 10).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/x.bin: cannot read"),
            "{err}"
        );
    }
}
