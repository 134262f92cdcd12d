//! 256-bit shared secrets and 128-bit one-time passwords, zeroized on drop, compared in
//! constant time, carried as unpadded base64url text.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why a base64url string is not a secret of the expected size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not unpadded base64url.
    #[error("{0} is not unpadded base64url")]
    Base64(&'static str),
    /// Decodes to the wrong number of bytes.
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        /// Which secret.
        what: &'static str,
        /// Bytes required.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
}

macro_rules! fixed_secret {
    ($(#[$doc:meta])* $name:ident, $len:expr, $label:expr) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Draws a fresh value from `rng`.
            pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
                let mut b = [0u8; $len];
                rng.fill_bytes(&mut b);
                Self(b)
            }

            /// Wraps raw bytes.
            pub fn from_bytes(b: [u8; $len]) -> Self {
                Self(b)
            }

            /// Decodes unpadded base64url text.
            pub fn from_b64(s: &str) -> Result<Self, SecretError> {
                let mut v = URL_SAFE_NO_PAD
                    .decode(s.trim())
                    .map_err(|_| SecretError::Base64($label))?;
                let out = <[u8; $len]>::try_from(v.as_slice()).map(Self).map_err(|_| {
                    SecretError::Length { what: $label, expected: $len, got: v.len() }
                });
                v.zeroize();
                out
            }

            /// Unpadded base64url text.
            pub fn to_b64(&self) -> String {
                URL_SAFE_NO_PAD.encode(self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }
        impl Eq for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

fixed_secret!(
    /// A 256-bit symmetric key: TaSecret (device ↔ Transfer Agent), DevSecret (device ↔
    /// Controller), a bulk master secret, or a server's OTP-hashing key. Used directly as the
    /// A256GCM content-encryption key (`alg: dir`).
    Key256,
    32,
    "a 256-bit key"
);

fixed_secret!(
    /// A 128-bit one-time password: enough entropy that an online guesser never succeeds and a
    /// keyed hash (not a slow password hash) suffices to store it (see [`crate::otp`]).
    Otp,
    16,
    "an OTP"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let k = Key256::from_bytes([7; 32]);
        let s = k.to_b64();
        assert_eq!(s.len(), 43);
        assert_eq!(Key256::from_b64(&s).unwrap(), k);
        assert_eq!(
            Key256::from_b64("AAAA"),
            Err(SecretError::Length {
                what: "a 256-bit key",
                expected: 32,
                got: 3
            })
        );
        assert_eq!(Otp::from_b64("a+b/"), Err(SecretError::Base64("an OTP")));
        assert!(!format!("{k:?}").contains('7'));
    }
}
