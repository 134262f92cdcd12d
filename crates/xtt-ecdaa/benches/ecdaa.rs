//! ECDAA benchmarks (criterion, short measurement windows to keep the shared machine free).
//! `ecdaa/verify_batch_32_per_sig` times whole batches of 32 signatures and reports the time
//! divided by 32 (via `iter_custom`), i.e. the amortized cost per signature.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::SeedableRng;
use xtt_ecdaa::{generate_member_key, GroupVerifier, Issuer, Member};

fn setup() -> (Issuer, Member, GroupVerifier, rand_chacha::ChaCha20Rng) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
    let issuer = Issuer::generate(&mut rng);
    let nonce = b"bench nonce";
    let (sk, mpk) = generate_member_key(nonce, &mut rng);
    let (cred, _sig) = issuer.issue_credential(&mpk, nonce, &mut rng).unwrap();
    let gpk = issuer.group_public_key().clone();
    let member = Member::new(sk, cred, &gpk, b"BASENAME").unwrap();
    let verifier = GroupVerifier::new(gpk, b"BASENAME").unwrap();
    (issuer, member, verifier, rng)
}

fn benches(c: &mut Criterion) {
    let (issuer, member, verifier, mut rng) = setup();
    let msg = [0x5au8; 64];
    let mut g = c.benchmark_group("ecdaa");

    g.bench_function("sign_with_basename", |b| {
        b.iter(|| member.sign(&msg, &mut rng).unwrap())
    });
    g.bench_function("sign_without_basename", |b| {
        b.iter(|| member.sign_without_basename(&msg, &mut rng))
    });
    let sig = member.sign(&msg, &mut rng).unwrap();
    g.bench_function("verify", |b| {
        b.iter(|| verifier.verify(&msg, &sig, &mut rng).unwrap())
    });

    let msgs: Vec<[u8; 64]> = (0..32u8).map(|i| [i; 64]).collect();
    let sigs: Vec<[u8; 421]> = msgs
        .iter()
        .map(|m| member.sign(m, &mut rng).unwrap())
        .collect();
    let items: Vec<(&[u8], &[u8])> = msgs
        .iter()
        .zip(sigs.iter())
        .map(|(m, s)| (&m[..], &s[..]))
        .collect();
    g.bench_function("verify_batch_32_per_sig", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                verifier.verify_batch(&items, &mut rng).unwrap();
            }
            start.elapsed() / 32
        })
    });

    g.bench_function("issuer_keygen", |b| b.iter(|| Issuer::generate(&mut rng)));
    g.bench_function("join_member_request_issue_and_validate", |b| {
        b.iter(|| {
            let (sk, mpk) = generate_member_key(b"n", &mut rng);
            let (cred, csig) = issuer.issue_credential(&mpk, b"n", &mut rng).unwrap();
            cred.validate(&csig, &mpk, issuer.group_public_key())
                .unwrap();
            sk
        })
    });
    g.bench_function("group_verifier_setup", |b| {
        b.iter(|| GroupVerifier::new(issuer.group_public_key().clone(), b"BASENAME").unwrap())
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = ecdaa;
    config = config();
    targets = benches
}
criterion_main!(ecdaa);
