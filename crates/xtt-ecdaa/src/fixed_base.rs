//! Constant-time fixed-base scalar multiplication in G1 with precomputed tables.
//!
//! A signer multiplies the same few points over and over (the credential's A, B, C, D and the
//! basename point J), so each gets a table of its odd multiples at every 4-bit position:
//! `T[i][j] = [(2j + 1)·16^i]P`. The scalar is recoded exactly like miracl's `clmul` does for
//! its window method (made odd with a masked correction, then signed odd digits in
//! [−15, 15] over a fixed number of windows), and `[k]P` is the sum of one table entry per
//! position: 66 complete additions and no doublings, about three times faster than `clmul`.
//!
//! Constant time: the recoding runs a fixed number of iterations of limb arithmetic; each
//! table entry is fetched by scanning all eight candidates with masked moves (`ECP::cmove`),
//! the digit's sign is applied with a masked move of the negated point, and miracl's G1
//! addition formulas are complete (no branches on the operands). Memory: 66 × 8 points, about
//! 75 KiB per table.

use miracl_core::fp256bn::big::{self, BIG};
use miracl_core::fp256bn::ecp::ECP;
use zeroize::Zeroize;

/// Number of signed 4-bit windows for a scalar below 2^257 (plus the final top digit).
const WINDOWS: usize = 1 + (big::MODBYTES * 8).div_ceil(4);
/// Odd multiples stored per window.
const ENTRIES: usize = 8;

/// Precomputed odd multiples of one G1 point.
#[derive(Clone)]
pub(crate) struct FixedBase {
    table: Vec<[ECP; ENTRIES]>,
    /// P and [2]P, for the parity correction.
    p: ECP,
    p2: ECP,
}

/// 1 if `a == b` else 0, without branches.
fn ct_eq(a: isize, b: isize) -> isize {
    let x = a ^ b;
    // x == 0 ⇔ (x | −x) is non-negative.
    1 + ((x | x.wrapping_neg()) >> (isize::BITS - 1))
}

impl FixedBase {
    pub(crate) fn new(p: &ECP) -> Self {
        let mut table = Vec::with_capacity(WINDOWS + 1);
        let mut base = p.clone();
        for _ in 0..=WINDOWS {
            let mut twice = base.clone();
            twice.dbl();
            let mut row = [
                ECP::new(),
                ECP::new(),
                ECP::new(),
                ECP::new(),
                ECP::new(),
                ECP::new(),
                ECP::new(),
                ECP::new(),
            ];
            let mut acc = base.clone();
            for slot in row.iter_mut() {
                *slot = acc.clone();
                acc.add(&twice);
            }
            // acc is now [17]base; [16]base = acc − base.
            acc.sub(&base);
            table.push(row);
            base = acc;
        }
        let mut p2 = p.clone();
        p2.dbl();
        FixedBase {
            table,
            p: p.clone(),
            p2,
        }
    }

    /// `[k]P` for any `k < 2^256`, in constant time.
    pub(crate) fn mul(&self, k: &BIG) -> ECP {
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
        let mut corr = self.p.clone();
        corr.cmove(&self.p2, odd);

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

        let mut acc = ECP::new();
        for (row, &d) in self.table.iter().zip(digits.iter()) {
            let neg = d >> (isize::BITS - 1); // −1 if negative, else 0
            let abs = (d ^ neg) - neg;
            let idx = (abs - 1) / 2;
            let mut sel = ECP::new();
            for (j, cand) in (0isize..).zip(row.iter()) {
                sel.cmove(cand, ct_eq(idx, j));
            }
            let mut negsel = sel.clone();
            negsel.neg();
            sel.cmove(&negsel, neg & 1);
            acc.add(&sel);
        }
        acc.sub(&corr);
        digits.zeroize();
        t.w.zeroize();
        t2.w.zeroize();
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::{order, Scalar};
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
        let mut rm1 = r;
        rm1.dec(1);
        rm1.norm();
        edge.push(rm1);
        edge.push(r);
        for e in edge {
            assert!(fb.mul(&e).equals(&p.mul(&e)));
        }
        for _ in 0..50 {
            let k = Scalar::random(&mut rng);
            assert!(fb.mul(&k.0).equals(&p.clmul(&k.0, &r)));
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::scalar::{order, Scalar};
    use miracl_core::fp256bn::pair;
    use rand_core::SeedableRng;
    use std::time::Instant;

    /// Rough primitive timings (`cargo test --release -- --ignored --nocapture timing`).
    #[test]
    #[ignore]
    fn timing_primitives() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let g = ECP::generator();
        let p = g.mul(&Scalar::random(&mut rng).0);
        let q = g.mul(&Scalar::random(&mut rng).0);
        let a = Scalar::random(&mut rng);
        let b = Scalar::random(&mut rng);
        let r = order();
        let n = 200u32;
        let fb = FixedBase::new(&p);
        let time = |name: &str, f: &mut dyn FnMut()| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            println!("{name}: {:?}", t.elapsed() / n);
        };
        time("clmul", &mut || {
            std::hint::black_box(p.clmul(&a.0, &r));
        });
        time("mul", &mut || {
            std::hint::black_box(p.mul(&a.0));
        });
        time("g1mul(GLV)", &mut || {
            std::hint::black_box(pair::g1mul(&p, &a.0));
        });
        time("mul2", &mut || {
            std::hint::black_box(p.mul2(&a.0, &q, &b.0));
        });
        time("vt_mul2 (GLV 4-dim)", &mut || {
            std::hint::black_box(crate::msm::vt_mul2(&p, &a.0, &q, &b.0));
        });
        time("fixed_base", &mut || {
            std::hint::black_box(fb.mul(&a.0));
        });
        time("fixed_base_new", &mut || {
            std::hint::black_box(FixedBase::new(&p));
        });
        time("encode_g1", &mut || {
            std::hint::black_box(crate::encoding::encode_g1(&p.mul2(&a.0, &q, &b.0)));
        });
    }
}
