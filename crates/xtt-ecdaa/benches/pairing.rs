//! The verifier's three-pairing product `e(a, Y)·e(b, P2)·e(c, X) = 1` (three Miller loops over
//! precomputed lines sharing one squaring chain, one final exponentiation): miracl_core's
//! `another_pc` + `miller` + `fexp` against the crate's own F_p¹² tower on the 4×64-bit field.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::SeedableRng;
use xtt_ecdaa::bench_internals::PairingBench;
use xtt_ecdaa::Issuer;

fn benches(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let issuer = Issuer::generate(&mut rng);
    let bench = PairingBench::new(issuer.group_public_key()).unwrap();
    assert_eq!(bench.miracl(), bench.tower());
    assert_eq!(bench.tower(), bench.tower_unit_lines());
    let mut g = c.benchmark_group("pairing_product_3");
    g.bench_function("miracl", |b| b.iter(|| bench.miracl()));
    g.bench_function("tower", |b| b.iter(|| bench.tower()));
    g.bench_function("tower_unit_lines", |b| b.iter(|| bench.tower_unit_lines()));
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = pairing;
    config = config();
    targets = benches
}
criterion_main!(pairing);
