//! Scalars mod r: a zeroizing wrapper around miracl's `BIG`, the C library's RNG-to-scalar
//! derivation, and the few modular operations the Schnorr proofs need.
//!
//! miracl's `BIG` is `Copy` and has no destructor, so every secret scalar this crate keeps lives
//! in a [`Scalar`], which overwrites its limbs on drop. Temporaries inside miracl routines are
//! outside our control (documented limitation of building on miracl_core).

use core::fmt;

use miracl_core::fp256bn::big::{self, BIG};
use miracl_core::fp256bn::dbig::DBIG;
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

/// The field prime p.
pub(crate) fn modulus() -> BIG {
    BIG::new_ints(&rom::MODULUS)
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
        let mut d = DBIG::frombytes(&rev);
        rev.zeroize();
        // Constant-time reduction: 512 − 256 bits of difference, fixed.
        let s = Scalar(d.ctdmod(&order(), 256));
        d.w.zeroize();
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

    /// `k + c·x mod r`, the Schnorr response.
    pub(crate) fn schnorr_response(k: &Scalar, c: &BIG, x: &Scalar) -> Scalar {
        let r = order();
        let cx = Scalar(BIG::modmul(c, &x.0, &r));
        Scalar(BIG::modadd(&k.0, &cx.0, &r))
    }

    /// `a·b mod r`.
    pub(crate) fn mul(a: &Scalar, b: &Scalar) -> Scalar {
        Scalar(BIG::modmul(&a.0, &b.0, &order()))
    }
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

/// 32 big-endian bytes of a `BIG` assumed below 2^256.
pub(crate) fn big_to_bytes(b: &BIG) -> [u8; SCALAR_LEN] {
    let mut out = [0u8; SCALAR_LEN];
    let mut t = *b;
    t.norm();
    t.tobytes(&mut out);
    out
}
