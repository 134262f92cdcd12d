//! One error type for every file: it names the file and says what is wrong with it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A file could not be read, written, or did not hold what it should.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct Error {
    /// The file (or directory) concerned.
    pub path: PathBuf,
    /// What went wrong. Deliberately not exposed as `source()`: the message above already
    /// contains it, and error reporters would print it twice.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) fn new(path: &Path, kind: ErrorKind) -> Self {
        Self {
            path: path.to_path_buf(),
            kind,
        }
    }

    pub(crate) fn malformed(path: &Path, what: &'static str, reason: impl fmt::Display) -> Self {
        Self::new(
            path,
            ErrorKind::Malformed {
                what,
                reason: reason.to_string(),
            },
        )
    }

    pub(crate) fn wrong_length(
        path: &Path,
        what: &'static str,
        expected: usize,
        actual: usize,
    ) -> Self {
        Self::new(
            path,
            ErrorKind::WrongLength {
                what,
                expected,
                actual,
            },
        )
    }
}

/// What was wrong with a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Read(#[source] io::Error),
    /// The file could not be created, written, synced or renamed into place.
    #[error("cannot write: {0}")]
    Write(#[source] io::Error),
    /// The file exists and the caller asked not to overwrite it.
    #[error("already exists; refusing to overwrite it")]
    AlreadyExists,
    /// A FIFO, device, socket or directory where a file was expected.
    #[error("is not a regular file")]
    NotRegular,
    /// The file is larger than anything of its kind can be.
    #[error("is {actual} bytes, too large for {what} (at most {max})")]
    TooLarge {
        /// What the file should hold.
        what: &'static str,
        /// The largest acceptable size.
        max: usize,
        /// The file's size.
        actual: usize,
    },
    /// A fixed-size file has the wrong size.
    #[error("{what} must be {expected} bytes, this file has {actual}")]
    WrongLength {
        /// What the file should hold.
        what: &'static str,
        /// The size the format requires.
        expected: usize,
        /// The file's size.
        actual: usize,
    },
    /// The bytes do not form a valid object of the expected kind.
    #[error("not a valid {what}: {reason}")]
    Malformed {
        /// What the file should hold.
        what: &'static str,
        /// Why it is not one.
        reason: String,
    },
    /// Two files that belong together do not match (a key and its certificate, a group id and
    /// its group public key, ...).
    #[error("{0}")]
    Inconsistent(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
