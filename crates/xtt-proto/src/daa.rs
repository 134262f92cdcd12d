//! The group-signature (DAA) interface of the identity handshake.
//!
//! XTT devices prove membership of a manufacturer's group with an LRSW ECDAA signature with a
//! basename (XTT-WIRE.md §10). The protocol core never does pairing arithmetic itself: the client
//! signs through [`DaaSigner`] and the server verifies through [`DaaVerifier`]. The `xtt-ecdaa`
//! crate implements both for FP256BN; tests may plug in anything else.
//!
//! The basename is configured out of band on both sides and never travels: a signer and a
//! verifier each hold it next to the group key.

use core::fmt;

use rand_core::CryptoRngCore;

/// Size of a DAA group id on the wire.
pub const GROUP_ID_LEN: usize = 32;
/// Size of an LRSW ECDAA signature with pseudonym, the only form XTT sends.
pub const SIGNATURE_LEN: usize = 421;
/// Size of a pseudonym (an FP256BN G1 point, `04 ‖ x ‖ y`).
pub const PSEUDONYM_LEN: usize = 65;
/// Offset of the pseudonym inside a signature.
const PSEUDONYM_OFFSET: usize = SIGNATURE_LEN - PSEUDONYM_LEN;

/// Identifies a DAA group. The `xtt` tool derives it as SHA-256(gpk ‖ basename).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub [u8; GROUP_ID_LEN]);

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A 421-byte DAA signature as carried in Identity_ClientAttest: `c ‖ s ‖ R ‖ S ‖ T ‖ W ‖ n ‖ K`.
#[derive(Clone, PartialEq, Eq)]
pub struct DaaSignature(pub [u8; SIGNATURE_LEN]);

impl DaaSignature {
    /// The pseudonym K, the last 65 bytes. Only meaningful once the signature has verified.
    pub fn pseudonym_unverified(&self) -> Pseudonym {
        let mut k = [0u8; PSEUDONYM_LEN];
        k.copy_from_slice(&self.0[PSEUDONYM_OFFSET..]);
        Pseudonym(k)
    }
}

impl fmt::Debug for DaaSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaaSignature").finish_non_exhaustive()
    }
}

/// A member's pseudonym for one basename: stable across handshakes, so a server can recognise a
/// returning device without learning which member it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pseudonym(pub [u8; PSEUDONYM_LEN]);

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym(")?;
        for b in &self.0[..9] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Why a DAA operation failed. Deliberately coarse: the peer learns only that the handshake
/// failed, and the server's logs learn which of these it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DaaError {
    /// The signature bytes do not decode (bad point encoding, point off the curve, ...).
    #[error("malformed DAA signature")]
    Malformed,
    /// The signature decodes but does not verify under the group key and basename.
    #[error("DAA signature does not verify")]
    InvalidSignature,
    /// The signature verifies but its signer is on a revocation list.
    #[error("DAA signer is revoked")]
    Revoked,
    /// The signer could not produce a signature (e.g. no basename point could be derived).
    #[error("DAA signing failed")]
    SigningFailed,
}

/// A group member that can sign (the client side of identity provisioning).
pub trait DaaSigner {
    /// The group id announced in Identity_ClientAttest.
    fn group_id(&self) -> GroupId;

    /// Signs `message` (the 64-byte ClientDAASigHash) with the member's configured basename and
    /// returns the 421-byte form with pseudonym.
    fn sign(&self, message: &[u8], rng: &mut dyn CryptoRngCore) -> Result<DaaSignature, DaaError>;
}

/// One group's verifier (the server side): group public key, basename and any revocation lists.
///
/// `rng` supplies the small random exponents a verifier may use to fold its pairing equations
/// into one check; a verifier that needs none ignores it.
pub trait DaaVerifier {
    /// Verifies `signature` over `message` and returns the signer's pseudonym.
    fn verify(
        &self,
        message: &[u8],
        signature: &DaaSignature,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Pseudonym, DaaError>;
}
