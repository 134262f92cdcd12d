//! Small shared helpers for what commands print and how they treat existing files.

use std::fmt;
use std::io::{self, Write};
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

/// Standard output for commands that write through `io::Write`: its errors carry a
/// [`StdoutError`], so `main` can tell "the reader went away" or "the disk is full" from the
/// command's own failures however the command wrapped them.
#[derive(Debug)]
pub(crate) struct Stdout(io::StdoutLock<'static>);

impl Stdout {
    pub(crate) fn lock() -> Self {
        Self(io::stdout().lock())
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(StdoutError::wrap)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(StdoutError::wrap)
    }
}

/// Writing to standard output failed (a closed pipe, a full disk).
#[derive(Debug)]
pub(crate) struct StdoutError(pub(crate) io::Error);

impl StdoutError {
    fn wrap(e: io::Error) -> io::Error {
        io::Error::new(e.kind(), StdoutError(e))
    }

    /// The stdout failure somewhere in `e`'s chain, if any.
    pub(crate) fn find(e: &anyhow::Error) -> Option<&io::Error> {
        e.chain().find_map(|cause| {
            let io = cause.downcast_ref::<io::Error>()?;
            io.get_ref()?.downcast_ref::<StdoutError>().map(|s| &s.0)
        })
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to stdout: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}
