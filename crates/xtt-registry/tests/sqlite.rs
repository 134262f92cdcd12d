//! The storage conformance suite and SQLite-specific checks on real files.

use std::sync::Arc;

use xtt_proto::ClientId;
use xtt_registry::conformance::{run_all, sample_group, sample_registration};
use xtt_registry::{Durability, Registry, RegistryError, SqliteRegistry, SCHEMA_VERSION};

#[test]
fn sqlite_file_backend_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    run_all(&|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("registry-{n}.sqlite"));
        Arc::new(SqliteRegistry::open(&path, Durability::Full).unwrap()) as Arc<dyn Registry>
    });
}

#[test]
fn in_memory_backend_passes_the_conformance_suite() {
    run_all(&|| Arc::new(SqliteRegistry::open_in_memory().unwrap()) as Arc<dyn Registry>);
}

#[test]
fn registrations_survive_reopening_and_schema_is_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let g = sample_group();
    let id = {
        let reg = SqliteRegistry::open(&path, Durability::Full).unwrap();
        reg.add_group(&g).unwrap();
        reg.register(&sample_registration(&g.group_id, ClientId::NULL))
            .unwrap()
            .client_id
    };
    let reg = SqliteRegistry::open(&path, Durability::Normal).unwrap();
    assert!(reg.identity(&id).unwrap().is_some());
    assert_eq!(reg.groups().unwrap(), vec![g]);
    drop(reg);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    assert!(matches!(
        SqliteRegistry::open(&path, Durability::Full),
        Err(RegistryError::SchemaTooNew { .. })
    ));
}

/// A file migrated by a newer xtt after this registry opened it: the health probe says so
/// (opening it again is refused, above), where it answered `Ok` before.
#[test]
fn the_probe_reports_a_schema_raised_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let reg = SqliteRegistry::open(&path, Durability::Full).unwrap();
    reg.ping().unwrap();
    let newer = rusqlite::Connection::open(&path).unwrap();
    newer
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    match reg.ping() {
        Err(RegistryError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn two_handles_on_one_file_never_assign_the_same_id() {
    // Two connections (as two server processes would have) racing on one file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let a = Arc::new(SqliteRegistry::open(&path, Durability::Normal).unwrap());
    let b = Arc::new(SqliteRegistry::open(&path, Durability::Normal).unwrap());
    let g = sample_group();
    a.add_group(&g).unwrap();
    let wanted = ClientId([7; 16]);
    let handles: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|reg| {
            let gid = g.group_id;
            std::thread::spawn(move || {
                let mut granted = 0;
                for _ in 0..20 {
                    reg.register(&sample_registration(&gid, ClientId::NULL))
                        .unwrap();
                    if reg.register(&sample_registration(&gid, wanted)).is_ok() {
                        granted += 1;
                    }
                }
                granted
            })
        })
        .collect();
    let granted: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(granted, 1, "the requested id is granted exactly once");
    assert_eq!(a.identity_count().unwrap(), 41);
}

#[test]
fn sqlite_session_store_passes_the_session_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    xtt_registry::sessions::conformance::run_all(&|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("sessions-{n}.sqlite"));
        // Next to a registry in the same file, as a server opens it.
        SqliteRegistry::open(&path, Durability::Full).unwrap();
        Arc::new(xtt_registry::sessions::SqliteSessionStore::open(&path).unwrap())
            as Arc<dyn xtt_registry::sessions::SessionStore>
    });
}

/// The registry file and its WAL are owner-only: it holds the pseudonyms that link a device's
/// provisionings (and, shared with sessions, sealed session keys). A new file is created 0600
/// whatever the umask; an existing world-readable one is narrowed when opened.
#[test]
fn the_registry_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    let r = SqliteRegistry::open(&path, Durability::Full).unwrap();
    r.add_group(&sample_group()).unwrap();
    assert_eq!(mode(&path), 0o600);
    let wal = dir.path().join("registry.sqlite-wal");
    assert_eq!(
        mode(&wal),
        0o600,
        "SQLite gives the WAL the database's mode"
    );
    drop(r);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(SqliteRegistry::open(&path, Durability::Full).unwrap());
    assert_eq!(mode(&path), 0o600, "an existing file is narrowed");

    // A wrong path fails as "not a database" and the file keeps its mode and bytes.
    let cert = dir.path().join("server_cert.bin");
    std::fs::write(&cert, [7u8; 169]).unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SqliteRegistry::open(&cert, Durability::Full).unwrap_err();
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(
        mode(&cert),
        0o644,
        "a file that is not a database keeps its mode"
    );
    assert_eq!(std::fs::read(&cert).unwrap(), [7u8; 169]);

    let sessions = dir.path().join("sessions.sqlite");
    drop(xtt_registry::sessions::SqliteSessionStore::open(&sessions).unwrap());
    assert_eq!(mode(&sessions), 0o600);
}
