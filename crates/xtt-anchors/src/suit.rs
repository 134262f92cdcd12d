//! A subset of SUIT: the CBOR envelope of draft-ietf-suit-manifest (the serialization of the
//! RFC 9124 information model), authenticated by one COSE_Sign1 (RFC 9052) with ES256.
//!
//! RFC 9124 itself is the information model (sequence number, vendor and class ids, payload
//! digest and size, signatures); the CBOR keys below are those of its serialization,
//! draft-ietf-suit-manifest, as registered by IANA in the "SUIT Envelope Elements", "SUIT
//! Manifest Elements", "SUIT Common Elements", "SUIT Commands" and "SUIT Parameters" registries.
//!
//! ```text
//! SUIT_Envelope_Tagged = #6.107({
//!   2 (authentication-wrapper): bstr .cbor [
//!         bstr .cbor SUIT_Digest,                 ; [-16 (SHA-256), bstr]
//!         bstr .cbor COSE_Sign1_Tagged            ; #6.18, payload nil (detached)
//!       ],
//!   3 (manifest): bstr .cbor {
//!         1 (manifest-version): 1,
//!         2 (manifest-sequence-number): uint,
//!         3 (common): bstr .cbor {
//!               2 (components): [[ bstr* ]],      ; exactly one component
//!               4 (shared-sequence): bstr .cbor [
//!                     20 (directive-override-parameters), {
//!                         1 (vendor-id): bstr(16), 2 (class-id): bstr(16),
//!                         3 (image-digest): bstr .cbor SUIT_Digest, 14 (image-size): uint },
//!                     1 (condition-vendor-identifier), 15,
//!                     2 (condition-class-identifier), 15 ] },
//!         7 (validate): bstr .cbor [ 3 (condition-image-match), 15 ] })
//! ```
//!
//! * The manifest digest is SHA-256 over the manifest **as the bstr it travels in** (CBOR
//!   header included), as in the draft's examples (the unit tests reproduce Example 0's
//!   digest).
//! * The COSE_Sign1's detached payload is the encoded SUIT_Digest (the contents of the
//!   wrapper's first bstr); the protected header carries `alg: ES256 (-7)` and, as a hint, the
//!   signer's anchor fingerprint as `kid`; the external AAD is empty.
//! * Anything outside the subset (other manifest elements, dependencies, several components,
//!   other digest or signature algorithms, MACs, several signatures, integrated payloads) is
//!   refused rather than ignored, so nothing the vendor signed is silently skipped.
//! * `15` after each condition is the reporting policy (all report bits), as in the examples.

use ciborium::value::{Integer, Value};
use coset::{
    iana, CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable,
};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::UpdateError;

/// CBOR tag of SUIT_Envelope_Tagged.
pub const SUIT_ENVELOPE_TAG: u64 = 107;
/// Envelope element: authentication wrapper.
pub const ENVELOPE_AUTHENTICATION_WRAPPER: i64 = 2;
/// Envelope element: manifest.
pub const ENVELOPE_MANIFEST: i64 = 3;
/// Manifest element: manifest (encoding) version.
pub const MANIFEST_VERSION: i64 = 1;
/// Manifest element: sequence number.
pub const MANIFEST_SEQUENCE_NUMBER: i64 = 2;
/// Manifest element: common data.
pub const MANIFEST_COMMON: i64 = 3;
/// Manifest element: image validation sequence.
pub const MANIFEST_VALIDATE: i64 = 7;
/// Common element: components.
pub const COMMON_COMPONENTS: i64 = 2;
/// Common element: shared sequence.
pub const COMMON_SHARED_SEQUENCE: i64 = 4;
/// Command: condition vendor identifier.
pub const CONDITION_VENDOR_IDENTIFIER: i64 = 1;
/// Command: condition class identifier.
pub const CONDITION_CLASS_IDENTIFIER: i64 = 2;
/// Command: condition image match.
pub const CONDITION_IMAGE_MATCH: i64 = 3;
/// Command: directive override parameters.
pub const DIRECTIVE_OVERRIDE_PARAMETERS: i64 = 20;
/// Parameter: vendor id.
pub const PARAMETER_VENDOR_ID: i64 = 1;
/// Parameter: class id.
pub const PARAMETER_CLASS_ID: i64 = 2;
/// Parameter: image digest.
pub const PARAMETER_IMAGE_DIGEST: i64 = 3;
/// Parameter: image size.
pub const PARAMETER_IMAGE_SIZE: i64 = 14;
/// Reporting policy used after every condition (all report bits).
pub const REPORTING_POLICY: i64 = 15;
/// COSE algorithm id of SHA-256 (the only digest accepted).
pub const COSE_ALG_SHA256: i64 = -16;
/// The only manifest version defined.
pub const SUPPORTED_MANIFEST_VERSION: i64 = 1;
/// First byte of a CBOR tag 18 (COSE_Sign1_Tagged).
const COSE_SIGN1_TAG_BYTE: u8 = 0xd2;
/// Largest envelope accepted (the image travels separately).
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;

/// The largest sequence number accepted (decoding) or signed: 2^63-1, what the store can record
/// (SQLite integers are signed 64-bit). RFC 9124 allows any uint; a larger one would pass every
/// check, install, and then not be recorded.
pub const MAX_SEQUENCE: u64 = i64::MAX as u64;

/// What this subset of a manifest says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Anti-rollback counter: a device accepts only numbers greater than the last accepted.
    pub sequence_number: u64,
    /// The vendor (an RFC 4122 UUID's 16 bytes).
    pub vendor_id: [u8; 16],
    /// The device class (an RFC 4122 UUID's 16 bytes).
    pub class_id: [u8; 16],
    /// The component the image is for (SUIT component identifier: a list of byte strings).
    pub component_id: Vec<Vec<u8>>,
    /// SHA-256 of the image.
    pub image_digest: [u8; 32],
    /// Size of the image in bytes.
    pub image_size: u64,
}

fn int(v: i64) -> Value {
    Value::Integer(Integer::from(v))
}

fn uint(v: u64) -> Value {
    Value::Integer(Integer::from(v))
}

fn encode(value: &Value) -> Result<Vec<u8>, UpdateError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out)
        .map_err(|e| UpdateError::Signing(format!("CBOR encoding: {e}")))?;
    Ok(out)
}

fn malformed(what: impl Into<String>) -> UpdateError {
    UpdateError::Malformed(what.into())
}

fn decode(bytes: &[u8], what: &str) -> Result<Value, UpdateError> {
    let mut rest = bytes;
    let value: Value = ciborium::from_reader(&mut rest)
        .map_err(|e| malformed(format!("{what} is not CBOR: {e}")))?;
    // One item exactly: trailing bytes would be unauthenticated padding.
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{what} has {} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// A SUIT_Digest with SHA-256: `[-16, bstr]`.
fn digest_value(digest: &[u8; 32]) -> Value {
    Value::Array(vec![int(COSE_ALG_SHA256), Value::Bytes(digest.to_vec())])
}

fn parse_digest(value: &Value, what: &str) -> Result<[u8; 32], UpdateError> {
    let Value::Array(items) = value else {
        return Err(malformed(format!("{what} is not a SUIT_Digest array")));
    };
    match items.as_slice() {
        [Value::Integer(alg), Value::Bytes(bytes)] => {
            if i128::from(*alg) != i128::from(COSE_ALG_SHA256) {
                return Err(malformed(format!(
                    "{what} uses digest algorithm {}, only SHA-256 (-16) is supported",
                    i128::from(*alg)
                )));
            }
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| malformed(format!("{what} is not 32 bytes")))
        }
        _ => Err(malformed(format!("{what} is not [algorithm, bytes]"))),
    }
}

/// SHA-256 over the manifest as it travels: the CBOR bstr header followed by the bytes.
pub fn manifest_digest(manifest_bytes: &[u8]) -> Result<[u8; 32], UpdateError> {
    let wrapped = encode(&Value::Bytes(manifest_bytes.to_vec()))?;
    Ok(Sha256::digest(&wrapped).into())
}

impl Manifest {
    /// The manifest for `image`.
    pub fn for_image(
        image: &[u8],
        sequence_number: u64,
        vendor_id: [u8; 16],
        class_id: [u8; 16],
        component_id: Vec<Vec<u8>>,
    ) -> Self {
        Manifest {
            sequence_number,
            vendor_id,
            class_id,
            component_id,
            image_digest: Sha256::digest(image).into(),
            image_size: image.len() as u64,
        }
    }

    /// The CBOR bytes of SUIT_Manifest (keys in ascending order, definite lengths).
    pub fn encode(&self) -> Result<Vec<u8>, UpdateError> {
        let shared = Value::Array(vec![
            int(DIRECTIVE_OVERRIDE_PARAMETERS),
            Value::Map(vec![
                (
                    int(PARAMETER_VENDOR_ID),
                    Value::Bytes(self.vendor_id.to_vec()),
                ),
                (
                    int(PARAMETER_CLASS_ID),
                    Value::Bytes(self.class_id.to_vec()),
                ),
                (
                    int(PARAMETER_IMAGE_DIGEST),
                    Value::Bytes(encode(&digest_value(&self.image_digest))?),
                ),
                (int(PARAMETER_IMAGE_SIZE), uint(self.image_size)),
            ]),
            int(CONDITION_VENDOR_IDENTIFIER),
            int(REPORTING_POLICY),
            int(CONDITION_CLASS_IDENTIFIER),
            int(REPORTING_POLICY),
        ]);
        let component = Value::Array(
            self.component_id
                .iter()
                .map(|c| Value::Bytes(c.clone()))
                .collect(),
        );
        let common = Value::Map(vec![
            (int(COMMON_COMPONENTS), Value::Array(vec![component])),
            (int(COMMON_SHARED_SEQUENCE), Value::Bytes(encode(&shared)?)),
        ]);
        let validate = Value::Array(vec![int(CONDITION_IMAGE_MATCH), int(REPORTING_POLICY)]);
        encode(&Value::Map(vec![
            (int(MANIFEST_VERSION), int(SUPPORTED_MANIFEST_VERSION)),
            (int(MANIFEST_SEQUENCE_NUMBER), uint(self.sequence_number)),
            (int(MANIFEST_COMMON), Value::Bytes(encode(&common)?)),
            (int(MANIFEST_VALIDATE), Value::Bytes(encode(&validate)?)),
        ]))
    }

    /// Parses SUIT_Manifest bytes, refusing anything outside the subset.
    pub fn decode(bytes: &[u8]) -> Result<Self, UpdateError> {
        let map = int_map(decode(bytes, "manifest")?, "manifest", &[1, 2, 3, 7])?;
        match get(&map, MANIFEST_VERSION) {
            Some(Value::Integer(v)) if i128::from(*v) == i128::from(SUPPORTED_MANIFEST_VERSION) => {
            }
            Some(_) => return Err(malformed("manifest-version is not 1")),
            None => return Err(malformed("manifest-version missing")),
        }
        let sequence_number = match get(&map, MANIFEST_SEQUENCE_NUMBER) {
            Some(Value::Integer(v)) => u64::try_from(*v)
                .map_err(|_| malformed("manifest-sequence-number is not an unsigned integer"))?,
            _ => return Err(malformed("manifest-sequence-number missing")),
        };
        if sequence_number > MAX_SEQUENCE {
            return Err(UpdateError::SequenceTooLarge(sequence_number));
        }
        let common = bstr_cbor(get(&map, MANIFEST_COMMON), "common")?;
        let common = int_map(common, "common", &[2, 4])?;
        let component_id = match get(&common, COMMON_COMPONENTS) {
            Some(Value::Array(components)) => match components.as_slice() {
                [Value::Array(parts)] => parts
                    .iter()
                    .map(|p| match p {
                        Value::Bytes(b) => Ok(b.clone()),
                        _ => Err(malformed("component identifier part is not a bstr")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(malformed("this subset takes exactly one component")),
            },
            _ => return Err(malformed("components missing")),
        };
        let shared = bstr_cbor(get(&common, COMMON_SHARED_SEQUENCE), "shared-sequence")?;
        let Value::Array(commands) = shared else {
            return Err(malformed("shared-sequence is not an array"));
        };
        let mut params: Option<Vec<(Value, Value)>> = None;
        let mut conditions = Vec::new();
        for pair in commands.chunks(2) {
            let [Value::Integer(cmd), arg] = pair else {
                return Err(malformed(
                    "shared-sequence is not (command, argument) pairs",
                ));
            };
            match i64::try_from(*cmd) {
                Ok(DIRECTIVE_OVERRIDE_PARAMETERS) if params.is_none() => {
                    let Value::Map(m) = arg else {
                        return Err(malformed("override-parameters argument is not a map"));
                    };
                    params = Some(m.clone());
                }
                Ok(c @ (CONDITION_VENDOR_IDENTIFIER | CONDITION_CLASS_IDENTIFIER)) => {
                    conditions.push(c)
                }
                Ok(c) => {
                    return Err(malformed(format!(
                        "command {c} in shared-sequence is outside this subset"
                    )))
                }
                Err(_) => return Err(malformed("command number out of range")),
            }
        }
        if !conditions.contains(&CONDITION_VENDOR_IDENTIFIER)
            || !conditions.contains(&CONDITION_CLASS_IDENTIFIER)
        {
            return Err(malformed(
                "shared-sequence must check both vendor and class identifiers",
            ));
        }
        let params = int_map(
            Value::Map(params.ok_or_else(|| malformed("override-parameters missing"))?),
            "parameters",
            &[1, 2, 3, 14],
        )?;
        let id16 = |key: i64, what: &str| -> Result<[u8; 16], UpdateError> {
            match get(&params, key) {
                Some(Value::Bytes(b)) => b
                    .as_slice()
                    .try_into()
                    .map_err(|_| malformed(format!("{what} is not 16 bytes"))),
                _ => Err(malformed(format!("{what} missing"))),
            }
        };
        let vendor_id = id16(PARAMETER_VENDOR_ID, "vendor-id")?;
        let class_id = id16(PARAMETER_CLASS_ID, "class-id")?;
        let digest = bstr_cbor(get(&params, PARAMETER_IMAGE_DIGEST), "image-digest")?;
        let image_digest = parse_digest(&digest, "image-digest")?;
        let image_size = match get(&params, PARAMETER_IMAGE_SIZE) {
            Some(Value::Integer(v)) => {
                u64::try_from(*v).map_err(|_| malformed("image-size is not an unsigned integer"))?
            }
            _ => return Err(malformed("image-size missing")),
        };
        let validate = bstr_cbor(get(&map, MANIFEST_VALIDATE), "validate")?;
        if validate != Value::Array(vec![int(CONDITION_IMAGE_MATCH), int(REPORTING_POLICY)]) {
            return Err(malformed(
                "validate must be exactly [condition-image-match, 15]",
            ));
        }
        Ok(Manifest {
            sequence_number,
            vendor_id,
            class_id,
            component_id,
            image_digest,
            image_size,
        })
    }
}

/// A map with small integer keys, refusing keys outside `allowed` and duplicates.
fn int_map(value: Value, what: &str, allowed: &[i64]) -> Result<Vec<(i64, Value)>, UpdateError> {
    let Value::Map(entries) = value else {
        return Err(malformed(format!("{what} is not a map")));
    };
    let mut out: Vec<(i64, Value)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let key = match k {
            Value::Integer(i) => i64::try_from(i).ok(),
            _ => None,
        }
        .ok_or_else(|| malformed(format!("{what} has a non-integer key")))?;
        if !allowed.contains(&key) {
            return Err(malformed(format!(
                "{what} element {key} is outside this SUIT subset"
            )));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(malformed(format!("{what} repeats element {key}")));
        }
        out.push((key, v));
    }
    Ok(out)
}

fn get(map: &[(i64, Value)], key: i64) -> Option<&Value> {
    map.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn bstr_cbor(value: Option<&Value>, what: &str) -> Result<Value, UpdateError> {
    match value {
        Some(Value::Bytes(b)) => decode(b, what),
        Some(_) => Err(malformed(format!("{what} is not a bstr-wrapped CBOR item"))),
        None => Err(malformed(format!("{what} missing"))),
    }
}

/// Signs `manifest` and returns the tagged envelope bytes. `kid` (e.g. the update anchor's
/// fingerprint) goes into the protected header as a hint for verifiers.
pub fn sign_envelope(
    manifest: &Manifest,
    key: &SigningKey,
    kid: &[u8],
) -> Result<Vec<u8>, UpdateError> {
    // A device would refuse it (Manifest::decode): do not sign what cannot be installed.
    if manifest.sequence_number > MAX_SEQUENCE {
        return Err(UpdateError::SequenceTooLarge(manifest.sequence_number));
    }
    sign_unchecked(manifest, key, kid)
}

/// [`sign_envelope`] without its checks (tests make envelopes a vendor with another signer
/// could make).
fn sign_unchecked(
    manifest: &Manifest,
    key: &SigningKey,
    kid: &[u8],
) -> Result<Vec<u8>, UpdateError> {
    let manifest_bytes = manifest.encode()?;
    let digest_bytes = encode(&digest_value(&manifest_digest(&manifest_bytes)?))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(kid.to_vec())
        .build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .create_detached_signature(&digest_bytes, b"", |tbs| {
            let sig: Signature = key.sign(tbs);
            sig.to_bytes().to_vec()
        })
        .build();
    let cose = sign1
        .to_tagged_vec()
        .map_err(|e| UpdateError::Signing(format!("COSE encoding: {e}")))?;
    let auth = Value::Array(vec![Value::Bytes(digest_bytes), Value::Bytes(cose)]);
    encode(&Value::Tag(
        SUIT_ENVELOPE_TAG,
        Box::new(Value::Map(vec![
            (
                int(ENVELOPE_AUTHENTICATION_WRAPPER),
                Value::Bytes(encode(&auth)?),
            ),
            (int(ENVELOPE_MANIFEST), Value::Bytes(manifest_bytes)),
        ])),
    ))
}

/// A structurally valid envelope whose manifest matches its digest, signature not yet checked.
#[derive(Clone, Debug)]
pub struct Envelope {
    manifest: Manifest,
    digest_payload: Vec<u8>,
    sign1: CoseSign1,
}

impl Envelope {
    /// Parses an envelope (tagged or not), checks the manifest against the wrapper's digest
    /// and the COSE_Sign1's shape (ES256 in the protected header, detached payload).
    pub fn decode(bytes: &[u8]) -> Result<Self, UpdateError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(malformed(format!(
                "{} bytes, more than the {MAX_ENVELOPE_LEN} accepted",
                bytes.len()
            )));
        }
        let value = match decode(bytes, "envelope")? {
            Value::Tag(SUIT_ENVELOPE_TAG, inner) => *inner,
            Value::Tag(t, _) => return Err(malformed(format!("CBOR tag {t}, expected 107"))),
            v => v,
        };
        let env = int_map(value, "envelope", &[2, 3])?;
        let manifest_bytes = match get(&env, ENVELOPE_MANIFEST) {
            Some(Value::Bytes(b)) => b.clone(),
            _ => return Err(malformed("manifest missing or not a bstr")),
        };
        let auth = bstr_cbor(
            get(&env, ENVELOPE_AUTHENTICATION_WRAPPER),
            "authentication-wrapper",
        )?;
        let Value::Array(auth) = auth else {
            return Err(malformed("authentication-wrapper is not an array"));
        };
        let (digest_payload, cose_bytes) = match auth.as_slice() {
            [Value::Bytes(d), Value::Bytes(c)] => (d.clone(), c.clone()),
            [_] => return Err(malformed("authentication-wrapper has no signature")),
            [_, _] => return Err(malformed("authentication-wrapper entries must be bstrs")),
            _ => {
                return Err(malformed(
                    "this subset takes exactly one signature in the authentication-wrapper",
                ))
            }
        };
        let claimed = parse_digest(
            &decode(&digest_payload, "manifest digest")?,
            "manifest digest",
        )?;
        let actual = manifest_digest(&manifest_bytes)?;
        if !bool::from(claimed.ct_eq(&actual)) {
            return Err(UpdateError::ManifestDigestMismatch);
        }
        let tagged = cose_bytes.first() == Some(&COSE_SIGN1_TAG_BYTE);
        let sign1 = if tagged {
            CoseSign1::from_tagged_slice(&cose_bytes)
        } else {
            CoseSign1::from_slice(&cose_bytes)
        }
        .map_err(|e| UpdateError::Cose(e.to_string()))?;
        // coset is lenient (it reads CBOR `undefined` as a nil payload, for one); requiring the
        // deterministic encoding leaves no unauthenticated byte that may vary.
        let again = if tagged {
            sign1.clone().to_tagged_vec()
        } else {
            sign1.clone().to_vec()
        }
        .map_err(|e| UpdateError::Cose(e.to_string()))?;
        if again != cose_bytes {
            return Err(UpdateError::Cose(
                "not in deterministic CBOR encoding (RFC 8949 §4.2.1), or a field has the wrong type".into(),
            ));
        }
        match &sign1.protected.header.alg {
            Some(coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) => {}
            Some(other) => return Err(UpdateError::UnsupportedAlgorithm(format!("{other:?}"))),
            None => {
                return Err(UpdateError::Cose(
                    "no algorithm in the protected header".into(),
                ))
            }
        }
        if sign1.payload.is_some() {
            return Err(UpdateError::Cose(
                "payload must be detached (nil); SUIT signs the manifest digest".into(),
            ));
        }
        if sign1.signature.len() != 64 {
            return Err(UpdateError::Cose(format!(
                "ES256 signature has {} bytes, expected 64",
                sign1.signature.len()
            )));
        }
        let manifest = Manifest::decode(&manifest_bytes)?;
        Ok(Envelope {
            manifest,
            digest_payload,
            sign1,
        })
    }

    /// The manifest; not yet authenticated until [`Envelope::verify_signature`] succeeded.
    pub fn unverified_manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The `kid` hint in the protected header.
    pub fn key_id(&self) -> &[u8] {
        &self.sign1.protected.header.key_id
    }

    /// Whether `key` made the signature.
    pub fn verify_signature(&self, key: &VerifyingKey) -> bool {
        self.sign1
            .verify_detached_signature(&self.digest_payload, b"", |sig, tbs| {
                let sig = Signature::from_slice(sig).map_err(|_| ())?;
                key.verify(tbs, &sig).map_err(|_| ())
            })
            .is_ok()
    }

    /// The encoded COSE_Sign1 (tagged) and its detached payload, for independent verifiers.
    pub fn cose_sign1(&self) -> Result<(Vec<u8>, Vec<u8>), UpdateError> {
        let bytes = self
            .sign1
            .clone()
            .to_tagged_vec()
            .map_err(|e| UpdateError::Cose(e.to_string()))?;
        Ok((bytes, self.digest_payload.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn manifest() -> Manifest {
        Manifest::for_image(b"firmware", 3, [1; 16], [2; 16], vec![b"fw".to_vec()])
    }

    #[test]
    fn manifest_digest_matches_the_drafts_example_0() {
        // draft-ietf-suit-manifest Appendix B, Example 0: built here element by element
        // (including its invoke sequence, which our subset does not produce).
        let h = |s: &str| hex::decode(s).unwrap();
        let digest = encode(&digest_value(
            &h("00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210")
                .try_into()
                .unwrap(),
        ))
        .unwrap();
        let shared = encode(&Value::Array(vec![
            int(20),
            Value::Map(vec![
                (int(1), Value::Bytes(h("fa6b4a53d5ad5fdfbe9de663e4d41ffe"))),
                (int(2), Value::Bytes(h("1492af1425695e48bf429b2d51f2ab45"))),
                (int(3), Value::Bytes(digest)),
                (int(14), int(34768)),
            ]),
            int(1),
            int(15),
            int(2),
            int(15),
        ]))
        .unwrap();
        let common = encode(&Value::Map(vec![
            (
                int(2),
                Value::Array(vec![Value::Array(vec![Value::Bytes(h("00"))])]),
            ),
            (int(4), Value::Bytes(shared)),
        ]))
        .unwrap();
        let manifest = encode(&Value::Map(vec![
            (int(1), int(1)),
            (int(2), int(0)),
            (int(3), Value::Bytes(common)),
            (
                int(7),
                Value::Bytes(encode(&Value::Array(vec![int(3), int(15)])).unwrap()),
            ),
            (
                int(9),
                Value::Bytes(encode(&Value::Array(vec![int(23), int(2)])).unwrap()),
            ),
        ]))
        .unwrap();
        assert_eq!(
            hex::encode(manifest_digest(&manifest).unwrap()),
            "6658ea560262696dd1f13b782239a064da7c6c5cbaf52fded428a6fc83c7e5af"
        );
    }

    #[test]
    fn manifest_round_trips() {
        let m = manifest();
        assert_eq!(Manifest::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn signed_envelope_verifies_and_names_its_key() {
        let env = sign_envelope(&manifest(), &key(), b"kid").unwrap();
        let e = Envelope::decode(&env).unwrap();
        assert!(e.verify_signature(key().verifying_key()));
        assert_eq!(e.key_id(), b"kid");
        let other = SigningKey::from_slice(&[8u8; 32]).unwrap();
        assert!(!e.verify_signature(other.verifying_key()));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let env = sign_envelope(&manifest(), &key(), b"").unwrap();
        for n in 0..env.len() {
            assert!(Envelope::decode(&env[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let env = sign_envelope(&manifest(), &key(), b"").unwrap();
        for i in 0..env.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = env.clone();
                t[i] ^= bit;
                let ok = Envelope::decode(&t)
                    .map(|e| e.verify_signature(key().verifying_key()))
                    .unwrap_or(false);
                assert!(!ok, "flip {bit:#x} at byte {i} accepted");
            }
        }
    }

    /// The store records sequence numbers as signed 64-bit integers: a larger one used to pass
    /// the device's checks (dry run included), get installed, and then fail to be recorded, so
    /// older envelopes installed again. It is refused when decoding, before anything happens.
    #[test]
    fn a_sequence_number_above_i64_max_is_refused_on_decoding_and_signing() {
        let mut m = manifest();
        m.sequence_number = MAX_SEQUENCE;
        let env = sign_envelope(&m, &key(), b"").unwrap();
        assert_eq!(
            Envelope::decode(&env)
                .unwrap()
                .unverified_manifest()
                .sequence_number,
            MAX_SEQUENCE
        );

        m.sequence_number = MAX_SEQUENCE + 1;
        assert!(matches!(
            Manifest::decode(&m.encode().unwrap()),
            Err(UpdateError::SequenceTooLarge(n)) if n == 1 << 63
        ));
        assert!(matches!(
            sign_envelope(&m, &key(), b""),
            Err(UpdateError::SequenceTooLarge(_))
        ));
        // An envelope another signer made: the device refuses it before looking at the image,
        // and records nothing.
        m.sequence_number = u64::MAX;
        let env = sign_unchecked(&m, &key(), b"").unwrap();
        let err = Envelope::decode(&env).unwrap_err();
        assert!(err.to_string().contains("larger than 2^63-1"), "{err}");
        let mut store = crate::AnchorStore::in_memory();
        let public = key()
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        store
            .import(
                crate::NewAnchor::public(crate::AnchorKind::UpdateKey, public, "t"),
                0,
            )
            .unwrap();
        let device = crate::update::UpdateTarget {
            vendor_id: m.vendor_id,
            class_id: m.class_id,
            component: &m.component_id[0],
        };
        assert!(matches!(
            crate::update::verify_update(&mut store, &env, b"", &device, 0, true),
            Err(UpdateError::SequenceTooLarge(_))
        ));
        assert_eq!(
            store.sequence(&crate::update::component_key(&m)).unwrap(),
            None
        );
    }

    #[test]
    fn elements_outside_the_subset_are_refused() {
        let m = manifest().encode().unwrap();
        let Value::Map(mut entries) = decode(&m, "m").unwrap() else {
            panic!()
        };
        entries.push((int(9), Value::Bytes(vec![0x80])));
        let err = Manifest::decode(&encode(&Value::Map(entries)).unwrap()).unwrap_err();
        assert!(err.to_string().contains("element 9"), "{err}");
    }
}
