//! Cookie keys from a file that every node of a deployment reads, so that an
//! Identity_ClientAttest may land on another node than its ClientInit.
//!
//! # Why a shared file, not the database
//!
//! The cookie key is a secret; the registry is not (`xtt registry export` prints it, backups and
//! read-only replicas copy it, every operator with read access to the database would hold the
//! key that forges cookies). A file distributed like the server's private key (configuration
//! management, a secrets store mounted read-only) keeps it with the other secrets, works the
//! same with SQLite and PostgreSQL, and costs no database round trip. Replay protection, which
//! does need shared state, is in the database (used cookies, claimed in the registration's own
//! transaction: see [`xtt_registry::Registry::register_all_once`]).
//!
//! # Format and rotation
//!
//! ```text
//! # current key first, then the previous one (still accepted); "ID HEX", ID 0..=255
//! 2 4c0b0b1e2e0a...(64 hex digits)
//! 1 9f86d081884c...(64 hex digits)
//! ```
//!
//! The file must not be readable by group or others (mode 0600 or stricter). To rotate, write a
//! new file whose first line is a new key (new id) and whose second line is the old current key,
//! and rename it over the old one: every node re-reads the file within [`RELOAD_INTERVAL`],
//! without a restart. During that interval a cookie sealed by a node that already reloaded can
//! reach a node that has not and be refused once (the device retries); keys older than the
//! previous one are refused everywhere. A file that fails to load keeps the keys in use (and is
//! logged).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use xtt_proto::cookie::{CookieKey, CookieKeyring};
use zeroize::Zeroizing;

/// How often nodes look at the key file for a rotation.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CookieKeyFileError {
    /// Reading failed.
    /// The cause is in the message, not a `source()`: this error is shown both alone (logs)
    /// and inside others, and `{:#}` would print it twice.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Group or others may read the file.
    #[error("{path}: mode {mode:o} lets others read the cookie keys; chmod 600 it")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not one or two `ID HEX` lines.
    #[error("{path}: line {line}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Reads the keyring from `path`, checking its permissions.
pub fn load(path: &Path) -> Result<CookieKeyring, CookieKeyFileError> {
    let io = |error| CookieKeyFileError::Io {
        path: path.to_path_buf(),
        error,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CookieKeyFileError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<CookieKeyring, CookieKeyFileError> {
    let bad = |line: usize, reason: &'static str| CookieKeyFileError::Format {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, secret) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(i + 1, "expected \"ID HEX\""))?;
        let id: u8 = id
            .parse()
            .map_err(|_| bad(i + 1, "the key id must be 0..=255"))?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret.trim(), bytes.as_mut_slice())
            .map_err(|_| bad(i + 1, "the key must be 64 hex digits (32 bytes)"))?;
        keys.push((i + 1, CookieKey::from_secret(id, &bytes)));
    }
    let mut keys = keys.into_iter();
    let Some((_, current)) = keys.next() else {
        return Err(bad(1, "no key in the file"));
    };
    let previous = keys.next();
    if let Some((line, _)) = keys.next() {
        return Err(bad(
            line,
            "at most two keys: the current one and the previous one",
        ));
    }
    if let Some((line, p)) = &previous {
        if p.id() == current.id() {
            return Err(bad(
                *line,
                "the previous key needs another id than the current one",
            ));
        }
    }
    Ok(CookieKeyring::with_previous(
        current,
        previous.map(|(_, k)| k),
    ))
}

/// What identifies a version of the file without reading it.
fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

/// Re-reads `path` whenever it changes (checked every [`RELOAD_INTERVAL`]) and installs the keys
/// in `server`, until `stop` turns true.
pub(crate) async fn watch(
    path: PathBuf,
    server: Arc<crate::server::Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen = stamp(&path);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(RELOAD_INTERVAL) => {}
        }
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        let p = path.clone();
        match tokio::task::spawn_blocking(move || load(&p)).await {
            Ok(Ok(keys)) => {
                tracing::info!(file = %path.display(), current = keys.current_id(), "cookie keys reloaded");
                server.proto.set_cookie_keys(keys);
                seen = now;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cookie key file not reloaded; keeping the keys in use");
                seen = now;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        match parse(Path::new("k"), text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {text:?}"),
        }
    }

    #[test]
    fn a_missing_key_file_names_its_cause_once_in_a_whole_chain() {
        let e = load(Path::new("/nonexistent/cookie.keys")).unwrap_err();
        let mut chain = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            chain.push_str(&format!(": {c}"));
            cause = c.source();
        }
        assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
    }

    #[test]
    fn key_files_parse_and_bad_ones_are_explained() {
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        let ring = parse(Path::new("k"), &format!("# keys\n2 {a}\n\n1 {b}\n")).unwrap();
        assert_eq!(ring.current_id(), 2);
        assert!(parse_err("").contains("no key"));
        assert!(parse_err(&format!("300 {a}")).contains("0..=255"));
        assert!(parse_err("1 abcd").contains("64 hex digits"));
        assert!(parse_err(&format!("1 {a}\n1 {b}")).contains("another id"));
        assert!(parse_err(&format!("1 {a}\n2 {b}\n3 {a}")).contains("line 3"));
    }

    #[test]
    fn readable_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookie.keys");
        std::fs::write(&path, format!("1 {}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(&path),
            Err(CookieKeyFileError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&path).unwrap().current_id(), 1);
    }
}
