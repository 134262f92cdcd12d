//! Verification (ECDAA.md §9) for one group: decode with full point validation, recompute the
//! Schnorr commitments with double-scalar multiplications, and check both pairing equations
//! folded into one product with a random exponent:
//!
//! `e(R, Y) · e(δT − S, P2) · e(−δ(R + W), X) = 1`
//!
//! which is `[e(R,Y)/e(S,P2)] · [e(T,P2)/e(R+W,X)]^δ`. If either bracket is not 1 (both lie in
//! the order-r group GT) the product is 1 for at most one δ mod r. δ is drawn in GLV form,
//! `a + b·λ` with random 64-bit a and b (not both zero): distinct pairs are distinct residues
//! (see `msm::GlvScalar::from_halves`), so a false accept happens with probability ≤ 2^-128
//! ([`FOLD_EXPONENT_BITS`]), and each multiplication by δ runs a 64-step doubling chain, where
//! a 128-bit integer δ (its GLV split leaves one 128-bit half) needs 128 steps.

use core::fmt;

use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::ecp::ECP;
use rand_core::CryptoRngCore;
use xtt_proto::daa::GroupId;

use crate::curve::{neg_mod_r, p1};
use crate::encoding::{decode_g1, encode_g1, G1_LEN};
use crate::error::Error;
use crate::g1::G1;
use crate::hash::hash_to_scalar;
use crate::issuer::GroupPublicKey;
use crate::msm::{vt_glv_sum, vt_mul, GlvScalar, GlvTable, FIXED_WINDOW, VARIABLE_WINDOW};
use crate::pairing::GroupLines;
use crate::revocation::RevocationLists;
use crate::scalar::{big_to_bytes, order, read_big, SCALAR_LEN};
use crate::sign::{
    group_id, BasenamePoint, SIGNATURE_LEN_WITHOUT_PSEUDONYM, SIGNATURE_LEN_WITH_PSEUDONYM,
};

/// Bits of randomness in the exponent δ that folds the two pairing equations of one signature.
pub const FOLD_EXPONENT_BITS: usize = 128;

/// A random fold exponent δ = a + b·λ, (a, b) uniform among the non-zero pairs of u64 (see the
/// module docs).
pub(crate) fn random_fold_exponent(rng: &mut dyn CryptoRngCore) -> GlvScalar {
    loop {
        let (a, b) = (rng.next_u64(), rng.next_u64());
        if (a, b) != (0, 0) {
            return GlvScalar::from_halves(a, b);
        }
    }
}

/// A signature that decoded and passed its Schnorr check: S and W as miracl points (revocation)
/// and R, S, T, W as [`G1`] points (the multiplications and the pairing).
#[derive(Clone)]
pub(crate) struct Checked {
    pub(crate) s: ECP,
    pub(crate) w: ECP,
    pub(crate) g1: CheckedG1,
    pub(crate) k: Option<[u8; G1_LEN]>,
}

/// R, S, T, W of a checked signature on the fast G1.
#[derive(Clone)]
pub(crate) struct CheckedG1 {
    pub(crate) r: G1,
    pub(crate) s: G1,
    pub(crate) t: G1,
    pub(crate) w: G1,
}

/// One group's verifier: gpk, basename (with its precomputed J), precomputed pairing lines and
/// revocation lists. Implements [`xtt_proto::daa::DaaVerifier`].
#[derive(Clone)]
pub struct GroupVerifier {
    gpk: GroupPublicKey,
    bsn: Option<BasenamePoint>,
    /// Odd multiples of J and φ(J), for the `[s]J` of every signature's Schnorr check.
    j_table: Option<GlvTable>,
    pub(crate) lines: GroupLines,
    revocation: RevocationLists,
    group_id: GroupId,
}

impl fmt::Debug for GroupVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupVerifier")
            .field("group_id", &self.group_id)
            .field("revocation", &self.revocation)
            .finish_non_exhaustive()
    }
}

impl GroupVerifier {
    /// Prepares a verifier: hashes the basename to J (empty = verify without basename) and
    /// precomputes the Miller-loop lines of P2, X, Y (with a self-test).
    pub fn new(gpk: GroupPublicKey, basename: &[u8]) -> Result<Self, Error> {
        let lines = GroupLines::new(&gpk)?;
        let bsn = BasenamePoint::new(basename)?;
        Ok(GroupVerifier {
            group_id: group_id(&gpk, basename),
            j_table: bsn
                .as_ref()
                .map(|b| GlvTable::new_fixed(&G1::from_ecp(&b.j), FIXED_WINDOW)),
            bsn,
            lines,
            gpk,
            revocation: RevocationLists::new(),
        })
    }

    /// Replaces the revocation lists.
    pub fn with_revocation(mut self, lists: RevocationLists) -> Self {
        self.revocation = lists;
        self
    }

    /// Whether the verifier was built with a (non-empty) basename.
    pub fn has_basename(&self) -> bool {
        self.bsn.is_some()
    }

    /// The group public key.
    pub fn group_public_key(&self) -> &GroupPublicKey {
        &self.gpk
    }

    /// SHA-256(gpk ‖ basename).
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    /// Verifies `signature` (356 or 421 bytes) over `message`. Returns the pseudonym K when the
    /// verifier has a basename and the 421-byte form was given (a 356-byte signature checked
    /// against a basename uses K = P1 like C, and fails).
    pub fn verify(
        &self,
        message: &[u8],
        signature: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Option<[u8; G1_LEN]>, Error> {
        let c = self.check_schnorr(message, signature)?;
        let delta = random_fold_exponent(rng);
        if !self.pairing_check(&c, &delta) {
            return Err(Error::InvalidSignature);
        }
        self.check_revocation(&c)?;
        Ok(c.k)
    }

    /// Decoding, s < r, and the Fiat–Shamir recomputation.
    pub(crate) fn check_schnorr(&self, message: &[u8], sig: &[u8]) -> Result<Checked, Error> {
        let with_k = match sig.len() {
            SIGNATURE_LEN_WITH_PSEUDONYM => true,
            SIGNATURE_LEN_WITHOUT_PSEUDONYM => false,
            actual => {
                return Err(Error::WrongLength {
                    expected: SIGNATURE_LEN_WITH_PSEUDONYM,
                    actual,
                })
            }
        };
        let field = |off: usize, len: usize| sig.get(off..off + len).unwrap_or_default();
        let c_bytes = field(0, SCALAR_LEN);
        let c = read_big(c_bytes)?;
        let s = read_big(field(SCALAR_LEN, SCALAR_LEN))?;
        let r_ord = order();
        if BIG::comp(&s, &r_ord) >= 0 {
            return Err(Error::ScalarOutOfRange);
        }
        let pts = 2 * SCALAR_LEN;
        let r = decode_g1(field(pts, G1_LEN))?;
        let s_pt = decode_g1(field(pts + G1_LEN, G1_LEN))?;
        let t = decode_g1(field(pts + 2 * G1_LEN, G1_LEN))?;
        let w = decode_g1(field(pts + 3 * G1_LEN, G1_LEN))?;
        let n = field(pts + 4 * G1_LEN, SCALAR_LEN);
        let k_pt = if with_k {
            Some(decode_g1(field(SIGNATURE_LEN_WITHOUT_PSEUDONYM, G1_LEN))?)
        } else {
            None
        };
        // c is compared against a reduced hash, so c ≥ r can never verify.
        if BIG::comp(&c, &r_ord) >= 0 {
            return Err(Error::InvalidSignature);
        }
        // Decoding accepted only canonical encodings (0x04, coordinates < p), so the input
        // bytes of S, W and K are exactly what re-encoding would give: hash them as they are.
        let s_b = field(pts + G1_LEN, G1_LEN);
        let w_b = field(pts + 3 * G1_LEN, G1_LEN);
        let nc = neg_mod_r(&c);
        // E = [s]S − [c]W and L = [s]J − [c]K share their scalars: split them once.
        let (s_glv, nc_glv) = (GlvScalar::new(&s), GlvScalar::new(&nc));
        let g1 = CheckedG1 {
            r: G1::from_ecp(&r),
            s: G1::from_ecp(&s_pt),
            t: G1::from_ecp(&t),
            w: G1::from_ecp(&w),
        };
        let e = vt_glv_sum(&[
            (&GlvTable::new(&g1.s, VARIABLE_WINDOW), &s_glv),
            (&GlvTable::new(&g1.w, VARIABLE_WINDOW), &nc_glv),
        ]);
        let (c1, k) = match (&self.bsn, &self.j_table) {
            (Some(b), Some(j_table)) => {
                // Without K in the signature C uses the generator (and then fails here).
                let (k_use, k_b) = match &k_pt {
                    Some(kp) => {
                        let mut kb = [0u8; G1_LEN];
                        kb.copy_from_slice(field(SIGNATURE_LEN_WITHOUT_PSEUDONYM, G1_LEN));
                        (kp.clone(), kb)
                    }
                    None => (p1(), encode_g1(&p1())),
                };
                let l = vt_glv_sum(&[
                    (j_table, &s_glv),
                    (
                        &GlvTable::new(&G1::from_ecp(&k_use), VARIABLE_WINDOW),
                        &nc_glv,
                    ),
                ]);
                let [e_b, l_b] = G1::encode_batch([&e, &l]);
                let c1 =
                    hash_to_scalar(&[&e_b, s_b, w_b, &l_b, &b.j_bytes, &k_b, &b.basename, message]);
                (c1, with_k.then_some(k_b))
            }
            // Without a basename K is decoded (as C does) but bound to nothing: not returned.
            _ => {
                let [e_b] = G1::encode_batch([&e]);
                (hash_to_scalar(&[&e_b, s_b, w_b, message]), None)
            }
        };
        let expect = hash_to_scalar(&[n, &big_to_bytes(&c1)]);
        if big_to_bytes(&expect).as_slice() != c_bytes {
            return Err(Error::InvalidSignature);
        }
        Ok(Checked { s: s_pt, w, g1, k })
    }

    /// The folded pairing check for one signature.
    pub(crate) fn pairing_check(&self, c: &Checked, delta: &GlvScalar) -> bool {
        let p = &c.g1;
        // δT − S
        let b = vt_mul(&p.t, delta).add(&p.s.neg());
        // −δ(R + W)
        let x = vt_mul(&p.r.add(&p.w), delta).neg();
        self.lines.product_is_one_g1(&p.r, &b, &x)
    }

    pub(crate) fn check_revocation(&self, c: &Checked) -> Result<(), Error> {
        if self.revocation.is_revoked(&c.s, &c.w, c.k.as_ref()) {
            Err(Error::Revoked)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::testing::member_and_verifier;
    use rand_core::SeedableRng;
    use std::time::Duration;

    /// This thread's CPU time (Linux `/proc/thread-self/schedstat`, nanoseconds): the host is
    /// shared, so wall-clock times depend on the neighbours; CPU time much less.
    struct Instant(u64);

    impl Instant {
        fn now() -> Self {
            let ns = std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            Self(ns)
        }
        fn elapsed(&self) -> Duration {
            Duration::from_nanos(Self::now().0.saturating_sub(self.0))
        }
    }

    /// The folded check on miracl's pairing code (the path before the tower), same points.
    fn pairing_check_miracl(v: &GroupVerifier, c: &Checked, delta: &GlvScalar) -> bool {
        let p = &c.g1;
        let b = vt_mul(&p.t, delta).add(&p.s.neg());
        let x = vt_mul(&p.r.add(&p.w), delta).neg();
        let [r, b, x] = G1::to_ecp_batch([&p.r, &b, &x]);
        v.lines.product_is_one_miracl(&r, &b, &x)
    }

    #[test]
    fn tower_and_miracl_pairing_checks_agree_on_valid_and_tampered_signatures() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5a);
        let (member, v) = member_and_verifier(&mut rng);
        let g = G1::from_ecp(&p1());
        let (mut valid, mut invalid) = (0, 0);
        for i in 0..40u32 {
            let msg = i.to_be_bytes();
            let sig = member.sign(&msg, &mut rng).unwrap();
            let checked = v.check_schnorr(&msg, &sig).unwrap();
            // The genuine points, then each of R, S, T, W moved by P1, then R and W swapped.
            for k in 0..6 {
                let mut c = checked.clone();
                match k {
                    1 => c.g1.r = c.g1.r.add(&g),
                    2 => c.g1.s = c.g1.s.add(&g),
                    3 => c.g1.t = c.g1.t.add(&g),
                    4 => c.g1.w = c.g1.w.add(&g),
                    5 => core::mem::swap(&mut c.g1.r, &mut c.g1.w),
                    _ => {}
                }
                let delta = random_fold_exponent(&mut rng);
                let new = v.pairing_check(&c, &delta);
                assert_eq!(new, pairing_check_miracl(&v, &c, &delta), "case {i}/{k}");
                assert_eq!(new, k == 0, "case {i}/{k}");
                if new {
                    valid += 1;
                } else {
                    invalid += 1;
                }
            }
            // And through the public API, bytes in: the genuine signature verifies.
            assert!(v.verify(&msg, &sig, &mut rng).is_ok());
        }
        assert_eq!((valid, invalid), (40, 200));
    }

    /// Breakdown of one verification in thread CPU time (`cargo test --release -- --ignored
    /// --nocapture`).
    #[test]
    #[ignore = "prints timings of crate-private steps the criterion benches cannot reach; asserts nothing"]
    fn timing_verify_breakdown() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let (member, v) = member_and_verifier(&mut rng);
        let sig = member.sign(b"m", &mut rng).unwrap();
        let n = 100u32;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(v.check_schnorr(b"m", &sig).unwrap());
        }
        println!("decode + schnorr: {:?}", t.elapsed() / n);
        let c = v.check_schnorr(b"m", &sig).unwrap();
        let d = random_fold_exponent(&mut rng);
        let t = Instant::now();
        for _ in 0..n {
            assert!(v.pairing_check(&c, &d));
        }
        println!("folded pairing check: {:?}", t.elapsed() / n);
        let [r, s, w] = G1::to_affine_batch([&c.g1.r, &c.g1.s, &c.g1.w]);
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(v.lines.product_is_one(&r, &s, &w));
        }
        println!("3 lined Miller loops + final exp: {:?}", t.elapsed() / n);
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(v.lines.product_is_one_miracl(&c.g1.r.to_ecp(), &c.s, &c.w));
        }
        println!("the same on miracl: {:?}", t.elapsed() / n);
        let msgs: Vec<[u8; 8]> = (0..32u64).map(u64::to_be_bytes).collect();
        let sigs: Vec<_> = msgs
            .iter()
            .map(|m| member.sign(m, &mut rng).unwrap())
            .collect();
        let g = crate::curve::p1();
        let pts: Vec<ECP> = (0..16).map(|i| g.mul(&BIG::new_int(i + 7))).collect();
        let ks: Vec<u64> = (0..16)
            .map(|_| rand_core::RngCore::next_u64(&mut rng))
            .collect();
        let bigs: Vec<BIG> = ks.iter().map(|k| crate::scalar::big_from_u64(*k)).collect();
        let terms: Vec<(G1, u64)> = pts
            .iter()
            .map(G1::from_ecp)
            .zip(ks.iter().copied())
            .collect();
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(ECP::muln(16, &pts, &bigs));
        }
        println!("muln, 16 points, 64-bit scalars: {:?}", t.elapsed() / n);
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(crate::msm::vt_msm_u64(&terms));
        }
        println!("vt_msm_u64, 16 points: {:?}", t.elapsed() / n);
        for size in [1usize, 4, 8, 16, 32] {
            let items: Vec<(&[u8], &[u8])> = msgs
                .iter()
                .zip(sigs.iter())
                .take(size)
                .map(|(m, s)| (&m[..], &s[..]))
                .collect();
            let rounds = 10u32;
            let t = Instant::now();
            for _ in 0..rounds {
                assert!(v.verify_batch(&items, &mut rng).is_ok());
            }
            let per = t.elapsed() / rounds / u32::try_from(size).unwrap();
            println!("verify_batch of {size}: {per:?} per signature");
        }
    }
}
