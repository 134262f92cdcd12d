//! Generators and the scalar multiplications this crate uses, split by whether the scalar is
//! secret.
//!
//! Which miracl_core routine is constant-time (read from miracl_core 2.7 `ecp.rs`/`ecp2.rs`):
//!
//! * `ECP::clmul(e, maxe)`: fixed signed 4-bit windows over `nbits(e | maxe)` bits, table lookups
//!   through `selector` (masked `cmove`), complete addition formulas. With `maxe = r` the loop
//!   length no longer depends on `e`: **constant-time**. Used for the one-off secret G1
//!   products ([`ct_mul_g1`]: member key, pseudonym, credential issue, join commitments); the
//!   signer's per-signature products are `fixed_base` walks on `g1`, constant-time as well.
//! * `ECP2::mul(e)`: the same window method but the loop length is `nbits(e)`, so it leaks the
//!   bit length of `e`. [`ct_mul_g2`] therefore first replaces `e` by `e + r` or `e + 2r`
//!   (chosen with a masked move), which is always exactly 257 bits long and gives the same
//!   point on the order-r subgroup: **constant-time**.
//! * `ECP::mul2`, `ECP::muln`, `pair::g1mul`/`g2mul` (GLV/GS decompositions with data-dependent
//!   branches) and `ECP::mul`: **variable-time**; used only with public scalars (verification,
//!   proof checks) or public-to-be small random exponents. The verifier's G1 products are
//!   `msm`'s variable-time GLV/wNAF routines on `g1`, public scalars only.

use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::ecp::ECP;
use miracl_core::fp256bn::ecp2::ECP2;

use crate::scalar::{order, Scalar};

/// The G1 generator P1 = (1, 2).
pub(crate) fn p1() -> ECP {
    ECP::generator()
}

/// The G2 generator P2 (ECDAA.md §2; miracl's `fp256bn` has the same constants).
pub(crate) fn p2() -> ECP2 {
    ECP2::generator()
}

/// Constant-time `[k]P` in G1 for a secret `k`.
pub(crate) fn ct_mul_g1(p: &ECP, k: &Scalar) -> ECP {
    p.clmul(&k.0, &order())
}

/// Constant-time `[k]Q` in G2 for a secret `k` (see module docs for the length fix).
pub(crate) fn ct_mul_g2(q: &ECP2, k: &Scalar) -> ECP2 {
    let r = order();
    let mut one_r = k.0;
    one_r.add(&r);
    one_r.norm();
    let mut two_r = one_r;
    two_r.add(&r);
    two_r.norm();
    // k + r has 257 bits iff bit 256 is set; otherwise k + 2r does.
    let use_one = one_r.bit(256);
    let mut e = two_r;
    e.cmove(&one_r, use_one);
    let out = q.mul(&e);
    let mut wipe = [one_r, two_r, e];
    for b in wipe.iter_mut() {
        zeroize::Zeroize::zeroize(&mut b.w);
    }
    out
}

/// Variable-time `[e]P + [f]Q` in G1 for public scalars (GLV + Shamir, see `msm`).
pub(crate) fn vt_mul2_g1(p: &ECP, e: &BIG, q: &ECP, f: &BIG) -> ECP {
    crate::msm::vt_mul2_ecp(p, e, q, f)
}

/// `r − c` for a public `c < r`, used to turn a subtraction into a `mul2` addition.
pub(crate) fn neg_mod_r(c: &BIG) -> BIG {
    BIG::modneg(c, &order())
}
