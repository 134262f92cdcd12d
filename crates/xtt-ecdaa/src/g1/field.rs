//! The base field F_p of FP256BN (p = miracl's `rom::MODULUS`) in constant-time 4×64-bit
//! Montgomery form, from crypto-bigint's `Residue` with the modulus fixed at compile time.
//!
//! Why this crate: measured on this machine (field multiplication, CPU time per operation),
//! miracl's `FP::mul` (5×56-bit limbs) takes 45–56 ns, crypto-bigint's `Residue<_, 4>`
//! 25–31 ns, ark-ff's `MontConfig` 21–30 ns and ff_derive's `PrimeField` 31–39 ns. ff_derive
//! needs `2p` to fit its limbs, and p ≈ 2^256 − 2^206 forces it onto five limbs; ark-ff is about
//! as fast as crypto-bigint but reduces with a data-dependent branch and inverts in variable
//! time, while the signer needs constant time. crypto-bigint is constant-time throughout
//! (masked final subtraction, fixed-iteration inversion) and already in the dependency tree.
//! The hot products (the pairing tower's F_p², the G1 doubling and mixed addition) go through
//! [`fp_mul`], a fused, inlined form of the same Montgomery product; the full G1 addition
//! through [`fp_mul_outlined`], the same product behind a call. F_p²'s sums and differences use
//! [`fp_add`] and [`fp_sub`]; the G1 formulas keep `Fp::add` and `Fp::sub`, with which they ran
//! 3–10 % faster (criterion: the inlined forms there cost registers the products need).

use crypto_bigint::modular::constant_mod::{Residue, ResidueParams};
use crypto_bigint::{impl_modulus, Encoding, U256};
use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::fp::FP;

use crate::scalar::{big_to_bytes, SCALAR_LEN};

impl_modulus!(
    Fp256bnModulus,
    U256,
    "fffffffffffcf0cd46e5f25eee71a49f0cdc65fb12980a82d3292ddbaed33013"
);

/// An element of F_p in Montgomery form.
pub type Fp = Residue<Fp256bnModulus, { U256::LIMBS }>;

/// β, a primitive cube root of unity in F_p (miracl's `rom::CRU`): φ(x, y) = (β·x, y) is the
/// GLV endomorphism of G1.
pub(crate) const BETA: Fp = Fp::new(&U256::from_be_hex(
    "00000000000000013988e140921018659bcdd79df1932d1edb1c0a24a3a1b807",
));

/// p as four little-endian words, for the fused operations below.
const P_WORDS: [u64; 4] = Fp256bnModulus::MODULUS.to_words();

/// `a + b` over four words and the carry out (0 or 1).
#[inline(always)]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const fn add_words(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let mut s = [0u64; 4];
    let mut carry: u64 = 0;
    let mut j = 0;
    while j < 4 {
        let v = a[j] as u128 + b[j] as u128 + carry as u128;
        s[j] = v as u64;
        carry = (v >> 64) as u64;
        j += 1;
    }
    (s, carry)
}

/// `a − b` over four words and the borrow out (0 or 1).
#[inline(always)]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const fn sub_words(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let mut d = [0u64; 4];
    let mut borrow: u64 = 0;
    let mut j = 0;
    while j < 4 {
        let v = (a[j] as u128).wrapping_sub(b[j] as u128 + borrow as u128);
        d[j] = v as u64;
        borrow = ((v >> 64) as u64) & 1;
        j += 1;
    }
    (d, borrow)
}

/// The field element of `t = high·2^256 + words` for `t < 2p` (`high` is 0 or 1): p is
/// subtracted once, under a mask, when `t ≥ p`, i.e. when `high` is set or subtracting p from
/// `words` does not borrow. Constant-time. The last step of [`fp_mul`], [`fp_add`] and
/// [`mul_by_3b`].
#[inline(always)]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
const fn below_2p_reduced(words: [u64; 4], high: u64) -> Fp {
    let (reduced, borrow) = sub_words(&words, &P_WORDS);
    let mask = 0u64.wrapping_sub((high | (borrow ^ 1)) & 1);
    let mut out = [0u64; 4];
    let mut j = 0;
    while j < 4 {
        out[j] = (reduced[j] & mask) | (words[j] & !mask);
        j += 1;
    }
    Fp::from_montgomery(U256::from_words(out))
}

/// 9·a, i.e. [3·b]a for the curve y² = x³ + 3, as the complete formulas use it (once per
/// doubling, twice per addition). Multiplying by a small integer commutes with the Montgomery
/// form, so this works on the stored words directly.
///
/// Why not four modular additions (2a, 4a, 8a, 8a + a): each of crypto-bigint's is three carry
/// chains (add, subtract p, add p back under a mask), and the four together were 4 % of the
/// batched server's samples. Here
/// `t = 9a < 2^260` is one multiply row; `t = h·2^256 + l ≡ l + h·c (mod p)` with
/// `c = 2^256 − p < 2^210` and `h ≤ 8`, which is below `2^256 + 2^213 < 2p`, so one masked
/// subtraction of p finishes. Constant-time: no branch or index depends on `a`.
#[inline]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
pub(crate) fn mul_by_3b(a: &Fp) -> Fp {
    const C: [u64; 4] = U256::ZERO.wrapping_sub(&Fp256bnModulus::MODULUS).to_words();
    let a = a.as_montgomery().to_words();
    // t = 9a: low four words in `l`, the top word (at most 8) in `h`.
    let mut l = [0u64; 4];
    let mut carry: u64 = 0;
    for j in 0..4 {
        let v = u128::from(a[j]) * 9 + u128::from(carry);
        l[j] = v as u64;
        carry = (v >> 64) as u64;
    }
    let h = carry;
    // r = l + h·c, five words (the fifth is 0 or 1).
    let mut r = [0u64; 5];
    let mut carry: u64 = 0;
    for j in 0..4 {
        let v = u128::from(l[j]) + u128::from(h) * u128::from(C[j]) + u128::from(carry);
        r[j] = v as u64;
        carry = (v >> 64) as u64;
    }
    r[4] = carry;
    below_2p_reduced([r[0], r[1], r[2], r[3]], r[4])
}

/// a·b by a fused 4×64-bit CIOS Montgomery product (one multiply row and one reduction row per
/// word, a fifth and sixth word for carries since p > 2^255), inlined; constant-time (masked
/// final subtraction). Same result as `Fp::mul`.
///
/// Why not `Fp::mul`: crypto-bigint computes the 512-bit product and then calls its
/// Montgomery reduction out of line, and that pair was 39 % of the plain server's samples;
/// inlined and fused, the pairing tower and the G1 doublings run 15–20 % faster (criterion).
/// The indices are constants below 6 and the `as u64` casts keep the low word of a 128-bit
/// sum on purpose.
#[inline(always)]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
pub(crate) const fn fp_mul(a: &Fp, b: &Fp) -> Fp {
    const INV: u64 = Fp256bnModulus::MOD_NEG_INV.0;
    let a = a.as_montgomery().to_words();
    let b = b.as_montgomery().to_words();
    let mut t = [0u64; 6];
    let mut i = 0;
    while i < 4 {
        let mut c: u64 = 0;
        let mut j = 0;
        while j < 4 {
            let v = t[j] as u128 + (a[j] as u128) * (b[i] as u128) + c as u128;
            t[j] = v as u64;
            c = (v >> 64) as u64;
            j += 1;
        }
        let v = t[4] as u128 + c as u128;
        t[4] = v as u64;
        t[5] = (v >> 64) as u64;
        let m = t[0].wrapping_mul(INV);
        let v = t[0] as u128 + (m as u128) * (P_WORDS[0] as u128);
        let mut c = (v >> 64) as u64;
        let mut j = 1;
        while j < 4 {
            let v = t[j] as u128 + (m as u128) * (P_WORDS[j] as u128) + c as u128;
            t[j - 1] = v as u64;
            c = (v >> 64) as u64;
            j += 1;
        }
        let v = t[4] as u128 + c as u128;
        t[3] = v as u64;
        t[4] = t[5] + (v >> 64) as u64;
        i += 1;
    }
    below_2p_reduced([t[0], t[1], t[2], t[3]], t[4])
}

/// a + b: one carry chain, one trial subtraction of p and a masked select, inlined;
/// constant-time. Same result as `Fp::add`, which takes a third chain (it subtracts p, then
/// adds it back under a mask) and was not always inlined in the pairing tower.
#[inline(always)]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
pub(crate) const fn fp_add(a: &Fp, b: &Fp) -> Fp {
    let (s, carry) = add_words(&a.as_montgomery().to_words(), &b.as_montgomery().to_words());
    below_2p_reduced(s, carry)
}

/// a − b: one borrow chain, then p added back under the borrow's mask, inlined; constant-time.
/// Same result as `Fp::sub`.
#[inline(always)]
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]
pub(crate) const fn fp_sub(a: &Fp, b: &Fp) -> Fp {
    let (d, borrow) = sub_words(&a.as_montgomery().to_words(), &b.as_montgomery().to_words());
    let mask = 0u64.wrapping_sub(borrow);
    let masked_p = [
        P_WORDS[0] & mask,
        P_WORDS[1] & mask,
        P_WORDS[2] & mask,
        P_WORDS[3] & mask,
    ];
    // a − b + p < p when it borrowed: the carry out of this sum is the 2^256 the borrow lent.
    let (out, _) = add_words(&d, &masked_p);
    Fp::from_montgomery(U256::from_words(out))
}

/// [`fp_mul`] behind a call, for formulas with many live temporaries: the complete addition's
/// twelve products inlined spill registers and ran 13 % slower than with `Fp::mul`, while
/// as calls to the fused product they run 9–13 % faster (criterion `g1_point/add`). The
/// doubling and the mixed addition are faster with the products inlined.
#[inline(never)]
pub(crate) fn fp_mul_outlined(a: &Fp, b: &Fp) -> Fp {
    fp_mul(a, b)
}

/// 32 big-endian bytes of the canonical value (below p).
pub(crate) fn to_be_bytes(a: &Fp) -> [u8; SCALAR_LEN] {
    a.retrieve().to_be_bytes()
}

/// From 32 big-endian bytes (reduced mod p if not below p).
pub(crate) fn from_be_slice(bytes: &[u8]) -> Fp {
    Fp::new(&U256::from_be_slice(bytes))
}

/// The same element as a miracl field element (for differential tests and the edges).
#[cfg(test)]
pub(crate) fn to_miracl(a: &Fp) -> FP {
    FP::new_big(&to_big(a))
}

/// From a miracl field element (any internal excess; `redc` reduces fully).
pub(crate) fn from_miracl(f: &FP) -> Fp {
    from_big(&f.redc())
}

/// From a miracl `BIG` below 2^256 (reduced mod p if it is not below p).
pub(crate) fn from_big(b: &BIG) -> Fp {
    Fp::new(&U256::from_be_bytes(big_to_bytes(b)))
}

/// The canonical value as a miracl `BIG`.
pub(crate) fn to_big(a: &Fp) -> BIG {
    BIG::frombytes(&to_be_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::modulus;
    use miracl_core::fp256bn::rom;
    use rand_core::{RngCore, SeedableRng};

    fn random_pair(rng: &mut impl RngCore) -> (Fp, FP) {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        let big = BIG::frombytes(&b);
        let mut m = FP::new_big(&big);
        m.reduce();
        (from_big(&big), m)
    }

    fn same(a: &Fp, m: &FP) -> bool {
        BIG::comp(&to_big(a), &m.redc()) == 0
    }

    #[test]
    fn times_nine_matches_four_additions() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(23);
        let p = Fp256bnModulus::MODULUS;
        let by_additions = |a: &Fp| {
            let a2 = a.add(a);
            let a4 = a2.add(&a2);
            a4.add(&a4).add(a)
        };
        // Montgomery words 0, 1, p − 1, p − 2, and words around ⌊k·p / 9⌋ where 9a crosses a
        // multiple of p (the final subtraction is or is not due).
        let mut words = vec![U256::ZERO, U256::ONE, p.wrapping_sub(&U256::ONE)];
        words.push(p.wrapping_sub(&U256::from_u64(2)));
        let nine = crypto_bigint::NonZero::new(U256::from_u64(9)).unwrap();
        let (p9, rem) = p.div_rem(&nine);
        let rem = rem.as_words()[0];
        for k in 1..9u64 {
            // ⌊k·p / 9⌋ without a wide product.
            let q = p9
                .wrapping_mul(&U256::from_u64(k))
                .wrapping_add(&U256::from_u64(rem * k / 9));
            for d in 0..3u64 {
                words.push(q.wrapping_add(&U256::from_u64(d)));
                words.push(q.wrapping_sub(&U256::from_u64(d + 1)));
            }
        }
        // Words whose 9a lies just below (h + 1)·2^256: then l + h·c carries into a fifth
        // word, which random words almost never reach (a chance of about 2^-44).
        // ⌊((h + 1)·2^256 − 1) / 9⌋ = (h + 1)·Q + ⌊((h + 1)·R + h) / 9⌋ for 2^256 − 1 = 9Q + R.
        let (big_q, big_r) = U256::MAX.div_rem(&nine);
        let big_r = big_r.as_words()[0];
        for h in 1..8u64 {
            let top = big_q
                .wrapping_mul(&U256::from_u64(h + 1))
                .wrapping_add(&U256::from_u64(((h + 1) * big_r + h) / 9));
            for m in 0..3u64 {
                words.push(top.wrapping_sub(&U256::from_u64(m)));
            }
        }
        for _ in 0..5_000 {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            words.push(*Fp::new(&U256::from_be_slice(&b)).as_montgomery());
        }
        for w in words {
            let a = Fp::from_montgomery(w);
            assert_eq!(mul_by_3b(&a), by_additions(&a), "{w}");
        }
    }

    /// Montgomery words where carries, borrows and final subtractions decide (0, 1, p − 1 …
    /// p − 4, ⌊p/2⌋ and ⌊p/2⌋ + 1, and the elements 1 and −1), then `n` random elements.
    fn edge_and_random_values(seed: u64, n: usize) -> Vec<Fp> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let p = Fp256bnModulus::MODULUS;
        let half = p.shr_vartime(1);
        let mut words = vec![U256::ZERO, U256::ONE, half, half.wrapping_add(&U256::ONE)];
        words.extend((1..=4u64).map(|k| p.wrapping_sub(&U256::from_u64(k))));
        let mut vals: Vec<Fp> = words.into_iter().map(Fp::from_montgomery).collect();
        vals.extend([Fp::ONE, Fp::ONE.neg()]);
        for _ in 0..n {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            vals.push(Fp::new(&U256::from_be_slice(&b)));
        }
        vals
    }

    #[test]
    fn fused_sum_and_difference_match_crypto_bigint() {
        let vals = edge_and_random_values(24, 400);
        for a in &vals {
            for b in &vals {
                assert_eq!(fp_add(a, b), a.add(b));
                assert_eq!(fp_sub(a, b), a.sub(b));
            }
        }
    }

    #[test]
    fn fused_product_matches_crypto_bigint() {
        let vals = edge_and_random_values(22, 2_000);
        for (i, a) in vals.iter().enumerate() {
            for b in vals.iter().skip(i % 97).step_by(97).take(24) {
                assert_eq!(fp_mul(a, b), a.mul(b));
            }
            assert_eq!(fp_mul(a, a), a.square());
        }
    }

    #[test]
    fn arithmetic_matches_miracl() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
        let mut pm1 = modulus();
        pm1.dec(1);
        pm1.norm();
        let mut vals: Vec<(Fp, FP)> = (0..40).map(|_| random_pair(&mut rng)).collect();
        for edge in [BIG::new(), BIG::new_int(1), BIG::new_int(2), pm1] {
            vals.push((from_big(&edge), FP::new_big(&edge)));
        }
        for (a, ma) in &vals {
            assert!(same(a, ma));
            let mut sq = *ma;
            sq.sqr();
            assert!(same(&a.square(), &sq));
            let mut m9 = *ma;
            m9.imul(9);
            assert!(same(&mul_by_3b(a), &m9));
            let mut n = *ma;
            n.neg();
            n.reduce();
            assert!(same(&a.neg(), &n));
            let (inv, ok) = a.invert();
            if ma.iszilch() {
                assert!(!bool::from(crypto_bigint::subtle::Choice::from(ok)));
            } else {
                let mut mi = *ma;
                mi.inverse(None);
                assert!(same(&inv, &mi));
            }
            for (b, mb) in vals.iter().take(6) {
                let mut p = *ma;
                p.mul(mb);
                assert!(same(&a.mul(b), &p));
                let mut s = *ma;
                s.add(mb);
                s.reduce();
                assert!(same(&a.add(b), &s));
                let mut d = *ma;
                d.sub(mb);
                d.reduce();
                assert!(same(&a.sub(b), &d));
            }
        }
    }

    #[test]
    fn constants_and_byte_conversions() {
        let cru = FP::new_big(&BIG::new_ints(&rom::CRU));
        assert!(same(&BETA, &cru));
        assert_eq!(BETA.square().mul(&BETA), Fp::ONE);
        assert_ne!(BETA, Fp::ONE);
        let mut pm1 = modulus();
        pm1.dec(1);
        pm1.norm();
        let v = from_big(&pm1);
        assert_eq!(to_be_bytes(&v), big_to_bytes(&pm1));
        assert_eq!(v.add(&Fp::ONE), Fp::ZERO);
        // p itself reduces to 0.
        assert_eq!(from_big(&modulus()), Fp::ZERO);
    }
}
