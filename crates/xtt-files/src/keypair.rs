//! ECDSA P-256 key pair files (`keys.asn1.bin`, `root_keys.asn1.bin`, `server_keys.asn1.bin`,
//! `longterm_priv.bin`): a DER SEC1 `ECPrivateKey` (RFC 5915) with the named curve prime256v1
//! and the public key, 121 bytes. The C tool writes exactly this encoding and reads it back by
//! fixed offsets (private key at 7, public key at 56), so what we write must be this exact
//! layout; what we read is parsed as DER, which also accepts the same structure from OpenSSL.

use std::path::Path;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use sec1::{EcParameters, EcPrivateKey};
use xtt_proto::longterm::{LongtermKeyPair, PRIVATE_KEY_LEN, PUBLIC_KEY_LEN};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsio::{self, Access, Overwrite};

/// Size of the file the C tool writes.
pub const KEYPAIR_FILE_LEN: usize = 121;
/// Offset of the private scalar in the file (the C reader's fixed offset).
pub const PRIVATE_KEY_OFFSET: usize = 7;
/// Offset of the public key in the file (the C reader's fixed offset).
pub const PUBLIC_KEY_OFFSET: usize = 56;
/// prime256v1 / secp256r1.
pub const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

const WHAT: &str = "ECDSA P-256 key pair file (DER ECPrivateKey)";
// Generous for the DER of a P-256 key with optional parts; anything bigger is not one.
const MAX_FILE: usize = 512;

/// Encodes a key pair as the C tool does (121 bytes, zeroized when dropped).
pub fn encode(key: &LongtermKeyPair) -> std::result::Result<Zeroizing<Vec<u8>>, der::Error> {
    let private = key.private_bytes();
    let der = EcPrivateKey {
        private_key: private.as_slice(),
        parameters: Some(EcParameters::NamedCurve(PRIME256V1)),
        public_key: Some(key.public_key().as_bytes()),
    }
    .to_der()?;
    Ok(Zeroizing::new(der))
}

/// Decodes a DER `ECPrivateKey` on P-256. The curve must be named prime256v1 (or omitted), the
/// private key must be 32 bytes in range, and a public key, if present, must be the one the
/// private key gives.
pub fn decode(bytes: &[u8]) -> std::result::Result<LongtermKeyPair, String> {
    let parsed = EcPrivateKey::from_der(bytes).map_err(|e| format!("DER: {e}"))?;
    match parsed.parameters {
        Some(EcParameters::NamedCurve(oid)) if oid == PRIME256V1 => {}
        Some(EcParameters::NamedCurve(oid)) => {
            return Err(format!("curve {oid} is not prime256v1 (P-256)"))
        }
        None => {}
    }
    let private: Zeroizing<[u8; PRIVATE_KEY_LEN]> = Zeroizing::new(
        parsed
            .private_key
            .try_into()
            .map_err(|_| format!("private key is {} bytes, not 32", parsed.private_key.len()))?,
    );
    let key = LongtermKeyPair::from_private_bytes(&private)
        .map_err(|_| "private key is zero or not below the P-256 group order".to_string())?;
    if let Some(public) = parsed.public_key {
        let public: &[u8; PUBLIC_KEY_LEN] = public
            .try_into()
            .map_err(|_| format!("public key is {} bytes, not 65", public.len()))?;
        if public != key.public_key().as_bytes() {
            return Err("the public key does not belong to the private key".into());
        }
    }
    Ok(key)
}

/// Reads a key pair file (with a warning if others may read it, see
/// [`fsio::warn_if_exposed`]).
pub fn read(path: &Path) -> Result<LongtermKeyPair> {
    let bytes = Zeroizing::new(fsio::read_secret_limited(path, WHAT, MAX_FILE)?);
    decode(&bytes).map_err(|reason| Error::malformed(path, WHAT, reason))
}

/// Writes a key pair file, 0600, crash-safely.
pub fn write(path: &Path, key: &LongtermKeyPair, overwrite: Overwrite) -> Result<()> {
    let der = encode(key).map_err(|e| Error::malformed(path, WHAT, format!("encoding: {e}")))?;
    fsio::write_atomic(path, &der, Access::Secret, overwrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn encoding_has_the_c_offsets() {
        let key = LongtermKeyPair::generate(&mut OsRng);
        let bytes = encode(&key).unwrap();
        assert_eq!(bytes.len(), KEYPAIR_FILE_LEN);
        assert_eq!(
            &bytes[PRIVATE_KEY_OFFSET..PRIVATE_KEY_OFFSET + 32],
            key.private_bytes().as_slice()
        );
        assert_eq!(&bytes[PUBLIC_KEY_OFFSET..], key.public_key().as_bytes());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn rejects_mismatched_public_key_and_other_curves() {
        let a = LongtermKeyPair::generate(&mut OsRng);
        let b = LongtermKeyPair::generate(&mut OsRng);
        let mut bytes = encode(&a).unwrap().to_vec();
        bytes[PUBLIC_KEY_OFFSET..].copy_from_slice(b.public_key().as_bytes());
        assert!(decode(&bytes).unwrap_err().contains("does not belong"));

        let mut bytes = encode(&a).unwrap().to_vec();
        // secp256k1 is 1.3.132.0.10; change the OID's last arc to make a different curve.
        bytes[48] = 0x08;
        assert!(decode(&bytes).unwrap_err().contains("not prime256v1"));

        assert!(decode(&[0x30, 0x03, 0x02, 0x01, 0x01])
            .unwrap_err()
            .starts_with("DER"));
        assert!(decode(&[]).is_err());
    }
}
