//! The two hash functions of the scheme (ECDAA.md §4): SHA-256 read as an integer mod r, and the
//! C library's try-and-increment hash to G1 (little-endian counter, x mod r, even y).
//!
//! No standard hash-to-curve is used on purpose: pseudonyms must match the C library's.

use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::ecp::ECP;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::scalar::order;

/// Largest counter value the C library tries before giving up.
const HASH_TO_G1_MAX_COUNTER: u32 = 231;

/// `Hr(parts…)`: SHA-256 over the plain concatenation, big-endian, reduced mod r.
pub(crate) fn hash_to_scalar(parts: &[&[u8]]) -> BIG {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    digest_mod_r(&h.finalize().into())
}

pub(crate) fn digest_mod_r(d: &[u8; 32]) -> BIG {
    let mut b = BIG::frombytes(d);
    b.rmod(&order());
    b
}

/// `HashToG1(m)`: for i = 0, 1, …: x = SHA256(LE32(i) ‖ m) mod r; if x³ + 3 is a square, return
/// (x, even root). Cofactor 1, so the point is in G1 as found.
pub fn hash_to_g1(message: &[u8]) -> Result<ECP, Error> {
    for i in 0..=HASH_TO_G1_MAX_COUNTER {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(i.to_le_bytes())
            .chain_update(message)
            .finalize()
            .into();
        let x = digest_mod_r(&digest);
        // `new_big` computes a square root of x³ + 3, or returns infinity for a non-residue.
        let mut p = ECP::new_big(&x);
        if p.is_infinity() {
            continue;
        }
        if p.gety().parity() == 1 {
            p.neg();
        }
        return Ok(p);
    }
    Err(Error::HashToG1Failed)
}
