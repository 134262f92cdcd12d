//! The record layer's AEAD (XTT-SESSION §3) on ring: the same algorithms and bytes as the
//! handshake's RustCrypto AEAD in [`crate::crypto`] (AES-256-GCM, ChaCha20-Poly1305; 12-byte
//! nonce, 16-byte tag), but sealing and opening **in place** and with a key schedule that can be
//! kept between records. ring's assembly is what makes 16 KiB records cheap (several GB/s per
//! core with AES-NI/VAES and CLMUL, against ≈ 0.5 GB/s for the RustCrypto path).
//!
//! An expanded key ([`RecordCipher`]) is ~0.5 KiB for AES-256-GCM (round keys and the GHASH
//! table), so the server keeps one only for busy sessions (see [`crate::session_table`]); an
//! idle session stores its raw 32-byte keys and expands them for each record.
//!
//! Zeroization, a known gap: ring does not zeroize its key schedules when they are dropped, and
//! this crate forbids `unsafe`, so the memory of an evicted or dropped [`RecordCipher`] is
//! released as it is. That memory holds the key itself (ChaCha20 keeps the 32-byte key as is;
//! AES-256's first two round keys are the key), so a record key can outlive its session in
//! freed heap memory until the allocator reuses it. The raw copy in
//! [`crate::record::RecordKeys`] zeroizes itself, and the expansion reads a borrowed array (no
//! further copy). The alternative, RustCrypto's AEADs with their `zeroize` feature, costs about
//! 3× in record throughput (see `primitive-costs.md`); rustls, with the same ring keys, makes
//! the same trade.

use core::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};

use crate::crypto::{AeadAlg, CryptoFailure, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};

/// One direction's record key, expanded for ring.
pub(crate) struct RecordCipher(LessSafeKey);

impl fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordCipher").finish_non_exhaustive()
    }
}

impl RecordCipher {
    /// Expands `key` for `alg`.
    pub(crate) fn new(alg: AeadAlg, key: &[u8; AEAD_KEY_LEN]) -> Result<Self, CryptoFailure> {
        let alg = match alg {
            AeadAlg::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            AeadAlg::Aes256Gcm => &AES_256_GCM,
        };
        UnboundKey::new(alg, key)
            .map(|k| Self(LessSafeKey::new(k)))
            .map_err(|_| CryptoFailure)
    }

    /// Encrypts `in_out` in place; returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; AEAD_TAG_LEN], CryptoFailure> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), in_out)
            .map_err(|_| CryptoFailure)?;
        let mut out = [0u8; AEAD_TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Authenticates `ciphertext ‖ tag` and decrypts it in place; returns the plaintext (the
    /// first `in_out.len() - 16` bytes). On failure the plaintext is not released.
    pub(crate) fn open_in_place<'a>(
        &self,
        nonce: &[u8; AEAD_NONCE_LEN],
        ad: &[u8],
        in_out: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoFailure> {
        self.0
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), in_out)
            .map_err(|_| CryptoFailure)
    }
}
