//! Variable-time double-scalar multiplication `[e]P + [f]Q` in G1 for PUBLIC scalars (the
//! Schnorr recomputations of verification), using the BN curve's GLV endomorphism.
//!
//! φ(x, y) = (β·x, y) acts on G1 as multiplication by a cube root of unity λ mod r. Each
//! 256-bit scalar is split into two halves of about 128 bits (`k = k₀ + k₁·λ mod r`, Babai
//! rounding with the curve's short lattice basis from miracl's `rom`), turning `[e]P + [f]Q`
//! into a 4-scalar sum over P, φ(P), Q, φ(Q) of 128-bit scalars. That sum is computed with
//! one shared doubling chain (≈ 128 doublings) and a width-5 NAF per half (odd multiples up to
//! 15P per point, the φ images for one multiplication each): ≈ 85 additions plus 14 for the
//! tables, against ≈ 120 + 11 for Shamir's trick over the 16 subset sums and 256 doublings plus
//! 128 additions for miracl's `ECP::mul2`. A point the verifier keeps (the basename point J)
//! gets a width-8 table once ([`GlvTable`]), ≈ 28 additions for its scalar.
//!
//! [`vt_msm_u64`] sums many products with short (64-bit) public scalars, the random exponents
//! of batch verification: Straus's interleaving with one shared doubling chain and a width-4
//! NAF per scalar (odd multiples ±P, ±3P, ±5P, ±7P per point), about 64 doublings plus 17
//! additions per point, where miracl's `ECP::muln` (Pippenger with 16 buckets per 4-bit
//! window) spends 16 × (n + 31) additions, four times as much for the batch sizes a server sees.
//!
//! The points are [`crate::g1`]'s (4×64-bit Montgomery field, complete projective formulas);
//! a table kept for a verifier's lifetime is normalized to affine once, so its additions are
//! mixed ones. The scalar splitting runs on crypto-bigint integers without divisions.
//!
//! Not constant-time (branches on scalar bits): never use with secrets.

use std::sync::OnceLock;

use crypto_bigint::{Encoding, U256, U512};
use miracl_core::fp256bn::big::BIG;
#[cfg(test)]
use miracl_core::fp256bn::dbig::DBIG;
use miracl_core::fp256bn::ecp::ECP;
use miracl_core::fp256bn::rom;

use crate::g1::{G1Affine, G1};
use crate::scalar::{big_from_u64, order, SCALAR_LEN};

/// Splits `e` into `(k₀, k₁)` with `e ≡ k₀ + k₁·λ (mod r)`, each returned as a magnitude below
/// 2^130 and a flag saying the component is negative.
///
/// Babai rounding without divisions: `v_j = ⌊W_j·e / r⌋` from `⌊e·g_j / 2^256⌋` with
/// `g_j = ⌊2^256·W_j / r⌋` precomputed (that is v_j or one less; one product decides), and
/// `k = (e, 0) − Σ v_j·b_j` computed exactly in two's complement over 512 bits with the basis
/// entries `b_j` taken as their small signed representatives: the same halves as miracl's. miracl's
/// `BIG` version of the same ([`glv_split_miracl`]: a constant-time division and modular
/// products) cost ≈ 7 µs per scalar, two scalars per signature.
fn glv_split(e: &BIG) -> [(BIG, bool); 2] {
    let c = glv_constants();
    let mut e_bytes = [0u8; SCALAR_LEN];
    let mut reduced = *e;
    reduced.norm();
    if BIG::comp(&reduced, &order()) >= 0 {
        reduced.rmod(&order()); // callers pass reduced scalars; this keeps the contract total
    }
    reduced.tobytes(&mut e_bytes);
    let e = U256::from_be_slice(&e_bytes);
    let e_wide = U512::from((e, U256::ZERO));
    let mut k = [e_wide, U512::ZERO];
    for ((g, w), row) in c.g.iter().zip(c.w.iter()).zip(c.basis.iter()) {
        // ⌊e·g/2^256⌋ is ⌊W·e/r⌋ or one less: one product tells which.
        let (_, mut v) = e.mul_wide(g);
        let next = v.wrapping_add(&U256::ONE);
        let (lo, hi) = next.mul_wide(&c.r);
        let (elo, ehi) = e.mul_wide(w);
        if U512::from((lo, hi)) <= U512::from((elo, ehi)) {
            v = next;
        }
        for (ki, (magnitude, negative)) in k.iter_mut().zip(row.iter()) {
            let (lo, hi) = v.mul_wide(magnitude);
            let term = U512::from((lo, hi));
            // k −= v·b: b negative adds |b|·v.
            *ki = if *negative {
                ki.wrapping_add(&term)
            } else {
                ki.wrapping_sub(&term)
            };
        }
    }
    k.map(|ki| {
        let negative = ki.bit_vartime(511);
        let magnitude = if negative { ki.wrapping_neg() } else { ki };
        let (hi, lo) = magnitude.split();
        // Short by construction (|k_i| < 2^130); a failure here would be a wrong constant.
        debug_assert!(hi == U256::ZERO && lo.bits_vartime() <= 130);
        let mut out = [0u8; SCALAR_LEN];
        out.copy_from_slice(&lo.to_be_bytes());
        (BIG::frombytes(&out), negative)
    })
}

/// The precomputed constants of [`glv_split`].
struct GlvConstants {
    r: U256,
    w: [U256; 2],
    /// `⌊2^256·W_j / r⌋`.
    g: [U256; 2],
    /// `basis[j][i]`: miracl's `SB[j][i]` as a signed magnitude (an entry above r/2 is the
    /// negative number entry − r).
    basis: [[(U256, bool); 2]; 2],
}

fn glv_constants() -> &'static GlvConstants {
    static C: OnceLock<GlvConstants> = OnceLock::new();
    C.get_or_init(|| {
        let r = order();
        let to_u256 = |b: &BIG| {
            let mut bytes = [0u8; SCALAR_LEN];
            let mut b = *b;
            b.norm();
            b.tobytes(&mut bytes);
            U256::from_be_slice(&bytes)
        };
        let r_u = to_u256(&r);
        let mut g = [U256::ZERO; 2];
        let mut w_u = [U256::ZERO; 2];
        for ((gj, wj), w) in g.iter_mut().zip(w_u.iter_mut()).zip(rom::CURVE_W.iter()) {
            *wj = to_u256(&BIG::new_ints(w));
            // W_j·2^256 / r, as a 512-bit division (once per process).
            let w = U512::from((U256::ZERO, *wj));
            let r_wide = U512::from((r_u, U256::ZERO));
            let q = w.wrapping_div(&r_wide);
            *gj = q.split().1; // (hi, lo): the quotient is below 2^256
        }
        let half_r = r_u.shr_vartime(1);
        let mut basis = [[(U256::ZERO, false); 2]; 2];
        for (row, sbj) in basis.iter_mut().zip(rom::CURVE_SB.iter()) {
            for (slot, sb) in row.iter_mut().zip(sbj.iter()) {
                let x = to_u256(&BIG::new_ints(sb));
                *slot = if x > half_r {
                    (r_u.wrapping_sub(&x), true)
                } else {
                    (x, false)
                };
            }
        }
        GlvConstants {
            r: r_u,
            w: w_u,
            g,
            basis,
        }
    })
}

/// The split as miracl's `BIG`s compute it: the reference [`glv_split`] is tested against.
#[cfg(test)]
fn glv_split_miracl(e: &BIG) -> [(BIG, bool); 2] {
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

/// Window width of the per-signature tables of variable points (odd multiples up to 15P):
/// 8 precomputed points against ≈ 128/6 additions per 128-bit half, the cheapest total.
pub(crate) const VARIABLE_WINDOW: u32 = 5;
/// Window width of a point fixed for a verifier's lifetime (the basename point J): 64 odd
/// multiples, computed once, ≈ 128/9 additions per half.
pub(crate) const FIXED_WINDOW: u32 = 8;
/// Digits of a width-w NAF of a GLV half (below 2^130): one more than its bit length.
const NAF_LEN: usize = 132;

/// The odd multiples P, 3P, …, (2^(w−1) − 1)P of a point and their images under φ, the
/// table one base of [`vt_glv_sum`] reads.
#[derive(Clone)]
pub(crate) struct GlvTable {
    window: u32,
    multiples: Multiples,
}

/// Projective for a per-signature table (an inversion would cost more than mixed additions
/// save), affine for a long-lived one.
#[derive(Clone)]
enum Multiples {
    Projective {
        p: Vec<G1>,
        phi: Vec<G1>,
    },
    Affine {
        p: Vec<G1Affine>,
        phi: Vec<G1Affine>,
    },
}

/// One row of a table, as [`vt_glv_sum`] reads it.
#[derive(Clone, Copy)]
enum Row<'a> {
    Projective(&'a [G1]),
    Affine(&'a [G1Affine]),
}

impl Row<'_> {
    /// `acc + [digit]·(base)` for an odd digit below the table's bound (0 adds nothing).
    fn add_digit(self, acc: &G1, digit: i8) -> G1 {
        let i = usize::from(digit.unsigned_abs() / 2);
        match self {
            Row::Projective(t) => match t.get(i) {
                Some(q) if digit > 0 => acc.add(q),
                Some(q) if digit < 0 => acc.add(&q.neg()),
                _ => *acc,
            },
            Row::Affine(t) => match t.get(i) {
                Some(q) if digit > 0 => acc.add_affine(q),
                Some(q) if digit < 0 => acc.add_affine(&q.neg()),
                _ => *acc,
            },
        }
    }
}

/// P, 3P, …, (2·count − 1)P.
fn odd_multiples(p: &G1, count: usize) -> Vec<G1> {
    let twice = p.double();
    let mut odd = Vec::with_capacity(count);
    let mut cur = *p;
    for _ in 0..count {
        let next = cur.add(&twice);
        odd.push(std::mem::replace(&mut cur, next));
    }
    odd
}

impl GlvTable {
    /// A per-signature table for window width `window` (2 ≤ window ≤ 8: the digits are `i8`).
    pub(crate) fn new(p: &G1, window: u32) -> Self {
        let window = window.clamp(2, 8);
        let p = odd_multiples(p, 1usize << (window - 2));
        let phi = p.iter().map(G1::endo).collect();
        Self {
            window,
            multiples: Multiples::Projective { p, phi },
        }
    }

    /// A table kept for many signatures: normalized to affine once (one inversion), so every
    /// addition from it is a mixed one.
    pub(crate) fn new_fixed(p: &G1, window: u32) -> Self {
        let window = window.clamp(2, 8);
        let p = G1::batch_normalize(&odd_multiples(p, 1usize << (window - 2)));
        let phi = p.iter().map(G1Affine::endo).collect();
        Self {
            window,
            multiples: Multiples::Affine { p, phi },
        }
    }

    fn rows(&self) -> [Row<'_>; 2] {
        match &self.multiples {
            Multiples::Projective { p, phi } => [Row::Projective(p), Row::Projective(phi)],
            Multiples::Affine { p, phi } => [Row::Affine(p), Row::Affine(phi)],
        }
    }
}

/// A public scalar split for GLV: `e ≡ ±k₀ ± k₁·λ (mod r)` with short magnitudes.
pub(crate) struct GlvScalar([(BIG, bool); 2]);

impl GlvScalar {
    pub(crate) fn new(e: &BIG) -> Self {
        Self(glv_split(e))
    }

    /// `a + b·λ (mod r)`, given by its halves: no split to compute, and the doubling chain of
    /// a 64-bit half is half as long as that of a 128-bit scalar (whose split leaves a
    /// 128-bit half). Distinct pairs give distinct scalars (test
    /// `short_halves_name_distinct_scalars`), so a random pair is a random scalar out of
    /// 2^128: the folding exponent of verification.
    pub(crate) fn from_halves(a: u64, b: u64) -> Self {
        Self([(big_from_u64(a), false), (big_from_u64(b), false)])
    }
}

/// Width-`w` NAF of a non-negative `k < 2^(64·3 − 1)`, least significant digit first, every
/// digit negated when `negate`: digits odd and below 2^(w−1) in magnitude, at most one
/// non-zero digit in any w consecutive ones.
fn wnaf(k: &BIG, w: u32, negate: bool) -> [i8; NAF_LEN] {
    let mut out = [0i8; NAF_LEN];
    let mut bytes = [0u8; crate::scalar::SCALAR_LEN];
    let mut k = *k;
    k.norm();
    k.tobytes(&mut bytes);
    // Little-endian limbs; a half is below 2^130, so the top limb is only carry room.
    let mut limbs = [0u64; 3];
    for (i, limb) in limbs.iter_mut().enumerate() {
        let hi = bytes.len() - 8 * i;
        let Some(chunk) = bytes.get(hi - 8..hi) else {
            continue;
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(b);
    }
    let modulus = 1i64 << w;
    let half = modulus >> 1;
    for d in out.iter_mut() {
        if limbs == [0; 3] {
            break;
        }
        if limbs[0] & 1 == 1 {
            // k mod 2^w, as an odd value in (−2^(w−1), 2^(w−1)).
            let low = i64::try_from(limbs[0] & ((1u64 << w) - 1)).unwrap_or(0);
            let digit = if low >= half { low - modulus } else { low };
            let magnitude = digit.unsigned_abs();
            if digit >= 0 {
                // The low w bits are exactly `digit`: no borrow.
                limbs[0] -= magnitude;
            } else {
                let (l0, c0) = limbs[0].overflowing_add(magnitude);
                let (l1, c1) = limbs[1].overflowing_add(u64::from(c0));
                limbs[0] = l0;
                limbs[1] = l1;
                limbs[2] += u64::from(c1);
            }
            let digit = i8::try_from(digit).unwrap_or(0);
            *d = if negate { -digit } else { digit };
        }
        limbs[0] = (limbs[0] >> 1) | (limbs[1] << 63);
        limbs[1] = (limbs[1] >> 1) | (limbs[2] << 63);
        limbs[2] >>= 1;
    }
    out
}

/// `Σ [eᵢ]Pᵢ` for a few full-size public scalars: every scalar split by GLV into two halves
/// of about 128 bits (for Pᵢ and φ(Pᵢ)), every half recoded as a width-w NAF for its table,
/// and all of them added into one doubling chain of about 128 doublings (interleaving, Straus).
pub(crate) fn vt_glv_sum(terms: &[(&GlvTable, &GlvScalar)]) -> G1 {
    let mut rows: Vec<(Row<'_>, [i8; NAF_LEN])> = Vec::with_capacity(2 * terms.len());
    for (table, scalar) in terms {
        let [(k0, n0), (k1, n1)] = &scalar.0;
        let [p, phi] = table.rows();
        rows.push((p, wnaf(k0, table.window, *n0)));
        rows.push((phi, wnaf(k1, table.window, *n1)));
    }
    let len = rows
        .iter()
        .filter_map(|(_, d)| d.iter().rposition(|&x| x != 0))
        .max()
        .map_or(0, |i| i + 1);
    let mut acc = G1::IDENTITY;
    for i in (0..len).rev() {
        acc = acc.double();
        for (row, d) in &rows {
            let digit = d.get(i).copied().unwrap_or(0);
            if digit != 0 {
                acc = row.add_digit(&acc, digit);
            }
        }
    }
    acc
}

/// `[e]P + [f]Q` for public `e, f` (any values below 2^256; reduced mod r first).
pub fn vt_mul2(p: &G1, e: &BIG, q: &G1, f: &BIG) -> G1 {
    let tp = GlvTable::new(p, VARIABLE_WINDOW);
    let tq = GlvTable::new(q, VARIABLE_WINDOW);
    vt_glv_sum(&[(&tp, &GlvScalar::new(e)), (&tq, &GlvScalar::new(f))])
}

/// [`vt_mul2`] on miracl points, for the one-off proof checks of joining.
pub(crate) fn vt_mul2_ecp(p: &ECP, e: &BIG, q: &ECP, f: &BIG) -> ECP {
    vt_mul2(&G1::from_ecp(p), e, &G1::from_ecp(q), f).to_ecp()
}

/// `[k]P` for a public `k` already in GLV form (width-5 NAF).
pub(crate) fn vt_mul(p: &G1, k: &GlvScalar) -> G1 {
    vt_glv_sum(&[(&GlvTable::new(p, VARIABLE_WINDOW), k)])
}

/// Width-4 NAF of `k`, least significant digit first: digits in {0, ±1, ±3, ±5, ±7}, no two
/// non-zero digits adjacent. 65 digits cover any `u64`.
fn wnaf4(k: u64) -> [i8; 65] {
    let mut out = [0i8; 65];
    let mut k = u128::from(k);
    for d in out.iter_mut() {
        if k == 0 {
            break;
        }
        if k & 1 == 1 {
            // k mod 16 in [−8, 8), odd. The low 4 bits fit an i8 exactly.
            let low = i8::try_from(k & 15).unwrap_or(0);
            let digit = if low >= 8 { low - 16 } else { low };
            *d = digit;
            let magnitude = u128::from(digit.unsigned_abs());
            if digit >= 0 {
                k -= magnitude;
            } else {
                k += magnitude;
            }
        }
        k >>= 1;
    }
    out
}

/// `Σ [kᵢ]Pᵢ` for public 64-bit scalars (see the module docs).
pub fn vt_msm_u64(terms: &[(G1, u64)]) -> G1 {
    // Odd multiples P, 3P, 5P, 7P of every point, and every scalar's digits.
    let mut tables: Vec<Vec<G1>> = Vec::with_capacity(terms.len());
    let mut digits: Vec<[i8; 65]> = Vec::with_capacity(terms.len());
    let mut len = 0usize;
    for (p, k) in terms {
        tables.push(odd_multiples(p, 4));
        let d = wnaf4(*k);
        len = len.max(d.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1));
        digits.push(d);
    }
    let mut acc = G1::IDENTITY;
    for i in (0..len).rev() {
        acc = acc.double();
        for (row, d) in tables.iter().zip(digits.iter()) {
            let digit = d.get(i).copied().unwrap_or(0);
            if digit != 0 {
                acc = Row::Projective(row).add_digit(&acc, digit);
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::{order_minus_one, Scalar};
    use rand_core::SeedableRng;

    /// Signed 512-bit products and sums for the lattice checks below.
    type Signed = (U512, bool);
    fn product(a: &(U256, bool), b: &(U256, bool)) -> Signed {
        (U512::from(a.0.mul_wide(&b.0)), a.1 ^ b.1)
    }
    fn sum(a: Signed, b: Signed) -> Signed {
        match (a.1 == b.1, a.0 >= b.0) {
            (true, _) => (a.0.wrapping_add(&b.0), a.1),
            (false, true) => (a.0.wrapping_sub(&b.0), a.1),
            (false, false) => (b.0.wrapping_sub(&a.0), b.1),
        }
    }

    /// The folding exponent's soundness rests on `(a, b) ↦ a + b·λ mod r` being one-to-one on
    /// pairs of u64: two pairs with one image differ by a non-zero vector of the GLV lattice
    /// L = {(x, y) : x + y·λ ≡ 0 (mod r)} with |x|, |y| < 2^64, so of squared length below
    /// 2^129. miracl's basis spans L (each row maps a point to the identity, so it lies in L,
    /// and its determinant is ±r, the index of L in Z²) and is Gauss-reduced, so its shorter
    /// row is a shortest non-zero vector of L: its squared length must exceed 2^129.
    #[test]
    fn short_halves_name_distinct_scalars() {
        let c = glv_constants();
        let big = |x: &U256| BIG::frombytes(&x.to_be_bytes());
        let p = G1::from_ecp(&ECP::generator().mul(&BIG::new_int(12_345)));
        for row in &c.basis {
            let k = GlvScalar([(big(&row[0].0), row[0].1), (big(&row[1].0), row[1].1)]);
            assert!(bool::from(vt_mul(&p, &k).is_identity()));
            assert!(!bool::from(
                vt_mul(&p, &GlvScalar::new(&big(&row[0].0))).is_identity()
            ));
        }
        let [b1, b2] = &c.basis;
        let (cross, cross_negative) = product(&b2[0], &b1[1]);
        let det = sum(product(&b1[0], &b2[1]), (cross, !cross_negative));
        assert_eq!(det.0, U512::from((c.r, U256::ZERO)));
        let norm = |b: &[(U256, bool); 2]| sum(product(&b[0], &b[0]), product(&b[1], &b[1])).0;
        let (short, long) = if norm(b1) <= norm(b2) {
            (norm(b1), norm(b2))
        } else {
            (norm(b2), norm(b1))
        };
        let dot = sum(product(&b1[0], &b2[0]), product(&b1[1], &b2[1])).0;
        assert!(
            dot.shl_vartime(1) <= short && short <= long,
            "basis not Gauss-reduced"
        );
        assert!(
            short > U512::ONE.shl_vartime(129),
            "a short vector: {} bits",
            short.bits()
        );
        // And a pair in that form multiplies as its halves say: [a]Q + [b]φ(Q).
        let q = G1::from_ecp(&ECP::generator().mul(&BIG::new_int(99)));
        let (a, b) = (0xdead_beef_0123_4567u64, u64::MAX);
        let [(a_big, _), _] = GlvScalar::from_halves(a, 0).0;
        let [_, (b_big, _)] = GlvScalar::from_halves(0, b).0;
        let mut by_parts = q.endo().to_ecp().mul(&b_big);
        by_parts.add(&q.to_ecp().mul(&a_big));
        let halves = vt_mul(&q, &GlvScalar::from_halves(a, b)).to_ecp();
        assert!(halves.equals(&by_parts));
    }

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
            assert!(vt_mul2_ecp(&p, &e, &q, &f).equals(&p.mul2(&e, &q, &f)));
            for [e0, e1] in [glv_split(&e), glv_split(&f)] {
                assert!(e0.0.nbits() <= 129 && e1.0.nbits() <= 129);
            }
        }
        // Edge scalars: 0, 1, r − 1, and s ≥ r (reduced first).
        let p = g.mul(&BIG::new_int(77));
        let rm1 = order_minus_one();
        for e in [BIG::new(), BIG::new_int(1), rm1, r] {
            let three = BIG::new_int(3);
            assert!(vt_mul2_ecp(&p, &e, &g, &three).equals(&p.mul2(&e, &g, &three)));
            assert!(vt_mul(&G1::from_ecp(&p), &GlvScalar::new(&e))
                .to_ecp()
                .equals(&p.mul(&e)));
        }
        assert!(vt_mul2_ecp(&p, &BIG::new(), &g, &BIG::new()).is_infinity());
        // [r − 1]P + [1]P and [1]P + [1](−P): the sums hit P + (−P) and the identity.
        let mut np = p.clone();
        np.neg();
        assert!(vt_mul2_ecp(&p, &rm1, &p, &BIG::new_int(1)).is_infinity());
        assert!(vt_mul2_ecp(&p, &BIG::new_int(1), &np, &BIG::new_int(1)).is_infinity());
        assert!(vt_mul2_ecp(&p, &BIG::new_int(1), &p, &BIG::new_int(1))
            .equals(&p.mul(&BIG::new_int(2))));
        // The identity as a base.
        let inf = ECP::new();
        assert!(vt_mul2_ecp(&inf, &rm1, &p, &BIG::new_int(5)).equals(&p.mul(&BIG::new_int(5))));
    }

    #[test]
    fn division_free_glv_split_gives_miracls_halves() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
        let r = order();
        let rm1 = order_minus_one();
        let mut scalars = vec![BIG::new(), BIG::new_int(1), BIG::new_int(2), rm1, r];
        scalars.extend((0..400).map(|_| Scalar::random(&mut rng).0));
        let g = ECP::generator();
        let phi_g = G1::from_ecp(&g).endo().to_ecp();
        for e in &scalars {
            let fast = glv_split(e);
            let slow = glv_split_miracl(e);
            for (k, _) in &fast {
                assert!(k.nbits() <= 130, "a half of {} bits", k.nbits());
            }
            // [k₀]G + [k₁]φ(G) = [e]G for both splits.
            let point = |h: &[(BIG, bool); 2]| {
                let mut a = g.mul(&h[0].0);
                if h[0].1 {
                    a.neg();
                }
                let mut b = phi_g.mul(&h[1].0);
                if h[1].1 {
                    b.neg();
                }
                a.add(&b);
                a
            };
            let mut reduced = *e;
            reduced.rmod(&r);
            let expect = g.mul(&reduced);
            assert!(point(&fast).equals(&expect));
            assert!(point(&slow).equals(&expect));
            for (a, b) in fast.iter().zip(slow.iter()) {
                assert_eq!(BIG::comp(&a.0, &b.0), 0);
                assert!(a.1 == b.1 || a.0.iszilch());
            }
        }
    }

    #[test]
    fn wide_naf_digits_reconstruct_glv_halves() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        let rm1 = order_minus_one();
        let mut scalars = vec![BIG::new(), BIG::new_int(1), BIG::new_int(255), rm1];
        scalars.extend((0..60).map(|_| Scalar::random(&mut rng).0));
        for e in scalars {
            for (k, _) in glv_split(&e) {
                for w in [VARIABLE_WINDOW, FIXED_WINDOW, 2] {
                    for negate in [false, true] {
                        let d = wnaf(&k, w, negate);
                        // Σ dᵢ·2^i = ±k, checked as Σ positive digits = k + Σ |negative| (or
                        // the other way round when negated); everything stays below 2^140.
                        let mut pos = BIG::new();
                        let mut negs = BIG::new();
                        for (i, &x) in d.iter().enumerate() {
                            let mut t = BIG::new_int(isize::from(x.unsigned_abs()));
                            t.shl(i);
                            if x > 0 {
                                pos.add(&t);
                            } else {
                                negs.add(&t);
                            }
                            pos.norm();
                            negs.norm();
                        }
                        let (mut lhs, rhs) = if negate { (negs, pos) } else { (pos, negs) };
                        let mut expect = k;
                        expect.add(&rhs);
                        expect.norm();
                        lhs.norm();
                        assert_eq!(BIG::comp(&lhs, &expect), 0, "w = {w}");
                        let bound = 1i16 << (w - 1);
                        for (i, &x) in d.iter().enumerate() {
                            if x != 0 {
                                assert!(x % 2 != 0 && i16::from(x).abs() < bound);
                                let end = (i + w as usize).min(d.len());
                                let next = d.get(i + 1..end).unwrap_or(&[]);
                                assert!(next.iter().all(|&y| y == 0), "w = {w}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn glv_sum_with_a_fixed_table_matches_plain() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
        let g = ECP::generator();
        let j = g.mul(&Scalar::random(&mut rng).0);
        let fixed = GlvTable::new_fixed(&G1::from_ecp(&j), FIXED_WINDOW);
        for _ in 0..20 {
            let k = g.mul(&Scalar::random(&mut rng).0);
            let s = Scalar::random(&mut rng).0;
            let c = Scalar::random(&mut rng).0;
            let got = vt_glv_sum(&[
                (&fixed, &GlvScalar::new(&s)),
                (
                    &GlvTable::new(&G1::from_ecp(&k), VARIABLE_WINDOW),
                    &GlvScalar::new(&c),
                ),
            ]);
            assert!(got.to_ecp().equals(&j.mul2(&s, &k, &c)));
        }
        // Edge scalars through the affine (mixed-addition) table, and [s]J − [s]J.
        let rm1 = order_minus_one();
        for s in [BIG::new(), BIG::new_int(1), rm1, order()] {
            let got = vt_glv_sum(&[(&fixed, &GlvScalar::new(&s))]);
            assert!(got.to_ecp().equals(&j.mul(&s)));
            let neg = GlvScalar::new(&BIG::modneg(&s, &order()));
            let jt = GlvTable::new(&G1::from_ecp(&j), VARIABLE_WINDOW);
            let zero = vt_glv_sum(&[(&fixed, &GlvScalar::new(&s)), (&jt, &neg)]);
            assert!(bool::from(zero.is_identity()));
        }
        assert!(bool::from(vt_glv_sum(&[]).is_identity()));
    }

    #[test]
    fn wnaf_digits_reconstruct_the_scalar() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let mut ks = vec![0u64, 1, 7, 8, 15, 16, u64::MAX, u64::MAX - 1, 1 << 63];
        ks.extend((0..200).map(|_| rand_core::RngCore::next_u64(&mut rng)));
        for k in ks {
            let d = wnaf4(k);
            let back: i128 = d
                .iter()
                .rev()
                .fold(0i128, |acc, &x| 2 * acc + i128::from(x));
            assert_eq!(back, i128::from(k), "{k}");
            for pair in d.windows(2) {
                assert!(
                    pair[0] == 0 || pair[1] == 0,
                    "adjacent non-zero digits for {k}"
                );
            }
            assert!(d
                .iter()
                .all(|&x| x == 0 || (x % 2 != 0 && (-7..=7).contains(&x))));
        }
    }

    #[test]
    fn short_msm_matches_muln() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let g = ECP::generator();
        for n in [0usize, 1, 2, 5, 17] {
            let terms: Vec<(ECP, u64)> = (0..n)
                .map(|i| {
                    let p = if i == 2 {
                        ECP::new()
                    } else {
                        g.mul(&Scalar::random(&mut rng).0)
                    };
                    let k = match i {
                        0 => u64::MAX,
                        1 => 0,
                        _ => rand_core::RngCore::next_u64(&mut rng),
                    };
                    (p, k)
                })
                .collect();
            let points: Vec<ECP> = terms.iter().map(|(p, _)| p.clone()).collect();
            let scalars: Vec<BIG> = terms.iter().map(|(_, k)| big_from_u64(*k)).collect();
            let expect = if n == 0 {
                ECP::new()
            } else {
                ECP::muln(n, &points, &scalars)
            };
            let ours: Vec<(G1, u64)> = terms.iter().map(|(p, k)| (G1::from_ecp(p), *k)).collect();
            assert!(vt_msm_u64(&ours).to_ecp().equals(&expect), "n = {n}");
        }
    }
}
