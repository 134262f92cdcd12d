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
//! [`vt_msm_u64`] sums many products with short (64-bit) public scalars, the random exponents
//! of batch verification: Straus's interleaving with one shared doubling chain and a width-4
//! NAF per scalar (odd multiples ±P, ±3P, ±5P, ±7P per point), about 64 doublings plus 17
//! additions per point, where miracl's `ECP::muln` (Pippenger with 16 buckets per 4-bit
//! window) spends 16 × (n + 31) additions, four times as much for the batch sizes a server sees.
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
pub(crate) fn vt_msm_u64(terms: &[(ECP, u64)]) -> ECP {
    // Odd multiples P, 3P, 5P, 7P of every point, and every scalar's digits.
    let mut tables: Vec<[ECP; 4]> = Vec::with_capacity(terms.len());
    let mut digits: Vec<[i8; 65]> = Vec::with_capacity(terms.len());
    let mut len = 0usize;
    for (p, k) in terms {
        let mut twice = p.clone();
        twice.dbl();
        let mut row: [ECP; 4] = core::array::from_fn(|_| p.clone());
        for i in 1..4 {
            let (done, rest) = row.split_at_mut(i);
            if let (Some(prev), Some(slot)) = (done.last(), rest.first_mut()) {
                let mut next = prev.clone();
                next.add(&twice);
                *slot = next;
            }
        }
        tables.push(row);
        let d = wnaf4(*k);
        len = len.max(d.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1));
        digits.push(d);
    }
    let mut acc = ECP::new();
    for i in (0..len).rev() {
        acc.dbl();
        for (row, d) in tables.iter().zip(digits.iter()) {
            let digit = d.get(i).copied().unwrap_or(0);
            let Some(point) = row.get(usize::from(digit.unsigned_abs() / 2)) else {
                continue;
            };
            if digit > 0 {
                acc.add(point);
            } else if digit < 0 {
                acc.sub(point);
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
                    let p = g.mul(&Scalar::random(&mut rng).0);
                    let k = match i {
                        0 => u64::MAX,
                        1 => 0,
                        _ => rand_core::RngCore::next_u64(&mut rng),
                    };
                    (p, k)
                })
                .collect();
            let points: Vec<ECP> = terms.iter().map(|(p, _)| p.clone()).collect();
            let scalars: Vec<BIG> = terms
                .iter()
                .map(|(_, k)| {
                    let mut b = [0u8; 32];
                    b[24..].copy_from_slice(&k.to_be_bytes());
                    BIG::frombytes(&b)
                })
                .collect();
            let expect = if n == 0 {
                ECP::new()
            } else {
                ECP::muln(n, &points, &scalars)
            };
            assert!(vt_msm_u64(&terms).equals(&expect), "n = {n}");
        }
    }
}
