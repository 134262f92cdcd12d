//! Payload encryption: the Secret shared by Initiator and Recipient, and the Provisioning
//! Information it protects (draft-vinokurov-tigress-http-00 §7, RFC 5116).
//!
//! `data = IV(12) ‖ ciphertext ‖ tag(16)` with a fresh random IV per seal. No associated data:
//! the draft specifies none, and the mailbox id (the only candidate) is assigned by the relay
//! after the first payload has been sealed.

use crate::proto::wire::{PayloadType, SealedPayload};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const IV_LEN: usize = 12;

/// Errors of sealing, opening and parsing secrets and provisioning information.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the secret must be 16 bytes (AES-128) or 32 bytes (AES-256), got {0}")]
    SecretLength(usize),
    #[error("the secret is not valid base64")]
    SecretEncoding,
    #[error("the payload is encrypted with {payload:?} but the secret is for {secret:?}")]
    KindMismatch {
        payload: PayloadType,
        secret: PayloadType,
    },
    #[error("the payload does not decrypt under this secret (wrong secret or tampered data)")]
    Decrypt,
    #[error("the plaintext is too large to encrypt")]
    Encrypt,
    #[error("the payload is too short to be an AES-GCM message")]
    Truncated,
    #[error("the provisioning information is not valid: {0}")]
    ProvisioningInfo(String),
}

/// The symmetric key that travels in the share URL's fragment and never reaches the relay.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret {
    bytes: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bits, redacted)", self.bytes.len() * 8)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.bytes.ct_eq(&other.bytes).into()
    }
}
impl Eq for Secret {}

impl Secret {
    /// A fresh random secret for `kind`.
    pub fn generate<R: RngCore + CryptoRng>(kind: PayloadType, rng: &mut R) -> Self {
        let mut bytes = vec![0u8; kind.key_len()];
        rng.fill_bytes(&mut bytes);
        Secret { bytes }
    }

    /// Wraps raw key bytes (16 or 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        match bytes.len() {
            16 | 32 => Ok(Secret {
                bytes: bytes.to_vec(),
            }),
            n => Err(CryptoError::SecretLength(n)),
        }
    }

    /// The AEAD this key length selects.
    pub fn kind(&self) -> PayloadType {
        if self.bytes.len() == 32 {
            PayloadType::Aes256Gcm
        } else {
            PayloadType::Aes128Gcm
        }
    }

    /// base64url without padding, for the URL fragment.
    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode(&self.bytes))
    }

    /// Accepts base64url or standard base64, padded or not (the draft's example fragment,
    /// `hXlr6aRC7KgJpOLTNZaLsw==`, is standard base64 with padding).
    pub fn decode(text: &str) -> Result<Self, CryptoError> {
        let normalised: Zeroizing<String> = Zeroizing::new(
            text.trim_end_matches('=')
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect(),
        );
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(normalised.as_bytes())
                .map_err(|_| CryptoError::SecretEncoding)?,
        );
        Secret::from_bytes(&bytes)
    }

    /// Raw key bytes (e.g. to search a database dump for them in tests).
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Encrypts `plaintext` under a fresh random IV.
    pub fn seal<R: RngCore + CryptoRng>(
        &self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<SealedPayload, CryptoError> {
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        let nonce = Nonce::from_slice(&iv);
        // Only fails for plaintexts beyond GCM's 64 GiB limit.
        let ciphertext = match self.bytes.len() {
            32 => Aes256Gcm::new_from_slice(&self.bytes)
                .map_err(|_| CryptoError::SecretLength(self.bytes.len()))?
                .encrypt(nonce, plaintext),
            _ => Aes128Gcm::new_from_slice(&self.bytes)
                .map_err(|_| CryptoError::SecretLength(self.bytes.len()))?
                .encrypt(nonce, plaintext),
        }
        .map_err(|_| CryptoError::Encrypt)?;
        let mut bytes = Vec::with_capacity(IV_LEN + ciphertext.len());
        bytes.extend_from_slice(&iv);
        bytes.extend_from_slice(&ciphertext);
        Ok(SealedPayload {
            kind: self.kind(),
            bytes,
        })
    }

    /// Decrypts and authenticates a sealed payload.
    pub fn open(&self, sealed: &SealedPayload) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.kind != self.kind() {
            return Err(CryptoError::KindMismatch {
                payload: sealed.kind,
                secret: self.kind(),
            });
        }
        if sealed.bytes.len() < IV_LEN + 16 {
            return Err(CryptoError::Truncated);
        }
        let (iv, ciphertext) = sealed.bytes.split_at(IV_LEN);
        let nonce = Nonce::from_slice(iv);
        let plain = match self.bytes.len() {
            32 => Aes256Gcm::new_from_slice(&self.bytes)
                .map_err(|_| CryptoError::Decrypt)?
                .decrypt(nonce, ciphertext),
            _ => Aes128Gcm::new_from_slice(&self.bytes)
                .map_err(|_| CryptoError::Decrypt)?
                .decrypt(nonce, ciphertext),
        }
        .map_err(|_| CryptoError::Decrypt)?;
        Ok(Zeroizing::new(plain))
    }
}

/// Provisioning Information (draft §7): `{format, content, ...}`; formats may add top-level keys.
///
/// `content` is the credential being shared: the `Debug` form shows only the format and the
/// names of the keys, and every string in `content` and `extra` is overwritten on drop.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct ProvisioningInfo {
    pub format: String,
    pub content: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for ProvisioningInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key names are the format's field names; values are the credential.
        f.debug_struct("ProvisioningInfo")
            .field("format", &self.format)
            .field("content", &Redacted(&self.content))
            .field("extra", &Redacted(&self.extra))
            .finish()
    }
}

/// A JSON object shown as its key names only.
struct Redacted<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, format_args!("<redacted>"))))
            .finish()
    }
}

impl Drop for ProvisioningInfo {
    fn drop(&mut self) {
        wipe_map(&mut self.content);
        wipe_map(&mut self.extra);
    }
}

/// Overwrites every string (keys included) in `map` and empties it. Numbers and booleans are
/// replaced, not overwritten: `serde_json` gives no way to reach their bytes.
fn wipe_map(map: &mut serde_json::Map<String, serde_json::Value>) {
    for (mut key, mut value) in std::mem::take(map) {
        key.zeroize();
        wipe_value(&mut value);
    }
}

fn wipe_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(wipe_value),
        serde_json::Value::Object(map) => wipe_map(map),
        _ => {}
    }
    *value = serde_json::Value::Null;
}

impl ProvisioningInfo {
    /// A message with the given format and content and no extra keys.
    pub fn new(
        format: impl Into<String>,
        content: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        ProvisioningInfo {
            format: format.into(),
            content,
            extra: serde_json::Map::new(),
        }
    }

    /// Serialises to the bytes that get sealed.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        // Serialising a map of JSON values cannot fail.
        Zeroizing::new(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses decrypted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let info: ProvisioningInfo = serde_json::from_slice(bytes)
            .map_err(|e| CryptoError::ProvisioningInfo(e.to_string()))?;
        if info.format.is_empty() {
            return Err(CryptoError::ProvisioningInfo("format is empty".into()));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn seal_open_round_trip_both_key_sizes() {
        for kind in [PayloadType::Aes128Gcm, PayloadType::Aes256Gcm] {
            let secret = Secret::generate(kind, &mut OsRng);
            let sealed = secret.seal(b"hello", &mut OsRng).unwrap();
            assert_eq!(sealed.kind, kind);
            assert_eq!(sealed.bytes.len(), 12 + 5 + 16);
            assert_eq!(&secret.open(&sealed).unwrap()[..], b"hello");
        }
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let secret = Secret::generate(PayloadType::Aes128Gcm, &mut OsRng);
        let sealed = secret.seal(b"credential", &mut OsRng).unwrap();
        for i in 0..sealed.bytes.len() * 8 {
            let mut bad = sealed.clone();
            bad.bytes[i / 8] ^= 1 << (i % 8);
            assert_eq!(secret.open(&bad), Err(CryptoError::Decrypt), "bit {i}");
        }
        let mut short = sealed.clone();
        short.bytes.truncate(27);
        assert_eq!(secret.open(&short), Err(CryptoError::Truncated));
    }

    #[test]
    fn wrong_secret_and_kind_are_rejected() {
        let a = Secret::generate(PayloadType::Aes128Gcm, &mut OsRng);
        let b = Secret::generate(PayloadType::Aes128Gcm, &mut OsRng);
        let c = Secret::generate(PayloadType::Aes256Gcm, &mut OsRng);
        let sealed = a.seal(b"x", &mut OsRng).unwrap();
        assert_eq!(b.open(&sealed), Err(CryptoError::Decrypt));
        assert!(matches!(
            c.open(&sealed),
            Err(CryptoError::KindMismatch { .. })
        ));
    }

    #[test]
    fn secret_encodings() {
        // The draft's example fragment (standard base64, padded).
        let s = Secret::decode("hXlr6aRC7KgJpOLTNZaLsw==").unwrap();
        assert_eq!(s.kind(), PayloadType::Aes128Gcm);
        assert_eq!(*s.encode(), "hXlr6aRC7KgJpOLTNZaLsw");
        assert_eq!(Secret::decode(&s.encode()).unwrap(), s);
        assert_eq!(Secret::decode("AAAA"), Err(CryptoError::SecretLength(3)));
        assert_eq!(Secret::decode("!!"), Err(CryptoError::SecretEncoding));
        assert!(!format!("{s:?}").contains("hXlr"));
    }

    #[test]
    fn provisioning_info_debug_shows_no_content() {
        let text = br#"{"format":"f","content":{"token":"MARKER-SECRET-1","deep":{"k":["MARKER-SECRET-2"]}},"x":"MARKER-SECRET-3"}"#;
        let info = ProvisioningInfo::from_bytes(text).unwrap();
        for shown in [format!("{info:?}"), format!("{info:#?}")] {
            assert!(!shown.contains("MARKER"), "{shown}");
            assert!(shown.contains("\"f\"") && shown.contains("token") && shown.contains("\"x\""));
        }
    }

    #[test]
    fn wiping_overwrites_strings_and_empties_the_maps() {
        let mut value = serde_json::json!({"a": ["secret", {"b": "secret"}], "n": 1});
        wipe_value(&mut value);
        assert_eq!(value, serde_json::Value::Null);
        let mut info = ProvisioningInfo::new("f", serde_json::Map::new());
        info.content
            .insert("token".into(), serde_json::json!("secret"));
        wipe_map(&mut info.content);
        assert!(info.content.is_empty());
    }

    #[test]
    fn provisioning_info_keeps_extra_keys() {
        let text = br#"{"format":"digitalwallet.generic.authorizationToken","content":{"token":"abc"},"x":1}"#;
        let info = ProvisioningInfo::from_bytes(text).unwrap();
        assert_eq!(info.extra.get("x"), Some(&serde_json::json!(1)));
        assert_eq!(
            ProvisioningInfo::from_bytes(&info.to_bytes()).unwrap(),
            info
        );
        assert!(ProvisioningInfo::from_bytes(br#"{"format":"f","content":[]}"#).is_err());
        assert!(ProvisioningInfo::from_bytes(br#"{"format":"","content":{}}"#).is_err());
    }
}
