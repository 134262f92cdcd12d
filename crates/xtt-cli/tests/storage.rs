//! `xtt server --storage` and `xtt registry` through the binary, against SQLite files and the
//! throwaway PostgreSQL server `scripts/test.sh` starts (`XTT_TEST_POSTGRES_URL`; these tests
//! fail without it).

mod common;

use std::path::Path;

use common::{fresh_database_url, member, ok, provisioned, setup, xtt, ServerProcess};

/// `xtt server` on the registry `--storage` names (no `--data-dir`: nothing may be written to
/// the default one).
fn start_server(dir: &Path, storage: &str) -> ServerProcess {
    ServerProcess::start_with(
        dir,
        &[],
        &[
            "--group",
            "acme",
            "--no-metrics",
            "--verbose",
            "--storage",
            storage,
        ],
    )
}

#[test]
fn server_runs_on_postgres_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 2);
    let url = fresh_database_url("Sup3rSecretPw");
    let server = start_server(dir.path(), &url);
    let banner = server.banner.clone();
    assert!(banner.contains("registry postgresql://"), "{banner}");
    assert!(banner.contains(":***@"), "{banner}");
    let id = provisioned(dir.path(), &member(dir.path(), 1), server.addr);
    let stderr = server.stop();
    for text in [&banner, &stderr] {
        assert!(!text.contains("Sup3rSecretPw"), "password shown:\n{text}");
    }
    assert!(stderr.contains("registry opened"), "{stderr}");
    // The identity is in the database, not in a SQLite file.
    assert!(!dir.path().join("xtt-data").exists());
    let reg = xtt_registry::open_storage(&url).unwrap();
    let rec = reg
        .identity(&id)
        .unwrap()
        .expect("identity stored in PostgreSQL");
    assert_eq!(rec.client_id, id);
    assert_eq!(reg.identity_count().unwrap(), 1);
}

#[test]
fn a_bad_storage_url_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), 1);
    let out = xtt(
        dir.path(),
        &[
            "server",
            "--storage",
            "postgres://xtt:Sup3rSecretPw@127.0.0.1:1/none?connect_timeout=2",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("postgres://xtt:***@127.0.0.1:1/none"), "{err}");
    assert!(!err.contains("Sup3rSecretPw"), "{err}");
    let out = xtt(dir.path(), &["server", "--storage", "mysql://root:pw@h/x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not sqlite:PATH or postgres://"), "{err}");
}

/// Fills a registry with one group and `n` identities; returns the group id in hex.
fn fill(url: &str, n: usize) -> String {
    use xtt_registry::conformance::{sample_group, sample_registration};
    let reg = xtt_registry::open_storage(url).unwrap();
    let g = sample_group();
    reg.add_group(&g).unwrap();
    for _ in 0..n {
        reg.register(&sample_registration(&g.group_id, xtt_proto::ClientId::NULL))
            .unwrap();
    }
    hex::encode(g.group_id.0)
}

fn registry_commands_work_on(url: &str, schema_version: i64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(d, &["registry", "migrate", "--storage", url]);
    assert!(
        out.contains(&format!("schema version {schema_version}")),
        "{out}"
    );
    assert!(!out.contains("Sup3rSecretPw"), "{out}");
    let gid = fill(url, 3);

    let text = ok(d, &["registry", "stats", "--storage", url]);
    assert!(text.contains("identities  3"), "{text}");
    assert!(text.contains(&format!("group {gid}: 3")), "{text}");
    assert!(text.contains("(last seen 2023-11-14T22:13:20Z)"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["registry", "stats", "--storage", url, "--json"])).unwrap();
    assert_eq!(json["groups"], 1);
    assert_eq!(json["identities"], 3);
    assert_eq!(json["identities_per_group"][&gid], 3);
    assert_eq!(json["newest_registration"]["last_seen"], 1_700_000_000);
    assert!(!json.to_string().contains("Sup3rSecretPw"));

    let lines = ok(d, &["registry", "export", "--storage", url]);
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["kind"], "group");
    assert_eq!(rows[0]["group_id"], gid.as_str());
    assert!(rows[1..].iter().all(|r| r["kind"] == "identity"
        && r["client_id"].as_str().unwrap().len() == 32
        && r["longterm_public_key"].as_str().unwrap().len() == 130));

    ok(
        d,
        &[
            "registry",
            "export",
            "--storage",
            url,
            "--format",
            "csv",
            "-o",
            "ids.csv",
        ],
    );
    let csv = std::fs::read_to_string(d.join("ids.csv")).unwrap();
    let mut csv_lines = csv.lines();
    assert_eq!(
        csv_lines.next(),
        Some("client_id,group_id,pseudonym,longterm_public_key,first_seen,last_seen")
    );
    assert_eq!(csv_lines.count(), 3);
    assert!(csv
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(1) == Some(gid.as_str())));
}

#[test]
fn registry_migrate_stats_export_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    registry_commands_work_on(
        &format!("sqlite:{}", dir.path().join("r.sqlite").display()),
        xtt_registry::SCHEMA_VERSION,
    );
}

#[test]
fn registry_migrate_stats_export_on_postgres() {
    registry_commands_work_on(
        &fresh_database_url("Sup3rSecretPw"),
        xtt_registry::POSTGRES_SCHEMA_VERSION,
    );
}

/// Reading commands do not create a registry where the path is mistyped (it would report no
/// identities, as if the registry were empty), and a file that is not a database keeps its mode.
#[test]
fn registry_reads_refuse_a_missing_file_and_leave_other_files_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let typo = d.join("typo.sqlite");
    for cmd in ["stats", "export"] {
        let url = format!("sqlite:{}", typo.display());
        let out = xtt(d, &["registry", cmd, "--storage", &url]);
        assert!(
            !out.status.success(),
            "{cmd} on a missing registry succeeded"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no registry at"), "{cmd}: {err}");
        assert!(!typo.exists(), "{cmd} created {}", typo.display());
    }
    let cert = d.join("server_cert.bin");
    std::fs::write(&cert, [7u8; 169]).unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = format!("sqlite:{}", cert.display());
    let out = xtt(d, &["registry", "stats", "--storage", &url]);
    assert!(!out.status.success());
    let mode = std::fs::metadata(&cert).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "a file that is not a database keeps its mode");
    assert_eq!(std::fs::read(&cert).unwrap(), [7u8; 169]);
}
