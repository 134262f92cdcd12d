//! The crypto floor of one side of a session handshake, as one number a script can use: the
//! same loop as `benches/session.rs` `crypto_floor/one_side` (X25519 keygen + DH, one ECDSA
//! P-256 sign and one verify, an AEAD seal + open of the 96-byte attest plaintext, five prf
//! calls), timed on one thread; prints the median of 15 batches in µs per suite.
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

fn median_us(suite: SuiteSpec, key: &LongtermKeyPair) -> f64 {
    for _ in 0..50 {
        one_side(suite, key);
    }
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let (t0, mut n) = (Instant::now(), 0u32);
            while t0.elapsed() < Duration::from_millis(150) {
                one_side(suite, key);
                n += 1;
            }
            t0.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

fn main() {
    let key = LongtermKeyPair::generate(&mut OsRng);
    for suite in [
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
    ] {
        println!(
            "crypto floor, one side, {}: {:.1} us",
            suite.name(),
            median_us(suite, &key)
        );
    }
}
