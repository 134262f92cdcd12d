//! The store's rules, run against both backends (SQLite file and memory) so they agree.

mod common;

use common::T0;
use xtt_anchors::anchor::{AnchorKind, Validity};
use xtt_anchors::store::{Backend, MemoryBackend, SqliteBackend};
use xtt_anchors::update::UpdateSigningKey;
use xtt_anchors::{AnchorError, AnchorStore, NewAnchor, SecretBytes};

fn key(seed: u64) -> Vec<u8> {
    UpdateSigningKey::generate(&mut common::rng(seed)).public_sec1()
}

fn rules<B: Backend>(mut s: AnchorStore<B>) {
    let r0 = s.revision().unwrap();
    let a = s
        .import(
            NewAnchor::public(AnchorKind::Manufacturer, key(1), "t").named("m"),
            T0,
        )
        .unwrap();
    assert_ne!(s.revision().unwrap(), r0, "revision must change on write");
    // Same material, same kind: a duplicate. Same material as another kind: a new anchor.
    assert!(matches!(
        s.import(NewAnchor::public(AnchorKind::Manufacturer, key(1), "t"), T0),
        Err(AnchorError::Duplicate(fp)) if fp == a
    ));
    let u = s
        .import(
            NewAnchor::public(AnchorKind::UpdateKey, key(1), "t").vouched_by(a),
            T0,
        )
        .unwrap();
    assert_ne!(a, u);
    assert!(matches!(s.vouch(a, a), Err(AnchorError::SelfVouch)));
    // Unknown voucher.
    let ghost = xtt_anchors::Fingerprint([9; 32]);
    assert!(matches!(
        s.import(
            NewAnchor::public(AnchorKind::UpdateKey, key(2), "t").vouched_by(ghost),
            T0
        ),
        Err(AnchorError::NotFound(_))
    ));
    // Bad material is refused with the kind named.
    let err = s
        .import(NewAnchor::public(AnchorKind::XttRoot, vec![0; 80], "t"), T0)
        .unwrap_err();
    assert!(
        err.to_string().contains("not a valid xtt-root anchor"),
        "{err}"
    );
    let err = s
        .import(
            NewAnchor::secret(AnchorKind::TteTaSecret, SecretBytes::new(vec![1; 8]), "t"),
            T0,
        )
        .unwrap_err();
    assert!(err.to_string().contains("expected 16 to 1024"), "{err}");
    // An empty validity window.
    let mut bad = NewAnchor::public(AnchorKind::UpdateKey, key(3), "t");
    bad.validity = Some(Validity {
        not_before: T0,
        not_after: Some(T0),
    });
    assert!(matches!(s.import(bad, T0), Err(AnchorError::EmptyValidity)));
    // Future anchors are stored but not usable yet.
    let mut later = NewAnchor::public(AnchorKind::UpdateKey, key(4), "t");
    later.validity = Some(Validity {
        not_before: T0 + 10,
        not_after: None,
    });
    s.import(later, T0).unwrap();
    let usable = |s: &AnchorStore<B>, t| {
        s.usable(AnchorKind::UpdateKey, xtt_anchors::Roles::UPDATE, t)
            .unwrap()
            .len()
    };
    assert_eq!((usable(&s, T0), usable(&s, T0 + 10)), (1, 2));
    // Prefix resolution.
    assert_eq!(s.resolve(&a.to_hex()[..8]).unwrap(), a);
    assert!(matches!(
        s.resolve("abc"),
        Err(AnchorError::BadFingerprint(_))
    ));
    // A failed rotation (kind mismatch) changes nothing.
    let before = (s.list().unwrap(), s.edges().unwrap());
    assert!(s
        .rotate(
            &u,
            NewAnchor::public(AnchorKind::Manufacturer, key(5), "t"),
            60,
            T0
        )
        .is_err());
    assert_eq!((s.list().unwrap(), s.edges().unwrap()), before);
    // Removal takes the edges with it and names what lost its voucher.
    assert_eq!(s.remove(&a).unwrap(), vec![u]);
    assert!(s.edges().unwrap().is_empty());
    assert!(matches!(s.get(&a), Err(AnchorError::NotFound(_))));
    // Sequence numbers only go up.
    let c = xtt_anchors::store::ComponentKey(b"c".to_vec());
    s.advance_sequence(&c, 2, &u, T0).unwrap();
    assert!(matches!(
        s.advance_sequence(&c, 2, &u, T0),
        Err(AnchorError::Rollback {
            offered: 2,
            current: 2
        })
    ));
    assert_eq!(s.sequence(&c).unwrap(), Some(2));
    assert!(matches!(
        s.advance_sequence(&c, u64::MAX, &u, T0),
        Err(AnchorError::TooLarge(_))
    ));
}

#[test]
fn the_rules_hold_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rules(AnchorStore::with_backend(
        SqliteBackend::open(&dir.path().join("s.db")).unwrap(),
    ));
}

#[test]
fn the_rules_hold_in_memory() {
    rules(AnchorStore::with_backend(MemoryBackend::default()));
}

#[test]
fn another_process_writing_changes_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let reader = AnchorStore::open(&path).unwrap();
    let mut writer = AnchorStore::open(&path).unwrap();
    let r0 = reader.revision().unwrap();
    assert_eq!(reader.revision().unwrap(), r0, "no write, no change");
    writer
        .import(NewAnchor::public(AnchorKind::UpdateKey, key(7), "t"), T0)
        .unwrap();
    assert_ne!(reader.revision().unwrap(), r0);
    assert_eq!(reader.list().unwrap().len(), 1);
}

#[test]
fn a_newer_schema_is_refused_rather_than_misread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(AnchorStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = AnchorStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("newer version"), "{err}");
}

#[test]
fn a_wrong_store_path_is_refused_and_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    // A certificate passed as --store: not a database; neither its mode nor its bytes change.
    let cert = dir.path().join("server_cert.bin");
    std::fs::write(&cert, [0x5a; 169]).unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = AnchorStore::open(&cert).unwrap_err();
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(std::fs::read(&cert).unwrap(), [0x5a; 169]);
    // Another program's database: refused, not given our tables.
    let other = dir.path().join("registry.sqlite");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE identities (id BLOB)")
        .unwrap();
    drop(conn);
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = AnchorStore::open(&other).unwrap_err();
    assert!(err.to_string().contains("not an anchor store"), "{err}");
    assert_eq!(mode(&other), 0o644);
    // FIFOs (or devices) and directories are refused before anything opens them.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o644)).unwrap();
    for special in [fifo.as_path(), dir.path()] {
        let err = AnchorStore::open(special).unwrap_err();
        assert!(err.to_string().contains("is not a regular file"), "{err}");
    }
    assert_eq!(mode(&fifo), 0o644);
    // A new store is 0600; an existing one that was widened is narrowed again.
    let store = dir.path().join("anchors.db");
    drop(AnchorStore::open(&store).unwrap());
    assert_eq!(mode(&store), 0o600);
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(AnchorStore::open(&store).unwrap());
    assert_eq!(mode(&store), 0o600);
}

#[test]
fn tte_services_find_their_secrets_by_urn_and_store_delivered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = AnchorStore::open(&dir.path().join("tte.db")).unwrap();
    let ta = s
        .import_tte_secret(
            AnchorKind::TteTaSecret,
            SecretBytes::new(vec![7; 32]),
            "urn:tte:ta:acme",
            "TA enrolment",
            &[],
            T0,
        )
        .unwrap();
    s.import_tte_secret(
        AnchorKind::TteDevSecret,
        SecretBytes::new(vec![8; 32]),
        "urn:dev:42",
        "box 1",
        &[ta],
        T0,
    )
    .unwrap();
    let (fp, secret) = s
        .tte_secret_named(AnchorKind::TteTaSecret, "urn:tte:ta:acme", T0)
        .unwrap()
        .unwrap();
    assert_eq!((fp, secret.expose()), (ta, &[7u8; 32][..]));
    assert!(s
        .tte_secret_named(AnchorKind::TteTaSecret, "urn:dev:42", T0)
        .unwrap()
        .is_none());
    let a = s.get(&ta).unwrap();
    assert_eq!(a.provenance.to_string(), "delivered by TTE (TA enrolment)");
    assert!(s.edges().unwrap().iter().any(|e| e.from == ta));
    // Public kinds cannot be imported as TTE secrets.
    assert!(s
        .import_tte_secret(
            AnchorKind::UpdateKey,
            SecretBytes::new(vec![9; 32]),
            "x",
            "y",
            &[],
            T0
        )
        .is_err());
}

#[test]
fn group_records_carry_what_a_registry_row_carries() {
    let mut s = AnchorStore::in_memory();
    let (material, _) = common::fresh_group(3, b"records");
    let fp = s
        .import(
            NewAnchor::public(AnchorKind::DaaGroup, material.clone(), "t"),
            T0,
        )
        .unwrap();
    let records = s.daa_group_records(T0).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.fingerprint, fp);
    assert_eq!([r.gpk.as_slice(), r.basename.as_slice()].concat(), material);
    let gpk = xtt_ecdaa::GroupPublicKey::from_bytes(&r.gpk).unwrap();
    assert_eq!(xtt_ecdaa::group_id(&gpk, &r.basename), r.group_id);
}

/// The by-name lookup TTE services make per request reads only the anchors of that name: it
/// skips one that is no longer valid for another of the same name, and single imports still
/// refuse a duplicate without reading the whole store.
#[test]
fn tte_secrets_by_name_skip_expired_ones_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = AnchorStore::open(&dir.path().join("tte.db")).unwrap();
    let urn = "urn:dev:mac:0200000000aa";
    let with = |byte: u8, validity: Validity| {
        let mut a = NewAnchor::secret(
            AnchorKind::TteDevSecret,
            SecretBytes::new(vec![byte; 32]),
            "t",
        )
        .named(urn);
        a.validity = Some(validity);
        a
    };
    let expired = Validity {
        not_before: T0 - 100,
        not_after: Some(T0 - 1),
    };
    let current = Validity {
        not_before: T0 - 100,
        not_after: None,
    };
    s.import(with(1, expired), T0).unwrap();
    let live = s.import(with(2, current), T0).unwrap();
    s.import(
        NewAnchor::secret(AnchorKind::TteDevSecret, SecretBytes::new(vec![3; 32]), "t")
            .named("urn:dev:mac:0200000000bb"),
        T0,
    )
    .unwrap();
    assert_eq!(s.named(AnchorKind::TteDevSecret, urn).unwrap().len(), 2);
    let (fp, secret) = s
        .tte_secret_named(AnchorKind::TteDevSecret, urn, T0)
        .unwrap()
        .unwrap();
    assert_eq!((fp, secret.expose()), (live, &[2u8; 32][..]));
    let again = s.import(with(2, current), T0).unwrap_err();
    assert!(
        matches!(again, AnchorError::Duplicate(f) if f == live),
        "{again}"
    );
}

/// An XTT certificate of the other kind is named as what it is, with the kind to import it as.
#[test]
fn a_certificate_of_the_other_kind_is_named() {
    let (root, root_key) = common::fresh_root(51);
    let (_, server) = common::server_signed_by(&root, &root_key, 52);
    let mut s = AnchorStore::in_memory();
    let err = s
        .import(
            NewAnchor::public(AnchorKind::XttRoot, server.as_bytes().to_vec(), "t"),
            T0,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("this is an XTT server certificate")
            && err.contains("import it as xtt-server"),
        "{err}"
    );
    let err = s
        .import(
            NewAnchor::public(AnchorKind::XttServer, root.encode().to_vec(), "t"),
            T0,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("this is an XTT root certificate") && err.contains("import it as xtt-root"),
        "{err}"
    );
}
