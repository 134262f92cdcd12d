//! Validation and parsing of each kind's key material, including the loose-file formats that
//! stay supported as import (the `xtt` tool's `root_cert.bin`, `daa_gpk.bin` + `basename.bin`,
//! raw or PEM P-256 public keys).

use p256::pkcs8::DecodePublicKey;
use xtt_proto::cert::{RootCertificate, ServerCertificate, ROOT_CERTIFICATE_LEN};
use xtt_proto::daa::GroupId;
use xtt_proto::longterm::{LongtermPublicKey, PUBLIC_KEY_LEN};

use crate::anchor::{AnchorKind, Material};
use crate::error::AnchorError;

/// Size of a DAA group public key.
pub const GROUP_PUBLIC_KEY_LEN: usize = 258;
/// Size of a device identity: ClientID ‖ long-term key.
pub const DEVICE_IDENTITY_LEN: usize = 16 + PUBLIC_KEY_LEN;
/// Shortest TTE secret accepted: fingerprints are hashes of the secret, so it must be long and
/// random enough that the hash cannot be searched.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest TTE secret accepted.
pub const MAX_SECRET_LEN: usize = 1024;
/// Longest DAA basename accepted.
pub const MAX_BASENAME_LEN: usize = 1024;

fn invalid(kind: AnchorKind, reason: impl Into<String>) -> AnchorError {
    AnchorError::InvalidMaterial {
        kind,
        reason: reason.into(),
    }
}

/// Checks that `material` is well formed for `kind` (keys on the curve, lengths exact).
pub fn validate(kind: AnchorKind, material: &Material) -> Result<(), AnchorError> {
    match (kind.is_secret(), material) {
        (true, Material::Secret(s)) => {
            if s.len() < MIN_SECRET_LEN || s.len() > MAX_SECRET_LEN {
                return Err(invalid(
                    kind,
                    format!(
                        "secret has {} bytes, expected {MIN_SECRET_LEN} to {MAX_SECRET_LEN}",
                        s.len()
                    ),
                ));
            }
            Ok(())
        }
        (false, Material::Public(b)) => validate_public(kind, b),
        (true, Material::Public(_)) => Err(invalid(kind, "secret kinds must hold secret material")),
        (false, Material::Secret(_)) => {
            Err(invalid(kind, "public kinds must not hold secret material"))
        }
    }
}

fn validate_public(kind: AnchorKind, b: &[u8]) -> Result<(), AnchorError> {
    match kind {
        AnchorKind::XttRoot => RootCertificate::decode(b).map(|_| ()).map_err(|e| {
            if ServerCertificate::decode(b).is_ok() {
                return invalid(
                    kind,
                    "this is an XTT server certificate (169 bytes), not a root certificate; \
                     import it as xtt-server",
                );
            }
            invalid(kind, format!("{e} (expected the 81-byte root_cert.bin)"))
        }),
        AnchorKind::XttServer => {
            let cert = ServerCertificate::decode(b).map_err(|e| {
                if RootCertificate::decode(b).is_ok() {
                    return invalid(
                        kind,
                        "this is an XTT root certificate (81 bytes), not a server certificate; \
                         import it as xtt-root",
                    );
                }
                invalid(kind, format!("{e} (expected 169 bytes)"))
            })?;
            LongtermPublicKey::from_bytes(&cert.public_key_bytes())
                .map(|_| ())
                .map_err(|_| invalid(kind, "server public key is not a P-256 point"))
        }
        AnchorKind::DaaGroup => {
            let (gpk, basename) = daa_group_parts(b).map_err(|r| invalid(kind, r))?;
            xtt_ecdaa::GroupPublicKey::from_bytes(gpk)
                .map(|_| ())
                .map_err(|e| invalid(kind, format!("group public key: {e}")))?;
            if basename.is_empty() {
                return Err(invalid(
                    kind,
                    "empty basename (XTT needs one for pseudonyms)",
                ));
            }
            Ok(())
        }
        AnchorKind::UpdateKey | AnchorKind::Manufacturer | AnchorKind::Controller => {
            p256_key(kind, b).map(|_| ())
        }
        AnchorKind::DeviceIdentity => {
            if b.len() != DEVICE_IDENTITY_LEN {
                return Err(invalid(
                    kind,
                    format!(
                        "{} bytes, expected {DEVICE_IDENTITY_LEN} (ClientID ‖ key)",
                        b.len()
                    ),
                ));
            }
            p256_key(kind, b.get(16..).unwrap_or_default()).map(|_| ())
        }
        AnchorKind::TlsRoot => tls_certificate(b).map(|_| ()),
        AnchorKind::TteTaSecret | AnchorKind::TteDevSecret => {
            Err(invalid(kind, "secret kinds must hold secret material"))
        }
    }
}

/// Longest X.509 certificate accepted as a `tls-root`.
pub const MAX_TLS_ROOT_LEN: usize = 16 * 1024;

/// The X.509 certificate of a `tls-root` anchor (DER), parsed.
pub fn tls_certificate(der: &[u8]) -> Result<x509_cert::Certificate, AnchorError> {
    use x509_cert::der::Decode as _;
    if der.len() > MAX_TLS_ROOT_LEN {
        return Err(invalid(AnchorKind::TlsRoot, "certificate too long"));
    }
    x509_cert::Certificate::from_der(der).map_err(|e| {
        invalid(
            AnchorKind::TlsRoot,
            format!("not a DER X.509 certificate: {e}"),
        )
    })
}

/// A `tls-root` from a loose file: one PEM `CERTIFICATE` block, or DER. A PEM file with several
/// certificates is refused: each CA is its own anchor, with its own validity and roles.
pub fn parse_tls_root_file(bytes: &[u8]) -> Result<Vec<u8>, AnchorError> {
    use x509_cert::der::Encode as _;
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    if !bytes.windows(BEGIN.len()).any(|w| w == BEGIN) {
        tls_certificate(bytes)?;
        return Ok(bytes.to_vec());
    }
    let certs = x509_cert::Certificate::load_pem_chain(bytes)
        .map_err(|e| invalid(AnchorKind::TlsRoot, format!("PEM: {e}")))?;
    let [cert] = certs.as_slice() else {
        return Err(invalid(
            AnchorKind::TlsRoot,
            format!(
                "the file holds {} certificates; import each CA as its own anchor",
                certs.len()
            ),
        ));
    };
    cert.to_der()
        .map_err(|e| invalid(AnchorKind::TlsRoot, format!("re-encoding: {e}")))
}

fn p256_key(kind: AnchorKind, b: &[u8]) -> Result<LongtermPublicKey, AnchorError> {
    let arr: &[u8; PUBLIC_KEY_LEN] = b.try_into().map_err(|_| {
        invalid(
            kind,
            format!(
                "{} bytes, expected a 65-byte uncompressed P-256 key",
                b.len()
            ),
        )
    })?;
    LongtermPublicKey::from_bytes(arr).map_err(|_| invalid(kind, "not a point on P-256"))
}

/// A P-256 public key from a loose file: 65 raw SEC1 bytes, or PEM `PUBLIC KEY` (SPKI).
pub fn parse_p256_public_file(kind: AnchorKind, bytes: &[u8]) -> Result<Vec<u8>, AnchorError> {
    if bytes.len() == PUBLIC_KEY_LEN {
        p256_key(kind, bytes)?;
        return Ok(bytes.to_vec());
    }
    let text = core::str::from_utf8(bytes)
        .map_err(|_| invalid(kind, "neither 65 raw key bytes nor a PEM public key"))?;
    let key = p256::PublicKey::from_public_key_pem(text.trim())
        .map_err(|e| invalid(kind, format!("PEM public key: {e}")))?;
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, false);
    Ok(point.as_bytes().to_vec())
}

/// `gpk(258) ‖ basename`, the stored form of a DAA group.
pub fn daa_group_material(gpk: &[u8], basename: &[u8]) -> Result<Vec<u8>, AnchorError> {
    if gpk.len() != GROUP_PUBLIC_KEY_LEN {
        return Err(invalid(
            AnchorKind::DaaGroup,
            format!(
                "group public key has {} bytes, expected {GROUP_PUBLIC_KEY_LEN}",
                gpk.len()
            ),
        ));
    }
    if basename.len() > MAX_BASENAME_LEN {
        return Err(invalid(AnchorKind::DaaGroup, "basename too long"));
    }
    let mut m = gpk.to_vec();
    m.extend_from_slice(basename);
    Ok(m)
}

/// Splits the stored form into the group public key and the basename.
pub fn daa_group_parts(material: &[u8]) -> Result<(&[u8], &[u8]), String> {
    if material.len() < GROUP_PUBLIC_KEY_LEN {
        return Err(format!(
            "{} bytes, expected {GROUP_PUBLIC_KEY_LEN}-byte gpk then the basename",
            material.len()
        ));
    }
    Ok(material.split_at(GROUP_PUBLIC_KEY_LEN))
}

/// The group id XTT announces: SHA-256(gpk ‖ basename), which is exactly SHA-256 of the stored
/// form.
pub fn daa_group_id(material: &[u8]) -> GroupId {
    use sha2::Digest;
    GroupId(sha2::Sha256::digest(material).into())
}

/// The root certificate of an `xtt-root` anchor.
pub fn root_certificate(material: &[u8]) -> Result<RootCertificate, AnchorError> {
    RootCertificate::decode(material).map_err(|e| invalid(AnchorKind::XttRoot, e.to_string()))
}

/// Length check helper used by the CLI when a file is obviously the wrong one.
pub fn expected_file(kind: AnchorKind) -> &'static str {
    match kind {
        AnchorKind::XttRoot => "root_cert.bin (81 bytes: root_id ‖ P-256 key)",
        AnchorKind::XttServer => "a 169-byte server certificate",
        AnchorKind::DaaGroup => "daa_gpk.bin (258 bytes) and --basename basename.bin",
        AnchorKind::UpdateKey | AnchorKind::Manufacturer | AnchorKind::Controller => {
            "a P-256 public key (65 raw bytes or PEM)"
        }
        AnchorKind::TteTaSecret | AnchorKind::TteDevSecret => "the raw secret (16 to 1024 bytes)",
        AnchorKind::DeviceIdentity => "ClientID(16) ‖ long-term P-256 key(65)",
        AnchorKind::TlsRoot => "an X.509 CA certificate (PEM or DER)",
    }
}

/// Keeps `ROOT_CERTIFICATE_LEN` in one place for docs.
pub const ROOT_FILE_LEN: usize = ROOT_CERTIFICATE_LEN;
