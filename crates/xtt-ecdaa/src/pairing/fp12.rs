//! F_p¹² = F_p⁴[w]/(w³ − j), miracl's `FP12` (a + b·w + c·w²), with the sparse product by a
//! Miller-loop line of the M-type twist and the cyclotomic squaring of the final exponentiation.

use super::fp2::Fp2;
use super::fp4::{Fp4, FP4_LEN};
use crate::g1::field::Fp;
use crypto_bigint::U256;

/// Bytes of one [`Fp12`] in miracl's order (`FP12::tobytes`: c, b, a).
pub(crate) const FP12_LEN: usize = 3 * FP4_LEN;

/// f = ξ^((p−1)/6) (miracl's `rom::FRA + rom::FRB·i`; a test derives it from ξ).
const F: Fp2 = Fp2::new(
    Fp::new(&U256::from_be_hex(
        "3d617662ca786f352d1a6e8ddb0867cf39a171511e3ab28f74760328af943106",
    )),
    Fp::new(&U256::from_be_hex(
        "c29e899d3584819819cb83d113693ccfd33af4a9f45d57f35eb32ab2ff3eff0d",
    )),
);

/// ξ = 1 + i: j² = ξ, and the w-coefficient of two unit lines multiplied is ξ·j.
const XI: Fp2 = Fp2::new(Fp::ONE, Fp::ONE);

/// f⁰, f¹, f², f³: the Frobenius twists of the w-coefficients.
pub(crate) const FROB: [Fp2; 4] = [Fp2::ONE, F, F.mul(&F), F.mul(&F).mul(&F)];

/// a + b·w + c·w².
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fp12 {
    pub(crate) a: Fp4,
    pub(crate) b: Fp4,
    pub(crate) c: Fp4,
}

/// A Miller-loop line evaluated at a G1 point: `l + (x·j)·w²` with `l` = (aa·y) + bb·j from
/// miracl's packed line and x, y the point's affine coordinates (miracl's `unpack`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineValue {
    pub(crate) l: Fp4,
    pub(crate) x: Fp,
}

#[cfg(test)]
impl LineValue {
    pub(crate) fn to_fp12(self) -> Fp12 {
        Fp12 {
            a: self.l,
            b: Fp4::ZERO,
            c: Fp4::new(Fp2::ZERO, Fp2::new(self.x, Fp::ZERO)),
        }
    }
}

/// A line value divided by its point's x, `l + j·w²`: the Miller loop is then off by a factor
/// in F_p for each line, which the final exponentiation maps to 1 (p − 1 divides
/// (p¹² − 1)/r). With the w² coefficient fixed, its products need no scalings by x.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnitLine {
    pub(crate) l: Fp4,
}

#[cfg(test)]
impl UnitLine {
    pub(crate) fn to_fp12(self) -> Fp12 {
        LineValue {
            l: self.l,
            x: Fp::ONE,
        }
        .to_fp12()
    }
}

/// A Miller-loop line in one of its two forms, as the loop multiplies it in.
pub(crate) trait Line: Copy {
    /// The product of two lines, to be multiplied into the accumulator at once.
    fn pair(&self, o: &Self) -> LinePair;
    /// The accumulator times this line.
    fn times(&self, f: &Fp12) -> Fp12;
}

impl Line for LineValue {
    /// `a + (β·j)·w + c·w²` (18 base multiplications): two lines multiplied together and then
    /// into the accumulator cost 18 + 51 multiplications, against 2 · 39 for two line products.
    #[inline]
    fn pair(&self, o: &Self) -> LinePair {
        let xx = self.x.mul(&o.x);
        LinePair {
            a: self.l.mul(&o.l),
            beta: Some(Fp2::new(xx, xx)),
            c: self.l.mul_fp(&o.x).add(&o.l.mul_fp(&self.x)).mul_j(),
        }
    }
    #[inline]
    fn times(&self, f: &Fp12) -> Fp12 {
        f.mul_by_line(self)
    }
}

impl Line for UnitLine {
    /// (l₁ + j·w²)(l₂ + j·w²) = l₁l₂ + (ξ·j)·w + (l₁ + l₂)·j·w²: 9 base multiplications.
    #[inline]
    fn pair(&self, o: &Self) -> LinePair {
        LinePair {
            a: self.l.mul(&o.l),
            beta: None,
            c: self.l.add(&o.l).mul_j(),
        }
    }
    #[inline]
    fn times(&self, f: &Fp12) -> Fp12 {
        f.mul_by_unit_line(self)
    }
}

/// Two line values multiplied: nonzero at 1, j, j·w, w², j·w² (five of six F_p² slots).
/// `beta` is `None` for ξ itself (two unit lines), which multiplies by additions alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinePair {
    a: Fp4,
    beta: Option<Fp2>,
    c: Fp4,
}

impl Fp12 {
    pub(crate) const ONE: Fp12 = Fp12 {
        a: Fp4::ONE,
        b: Fp4::ZERO,
        c: Fp4::ZERO,
    };

    pub(crate) fn is_one(&self) -> bool {
        *self == Fp12::ONE
    }

    /// Karatsuba over the cubic extension: six F_p⁴ multiplications.
    pub(crate) fn mul(&self, o: &Fp12) -> Fp12 {
        let z0 = self.a.mul(&o.a);
        let z2 = self.b.mul(&o.b);
        let z4 = self.c.mul(&o.c);
        let ab = self.a.add(&self.b).mul(&o.a.add(&o.b));
        let bc = self.b.add(&self.c).mul(&o.b.add(&o.c));
        let ac = self.a.add(&self.c).mul(&o.a.add(&o.c));
        Fp12 {
            a: z0.add(&bc.sub(&z2).sub(&z4).mul_j()),
            b: ab.sub(&z0).sub(&z2).add(&z4.mul_j()),
            c: ac.sub(&z0).sub(&z4).add(&z2),
        }
    }

    /// Chung–Hasan SQR2: three F_p⁴ squarings and two multiplications.
    pub(crate) fn sqr(&self) -> Fp12 {
        let s0 = self.a.sqr();
        let s1 = self.a.mul(&self.b).dbl();
        let s2 = self.b.mul(&self.c).dbl();
        let s3 = self.c.sqr();
        let s4 = self.a.add(&self.b).add(&self.c).sqr();
        Fp12 {
            a: s0.add(&s2.mul_j()),
            b: s1.add(&s3.mul_j()),
            c: s4.sub(&s0).sub(&s1).sub(&s2).sub(&s3),
        }
    }

    /// Squaring in the cyclotomic subgroup (Granger–Scott): three F_p⁴ squarings. Only valid
    /// for elements of norm 1, i.e. after the easy part of the final exponentiation.
    pub(crate) fn cyclotomic_sqr(&self) -> Fp12 {
        let a2 = self.a.sqr();
        let b2 = self.b.sqr();
        let c2j = self.c.sqr().mul_j();
        Fp12 {
            a: a2.dbl().add(&a2).sub(&self.a.conj().dbl()),
            b: c2j.dbl().add(&c2j).add(&self.b.conj().dbl()),
            c: b2.dbl().add(&b2).sub(&self.c.conj().dbl()),
        }
    }

    /// Product with a line value (nonzero at 1, j and j·w²): three F_p⁴ multiplications and
    /// three F_p⁴-by-F_p scalings, against six F_p⁴ multiplications for a dense product.
    pub(crate) fn mul_by_line(&self, line: &LineValue) -> Fp12 {
        let x = &line.x;
        Fp12 {
            a: self.a.mul(&line.l).add(&self.b.mul_xi().mul_fp(x)),
            b: self.b.mul(&line.l).add(&self.c.mul_xi().mul_fp(x)),
            c: self.c.mul(&line.l).add(&self.a.mul_j().mul_fp(x)),
        }
    }

    /// Product with a unit line (nonzero at 1, j and w²): three F_p⁴ multiplications.
    pub(crate) fn mul_by_unit_line(&self, line: &UnitLine) -> Fp12 {
        Fp12 {
            a: self.a.mul(&line.l).add(&self.b.mul_xi()),
            b: self.b.mul(&line.l).add(&self.c.mul_xi()),
            c: self.c.mul(&line.l).add(&self.a.mul_j()),
        }
    }

    /// Product with two lines multiplied together: Karatsuba with the middle product
    /// b·(β·j) at two F_p² multiplications (none for β = ξ), 17 (15) in all instead of 18.
    pub(crate) fn mul_by_line_pair(&self, o: &LinePair) -> Fp12 {
        let (beta, bj) = match &o.beta {
            Some(beta) => (*beta, self.b.mul_fp2(beta)),
            None => (XI, self.b.mul_xi()),
        };
        let ob = Fp4::new(Fp2::ZERO, beta);
        let z0 = self.a.mul(&o.a);
        let z2 = bj.mul_j();
        let z4 = self.c.mul(&o.c);
        let ab = self.a.add(&self.b).mul(&o.a.add(&ob));
        let bc = self.b.add(&self.c).mul(&ob.add(&o.c));
        let ac = self.a.add(&self.c).mul(&o.a.add(&o.c));
        Fp12 {
            a: z0.add(&bc.sub(&z2).sub(&z4).mul_j()),
            b: ab.sub(&z0).sub(&z2).add(&z4.mul_j()),
            c: ac.sub(&z0).sub(&z4).add(&z2),
        }
    }

    /// The p⁶-power Frobenius, which is the inverse in the cyclotomic subgroup.
    pub(crate) fn conj(&self) -> Fp12 {
        Fp12 {
            a: self.a.conj(),
            b: self.b.nconj(),
            c: self.c.conj(),
        }
    }

    /// The p-power Frobenius.
    pub(crate) fn frob(&self) -> Fp12 {
        let f3 = &FROB[3];
        Fp12 {
            a: self.a.frob(f3),
            b: self.b.frob(f3).mul_fp2(&FROB[1]),
            c: self.c.frob(f3).mul_fp2(&FROB[2]),
        }
    }

    /// 1/x by the norm to F_p⁴ (miracl's formula); zero maps to zero.
    pub(crate) fn inverse(&self) -> Fp12 {
        let (a, b, c) = (&self.a, &self.b, &self.c);
        let f0 = a.sqr().sub(&b.mul(c).mul_j());
        let f1 = c.sqr().mul_j().sub(&a.mul(b));
        let f2 = b.sqr().sub(&a.mul(c));
        let n = b.mul(&f2).mul_j().add(&a.mul(&f0)).add(&c.mul(&f1).mul_j());
        let inv = n.inverse();
        Fp12 {
            a: f0.mul(&inv),
            b: f1.mul(&inv),
            c: f2.mul(&inv),
        }
    }

    /// miracl's `FP12::tobytes` layout: c, b, a.
    pub(crate) fn to_bytes(self) -> [u8; FP12_LEN] {
        let mut out = [0u8; FP12_LEN];
        for (chunk, part) in out
            .chunks_exact_mut(FP4_LEN)
            .zip([&self.c, &self.b, &self.a])
        {
            chunk.copy_from_slice(&part.to_bytes());
        }
        out
    }

    /// From miracl's `FP12::tobytes` layout.
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: &[u8; FP12_LEN]) -> Fp12 {
        let part = |k: usize| {
            let mut t = [0u8; FP4_LEN];
            t.copy_from_slice(&bytes[k * FP4_LEN..(k + 1) * FP4_LEN]);
            Fp4::from_bytes(&t)
        };
        Fp12 {
            c: part(0),
            b: part(1),
            a: part(2),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::fp2::tests::random_fp2;
    use super::super::fp4::tests::random_fp4;
    use super::*;
    use miracl_core::fp256bn::big::BIG;
    use miracl_core::fp256bn::fp12::{self as mfp12, FP12};
    use miracl_core::fp256bn::fp2::FP2;
    use miracl_core::fp256bn::rom;
    use rand_core::{RngCore, SeedableRng};

    pub(crate) fn random_fp12(rng: &mut impl RngCore) -> Fp12 {
        Fp12 {
            a: random_fp4(rng),
            b: random_fp4(rng),
            c: random_fp4(rng),
        }
    }

    pub(crate) fn to_miracl(a: &Fp12) -> FP12 {
        FP12::frombytes(&a.to_bytes())
    }

    pub(crate) fn miracl_bytes(m: &FP12) -> [u8; FP12_LEN] {
        let mut m = *m;
        m.reduce();
        let mut out = [0u8; FP12_LEN];
        m.tobytes(&mut out);
        out
    }

    fn rom_f() -> FP2 {
        FP2::new_bigs(&BIG::new_ints(&rom::FRA), &BIG::new_ints(&rom::FRB))
    }

    #[test]
    fn arithmetic_matches_miracl() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x12);
        let mut vals: Vec<Fp12> = (0..16).map(|_| random_fp12(&mut rng)).collect();
        vals.push(Fp12::ONE);
        vals.push(Fp12 {
            a: Fp4::ZERO,
            b: Fp4::ONE,
            c: Fp4::ZERO,
        });
        for x in &vals {
            let mx = to_miracl(x);
            assert_eq!(miracl_bytes(&mx), x.to_bytes());
            assert_eq!(Fp12::from_bytes(&x.to_bytes()), *x);
            let mut m = mx;
            m.sqr();
            assert_eq!(miracl_bytes(&m), x.sqr().to_bytes());
            let mut m = mx;
            m.conj();
            assert_eq!(miracl_bytes(&m), x.conj().to_bytes());
            let mut m = mx;
            m.frob(&rom_f());
            assert_eq!(miracl_bytes(&m), x.frob().to_bytes());
            let mut m = mx;
            m.inverse();
            assert_eq!(miracl_bytes(&m), x.inverse().to_bytes());
            assert!(x.mul(&x.inverse()).is_one());
            for y in vals.iter().take(5) {
                let mut m = mx;
                m.mul(&to_miracl(y));
                assert_eq!(miracl_bytes(&m), x.mul(y).to_bytes());
            }
            // A line value: miracl's SPARSEST form, multiplied in with `ssmul`.
            let line = LineValue {
                l: random_fp4(&mut rng),
                x: random_fp2(&mut rng).a,
            };
            let mut ml = to_miracl(&line.to_fp12());
            ml.settype(mfp12::SPARSEST);
            let mut m = mx;
            m.settype(mfp12::DENSE);
            m.ssmul(&ml);
            assert_eq!(miracl_bytes(&m), x.mul_by_line(&line).to_bytes());
            assert_eq!(x.mul(&line.to_fp12()), x.mul_by_line(&line));
            let other = LineValue {
                l: random_fp4(&mut rng),
                x: random_fp2(&mut rng).b,
            };
            assert_eq!(
                x.mul_by_line_pair(&line.pair(&other)),
                x.mul_by_line(&line).mul_by_line(&other)
            );
            // Unit lines (w² coefficient j): the same products as lines with x = 1.
            let (u1, u2) = (UnitLine { l: line.l }, UnitLine { l: other.l });
            let (g1, g2) = (
                LineValue {
                    l: line.l,
                    x: Fp::ONE,
                },
                LineValue {
                    l: other.l,
                    x: Fp::ONE,
                },
            );
            assert_eq!(x.mul(&u1.to_fp12()), x.mul_by_unit_line(&u1));
            assert_eq!(x.mul_by_unit_line(&u1), x.mul_by_line(&g1));
            assert_eq!(
                x.mul_by_line_pair(&u1.pair(&u2)),
                x.mul_by_line_pair(&g1.pair(&g2))
            );
            assert_eq!(
                x.mul_by_line_pair(&u1.pair(&u2)),
                x.mul_by_unit_line(&u1).mul_by_unit_line(&u2)
            );
        }
    }

    #[test]
    fn zero_inverts_to_zero_and_cyclotomic_squaring_matches_miracl() {
        let zero = Fp12 {
            a: Fp4::ZERO,
            b: Fp4::ZERO,
            c: Fp4::ZERO,
        };
        assert_eq!(zero.inverse(), zero);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x13);
        for _ in 0..8 {
            // x^((p⁶ − 1)(p² + 1)) lies in the cyclotomic subgroup.
            let x = random_fp12(&mut rng);
            let y = x.conj().mul(&x.inverse());
            let u = y.frob().frob().mul(&y);
            let mut m = to_miracl(&u);
            m.usqr();
            assert_eq!(miracl_bytes(&m), u.cyclotomic_sqr().to_bytes());
            assert_eq!(u.cyclotomic_sqr(), u.sqr());
        }
    }
}
