//! Scalars mod r: a zeroizing wrapper around miracl's `BIG`, the C library's RNG-to-scalar
//! derivation, and the few modular operations the Schnorr proofs need.
//!
//! miracl's `BIG` is `Copy` and has no destructor, so every secret scalar this crate keeps lives
//! in a [`Scalar`], which overwrites its limbs on drop. Temporaries inside miracl routines are
//! outside our control (documented limitation of building on miracl_core).

use core::fmt;

use crypto_bigint::modular::constant_mod::{Residue, ResidueParams};
use crypto_bigint::{impl_modulus, Encoding, U256};
use miracl_core::fp256bn::big::{self, BIG};
use miracl_core::fp256bn::rom;
use rand_core::CryptoRngCore;
use zeroize::Zeroize;

use crate::error::Error;

/// Length of a serialized scalar.
pub const SCALAR_LEN: usize = big::MODBYTES;

/// Bytes the C library draws from its RNG per random scalar (only the first 64 are used).
pub const RNG_BYTES_PER_SCALAR: usize = 65;

/// The group order r.
pub(crate) fn order() -> BIG {
    BIG::new_ints(&rom::CURVE_ORDER)
}

/// r − 1, the largest scalar: an edge case every multiplication test feeds in.
#[cfg(test)]
pub(crate) fn order_minus_one() -> BIG {
    let mut rm1 = order();
    rm1.dec(1);
    rm1.norm();
    rm1
}

/// The field prime p.
pub(crate) fn modulus() -> BIG {
    BIG::new_ints(&rom::MODULUS)
}

impl_modulus!(
    GroupOrder,
    U256,
    "fffffffffffcf0cd46e5f25eee71a49e0cdc65fb1299921af62d536cd10b500d"
);

/// r in crypto-bigint's constant-time Montgomery form: secret products and reductions mod r
/// (a fixed sequence of limb operations, where miracl's `ctdmod` needs 256 masked
/// subtractions of double-length numbers).
type Fr = Residue<GroupOrder, { U256::LIMBS }>;

/// `b mod r` for any `b < 2^256`, in constant time.
fn fr_from_bytes(b: &[u8; SCALAR_LEN]) -> Fr {
    let mut v = U256::from_be_bytes(*b);
    let out = Fr::new(&v);
    v.zeroize();
    out
}

/// The value (below r) as a `BIG`, wiping the temporaries.
fn fr_to_big(f: &Fr) -> BIG {
    let mut v = f.retrieve();
    let mut bytes = v.to_be_bytes();
    let out = BIG::frombytes(&bytes);
    v.zeroize();
    bytes.zeroize();
    out
}

/// An integer mod r whose limbs are wiped on drop. `Debug` never prints the value.
#[derive(Clone)]
pub struct Scalar(pub(crate) BIG);

impl Drop for Scalar {
    fn drop(&mut self) {
        self.0.w.zeroize();
    }
}

impl Zeroize for Scalar {
    fn zeroize(&mut self) {
        self.0.w.zeroize();
    }
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scalar(<redacted>)")
    }
}

impl Scalar {
    /// Reads 32 big-endian bytes, requiring the value to be below r.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let b = read_big(bytes)?;
        if BIG::comp(&b, &order()) >= 0 {
            return Err(Error::ScalarOutOfRange);
        }
        Ok(Scalar(b))
    }

    /// 32 big-endian bytes.
    pub fn to_bytes(&self) -> [u8; SCALAR_LEN] {
        big_to_bytes(&self.0)
    }

    /// Whether the scalar is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iszilch()
    }

    /// The C library's derivation from 65 RNG bytes (ECDAA.md §5): the first 64 bytes, each
    /// bit-reversed, read as a 512-bit big-endian integer, reduced mod r. The 65th byte is unused.
    pub fn from_c_rng_bytes(bytes: &[u8; RNG_BYTES_PER_SCALAR]) -> Self {
        let mut rev = [0u8; 64];
        for (d, s) in rev.iter_mut().zip(bytes.iter()) {
            *d = s.reverse_bits();
        }
        // D = hi·2^256 + lo ≡ hi·(2^256 mod r) + lo (mod r), in constant time.
        let (hi, lo) = rev.split_at(SCALAR_LEN);
        let mut halves = [[0u8; SCALAR_LEN]; 2];
        halves[0].copy_from_slice(hi);
        halves[1].copy_from_slice(lo);
        rev.zeroize();
        let mut hi = fr_from_bytes(&halves[0]);
        let mut lo = fr_from_bytes(&halves[1]);
        halves.zeroize();
        let mut d = hi.mul(&Fr::new(&GroupOrder::R)).add(&lo);
        let s = Scalar(fr_to_big(&d));
        hi.zeroize();
        lo.zeroize();
        d.zeroize();
        s
    }

    /// Draws a uniformly random scalar exactly as the C library does (65 RNG bytes).
    pub fn random(rng: &mut dyn CryptoRngCore) -> Self {
        let mut buf = [0u8; RNG_BYTES_PER_SCALAR];
        rng.fill_bytes(&mut buf);
        let s = Self::from_c_rng_bytes(&buf);
        buf.zeroize();
        s
    }

    /// `k + c·x mod r`, the Schnorr response. Constant-time in `k` and `x` (all inputs < r).
    pub(crate) fn schnorr_response(k: &Scalar, c: &BIG, x: &Scalar) -> Scalar {
        let cx = ct_modmul(c, &x.0);
        Scalar(ct_modadd(&k.0, &cx.0))
    }

    /// `a·b mod r`, constant-time.
    pub(crate) fn mul(a: &Scalar, b: &Scalar) -> Scalar {
        ct_modmul(&a.0, &b.0)
    }
}

/// `a·b mod r` for `a, b < r` in constant time (miracl's `BIG::modmul` first reduces its
/// inputs with a loop whose length depends on their bit lengths).
fn ct_modmul(a: &BIG, b: &BIG) -> Scalar {
    let mut ab = [big_to_bytes(a), big_to_bytes(b)];
    let mut fa = fr_from_bytes(&ab[0]);
    let mut fb = fr_from_bytes(&ab[1]);
    ab.zeroize();
    let mut p = fa.mul(&fb);
    let out = Scalar(fr_to_big(&p));
    fa.zeroize();
    fb.zeroize();
    p.zeroize();
    out
}

/// `a + b mod r` for `a, b < r`: one masked conditional subtraction.
fn ct_modadd(a: &BIG, b: &BIG) -> BIG {
    let mut s = *a;
    s.add(b);
    s.norm();
    s.ctmod(&order(), 1);
    s
}

/// Reads exactly 32 big-endian bytes into a `BIG` (no range check).
pub(crate) fn read_big(bytes: &[u8]) -> Result<BIG, Error> {
    if bytes.len() != SCALAR_LEN {
        return Err(Error::WrongLength {
            expected: SCALAR_LEN,
            actual: bytes.len(),
        });
    }
    Ok(BIG::frombytes(bytes))
}

/// `x` as a `BIG`.
pub(crate) fn big_from_u64(x: u64) -> BIG {
    BIG::frombytes(&U256::from_u64(x).to_be_bytes())
}

/// 32 big-endian bytes of a `BIG` assumed below 2^256.
pub(crate) fn big_to_bytes(b: &BIG) -> [u8; SCALAR_LEN] {
    let mut out = [0u8; SCALAR_LEN];
    let mut t = *b;
    t.norm();
    t.tobytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use miracl_core::fp256bn::dbig::DBIG;
    use rand_core::SeedableRng;

    #[test]
    fn constant_time_arithmetic_matches_miracl() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let r = order();
        let rm1 = order_minus_one();
        let mut vals: Vec<Scalar> = (0..30).map(|_| Scalar::random(&mut rng)).collect();
        vals.push(Scalar(BIG::new()));
        vals.push(Scalar(rm1));
        for a in &vals {
            for b in vals.iter().take(5) {
                let m = Scalar::mul(a, b);
                assert_eq!(BIG::comp(&m.0, &BIG::modmul(&a.0, &b.0, &r)), 0);
                let s = Scalar::schnorr_response(a, &b.0, a);
                let want = BIG::modadd(&a.0, &BIG::modmul(&b.0, &a.0, &r), &r);
                assert_eq!(BIG::comp(&s.0, &want), 0);
            }
        }
    }

    #[test]
    fn rng_derivation_matches_miracl_reduction() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let mut draws = vec![[0u8; RNG_BYTES_PER_SCALAR], [0xff; RNG_BYTES_PER_SCALAR]];
        // r itself and r − 1 in the low half (bit-reversed bytes), zero high half.
        for v in [order(), order_minus_one()] {
            let mut d = [0u8; RNG_BYTES_PER_SCALAR];
            for (dst, b) in d[32..64].iter_mut().zip(big_to_bytes(&v)) {
                *dst = b.reverse_bits();
            }
            draws.push(d);
        }
        for _ in 0..100 {
            let mut d = [0u8; RNG_BYTES_PER_SCALAR];
            rand_core::RngCore::fill_bytes(&mut rng, &mut d);
            draws.push(d);
        }
        for d in draws {
            let mut rev = [0u8; 64];
            for (r, b) in rev.iter_mut().zip(d.iter()) {
                *r = b.reverse_bits();
            }
            let want = DBIG::frombytes(&rev).dmod(&order());
            assert_eq!(BIG::comp(&Scalar::from_c_rng_bytes(&d).0, &want), 0);
        }
    }

    #[test]
    fn rng_derivation_and_range_checks() {
        // All-ones draw: D = 2^512 − 1, reduced mod r.
        let s = Scalar::from_c_rng_bytes(&[0xff; RNG_BYTES_PER_SCALAR]);
        let mut d = DBIG::frombytes(&[0xff; 64]);
        assert_eq!(BIG::comp(&s.0, &d.dmod(&order())), 0);
        // Bit reversal: byte 0x01 at the end contributes 0x80.
        let mut buf = [0u8; RNG_BYTES_PER_SCALAR];
        buf[63] = 0x01;
        buf[64] = 0xff; // unused 65th byte
        assert_eq!(Scalar::from_c_rng_bytes(&buf).to_bytes()[31], 0x80);
        assert!(Scalar::from_bytes(&order_bytes()).is_err());
        assert!(Scalar::from_bytes(&[0u8; 31]).is_err());
        assert_eq!(format!("{s:?}"), "Scalar(<redacted>)");
    }

    fn order_bytes() -> [u8; 32] {
        big_to_bytes(&order())
    }
}
