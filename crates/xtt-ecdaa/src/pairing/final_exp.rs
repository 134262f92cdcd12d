//! The BN final exponentiation f^((p¹² − 1)/r), step for step miracl's `pair::fexp` so that
//! the result is the same element: the easy part (p⁶ − 1)(p² + 1) with one inversion and two
//! Frobenius maps, then the hard part from three powers by |u| with cyclotomic squarings.

use super::fp12::Fp12;
use super::miller::pow_u_digits;

/// x^|u| for x in the cyclotomic subgroup (signed digits; x⁻¹ is the conjugate there).
fn pow_u(x: &Fp12) -> Fp12 {
    let inv = x.conj();
    let mut w = *x;
    for d in pow_u_digits() {
        w = w.cyclotomic_sqr();
        match d {
            1 => w = w.mul(x),
            -1 => w = w.mul(&inv),
            _ => {}
        }
    }
    w
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
