//! Point encodings of the C library (ECDAA.md §3) with the full validation a verifier needs:
//! `0x04` prefix, every coordinate below p, on the curve, not infinity and, for G2, in the
//! order-r subgroup.

use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::ecp::ECP;
use miracl_core::fp256bn::ecp2::ECP2;
use miracl_core::fp256bn::fp2::FP2;

use crate::error::Error;
use crate::scalar::{big_to_bytes, modulus, order, SCALAR_LEN};

/// Length of an uncompressed G1 point `04 ‖ x ‖ y`.
pub const G1_LEN: usize = 1 + 2 * SCALAR_LEN;
/// Length of an uncompressed G2 point `04 ‖ x.a ‖ x.b ‖ y.a ‖ y.b` (real part first).
pub const G2_LEN: usize = 1 + 4 * SCALAR_LEN;

/// Reads a coordinate and requires it to be below p (C only rejects "greater than p").
fn coordinate(bytes: &[u8]) -> Result<BIG, Error> {
    let b = crate::scalar::read_big(bytes)?;
    if BIG::comp(&b, &modulus()) >= 0 {
        return Err(Error::CoordinateOutOfRange);
    }
    Ok(b)
}

fn check_len(bytes: &[u8], expected: usize) -> Result<(), Error> {
    if bytes.len() != expected {
        return Err(Error::WrongLength {
            expected,
            actual: bytes.len(),
        });
    }
    Ok(())
}

/// Splits off the `0x04` prefix and returns the coordinate bytes.
fn body(bytes: &[u8], expected: usize) -> Result<&[u8], Error> {
    check_len(bytes, expected)?;
    match bytes.split_first() {
        Some((0x04, rest)) => Ok(rest),
        _ => Err(Error::BadPointPrefix),
    }
}

/// Decodes and validates a G1 point (cofactor 1, so on-curve means in G1).
pub fn decode_g1(bytes: &[u8]) -> Result<ECP, Error> {
    let rest = body(bytes, G1_LEN)?;
    let (xb, yb) = rest.split_at(SCALAR_LEN);
    let x = coordinate(xb)?;
    let y = coordinate(yb)?;
    let p = ECP::new_bigs(&x, &y);
    if p.is_infinity() {
        return Err(Error::NotOnCurve);
    }
    Ok(p)
}

/// Encodes a G1 point. Infinity has no encoding; it is written as all-zero coordinates, which
/// no decoder accepts (callers never encode infinity in an honest run).
pub fn encode_g1(p: &ECP) -> [u8; G1_LEN] {
    let mut out = [0u8; G1_LEN];
    out[0] = 0x04;
    if p.is_infinity() {
        return out;
    }
    let mut a = p.clone();
    a.affine();
    out[1..1 + SCALAR_LEN].copy_from_slice(&big_to_bytes(&a.getx()));
    out[1 + SCALAR_LEN..].copy_from_slice(&big_to_bytes(&a.gety()));
    out
}

/// Decodes and validates a G2 point, including the subgroup check `[r]Q = O`.
pub fn decode_g2(bytes: &[u8]) -> Result<ECP2, Error> {
    let rest = body(bytes, G2_LEN)?;
    let mut c = [BIG::new(); 4];
    for (dst, chunk) in c.iter_mut().zip(rest.chunks_exact(SCALAR_LEN)) {
        *dst = coordinate(chunk)?;
    }
    let [xa, xb, ya, yb] = c;
    let x = FP2::new_bigs(&xa, &xb);
    let y = FP2::new_bigs(&ya, &yb);
    let q = ECP2::new_fp2s(&x, &y);
    if q.is_infinity() {
        return Err(Error::NotOnCurve);
    }
    // The twist has a cofactor of about 2^256: a real subgroup check is required.
    if !q.mul(&order()).is_infinity() {
        return Err(Error::NotInSubgroup);
    }
    Ok(q)
}

/// Encodes a G2 point, real part of each coordinate first.
pub fn encode_g2(q: &ECP2) -> [u8; G2_LEN] {
    let mut out = [0u8; G2_LEN];
    out[0] = 0x04;
    if q.is_infinity() {
        return out;
    }
    let mut a = q.clone();
    a.affine();
    let mut x = a.getx();
    let mut y = a.gety();
    let parts = [x.geta(), x.getb(), y.geta(), y.getb()];
    for (chunk, v) in out[1..].chunks_exact_mut(SCALAR_LEN).zip(parts.iter()) {
        chunk.copy_from_slice(&big_to_bytes(v));
    }
    out
}
