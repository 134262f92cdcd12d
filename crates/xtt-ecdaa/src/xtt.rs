//! The XTT binding: [`Member`] is a [`DaaSigner`] and [`GroupVerifier`] a [`DaaVerifier`]
//! (XTT-WIRE.md §8.3, §10). XTT always signs with a basename and sends the 421-byte form.

use rand_core::CryptoRngCore;
use xtt_proto::daa::{DaaError, DaaSignature, DaaSigner, DaaVerifier, GroupId, Pseudonym};

use crate::sign::Member;
use crate::verify::GroupVerifier;

impl DaaSigner for Member {
    fn group_id(&self) -> GroupId {
        Member::group_id(self)
    }

    fn sign(&self, message: &[u8], rng: &mut dyn CryptoRngCore) -> Result<DaaSignature, DaaError> {
        Ok(DaaSignature(Member::sign(self, message, rng)?))
    }
}

impl DaaVerifier for GroupVerifier {
    /// Requires a verifier built with a non-empty basename (otherwise K would be unbound and
    /// not a pseudonym): without one every signature is rejected as invalid.
    fn verify(
        &self,
        message: &[u8],
        signature: &DaaSignature,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Pseudonym, DaaError> {
        match GroupVerifier::verify(self, message, &signature.0, rng)? {
            Some(k) if self.has_basename() => Ok(Pseudonym(k)),
            _ => Err(DaaError::InvalidSignature),
        }
    }
}
