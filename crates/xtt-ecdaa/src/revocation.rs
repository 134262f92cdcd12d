//! Revocation lists (ECDAA.md §10): revoked member secret keys (a signature is revoked if
//! `W = [f]S`) and revoked pseudonyms (revoked if K equals a listed point).

use core::fmt;

use miracl_core::fp256bn::ecp::ECP;

use crate::encoding::{decode_g1, encode_g1, G1_LEN};
use crate::error::Error;
use crate::scalar::{read_big, SCALAR_LEN};

/// Secret-key and basename (pseudonym) revocation lists.
#[derive(Clone, Default)]
pub struct RevocationLists {
    secret_keys: Vec<miracl_core::fp256bn::big::BIG>,
    pseudonyms: Vec<[u8; G1_LEN]>,
}

impl fmt::Debug for RevocationLists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationLists")
            .field("secret_keys", &self.secret_keys.len())
            .field("pseudonyms", &self.pseudonyms.len())
            .finish()
    }
}

impl RevocationLists {
    /// Empty lists (what XTT uses).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a revoked member secret key (32 bytes; published, so no longer secret).
    pub fn revoke_secret_key(&mut self, sk: &[u8]) -> Result<(), Error> {
        self.secret_keys.push(read_big(sk)?);
        Ok(())
    }

    /// Adds a revoked pseudonym (65-byte G1 point, validated).
    pub fn revoke_pseudonym(&mut self, k: &[u8]) -> Result<(), Error> {
        let p = decode_g1(k)?;
        self.pseudonyms.push(encode_g1(&p));
        Ok(())
    }

    /// Parses the ecdaa tool's list files: concatenated 32-byte keys, concatenated 65-byte
    /// points.
    pub fn from_lists(sk_list: &[u8], nym_list: &[u8]) -> Result<Self, Error> {
        let mut out = Self::new();
        if sk_list.len() % SCALAR_LEN != 0 {
            return Err(Error::WrongLength {
                expected: sk_list.len() / SCALAR_LEN * SCALAR_LEN,
                actual: sk_list.len(),
            });
        }
        if nym_list.len() % G1_LEN != 0 {
            return Err(Error::WrongLength {
                expected: nym_list.len() / G1_LEN * G1_LEN,
                actual: nym_list.len(),
            });
        }
        for k in sk_list.chunks_exact(SCALAR_LEN) {
            out.revoke_secret_key(k)?;
        }
        for p in nym_list.chunks_exact(G1_LEN) {
            out.revoke_pseudonym(p)?;
        }
        Ok(out)
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.secret_keys.is_empty() && self.pseudonyms.is_empty()
    }

    /// Whether a signature with randomized credential parts S, W and pseudonym K is revoked.
    pub(crate) fn is_revoked(&self, s: &ECP, w: &ECP, k: Option<&[u8; G1_LEN]>) -> bool {
        let by_key = self.secret_keys.iter().any(|f| s.mul(f).equals(w));
        let by_nym = k.is_some_and(|k| self.pseudonyms.iter().any(|p| p == k));
        by_key || by_nym
    }
}
