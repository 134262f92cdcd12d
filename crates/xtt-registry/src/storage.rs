//! Choosing a backend from the `storage` setting.
//!
//! * `sqlite:PATH` — a SQLite file (created if missing); `sqlite:///abs/path` and
//!   `sqlite://rel/path` are accepted too. `sqlite::memory:` is an in-memory registry.
//! * `postgres://…` or `postgresql://…` — a PostgreSQL database, in libpq URL syntax, e.g.
//!   `postgres://xtt@db.example/xtt` or `postgresql:///xtt?host=/run/postgresql`; add
//!   `sslmode=verify-full&sslrootcert=/etc/xtt/db-ca.pem` for TLS ([`crate::pg_tls`]).
//!
//! URLs may carry a password: print them with [`redact_url`] only.

use std::path::Path;
use std::sync::Arc;

pub use crate::pg_tls::redact_url;
use crate::{Durability, PostgresRegistry, Registry, RegistryError, SqliteRegistry};

/// Backend settings that do not belong in the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// SQLite commit durability. (PostgreSQL commits are always synchronous: the pool turns
    /// `synchronous_commit` on for its connections.)
    pub sqlite_durability: Durability,
    /// PostgreSQL connection pool size.
    pub postgres_pool_size: u32,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            sqlite_durability: Durability::Full,
            postgres_pool_size: crate::DEFAULT_POOL_SIZE,
        }
    }
}

/// The file a `sqlite:PATH` (or `sqlite://PATH`) URL names; `None` for any other URL, the
/// in-memory registry, or no path.
pub fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.trim().strip_prefix("sqlite:")?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    (!path.is_empty() && rest != ":memory:").then(|| Path::new(path))
}

/// Opens the registry named by `url` with default options; see the module documentation.
///
/// Call it from a blocking context (before the async runtime starts, or in `spawn_blocking`),
/// like every [`Registry`] method: the PostgreSQL client blocks, and panics if called on an
/// async worker thread.
pub fn open_storage(url: &str) -> Result<Arc<dyn Registry>, RegistryError> {
    open_storage_with(url, StorageOptions::default())
}

/// Opens the registry named by `url`, migrating its schema.
pub fn open_storage_with(
    url: &str,
    options: StorageOptions,
) -> Result<Arc<dyn Registry>, RegistryError> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest == ":memory:" {
            return Ok(Arc::new(SqliteRegistry::open_in_memory()?));
        }
        let Some(path) = sqlite_path(url) else {
            return Err(RegistryError::StorageUrl(format!(
                "{url:?} names no file; write sqlite:PATH, e.g. sqlite:/var/lib/xtt/registry.sqlite"
            )));
        };
        return Ok(Arc::new(SqliteRegistry::open(
            path,
            options.sqlite_durability,
        )?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Error messages never repeat the URL: it may carry a password.
        return Ok(Arc::new(PostgresRegistry::open_with_pool(
            url,
            options.postgres_pool_size,
        )?));
    }
    Err(unknown_scheme(url))
}

/// The error for a URL that is neither SQLite nor PostgreSQL. Only a scheme is repeated:
/// whatever else was given may hold a password.
pub(crate) fn unknown_scheme(url: &str) -> RegistryError {
    let what = match url.split_once(':') {
        Some((scheme, _)) if crate::pg_tls::is_scheme(scheme) => format!("scheme {scheme:?}"),
        _ => "storage URL (not shown: it may hold a password)".to_string(),
    };
    RegistryError::StorageUrl(format!(
        "unknown {what}; use sqlite:PATH or postgres://USER@HOST/DATABASE"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match open_storage(url) {
            Err(RegistryError::StorageUrl(m)) => m,
            other => panic!("{url}: expected a storage URL error, got {other:?}"),
        }
    }

    #[test]
    fn bad_urls_are_explained() {
        assert!(err("mysql://x/y").contains("unknown scheme \"mysql\""));
        let libpq = err("host=db user=xtt password=hunter2");
        assert!(
            !libpq.contains("hunter2") && libpq.contains("not shown"),
            "{libpq}"
        );
        assert!(err("registry.sqlite").contains("use sqlite:PATH"));
        assert!(err("sqlite:").contains("names no file"));
        assert!(err("sqlite://").contains("names no file"));
        let m = err("postgres://u:secret@h:notaport/db");
        assert!(m.contains("not a valid PostgreSQL URL"), "{m}");
        assert!(!m.contains("secret"));
    }

    #[test]
    fn sqlite_urls_open_files_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        let reg = open_storage(&format!("sqlite:{}", path.display())).unwrap();
        assert_eq!(reg.identity_count().unwrap(), 0);
        drop(reg);
        assert!(path.exists());
        let reg = open_storage(&format!("sqlite://{}", path.display())).unwrap();
        assert_eq!(reg.identity_count().unwrap(), 0);
        assert_eq!(
            open_storage("sqlite::memory:")
                .unwrap()
                .identity_count()
                .unwrap(),
            0
        );
    }
}
