//! LRSW ECDAA on FP256BN (TPM_ECC_BN_P256), byte-compatible with xaptum/ecdaa v1.0.0.
//!
//! Every hash input, encoding and RNG draw follows `ECDAA.md` (the C library's behaviour), so
//! keys, credentials and signatures interoperate with the C library in both directions and a
//! recorded C RNG stream reproduces C signatures byte for byte. Arithmetic is miracl_core's
//! `fp256bn`; no curve code is written here.
//!
//! Modules:
//!
//! * [`scalar`]: zeroizing scalars mod r, the C RNG-to-scalar derivation.
//! * [`encoding`]: G1/G2 point encodings with full validation.
//! * [`hash`]: SHA-256 to scalar and the C library's hash to G1.
//! * [`issuer`]: issuer keys, their proof, the group public key.
//! * [`join`]: member key and join request, credential issue and validation.
//! * [`sign`]: the [`Member`] and signing.
//! * [`verify`]: the [`GroupVerifier`] (one folded pairing product per signature).
//! * [`batch`]: batch verification with bad-signature identification.
//! * [`revocation`]: secret-key and pseudonym revocation lists.
//! * `xtt`: the `xtt_proto::daa` trait implementations.
//! * `curve` (private): generators and which scalar multiplication is constant-time.
//! * `pairing` (private): precomputed Miller-loop lines of the group's G2 points.

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

pub use error::Error;
pub use issuer::{GroupPublicKey, Issuer, IssuerPublicKey, IssuerSecretKey};
pub use join::{
    generate_member_key, Credential, CredentialSignature, MemberPublicKey, MemberSecretKey,
};
pub use revocation::RevocationLists;
pub use sign::{group_id, Member};
pub use verify::GroupVerifier;

/// Lowercase hex for `Debug` output of public values.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
