//! G1 arithmetic: the crate's 4×64-bit Montgomery G1 (`g1`, on crypto-bigint) against
//! miracl_core's `fp256bn` (5×56-bit limbs) for the same operations, field to scalar
//! multiplication. Short measurement windows to keep the shared machine free.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::ecp::ECP;
use miracl_core::fp256bn::fp::FP;
use miracl_core::fp256bn::pair;
use miracl_core::fp256bn::rom;
use rand_core::{RngCore, SeedableRng};
use xtt_ecdaa::bench_internals::{vt_msm_u64, vt_mul2, FixedBase, Fp, G1};
use xtt_ecdaa::encoding::encode_g1;
use xtt_ecdaa::scalar::Scalar;

fn random_big(rng: &mut rand_chacha::ChaCha20Rng) -> BIG {
    BIG::frombytes(&Scalar::random(rng).to_bytes())
}

fn field(c: &mut Criterion) {
    let mut g = c.benchmark_group("g1_field");
    let mut a = FP::new_int(123_456_789);
    let b = FP::new_int(987_654_321);
    g.bench_function("miracl_mul", |bn| {
        bn.iter(|| {
            a.mul(std::hint::black_box(&b));
            a
        })
    });
    g.bench_function("miracl_square", |bn| {
        bn.iter(|| {
            a.sqr();
            a
        })
    });
    g.bench_function("miracl_inverse", |bn| {
        bn.iter(|| {
            let mut x = a;
            x.inverse(None);
            x
        })
    });
    let (mut fa, fb) = (Fp::ONE.add(&Fp::ONE), Fp::ONE.neg());
    g.bench_function("crypto_bigint_mul", |bn| {
        bn.iter(|| {
            fa = fa.mul(std::hint::black_box(&fb));
            fa
        })
    });
    g.bench_function("crypto_bigint_square", |bn| {
        bn.iter(|| {
            fa = fa.square();
            fa
        })
    });
    g.bench_function("crypto_bigint_invert", |bn| bn.iter(|| fa.invert().0));
    g.finish();
}

fn points(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let gen = ECP::generator();
    let p = gen.mul(&random_big(&mut rng));
    let q = gen.mul(&random_big(&mut rng));
    let (gp, gq) = (G1::from_ecp(&p), G1::from_ecp(&q));
    let gq_affine = gq.to_affine();
    let k = random_big(&mut rng);
    let k2 = random_big(&mut rng);
    let r = BIG::new_ints(&rom::CURVE_ORDER);

    let mut g = c.benchmark_group("g1_point");
    g.bench_function("miracl_add", |bn| {
        bn.iter(|| {
            let mut s = p.clone();
            s.add(&q);
            s
        })
    });
    g.bench_function("miracl_double", |bn| {
        bn.iter(|| {
            let mut s = p.clone();
            s.dbl();
            s
        })
    });
    g.bench_function("add", |bn| bn.iter(|| gp.add(std::hint::black_box(&gq))));
    g.bench_function("add_affine", |bn| {
        bn.iter(|| gp.add_affine(std::hint::black_box(&gq_affine)))
    });
    g.bench_function("double", |bn| {
        bn.iter(|| std::hint::black_box(&gp).double())
    });

    // The signer's constant-time multiplication: miracl's clmul against the table walk.
    let fb = FixedBase::new(&p);
    g.bench_function("miracl_clmul", |bn| bn.iter(|| p.clmul(&k, &r)));
    g.bench_function("fixed_base_mul", |bn| bn.iter(|| fb.mul(&k)));
    g.bench_function("fixed_base_new", |bn| bn.iter(|| FixedBase::new(&p)));

    // Variable-time single multiplications: miracl's window method and its GLV `g1mul`.
    g.bench_function("miracl_mul", |bn| bn.iter(|| p.mul(&k)));
    g.bench_function("miracl_g1mul_glv", |bn| bn.iter(|| pair::g1mul(&p, &k)));

    // The verifier's public double-scalar multiplication.
    g.bench_function("miracl_mul2", |bn| bn.iter(|| p.mul2(&k, &q, &k2)));
    g.bench_function("vt_mul2_glv", |bn| bn.iter(|| vt_mul2(&gp, &k, &gq, &k2)));

    // A batch's short multi-scalar multiplication, 16 points with 64-bit scalars.
    let pts: Vec<ECP> = (0..16).map(|_| gen.mul(&random_big(&mut rng))).collect();
    let ks: Vec<u64> = (0..16).map(|_| rng.next_u64()).collect();
    let bigs: Vec<BIG> = ks
        .iter()
        .map(|k| {
            let mut b = [0u8; 32];
            b[24..].copy_from_slice(&k.to_be_bytes());
            BIG::frombytes(&b)
        })
        .collect();
    let terms: Vec<(G1, u64)> = pts.iter().map(G1::from_ecp).zip(ks).collect();
    g.bench_function("miracl_muln_16x64bit", |bn| {
        bn.iter(|| ECP::muln(16, &pts, &bigs))
    });
    g.bench_function("vt_msm_u64_16", |bn| bn.iter(|| vt_msm_u64(&terms)));

    // A point's 65-byte encoding (an affine conversion, one inversion).
    let sum = p.mul2(&k, &q, &k2);
    g.bench_function("encode_g1", |bn| {
        bn.iter(|| encode_g1(std::hint::black_box(&sum)))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = g1;
    config = config();
    targets = field, points
}
criterion_main!(g1);
