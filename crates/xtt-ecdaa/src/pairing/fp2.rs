//! F_p² = F_p[i]/(i² + 1), miracl's `FP2` (a + b·i) on the 4×64-bit field.

use crate::g1::field::{self, fp_add, fp_mul, fp_sub, Fp};
use crate::scalar::SCALAR_LEN;

/// Bytes of one [`Fp2`] in miracl's order (`FP2::tobytes`: b, then a).
pub(crate) const FP2_LEN: usize = 2 * SCALAR_LEN;

/// a + b·i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fp2 {
    pub(crate) a: Fp,
    pub(crate) b: Fp,
}

impl Fp2 {
    pub(crate) const ZERO: Fp2 = Fp2 {
        a: Fp::ZERO,
        b: Fp::ZERO,
    };
    pub(crate) const ONE: Fp2 = Fp2 {
        a: Fp::ONE,
        b: Fp::ZERO,
    };

    pub(crate) const fn new(a: Fp, b: Fp) -> Fp2 {
        Fp2 { a, b }
    }

    #[inline]
    pub(crate) const fn add(&self, o: &Fp2) -> Fp2 {
        Fp2::new(fp_add(&self.a, &o.a), fp_add(&self.b, &o.b))
    }

    #[inline]
    pub(crate) const fn sub(&self, o: &Fp2) -> Fp2 {
        Fp2::new(fp_sub(&self.a, &o.a), fp_sub(&self.b, &o.b))
    }

    #[inline]
    pub(crate) fn dbl(&self) -> Fp2 {
        self.add(self)
    }

    #[inline]
    pub(crate) fn neg(&self) -> Fp2 {
        Fp2::new(self.a.neg(), self.b.neg())
    }

    /// a − b·i (the p-power Frobenius of F_p²).
    #[inline]
    pub(crate) fn conj(&self) -> Fp2 {
        Fp2::new(self.a, self.b.neg())
    }

    /// Karatsuba: three base-field multiplications.
    #[inline]
    pub(crate) const fn mul(&self, o: &Fp2) -> Fp2 {
        let t0 = fp_mul(&self.a, &o.a);
        let t1 = fp_mul(&self.b, &o.b);
        let s = fp_mul(&fp_add(&self.a, &self.b), &fp_add(&o.a, &o.b));
        Fp2::new(fp_sub(&t0, &t1), fp_sub(&fp_sub(&s, &t0), &t1))
    }

    /// Complex squaring: (a + b)(a − b) + 2ab·i, two multiplications.
    #[inline]
    pub(crate) fn sqr(&self) -> Fp2 {
        let ab = fp_mul(&self.a, &self.b);
        Fp2::new(
            fp_mul(&fp_add(&self.a, &self.b), &fp_sub(&self.a, &self.b)),
            fp_add(&ab, &ab),
        )
    }

    /// Multiplication by a base-field element.
    #[inline]
    pub(crate) fn mul_fp(&self, s: &Fp) -> Fp2 {
        Fp2::new(fp_mul(&self.a, s), fp_mul(&self.b, s))
    }

    /// Multiplication by ξ = 1 + i, the non-residue of the next level (miracl's `mul_ip`).
    #[inline]
    pub(crate) fn mul_xi(&self) -> Fp2 {
        Fp2::new(fp_sub(&self.a, &self.b), fp_add(&self.a, &self.b))
    }

    /// 1/(a + b·i) = (a − b·i)/(a² + b²); zero maps to zero.
    pub(crate) fn inverse(&self) -> Fp2 {
        let (n, _) = self.a.square().add(&self.b.square()).invert();
        Fp2::new(self.a.mul(&n), self.b.neg().mul(&n))
    }

    #[cfg(test)]
    /// Square-and-multiply by a public exponent (little-endian 64-bit limbs); used only to
    /// derive constants.
    pub(crate) fn pow_vartime(&self, exp: &[u64]) -> Fp2 {
        let mut r = Fp2::ONE;
        for limb in exp.iter().rev() {
            for bit in (0..64).rev() {
                r = r.sqr();
                if (limb >> bit) & 1 == 1 {
                    r = r.mul(self);
                }
            }
        }
        r
    }

    /// miracl's `FP2::tobytes` layout: b then a, each 32 bytes big-endian.
    pub(crate) fn to_bytes(self) -> [u8; FP2_LEN] {
        let mut out = [0u8; FP2_LEN];
        out[..SCALAR_LEN].copy_from_slice(&field::to_be_bytes(&self.b));
        out[SCALAR_LEN..].copy_from_slice(&field::to_be_bytes(&self.a));
        out
    }

    /// From miracl's `FP2::tobytes` layout (each half reduced mod p).
    pub(crate) fn from_bytes(bytes: &[u8; FP2_LEN]) -> Fp2 {
        let (b, a) = bytes.split_at(SCALAR_LEN);
        Fp2::new(field::from_be_slice(a), field::from_be_slice(b))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use miracl_core::fp256bn::big::BIG;
    use miracl_core::fp256bn::fp2::FP2;
    use miracl_core::fp256bn::rom;
    use rand_core::{RngCore, SeedableRng};

    pub(crate) fn random_fp2(rng: &mut impl RngCore) -> Fp2 {
        let mut b = [0u8; FP2_LEN];
        rng.fill_bytes(&mut b);
        Fp2::from_bytes(&b)
    }

    pub(crate) fn to_miracl(a: &Fp2) -> FP2 {
        FP2::frombytes(&a.to_bytes())
    }

    pub(crate) fn miracl_bytes(m: &FP2) -> [u8; FP2_LEN] {
        let mut m = *m;
        m.reduce();
        let mut out = [0u8; FP2_LEN];
        m.tobytes(&mut out);
        out
    }

    fn samples() -> Vec<Fp2> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0xf2);
        let mut v: Vec<Fp2> = (0..30).map(|_| random_fp2(&mut rng)).collect();
        v.extend([
            Fp2::ZERO,
            Fp2::ONE,
            Fp2::new(Fp::ZERO, Fp::ONE),
            Fp2::new(Fp::ONE.neg(), Fp::ONE.neg()),
        ]);
        v
    }

    #[test]
    fn arithmetic_matches_miracl() {
        let vals = samples();
        for x in &vals {
            let mx = to_miracl(x);
            assert_eq!(miracl_bytes(&mx), x.to_bytes());
            let mut m = mx;
            m.sqr();
            assert_eq!(miracl_bytes(&m), x.sqr().to_bytes());
            let mut m = mx;
            m.neg();
            assert_eq!(miracl_bytes(&m), x.neg().to_bytes());
            let mut m = mx;
            m.conj();
            assert_eq!(miracl_bytes(&m), x.conj().to_bytes());
            let mut m = mx;
            m.mul_ip();
            assert_eq!(miracl_bytes(&m), x.mul_xi().to_bytes());
            let mut m = mx;
            m.dbl();
            assert_eq!(miracl_bytes(&m), x.dbl().to_bytes());
            let mut m = mx;
            m.inverse(None);
            assert_eq!(miracl_bytes(&m), x.inverse().to_bytes());
            let mut m = mx;
            m.pmul(&crate::g1::field::to_miracl(&x.b));
            assert_eq!(miracl_bytes(&m), x.mul_fp(&x.b).to_bytes());
            for y in vals.iter().take(8) {
                let my = to_miracl(y);
                let mut m = mx;
                m.mul(&my);
                assert_eq!(miracl_bytes(&m), x.mul(y).to_bytes());
                let mut m = mx;
                m.add(&my);
                assert_eq!(miracl_bytes(&m), x.add(y).to_bytes());
                let mut m = mx;
                m.sub(&my);
                assert_eq!(miracl_bytes(&m), x.sub(y).to_bytes());
            }
        }
    }

    #[test]
    fn frobenius_constant_is_xi_to_the_p_minus_1_over_6() {
        // miracl's FRA + FRB·i is ξ^((p−1)/6) for ξ = 1 + i.
        let rom_f = to_miracl(&super::super::fp12::FROB[1]);
        let mut m = FP2::new_bigs(&BIG::new_ints(&rom::FRA), &BIG::new_ints(&rom::FRB));
        m.reduce();
        assert_eq!(miracl_bytes(&m), super::super::fp12::FROB[1].to_bytes());
        assert_eq!(miracl_bytes(&rom_f), miracl_bytes(&m));
        let p = crypto_bigint::U256::from_be_hex(
            "fffffffffffcf0cd46e5f25eee71a49f0cdc65fb12980a82d3292ddbaed33013",
        );
        let e = p
            .wrapping_sub(&crypto_bigint::U256::ONE)
            .wrapping_div(&crypto_bigint::U256::from_u8(6));
        let xi = Fp2::new(Fp::ONE, Fp::ONE);
        assert_eq!(xi.pow_vartime(e.as_words()), super::super::fp12::FROB[1]);
    }
}
