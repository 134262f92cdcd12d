//! Signed updates, device side: what is refused and why, with rollback state in a real SQLite
//! file; and the `xtt update` commands end to end (keygen, sign, verify).

mod common;

use common::{xtt, T0};
use xtt_anchors::anchor::AnchorKind;
use xtt_anchors::suit::{Envelope, Manifest};
use xtt_anchors::update::{verify_update, UpdateSigningKey, UpdateTarget};
use xtt_anchors::{AnchorStore, NewAnchor, UpdateError};

const DEVICE: UpdateTarget<'static> = UpdateTarget {
    vendor_id: [0xfa; 16],
    class_id: [0x14; 16],
    component: b"firmware",
};
const IMAGE: &[u8] = b"firmware image v2, pretend this is a few hundred kilobytes";

fn manifest(seq: u64, image: &[u8]) -> Manifest {
    Manifest::for_image(
        image,
        seq,
        DEVICE.vendor_id,
        DEVICE.class_id,
        vec![b"firmware".to_vec()],
    )
}

fn setup() -> (tempfile::TempDir, AnchorStore, UpdateSigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = AnchorStore::open(&dir.path().join("device.db")).unwrap();
    let key = UpdateSigningKey::generate(&mut common::rng(1));
    store
        .import(
            NewAnchor::public(AnchorKind::UpdateKey, key.public_sec1(), "test")
                .may_sign_for(DEVICE.vendor_id, DEVICE.class_id),
            T0,
        )
        .unwrap();
    (dir, store, key)
}

#[test]
fn a_good_update_is_accepted_and_its_sequence_recorded() {
    let (_dir, mut store, key) = setup();
    let env = key.sign(&manifest(5, IMAGE)).unwrap();
    let a = verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).unwrap();
    assert_eq!(
        (a.signer, a.previous_sequence, a.recorded),
        (key.fingerprint(), None, true)
    );
    assert_eq!(a.manifest.sequence_number, 5);
}

#[test]
fn a_manifest_signed_by_an_unknown_key_is_refused() {
    let (_dir, mut store, _) = setup();
    let stranger = UpdateSigningKey::generate(&mut common::rng(2));
    let env = stranger.sign(&manifest(1, IMAGE)).unwrap();
    let err = verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).unwrap_err();
    assert!(
        matches!(err, UpdateError::UnknownSigner { tried: 1 }),
        "{err}"
    );
    assert!(
        err.to_string().contains("unknown or untrusted signer"),
        "{err}"
    );
}

#[test]
fn a_key_that_is_an_anchor_of_another_kind_or_role_does_not_sign_updates() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = AnchorStore::open(&dir.path().join("d.db")).unwrap();
    let key = UpdateSigningKey::generate(&mut common::rng(3));
    // The same key as a manufacturer anchor is not an update anchor.
    store
        .import(
            NewAnchor::public(AnchorKind::Manufacturer, key.public_sec1(), "test"),
            T0,
        )
        .unwrap();
    let env = key.sign(&manifest(1, IMAGE)).unwrap();
    let err = verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).unwrap_err();
    assert!(
        matches!(err, UpdateError::UnknownSigner { tried: 0 }),
        "{err}"
    );
    // As an update-key without the update role, neither.
    let fp = store
        .import(
            NewAnchor::public(AnchorKind::UpdateKey, key.public_sec1(), "test")
                .may_sign_for(DEVICE.vendor_id, DEVICE.class_id),
            T0,
        )
        .unwrap();
    store
        .set_roles(&fp, xtt_anchors::Roles::ONBOARDING)
        .unwrap();
    assert!(verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).is_err());
    store.set_roles(&fp, xtt_anchors::Roles::UPDATE).unwrap();
    assert!(verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).is_ok());
}

#[test]
fn a_lower_or_equal_sequence_number_is_refused_even_after_reopening() {
    let (dir, mut store, key) = setup();
    verify_update(
        &mut store,
        &key.sign(&manifest(7, IMAGE)).unwrap(),
        IMAGE,
        &DEVICE,
        T0,
        false,
    )
    .unwrap();
    drop(store);
    // A reboot: the accepted number was committed to the file.
    let mut store = AnchorStore::open(&dir.path().join("device.db")).unwrap();
    for seq in [6, 7] {
        let env = key.sign(&manifest(seq, IMAGE)).unwrap();
        let err = verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).unwrap_err();
        assert!(
            matches!(err, UpdateError::Rollback { offered, current: 7 } if offered == seq),
            "{err}"
        );
        assert!(err.to_string().contains("rollback refused"), "{err}");
    }
    let a = verify_update(
        &mut store,
        &key.sign(&manifest(8, IMAGE)).unwrap(),
        IMAGE,
        &DEVICE,
        T0,
        false,
    )
    .unwrap();
    assert_eq!(a.previous_sequence, Some(7));
}

#[test]
fn a_dry_run_records_nothing() {
    let (_dir, mut store, key) = setup();
    let env = key.sign(&manifest(3, IMAGE)).unwrap();
    assert!(
        !verify_update(&mut store, &env, IMAGE, &DEVICE, T0, true)
            .unwrap()
            .recorded
    );
    assert!(
        verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false)
            .unwrap()
            .recorded
    );
}

#[test]
fn a_wrong_image_digest_or_size_is_refused() {
    let (_dir, mut store, key) = setup();
    let env = key.sign(&manifest(1, IMAGE)).unwrap();
    let mut other = IMAGE.to_vec();
    other[0] ^= 1;
    let err = verify_update(&mut store, &env, &other, &DEVICE, T0, false).unwrap_err();
    assert!(
        matches!(err, UpdateError::ImageDigestMismatch { .. }),
        "{err}"
    );
    let err = verify_update(&mut store, &env, &IMAGE[1..], &DEVICE, T0, false).unwrap_err();
    assert!(
        matches!(err, UpdateError::ImageSizeMismatch { .. }),
        "{err}"
    );
    // Nothing was recorded by the refusals.
    verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).unwrap();
}

#[test]
fn a_manifest_for_another_vendor_or_class_is_refused() {
    let (_dir, mut store, key) = setup();
    // The key may sign for that class too: this is the device's own check.
    store
        .add_update_scope(&key.fingerprint(), DEVICE.vendor_id, [0x99; 16])
        .unwrap();
    let mut m = manifest(1, IMAGE);
    m.class_id = [0x99; 16];
    let err = verify_update(
        &mut store,
        &key.sign(&m).unwrap(),
        IMAGE,
        &DEVICE,
        T0,
        false,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::WrongTarget {
                what: "class id",
                ..
            }
        ),
        "{err}"
    );
}

/// Sequence numbers are kept per component: an old envelope the vendor signed for another
/// component of the same vendor and class must not pass as this device's update.
#[test]
fn a_manifest_for_another_component_is_refused_even_with_its_own_fresh_counter() {
    let (_dir, mut store, key) = setup();
    let current = key.sign(&manifest(7, IMAGE)).unwrap();
    verify_update(&mut store, &current, IMAGE, &DEVICE, T0, false).unwrap();
    for component in [
        vec![b"bootloader".to_vec()],
        vec![],
        vec![b"firmware".to_vec(); 2],
    ] {
        let mut m = manifest(1, IMAGE);
        m.component_id = component;
        let env = key.sign(&m).unwrap();
        let err = verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).unwrap_err();
        assert!(
            matches!(
                err,
                UpdateError::WrongTarget {
                    what: "component",
                    ..
                }
            ),
            "{err}"
        );
    }
    // A device that installs the bootloader takes it.
    let mut m = manifest(1, IMAGE);
    m.component_id = vec![b"bootloader".to_vec()];
    let boot = UpdateTarget {
        component: b"bootloader",
        ..DEVICE
    };
    verify_update(&mut store, &key.sign(&m).unwrap(), IMAGE, &boot, T0, false).unwrap();
}

/// Re-encodes the envelope with `f` applied to the COSE_Sign1 bytes.
fn with_cose(env: &[u8], f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    use ciborium::value::Value;
    let v: Value = ciborium::from_reader(env).unwrap();
    let Value::Tag(107, inner) = v else { panic!() };
    let Value::Map(mut entries) = *inner else {
        panic!()
    };
    for (k, val) in entries.iter_mut() {
        if *k == Value::Integer(2.into()) {
            let Value::Bytes(b) = val else { panic!() };
            let auth: Value = ciborium::from_reader(b.as_slice()).unwrap();
            let Value::Array(mut items) = auth else {
                panic!()
            };
            let Value::Bytes(cose) = &mut items[1] else {
                panic!()
            };
            f(cose);
            let mut out = Vec::new();
            ciborium::into_writer(&Value::Array(items), &mut out).unwrap();
            *b = out;
        }
    }
    let mut out = Vec::new();
    ciborium::into_writer(&Value::Tag(107, Box::new(Value::Map(entries))), &mut out).unwrap();
    out
}

#[test]
fn a_tampered_cose_structure_gives_a_clear_error() {
    let (_dir, mut store, key) = setup();
    let env = key.sign(&manifest(1, IMAGE)).unwrap();
    let check = |bytes: Vec<u8>, expect: &str| {
        let mut s = AnchorStore::in_memory();
        s.import(
            NewAnchor::public(AnchorKind::UpdateKey, key.public_sec1(), "t")
                .may_sign_for(DEVICE.vendor_id, DEVICE.class_id),
            T0,
        )
        .unwrap();
        let err = verify_update(&mut s, &bytes, IMAGE, &DEVICE, T0, false).unwrap_err();
        assert!(
            err.to_string().contains(expect),
            "expected {expect:?}, got: {err}"
        );
        err
    };
    // Not CBOR at all inside the authentication block.
    let err = check(with_cose(&env, |c| c.truncate(10)), "malformed COSE_Sign1");
    assert!(matches!(err, UpdateError::Cose(_)));
    // Another message type's tag (COSE_Mac0 = 17).
    check(with_cose(&env, |c| c[0] = 0xd1), "malformed COSE_Sign1");
    // The protected header now says EdDSA (-8): refused before any key is tried.
    let eddsa = with_cose(&env, |c| {
        let i = c
            .windows(2)
            .position(|w| w == [0x01, 0x26])
            .expect("alg: ES256 label");
        c[i + 1] = 0x27;
    });
    check(eddsa, "unsupported signature algorithm");
    // A payload put back in (SUIT requires it detached).
    let with_payload = with_cose(&env, |c| {
        let i = c.iter().rposition(|b| *b == 0xf6).expect("nil payload");
        c.splice(i..=i, [0x41, 0x00]);
    });
    check(with_payload, "payload must be detached");
    // A flipped signature byte: well formed, but no anchor's signature.
    let flipped = with_cose(&env, |c| {
        let last = c.len() - 1;
        c[last] ^= 1;
    });
    check(flipped, "does not verify under any update anchor");
    // The manifest itself changed after signing.
    let mut m = env.clone();
    let pos = m.len() - 5;
    m[pos] ^= 0x01;
    let err = verify_update(&mut store, &m, IMAGE, &DEVICE, T0, false).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::ManifestDigestMismatch | UpdateError::Malformed(_)
        ),
        "{err}"
    );
    // None of it got past the checks, and the original still works.
    Envelope::decode(&env).unwrap();
    verify_update(&mut store, &env, IMAGE, &DEVICE, T0, false).unwrap();
}

#[test]
fn xtt_update_keygen_sign_verify_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let image = p("fw.bin");
    std::fs::write(&image, IMAGE).unwrap();
    let vendor = "fafafafa-fafa-fafa-fafa-fafafafafafa";
    let class = "14141414141414141414141414141414";
    let at = T0.to_string();

    let out = xtt(&["update", "keygen", "--out", &p("vendor")]).unwrap();
    assert!(out.contains("update-key fingerprint"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p("vendor.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private key file mode {mode:o}");
    // A second keygen to the same prefix would lose the key devices trust: refused, files kept.
    let key_before = std::fs::read(p("vendor.key")).unwrap();
    let refused = format!(
        "{:#}",
        xtt(&["update", "keygen", "--out", &p("vendor")]).unwrap_err()
    );
    assert!(refused.contains("--force"), "{refused}");
    assert_eq!(std::fs::read(p("vendor.key")).unwrap(), key_before);
    // Only the public half left over is refused too (no half pair written).
    let lone = p("lone");
    std::fs::write(format!("{lone}.pub"), "x").unwrap();
    assert!(xtt(&["update", "keygen", "--out", &lone]).is_err());
    assert!(!std::path::Path::new(&format!("{lone}.key")).exists());
    xtt(&["update", "keygen", "--out", &lone, "--force"]).unwrap();
    assert!(std::path::Path::new(&format!("{lone}.key")).exists());

    xtt(&[
        "anchors",
        "--store",
        &p("device.db"),
        "--at",
        &at,
        "import",
        "update-key",
        &p("vendor.pub"),
        "--name",
        "vendor 2026",
        "--vendor-id",
        vendor,
        "--class-id",
        class,
    ])
    .unwrap();
    for seq in ["4", "3"] {
        xtt(&[
            "update",
            "sign",
            "--key",
            &p("vendor.key"),
            "--image",
            &image,
            "--sequence",
            seq,
            "--vendor-id",
            vendor,
            "--class-id",
            class,
            "--out",
            &p(&format!("fw{seq}.suit")),
        ])
        .unwrap();
    }
    // An image path that is a FIFO is refused at once instead of blocking the signer.
    let fifo = p("fifo.bin");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    let err = xtt(&[
        "update",
        "sign",
        "--key",
        &p("vendor.key"),
        "--image",
        &fifo,
        "--sequence",
        "9",
        "--vendor-id",
        vendor,
        "--class-id",
        class,
        "--out",
        &p("fifo.suit"),
    ])
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("is not a regular file"),
        "{err:#}"
    );
    assert!(!std::path::Path::new(&p("fifo.suit")).exists());
    let verify = |suit: &str| {
        xtt(&[
            "update",
            "verify",
            &p(suit),
            "--image",
            &image,
            "--vendor-id",
            vendor,
            "--class-id",
            class,
            "--store",
            &p("device.db"),
        ])
    };
    let out = verify("fw4.suit").unwrap();
    assert!(
        out.starts_with("OK:") && out.contains("sequence 4 (previous none)"),
        "{out}"
    );
    let err = verify("fw3.suit").unwrap_err();
    assert!(format!("{err:#}").contains("rollback refused"), "{err:#}");
    let err = verify("fw4.suit").unwrap_err();
    assert!(
        format!("{err:#}").contains("not newer than the installed 4"),
        "{err:#}"
    );
    let out = xtt(&["update", "show", &p("fw3.suit")]).unwrap();
    assert!(
        out.contains("NOT VERIFIED") && out.contains("sequence     3"),
        "{out}"
    );
    assert!(out.contains(vendor), "{out}");
}

/// `verify --at` moves the clock that decides which update keys are valid, so it must not record
/// a sequence number: an envelope signed with sequence 1000 by a key whose window has closed
/// (rotated out after a leak) used to verify "at" a time inside the old window and get 1000
/// recorded, refusing the vendor's genuine updates from then on.
#[test]
fn verify_at_another_time_is_a_dry_run_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let key = UpdateSigningKey::generate(&mut common::rng(1));
    {
        let mut s = AnchorStore::open(std::path::Path::new(&p("device.db"))).unwrap();
        let mut old = NewAnchor::public(AnchorKind::UpdateKey, key.public_sec1(), "old")
            .may_sign_for(DEVICE.vendor_id, DEVICE.class_id);
        old.validity = Some(xtt_anchors::Validity {
            not_before: T0,
            not_after: Some(T0 + 100),
        });
        s.import(old, T0).unwrap();
    }
    std::fs::write(p("fw.bin"), IMAGE).unwrap();
    std::fs::write(p("fw.suit"), key.sign(&manifest(1000, IMAGE)).unwrap()).unwrap();
    let inside_old_window = (T0 + 50).to_string();
    let verify = |extra: &[&str]| {
        let (suit, image, store) = (p("fw.suit"), p("fw.bin"), p("device.db"));
        let mut args = vec![
            "update",
            "verify",
            &suit,
            "--image",
            &image,
            "--vendor-id",
            "fafafafafafafafafafafafafafafafa",
            "--class-id",
            "14141414141414141414141414141414",
            "--store",
            &store,
        ];
        args.extend_from_slice(extra);
        xtt(&args)
    };
    let recorded = || {
        AnchorStore::open(std::path::Path::new(&p("device.db")))
            .unwrap()
            .sequence(&xtt_anchors::update::component_key(&manifest(0, IMAGE)))
            .unwrap()
    };

    let err = format!("{:#}", verify(&["--at", &inside_old_window]).unwrap_err());
    assert!(err.contains("--at needs --dry-run"), "{err}");
    assert_eq!(recorded(), None, "nothing recorded");
    // As a dry run it answers the question, and still records nothing.
    let out = verify(&["--at", &inside_old_window, "--dry-run"]).unwrap();
    assert!(
        out.starts_with("OK:") && out.contains("dry run: sequence not recorded"),
        "{out}"
    );
    assert_eq!(recorded(), None);
    // Now, the key is no longer valid.
    let err = format!("{:#}", verify(&[]).unwrap_err());
    assert!(err.contains("unknown or untrusted signer"), "{err}");
    assert_eq!(recorded(), None);
}

/// `xtt update sign` refuses a sequence number a device could not record (above 2^63-1) and
/// writes nothing; 2^63-1 itself is signed, verified and recorded.
#[test]
fn sign_refuses_a_sequence_number_a_device_cannot_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(p("fw.bin"), IMAGE).unwrap();
    xtt(&["update", "keygen", "--out", &p("vendor")]).unwrap();
    let sign = |seq: &str, out: &str| {
        xtt(&[
            "update",
            "sign",
            "--key",
            &p("vendor.key"),
            "--image",
            &p("fw.bin"),
            "--sequence",
            seq,
            "--vendor-id",
            "fafafafafafafafafafafafafafafafa",
            "--class-id",
            "14141414141414141414141414141414",
            "--out",
            &p(out),
        ])
    };
    let err = format!("{:#}", sign("9223372036854775808", "big.suit").unwrap_err());
    assert!(err.contains("larger than 2^63-1"), "{err}");
    assert!(!std::path::Path::new(&p("big.suit")).exists());

    sign("9223372036854775807", "max.suit").unwrap();
    xtt(&[
        "anchors",
        "--store",
        &p("device.db"),
        "--at",
        &T0.to_string(),
        "import",
        "update-key",
        &p("vendor.pub"),
        "--vendor-id",
        "fafafafafafafafafafafafafafafafa",
        "--class-id",
        "14141414141414141414141414141414",
    ])
    .unwrap();
    let out = xtt(&[
        "update",
        "verify",
        &p("max.suit"),
        "--image",
        &p("fw.bin"),
        "--vendor-id",
        "fafafafafafafafafafafafafafafafa",
        "--class-id",
        "14141414141414141414141414141414",
        "--store",
        &p("device.db"),
    ])
    .unwrap();
    assert!(
        out.contains("sequence 9223372036854775807 recorded"),
        "{out}"
    );
}

/// An update key signs only for the vendor and class it was scoped to. Before, with several
/// vendors' keys in one store, vendor A's key signed sequence 99 for vendor B's device; it was
/// accepted and recorded, and B's genuine updates were then refused as rollbacks.
#[test]
fn one_vendors_update_key_cannot_sign_for_another_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gateway.db");
    let mut s = AnchorStore::open(&db).unwrap();
    let vendor_a = UpdateSigningKey::generate(&mut common::rng(1));
    let vendor_b = UpdateSigningKey::generate(&mut common::rng(2));
    let b_device = UpdateTarget {
        vendor_id: [0xbb; 16],
        class_id: [0xb1; 16],
        component: b"firmware",
    };
    for (key, vendor, class) in [
        (&vendor_a, [0xaa; 16], [0xa1; 16]),
        (&vendor_b, b_device.vendor_id, b_device.class_id),
    ] {
        s.import(
            NewAnchor::public(AnchorKind::UpdateKey, key.public_sec1(), "t")
                .may_sign_for(vendor, class),
            T0,
        )
        .unwrap();
    }
    let for_b = |seq| {
        Manifest::for_image(
            IMAGE,
            seq,
            b_device.vendor_id,
            b_device.class_id,
            vec![b"firmware".to_vec()],
        )
    };
    let component = xtt_anchors::update::component_key(&for_b(0));

    let err = verify_update(
        &mut s,
        &vendor_a.sign(&for_b(99)).unwrap(),
        IMAGE,
        &b_device,
        T0,
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, UpdateError::SignerNotAllowed { signer, .. } if signer == vendor_a.fingerprint()),
        "{err}"
    );
    assert!(err.to_string().contains("xtt anchors scope"), "{err}");
    assert_eq!(s.sequence(&component).unwrap(), None, "nothing recorded");
    let ok = verify_update(
        &mut s,
        &vendor_b.sign(&for_b(5)).unwrap(),
        IMAGE,
        &b_device,
        T0,
        false,
    )
    .unwrap();
    assert_eq!(ok.signer, vendor_b.fingerprint());

    // A key without a scope (stored by an older version, or imported without one through the
    // library) signs nothing; `show` says so, and `anchors scope` is the way out.
    let legacy = UpdateSigningKey::generate(&mut common::rng(3));
    s.import(
        NewAnchor::public(AnchorKind::UpdateKey, legacy.public_sec1(), "old"),
        T0,
    )
    .unwrap();
    drop(s);
    let envelope = legacy.sign(&for_b(6)).unwrap();
    let mut s = AnchorStore::open(&db).unwrap();
    assert!(matches!(
        verify_update(&mut s, &envelope, IMAGE, &b_device, T0, true),
        Err(UpdateError::SignerNotAllowed { .. })
    ));
    drop(s);
    let db = db.to_str().unwrap();
    let anchors = |args: &[&str]| {
        let at = T0.to_string();
        let mut v = vec!["anchors", "--store", db, "--at", &at];
        v.extend_from_slice(args);
        xtt(&v)
    };
    let fp = legacy.fingerprint().to_hex();
    let show = anchors(&["show", &fp]).unwrap();
    assert!(show.contains("may sign     NOTHING"), "{show}");
    anchors(&[
        "scope",
        &fp,
        "--vendor-id",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "--class-id",
        "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1",
    ])
    .unwrap();
    let show = anchors(&["show", &fp]).unwrap();
    assert!(
        show.contains("may sign     vendor bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb class b1b1b1b1-"),
        "{show}"
    );
    let mut s = AnchorStore::open(std::path::Path::new(db)).unwrap();
    verify_update(&mut s, &envelope, IMAGE, &b_device, T0, false).unwrap();

    // Importing an update key on the command line requires its scope.
    let pem = dir.path().join("k.pub");
    std::fs::write(
        &pem,
        UpdateSigningKey::generate(&mut common::rng(4))
            .public_pem()
            .unwrap(),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        anchors(&["import", "update-key", pem.to_str().unwrap()]).unwrap_err()
    );
    assert!(err.contains("needs --vendor-id and --class-id"), "{err}");

    // A bundle carries the scopes: in the other store B's key still signs for B, and A's not.
    let bundle = dir.path().join("bundle");
    xtt_anchors::bundle::export(&s, &bundle, false).unwrap();
    let mut other = AnchorStore::in_memory();
    xtt_anchors::bundle::import(&mut other, &bundle, T0).unwrap();
    assert_eq!(
        other.update_scopes_of(&vendor_b.fingerprint()).unwrap(),
        s.update_scopes_of(&vendor_b.fingerprint()).unwrap()
    );
    assert!(matches!(
        verify_update(
            &mut other,
            &vendor_a.sign(&for_b(99)).unwrap(),
            IMAGE,
            &b_device,
            T0,
            true
        ),
        Err(UpdateError::SignerNotAllowed { .. })
    ));
    verify_update(
        &mut other,
        &vendor_b.sign(&for_b(99)).unwrap(),
        IMAGE,
        &b_device,
        T0,
        true,
    )
    .unwrap();
}
