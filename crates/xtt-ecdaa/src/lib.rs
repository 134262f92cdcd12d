//! LRSW ECDAA on FP256BN (TPM_ECC_BN_P256), byte-compatible with xaptum/ecdaa v1.0.0.
//!
//! Every hash input, encoding and RNG draw follows `ECDAA.md` (the C library's behaviour), so
//! keys, credentials and signatures interoperate with the C library in both directions, and a
//! recorded C RNG stream reproduces C keys, proofs, credentials and signatures byte for byte
//! (the tests do exactly that). G2, the pairing lines' precomputation, the join/issuer pairings
//! and one-off G1 operations are miracl_core's `fp256bn`; the hot G1 paths (signing walks, the
//! verifier's multiplications, encoding) run on the crate's own G1 over crypto-bigint's 4×64-bit
//! Montgomery field (`g1`), about twice as fast per field multiplication, and the verifier's
//! pairing products on an F_p¹² tower over that field (`pairing`). This crate adds the scheme, validation, and the algorithms that
//! make it fast. No I/O.
//!
//! # Roles
//!
//! ```
//! use rand_core::SeedableRng;
//! use xtt_ecdaa::{generate_member_key, GroupVerifier, Issuer, Member};
//!
//! # fn main() -> Result<(), xtt_ecdaa::Error> {
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! // Issuer: keys with a proof; the 258-byte group public key is what verifiers hold.
//! let issuer = Issuer::generate(&mut rng);
//! let gpk = issuer.group_public_key().clone();
//! // Join: the member proves knowledge of its key over the issuer's nonce ...
//! let (sk, request) = generate_member_key(b"nonce", &mut rng);
//! let (cred, cred_proof) = issuer.issue_credential(&request, b"nonce", &mut rng)?;
//! // ... and checks the credential it gets back.
//! cred.validate(&cred_proof, &request, &gpk)?;
//! // Sign with a basename (421 bytes, ends with the pseudonym) and verify.
//! let member = Member::new(sk, cred, &gpk, b"BASENAME")?;
//! let verifier = GroupVerifier::new(gpk, b"BASENAME")?;
//! let sig = member.sign(b"message", &mut rng)?;
//! let pseudonym = verifier.verify(b"message", &sig, &mut rng)?;
//! assert_eq!(pseudonym, member.pseudonym());
//! # Ok(())
//! # }
//! ```
//!
//! For XTT, [`Member`] implements `xtt_proto::daa::DaaSigner` and [`GroupVerifier`]
//! implements `xtt_proto::daa::DaaVerifier`; the group id is SHA-256(gpk ‖ basename)
//! ([`group_id`]).
//!
//! # Modules
//!
//! * [`scalar`]: zeroizing scalars mod r, the C RNG-to-scalar derivation, constant-time
//!   arithmetic mod r.
//! * [`encoding`]: G1/G2 point encodings with full validation (prefix, coordinates < p, on
//!   the curve, G2 subgroup check).
//! * [`hash`]: SHA-256 to scalar and the C library's hash to G1.
//! * [`issuer`]: issuer keys, their proof, the group public key.
//! * [`join`]: member key and join request, credential issue and validation.
//! * [`sign`]: the [`Member`] and signing.
//! * [`verify`]: the [`GroupVerifier`] (one folded pairing product per signature).
//! * [`batch`]: batch verification with bad-signature identification.
//! * [`revocation`]: secret-key and pseudonym revocation lists.
//! * `xtt`: the `xtt_proto::daa` trait implementations.
//! * `curve` (private): generators; which miracl scalar multiplication is constant-time.
//! * `g1` (private): G1 on a constant-time 4×64-bit Montgomery field (crypto-bigint) with
//!   complete projective formulas; converts to and from miracl points at the edges.
//! * `fixed_base` (private): constant-time fixed-base tables used for signing.
//! * `msm` (private): variable-time GLV double-scalar multiplication for verification.
//! * `pairing` (private): precomputed Miller-loop lines of the group's G2 points (miracl), and
//!   the verifier's pairing products from them on our own F_p¹² tower, byte-compatible with
//!   miracl's.
//!
//! # Performance design
//!
//! * Verification folds `e(R,Y) = e(S,P2)` and `e(T,P2) = e(R+W,X)` into one product
//!   `e(R,Y)·e(δT−S,P2)·e(−δ(R+W),X) = 1` with a random δ out of 2^128, drawn as a + b·λ with
//!   64-bit halves (so multiplying by it is a 64-step GLV chain): three Miller loops over lines
//!   precomputed once per group, one final exponentiation.
//! * The Miller loops evaluate each line divided by its point's x (a factor in F_p, which the
//!   final exponentiation removes): the inversion that would make the points affine inverts
//!   their X coordinates instead, and every line product then skips its scalings by x. The
//!   final exponentiation's three powers by |u| walk a width-3 NAF (13 products, not 18).
//! * The hot F_p products (every F_p² product of the tower, the G1 doubling and mixed
//!   addition) are a fused, inlined Montgomery product (`g1::field::fp_mul`) rather than
//!   crypto-bigint's product and out-of-line reduction; it only pays off with one codegen unit,
//!   which the workspace's release and bench profiles set. The full G1 addition calls the same
//!   product out of line (inlined twelve times it spills), and ×3b is one multiply row with one
//!   reduction instead of four modular additions.
//! * The Schnorr recomputations `[s]S − [c]W` and `[s]J − [c]K` use the BN endomorphism (GLV)
//!   and a 4-scalar Shamir loop; J = HashToG1(basename) is computed once per verifier.
//! * [`GroupVerifier::verify_batch`] shares the three Miller loops and the final
//!   exponentiation across the batch (random 64-bit exponents per signature) and bisects on
//!   failure to name the bad signatures.
//! * Signing uses per-member fixed-base tables for A, B, C, D and J (no doublings at all).
//! * Those walks, the Schnorr recomputations, the batch sums and point encoding run on `g1`;
//!   the verifier's pairing inputs are normalized several at a time with one inversion and go
//!   straight into the tower (`pairing`); only revocation checks still use miracl points.
//!
//! # Side channels and secrets
//!
//! * Every multiplication by a secret scalar is constant-time: fixed-base table walks with
//!   masked selects and complete formulas over a constant-time field (signing: l, k, k·l), `ECP::clmul(k, r)` (member key, pseudonym,
//!   issuer-side credential products, join commitments) and `ECP2::mul` on a fixed-length
//!   multiplier (issuer x, y and proof nonces). Secret arithmetic mod r uses fixed-length
//!   reductions. Variable-time routines (GLV/`mul2`, `muln`, `ECP::mul`) only ever see public
//!   values or verifier-chosen randomness. See the `curve` module for the list.
//! * Secret scalars live in [`scalar::Scalar`], which wipes itself on drop; secret key types
//!   have `Debug` impls that print nothing secret. Temporaries inside miracl_core cannot be
//!   wiped from here.
//! * Decoding never panics: every length, prefix, range, curve and subgroup failure is an
//!   [`Error`].

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod batch;
mod curve;
pub mod encoding;
pub mod error;
mod fixed_base;
mod g1;
pub mod hash;
pub mod issuer;
pub mod join;
mod msm;
mod pairing;
pub mod revocation;
pub mod scalar;
pub mod sign;
pub mod verify;
mod xtt;

/// What several modules' unit tests set up alike.
#[cfg(test)]
mod testing {
    use crate::{generate_member_key, GroupVerifier, Issuer, Member};

    /// A fresh group with one member (basename "B") and the group's verifier.
    pub(crate) fn member_and_verifier(
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (Member, GroupVerifier) {
        let issuer = Issuer::generate(rng);
        let (sk, mpk) = generate_member_key(b"n", rng);
        let (cred, _) = issuer.issue_credential(&mpk, b"n", rng).unwrap();
        let gpk = issuer.group_public_key().clone();
        let member = Member::new(sk, cred, &gpk, b"B").unwrap();
        (member, GroupVerifier::new(gpk, b"B").unwrap())
    }
}

/// Internals the benchmarks (`benches/g1.rs`, `benches/pairing.rs`) time; not a stable API.
#[doc(hidden)]
pub mod bench_internals {
    pub use crate::fixed_base::FixedBase;
    pub use crate::g1::field::Fp;
    pub use crate::g1::point::{G1Affine, G1};
    pub use crate::msm::{vt_msm_u64, vt_mul2};
    pub use crate::pairing::PairingBench;
}

pub use error::Error;
pub use issuer::{GroupPublicKey, Issuer, IssuerPublicKey, IssuerSecretKey};
pub use join::{
    generate_member_key, Credential, CredentialSignature, MemberPublicKey, MemberSecretKey,
};
pub use revocation::RevocationLists;
pub use sign::{group_id, Member, PreparedSignature};
pub use verify::GroupVerifier;
pub use xtt::StockedMember;

/// Lowercase hex for `Debug` output of public values.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
