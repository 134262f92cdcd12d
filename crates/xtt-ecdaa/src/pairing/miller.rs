//! The optimal-ate Miller loop of FP256BN from miracl's precomputed G2 lines, evaluated at G1
//! points on the 4×64-bit field; a product of pairings shares one chain of squarings.
//!
//! miracl's `pair::precomp` stores, per loop step, each line as the pair (aa, bb) of F_p²
//! values (`pack`); at a G1 point (x, y) the line is `(aa·y + bb·j) + (x·j)·w²` (`unpack`),
//! or, divided by x, `(aa·(y/x) + bb·(1/x)·j) + j·w²` (the verifier's unit form, from 1/x and
//! y/x).
//! The step order is miracl's: for every digit of the signed expansion of 6u + 2 from the top
//! (excluding the leading one), a doubling line and, for a nonzero digit, an addition line; after
//! the loop a conjugation (u < 0) and the two R-ate fix-up lines. The loop digits come from u
//! here and a test checks that they reproduce miracl's table length and values.

use super::fp12::{Fp12, Line, LineValue, UnitLine};
use super::fp2::{Fp2, FP2_LEN};
use super::fp4::{Fp4, FP4_LEN};
use crate::g1::field::Fp;
use miracl_core::fp256bn::fp4::FP4;

/// |u| of FP256BN (miracl's `rom::CURVE_BNX`; u is negative).
pub(crate) const BN_U: u64 = 0x6882_F5C0_30B0_A801;

/// Signed digits of `e` as miracl walks them (`3e` against `e`, bits `nbits(3e) − 2 .. 1`),
/// most significant first, and how many there are. Only evaluated in constants, so an index out
/// of range would be a compile error, not a panic.
#[allow(clippy::indexing_slicing)]
const fn signed_digits(e: u128) -> ([i8; 128], usize) {
    let e3 = 3 * e;
    let nb = 128 - e3.leading_zeros() as usize;
    let mut out = [0i8; 128];
    let mut k = 0;
    let mut i = nb - 2;
    while i >= 1 {
        out[k] = ((e3 >> i) & 1) as i8 - ((e >> i) & 1) as i8;
        k += 1;
        i -= 1;
    }
    (out, k)
}

/// The Miller loop runs over 6|u| − 2 (6u + 2 for u < 0, up to sign).
const LOOP: ([i8; 128], usize) = signed_digits(6 * BN_U as u128 - 2);

pub(crate) fn loop_digits() -> &'static [i8] {
    LOOP.0.get(..LOOP.1).unwrap_or(&[])
}

/// miracl's line table of one G2 point, converted once.
#[derive(Clone, Debug)]
pub(crate) struct PreparedLines(Vec<(Fp2, Fp2)>);

impl PreparedLines {
    pub(crate) fn from_miracl(table: &[FP4]) -> PreparedLines {
        PreparedLines(
            table
                .iter()
                .map(|l| {
                    let mut bytes = [0u8; FP4_LEN];
                    let mut l = *l;
                    l.reduce();
                    l.tobytes(&mut bytes);
                    let f = Fp4::from_bytes(&bytes);
                    (f.a, f.b)
                })
                .collect(),
        )
    }

    #[inline]
    pub(crate) fn at(&self, k: usize, x: &Fp, y: &Fp) -> LineValue {
        let (aa, bb) = self.line(k);
        LineValue {
            l: Fp4::new(aa.mul_fp(y), bb),
            x: *x,
        }
    }

    /// Line k at the point with 1/x = `u` and y/x = `v`, divided by x:
    /// `(aa·v + bb·u·j) + j·w²`.
    #[inline]
    pub(crate) fn at_unit(&self, k: usize, u: &Fp, v: &Fp) -> UnitLine {
        let (aa, bb) = self.line(k);
        UnitLine {
            l: Fp4::new(aa.mul_fp(v), bb.mul_fp(u)),
        }
    }

    #[inline]
    fn line(&self, k: usize) -> (Fp2, Fp2) {
        self.0.get(k).copied().unwrap_or((Fp2::ZERO, Fp2::ZERO))
    }

    /// Whether the table has exactly as many lines as the loop consumes.
    pub(crate) fn is_complete(&self) -> bool {
        let digits = loop_digits();
        let needed = digits.len() + digits.iter().filter(|d| **d != 0).count() + 2;
        self.0.len() == needed
    }
}

const _: () = assert!(FP4_LEN == 2 * FP2_LEN);

/// ∏ f_{Q_k}(P_k) before the final exponentiation, one term per G1 point other than the
/// identity (points at infinity contribute 1 and are left out by the caller, as in miracl's
/// `another_pc`); `at(term, k)` is line k of the term's G2 point at its G1 point, in either
/// form (the unit form differs by factors the final exponentiation removes).
pub(crate) fn miller_product<T, L: Line>(terms: &[T], at: impl Fn(&T, usize) -> L) -> Fp12 {
    let mut f = Fp12::ONE;
    let mut k = 0;
    let mut started = false;
    // At most two lines per point per step.
    let mut step: Vec<L> = Vec::with_capacity(2 * terms.len());
    for d in loop_digits() {
        if started {
            f = f.sqr();
        }
        step.clear();
        for t in terms {
            step.push(at(t, k));
            if *d != 0 {
                step.push(at(t, k + 1));
            }
            started = true;
        }
        f = mul_by_lines(f, &step);
        k += if *d != 0 { 2 } else { 1 };
    }
    f = f.conj();
    step.clear();
    for t in terms {
        step.push(at(t, k));
        step.push(at(t, k + 1));
    }
    mul_by_lines(f, &step)
}

/// f times all `lines`, two at a time (line × line, then the pair into f), the odd one alone.
fn mul_by_lines<L: Line>(mut f: Fp12, lines: &[L]) -> Fp12 {
    let mut pairs = lines.chunks_exact(2);
    for pair in &mut pairs {
        if let [l1, l2] = pair {
            f = f.mul_by_line_pair(&l1.pair(l2));
        }
    }
    for l in pairs.remainder() {
        f = l.times(&f);
    }
    f
}
