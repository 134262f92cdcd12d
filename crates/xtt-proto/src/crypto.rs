//! Every call into a cryptographic primitive goes through this module, except the record
//! layer's AEAD, which seals and opens in place on ring in [`crate::record_cipher`].
//!
//! The interface is deliberately narrow (fixed-size byte arrays in, byte arrays out, one opaque
//! failure type) so that a faster backend (ring, aws-lc-rs) can replace the RustCrypto one for the
//! server without touching the protocol code. ECDSA verification already uses ring. Signing stays
//! on RustCrypto's `p256` arithmetic with RFC 6979 nonces, which the stateless cookie relies on
//! (the server recomputes its own signature from the cookie), with k·G from a precomputed
//! fixed-base table.

use aes_gcm::Aes256Gcm;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use ecdsa::hazmat::sign_prehashed;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::elliptic_curve::{Curve, FieldBytesEncoding};
use p256::elliptic_curve::{Field, PrimeField};
use p256::{AffinePoint, EncodedPoint, FieldBytes, NistP256, ProjectivePoint, Scalar, U256};
use sha2::{Digest, Sha256, Sha512};
use std::sync::OnceLock;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

/// A primitive refused its input (bad tag, bad point, zero scalar, ...). Deliberately opaque.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CryptoFailure;

/// The transcript hash of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha512,
    Blake2b,
}

/// The AEAD of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AeadAlg {
    ChaCha20Poly1305,
    Aes256Gcm,
}

pub(crate) const HASH_LEN: usize = 64;
pub(crate) const AEAD_KEY_LEN: usize = 32;
pub(crate) const AEAD_NONCE_LEN: usize = 12;
pub(crate) const AEAD_TAG_LEN: usize = 16;

/// Unkeyed hash over the concatenation of `parts`.
pub(crate) fn hash(alg: HashAlg, parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    match alg {
        HashAlg::Sha512 => {
            let mut h = Sha512::new();
            for p in parts {
                h.update(p);
            }
            out.copy_from_slice(&h.finalize());
        }
        HashAlg::Blake2b => {
            let mut st = blake2b_simd::Params::new().hash_length(HASH_LEN).to_state();
            for p in parts {
                st.update(p);
            }
            out.copy_from_slice(st.finalize().as_bytes());
        }
    }
    out
}

/// XTT's prf: HMAC-SHA-512 cut to `out.len()` bytes, or keyed BLAKE2b with digest length
/// `out.len()` (a parameter, not a truncation). `key` is at most 64 bytes; `out` 1..=64 bytes.
pub(crate) fn prf(alg: HashAlg, key: &[u8], parts: &[&[u8]], out: &mut [u8]) {
    PrfKey::new(alg, key).prf(parts, out);
}

/// A prf key set up once for several outputs: for HMAC-SHA-512 the padded key's two blocks are
/// hashed once (two of the four SHA-512 compressions a short prf output costs) and the state is
/// copied per output. Keyed BLAKE2b takes the output length as a parameter of its first block,
/// so it keeps the key and starts from it for each output.
// Lives on the stack for one key schedule; boxing the HMAC state would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PrfKey<'k> {
    HmacSha512(Hmac<Sha512>),
    Blake2b(&'k [u8]),
    /// HMAC refused the key: it accepts keys of any length, so this cannot happen; outputs are
    /// then left as they are.
    Refused,
}

impl<'k> PrfKey<'k> {
    pub(crate) fn new(alg: HashAlg, key: &'k [u8]) -> Self {
        match alg {
            HashAlg::Sha512 => match <Hmac<Sha512> as Mac>::new_from_slice(key) {
                Ok(mac) => Self::HmacSha512(mac),
                Err(_) => Self::Refused,
            },
            HashAlg::Blake2b => Self::Blake2b(key),
        }
    }

    /// `out.len()` bytes of the prf of `parts` (concatenated) under this key.
    pub(crate) fn prf(&self, parts: &[&[u8]], out: &mut [u8]) {
        match self {
            Self::HmacSha512(keyed) => {
                let mut mac = keyed.clone();
                for p in parts {
                    mac.update(p);
                }
                let full = Zeroizing::new(mac.finalize().into_bytes());
                for (o, i) in out.iter_mut().zip(full.iter()) {
                    *o = *i;
                }
            }
            Self::Blake2b(key) => {
                let mut st = blake2b_simd::Params::new()
                    .hash_length(out.len())
                    .key(key)
                    .to_state();
                for p in parts {
                    st.update(p);
                }
                let h = st.finalize();
                for (o, i) in out.iter_mut().zip(h.as_bytes().iter()) {
                    *o = *i;
                }
            }
            Self::Refused => {}
        }
    }
}

pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) {
        for p in parts {
            mac.update(p);
        }
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// `ad ‖ AEAD(plaintext)` is what XTT sends; this returns only `ciphertext ‖ tag`.
pub(crate) fn aead_seal(
    alg: AeadAlg,
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoFailure> {
    let payload = Payload {
        msg: plaintext,
        aad: ad,
    };
    match alg {
        AeadAlg::ChaCha20Poly1305 => ChaCha20Poly1305::new(key.into())
            .encrypt(nonce.into(), payload)
            .map_err(|_| CryptoFailure),
        AeadAlg::Aes256Gcm => Aes256Gcm::new(key.into())
            .encrypt(nonce.into(), payload)
            .map_err(|_| CryptoFailure),
    }
}

pub(crate) fn aead_open(
    alg: AeadAlg,
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    ad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
    let payload = Payload {
        msg: ciphertext_and_tag,
        aad: ad,
    };
    let pt = match alg {
        AeadAlg::ChaCha20Poly1305 => {
            ChaCha20Poly1305::new(key.into()).decrypt(nonce.into(), payload)
        }
        AeadAlg::Aes256Gcm => Aes256Gcm::new(key.into()).decrypt(nonce.into(), payload),
    };
    pt.map(Zeroizing::new).map_err(|_| CryptoFailure)
}

/// X25519 public key of a (not yet clamped) private key.
pub(crate) fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
    let secret = x25519_dalek::StaticSecret::from(*private);
    x25519_dalek::PublicKey::from(&secret).to_bytes()
}

/// X25519 shared secret; fails for non-contributory (low-order) peer keys, which give all zeros.
pub(crate) fn x25519_shared(
    private: &[u8; 32],
    peer_public: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, CryptoFailure> {
    let secret = x25519_dalek::StaticSecret::from(*private);
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*peer_public));
    if !shared.was_contributory() {
        return Err(CryptoFailure);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// A P-256 scalar from 32 big-endian bytes, reduced modulo the group order (as amcl does with
/// its random draws). Fails only for zero.
pub(crate) fn p256_scalar_reduced(bytes: &[u8; 32]) -> Result<Scalar, CryptoFailure> {
    let s = <Scalar as Reduce<U256>>::reduce_bytes(FieldBytes::from_slice(bytes));
    if bool::from(s.is_zero()) {
        return Err(CryptoFailure);
    }
    Ok(s)
}

/// A P-256 private scalar from its canonical 32-byte big-endian encoding (1..n-1).
pub(crate) fn p256_scalar_canonical(bytes: &[u8; 32]) -> Result<Scalar, CryptoFailure> {
    let s: Option<Scalar> = Scalar::from_repr(*FieldBytes::from_slice(bytes)).into();
    match s {
        Some(s) if !bool::from(s.is_zero()) => Ok(s),
        _ => Err(CryptoFailure),
    }
}

pub(crate) fn p256_scalar_bytes(s: &Scalar) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&s.to_repr());
    out
}

/// SEC1 uncompressed public key of a private scalar, d·G from the constant-time fixed-base
/// table ([`mul_base`]): a client draws a fresh long-term key in every identity handshake, and
/// `p256` 0.13's generic multiplication costs several times more.
pub(crate) fn p256_public(d: &Scalar) -> [u8; 65] {
    let p = mul_base(d).to_affine();
    let enc = p.to_encoded_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(enc.as_bytes());
    out
}

/// Validates a 65-byte SEC1 uncompressed public key (prefix 0x04, coordinates < p, on curve).
pub(crate) fn p256_validate_public(public: &[u8; 65]) -> Result<AffinePoint, CryptoFailure> {
    if public[0] != 0x04 {
        return Err(CryptoFailure);
    }
    let enc = EncodedPoint::from_bytes(public).map_err(|_| CryptoFailure)?;
    let p: Option<AffinePoint> = AffinePoint::from_encoded_point(&enc).into();
    p.ok_or(CryptoFailure)
}

fn ecdsa_digest(message: &[u8]) -> FieldBytes {
    FieldBytes::from(sha256(&[message]))
}

fn signature_bytes(sig: &p256::ecdsa::Signature) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(&sig.to_bytes());
    out
}

/// ECDSA-P256-SHA256 with k from RFC 6979, hedged with `entropy` (empty: fully deterministic).
///
/// The same computation as `ecdsa`'s `try_sign_prehashed_rfc6979` (same k, same r and s, no
/// low-S normalisation), except that R = k·G comes from a precomputed fixed-base table
/// ([`mul_base`]) instead of `p256` 0.13's generic double-and-add: about 3× faster, and the
/// server signs twice per handshake (the stateless cookie recomputes its signature).
pub(crate) fn ecdsa_sign_rfc6979(
    d: &Scalar,
    message: &[u8],
    entropy: &[u8],
) -> Result<[u8; 64], CryptoFailure> {
    let z = ecdsa_digest(message);
    let nonce = EcdsaNonce::rfc6979(d, &z, entropy)?;
    nonce.sign_digest(d, &z)
}

/// The part of an ECDSA signature that needs no message: `k⁻¹` and `r = x(k·G) mod n`. Used
/// once ([`EcdsaNonce::sign`] consumes it: a second message signed with the same k would reveal
/// the key); k⁻¹ is wiped on drop.
pub(crate) struct EcdsaNonce {
    k_inv: Zeroizing<Scalar>,
    r: Scalar,
}

impl EcdsaNonce {
    /// k from RFC 6979's HMAC-DRBG over the key, `seed` in the message digest's place, and
    /// `entropy`: for a nonce made before its message. The seed must be unique to the signature
    /// it is for (a fresh random value): with it and the entropy both repeated, so is k.
    pub(crate) fn prepare(
        d: &Scalar,
        seed: &[u8; 32],
        entropy: &[u8],
    ) -> Result<Self, CryptoFailure> {
        Self::rfc6979(d, &FieldBytes::from(*seed), entropy)
    }

    fn rfc6979(d: &Scalar, z: &FieldBytes, entropy: &[u8]) -> Result<Self, CryptoFailure> {
        // The nonce k, its inverse and the key's encoding are wiped on every return: with k and
        // the public signature, anyone who reads this memory later recovers the private key.
        let d_repr = Zeroizing::new(d.to_repr());
        let k_repr = Zeroizing::new(rfc6979::generate_k::<Sha256, _>(
            &d_repr,
            &NistP256::ORDER.encode_field_bytes(),
            z,
            entropy,
        ));
        let k: Option<Scalar> = Scalar::from_repr(*k_repr).into();
        let k = Zeroizing::new(k.ok_or(CryptoFailure)?);
        if bool::from(k.is_zero()) {
            return Err(CryptoFailure);
        }
        let k_inv = Zeroizing::new(scalar_invert(&k).ok_or(CryptoFailure)?);
        let big_r = mul_base(&k).to_affine();
        let r = <Scalar as Reduce<U256>>::reduce_bytes(&big_r.x());
        if bool::from(r.is_zero()) {
            return Err(CryptoFailure);
        }
        Ok(Self { k_inv, r })
    }

    /// Signs `message` (SHA-256, as [`ecdsa_sign_rfc6979`]) with this nonce.
    pub(crate) fn sign(self, d: &Scalar, message: &[u8]) -> Result<[u8; 64], CryptoFailure> {
        self.sign_digest(d, &ecdsa_digest(message))
    }

    fn sign_digest(&self, d: &Scalar, z: &FieldBytes) -> Result<[u8; 64], CryptoFailure> {
        let z = <Scalar as Reduce<U256>>::reduce_bytes(z);
        let s = *self.k_inv * (z + self.r * d);
        if bool::from(s.is_zero()) {
            return Err(CryptoFailure);
        }
        let mut out = [0u8; 64];
        let (r_out, s_out) = out.split_at_mut(32);
        r_out.copy_from_slice(&self.r.to_repr());
        s_out.copy_from_slice(&s.to_repr());
        Ok(out)
    }
}

crypto_bigint::impl_modulus!(
    P256Order,
    crypto_bigint::U256,
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"
);

/// `k⁻¹ mod n` in constant time (k is the secret nonce): crypto-bigint's fixed-iteration
/// inversion on the Montgomery form, ≈ 2× faster than p256 0.13's `Scalar::invert` (a Fermat
/// chain of ≈ 450 Barrett products). `None` for zero.
fn scalar_invert(k: &Scalar) -> Option<Scalar> {
    use crypto_bigint::modular::constant_mod::Residue;
    use crypto_bigint::{Encoding, U256 as Wide};
    let value = Zeroizing::new(Wide::from_be_slice(&Zeroizing::new(k.to_repr())));
    let (inverse, ok) = Residue::<P256Order, { Wide::LIMBS }>::new(&value).invert();
    let inverse = Zeroizing::new(inverse.retrieve());
    if !bool::from(subtle::Choice::from(ok)) {
        return None;
    }
    let bytes = Zeroizing::new(FieldBytes::from(inverse.to_be_bytes()));
    Option::from(Scalar::from_repr(*bytes))
}

/// `ROWS[i][j] = j · 16^i · G` in affine form (`j = 0`: the identity), 64 rows of 16 points.
struct BaseTable(Vec<[AffinePoint; 16]>);

fn base_table() -> &'static BaseTable {
    static TABLE: OnceLock<BaseTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rows = Vec::with_capacity(64);
        let mut base = ProjectivePoint::GENERATOR;
        for _ in 0..64 {
            let mut row = [AffinePoint::IDENTITY; 16];
            let mut acc = ProjectivePoint::IDENTITY;
            for entry in row.iter_mut().skip(1) {
                acc += base;
                *entry = acc.to_affine();
            }
            rows.push(row);
            // acc = 15·base, so acc + base = 16·base: the next row's unit.
            base = acc + base;
        }
        BaseTable(rows)
    })
}

/// k·G in constant time: one mixed addition per 4-bit window of k, each table entry chosen by a
/// masked select over the whole row, so neither the memory access pattern nor the additions
/// depend on k (the complete addition formulas handle the identity without branching).
fn mul_base(k: &Scalar) -> ProjectivePoint {
    let repr = Zeroizing::new(k.to_repr());
    // Nibbles of the big-endian encoding, least significant first.
    let nibbles = repr.iter().rev().flat_map(|b| [b & 0x0f, b >> 4]);
    let mut acc = ProjectivePoint::IDENTITY;
    for (row, nibble) in base_table().0.iter().zip(nibbles) {
        let mut selected = AffinePoint::IDENTITY;
        for (j, point) in (0u8..).zip(row.iter()) {
            selected.conditional_assign(point, j.ct_eq(&nibble));
        }
        acc += selected;
    }
    acc
}

/// ECDSA-P256-SHA256 with a caller-chosen nonce (reduced modulo n), no low-S normalisation.
pub(crate) fn ecdsa_sign_with_k(
    d: &Scalar,
    k: &[u8; 32],
    message: &[u8],
) -> Result<[u8; 64], CryptoFailure> {
    let k = p256_scalar_reduced(k)?;
    let z = ecdsa_digest(message);
    let (sig, _) = sign_prehashed::<NistP256, Scalar>(d, k, &z).map_err(|_| CryptoFailure)?;
    Ok(signature_bytes(&sig))
}

/// Verifies ECDSA-P256-SHA256 `r ‖ s` over `message`; high S is accepted (as C does).
///
/// ring does the work: about 5× faster than the RustCrypto arithmetic (≈ 70 µs against
/// ≈ 320 µs here), and a server verifies one signature per handshake, a client two. ring checks
/// the point (on the curve, coordinates below p) and 0 < r, s < n; the explicit prefix check
/// keeps compressed or hybrid encodings out, as [`p256_validate_public`] does.
pub(crate) fn ecdsa_verify(
    public: &[u8; 65],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), CryptoFailure> {
    if public[0] != 0x04 {
        return Err(CryptoFailure);
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public)
        .verify(message, signature)
        .map_err(|_| CryptoFailure)
}

/// The RustCrypto verification, kept as the reference the ring path is tested against.
#[cfg(test)]
fn ecdsa_verify_rustcrypto(
    public: &[u8; 65],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), CryptoFailure> {
    let q = p256_validate_public(public)?;
    let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| CryptoFailure)?;
    let z = ecdsa_digest(message);
    ecdsa::hazmat::verify_prehashed::<NistP256>(&ProjectivePoint::from(q), &z, &sig)
        .map_err(|_| CryptoFailure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_inversion_matches_p256() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let mut scalars: Vec<Scalar> = (0..200).map(|_| Scalar::random(&mut rng)).collect();
        scalars.extend([Scalar::ONE, -Scalar::ONE, Scalar::from(2u64)]);
        for k in scalars {
            let want: Option<Scalar> = k.invert().into();
            assert_eq!(scalar_invert(&k), want);
            assert_eq!(scalar_invert(&k).map(|i| i * k), Some(Scalar::ONE));
        }
        assert_eq!(scalar_invert(&Scalar::ZERO), None);
    }

    #[test]
    fn a_prf_key_set_up_once_gives_prf_bytes() {
        for alg in [HashAlg::Sha512, HashAlg::Blake2b] {
            for key_len in [0usize, 32, 64] {
                let key: Vec<u8> = (0u8..64).take(key_len).map(|i| i ^ 0x5c).collect();
                let keyed = PrfKey::new(alg, &key);
                for out_len in [12usize, 16, 32, 64] {
                    for label in [&b"a"[..], b"XTT session server iv"] {
                        // The definition, straight from the hash crates.
                        let msg = [&[7u8; 64][..], label].concat();
                        let want: Vec<u8> = match alg {
                            HashAlg::Sha512 => {
                                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(&key).unwrap();
                                mac.update(&msg);
                                mac.finalize().into_bytes()[..out_len].to_vec()
                            }
                            HashAlg::Blake2b => blake2b_simd::Params::new()
                                .hash_length(out_len)
                                .key(&key)
                                .hash(&msg)
                                .as_bytes()
                                .to_vec(),
                        };
                        let mut got = vec![0u8; out_len];
                        keyed.prf(&[&[7u8; 64], label], &mut got);
                        assert_eq!(got, want, "{alg:?} key {key_len} out {out_len}");
                        let mut again = vec![0u8; out_len];
                        prf(alg, &key, &[&[7u8; 64], label], &mut again);
                        assert_eq!(again, want);
                    }
                }
            }
        }
    }

    #[test]
    fn blake2b_prf_takes_output_length_as_a_parameter() {
        let mut short = [0u8; 32];
        let mut long = [0u8; 64];
        prf(HashAlg::Blake2b, &[0; 64], &[b"x"], &mut short);
        prf(HashAlg::Blake2b, &[0; 64], &[b"x"], &mut long);
        assert_ne!(short[..], long[..32]);
    }

    #[test]
    fn hmac_prf_is_a_truncation() {
        let mut short = [0u8; 12];
        let mut long = [0u8; 64];
        prf(HashAlg::Sha512, &[7; 64], &[b"x"], &mut short);
        prf(HashAlg::Sha512, &[7; 64], &[b"x"], &mut long);
        assert_eq!(short[..], long[..12]);
    }

    #[test]
    fn blake2b_zero_key_is_not_the_unkeyed_hash() {
        let mut keyed = [0u8; 64];
        prf(HashAlg::Blake2b, &[0; 64], &[b"x"], &mut keyed);
        assert_ne!(keyed, hash(HashAlg::Blake2b, &[b"x"]));
    }

    #[test]
    fn rejects_low_order_x25519_peer_key() {
        assert_eq!(x25519_shared(&[5; 32], &[0; 32]), Err(CryptoFailure));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(x25519_shared(&[5; 32], &one), Err(CryptoFailure));
    }

    #[test]
    fn verify_accepts_high_s() {
        let d = p256_scalar_reduced(&[3; 32]).unwrap();
        let public = p256_public(&d);
        let sig = ecdsa_sign_with_k(&d, &[9; 32], b"m").unwrap();
        assert!(ecdsa_verify(&public, b"m", &sig).is_ok());
        // (r, n - s) is the other valid signature; exactly one of the two is high-S.
        let s = <Scalar as Reduce<U256>>::reduce_bytes(FieldBytes::from_slice(&sig[32..]));
        let mut flipped = sig;
        flipped[32..].copy_from_slice(&(-s).to_repr());
        assert!(ecdsa_verify(&public, b"m", &flipped).is_ok());
    }

    /// The `ecdsa` crate's RFC 6979 signing, the reference for the table-based one.
    fn ecdsa_sign_rfc6979_reference(d: &Scalar, message: &[u8], entropy: &[u8]) -> [u8; 64] {
        use ecdsa::hazmat::SignPrimitive;
        let z = ecdsa_digest(message);
        let (sig, _) = d.try_sign_prehashed_rfc6979::<Sha256>(&z, entropy).unwrap();
        signature_bytes(&sig)
    }

    #[test]
    fn table_based_signing_matches_the_ecdsa_crate() {
        for i in 1u8..=40 {
            let d = p256_scalar_reduced(&[i.wrapping_mul(37); 32]).unwrap();
            let msg = [i; 50];
            let entropy: &[u8] = if i % 2 == 0 { &[] } else { &[i; 32] };
            assert_eq!(
                ecdsa_sign_rfc6979(&d, &msg, entropy).unwrap(),
                ecdsa_sign_rfc6979_reference(&d, &msg, entropy)
            );
        }
        // Scalars with all-zero and all-ones windows exercise the identity entries.
        for k in [
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from(16u64),
            Scalar::from(0x1000_0000u64),
        ] {
            assert_eq!(
                mul_base(&k).to_affine(),
                (ProjectivePoint::GENERATOR * k).to_affine()
            );
        }
    }

    #[test]
    fn public_keys_from_the_table_match_generic_multiplication() {
        for i in 1u8..=20 {
            let d = p256_scalar_reduced(&[i.wrapping_mul(91); 32]).unwrap();
            let generic = (ProjectivePoint::GENERATOR * d)
                .to_affine()
                .to_encoded_point(false);
            assert_eq!(p256_public(&d)[..], generic.as_bytes()[..]);
        }
    }

    #[test]
    fn ring_and_rustcrypto_verification_agree() {
        let d = p256_scalar_reduced(&[5; 32]).unwrap();
        let public = p256_public(&d);
        for i in 0u8..16 {
            let msg = [i; 40];
            let mut sig = ecdsa_sign_rfc6979(&d, &msg, &[i]).unwrap();
            assert!(ecdsa_verify(&public, &msg, &sig).is_ok());
            assert!(ecdsa_verify_rustcrypto(&public, &msg, &sig).is_ok());
            sig[usize::from(i) * 4] ^= 0x10;
            assert_eq!(
                ecdsa_verify(&public, &msg, &sig),
                ecdsa_verify_rustcrypto(&public, &msg, &sig)
            );
            assert!(ecdsa_verify(&public, &msg, &sig).is_err());
        }
        // r = 0, s = n (out of range) and an off-curve key are refused by both.
        let zero = [0u8; 64];
        assert!(ecdsa_verify(&public, b"m", &zero).is_err());
        let mut s_is_n = ecdsa_sign_rfc6979(&d, b"m", &[]).unwrap();
        s_is_n[32..].copy_from_slice(&hex_n());
        assert!(ecdsa_verify(&public, b"m", &s_is_n).is_err());
        assert!(ecdsa_verify_rustcrypto(&public, b"m", &s_is_n).is_err());
        let mut off = public;
        off[64] ^= 1;
        let sig = ecdsa_sign_rfc6979(&d, b"m", &[]).unwrap();
        assert!(ecdsa_verify(&off, b"m", &sig).is_err());
        let mut compressed = public;
        compressed[0] = 0x02;
        assert!(ecdsa_verify(&compressed, b"m", &sig).is_err());
    }

    /// The P-256 group order n, big-endian.
    fn hex_n() -> [u8; 32] {
        let mut n = [0u8; 32];
        let text = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
        for (i, b) in n.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        n
    }

    #[test]
    fn rejects_public_key_with_other_prefix_or_off_curve() {
        let d = p256_scalar_reduced(&[3; 32]).unwrap();
        let mut public = p256_public(&d);
        assert!(p256_validate_public(&public).is_ok());
        public[64] ^= 1;
        assert!(p256_validate_public(&public).is_err());
        public[64] ^= 1;
        public[0] = 0x05;
        assert!(p256_validate_public(&public).is_err());
    }
}
