//! Typed errors. Every failure of decoding, validation or verification maps to one variant; no
//! input can make this crate panic.

use xtt_proto::daa::DaaError;

/// Why an ECDAA operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A byte string has the wrong length for the object being decoded.
    #[error("wrong length: expected {expected} bytes, got {actual}")]
    WrongLength {
        /// The length the encoding requires.
        expected: usize,
        /// The length that was supplied.
        actual: usize,
    },
    /// A point encoding does not start with `0x04` (only uncompressed points exist here).
    #[error("point encoding does not start with 0x04")]
    BadPointPrefix,
    /// A point coordinate is not below the field prime p.
    #[error("point coordinate is not below the field prime")]
    CoordinateOutOfRange,
    /// The coordinates do not satisfy the curve (or twist) equation.
    #[error("point is not on the curve")]
    NotOnCurve,
    /// A G2 point lies on the twist but outside the order-r subgroup.
    #[error("G2 point is not in the order-r subgroup")]
    NotInSubgroup,
    /// A scalar that must be reduced (s of a signature, a secret key) is not below r.
    #[error("scalar is not below the group order")]
    ScalarOutOfRange,
    /// A secret key is zero.
    #[error("secret scalar is zero")]
    ZeroScalar,
    /// The issuer's Schnorr proof on its public key does not verify.
    #[error("issuer public key proof does not verify")]
    InvalidIssuerProof,
    /// The member's join-request proof does not verify against the nonce.
    #[error("member public key proof does not verify")]
    InvalidMemberProof,
    /// The credential's proof or one of its pairing equations fails.
    #[error("credential does not verify")]
    InvalidCredential,
    /// A signature's Fiat–Shamir check or pairing equations fail.
    #[error("signature does not verify")]
    InvalidSignature,
    /// A signature verifies but its signer is on a revocation list.
    #[error("signer is revoked")]
    Revoked,
    /// No basename point could be derived (hash-to-G1 exhausted its counter; never observed).
    #[error("hash to G1 failed")]
    HashToG1Failed,
    /// Signing with a pseudonym requires a non-empty basename.
    #[error("basename must not be empty")]
    EmptyBasename,
    /// A prepared signature was finished by another member than the one that prepared it, or
    /// prepared without the basename this signature needs.
    #[error("prepared signature belongs to another member or basename")]
    PreparedForAnotherMember,
    /// The pairing self-test on precomputed lines failed (would indicate a library bug).
    #[error("pairing self-test failed")]
    PairingSelfTest,
}

impl From<Error> for DaaError {
    fn from(e: Error) -> Self {
        match e {
            Error::WrongLength { .. }
            | Error::BadPointPrefix
            | Error::CoordinateOutOfRange
            | Error::NotOnCurve
            | Error::NotInSubgroup
            | Error::ScalarOutOfRange => DaaError::Malformed,
            Error::Revoked => DaaError::Revoked,
            Error::HashToG1Failed
            | Error::EmptyBasename
            | Error::ZeroScalar
            | Error::PreparedForAnotherMember => DaaError::SigningFailed,
            Error::InvalidIssuerProof
            | Error::InvalidMemberProof
            | Error::InvalidCredential
            | Error::InvalidSignature
            | Error::PairingSelfTest => DaaError::InvalidSignature,
        }
    }
}
