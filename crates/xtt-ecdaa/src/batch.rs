//! Batch verification of many signatures of one group.
//!
//! Each signature's Schnorr check is done on its own (it needs its own hash). The pairing
//! equations of all survivors are combined with independent random 64-bit exponents aᵢ, bᵢ:
//!
//! `e(Σ aᵢRᵢ, Y) · e(Σ (bᵢTᵢ − aᵢSᵢ), P2) · e(−Σ bᵢ(Rᵢ + Wᵢ), X) = 1`
//!
//! three Miller loops over precomputed lines and one final exponentiation for the whole batch;
//! the three sums are multi-scalar multiplications with short scalars (`msm::vt_msm_u64`, one
//! doubling chain per sum). A batch containing a bad
//! signature passes with probability ≤ 2^-64. On failure the batch is bisected (fresh
//! exponents for every sub-check) until each bad signature is isolated.
//!
//! That is weaker than a single verification's 2^-128 ([`crate::verify::FOLD_EXPONENT_BITS`]),
//! on purpose: the exponents are fresh for every check and unknown to the signer, so a forger
//! gets one try per signature it makes the verifier check, and with XTT every try costs a full
//! handshake (a cookie round trip and a ClientAttest). 2^64 tries at 10^4 handshakes a second
//! take 5.8·10^7 years. 128-bit exponents would double the three sums' doubling chains, the
//! bulk of the per-signature cost of a batch.

use rand_core::CryptoRngCore;

use crate::encoding::G1_LEN;
use crate::error::Error;
use crate::msm::vt_msm_u64;
use crate::verify::{random_fold_exponent, Checked, GroupVerifier};

/// Bits of each per-signature random exponent in a batch.
pub const BATCH_EXPONENT_BITS: usize = 64;

/// A random non-zero exponent of [`BATCH_EXPONENT_BITS`] bits.
fn random_u64(rng: &mut dyn CryptoRngCore) -> u64 {
    loop {
        let a = rng.next_u64();
        if a != 0 {
            return a;
        }
    }
}

/// The outcome of one signature in a batch.
pub type BatchItemResult = Result<Option<[u8; G1_LEN]>, Error>;

impl GroupVerifier {
    /// Verifies `(message, signature)` pairs. Returns `Ok` with every pseudonym if all verify,
    /// otherwise `Err` with each item's individual result (bad ones identified).
    #[allow(clippy::type_complexity)]
    pub fn verify_batch(
        &self,
        items: &[(&[u8], &[u8])],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Option<[u8; G1_LEN]>>, Vec<BatchItemResult>> {
        let mut results: Vec<BatchItemResult> = Vec::with_capacity(items.len());
        let mut checked: Vec<(usize, Checked)> = Vec::with_capacity(items.len());
        for (i, (m, s)) in items.iter().enumerate() {
            match self.check_schnorr(m, s) {
                Ok(c) => {
                    results.push(Ok(c.k));
                    checked.push((i, c));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let mut bad = Vec::new();
        self.bisect(&checked, rng, &mut bad);
        for i in bad {
            if let Some(r) = results.get_mut(i) {
                *r = Err(Error::InvalidSignature);
            }
        }
        for (i, c) in &checked {
            if let Some(r) = results.get_mut(*i) {
                if r.is_ok() {
                    if let Err(e) = self.check_revocation(c) {
                        *r = Err(e);
                    }
                }
            }
        }
        if results.iter().all(Result::is_ok) {
            Ok(results.into_iter().filter_map(Result::ok).collect())
        } else {
            Err(results)
        }
    }

    /// Pushes the indices of the signatures in `set` whose pairing equations fail.
    fn bisect(&self, set: &[(usize, Checked)], rng: &mut dyn CryptoRngCore, bad: &mut Vec<usize>) {
        if set.is_empty() || self.combined_check(set, rng) {
            return;
        }
        if let [(i, _)] = set {
            bad.push(*i);
            return;
        }
        let (lo, hi) = set.split_at(set.len() / 2);
        self.bisect(lo, rng, bad);
        self.bisect(hi, rng, bad);
    }

    /// One combined product over `set` with fresh random exponents.
    fn combined_check(&self, set: &[(usize, Checked)], rng: &mut dyn CryptoRngCore) -> bool {
        if let [(_, c)] = set {
            let delta = random_fold_exponent(rng);
            return self.pairing_check(c, &delta);
        }
        let n = set.len();
        let mut ys = Vec::with_capacity(n);
        let mut ps = Vec::with_capacity(2 * n);
        let mut xs = Vec::with_capacity(n);
        for (_, c) in set {
            let a = random_u64(rng);
            let b = random_u64(rng);
            let p = &c.g1;
            ys.push((p.r, a));
            ps.push((p.t, b));
            ps.push((p.s.neg(), a));
            xs.push((p.r.add(&p.w), b));
        }
        let sum_y = vt_msm_u64(&ys);
        let sum_p2 = vt_msm_u64(&ps);
        let sum_x = vt_msm_u64(&xs).neg();
        self.lines.product_is_one_g1(&sum_y, &sum_p2, &sum_x)
    }
}
