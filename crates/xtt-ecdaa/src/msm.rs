//! Variable-time double-scalar multiplication `[e]P + [f]Q` in G1 for PUBLIC scalars (the
//! Schnorr recomputations of verification), using the BN curve's GLV endomorphism.
//!
//! φ(x, y) = (β·x, y) acts on G1 as multiplication by a cube root of unity λ mod r. Each
//! 256-bit scalar is split into two halves of about 128 bits (`k = k₀ + k₁·λ mod r`, Babai
//! rounding with the curve's short lattice basis from miracl's `rom`), turning `[e]P + [f]Q`
//! into a 4-scalar sum over P, φ(P), Q, φ(Q) of 128-bit scalars. That sum is computed with
//! Shamir's trick over a 16-entry table of all subset sums: about 128 doublings and 120
//! additions, against 256 doublings and 128 additions for miracl's `ECP::mul2`.
//!
//! Not constant-time (branches on scalar bits): never use with secrets.

use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::dbig::DBIG;
use miracl_core::fp256bn::ecp::ECP;
use miracl_core::fp256bn::fp::FP;
use miracl_core::fp256bn::rom;

use crate::scalar::order;

/// Splits `e` (reduced mod r) into `(k₀, k₁)` with `e ≡ k₀ + k₁·λ (mod r)`, each returned as
/// a magnitude below about 2^128 and a flag saying the component is negative.
fn glv_split(e: &BIG) -> [(BIG, bool); 2] {
    let q = order();
    let mut e = *e;
    e.rmod(&q);
    // v_j = ⌊W_j · e / r⌋
    let mut v = [BIG::new(), BIG::new()];
    for (vj, w) in v.iter_mut().zip(rom::CURVE_W.iter()) {
        let wj = BIG::new_ints(w);
        let mut d: DBIG = BIG::mul(&wj, &e);
        *vj = d.ctdiv(&q, wj.nbits());
    }
    // k_i = [i = 0]·e − Σ_j v_j · SB[j][i]   (mod r)
    let mut out = [(BIG::new(), false), (BIG::new(), false)];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut k = if i == 0 { e } else { BIG::new() };
        for (vj, sbj) in v.iter().zip(rom::CURVE_SB.iter()) {
            let Some(sb) = sbj.get(i) else { continue };
            let t = BIG::modmul(vj, &BIG::new_ints(sb), &q);
            k = BIG::modadd(&k, &BIG::modneg(&t, &q), &q);
        }
        // Represent as ± a short magnitude.
        let neg = BIG::modneg(&k, &q);
        *slot = if neg.nbits() < k.nbits() {
            (neg, true)
        } else {
            (k, false)
        };
    }
    out
}

/// φ(P) = (β·x, y). miracl's points are homogeneous projective (x = X/Z), so scaling X by β
/// works without normalizing first.
fn endo(p: &ECP) -> ECP {
    let mut q = p.clone();
    let mut beta = FP::new_big(&BIG::new_ints(&rom::CRU));
    q.mulx(&mut beta);
    q
}

/// `[e]P + [f]Q` for public `e, f` (any values below 2^256; reduced mod r first).
pub(crate) fn vt_mul2(p: &ECP, e: &BIG, q: &ECP, f: &BIG) -> ECP {
    let [e0, e1] = glv_split(e);
    let [f0, f1] = glv_split(f);
    let bases = [p.clone(), endo(p), q.clone(), endo(q)];
    let mut scalars = [e0.0, e1.0, f0.0, f1.0];
    let negs = [e0.1, e1.1, f0.1, f1.1];
    // Signed bases.
    let mut b = bases;
    for (pt, &n) in b.iter_mut().zip(negs.iter()) {
        if n {
            pt.neg();
        }
    }
    // table[m] = Σ_{bit i of m set} b[i]
    let mut table: [ECP; 16] = core::array::from_fn(|_| ECP::new());
    for m in 1..16usize {
        let low = m & m.wrapping_neg();
        let i = low.trailing_zeros() as usize;
        let (Some(prev), Some(bi)) = (table.get(m ^ low).cloned(), b.get(i)) else {
            continue;
        };
        let mut s = prev;
        s.add(bi);
        if let Some(t) = table.get_mut(m) {
            *t = s;
        }
    }
    let bits = scalars.iter().map(BIG::nbits).max().unwrap_or(0);
    for s in scalars.iter_mut() {
        s.norm();
    }
    let mut acc = ECP::new();
    for i in (0..bits).rev() {
        acc.dbl();
        let mut m = 0usize;
        for (j, s) in scalars.iter().enumerate() {
            if s.bit(i) == 1 {
                m |= 1 << j;
            }
        }
        if m != 0 {
            if let Some(t) = table.get(m) {
                acc.add(t);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::Scalar;
    use rand_core::SeedableRng;

    #[test]
    fn glv_mul2_matches_plain() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let g = ECP::generator();
        let r = order();
        for _ in 0..40 {
            let p = g.mul(&Scalar::random(&mut rng).0);
            let q = g.mul(&Scalar::random(&mut rng).0);
            let e = Scalar::random(&mut rng).0;
            let f = Scalar::random(&mut rng).0;
            assert!(vt_mul2(&p, &e, &q, &f).equals(&p.mul2(&e, &q, &f)));
            for [e0, e1] in [glv_split(&e), glv_split(&f)] {
                assert!(e0.0.nbits() <= 129 && e1.0.nbits() <= 129);
            }
        }
        // Edge scalars: 0, 1, r − 1, and s ≥ r (reduced first).
        let p = g.mul(&BIG::new_int(77));
        let mut rm1 = r;
        rm1.dec(1);
        rm1.norm();
        for e in [BIG::new(), BIG::new_int(1), rm1] {
            assert!(vt_mul2(&p, &e, &g, &BIG::new_int(3)).equals(&p.mul2(
                &e,
                &g,
                &BIG::new_int(3)
            )));
        }
        assert!(vt_mul2(&p, &BIG::new(), &g, &BIG::new()).is_infinity());
    }
}
