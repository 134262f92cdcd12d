//! Constant-time fixed-base scalar multiplication in G1 with precomputed tables.
//!
//! A signer multiplies the same few points over and over (the credential's A, B, C, D and the
//! basename point J), so each gets a table of its odd multiples at every 4-bit position:
//! `T[i][j] = [(2j + 1)·16^i]P`, normalized to affine once (one inversion for the whole table).
//! The scalar is recoded exactly like miracl's `clmul` does for its window method (made odd
//! with a masked correction, then signed odd digits in [−15, 15] over a fixed number of
//! windows), and `[k]P` is the sum of one table entry per position: 66 mixed additions and no
//! doublings.
//!
//! Constant time: the recoding runs a fixed number of iterations of limb arithmetic; each
//! table entry is fetched by scanning all eight candidates with masked moves
//! (`ConditionallySelectable`), the digit's sign is applied with a masked negation, and the
//! additions are the complete formulas of [`crate::g1::point`] (no branches on the operands:
//! the accumulator may equal ± the entry, or be the identity, without a special case). The
//! field arithmetic underneath is crypto-bigint's constant-time Montgomery form. Memory:
//! 66 × 8 affine points, about 37 KiB per table.

use crypto_bigint::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use miracl_core::fp256bn::big::{self, BIG};
use miracl_core::fp256bn::ecp::ECP;
use zeroize::Zeroize;

use crate::g1::{G1Affine, G1};

/// Number of signed 4-bit windows for a scalar below 2^257 (plus the final top digit).
const WINDOWS: usize = 1 + (big::MODBYTES * 8).div_ceil(4);
/// Odd multiples stored per window.
const ENTRIES: usize = 8;

/// Precomputed odd multiples of one G1 point.
#[derive(Clone)]
pub struct FixedBase {
    table: Vec<[G1Affine; ENTRIES]>,
    /// P and [2]P, for the parity correction.
    p: G1Affine,
    p2: G1Affine,
}

impl core::fmt::Debug for FixedBase {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FixedBase").finish_non_exhaustive()
    }
}

impl FixedBase {
    /// The table of `p` (≈ 600 additions and one inversion; once per member and point).
    pub fn new(p: &ECP) -> Self {
        let p = G1::from_ecp(p);
        let mut points = Vec::with_capacity((WINDOWS + 1) * ENTRIES + 2);
        let mut base = p;
        for _ in 0..=WINDOWS {
            let twice = base.double();
            let mut acc = base;
            for _ in 0..ENTRIES {
                points.push(acc);
                acc = acc.add(&twice);
            }
            // acc is now [17]base; [16]base = acc − base.
            base = acc.add(&base.neg());
        }
        points.push(p);
        points.push(p.double());
        let affine = G1::batch_normalize(&points);
        let mut rows = affine.chunks_exact(ENTRIES);
        let table = rows
            .by_ref()
            .map(|row| {
                core::array::from_fn(|j| row.get(j).copied().unwrap_or(G1Affine::identity()))
            })
            .collect();
        let rest = rows.remainder();
        let at = |i: usize| rest.get(i).copied().unwrap_or(G1Affine::identity());
        FixedBase {
            table,
            p: at(0),
            p2: at(1),
        }
    }

    /// `[k]P` for any `k < 2^256`, in constant time.
    pub fn mul(&self, k: &BIG) -> G1 {
        // Make the multiplier odd: t = k + 1 (correction P) if k is even, k + 2 (correction
        // 2P) if odd.
        let mut t = *k;
        t.norm();
        let odd = t.parity();
        t.inc(1);
        t.norm();
        let mut t2 = t;
        t2.inc(1);
        t2.norm();
        t.cmove(&t2, odd);
        let odd = Choice::from(u8::from(odd == 1));
        let mut corr = G1Affine::conditional_select(&self.p, &self.p2, odd).neg();

        let mut digits = [0isize; WINDOWS + 1];
        for d in digits.iter_mut().take(WINDOWS) {
            let w = t.lastbits(5) - 16;
            t.dec(w);
            t.norm();
            t.fshr(4);
            *d = w;
        }
        if let Some(top) = digits.get_mut(WINDOWS) {
            *top = t.lastbits(5);
        }

        let mut acc = G1::IDENTITY;
        let mut sel = G1Affine::identity();
        for (row, &d) in self.table.iter().zip(digits.iter()) {
            let neg = d >> (isize::BITS - 1); // −1 if negative, else 0
            let abs = (d ^ neg) - neg;
            // Odd digits in [1, 15]: idx in [0, 7]. The cast only drops the sign of 0.
            let idx = ((abs - 1) / 2).unsigned_abs() as u64;
            for (j, cand) in (0u64..).zip(row.iter()) {
                sel.conditional_assign(cand, idx.ct_eq(&j));
            }
            sel.conditional_negate(Choice::from(u8::from(neg != 0)));
            acc = acc.add_affine(&sel);
        }
        acc = acc.add_affine(&corr);
        // What miracl's version wiped (digits, t, t2), plus the selected entries.
        digits.zeroize();
        sel.zeroize();
        corr.zeroize();
        t.w.zeroize();
        t2.w.zeroize();
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::{order, order_minus_one, Scalar};
    use rand_core::SeedableRng;

    #[test]
    fn matches_clmul_on_random_and_edge_scalars() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let g = ECP::generator();
        let p = g.mul(&BIG::new_int(12345));
        let fb = FixedBase::new(&p);
        let r = order();
        let mut edge = vec![
            BIG::new(),
            BIG::new_int(1),
            BIG::new_int(2),
            BIG::new_int(15),
        ];
        let rm1 = order_minus_one();
        edge.push(rm1);
        edge.push(r);
        for e in edge {
            assert!(fb.mul(&e).to_ecp().equals(&p.mul(&e)));
        }
        for _ in 0..50 {
            let k = Scalar::random(&mut rng);
            assert!(fb.mul(&k.0).to_ecp().equals(&p.clmul(&k.0, &r)));
        }
        // The identity as base (never a credential point, but the walk must not break).
        let id = FixedBase::new(&ECP::new());
        assert!(bool::from(id.mul(&BIG::new_int(5)).is_identity()));
    }
}
