//! The four cipher suites of XTT v1 and their hash, prf and AEAD.

use crate::crypto::{self, AeadAlg, HashAlg};
use crate::error::InvalidMessage;

/// An XTT cipher suite (`SuiteSpec` on the wire, u16). All four use X25519, LRSW ECDAA on FP256BN
/// and ECDSA P-256; they differ in AEAD and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SuiteSpec {
    /// 0x0001 `X25519_LRSW_ECDSAP256_CHACHA20POLY1305_SHA512`
    X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
    /// 0x0002 `X25519_LRSW_ECDSAP256_CHACHA20POLY1305_BLAKE2B`
    X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
    /// 0x0003 `X25519_LRSW_ECDSAP256_AES256GCM_SHA512`
    X25519LrswEcdsaP256Aes256GcmSha512,
    /// 0x0004 `X25519_LRSW_ECDSAP256_AES256GCM_BLAKE2B`
    X25519LrswEcdsaP256Aes256GcmBlake2b,
}

impl SuiteSpec {
    /// All suites, in wire-number order.
    pub const ALL: [SuiteSpec; 4] = [
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b,
    ];

    /// The wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512 => 1,
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b => 2,
            SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512 => 3,
            SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b => 4,
        }
    }

    /// Parses the wire value; anything but 1–4 is [`InvalidMessage::UnknownSuite`].
    pub fn from_u16(v: u16) -> Result<Self, InvalidMessage> {
        match v {
            1 => Ok(SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512),
            2 => Ok(SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b),
            3 => Ok(SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512),
            4 => Ok(SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b),
            other => Err(InvalidMessage::UnknownSuite(other)),
        }
    }

    /// The C library's name of the suite (also the `xtt` tool's `-s` argument).
    pub fn name(self) -> &'static str {
        match self {
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512 => {
                "X25519_LRSW_ECDSAP256_CHACHA20POLY1305_SHA512"
            }
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b => {
                "X25519_LRSW_ECDSAP256_CHACHA20POLY1305_BLAKE2B"
            }
            SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512 => {
                "X25519_LRSW_ECDSAP256_AES256GCM_SHA512"
            }
            SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b => {
                "X25519_LRSW_ECDSAP256_AES256GCM_BLAKE2B"
            }
        }
    }

    pub(crate) fn hash_alg(self) -> HashAlg {
        match self {
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512
            | SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512 => HashAlg::Sha512,
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b
            | SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b => HashAlg::Blake2b,
        }
    }

    pub(crate) fn aead_alg(self) -> AeadAlg {
        match self {
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512
            | SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b => AeadAlg::ChaCha20Poly1305,
            SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512
            | SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b => AeadAlg::Aes256Gcm,
        }
    }

    /// The suite hash over the concatenation of `parts` (64 bytes).
    pub(crate) fn hash(self, parts: &[&[u8]]) -> [u8; crypto::HASH_LEN] {
        crypto::hash(self.hash_alg(), parts)
    }

    /// The suite prf (C's: no length prefix), output length `out.len()`.
    pub(crate) fn prf(self, key: &[u8], parts: &[&[u8]], out: &mut [u8]) {
        crypto::prf(self.hash_alg(), key, parts, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_numbers_round_trip() {
        for s in SuiteSpec::ALL {
            assert_eq!(SuiteSpec::from_u16(s.to_u16()), Ok(s));
        }
    }

    #[test]
    fn rejects_suites_outside_one_to_four() {
        for v in [0u16, 5, 6, 0x0100, 0xffff] {
            assert_eq!(SuiteSpec::from_u16(v), Err(InvalidMessage::UnknownSuite(v)));
        }
    }
}
