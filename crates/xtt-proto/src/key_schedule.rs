//! The handshake key schedule exactly as C computes it (XTT-WIRE §7): prf without the draft's
//! `u16(N)` prefix, handshake secret keyed with 64 zero bytes.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{self, PrfKey, AEAD_KEY_LEN, AEAD_NONCE_LEN, HASH_LEN};
use crate::error::PeerMisbehaved;
use crate::suite::SuiteSpec;

const CLIENT_KEY_LABEL: &[u8] = b"XTT handshake client key";
const CLIENT_IV_LABEL: &[u8] = b"XTT handshake client iv";
const SERVER_KEY_LABEL: &[u8] = b"XTT handshake server key";
const SERVER_IV_LABEL: &[u8] = b"XTT handshake server iv";

/// One direction's AEAD key and IV.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DirectionKeys {
    key: [u8; AEAD_KEY_LEN],
    iv: [u8; AEAD_NONCE_LEN],
}

impl fmt::Debug for DirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectionKeys").finish_non_exhaustive()
    }
}

/// `iv XOR (0^8 ‖ u32(seq))`.
pub fn nonce(iv: &[u8; AEAD_NONCE_LEN], seq: u32) -> [u8; AEAD_NONCE_LEN] {
    let mut n = *iv;
    for (d, s) in n[AEAD_NONCE_LEN - 4..].iter_mut().zip(seq.to_be_bytes()) {
        *d ^= s;
    }
    n
}

impl DirectionKeys {
    /// Seals `plaintext` with sequence number `seq`; returns `ciphertext ‖ tag`.
    pub fn seal(
        &self,
        suite: SuiteSpec,
        seq: u32,
        ad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, crate::error::CryptoError> {
        crypto::aead_seal(
            suite.aead_alg(),
            &self.key,
            &nonce(&self.iv, seq),
            ad,
            plaintext,
        )
        .map_err(|_| crate::error::CryptoError::Primitive)
    }

    /// Opens `ciphertext ‖ tag` with sequence number `seq`.
    pub fn open(
        &self,
        suite: SuiteSpec,
        seq: u32,
        ad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, PeerMisbehaved> {
        crypto::aead_open(
            suite.aead_alg(),
            &self.key,
            &nonce(&self.iv, seq),
            ad,
            ciphertext,
        )
        .map_err(|_| PeerMisbehaved::DecryptionFailed)
    }

    /// The raw key (tests compare it with recorded values).
    #[doc(hidden)]
    pub fn key_for_testing_only(&self) -> [u8; AEAD_KEY_LEN] {
        self.key
    }

    /// The raw IV (tests compare it with recorded values).
    #[doc(hidden)]
    pub fn iv_for_testing_only(&self) -> [u8; AEAD_NONCE_LEN] {
        self.iv
    }
}

/// Handshake secret and the four derived values.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HandshakeKeys {
    secret: [u8; HASH_LEN],
    /// Client → server.
    pub(crate) client: DirectionKeys,
    /// Server → client.
    pub(crate) server: DirectionKeys,
}

impl fmt::Debug for HandshakeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeKeys").finish_non_exhaustive()
    }
}

impl HandshakeKeys {
    /// `HS = prf(0^64, shared, 64)`, then keys/IVs `prf(HS, HKH ‖ label, n)`.
    pub fn derive(
        suite: SuiteSpec,
        shared_secret: &[u8; 32],
        handshake_key_hash: &[u8; 64],
    ) -> Self {
        let mut secret = [0u8; HASH_LEN];
        suite.prf(&[0u8; HASH_LEN], &[shared_secret], &mut secret);
        let mut client = DirectionKeys {
            key: [0; AEAD_KEY_LEN],
            iv: [0; AEAD_NONCE_LEN],
        };
        let mut server = client.clone();
        let prf = PrfKey::new(suite.hash_alg(), &secret);
        prf.prf(&[handshake_key_hash, CLIENT_KEY_LABEL], &mut client.key);
        prf.prf(&[handshake_key_hash, CLIENT_IV_LABEL], &mut client.iv);
        prf.prf(&[handshake_key_hash, SERVER_KEY_LABEL], &mut server.key);
        prf.prf(&[handshake_key_hash, SERVER_IV_LABEL], &mut server.iv);
        Self {
            secret,
            client,
            server,
        }
    }

    /// The client's send keys (the server's receive keys).
    pub fn client_send(&self) -> &DirectionKeys {
        &self.client
    }

    /// The server's send keys (the client's receive keys).
    pub fn server_send(&self) -> &DirectionKeys {
        &self.server
    }

    /// The handshake secret (the session key schedule is keyed with it).
    pub(crate) fn secret(&self) -> &[u8; HASH_LEN] {
        &self.secret
    }

    /// The handshake secret.
    #[doc(hidden)]
    pub fn secret_for_testing_only(&self) -> [u8; HASH_LEN] {
        self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_xors_big_endian_sequence_into_the_last_four_bytes() {
        let iv = [0xffu8; 12];
        let n = nonce(&iv, 0x0102_0304);
        assert_eq!(n[..8], [0xff; 8]);
        assert_eq!(n[8..], [0xfe, 0xfd, 0xfc, 0xfb]);
        assert_eq!(nonce(&iv, 0), iv);
    }

    #[test]
    fn handshake_keys_differ_per_direction_and_suite() {
        let a = HandshakeKeys::derive(SuiteSpec::ALL[0], &[1; 32], &[2; 64]);
        let b = HandshakeKeys::derive(SuiteSpec::ALL[1], &[1; 32], &[2; 64]);
        assert_ne!(a.client.key, a.server.key);
        assert_ne!(a.client.key, b.client.key);
    }
}
