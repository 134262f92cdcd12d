//! ECDSA P-256 long-term key pairs (server certificate keys, root keys, client long-term keys).

use core::fmt;

use p256::Scalar;
use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::crypto;
use crate::error::CryptoError;

/// Size of a raw private key (big-endian scalar).
pub const PRIVATE_KEY_LEN: usize = 32;
/// Size of a public key (`04 ‖ X ‖ Y`).
pub const PUBLIC_KEY_LEN: usize = 65;

/// A validated P-256 public key in SEC1 uncompressed form.
// Equality is plain byte equality, only computed in constant time, so it agrees with the
// derived Hash.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Hash)]
pub struct LongtermPublicKey([u8; PUBLIC_KEY_LEN]);

impl LongtermPublicKey {
    /// Validates 65 bytes (`0x04` prefix, coordinates in range, point on the curve).
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, CryptoError> {
        crypto::p256_validate_public(bytes).map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self(*bytes))
    }

    /// The 65 wire bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Verifies ECDSA-P256-SHA256 `r ‖ s` over `message` (high S accepted).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        crypto::ecdsa_verify(&self.0, message, signature).is_ok()
    }
}

impl PartialEq for LongtermPublicKey {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}
impl Eq for LongtermPublicKey {}

impl fmt::Debug for LongtermPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LongtermPublicKey(")?;
        for b in &self.0[..9] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// An ECDSA P-256 key pair. The private scalar is zeroized on drop and never printed.
#[derive(Clone)]
pub struct LongtermKeyPair {
    private: Scalar,
    public: LongtermPublicKey,
}

impl Drop for LongtermKeyPair {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl fmt::Debug for LongtermKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongtermKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl LongtermKeyPair {
    /// Draws 32 bytes (exactly one draw, as C does) and reduces them modulo the group order.
    pub fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        loop {
            let mut bytes = [0u8; PRIVATE_KEY_LEN];
            rng.fill_bytes(&mut bytes);
            let d = crypto::p256_scalar_reduced(&bytes);
            bytes.zeroize();
            if let Ok(d) = d {
                return Self::from_scalar(d);
            }
        }
    }

    fn from_scalar(private: Scalar) -> Self {
        let public = LongtermPublicKey(crypto::p256_public(&private));
        Self { private, public }
    }

    /// Imports a raw 32-byte big-endian private key (must be in 1..n-1).
    pub fn from_private_bytes(bytes: &[u8; PRIVATE_KEY_LEN]) -> Result<Self, CryptoError> {
        let d = crypto::p256_scalar_canonical(bytes).map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self::from_scalar(d))
    }

    /// Exports the raw private key.
    pub fn private_bytes(&self) -> zeroize::Zeroizing<[u8; PRIVATE_KEY_LEN]> {
        crypto::p256_scalar_bytes(&self.private)
    }

    /// The public half.
    pub fn public_key(&self) -> &LongtermPublicKey {
        &self.public
    }

    /// Signs `message` with ECDSA-P256-SHA256, k from RFC 6979 hedged with `entropy` (empty slice:
    /// fully deterministic, the same signature every time).
    pub fn sign_rfc6979(&self, message: &[u8], entropy: &[u8]) -> Result<[u8; 64], CryptoError> {
        crypto::ecdsa_sign_rfc6979(&self.private, message, entropy)
            .map_err(|_| CryptoError::Primitive)
    }

    /// A signing nonce made before its message ([`crypto::EcdsaNonce::prepare`]); `seed` must
    /// be unique to the one signature it is for.
    pub(crate) fn prepare_nonce(
        &self,
        seed: &[u8; 32],
        entropy: &[u8],
    ) -> Result<crypto::EcdsaNonce, CryptoError> {
        crypto::EcdsaNonce::prepare(&self.private, seed, entropy)
            .map_err(|_| CryptoError::Primitive)
    }

    /// Signs `message` with a nonce this key prepared, using it up.
    pub(crate) fn sign_with_nonce(
        &self,
        nonce: crypto::EcdsaNonce,
        message: &[u8],
    ) -> Result<[u8; 64], CryptoError> {
        nonce
            .sign(&self.private, message)
            .map_err(|_| CryptoError::Primitive)
    }

    /// Signs with a caller-chosen nonce `k` (reduced modulo n), to reproduce recorded C
    /// signatures. Reusing a k with two messages reveals the private key: tests only.
    #[doc(hidden)]
    pub fn sign_with_k_for_testing_only(
        &self,
        k: &[u8; 32],
        message: &[u8],
    ) -> Result<[u8; 64], CryptoError> {
        crypto::ecdsa_sign_with_k(&self.private, k, message).map_err(|_| CryptoError::Primitive)
    }
}
