//! Removing an anchor revokes it: no import path (single import, `import-dir`, a bundle, a
//! rotation's successor, a second process writing the file) brings it back until an operator
//! unrevokes it. Before this, re-running `import-dir` or restoring an older bundle re-imported
//! a removed (e.g. compromised) DAA group valid without end, and the XTT server accepted it
//! again.

mod common;

use std::path::Path;

use common::{xtt, T0};
use xtt_anchors::anchor::AnchorKind;
use xtt_anchors::seam::{import_xtt_tool_dir, LooseImport};
use xtt_anchors::store::{Backend, Change, MemoryBackend, SqliteBackend};
use xtt_anchors::update::UpdateSigningKey;
use xtt_anchors::{AnchorError, AnchorStore, Fingerprint, NewAnchor};

fn key(seed: u64) -> Vec<u8> {
    UpdateSigningKey::generate(&mut common::rng(seed)).public_sec1()
}

/// Writes the `xtt` tool's group files (daa_gpk.bin, basename.bin) into `dir`.
fn write_group_files(dir: &Path) {
    let (material, _) = common::fresh_group(7, b"bsn");
    std::fs::write(dir.join("daa_gpk.bin"), &material[..258]).unwrap();
    std::fs::write(dir.join("basename.bin"), &material[258..]).unwrap();
}

fn is_revoked(e: &AnchorError, fp: Fingerprint) -> bool {
    matches!(e, AnchorError::Revoked { fingerprint, kind: AnchorKind::DaaGroup, .. } if *fingerprint == fp)
}

fn revocation_rules<B: Backend>(mut s: AnchorStore<B>, files: &Path) {
    write_group_files(files);
    let done = import_xtt_tool_dir(&mut s, files, T0).unwrap();
    let [LooseImport::Imported(AnchorKind::DaaGroup, group)] = done[..] else {
        panic!("{done:?}")
    };
    let bundle = files.join("bundle");
    xtt_anchors::bundle::export(&s, &bundle, false).unwrap();
    let u = s
        .import(NewAnchor::public(AnchorKind::UpdateKey, key(1), "t"), T0)
        .unwrap();

    // The operator revokes the group: gone from what a server loads, and the revision moves
    // (a running server reloads on that).
    let r0 = s.revision().unwrap();
    assert_eq!(
        s.revoke(&group, T0 + 10).unwrap(),
        Vec::<Fingerprint>::new()
    );
    assert_ne!(s.revision().unwrap(), r0);
    assert!(s.daa_groups(T0 + 10).unwrap().is_empty());
    let r = s.revocation(&group).unwrap().expect("recorded");
    assert_eq!((r.kind, r.revoked_at), (AnchorKind::DaaGroup, T0 + 10));
    assert_eq!(s.resolve_revoked(&group.to_hex()[..8]).unwrap(), r);
    let before = s.list().unwrap();

    // Re-running the migration: refused, and nothing else in the directory is imported either
    // (a root_cert.bin that appeared meanwhile).
    let mut root = vec![3u8; 16];
    root.extend(key(2));
    std::fs::write(files.join("root_cert.bin"), &root).unwrap();
    let err = import_xtt_tool_dir(&mut s, files, T0 + 20).unwrap_err();
    assert!(is_revoked(&err, group), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&group.to_hex()) && text.contains("xtt anchors unrevoke"),
        "{text}"
    );
    // An older bundle: refused as a whole.
    let err = xtt_anchors::bundle::import(&mut s, &bundle, T0 + 30).unwrap_err();
    assert!(is_revoked(&err, group), "{err:?}");
    // A single import, and a rotation into the revoked material.
    let material = s_group_material(files);
    let err = s
        .import(
            NewAnchor::public(AnchorKind::DaaGroup, material.clone(), "t"),
            T0 + 40,
        )
        .unwrap_err();
    assert!(is_revoked(&err, group), "{err:?}");
    s.revoke(&u, T0 + 40).unwrap();
    let u2 = s
        .import(NewAnchor::public(AnchorKind::UpdateKey, key(3), "t"), T0)
        .unwrap();
    let err = s
        .rotate(
            &u2,
            NewAnchor::public(AnchorKind::UpdateKey, key(1), "t"),
            60,
            T0 + 50,
        )
        .unwrap_err();
    assert!(matches!(err, AnchorError::Revoked { fingerprint, .. } if fingerprint == u));
    let mut after = s.list().unwrap();
    after.retain(|a| a.fingerprint != u2);
    let mut expected = before.clone();
    expected.retain(|a| a.fingerprint != u);
    assert_eq!(after, expected, "nothing came back");
    assert!(s.daa_groups(T0 + 60).unwrap().is_empty());

    // `remove` (a program taking back what it just wrote) does not revoke.
    s.remove(&u2).unwrap();
    assert!(s.revocation(&u2).unwrap().is_none());
    s.import(NewAnchor::public(AnchorKind::UpdateKey, key(3), "t"), T0)
        .unwrap();

    // The operator's undo: then (and only then) the group may come back.
    assert!(matches!(s.unrevoke(&u2), Err(AnchorError::NotFound(_))));
    assert_eq!(s.unrevoke(&group).unwrap().fingerprint, group);
    assert!(s.revocation(&group).unwrap().is_none());
    let done = import_xtt_tool_dir(&mut s, files, T0 + 70).unwrap();
    assert!(
        done.contains(&LooseImport::Imported(AnchorKind::DaaGroup, group)),
        "{done:?}"
    );
    assert_eq!(s.daa_groups(T0 + 70).unwrap().len(), 1);
}

fn s_group_material(files: &Path) -> Vec<u8> {
    xtt_anchors::material::daa_group_material(
        &std::fs::read(files.join("daa_gpk.bin")).unwrap(),
        &std::fs::read(files.join("basename.bin")).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_revoked_anchor_is_not_imported_again_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    revocation_rules(
        AnchorStore::with_backend(SqliteBackend::open(&dir.path().join("s.db")).unwrap()),
        &files,
    );
}

#[test]
fn a_revoked_anchor_is_not_imported_again_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    revocation_rules(AnchorStore::in_memory(), dir.path());
}

/// The backend itself refuses the insert, in the writing transaction: another process (or any
/// path that skips the store's checks) cannot store a revoked anchor either.
#[test]
fn the_backend_refuses_to_insert_a_revoked_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let mut a = AnchorStore::open(&path).unwrap();
    let fp = a
        .import(NewAnchor::public(AnchorKind::UpdateKey, key(1), "t"), T0)
        .unwrap();
    let anchor = a.get(&fp).unwrap();
    a.revoke(&fp, T0).unwrap();
    let mut other_process = SqliteBackend::open(&path).unwrap();
    let err = other_process
        .apply(&[Change::Insert(anchor.clone())])
        .unwrap_err();
    assert!(matches!(err, AnchorError::Revoked { fingerprint, .. } if fingerprint == fp));
    assert!(a.list().unwrap().is_empty());

    let mut m = MemoryBackend::default();
    m.apply(&[Change::Revoke(a.revocation(&fp).unwrap().unwrap())])
        .unwrap();
    assert!(matches!(
        m.apply(&[Change::Insert(anchor)]),
        Err(AnchorError::Revoked { .. })
    ));
}

/// A store written before revocations existed (schema version 1) opens, keeps its anchors, and
/// is migrated in place to the current version.
#[test]
fn a_version_1_store_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let fp = AnchorStore::open(&path)
        .unwrap()
        .import(NewAnchor::public(AnchorKind::UpdateKey, key(1), "t"), T0)
        .unwrap();
    // Version 1 is exactly today's schema without the `revoked` and `update_scope` tables.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE revoked; DROP TABLE update_scope; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);

    let mut s = AnchorStore::open(&path).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    s.revoke(&fp, T0).unwrap();
    drop(s);
    let s = AnchorStore::open(&path).unwrap();
    assert!(s.revocation(&fp).unwrap().is_some());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 3);
}

/// The reviewer's scenario through the command line: remove, run the migration again.
#[test]
fn cli_remove_then_import_dir_again_is_refused_and_nothing_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    write_group_files(dir.path());
    let store = dir.path().join("a.db");
    let store = store.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    let at = T0.to_string();
    let run = |args: &[&str]| {
        let mut v = vec!["anchors", "--store", store, "--at", &at];
        v.extend_from_slice(args);
        xtt(&v)
    };
    let out = run(&["import-dir", d]).unwrap();
    let fp = out.split_whitespace().last().unwrap().to_string();
    assert!(out.starts_with("imported daa-group"), "{out}");

    let out = run(&["remove", &fp[..12]]).unwrap();
    assert!(
        out.contains("revoked") && out.contains("xtt anchors unrevoke"),
        "{out}"
    );

    let err = format!("{:#}", run(&["import-dir", d]).unwrap_err());
    assert!(
        err.contains(&fp) && err.contains("revoked") && err.contains("xtt anchors unrevoke"),
        "{err}"
    );
    let s = AnchorStore::open(Path::new(store)).unwrap();
    assert!(s.list().unwrap().is_empty(), "nothing came back");
    assert!(s.daa_groups(T0).unwrap().is_empty());
    drop(s);

    let list = run(&["list"]).unwrap();
    assert!(
        list.contains(&fp[..16]) && list.contains("revoked"),
        "{list}"
    );
    let show = run(&["show", &fp[..12]]).unwrap();
    assert!(
        show.contains("REVOKED") && show.contains("unrevoke"),
        "{show}"
    );

    let out = run(&["unrevoke", &fp[..12]]).unwrap();
    assert!(out.starts_with("unrevoked daa-group"), "{out}");
    let out = run(&["import-dir", d]).unwrap();
    assert!(out.contains(&format!("imported daa-group {fp}")), "{out}");
}
