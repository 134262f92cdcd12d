//! The BN final exponentiation f^((p¹² − 1)/r), step for step miracl's `pair::fexp` so that
//! the result is the same element: the easy part (p⁶ − 1)(p² + 1) with one inversion and two
//! Frobenius maps, then the hard part from three powers by |u| with cyclotomic squarings.

use super::fp12::Fp12;
use super::miller::BN_U;

/// Width-3 NAF of `e`, most significant digit first: digits in {0, ±1, ±3}, at most one
/// nonzero in any three in a row. For |u| that is 13 nonzero digits against the plain NAF's 18,
/// so 12 products instead of 17 for one squaring and one product of precomputation. Only
/// evaluated in constants, so an index out of range would be a compile error, not a panic.
#[allow(clippy::indexing_slicing)]
const fn wnaf3(mut e: u64) -> ([i8; 66], usize) {
    let mut lsb_first = [0i8; 66];
    let mut n = 0;
    while e != 0 {
        let mut d = 0i8;
        if e & 1 == 1 {
            d = (e & 7) as i8;
            if d >= 4 {
                d -= 8;
            }
            e = if d > 0 { e - d as u64 } else { e + (-d) as u64 };
        }
        lsb_first[n] = d;
        n += 1;
        e >>= 1;
    }
    let mut out = [0i8; 66];
    let mut k = 0;
    while k < n {
        out[k] = lsb_first[n - 1 - k];
        k += 1;
    }
    (out, n)
}

const POW_U: ([i8; 66], usize) = wnaf3(BN_U);

fn pow_u_digits() -> &'static [i8] {
    POW_U.0.get(..POW_U.1).unwrap_or(&[])
}

/// x^|u| for x in the cyclotomic subgroup, where x⁻¹ is the conjugate (so negative digits
/// cost nothing extra): x and x³ are the table.
fn pow_u(x: &Fp12) -> Fp12 {
    let x3 = x.cyclotomic_sqr().mul(x);
    let pick = |d: i8| match d {
        1 => *x,
        -1 => x.conj(),
        3 => x3,
        _ => x3.conj(),
    };
    let mut w: Option<Fp12> = None;
    for &d in pow_u_digits() {
        if let Some(acc) = w.as_mut() {
            *acc = acc.cyclotomic_sqr();
        }
        if d != 0 {
            w = Some(match w {
                Some(acc) => acc.mul(&pick(d)),
                None => pick(d),
            });
        }
    }
    w.unwrap_or(Fp12::ONE)
}

pub(crate) fn final_exponentiation(m: &Fp12) -> Fp12 {
    // Easy part.
    let t = m.conj().mul(&m.inverse());
    let r = t.frob().frob().mul(&t);

    // Hard part, in miracl's order.
    let mut lv = r.frob();
    let x0 = lv.frob();
    lv = lv.mul(&r);
    let x0 = x0.mul(&lv).frob();
    let x1 = r.conj();
    let mut x4 = pow_u(&r);
    let x3 = x4.frob();
    let mut x2 = pow_u(&x4);
    let x5 = x2.conj();
    lv = pow_u(&x2);
    x2 = x2.frob();
    x4 = x4.mul(&x2.conj());
    x2 = x2.frob();
    lv = lv.mul(&lv.frob());
    lv = lv.cyclotomic_sqr().mul(&x4).mul(&x5);
    let mut r = x3.mul(&x5).mul(&lv);
    lv = lv.mul(&x2);
    r = r.cyclotomic_sqr().mul(&lv).cyclotomic_sqr();
    let lv = r.mul(&x1).cyclotomic_sqr();
    r.mul(&x0).mul(&lv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_3_naf_of_u_is_valid_and_short() {
        let digits = pow_u_digits();
        let value = digits.iter().fold(0i128, |acc, &d| 2 * acc + i128::from(d));
        assert_eq!(value, i128::from(BN_U));
        assert!(digits.iter().all(|d| matches!(d, 0 | 1 | -1 | 3 | -3)));
        assert!(digits.first().is_some_and(|d| *d > 0));
        for w in digits.windows(3) {
            assert!(w.iter().filter(|d| **d != 0).count() <= 1, "{w:?}");
        }
        assert_eq!(digits.iter().filter(|d| **d != 0).count(), 13);
    }
}
