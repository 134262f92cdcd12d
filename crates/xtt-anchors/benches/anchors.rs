//! What the seam costs the programs that read the store: a device's root lookup per handshake
//! (from a SQLite file with a realistic number of anchors), a server's group directory build
//! (once, with pairing precomputation), and an update verification on the device.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::{RngCore, SeedableRng};
use xtt_anchors::anchor::AnchorKind;
use xtt_anchors::suit::Manifest;
use xtt_anchors::update::{verify_update, UpdateSigningKey, UpdateTarget};
use xtt_anchors::{AnchorStore, NewAnchor};

const NOW: u64 = 1_767_225_600;

fn vectors() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/xaptum-data/server")
}

fn store(dir: &Path) -> AnchorStore {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let mut store = AnchorStore::open(&dir.join("bench.db")).unwrap();
    // 8 roots, 8 update keys, 1 DAA group: a busy installation.
    for _ in 0..8 {
        let key = xtt_proto::longterm::LongtermKeyPair::generate(&mut rng);
        let mut root = [0u8; 81];
        rng.fill_bytes(&mut root[..16]);
        root[16..].copy_from_slice(key.public_key().as_bytes());
        store
            .import(
                NewAnchor::public(AnchorKind::XttRoot, root.to_vec(), "bench"),
                NOW,
            )
            .unwrap();
        let u = UpdateSigningKey::generate(&mut rng);
        store
            .import(
                NewAnchor::public(AnchorKind::UpdateKey, u.public_sec1(), "bench")
                    .may_sign_for([1; 16], [2; 16]),
                NOW,
            )
            .unwrap();
    }
    let gm = xtt_anchors::material::daa_group_material(
        &std::fs::read(vectors().join("daa_gpk.bin")).unwrap(),
        &std::fs::read(vectors().join("basename.bin")).unwrap(),
    )
    .unwrap();
    store
        .import(NewAnchor::public(AnchorKind::DaaGroup, gm, "bench"), NOW)
        .unwrap();
    store
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    c.bench_function("xtt_roots snapshot (17 anchors, SQLite)", |b| {
        b.iter(|| store.xtt_roots(NOW).unwrap())
    });
    c.bench_function("daa_groups directory build (1 group)", |b| {
        b.iter(|| store.daa_groups(NOW).unwrap())
    });

    let key = UpdateSigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(2));
    store
        .import(
            NewAnchor::public(AnchorKind::UpdateKey, key.public_sec1(), "bench")
                .may_sign_for([1; 16], [2; 16]),
            NOW,
        )
        .unwrap();
    let image = vec![0x5au8; 256 * 1024];
    let device = UpdateTarget {
        vendor_id: [1; 16],
        class_id: [2; 16],
        component: b"fw",
    };
    let envelope = key
        .sign(&Manifest::for_image(
            &image,
            1,
            [1; 16],
            [2; 16],
            vec![b"fw".to_vec()],
        ))
        .unwrap();
    c.bench_function("update sign (256 KiB image digest + ES256)", |b| {
        b.iter(|| {
            key.sign(&Manifest::for_image(
                &image,
                1,
                [1; 16],
                [2; 16],
                vec![b"fw".to_vec()],
            ))
            .unwrap()
        })
    });
    c.bench_function(
        "update verify, dry run (9 update anchors, 256 KiB image)",
        |b| b.iter(|| verify_update(&mut store, &envelope, &image, &device, NOW, true).unwrap()),
    );
    println!("envelope size: {} bytes", envelope.len());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
