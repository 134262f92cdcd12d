//! The cipher suites of XTT v1 and their hash, prf and AEAD.
//!
//! Suites 1–4 are the draft's (and the C library's). Suites 5 and 6 are the integrity-only suites
//! of the older draft as XTT-SESSION §4 defines them: handshakes are protected as in suites 1 and
//! 2, records carry a prf tag instead of being encrypted.

use crate::crypto::{self, AeadAlg, HashAlg};
use crate::error::InvalidMessage;

/// An XTT cipher suite (`SuiteSpec` on the wire, u16). All use X25519, LRSW ECDAA on FP256BN and
/// ECDSA P-256; they differ in AEAD (or none, for records of suites 5 and 6) and hash.
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
    /// 0x0005 `X25519_LRSW_ECDSAP256_NULL_SHA512`: integrity-only records (XTT-SESSION §4).
    X25519LrswEcdsaP256NullSha512,
    /// 0x0006 `X25519_LRSW_ECDSAP256_NULL_BLAKE2B`: integrity-only records (XTT-SESSION §4).
    X25519LrswEcdsaP256NullBlake2b,
}

/// How Record_Regular messages of a suite are protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordProtection {
    /// Encrypted and authenticated with the suite's AEAD.
    Aead(AeadAlg),
    /// Sent in clear with a 16-byte prf tag (suites 5 and 6).
    IntegrityOnly,
}

impl SuiteSpec {
    /// All suites, in wire-number order.
    pub const ALL: [SuiteSpec; 6] = [
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b,
        SuiteSpec::X25519LrswEcdsaP256NullSha512,
        SuiteSpec::X25519LrswEcdsaP256NullBlake2b,
    ];

    /// The four suites the C library (xaptum/xtt) knows; it answers Error to 5 and 6.
    pub const C_COMPATIBLE: [SuiteSpec; 4] = [
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
            SuiteSpec::X25519LrswEcdsaP256NullSha512 => 5,
            SuiteSpec::X25519LrswEcdsaP256NullBlake2b => 6,
        }
    }

    /// Parses the wire value; anything but 1–6 is [`InvalidMessage::UnknownSuite`].
    pub fn from_u16(v: u16) -> Result<Self, InvalidMessage> {
        match v {
            1 => Ok(SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512),
            2 => Ok(SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b),
            3 => Ok(SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512),
            4 => Ok(SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b),
            5 => Ok(SuiteSpec::X25519LrswEcdsaP256NullSha512),
            6 => Ok(SuiteSpec::X25519LrswEcdsaP256NullBlake2b),
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
            SuiteSpec::X25519LrswEcdsaP256NullSha512 => "X25519_LRSW_ECDSAP256_NULL_SHA512",
            SuiteSpec::X25519LrswEcdsaP256NullBlake2b => "X25519_LRSW_ECDSAP256_NULL_BLAKE2B",
        }
    }

    pub(crate) fn hash_alg(self) -> HashAlg {
        match self {
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512
            | SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512
            | SuiteSpec::X25519LrswEcdsaP256NullSha512 => HashAlg::Sha512,
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b
            | SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b
            | SuiteSpec::X25519LrswEcdsaP256NullBlake2b => HashAlg::Blake2b,
        }
    }

    /// The AEAD protecting handshake messages (suites 5 and 6: ChaCha20-Poly1305, as 1 and 2).
    pub(crate) fn aead_alg(self) -> AeadAlg {
        match self {
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512
            | SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b
            | SuiteSpec::X25519LrswEcdsaP256NullSha512
            | SuiteSpec::X25519LrswEcdsaP256NullBlake2b => AeadAlg::ChaCha20Poly1305,
            SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512
            | SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b => AeadAlg::Aes256Gcm,
        }
    }

    /// How records are protected.
    pub(crate) fn record_protection(self) -> RecordProtection {
        match self {
            SuiteSpec::X25519LrswEcdsaP256NullSha512
            | SuiteSpec::X25519LrswEcdsaP256NullBlake2b => RecordProtection::IntegrityOnly,
            other => RecordProtection::Aead(other.aead_alg()),
        }
    }

    /// Whether records of this suite are sent in clear (suites 5 and 6).
    pub fn is_integrity_only(self) -> bool {
        self.record_protection() == RecordProtection::IntegrityOnly
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
    fn rejects_suites_outside_one_to_six() {
        for v in [0u16, 7, 0x0100, 0x0105, 0xffff] {
            assert_eq!(SuiteSpec::from_u16(v), Err(InvalidMessage::UnknownSuite(v)));
        }
    }
}
