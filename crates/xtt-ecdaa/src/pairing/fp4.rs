//! F_p⁴ = F_p²[j]/(j² − ξ) with ξ = 1 + i, miracl's `FP4` (a + b·j).

use super::fp2::{Fp2, FP2_LEN};
use crate::g1::field::Fp;

/// Bytes of one [`Fp4`] in miracl's order (`FP4::tobytes`: b, then a).
pub(crate) const FP4_LEN: usize = 2 * FP2_LEN;

/// a + b·j.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fp4 {
    pub(crate) a: Fp2,
    pub(crate) b: Fp2,
}

impl Fp4 {
    pub(crate) const ZERO: Fp4 = Fp4 {
        a: Fp2::ZERO,
        b: Fp2::ZERO,
    };
    pub(crate) const ONE: Fp4 = Fp4 {
        a: Fp2::ONE,
        b: Fp2::ZERO,
    };

    pub(crate) const fn new(a: Fp2, b: Fp2) -> Fp4 {
        Fp4 { a, b }
    }

    #[inline]
    pub(crate) fn add(&self, o: &Fp4) -> Fp4 {
        Fp4::new(self.a.add(&o.a), self.b.add(&o.b))
    }

    #[inline]
    pub(crate) fn sub(&self, o: &Fp4) -> Fp4 {
        Fp4::new(self.a.sub(&o.a), self.b.sub(&o.b))
    }

    #[inline]
    pub(crate) fn dbl(&self) -> Fp4 {
        self.add(self)
    }

    #[cfg(test)]
    pub(crate) fn neg(&self) -> Fp4 {
        Fp4::new(self.a.neg(), self.b.neg())
    }

    /// a − b·j.
    #[inline]
    pub(crate) fn conj(&self) -> Fp4 {
        Fp4::new(self.a, self.b.neg())
    }

    /// −a + b·j (miracl's `nconj`).
    #[inline]
    pub(crate) fn nconj(&self) -> Fp4 {
        Fp4::new(self.a.neg(), self.b)
    }

    /// Karatsuba: three F_p² multiplications.
    #[inline]
    pub(crate) fn mul(&self, o: &Fp4) -> Fp4 {
        let t0 = self.a.mul(&o.a);
        let t1 = self.b.mul(&o.b);
        let s = self.a.add(&self.b).mul(&o.a.add(&o.b));
        Fp4::new(t0.add(&t1.mul_xi()), s.sub(&t0).sub(&t1))
    }

    /// (a + b)(a + ξb) − ab − ξab + 2ab·j: two F_p² multiplications.
    #[inline]
    pub(crate) fn sqr(&self) -> Fp4 {
        let ab = self.a.mul(&self.b);
        let s = self.a.add(&self.b).mul(&self.a.add(&self.b.mul_xi()));
        Fp4::new(s.sub(&ab).sub(&ab.mul_xi()), ab.dbl())
    }

    /// Multiplication by an F_p² element.
    #[inline]
    pub(crate) fn mul_fp2(&self, s: &Fp2) -> Fp4 {
        Fp4::new(self.a.mul(s), self.b.mul(s))
    }

    /// Multiplication by a base-field element.
    #[inline]
    pub(crate) fn mul_fp(&self, s: &Fp) -> Fp4 {
        Fp4::new(self.a.mul_fp(s), self.b.mul_fp(s))
    }

    /// Multiplication by ξ on both coefficients.
    #[inline]
    pub(crate) fn mul_xi(&self) -> Fp4 {
        Fp4::new(self.a.mul_xi(), self.b.mul_xi())
    }

    /// Multiplication by j: (a + b·j)·j = ξb + a·j (miracl's `FP4::times_i`).
    #[inline]
    pub(crate) fn mul_j(&self) -> Fp4 {
        Fp4::new(self.b.mul_xi(), self.a)
    }

    /// 1/(a + b·j) = (a − b·j)/(a² − ξb²); zero maps to zero.
    pub(crate) fn inverse(&self) -> Fp4 {
        let n = self.a.sqr().sub(&self.b.sqr().mul_xi()).inverse();
        Fp4::new(self.a.mul(&n), self.b.mul(&n).neg())
    }

    /// The p-power Frobenius given f³ (miracl's `FP4::frob(f3)`): conj(a) + conj(b)·f³·j.
    #[inline]
    pub(crate) fn frob(&self, f3: &Fp2) -> Fp4 {
        Fp4::new(self.a.conj(), self.b.conj().mul(f3))
    }

    /// miracl's `FP4::tobytes` layout: b then a.
    pub(crate) fn to_bytes(self) -> [u8; FP4_LEN] {
        let mut out = [0u8; FP4_LEN];
        out[..FP2_LEN].copy_from_slice(&self.b.to_bytes());
        out[FP2_LEN..].copy_from_slice(&self.a.to_bytes());
        out
    }

    /// From miracl's `FP4::tobytes` layout.
    pub(crate) fn from_bytes(bytes: &[u8; FP4_LEN]) -> Fp4 {
        let mut b = [0u8; FP2_LEN];
        let mut a = [0u8; FP2_LEN];
        b.copy_from_slice(&bytes[..FP2_LEN]);
        a.copy_from_slice(&bytes[FP2_LEN..]);
        Fp4::new(Fp2::from_bytes(&a), Fp2::from_bytes(&b))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::fp2::tests::{random_fp2, to_miracl as fp2_to_miracl};
    use super::*;
    use miracl_core::fp256bn::fp4::FP4;
    use rand_core::{RngCore, SeedableRng};

    type MiraclOp = fn(&mut FP4);

    pub(crate) fn random_fp4(rng: &mut impl RngCore) -> Fp4 {
        Fp4::new(random_fp2(rng), random_fp2(rng))
    }

    pub(crate) fn to_miracl(a: &Fp4) -> FP4 {
        FP4::frombytes(&a.to_bytes())
    }

    pub(crate) fn miracl_bytes(m: &FP4) -> [u8; FP4_LEN] {
        let mut m = *m;
        m.reduce();
        let mut out = [0u8; FP4_LEN];
        m.tobytes(&mut out);
        out
    }

    #[test]
    fn arithmetic_matches_miracl() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0xf4);
        let mut vals: Vec<Fp4> = (0..24).map(|_| random_fp4(&mut rng)).collect();
        vals.extend([Fp4::ZERO, Fp4::ONE, Fp4::new(Fp2::ZERO, Fp2::ONE)]);
        let f = random_fp2(&mut rng);
        for x in &vals {
            let mx = to_miracl(x);
            assert_eq!(miracl_bytes(&mx), x.to_bytes());
            let cases: [(MiraclOp, Fp4); 6] = [
                (|m| m.sqr(), x.sqr()),
                (|m| m.neg(), x.neg()),
                (|m| m.conj(), x.conj()),
                (|m| m.nconj(), x.nconj()),
                (|m| m.times_i(), x.mul_j()),
                (|m| m.inverse(None), x.inverse()),
            ];
            for (op, ours) in cases {
                let mut m = mx;
                op(&mut m);
                assert_eq!(miracl_bytes(&m), ours.to_bytes());
            }
            let mut m = mx;
            m.frob(&fp2_to_miracl(&f));
            assert_eq!(miracl_bytes(&m), x.frob(&f).to_bytes());
            let mut m = mx;
            m.pmul(&fp2_to_miracl(&f));
            assert_eq!(miracl_bytes(&m), x.mul_fp2(&f).to_bytes());
            let mut m = mx;
            m.qmul(&crate::g1::field::to_miracl(&f.a));
            assert_eq!(miracl_bytes(&m), x.mul_fp(&f.a).to_bytes());
            for y in vals.iter().take(6) {
                let my = to_miracl(y);
                let mut m = mx;
                m.mul(&my);
                assert_eq!(miracl_bytes(&m), x.mul(y).to_bytes());
                let mut m = mx;
                m.sub(&my);
                assert_eq!(miracl_bytes(&m), x.sub(y).to_bytes());
            }
        }
    }
}
