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
//! exponents for every sub-check) until each bad signature is isolated. A product over valid
//! signatures always holds, so when a failed set's first half passes, its second half holds a
//! bad signature and is split without a check of its own: one bad signature among n = 2^k
//! costs 1 + 1.5·k products on average instead of 1 + 2·k (a quarter fewer at each level).
//! (Sets that are all bad still cost about two products per signature; each is a handshake
//! the sender paid a round trip for.)
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

/// What is known of a set of signatures when bisection reaches it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Suspect {
    /// Not checked as a whole yet.
    Unchecked,
    /// Holds at least one signature whose pairing equations fail.
    Failed,
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
        self.bisect(&checked, Suspect::Unchecked, rng, &mut bad);
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

    /// Pushes the indices of the signatures in `set` whose pairing equations fail; returns the
    /// number of pairing products it ran.
    fn bisect(
        &self,
        set: &[(usize, Checked)],
        suspect: Suspect,
        rng: &mut dyn CryptoRngCore,
        bad: &mut Vec<usize>,
    ) -> usize {
        let mut products = 0;
        if set.is_empty() {
            return products;
        }
        if suspect == Suspect::Unchecked {
            products += 1;
            if self.combined_check(set, rng) {
                return products;
            }
        }
        if let [(i, _)] = set {
            bad.push(*i);
            return products;
        }
        let (lo, hi) = set.split_at(set.len() / 2);
        products += 1;
        let lo_holds = self.combined_check(lo, rng);
        if !lo_holds {
            products += self.bisect(lo, Suspect::Failed, rng, bad);
        }
        // The whole failed and valid signatures never fail a product: if the first half
        // holds, the bad one is in the second.
        let hi_state = if lo_holds {
            Suspect::Failed
        } else {
            Suspect::Unchecked
        };
        products + self.bisect(hi, hi_state, rng, bad)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::SIGNATURE_LEN_WITH_PSEUDONYM;
    use rand_core::SeedableRng;

    /// Where T sits in a signature: after c, s, R and S.
    const T_AT: usize = 2 * crate::scalar::SCALAR_LEN + 2 * G1_LEN;

    #[test]
    fn a_half_that_must_be_bad_is_not_checked() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0xba7c);
        let (member, verifier) = crate::testing::member_and_verifier(&mut rng);
        let msgs: Vec<[u8; 8]> = (0..16u64).map(u64::to_be_bytes).collect();
        let sigs: Vec<[u8; SIGNATURE_LEN_WITH_PSEUDONYM]> = msgs
            .iter()
            .map(|m| member.sign(m, &mut rng).unwrap())
            .collect();
        let mut total = 0;
        for bad_at in 0..sigs.len() {
            // Another signature's T: the Schnorr proof (which does not cover T) still holds,
            // so only the pairing product can catch it.
            let mut batch = sigs.clone();
            let other = (bad_at + 1) % sigs.len();
            let t = sigs[other][T_AT..T_AT + G1_LEN].to_vec();
            batch[bad_at][T_AT..T_AT + G1_LEN].copy_from_slice(&t);
            let checked: Vec<(usize, Checked)> = msgs
                .iter()
                .zip(&batch)
                .enumerate()
                .map(|(i, (m, s))| (i, verifier.check_schnorr(m, s).unwrap()))
                .collect();
            let mut bad = Vec::new();
            let products = verifier.bisect(&checked, Suspect::Unchecked, &mut rng, &mut bad);
            assert_eq!(bad, vec![bad_at]);
            total += products;
        }
        // The whole batch, then at each of the 4 levels the first half, and the second only
        // when the first failed (the bad one is in the first half for 8 of the 16 positions):
        // 16 · 1 + 4 · (8 · 2 + 8 · 1). Checking both halves of every failed set: 16 · 9.
        assert_eq!(total, 16 + 4 * (8 * 2 + 8));
    }
}
