//! The X.509 certificate the C client writes for its long-term key (`longterm_cert.bin`).
//!
//! `xtt_x509_from_ecdsap256_keypair` fills a fixed DER template: a v1 certificate (no version
//! field, no extensions) with a 20-byte serial (19 random bytes, top bit cleared, then 0x00),
//! ecdsa-with-SHA256, issuer = subject = one CN holding the ClientID text (UTF8String, 39
//! bytes), validity GeneralizedTime `00000101000000Z` to `99991231235959Z`, the P-256 key, and a
//! self-signature. We build the same structure with `der`/`x509-cert` types.
//!
//! Two details differ from a general X.509 library, for compatibility:
//! * The year 0000 is outside what `x509-cert`'s `Time` accepts, so the validity is carried as
//!   raw GeneralizedTime values.
//! * The C code writes r and s as fixed 32-byte INTEGERs (plus a 0x00 when the top bit is set),
//!   which is not minimal DER when a value starts with a zero byte (about 1 in 256
//!   certificates). We write minimal DER, which strict parsers (OpenSSL) require, and read both.
//!   Likewise we never write a serial whose first byte is zero (the C code does 1 time in 256),
//!   so the serial is always 20 bytes of minimal DER.

use std::path::Path;

use der::asn1::{Any, BitString, ObjectIdentifier, SetOfVec, UintRef};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use rand_core::CryptoRngCore;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use xtt_proto::longterm::{LongtermKeyPair, LongtermPublicKey, PUBLIC_KEY_LEN};
use xtt_proto::ClientId;

use crate::client_id::CLIENT_ID_TEXT_LEN;
use crate::error::{Error, Result};
use crate::fsio::{self, Access, Overwrite};
use crate::keypair::PRIME256V1;

/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-ecPublicKey.
pub const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// id-at-commonName.
pub const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// The C template's notBefore.
pub const NOT_BEFORE: &[u8; 15] = b"00000101000000Z";
/// The C template's notAfter.
pub const NOT_AFTER: &[u8; 15] = b"99991231235959Z";
/// Length of the serial number.
pub const SERIAL_LEN: usize = 20;
/// The largest certificate the C template can produce.
pub const MAX_CERTIFICATE_LEN: usize = 360;

const WHAT: &str = "XTT long-term X.509 certificate";

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct Validity {
    not_before: Any,
    not_after: Any,
}

/// TBSCertificate as the C template lays it out (v1: no version, no extensions). The serial is
/// kept raw so that C certificates with a non-minimal serial still parse.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct TbsCertificate {
    serial_number: Any,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct Certificate {
    tbs_certificate: TbsCertificate,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

#[derive(Sequence)]
struct EcdsaSignature<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// A parsed and self-signature-checked long-term certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongtermCertificate {
    /// The ClientID named in the common name (subject and issuer).
    pub client_id: ClientId,
    /// The certified P-256 key.
    pub public_key: LongtermPublicKey,
    /// The serial number's content bytes.
    pub serial: Vec<u8>,
    /// `r ‖ s` of the self-signature.
    pub signature: [u8; 64],
    /// Whether the signature INTEGERs are minimal DER (ours always; the C tool's not always).
    pub signature_is_minimal_der: bool,
}

/// Builds the certificate for `key` and `id`, self-signed, with a fresh random serial.
pub fn build(
    key: &LongtermKeyPair,
    id: &ClientId,
    rng: &mut dyn CryptoRngCore,
) -> std::result::Result<Vec<u8>, String> {
    let mut serial = [0u8; SERIAL_LEN];
    loop {
        rng.fill_bytes(&mut serial[..SERIAL_LEN - 1]);
        serial[0] &= 0x7f;
        if serial[0] != 0 {
            break;
        }
    }
    let mut hedge = [0u8; 32];
    rng.fill_bytes(&mut hedge);
    build_with(key, id, &serial, &hedge)
}

/// Builds with a given serial and RFC 6979 hedge (empty: deterministic signature). The serial
/// bytes are used as the INTEGER's content as they are, as C does.
pub fn build_with(
    key: &LongtermKeyPair,
    id: &ClientId,
    serial: &[u8; SERIAL_LEN],
    hedge: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let err = |e: der::Error| format!("encoding: {e}");
    let name = common_name(id).map_err(err)?;
    let ecdsa = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    };
    let tbs = TbsCertificate {
        serial_number: Any::new(Tag::Integer, serial.as_slice()).map_err(err)?,
        signature: ecdsa.clone(),
        issuer: name.clone(),
        validity: Validity {
            not_before: Any::new(Tag::GeneralizedTime, NOT_BEFORE.as_slice()).map_err(err)?,
            not_after: Any::new(Tag::GeneralizedTime, NOT_AFTER.as_slice()).map_err(err)?,
        },
        subject: name,
        subject_public_key_info: SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&PRIME256V1).map_err(err)?),
            },
            subject_public_key: BitString::from_bytes(key.public_key().as_bytes()).map_err(err)?,
        },
    };
    let tbs_der = tbs.to_der().map_err(err)?;
    let sig = key
        .sign_rfc6979(&tbs_der, hedge)
        .map_err(|e| format!("signing: {e}"))?;
    let (r, s) = sig.split_at(32);
    let sig_der = EcdsaSignature {
        r: UintRef::new(r).map_err(err)?,
        s: UintRef::new(s).map_err(err)?,
    }
    .to_der()
    .map_err(err)?;
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa,
        signature: BitString::from_bytes(&sig_der).map_err(err)?,
    }
    .to_der()
    .map_err(err)
}

fn common_name(id: &ClientId) -> der::Result<Name> {
    let text = id.to_string();
    let atv = AttributeTypeAndValue {
        oid: COMMON_NAME,
        value: Any::new(Tag::Utf8String, text.as_bytes())?,
    };
    Ok(RdnSequence(vec![RelativeDistinguishedName(
        SetOfVec::try_from(vec![atv])?,
    )]))
}

/// Parses a certificate of the C layout and checks its self-signature.
pub fn parse(bytes: &[u8]) -> std::result::Result<LongtermCertificate, String> {
    let cert = Certificate::from_der(bytes).map_err(|e| format!("DER: {e}"))?;
    let tbs = &cert.tbs_certificate;
    if tbs.signature.oid != ECDSA_WITH_SHA256 || cert.signature_algorithm.oid != ECDSA_WITH_SHA256 {
        return Err("signature algorithm is not ecdsa-with-SHA256".into());
    }
    if tbs.serial_number.tag() != Tag::Integer {
        return Err("serial number is not an INTEGER".into());
    }
    let spki = &tbs.subject_public_key_info;
    let curve_ok = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        == Some(PRIME256V1);
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY || !curve_ok {
        return Err("the key is not a P-256 (prime256v1) EC key".into());
    }
    let key_bytes: &[u8; PUBLIC_KEY_LEN] = spki
        .subject_public_key
        .as_bytes()
        .and_then(|b| b.try_into().ok())
        .ok_or("the public key is not a 65-byte uncompressed point")?;
    let public_key = LongtermPublicKey::from_bytes(key_bytes)
        .map_err(|_| "the public key is not a valid P-256 point")?;
    let subject = single_common_name(&tbs.subject).ok_or("the subject is not one common name")?;
    if single_common_name(&tbs.issuer).as_deref() != Some(subject.as_str()) {
        return Err("issuer and subject differ (not self-signed)".into());
    }
    if subject.len() != CLIENT_ID_TEXT_LEN {
        return Err(format!("common name {subject:?} is not a ClientID"));
    }
    let client_id: ClientId = subject
        .parse()
        .map_err(|_| format!("common name {subject:?} is not a ClientID"))?;
    let sig_der = cert
        .signature
        .as_bytes()
        .ok_or("signature BIT STRING has unused bits")?;
    let (signature, minimal) =
        parse_signature_lenient(sig_der).ok_or("signature is not an ECDSA (r, s) SEQUENCE")?;
    let tbs_der = tbs.to_der().map_err(|e| format!("re-encoding: {e}"))?;
    if !public_key.verify(&tbs_der, &signature) {
        return Err("the self-signature does not verify".into());
    }
    Ok(LongtermCertificate {
        client_id,
        public_key,
        serial: tbs.serial_number.value().to_vec(),
        signature,
        signature_is_minimal_der: minimal,
    })
}

fn single_common_name(name: &Name) -> Option<String> {
    let [rdn] = name.0.as_slice() else {
        return None;
    };
    let [atv] = rdn.0.as_slice() else {
        return None;
    };
    if atv.oid != COMMON_NAME || atv.value.tag() != Tag::Utf8String {
        return None;
    }
    String::from_utf8(atv.value.value().to_vec()).ok()
}

/// Reads `SEQUENCE { INTEGER r, INTEGER s }`, accepting the C tool's fixed-width integers.
/// Returns `r ‖ s` and whether both integers were minimal.
fn parse_signature_lenient(der: &[u8]) -> Option<([u8; 64], bool)> {
    let (&tag, rest) = der.split_first()?;
    let (&len, mut body) = rest.split_first()?;
    if tag != 0x30 || len >= 0x80 || usize::from(len) != body.len() {
        return None;
    }
    let mut out = [0u8; 64];
    let mut minimal = true;
    for half in out.chunks_mut(32) {
        let (&t, rest) = body.split_first()?;
        let (&l, rest) = rest.split_first()?;
        let l = usize::from(l);
        if t != 0x02 || l == 0 || l > 33 || rest.len() < l {
            return None;
        }
        let (int, rest) = rest.split_at(l);
        body = rest;
        if int.first()? & 0x80 != 0 {
            return None; // negative
        }
        let stripped = match int.iter().position(|&b| b != 0) {
            Some(i) => int.get(i..)?,
            None => &[][..],
        };
        let needed = stripped.len() + usize::from(stripped.first().is_some_and(|b| b & 0x80 != 0));
        minimal &= int.len() == needed.max(1);
        if stripped.len() > 32 {
            return None;
        }
        half.get_mut(32 - stripped.len()..)?
            .copy_from_slice(stripped);
    }
    body.is_empty().then_some((out, minimal))
}

/// Reads and checks `longterm_cert.bin`.
pub fn read(path: &Path) -> Result<LongtermCertificate> {
    let bytes = fsio::read_limited(path, WHAT, 4096)?;
    parse(&bytes).map_err(|reason| Error::malformed(path, WHAT, reason))
}

/// Writes `longterm_cert.bin` (0644, as the C client does).
pub fn write(path: &Path, der: &[u8], overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, der, Access::Public, overwrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn build_parse_round_trip() {
        let key = LongtermKeyPair::generate(&mut OsRng);
        let id = ClientId(*b"0123456789abcdef");
        let der = build(&key, &id, &mut OsRng).unwrap();
        assert!(
            (340..=MAX_CERTIFICATE_LEN).contains(&der.len()),
            "{}",
            der.len()
        );
        let cert = parse(&der).unwrap();
        assert_eq!(cert.client_id, id);
        assert_eq!(&cert.public_key, key.public_key());
        assert_eq!(cert.serial.len(), SERIAL_LEN);
        assert_eq!(cert.serial[SERIAL_LEN - 1], 0);
        assert!(cert.signature_is_minimal_der);
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let key = LongtermKeyPair::generate(&mut OsRng);
        let mut der = build(&key, &ClientId([7; 16]), &mut OsRng).unwrap();
        der[20] ^= 1; // inside the serial
        assert!(parse(&der).unwrap_err().contains("does not verify"));
    }

    #[test]
    fn lenient_signature_accepts_c_fixed_width() {
        // r with a leading zero byte written as 32 bytes (C) is accepted but flagged.
        let mut der = vec![0x30, 0x44, 0x02, 0x20, 0x00, 0x01];
        der.extend([0x11; 30]);
        der.extend([0x02, 0x20, 0x01]);
        der.extend([0x22; 31]);
        let (sig, minimal) = parse_signature_lenient(&der).unwrap();
        assert!(!minimal);
        assert_eq!(sig[1], 0x01);
        assert_eq!(sig[32], 0x01);
        assert!(parse_signature_lenient(&der[..der.len() - 1]).is_none());
    }
}
