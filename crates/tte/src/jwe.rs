//! JWE compact serialization (RFC 7516) with `alg: dir` and `enc: A256GCM` (RFC 7518 §4.5, §5.3).
//!
//! This replaces the draft's SHA224-based CFB construction, which is unauthenticated and long
//! obsolete. Any JOSE library can read what we write:
//!
//! ```text
//! BASE64URL(header) . "" . BASE64URL(iv) . BASE64URL(ciphertext) . BASE64URL(tag)
//! header = {"alg":"dir","enc":"A256GCM","kid":"<DevURN>"[,"seq":<u64>][,"cty":"…"]}
//! ```
//!
//! The DevURN is the `kid` (the key *is* per device) and, being in the protected header, it is
//! part of the GCM additional authenticated data (`ASCII(BASE64URL(header))`, RFC 7516 §5.1
//! step 14). A ciphertext made for one device therefore fails for every other DevURN even under
//! the same key. `seq` is the replay counter of sensor updates (see the crate docs).
//!
//! The decoder is strict: `zip` (decompression bombs), `crit` (we understand no extension), a
//! non-empty encrypted key, an IV other than 96 bits or a tag other than 128 bits are refused
//! before any decryption is attempted.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::secret::Key256;
use crate::urn::DevUrn;

/// Largest compact JWE we will parse (bytes). Sensor packs are small; this bounds work per request.
pub const MAX_JWE_LEN: usize = 64 * 1024;

/// Media type of a compact JWE (RFC 7516 §9.2.1).
pub const MEDIA_TYPE: &str = "application/jose";

/// The protected header we write and accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JweHeader {
    /// Always `dir`.
    pub alg: String,
    /// Always `A256GCM`.
    pub enc: String,
    /// The DevURN.
    pub kid: String,
    /// Monotonic per-device counter (sensor updates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Content type of the plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
    /// Refused when present.
    #[serde(default, skip_serializing)]
    zip: Option<serde_json::Value>,
    /// Refused when present.
    #[serde(default, skip_serializing)]
    crit: Option<serde_json::Value>,
}

/// Why a JWE was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JweError {
    /// Longer than [`MAX_JWE_LEN`].
    #[error("JWE is {0} bytes; at most {MAX_JWE_LEN} are accepted")]
    TooLong(usize),
    /// Not five dot-separated base64url parts.
    #[error("not a JWE compact serialization (five base64url parts separated by dots)")]
    Format,
    /// Header is not the JSON object we expect.
    #[error("JWE protected header is not valid: {0}")]
    Header(String),
    /// `alg`/`enc`/`zip`/`crit`/encrypted key not what this profile allows.
    #[error("JWE uses an unsupported feature: {0}")]
    Unsupported(&'static str),
    /// `kid` names another device.
    #[error("JWE is for device {found:?}, expected {expected:?}")]
    WrongDevice {
        /// DevURN the request is about.
        expected: String,
        /// DevURN in the header.
        found: String,
    },
    /// Authentication failed: wrong key, wrong AAD or tampered data.
    #[error("JWE authentication failed (wrong key, wrong device, or tampered)")]
    Decrypt,
}

/// A successfully authenticated JWE.
#[derive(Debug)]
pub struct Decrypted {
    /// The protected header (authenticated).
    pub header: JweHeader,
    /// The plaintext.
    pub plaintext: Vec<u8>,
}

/// Encrypts `plaintext` for device `urn` under `key`.
pub fn encrypt(
    key: &Key256,
    urn: &DevUrn,
    seq: Option<u64>,
    cty: Option<&str>,
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> String {
    let header = JweHeader {
        alg: "dir".into(),
        enc: "A256GCM".into(),
        kid: urn.as_str().into(),
        seq,
        cty: cty.map(str::to_owned),
        zip: None,
        crit: None,
    };
    // Serializing a struct of strings and integers cannot fail.
    let header_json = serde_json::to_vec(&header).unwrap_or_default();
    let header_b64 = URL_SAFE_NO_PAD.encode(header_json);
    let mut iv = [0u8; 12];
    rng.fill_bytes(&mut iv);
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    let mut buf = plaintext.to_vec();
    // Only fails for plaintexts beyond GCM's 64 GiB limit, which MAX sizes upstream rule out.
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&iv), header_b64.as_bytes(), &mut buf)
        .unwrap_or_default();
    format!(
        "{header_b64}..{}.{}.{}",
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(&buf),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

struct Parts<'a> {
    header_b64: &'a str,
    header: JweHeader,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

fn split(compact: &str) -> Result<Parts<'_>, JweError> {
    if compact.len() > MAX_JWE_LEN {
        return Err(JweError::TooLong(compact.len()));
    }
    let compact = compact.trim();
    let mut it = compact.split('.');
    let (Some(h), Some(ek), Some(iv), Some(ct), Some(tag), None) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err(JweError::Format);
    };
    let d = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| JweError::Format);
    let header_json = d(h)?;
    let header: JweHeader =
        serde_json::from_slice(&header_json).map_err(|e| JweError::Header(e.to_string()))?;
    if header.alg != "dir" {
        return Err(JweError::Unsupported("alg other than dir"));
    }
    if header.enc != "A256GCM" {
        return Err(JweError::Unsupported("enc other than A256GCM"));
    }
    if header.zip.is_some() {
        return Err(JweError::Unsupported("zip"));
    }
    if header.crit.is_some() {
        return Err(JweError::Unsupported("crit"));
    }
    if !ek.is_empty() {
        return Err(JweError::Unsupported("encrypted key with alg dir"));
    }
    let (iv, ciphertext, tag) = (d(iv)?, d(ct)?, d(tag)?);
    if iv.len() != 12 {
        return Err(JweError::Unsupported("IV other than 96 bits"));
    }
    if tag.len() != 16 {
        return Err(JweError::Unsupported("tag other than 128 bits"));
    }
    Ok(Parts {
        header_b64: h,
        header,
        iv,
        ciphertext,
        tag,
    })
}

/// Reads the protected header without authenticating it, e.g. to look up which key to use.
/// Never act on it before [`decrypt`] succeeded.
pub fn peek_header(compact: &str) -> Result<JweHeader, JweError> {
    split(compact).map(|p| p.header)
}

/// Authenticates and decrypts `compact` for device `expected`.
pub fn decrypt(key: &Key256, expected: &DevUrn, compact: &str) -> Result<Decrypted, JweError> {
    let Parts {
        header_b64,
        header,
        iv,
        mut ciphertext,
        tag,
    } = split(compact)?;
    if header.kid != expected.as_str() {
        return Err(JweError::WrongDevice {
            expected: expected.as_str().into(),
            found: header.kid,
        });
    }
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&iv),
            header_b64.as_bytes(),
            &mut ciphertext,
            Tag::from_slice(&tag),
        )
        .map_err(|_| JweError::Decrypt)?;
    Ok(Decrypted {
        header,
        plaintext: ciphertext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn urn() -> DevUrn {
        DevUrn::parse("urn:dev:mac:90a2da001a0c").unwrap()
    }

    #[test]
    fn round_trip() {
        let k = Key256::generate(&mut OsRng);
        let jwe = encrypt(
            &k,
            &urn(),
            Some(5),
            Some("application/senml+json"),
            b"hi",
            &mut OsRng,
        );
        assert_eq!(jwe.split('.').nth(1), Some(""));
        let d = decrypt(&k, &urn(), &jwe).unwrap();
        assert_eq!(d.plaintext, b"hi");
        assert_eq!(d.header.seq, Some(5));
        assert_eq!(peek_header(&jwe).unwrap().kid, urn().as_str());
    }

    #[test]
    fn every_bit_flip_is_refused() {
        let k = Key256::generate(&mut OsRng);
        let jwe = encrypt(&k, &urn(), None, None, b"coap://c.example", &mut OsRng);
        let bytes = jwe.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] == b'.' {
                continue;
            }
            let mut t = bytes.to_vec();
            // Swap to another base64url character so the text stays decodable where possible.
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert!(decrypt(&k, &urn(), &t).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn wrong_key_or_device_is_refused() {
        let k = Key256::generate(&mut OsRng);
        let jwe = encrypt(&k, &urn(), None, None, b"x", &mut OsRng);
        let other = DevUrn::parse("urn:dev:mac:90a2da001a0d").unwrap();
        assert!(matches!(
            decrypt(&k, &other, &jwe),
            Err(JweError::WrongDevice { .. })
        ));
        assert_eq!(
            decrypt(&Key256::generate(&mut OsRng), &urn(), &jwe).unwrap_err(),
            JweError::Decrypt
        );
        // Re-labelling the header to another device changes the AAD: authentication fails.
        let jwe_other = encrypt(&k, &other, None, None, b"x", &mut OsRng);
        let mut parts: Vec<&str> = jwe.split('.').collect();
        parts[0] = jwe_other.split('.').next().unwrap();
        assert_eq!(
            decrypt(&k, &other, &parts.join(".")).unwrap_err(),
            JweError::Decrypt
        );
    }

    #[test]
    fn refuses_zip_crit_and_other_algs() {
        let hdr = |j: &str| URL_SAFE_NO_PAD.encode(j);
        let tail = format!(
            ".{}.{}.{}",
            URL_SAFE_NO_PAD.encode([0u8; 12]),
            "",
            URL_SAFE_NO_PAD.encode([0u8; 16])
        );
        let k = Key256::from_bytes([1; 32]);
        let u = urn();
        for (h, want) in [
            (
                r#"{"alg":"A256KW","enc":"A256GCM","kid":"x"}"#,
                "alg other than dir",
            ),
            (
                r#"{"alg":"dir","enc":"A128GCM","kid":"x"}"#,
                "enc other than A256GCM",
            ),
            (
                r#"{"alg":"dir","enc":"A256GCM","kid":"x","zip":"DEF"}"#,
                "zip",
            ),
            (
                r#"{"alg":"dir","enc":"A256GCM","kid":"x","crit":["b64"]}"#,
                "crit",
            ),
        ] {
            let jwe = format!("{}.{tail}", hdr(h));
            assert_eq!(
                decrypt(&k, &u, &jwe).unwrap_err(),
                JweError::Unsupported(want)
            );
        }
        assert_eq!(decrypt(&k, &u, "a.b.c").unwrap_err(), JweError::Format);
        assert!(matches!(
            decrypt(&k, &u, &"a".repeat(MAX_JWE_LEN + 1)),
            Err(JweError::TooLong(_))
        ));
    }
}
