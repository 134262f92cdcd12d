//! Storing one-time passwords: only a keyed hash, compared in constant time.
//!
//! OTPs are 128 random bits (or HKDF outputs of a 256-bit master secret, see [`crate::bulk`]), so
//! a slow password hash (Argon2id) buys nothing against guessing: 2^128 guesses stay 2^128
//! guesses. What matters is that a copy of the database alone does not let anyone test or use an
//! OTP; HMAC-SHA256 under a server key kept outside the database gives exactly that, for a few
//! microseconds per check (cheap enough that the bind endpoint cannot be turned into a CPU sink).
//! The DevURN is bound into the MAC input so a hash cannot be moved between devices.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::{Key256, Otp};
use crate::urn::DevUrn;

/// Domain separation for the MAC input.
const LABEL: &[u8] = b"tte1 otp hash\0";

/// The MAC input of [`OtpHasher::key_check`] (no OTP hash input starts with it).
const CHECK_LABEL: &[u8] = b"tte1 otp key check\0";

/// Hashes OTPs under the Transfer Agent's server key.
#[derive(Debug, Clone)]
pub struct OtpHasher {
    key: Key256,
}

impl OtpHasher {
    /// A hasher under `key` (the Transfer Agent's OTP key).
    pub fn new(key: Key256) -> Self {
        Self { key }
    }

    /// The value to store for (`urn`, `otp`).
    pub fn hash(&self, urn: &DevUrn, otp: &Otp) -> [u8; 32] {
        // HMAC accepts keys of any length; new_from_slice cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_bytes()) else {
            return [0; 32];
        };
        mac.update(LABEL);
        mac.update(urn.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(otp.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A value that identifies the key without revealing it (a MAC of a fixed label): stored
    /// beside the OTP hashes, it tells whether a key is the one they were made under.
    pub fn key_check(&self) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_bytes()) else {
            return [0; 32];
        };
        mac.update(CHECK_LABEL);
        mac.finalize().into_bytes().into()
    }

    /// Whether `otp` matches `stored`, in constant time.
    pub fn verify(&self, urn: &DevUrn, otp: &Otp, stored: &[u8]) -> bool {
        self.hash(urn, otp).ct_eq(stored).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_binds_key_urn_and_otp() {
        let h = OtpHasher::new(Key256::from_bytes([1; 32]));
        let u = DevUrn::parse("urn:dev:mac:01").unwrap();
        let v = DevUrn::parse("urn:dev:mac:02").unwrap();
        let otp = Otp::from_bytes([9; 16]);
        let stored = h.hash(&u, &otp);
        assert!(h.verify(&u, &otp, &stored));
        assert!(!h.verify(&v, &otp, &stored));
        assert!(!h.verify(&u, &Otp::from_bytes([8; 16]), &stored));
        assert!(!OtpHasher::new(Key256::from_bytes([2; 32])).verify(&u, &otp, &stored));
        assert!(!h.verify(&u, &otp, &stored[..31]));
    }

    #[test]
    fn the_key_check_tells_keys_apart_and_is_no_otp_hash() {
        let a = OtpHasher::new(Key256::from_bytes([1; 32]));
        let b = OtpHasher::new(Key256::from_bytes([2; 32]));
        assert_eq!(a.key_check(), a.clone().key_check());
        assert_ne!(a.key_check(), b.key_check());
        let u = DevUrn::parse("urn:dev:mac:01").unwrap();
        assert_ne!(a.key_check(), a.hash(&u, &Otp::from_bytes([0; 16])));
    }
}
