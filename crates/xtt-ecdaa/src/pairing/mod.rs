//! Pairing products over the three fixed G2 points of a group (P2, X, Y) with precomputed
//! Miller-loop lines, and one final exponentiation per product.
//!
//! The lines come from miracl_core's `pair::precomp`, once per group; everything after that
//! (line evaluation at the G1 points, the shared Miller loop, the final exponentiation) runs on
//! the crate's own F_p¹² tower over the 4×64-bit Montgomery field of `g1::field`, which mirrors
//! miracl's tower element for element (`fp2`, `fp4`, `fp12`: same bases, same byte layout), so
//! every step is tested byte for byte against miracl. No G2 arithmetic is done here. The
//! verifier's entry point, [`GroupLines::product_is_one_g1`], divides every line by its point's
//! x (`fp12::UnitLine`): its Miller-loop value then differs from miracl's by a factor in F_p,
//! and the tests compare it after the final exponentiation, which removes that factor.
//!
//! Variable time: the loop skips points at infinity and the exponentiations walk the public
//! parameter u; every input of a verifier's pairing product is public (signature points and
//! verifier-chosen randomness), so nothing secret flows through here. The field operations
//! underneath stay constant-time.
//!
//! miracl_core's `pair::precomp` walks the loop from the point it is given as if it were affine
//! (z = 1); it must be handed an affine point. [`Lines::new`] normalizes first and
//! [`GroupLines::new`] runs a self-test against miracl's plain pairing before anything is
//! trusted.

mod final_exp;
mod fp12;
mod fp2;
mod fp4;
mod miller;

use miracl_core::fp256bn::ecp::{self, ECP};
use miracl_core::fp256bn::ecp2::ECP2;
use miracl_core::fp256bn::fp4::FP4;
use miracl_core::fp256bn::pair;

use self::fp12::Fp12;
use self::miller::PreparedLines;
use crate::curve::{p1, p2};
use crate::error::Error;
use crate::g1::{G1Affine, G1};
use crate::issuer::GroupPublicKey;

/// The precomputed line coefficients of one G2 point: miracl's table (the reference the tests
/// and the benchmark compare against) and the same lines on our field.
#[derive(Clone)]
pub(crate) struct Lines {
    miracl: Vec<FP4>,
    prepared: PreparedLines,
}

impl Lines {
    fn new(q: &ECP2) -> Self {
        let mut a = q.clone();
        a.affine();
        let mut t = vec![FP4::new(); ecp::G2_TABLE];
        pair::precomp(&mut t, &a);
        let prepared = PreparedLines::from_miracl(&t);
        Lines {
            miracl: t,
            prepared,
        }
    }
}

/// Lines for P2, X and Y of one group.
#[derive(Clone)]
pub(crate) struct GroupLines {
    pub(crate) p2: Lines,
    pub(crate) x: Lines,
    pub(crate) y: Lines,
}

impl GroupLines {
    pub(crate) fn new(gpk: &GroupPublicKey) -> Result<Self, Error> {
        let lines = GroupLines {
            p2: Lines::new(&p2()),
            x: Lines::new(&gpk.x),
            y: Lines::new(&gpk.y),
        };
        // Self-test: e(P1, Q) from the lines on our tower must equal miracl's plain pairing
        // (no precomputation) byte for byte, for each of the three points, and e(P1, P2) must
        // not be 1 (catches degenerate lines, e.g. from a non-affine input to `precomp`).
        let g1 = p1();
        let g1_affine = G1::from_ecp(&g1).to_affine();
        for (l, q) in [
            (&lines.p2, p2()),
            (&lines.x, gpk.x.clone()),
            (&lines.y, gpk.y.clone()),
        ] {
            if !l.prepared.is_complete() {
                return Err(Error::PairingSelfTest);
            }
            let ours = final_exp::final_exponentiation(&miller_at(&[(l, &g1_affine)]));
            let mut plain = pair::fexp(&pair::ate(&q, &g1));
            plain.reduce();
            let mut plain_bytes = [0u8; fp12::FP12_LEN];
            plain.tobytes(&mut plain_bytes);
            if ours.to_bytes() != plain_bytes {
                return Err(Error::PairingSelfTest);
            }
        }
        let none = G1Affine::identity();
        if lines.product_is_one(&none, &g1_affine, &none) {
            return Err(Error::PairingSelfTest);
        }
        Ok(lines)
    }

    /// Whether `e(a, Y) · e(b, P2) · e(c, X) = 1`: three line evaluations per step of one
    /// Miller-loop squaring chain, one final exponentiation.
    pub(crate) fn product_is_one(&self, a: &G1Affine, b: &G1Affine, c: &G1Affine) -> bool {
        let f = miller_at(&[(&self.y, a), (&self.p2, b), (&self.x, c)]);
        final_exp::final_exponentiation(&f).is_one()
    }

    /// [`Self::product_is_one`] for projective points, with the lines divided by each point's
    /// x (see `fp12::UnitLine`): the one inversion that makes the points affine inverts their
    /// X coordinates instead, and every line product is cheaper. Falls back to the affine
    /// loop for a point with x = 0 (none is on the curve, as 3 is not a square mod p; a guard
    /// against dividing by zero).
    pub(crate) fn product_is_one_g1(&self, a: &G1, b: &G1, c: &G1) -> bool {
        let Some(points) = G1::x_normalize_batch([a, b, c]) else {
            let [a, b, c] = G1::to_affine_batch([a, b, c]);
            return self.product_is_one(&a, &b, &c);
        };
        let mut terms = Vec::with_capacity(3);
        for (l, p) in [&self.y, &self.p2, &self.x].into_iter().zip(points) {
            if let Some((u, v)) = p {
                terms.push((&l.prepared, u, v));
            }
        }
        let f = miller::miller_product(&terms, |(lines, u, v), k| lines.at_unit(k, u, v));
        final_exp::final_exponentiation(&f).is_one()
    }

    /// The same check on miracl's pairing code (`another_pc`, `miller`, `fexp`): the path
    /// this module replaced, kept as the reference for the tests and the benchmark.
    pub(crate) fn product_is_one_miracl(&self, a: &ECP, b: &ECP, c: &ECP) -> bool {
        let mut r = pair::initmp();
        pair::another_pc(&mut r, &self.y.miracl, a);
        pair::another_pc(&mut r, &self.p2.miracl, b);
        pair::another_pc(&mut r, &self.x.miracl, c);
        pair::fexp(&pair::miller(&mut r)).isunity()
    }
}

/// The Miller loop over (lines, point) pairs, leaving out points at infinity.
fn miller_at(terms: &[(&Lines, &G1Affine)]) -> Fp12 {
    let mut prepared = Vec::with_capacity(terms.len());
    for (l, p) in terms {
        if let Some((x, y)) = p.coordinates() {
            prepared.push((&l.prepared, x, y));
        }
    }
    miller::miller_product(&prepared, |(lines, x, y), k| lines.at(k, x, y))
}

/// Old-versus-new timing of the three-pairing product (`benches/pairing.rs`).
#[doc(hidden)]
pub struct PairingBench {
    lines: GroupLines,
    ecp: [ECP; 3],
    affine: [G1Affine; 3],
    projective: [G1; 3],
}

impl core::fmt::Debug for PairingBench {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PairingBench")
    }
}

impl PairingBench {
    /// Lines of `gpk` and three fixed G1 points [k]P1 (not a product equal to 1).
    pub fn new(gpk: &GroupPublicKey) -> Result<PairingBench, Error> {
        let g = p1();
        let ecp = [5, 7, 11].map(|k| g.mul(&miracl_core::fp256bn::big::BIG::new_int(k)));
        let affine = [0, 1, 2].map(|i| {
            ecp.get(i)
                .map_or_else(G1Affine::identity, |p| G1::from_ecp(p).to_affine())
        });
        let projective = [0, 1, 2].map(|i| ecp.get(i).map_or(G1::IDENTITY, G1::from_ecp));
        Ok(PairingBench {
            lines: GroupLines::new(gpk)?,
            ecp,
            affine,
            projective,
        })
    }

    pub fn miracl(&self) -> bool {
        let [a, b, c] = &self.ecp;
        self.lines.product_is_one_miracl(a, b, c)
    }

    pub fn tower(&self) -> bool {
        let [a, b, c] = &self.affine;
        self.lines.product_is_one(a, b, c)
    }

    /// The verifier's path: projective points, lines divided by x.
    pub fn tower_unit_lines(&self) -> bool {
        let [a, b, c] = &self.projective;
        self.lines.product_is_one_g1(a, b, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::Scalar;
    use miracl_core::fp256bn::fp12::FP12;
    use rand_core::SeedableRng;

    fn aff(p: &ECP) -> G1Affine {
        G1::from_ecp(p).to_affine()
    }

    fn miracl_bytes(m: &FP12) -> [u8; fp12::FP12_LEN] {
        fp12::tests::miracl_bytes(m)
    }

    /// A group with known discrete logarithms: X = [x]P2, Y = [y]P2.
    fn random_group(rng: &mut rand_chacha::ChaCha20Rng) -> (Scalar, Scalar, GroupLines) {
        let (x, y) = (Scalar::random(rng), Scalar::random(rng));
        let gpk = GroupPublicKey {
            x: p2().mul(&x.0),
            y: p2().mul(&y.0),
        };
        let lines = GroupLines::new(&gpk).expect("self-test passes");
        (x, y, lines)
    }

    fn random_g1(rng: &mut rand_chacha::ChaCha20Rng) -> ECP {
        p1().mul(&Scalar::random(rng).0)
    }

    #[test]
    fn loop_digits_reproduce_miracl_table_shape() {
        // 65 loop steps (miracl's ATE_BITS − 1), 16 of them with an addition line, plus the two
        // fix-up lines: G2_TABLE = 83 lines in all; and the 63 steps of the power by |u|.
        let d = miller::loop_digits();
        assert_eq!(d.len(), ecp::ATE_BITS - 1);
        assert_eq!(
            d.len() + d.iter().filter(|x| **x != 0).count() + 2,
            ecp::G2_TABLE
        );
        let u = miracl_core::fp256bn::big::BIG::new_ints(&miracl_core::fp256bn::rom::CURVE_BNX);
        let mut ub = [0u8; 32];
        u.tobytes(&mut ub);
        assert_eq!(ub[24..], miller::BN_U.to_be_bytes());
    }

    #[test]
    fn miller_loop_of_one_two_three_pairings_is_byte_identical_to_miracl() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x3a);
        let (_, _, lines) = random_group(&mut rng);
        let tables = [&lines.y, &lines.p2, &lines.x];
        for round in 0..6 {
            let pts: Vec<ECP> = (0..3).map(|_| random_g1(&mut rng)).collect();
            for n in 1..=3 {
                let mut r = pair::initmp();
                let mut terms = Vec::new();
                let affine: Vec<G1Affine> = pts.iter().map(aff).collect();
                for k in 0..n {
                    // One round leaves a point at infinity in the middle.
                    let p = if round == 0 && k == 1 {
                        ECP::new()
                    } else {
                        pts[k].clone()
                    };
                    pair::another_pc(&mut r, &tables[k].miracl, &p);
                    let a = if p.is_infinity() {
                        G1Affine::identity()
                    } else {
                        affine[k]
                    };
                    terms.push((tables[k], a));
                }
                let theirs = pair::miller(&mut r);
                let refs: Vec<(&Lines, &G1Affine)> = terms.iter().map(|(l, a)| (*l, a)).collect();
                let ours = miller_at(&refs);
                assert_eq!(ours.to_bytes(), miracl_bytes(&theirs), "n = {n}");
                // The final exponentiation of that value, byte for byte.
                assert_eq!(
                    final_exp::final_exponentiation(&ours).to_bytes(),
                    miracl_bytes(&pair::fexp(&theirs))
                );
            }
        }
        // No points at all: the empty product.
        assert!(miller_at(&[]).is_one());
    }

    #[test]
    fn final_exponentiation_matches_miracl_on_random_elements() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x3b);
        for _ in 0..6 {
            let x = fp12::tests::random_fp12(&mut rng);
            let theirs = pair::fexp(&fp12::tests::to_miracl(&x));
            assert_eq!(
                final_exp::final_exponentiation(&x).to_bytes(),
                miracl_bytes(&theirs)
            );
        }
    }

    /// Case `i` of a product test: e([a]P1, Y) · e(−[a·y + b·x]P1, P2) · e([b]P1, X) = 1 for
    /// random a, b; every third case perturbs the middle point (the product is then not 1),
    /// every fifth drops the first one. Returns the three points and whether the product is 1.
    fn product_case(
        i: usize,
        rng: &mut rand_chacha::ChaCha20Rng,
        xs: &Scalar,
        ys: &Scalar,
    ) -> ([ECP; 3], bool) {
        let g1 = p1();
        let (a, b) = (Scalar::random(rng), Scalar::random(rng));
        let pa = if i % 5 == 4 { ECP::new() } else { g1.mul(&a.0) };
        let mut pb = g1.mul(&Scalar::mul(&b, xs).0);
        if i % 5 != 4 {
            pb.add(&g1.mul(&Scalar::mul(&a, ys).0));
        }
        pb.neg();
        if i % 3 == 2 {
            pb.add(&g1);
        }
        ([pa, pb, g1.mul(&b.0)], i % 3 != 2)
    }

    #[test]
    fn product_agrees_with_miracl_on_random_true_and_false_products() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x3c);
        let (xs, ys, lines) = random_group(&mut rng);
        let mut ones = 0;
        for i in 0..30 {
            let ([pa, pb, pc], expected) = product_case(i, &mut rng, &xs, &ys);
            let old = lines.product_is_one_miracl(&pa, &pb, &pc);
            let new = lines.product_is_one(&aff(&pa), &aff(&pb), &aff(&pc));
            assert_eq!(old, new, "case {i}");
            assert_eq!(new, expected, "case {i}");
            ones += usize::from(new);
        }
        assert_eq!(ones, 20);
        let none = G1Affine::identity();
        assert!(lines.product_is_one(&none, &none, &none));
        assert!(lines.product_is_one_miracl(&ECP::new(), &ECP::new(), &ECP::new()));
    }

    #[test]
    fn unit_lines_on_projective_points_agree_with_affine_lines_and_miracl() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x3d);
        let (xs, ys, lines) = random_group(&mut rng);
        // Projective inputs with Z ≠ 1, as the verifier's arithmetic leaves them.
        let proj = |p: &ECP| {
            let mut q = G1::from_ecp(p).double();
            q = q.add(&G1::from_ecp(p).neg());
            q
        };
        for i in 0..24 {
            let ([pa, pb, pc], expected) = product_case(i, &mut rng, &xs, &ys);
            assert_eq!(lines.product_is_one_miracl(&pa, &pb, &pc), expected);
            assert_eq!(
                lines.product_is_one_g1(&proj(&pa), &proj(&pb), &proj(&pc)),
                expected,
                "case {i}"
            );
            // The loop value differs from the affine loop's only by a factor the final
            // exponentiation removes: both exponentiate to the same element.
            let (pa, pb, pc) = (proj(&pa), proj(&pb), proj(&pc));
            let Some(pts) = G1::x_normalize_batch([&pa, &pb, &pc]) else {
                panic!("no point here has x = 0")
            };
            let mut terms = Vec::new();
            let mut affine_terms = Vec::new();
            let aff = G1::to_affine_batch([&pa, &pb, &pc]);
            for ((l, p), a) in [&lines.y, &lines.p2, &lines.x]
                .into_iter()
                .zip(pts)
                .zip(&aff)
            {
                if let Some((u, v)) = p {
                    terms.push((&l.prepared, u, v));
                }
                affine_terms.push((l, a));
            }
            let unit = miller::miller_product(&terms, |(l, u, v), k| l.at_unit(k, u, v));
            assert_eq!(
                final_exp::final_exponentiation(&unit).to_bytes(),
                final_exp::final_exponentiation(&miller_at(&affine_terms)).to_bytes()
            );
        }
        assert!(lines.product_is_one_g1(&G1::IDENTITY, &G1::IDENTITY, &G1::IDENTITY));
    }

    #[test]
    fn no_point_of_g1_has_x_zero() {
        // x = 0 would need y² = 3, and 3 is not a square mod p: miracl finds no point there.
        // So the x-normalized loop applies to every point of G1 but the identity, and the
        // affine fallback in `product_is_one_g1` is only a guard against a division by zero.
        let p0 = ECP::new_big(&miracl_core::fp256bn::big::BIG::new());
        assert!(p0.is_infinity());
        let mut e = miracl_core::fp256bn::big::BIG::new_ints(&miracl_core::fp256bn::rom::MODULUS);
        e.dec(1);
        e.fshr(1);
        let three = miracl_core::fp256bn::fp::FP::new_int(3);
        let mut legendre = three.pow(&e);
        legendre.add(&miracl_core::fp256bn::fp::FP::new_int(1));
        assert!(legendre.iszilch(), "3^((p−1)/2) = −1");
    }

    #[test]
    fn lines_are_bilinear_and_affine_normalization_matters() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let a = Scalar::random(&mut rng);
        let b = Scalar::random(&mut rng);
        let ab = Scalar::mul(&a, &b);
        // A projective (non-normalized) G2 point, as arithmetic produces them.
        let mut x = p2().mul(&b.0);
        x.add(&p2());
        let mut bp1 = b.clone();
        bp1.0.inc(1);
        bp1.0.norm();
        let gpk = GroupPublicKey {
            x: x.clone(),
            y: p2().mul(&a.0),
        };
        let lines = GroupLines::new(&gpk).expect("self-test passes");
        let g1 = p1();
        let none = G1Affine::identity();
        // e([a]P1, X)·e(−[a(b+1)]P1, P2) = 1 with X = [b+1]P2.
        let abp = Scalar::mul(&a, &bp1);
        let mut neg = g1.mul(&abp.0);
        neg.neg();
        assert!(lines.product_is_one(&none, &aff(&neg), &aff(&g1.mul(&a.0))));
        assert!(lines.product_is_one_miracl(&ECP::new(), &neg, &g1.mul(&a.0)));
        // e(P1, Y)·e(−[a]P1, P2) = 1, but e(P1, Y)·e(−[ab]P1, P2) ≠ 1.
        let mut na = g1.mul(&a.0);
        na.neg();
        assert!(lines.product_is_one(&aff(&g1), &aff(&na), &none));
        let mut nab = g1.mul(&ab.0);
        nab.neg();
        assert!(!lines.product_is_one(&aff(&g1), &aff(&nab), &none));
        // All three at once: e([a]P1, Y)... with Y = [a]P2: e(P1,Y)·e(−[a]P1,P2)·e([a]P1,X)
        // ·e(−[a(b+1)]P1, P2) folded: e(P1, Y)·e(−[a + a(b+1)]P1, P2)·e([a]P1, X) = 1.
        let mut ns = na.clone();
        ns.add(&neg);
        assert!(lines.product_is_one(&aff(&g1), &aff(&ns), &aff(&g1.mul(&a.0))));
        // Lines precomputed from the raw projective point are wrong (the documented pitfall),
        // which is why `Lines::new` normalizes first.
        let mut raw = vec![FP4::new(); ecp::G2_TABLE];
        pair::precomp(&mut raw, &x);
        let mut r = pair::initmp();
        pair::another_pc(&mut r, &raw, &g1);
        pair::another(&mut r, &x, &{
            let mut n = g1.clone();
            n.neg();
            n
        });
        assert!(!pair::fexp(&pair::miller(&mut r)).isunity());
    }
}
