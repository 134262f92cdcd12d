//! The primitives a session handshake costs, called through the same backend as the protocol
//! (the private `crypto` module), so benchmarks measure the "crypto floor" of whatever backend is
//! compiled in. Not an API: hidden, for `benches/session.rs`.

use crate::crypto::{self, AeadAlg, CryptoFailure, HashAlg};
use crate::suite::SuiteSpec;

/// X25519: public key of `private`, then the shared secret with `peer` (the two scalar
/// multiplications one side of a handshake does).
pub fn x25519_keygen_and_dh(private: &[u8; 32], peer: &[u8; 32]) -> Option<[u8; 32]> {
    let _public = crypto::x25519_public(private);
    crypto::x25519_shared(private, peer).ok().map(|s| *s)
}

fn aead(suite: SuiteSpec) -> AeadAlg {
    suite.aead_alg()
}

/// Seals `plaintext` with the suite's handshake AEAD (key setup included, as the protocol does).
pub fn aead_seal(suite: SuiteSpec, key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    crypto::aead_seal(aead(suite), key, &[0; 12], b"ad", plaintext).unwrap_or_default()
}

/// Opens what [`aead_seal`] sealed.
pub fn aead_open(suite: SuiteSpec, key: &[u8; 32], sealed: &[u8]) -> bool {
    crypto::aead_open(aead(suite), key, &[0; 12], b"ad", sealed)
        .map_err(|_: CryptoFailure| ())
        .is_ok()
}

/// The suite prf with a 64-byte key, `out.len()` bytes.
pub fn prf(suite: SuiteSpec, key: &[u8; 64], input: &[u8], out: &mut [u8]) {
    let alg: HashAlg = suite.hash_alg();
    crypto::prf(alg, key, &[input], out);
}

/// The suite hash.
pub fn hash(suite: SuiteSpec, input: &[u8]) -> [u8; 64] {
    suite.hash(&[input])
}
