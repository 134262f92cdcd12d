//! The XTT binding: [`Member`] is a [`DaaSigner`] and [`GroupVerifier`] a [`DaaVerifier`]
//! (XTT-WIRE.md §8.3, §10). XTT always signs with a basename and sends the 421-byte form.

use std::sync::Mutex;

use rand_core::CryptoRngCore;
use xtt_proto::daa::{DaaError, DaaSignature, DaaSigner, DaaVerifier, GroupId, Pseudonym};

use crate::sign::{Member, PreparedSignature};
use crate::verify::GroupVerifier;

impl DaaSigner for Member {
    fn group_id(&self) -> GroupId {
        Member::group_id(self)
    }

    fn sign(&self, message: &[u8], rng: &mut dyn CryptoRngCore) -> Result<DaaSignature, DaaError> {
        Ok(DaaSignature(Member::sign(self, message, rng)?))
    }
}

/// A member that signs from a stock of signatures prepared ahead of their messages
/// ([`Member::prepare`]), so a handshake pays only the hashing and one scalar response; with an
/// empty stock it signs in full. For a device that has idle time before it connects, and for a
/// load generator that must leave the cores it shares to the server it measures.
#[derive(Debug)]
pub struct StockedMember {
    member: Member,
    stock: Mutex<Vec<PreparedSignature>>,
}

impl StockedMember {
    /// A member with an empty stock.
    pub fn new(member: Member) -> Self {
        Self {
            member,
            stock: Mutex::new(Vec::new()),
        }
    }

    /// Prepares signatures until `count` are in stock.
    pub fn restock(&self, count: usize, rng: &mut dyn CryptoRngCore) {
        // Prepared outside the lock: a signer taking from the stock meanwhile is not held up.
        let missing = count.saturating_sub(self.in_stock());
        let fresh: Vec<_> = (0..missing).map(|_| self.member.prepare(rng)).collect();
        self.lock().extend(fresh);
    }

    /// Prepared signatures not used yet.
    pub fn in_stock(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PreparedSignature>> {
        // A panic elsewhere while holding the lock leaves a valid Vec; each entry is used once
        // whichever way it is taken out.
        self.stock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DaaSigner for StockedMember {
    fn group_id(&self) -> GroupId {
        self.member.group_id()
    }

    fn sign(&self, message: &[u8], rng: &mut dyn CryptoRngCore) -> Result<DaaSignature, DaaError> {
        let prepared = self.lock().pop();
        let signature = match prepared {
            Some(p) => self.member.sign_prepared(p, message)?,
            None => self.member.sign(message, rng)?,
        };
        Ok(DaaSignature(signature))
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

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::SeedableRng;
    use xtt_proto::daa::{DaaSigner, DaaVerifier};

    use super::StockedMember;
    use crate::testing::member_and_verifier;

    #[test]
    fn stocked_member_signs_from_its_stock_then_in_full() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(71);
        let (member, verifier) = member_and_verifier(&mut rng);
        let nym = member.pseudonym();
        let stocked = StockedMember::new(member);
        stocked.restock(2, &mut rng);
        stocked.restock(2, &mut rng);
        assert_eq!(stocked.in_stock(), 2, "restock tops up, it does not add");
        for left in [1, 0, 0] {
            let msg = [u8::try_from(left).unwrap(); 64];
            let sig = DaaSigner::sign(&stocked, &msg, &mut rng).unwrap();
            assert_eq!(stocked.in_stock(), left);
            let k = DaaVerifier::verify(&verifier, &msg, &sig, &mut rng).unwrap();
            assert_eq!(Some(k.0), nym);
            assert!(DaaVerifier::verify(&verifier, &[9; 64], &sig, &mut rng).is_err());
        }
    }
}
