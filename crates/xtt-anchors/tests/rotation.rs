//! Rotation keeps the old and the new anchor working together during the window and only the
//! new one afterwards: for XTT roots (real handshakes), DAA groups (real handshakes) and
//! update keys (real signed manifests). Time is injected; nothing sleeps.

mod common;

use common::{fresh_group, fresh_root, handshake, server_signed_by, T0};
use xtt_anchors::anchor::{Anchor, AnchorKind, Edge, EdgeKind, Validity};
use xtt_anchors::store::{MemoryBackend, UpdateScope};
use xtt_anchors::suit::Manifest;
use xtt_anchors::update::{verify_update, UpdateSigningKey, UpdateTarget};
use xtt_anchors::{AnchorError, AnchorStore, NewAnchor, UpdateError};
use xtt_proto::error::Refused;
use xtt_proto::SuiteSpec;

const WINDOW: u64 = 3_600;

#[test]
fn root_rotation_accepts_both_roots_in_the_window_and_only_the_new_one_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = AnchorStore::open(&dir.path().join("a.db")).unwrap();
    let (old_root, old_key) = fresh_root(1);
    let (new_root, new_key) = fresh_root(2);
    let (old_server, _) = server_signed_by(&old_root, &old_key, 3);
    let (new_server, _) = server_signed_by(&new_root, &new_key, 4);
    let (group, member) = fresh_group(5, b"rotation");
    store
        .import(NewAnchor::public(AnchorKind::DaaGroup, group, "test"), T0)
        .unwrap();
    let old = store
        .import(
            NewAnchor::public(AnchorKind::XttRoot, old_root.encode().to_vec(), "test"),
            T0,
        )
        .unwrap();

    let suite = SuiteSpec::ALL[0];
    let groups = store.daa_groups(T0).unwrap();
    let run = |store: &AnchorStore<_>, server, now, seed| {
        handshake(
            store.xtt_roots(now).unwrap(),
            member.clone(),
            &groups,
            server,
            suite,
            now,
            seed,
        )
    };
    // Before rotation: only servers certified by the old root.
    assert!(run(&store, &old_server, T0, 10).is_ok());
    assert_eq!(
        run(&store, &new_server, T0, 11).unwrap_err(),
        Refused::UnknownRoot.into()
    );

    let rotated_at = T0 + 100;
    let new = store
        .rotate(
            &old,
            NewAnchor::public(AnchorKind::XttRoot, new_root.encode().to_vec(), "test"),
            WINDOW,
            rotated_at,
        )
        .unwrap();
    assert!(store
        .edges()
        .unwrap()
        .iter()
        .any(|e| e.from == old && e.to == new && e.kind == EdgeKind::RotatedTo));

    // During the window both work, up to its last second.
    // (Fresh seeds per handshake: the server's replay guard refuses a repeated ClientInit.)
    for (i, now) in [rotated_at, rotated_at + WINDOW - 1]
        .into_iter()
        .enumerate()
    {
        let seed = 100 + 2 * i as u64;
        assert!(
            run(&store, &old_server, now, seed).is_ok(),
            "old root at {now}"
        );
        assert!(
            run(&store, &new_server, now, seed + 1).is_ok(),
            "new root at {now}"
        );
    }
    // Afterwards only the new root.
    let after = rotated_at + WINDOW;
    assert_eq!(
        run(&store, &old_server, after, 14).unwrap_err(),
        Refused::UnknownRoot.into()
    );
    assert!(run(&store, &new_server, after, 15).is_ok());

    // The window survives reopening the database (it was committed, not cached).
    drop(store);
    let store = AnchorStore::open(&dir.path().join("a.db")).unwrap();
    assert_eq!(store.xtt_roots(after).unwrap().len(), 1);
    assert_eq!(store.xtt_roots(after - 1).unwrap().len(), 2);
}

#[test]
fn group_rotation_window_is_honoured_by_a_long_lived_directory() {
    let mut store = AnchorStore::in_memory();
    let (root, root_key) = fresh_root(21);
    let (server, _) = server_signed_by(&root, &root_key, 22);
    store
        .import(
            NewAnchor::public(AnchorKind::XttRoot, root.encode().to_vec(), "test"),
            T0,
        )
        .unwrap();
    let (old_group, old_member) = fresh_group(23, b"fleet");
    let (new_group, new_member) = fresh_group(24, b"fleet");
    let old = store
        .import(
            NewAnchor::public(AnchorKind::DaaGroup, old_group, "test"),
            T0,
        )
        .unwrap();
    store
        .rotate(
            &old,
            NewAnchor::public(AnchorKind::DaaGroup, new_group, "test"),
            WINDOW,
            T0,
        )
        .unwrap();
    // A server builds its directory once (pairing precomputation) and keeps it.
    let groups = store.daa_groups(T0).unwrap();
    assert_eq!(groups.len(), 2);
    let suite = SuiteSpec::ALL[1];
    let run = |member, now, seed| {
        handshake(
            store.xtt_roots(now).unwrap(),
            member,
            &groups,
            &server,
            suite,
            now,
            seed,
        )
    };
    assert!(run(old_member.clone(), T0 + WINDOW - 1, 30).is_ok());
    assert!(run(new_member.clone(), T0 + WINDOW - 1, 31).is_ok());
    assert_eq!(
        run(old_member, T0 + WINDOW, 32).unwrap_err(),
        Refused::UnknownGroup.into()
    );
    assert!(run(new_member, T0 + WINDOW, 33).is_ok());
}

#[test]
fn update_key_rotation_keeps_old_signatures_only_during_the_window() {
    let mut store = AnchorStore::in_memory();
    let old_key = UpdateSigningKey::generate(&mut common::rng(41));
    let new_key = UpdateSigningKey::generate(&mut common::rng(42));
    let old = store
        .import(
            // The successor is given no scope: it inherits this one.
            NewAnchor::public(AnchorKind::UpdateKey, old_key.public_sec1(), "test")
                .may_sign_for([1; 16], [2; 16]),
            T0,
        )
        .unwrap();
    assert_eq!(old, old_key.fingerprint());
    store
        .rotate(
            &old,
            NewAnchor::public(AnchorKind::UpdateKey, new_key.public_sec1(), "test"),
            WINDOW,
            T0,
        )
        .unwrap();
    let device = UpdateTarget {
        vendor_id: [1; 16],
        class_id: [2; 16],
        component: b"fw",
    };
    let image = b"image bytes".to_vec();
    let signed = |key: &UpdateSigningKey, seq| {
        key.sign(&Manifest::for_image(
            &image,
            seq,
            [1; 16],
            [2; 16],
            vec![b"fw".to_vec()],
        ))
        .unwrap()
    };
    // In the window: both keys' manifests verify.
    let a = verify_update(
        &mut store,
        &signed(&old_key, 1),
        &image,
        &device,
        T0 + 10,
        false,
    )
    .unwrap();
    assert_eq!(a.signer, old);
    let b = verify_update(
        &mut store,
        &signed(&new_key, 2),
        &image,
        &device,
        T0 + 20,
        false,
    )
    .unwrap();
    assert_eq!(b.signer, new_key.fingerprint());
    // After it: the old key is unknown, even with a newer sequence number.
    let err = verify_update(
        &mut store,
        &signed(&old_key, 3),
        &image,
        &device,
        T0 + WINDOW,
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, UpdateError::UnknownSigner { tried: 1 }),
        "{err}"
    );
    verify_update(
        &mut store,
        &signed(&new_key, 3),
        &image,
        &device,
        T0 + WINDOW,
        false,
    )
    .unwrap();
}

/// Everything a rotation may change: anchors, edges and update scopes.
fn snapshot(store: &AnchorStore<MemoryBackend>) -> (Vec<Anchor>, Vec<Edge>, Vec<UpdateScope>) {
    (
        store.list().unwrap(),
        store.edges().unwrap(),
        store.update_scopes().unwrap(),
    )
}

#[test]
fn rotation_into_another_kind_is_refused_and_changes_nothing() {
    // Both ways: an update key (with a scope, which only an update key may hold) into a
    // manufacturer key, and a manufacturer key (nothing to inherit but its roles) into an
    // update key. The keys are valid material for either kind: only the kind is wrong.
    for (i, (from, to)) in [
        (AnchorKind::UpdateKey, AnchorKind::Manufacturer),
        (AnchorKind::Manufacturer, AnchorKind::UpdateKey),
    ]
    .into_iter()
    .enumerate()
    {
        let mut store = AnchorStore::in_memory();
        let seed = 51 + 2 * i as u64;
        let k1 = UpdateSigningKey::generate(&mut common::rng(seed));
        let k2 = UpdateSigningKey::generate(&mut common::rng(seed + 1));
        let mut first = NewAnchor::public(from, k1.public_sec1(), "test");
        if from == AnchorKind::UpdateKey {
            first = first.may_sign_for([1; 16], [2; 16]);
        }
        let old = store.import(first, T0).unwrap();
        let before = snapshot(&store);
        let into = NewAnchor::public(to, k2.public_sec1(), "test");
        let successor = into.fingerprint();
        let err = store.rotate(&old, into, 60, T0).unwrap_err();
        assert!(
            matches!(
                err,
                AnchorError::RotationKindMismatch { old, new } if (old, new) == (from, to)
            ),
            "{from} into {to}: {err:?}"
        );
        assert!(err.to_string().contains("cannot rotate"), "{err}");
        assert_eq!(snapshot(&store), before, "{from} into {to}");
        assert!(store.get(&successor).is_err(), "{from} into {to}");
        // The same key as the old one's kind is a rotation.
        store
            .rotate(
                &old,
                NewAnchor::public(from, k2.public_sec1(), "test"),
                60,
                T0,
            )
            .unwrap();
    }
}

/// An anchor that is not valid now, not yet or no longer (by its own end or by an earlier
/// rotation's window), cannot hand its roles and update scopes on to a new key.
#[test]
fn rotation_of_an_anchor_outside_its_validity_is_refused_and_passes_nothing_on() {
    let mut store = AnchorStore::in_memory();
    let k1 = UpdateSigningKey::generate(&mut common::rng(61));
    let k2 = UpdateSigningKey::generate(&mut common::rng(62));
    let (from, until) = (T0 + 100, T0 + 200);
    let old = store
        .import(
            NewAnchor {
                validity: Some(Validity {
                    not_before: from,
                    not_after: Some(until),
                }),
                ..NewAnchor::public(AnchorKind::UpdateKey, k1.public_sec1(), "test")
                    .may_sign_for([1; 16], [2; 16])
            },
            T0,
        )
        .unwrap();
    let successor = || NewAnchor::public(AnchorKind::UpdateKey, k2.public_sec1(), "test");
    let before = snapshot(&store);
    // Not yet valid (up to the second before), expired (from its first invalid second on).
    for now in [T0, from - 1, until, until + 10_000] {
        let err = store.rotate(&old, successor(), 60, now).unwrap_err();
        assert!(
            matches!(err, AnchorError::RotationOfInvalidAnchor(fp) if fp == old),
            "at {now}: {err:?}"
        );
        assert!(err.to_string().contains("not valid now"), "{err}");
        assert_eq!(snapshot(&store), before, "at {now}");
        assert!(store.get(&successor().fingerprint()).is_err(), "at {now}");
    }

    // From its first valid second it can be rotated, and the successor inherits its scope.
    let new = store.rotate(&old, successor(), 60, from).unwrap();
    assert_eq!(
        store.update_scopes_of(&new).unwrap(),
        [UpdateScope {
            key: new,
            vendor_id: [1; 16],
            class_id: [2; 16]
        }]
    );
    // Once that rotation's window is over, the old anchor is no longer valid: a second
    // rotation of it is refused.
    let k3 = UpdateSigningKey::generate(&mut common::rng(63));
    let third = NewAnchor::public(AnchorKind::UpdateKey, k3.public_sec1(), "test");
    let third_fp = third.fingerprint();
    let before = snapshot(&store);
    let err = store.rotate(&old, third, 60, from + 60).unwrap_err();
    assert!(
        matches!(err, AnchorError::RotationOfInvalidAnchor(fp) if fp == old),
        "{err:?}"
    );
    assert_eq!(snapshot(&store), before);
    assert!(store.get(&third_fp).is_err());
}
