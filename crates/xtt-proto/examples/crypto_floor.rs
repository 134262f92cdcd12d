//! The crypto floor of one side of a session handshake, as one number a script can use: the
//! same loop as `benches/session.rs` `crypto_floor/one_side` (X25519 keygen + DH, one ECDSA
//! P-256 sign and one verify, an AEAD seal + open of the 96-byte attest plaintext, five prf
//! calls), timed on one thread; prints, per suite, the median of 15 batches in wall-clock µs
//! and the thread's CPU time per iteration over all batches (from /proc/thread-self/stat, 10 ms
//! ticks over ≈ 2 s: ±1 %), which a busy shared machine does not inflate.
//!
//! ```text
//! cargo run --release -p xtt-proto --example crypto_floor
//! ```

use std::time::{Duration, Instant};

use rand_core::OsRng;
use xtt_proto::crypto_floor;
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::SuiteSpec;

fn one_side(suite: SuiteSpec, key: &LongtermKeyPair) {
    let (private, peer) = ([0x42u8; 32], [9u8; 32]);
    let msg = [0x17u8; 64];
    assert!(crypto_floor::x25519_keygen_and_dh(&private, &peer).is_some());
    let sig = key.sign_rfc6979(&msg, &[]).expect("sign");
    assert!(key.public_key().verify(&msg, &sig));
    let sealed = crypto_floor::aead_seal(suite, &[3; 32], &[1; 96]);
    assert!(crypto_floor::aead_open(suite, &[3; 32], &sealed));
    let mut out = [0u8; 32];
    for _ in 0..5 {
        crypto_floor::prf(suite, &[5; 64], &[1; 64], &mut out);
    }
    std::hint::black_box(out);
}

/// User + system CPU seconds of this thread (Linux; 0 elsewhere).
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // utime, stime: fields 14 and 15, i.e. 11 and 12 after the state (not a number, skipped
    // by the parse, so 10 and 11 here); USER_HZ = 100.
    (fields.get(10).copied().unwrap_or(0.0) + fields.get(11).copied().unwrap_or(0.0)) / 100.0
}

/// (median wall-clock µs of 15 batches, CPU µs per iteration over all of them).
fn measure_us(suite: SuiteSpec, key: &LongtermKeyPair) -> (f64, f64) {
    for _ in 0..50 {
        one_side(suite, key);
    }
    let (cpu0, mut total) = (thread_cpu_secs(), 0u32);
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let (t0, mut n) = (Instant::now(), 0u32);
            while t0.elapsed() < Duration::from_millis(150) {
                one_side(suite, key);
                n += 1;
            }
            total += n;
            t0.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    let cpu_us = (thread_cpu_secs() - cpu0) * 1e6 / f64::from(total.max(1));
    batches.sort_by(f64::total_cmp);
    (batches[batches.len() / 2], cpu_us)
}

fn main() {
    let key = LongtermKeyPair::generate(&mut OsRng);
    for suite in [
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
    ] {
        let (wall, cpu) = measure_us(suite, &key);
        println!(
            "crypto floor, one side, {}: {wall:.1} us wall (median), {cpu:.1} us CPU",
            suite.name()
        );
    }
}
