//! G1 points of FP256BN (y² = x³ + 3, prime order r, cofactor 1) over [`super::field::Fp`].
//!
//! Homogeneous projective coordinates (x = X/Z, y = Y/Z, identity (0 : 1 : 0)) with the complete
//! formulas of Renes, Costello and Batina, "Complete addition formulas for prime order elliptic
//! curves" (EUROCRYPT 2016), for a = 0: algorithm 7 (addition, 12M + 2·3b), algorithm 8 (mixed
//! addition with an affine second operand, 11M + 2·3b) and algorithm 9 (doubling, 6M + 2S +
//! 1·3b); ×3b (= 9) is one multiply row and a reduction ([`super::field::mul_by_3b`]).
//!
//! Why complete formulas, not Jacobian ones with exceptional cases: the same formulas serve the
//! constant-time signer and the verifier. In the signer's table walk the accumulator can equal
//! the next table entry or its negation for some scalar near the top windows (the partial sums
//! are not bounded below r there), and a Jacobian addition would then need a branch on secret
//! data; with algorithms 7–9 P + P, P + (−P) and sums with the identity come out right with no
//! branch at all. Algorithm 8 is complete except for an affine operand that is the identity
//! (which has no affine coordinates): [`G1::add_affine`] handles that with a masked select. The
//! verifier pays nothing for completeness: for a = 0 the projective formulas cost about what
//! Jacobian ones do (12M against 11M + 5S for an addition, 8 against 7 for a doubling).
//!
//! The arithmetic (addition, doubling, negation, φ, normalization) is constant-time in the
//! point values. The edges are not, and only ever see points that are about to be public:
//! encoding and the conversion to miracl branch on whether the point is the identity, and the
//! conversion runs miracl's on-curve check.

use crypto_bigint::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use miracl_core::fp256bn::ecp::ECP;

use super::field::{self, fp_mul, fp_mul_outlined, mul_by_3b, Fp, BETA};
use crate::encoding::G1_LEN;
use crate::scalar::SCALAR_LEN;

/// A G1 point in homogeneous projective coordinates.
#[derive(Clone, Copy, Debug)]
pub struct G1 {
    x: Fp,
    y: Fp,
    z: Fp,
}

/// A G1 point in affine coordinates; `infinity` marks the identity (x, y are then 0).
#[derive(Clone, Copy, Debug)]
pub struct G1Affine {
    x: Fp,
    y: Fp,
    infinity: Choice,
}

impl ConditionallySelectable for G1 {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        G1 {
            x: Fp::conditional_select(&a.x, &b.x, choice),
            y: Fp::conditional_select(&a.y, &b.y, choice),
            z: Fp::conditional_select(&a.z, &b.z, choice),
        }
    }
}

impl ConditionallySelectable for G1Affine {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        G1Affine {
            x: Fp::conditional_select(&a.x, &b.x, choice),
            y: Fp::conditional_select(&a.y, &b.y, choice),
            infinity: Choice::conditional_select(&a.infinity, &b.infinity, choice),
        }
    }
}

impl zeroize::Zeroize for G1 {
    fn zeroize(&mut self) {
        self.x.zeroize();
        self.y.zeroize();
        self.z.zeroize();
    }
}

impl zeroize::Zeroize for G1Affine {
    fn zeroize(&mut self) {
        self.x.zeroize();
        self.y.zeroize();
        self.infinity = Choice::from(0u8);
    }
}

impl G1Affine {
    pub fn identity() -> G1Affine {
        G1Affine {
            x: Fp::ZERO,
            y: Fp::ZERO,
            infinity: Choice::from(1u8),
        }
    }

    /// −P.
    pub fn neg(&self) -> G1Affine {
        G1Affine {
            x: self.x,
            y: self.y.neg(),
            infinity: self.infinity,
        }
    }

    /// The negation of `self` where `choice` is set, in constant time.
    pub fn conditional_negate(&mut self, choice: Choice) {
        self.y = Fp::conditional_select(&self.y, &self.y.neg(), choice);
    }

    /// φ(P) = (β·x, y) = [λ]P.
    pub fn endo(&self) -> G1Affine {
        G1Affine {
            x: self.x.mul(&BETA),
            y: self.y,
            infinity: self.infinity,
        }
    }

    pub fn is_identity(&self) -> bool {
        bool::from(self.infinity)
    }

    /// (x, y), or `None` for the identity (branches: public points only, for the pairing).
    pub(crate) fn coordinates(&self) -> Option<(Fp, Fp)> {
        (!self.is_identity()).then_some((self.x, self.y))
    }

    /// `04 ‖ x ‖ y`; the identity as `04` and zeros, like [`crate::encoding::encode_g1`].
    pub fn to_bytes(&self) -> [u8; G1_LEN] {
        let mut out = [0u8; G1_LEN];
        out[0] = 0x04;
        if !self.is_identity() {
            out[1..1 + SCALAR_LEN].copy_from_slice(&field::to_be_bytes(&self.x));
            out[1 + SCALAR_LEN..].copy_from_slice(&field::to_be_bytes(&self.y));
        }
        out
    }

    /// The same point as a miracl `ECP` (affine, z = 1).
    pub fn to_ecp(&self) -> ECP {
        if self.is_identity() {
            return ECP::new();
        }
        ECP::new_bigs(&field::to_big(&self.x), &field::to_big(&self.y))
    }
}

impl From<&G1Affine> for G1 {
    fn from(a: &G1Affine) -> G1 {
        G1::conditional_select(
            &G1 {
                x: a.x,
                y: a.y,
                z: Fp::ONE,
            },
            &G1::IDENTITY,
            a.infinity,
        )
    }
}

impl G1 {
    pub const IDENTITY: G1 = G1 {
        x: Fp::ZERO,
        y: Fp::ONE,
        z: Fp::ZERO,
    };

    /// From a miracl point (miracl's G1 is homogeneous projective too, identity (0 : 1 : 0)).
    pub fn from_ecp(p: &ECP) -> G1 {
        G1 {
            x: field::from_miracl(&p.getpx()),
            y: field::from_miracl(&p.getpy()),
            z: field::from_miracl(&p.getpz()),
        }
    }

    /// The same point as a miracl `ECP` (one inversion; use [`G1::batch_normalize`] for many).
    pub fn to_ecp(&self) -> ECP {
        self.to_affine().to_ecp()
    }

    pub fn is_identity(&self) -> Choice {
        self.z.ct_eq(&Fp::ZERO)
    }

    /// Projective equality: X₁Z₂ = X₂Z₁ and Y₁Z₂ = Y₂Z₁.
    #[cfg(test)]
    pub fn ct_eq(&self, other: &G1) -> Choice {
        self.x.mul(&other.z).ct_eq(&other.x.mul(&self.z))
            & self.y.mul(&other.z).ct_eq(&other.y.mul(&self.z))
    }

    pub fn neg(&self) -> G1 {
        G1 {
            x: self.x,
            y: self.y.neg(),
            z: self.z,
        }
    }

    /// φ(P) = (β·X : Y : Z) = [λ]P.
    pub fn endo(&self) -> G1 {
        G1 {
            x: self.x.mul(&BETA),
            y: self.y,
            z: self.z,
        }
    }

    /// 2P (RCB16 algorithm 9).
    pub fn double(&self) -> G1 {
        let (x, y, z) = (&self.x, &self.y, &self.z);
        let t0 = fp_mul(y, y);
        let z3 = t0.add(&t0);
        let z3 = z3.add(&z3);
        let z3 = z3.add(&z3);
        let t1 = fp_mul(y, z);
        let t2 = fp_mul(z, z);
        let t2 = mul_by_3b(&t2);
        let x3 = fp_mul(&t2, &z3);
        let y3 = t0.add(&t2);
        let z3 = fp_mul(&t1, &z3);
        let t1 = t2.add(&t2);
        let t2 = t1.add(&t2);
        let t0 = t0.sub(&t2);
        let y3 = fp_mul(&t0, &y3);
        let y3 = x3.add(&y3);
        let t1 = fp_mul(x, y);
        let x3 = fp_mul(&t0, &t1);
        let x3 = x3.add(&x3);
        G1 {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + Q for any P, Q (RCB16 algorithm 7). Its twelve products are calls to the fused
    /// product (`field::fp_mul_outlined`), not inlined as in the doubling and the mixed
    /// addition: this formula keeps more temporaries alive, and inlined it spills.
    pub fn add(&self, rhs: &G1) -> G1 {
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let (x2, y2, z2) = (&rhs.x, &rhs.y, &rhs.z);
        let t0 = fp_mul_outlined(x1, x2);
        let t1 = fp_mul_outlined(y1, y2);
        let t2 = fp_mul_outlined(z1, z2);
        let t3 = x1.add(y1);
        let t4 = x2.add(y2);
        let t3 = fp_mul_outlined(&t3, &t4);
        let t4 = t0.add(&t1);
        let t3 = t3.sub(&t4);
        let t4 = y1.add(z1);
        let x3 = y2.add(z2);
        let t4 = fp_mul_outlined(&t4, &x3);
        let x3 = t1.add(&t2);
        let t4 = t4.sub(&x3);
        let x3 = x1.add(z1);
        let y3 = x2.add(z2);
        let x3 = fp_mul_outlined(&x3, &y3);
        let y3 = t0.add(&t2);
        let y3 = x3.sub(&y3);
        let x3 = t0.add(&t0);
        let t0 = x3.add(&t0);
        let t2 = mul_by_3b(&t2);
        let z3 = t1.add(&t2);
        let t1 = t1.sub(&t2);
        let y3 = mul_by_3b(&y3);
        let x3 = fp_mul_outlined(&t4, &y3);
        let t2 = fp_mul_outlined(&t3, &t1);
        let x3 = t2.sub(&x3);
        let y3 = fp_mul_outlined(&y3, &t0);
        let t1 = fp_mul_outlined(&t1, &z3);
        let y3 = t1.add(&y3);
        let t0 = fp_mul_outlined(&t0, &t3);
        let z3 = fp_mul_outlined(&z3, &t4);
        let z3 = z3.add(&t0);
        G1 {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// P + Q for an affine Q (RCB16 algorithm 8, which is complete for every Q but the
    /// identity; that one case is a masked select, so this is constant-time in both operands).
    pub fn add_affine(&self, rhs: &G1Affine) -> G1 {
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let (x2, y2) = (&rhs.x, &rhs.y);
        let t0 = fp_mul(x1, x2);
        let t1 = fp_mul(y1, y2);
        let t3 = x2.add(y2);
        let t4 = x1.add(y1);
        let t3 = fp_mul(&t3, &t4);
        let t4 = t0.add(&t1);
        let t3 = t3.sub(&t4);
        let t4 = fp_mul(y2, z1);
        let t4 = t4.add(y1);
        let y3 = fp_mul(x2, z1);
        let y3 = y3.add(x1);
        let x3 = t0.add(&t0);
        let t0 = x3.add(&t0);
        let t2 = mul_by_3b(z1);
        let z3 = t1.add(&t2);
        let t1 = t1.sub(&t2);
        let y3 = mul_by_3b(&y3);
        let x3 = fp_mul(&t4, &y3);
        let t2 = fp_mul(&t3, &t1);
        let x3 = t2.sub(&x3);
        let y3 = fp_mul(&y3, &t0);
        let t1 = fp_mul(&t1, &z3);
        let y3 = t1.add(&y3);
        let t0 = fp_mul(&t0, &t3);
        let z3 = fp_mul(&z3, &t4);
        let z3 = z3.add(&t0);
        let sum = G1 {
            x: x3,
            y: y3,
            z: z3,
        };
        G1::conditional_select(&sum, self, rhs.infinity)
    }

    /// Affine coordinates (one constant-time inversion).
    pub fn to_affine(&self) -> G1Affine {
        let (zinv, _) = self.z.invert();
        let inf = self.is_identity();
        G1Affine {
            x: Fp::conditional_select(&self.x.mul(&zinv), &Fp::ZERO, inf),
            y: Fp::conditional_select(&self.y.mul(&zinv), &Fp::ZERO, inf),
            infinity: inf,
        }
    }

    /// Affine coordinates of many points with one constant-time inversion (Montgomery's
    /// trick: 3 multiplications per point instead of an inversion each). Identities are
    /// carried through with masked selects, so the cost does not depend on the points.
    pub fn batch_normalize(points: &[G1]) -> Vec<G1Affine> {
        let zs: Vec<(Fp, Choice)> = points.iter().map(|p| (p.z, p.is_identity())).collect();
        let zinvs = batch_invert(&zs);
        points
            .iter()
            .zip(zinvs)
            .map(|(p, zinv)| {
                let a = G1Affine {
                    x: p.x.mul(&zinv),
                    y: p.y.mul(&zinv),
                    infinity: Choice::from(0u8),
                };
                G1Affine::conditional_select(&a, &G1Affine::identity(), p.is_identity())
            })
            .collect()
    }

    /// (1/x, y/x) of each point for the pairing's x-normalized lines (`None` for the
    /// identity), with one inversion of the X coordinates: Z/X and Y/X. `None` overall if a
    /// point other than the identity has x = 0, which the normalization cannot divide by.
    /// Variable time (it branches on that): for the verifier's public points only.
    pub(crate) fn x_normalize_batch<const N: usize>(
        points: [&G1; N],
    ) -> Option<[Option<(Fp, Fp)>; N]> {
        let xs: Vec<(Fp, Choice)> = points.iter().map(|p| (p.x, p.is_identity())).collect();
        if xs
            .iter()
            .any(|(x, inf)| !bool::from(*inf) && bool::from(x.ct_eq(&Fp::ZERO)))
        {
            return None;
        }
        let xinvs = batch_invert(&xs);
        let mut out = [None; N];
        for ((o, p), xinv) in out.iter_mut().zip(points).zip(xinvs) {
            if !bool::from(p.is_identity()) {
                *o = Some((p.z.mul(&xinv), p.y.mul(&xinv)));
            }
        }
        Some(out)
    }

    /// Affine forms of N points with one inversion.
    pub fn to_affine_batch<const N: usize>(points: [&G1; N]) -> [G1Affine; N] {
        let owned: Vec<G1> = points.iter().map(|p| **p).collect();
        let affine = G1::batch_normalize(&owned);
        core::array::from_fn(|i| affine.get(i).copied().unwrap_or_else(G1Affine::identity))
    }

    /// miracl points (affine) for N points with one inversion.
    pub fn to_ecp_batch<const N: usize>(points: [&G1; N]) -> [ECP; N] {
        let owned: Vec<G1> = points.iter().map(|p| **p).collect();
        let affine = G1::batch_normalize(&owned);
        core::array::from_fn(|i| affine.get(i).map_or_else(ECP::new, G1Affine::to_ecp))
    }

    /// Encodes N points with one inversion (the identity as in [`G1Affine::to_bytes`]).
    pub fn encode_batch<const N: usize>(points: [&G1; N]) -> [[u8; G1_LEN]; N] {
        let owned: Vec<G1> = points.iter().map(|p| **p).collect();
        let affine = G1::batch_normalize(&owned);
        let mut out = [[0u8; G1_LEN]; N];
        for (o, a) in out.iter_mut().zip(affine.iter()) {
            *o = a.to_bytes();
        }
        out
    }
}

/// 1/v for every (v, skip) with one constant-time inversion (Montgomery's trick: 3
/// multiplications per value); a skipped value counts as 1 and its result is meaningless.
/// Masked, so the cost does not depend on which values are skipped.
fn batch_invert(values: &[(Fp, Choice)]) -> Vec<Fp> {
    // prefix[i] = v₀ · … · v_{i−1}, skipped values counted as 1.
    let mut prefix = Vec::with_capacity(values.len());
    let mut acc = Fp::ONE;
    for (v, skip) in values {
        prefix.push(acc);
        acc = acc.mul(&Fp::conditional_select(v, &Fp::ONE, *skip));
    }
    let (mut inv, _) = acc.invert();
    let mut out = vec![Fp::ZERO; values.len()];
    for (((v, skip), pre), o) in values.iter().zip(prefix.iter()).zip(out.iter_mut()).rev() {
        // inv = (v₀ · … · v_i)⁻¹ here.
        *o = inv.mul(pre);
        inv = inv.mul(&Fp::conditional_select(v, &Fp::ONE, *skip));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::Scalar;
    use rand_core::SeedableRng;

    fn eq(a: &G1, b: &ECP) -> bool {
        bool::from(a.ct_eq(&G1::from_ecp(b))) && a.to_ecp().equals(b)
    }

    #[test]
    fn group_law_matches_miracl() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(31);
        let g = ECP::generator();
        let mut pts: Vec<ECP> = (0..12)
            .map(|_| {
                let mut p = g.mul(&Scalar::random(&mut rng).0);
                // Leave some points projective (z ≠ 1), as miracl's sums are.
                p.add(&g);
                p
            })
            .collect();
        pts.push(ECP::new());
        pts.push(g.clone());
        let mut neg_g = g.clone();
        neg_g.neg();
        pts.push(neg_g);
        for p in &pts {
            let ours = G1::from_ecp(p);
            assert!(eq(&ours, p));
            let mut d = p.clone();
            d.dbl();
            assert!(eq(&ours.double(), &d), "double");
            let mut n = p.clone();
            n.neg();
            assert!(eq(&ours.neg(), &n));
            // P + P and P + (−P) through the addition paths.
            assert!(eq(&ours.add(&ours), &d), "P + P");
            assert!(bool::from(ours.add(&ours.neg()).is_identity()), "P − P");
            let aff = ours.to_affine();
            assert!(eq(&ours.add_affine(&aff), &d), "P + P (mixed)");
            assert!(bool::from(ours.add_affine(&aff.neg()).is_identity()));
            assert!(eq(&G1::IDENTITY.add_affine(&aff), p));
            assert!(eq(&ours.add_affine(&G1Affine::identity()), p));
            let mut e = p.clone();
            let mut beta = miracl_core::fp256bn::fp::FP::new_big(
                &miracl_core::fp256bn::big::BIG::new_ints(&miracl_core::fp256bn::rom::CRU),
            );
            e.mulx(&mut beta);
            assert!(eq(&ours.endo(), &e));
            assert!(eq(&G1::from(&aff.endo()), &e));
            for q in pts.iter().take(5) {
                let theirs = G1::from_ecp(q);
                let mut s = p.clone();
                s.add(q);
                assert!(eq(&ours.add(&theirs), &s), "add");
                assert!(eq(&ours.add_affine(&theirs.to_affine()), &s), "mixed add");
            }
        }
    }

    #[test]
    fn x_normalization_gives_one_over_x_and_y_over_x() {
        let g = ECP::generator();
        let p = G1::from_ecp(&g).double().add(&G1::from_ecp(&g));
        let a = p.to_affine();
        let Some([Some((u, v)), None]) = G1::x_normalize_batch([&p, &G1::IDENTITY]) else {
            panic!("a point and the identity normalize");
        };
        assert_eq!(u.mul(&a.x), Fp::ONE);
        assert_eq!(v, a.y.mul(&u));
        // Off the curve, but the guard must catch it rather than divide by zero.
        let x0 = G1 {
            x: Fp::ZERO,
            y: Fp::ONE,
            z: Fp::ONE,
        };
        assert!(G1::x_normalize_batch([&p, &x0]).is_none());
    }

    #[test]
    fn batch_normalization_and_encoding_match_miracl() {
        let g = ECP::generator();
        let mut pts = Vec::new();
        let mut p = g.clone();
        for i in 0..9 {
            p.add(&g);
            p.dbl();
            pts.push(if i == 4 { ECP::new() } else { p.clone() });
        }
        let ours: Vec<G1> = pts.iter().map(G1::from_ecp).collect();
        let aff = G1::batch_normalize(&ours);
        for ((a, p), o) in aff.iter().zip(pts.iter()).zip(ours.iter()) {
            assert_eq!(a.to_bytes(), crate::encoding::encode_g1(p));
            assert_eq!(o.to_affine().to_bytes(), a.to_bytes());
            assert!(a.to_ecp().equals(p));
        }
        let [a, b, c] = G1::encode_batch([&ours[0], &ours[4], &ours[8]]);
        assert_eq!(a, crate::encoding::encode_g1(&pts[0]));
        assert_eq!(b, crate::encoding::encode_g1(&ECP::new()));
        assert_eq!(c, crate::encoding::encode_g1(&pts[8]));
        assert!(G1::batch_normalize(&[]).is_empty());
    }
}
