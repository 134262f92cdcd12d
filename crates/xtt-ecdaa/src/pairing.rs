//! Pairing products over the three fixed G2 points of a group (P2, X, Y) with precomputed
//! Miller-loop lines, and one final exponentiation per product.
//!
//! miracl_core's `pair::precomp` walks the loop from the point it is given as if it were affine
//! (z = 1); it must be handed an affine point. [`Lines::new`] normalizes first and
//! [`GroupLines::new`] runs a self-test against the plain pairing before anything is trusted.

use miracl_core::fp256bn::ecp::{self, ECP};
use miracl_core::fp256bn::ecp2::ECP2;
use miracl_core::fp256bn::fp4::FP4;
use miracl_core::fp256bn::pair;

use crate::curve::{p1, p2};
use crate::error::Error;
use crate::issuer::GroupPublicKey;

/// The precomputed line coefficients of one G2 point.
#[derive(Clone)]
pub(crate) struct Lines(Vec<FP4>);

impl Lines {
    fn new(q: &ECP2) -> Self {
        let mut a = q.clone();
        a.affine();
        let mut t = vec![FP4::new(); ecp::G2_TABLE];
        pair::precomp(&mut t, &a);
        Lines(t)
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
        // Self-test: e(P1, Q) from the lines times e(−P1, Q) from a plain Miller loop must be 1
        // for each of the three points, and e(P1, P2) from the lines must not be 1 (catches
        // degenerate lines, e.g. from a non-affine input to `precomp`).
        let g1 = p1();
        let mut neg = g1.clone();
        neg.neg();
        for (l, q) in [
            (&lines.p2, p2()),
            (&lines.x, gpk.x.clone()),
            (&lines.y, gpk.y.clone()),
        ] {
            let mut r = pair::initmp();
            pair::another_pc(&mut r, &l.0, &g1);
            pair::another(&mut r, &q, &neg);
            if !pair::fexp(&pair::miller(&mut r)).isunity() {
                return Err(Error::PairingSelfTest);
            }
        }
        if lines.product_is_one(&ECP::new(), &g1, &ECP::new()) {
            return Err(Error::PairingSelfTest);
        }
        Ok(lines)
    }

    /// Whether `e(a, Y) · e(b, P2) · e(c, X) = 1`: three line evaluations, one Miller-loop
    /// squaring chain, one final exponentiation.
    pub(crate) fn product_is_one(&self, a: &ECP, b: &ECP, c: &ECP) -> bool {
        let mut r = pair::initmp();
        pair::another_pc(&mut r, &self.y.0, a);
        pair::another_pc(&mut r, &self.p2.0, b);
        pair::another_pc(&mut r, &self.x.0, c);
        pair::fexp(&pair::miller(&mut r)).isunity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::Scalar;
    use rand_core::SeedableRng;

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
        // e([a]P1, X)·e(−[a(b+1)]P1, P2) = 1 with X = [b+1]P2.
        let abp = Scalar::mul(&a, &bp1);
        let mut neg = g1.mul(&abp.0);
        neg.neg();
        assert!(lines.product_is_one(&ECP::new(), &neg, &g1.mul(&a.0)));
        // e(P1, Y)·e(−[a]P1, P2) = 1, but e(P1, Y)·e(−[ab]P1, P2) ≠ 1.
        let mut na = g1.mul(&a.0);
        na.neg();
        assert!(lines.product_is_one(&g1, &na, &ECP::new()));
        let mut nab = g1.mul(&ab.0);
        nab.neg();
        assert!(!lines.product_is_one(&g1, &nab, &ECP::new()));
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
