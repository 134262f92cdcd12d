//! The server certificate (169 bytes) and the root certificate (81 bytes), XTT-WIRE §9.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::error::{CryptoError, Error, InvalidMessage, PeerMisbehaved};
use crate::longterm::{LongtermKeyPair, LongtermPublicKey, PUBLIC_KEY_LEN};

/// Size of a root id.
pub const ROOT_ID_LEN: usize = 16;
/// Size of the certificate's reserved field.
pub const RESERVED_LEN: usize = 24;
/// Size of a server certificate.
pub const SERVER_CERTIFICATE_LEN: usize = 169;
/// Size of a root certificate.
pub const ROOT_CERTIFICATE_LEN: usize = 81;
/// The `xtt` tool's default reserved bytes (`XAPTUMSERVER000199991231`).
pub const DEFAULT_RESERVED: [u8; RESERVED_LEN] = *b"XAPTUMSERVER000199991231";
const SIGNED_LEN: usize = RESERVED_LEN + ROOT_ID_LEN + PUBLIC_KEY_LEN;

/// Names a root of trust.
// Equality is plain byte equality, only computed in constant time, so it agrees with the
// derived Hash.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Hash)]
pub struct RootId(pub [u8; ROOT_ID_LEN]);

impl PartialEq for RootId {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}
impl Eq for RootId {}

impl fmt::Debug for RootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A trust anchor: `root_id(16) ‖ P-256 public key(65)` (the `xtt` tool's `root_cert.bin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootCertificate {
    /// The root's id.
    pub id: RootId,
    /// The root's public key.
    pub public_key: LongtermPublicKey,
}

impl RootCertificate {
    /// Decodes and validates 81 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let b: &[u8; ROOT_CERTIFICATE_LEN] = bytes.try_into().map_err(|_| {
            if bytes.len() < ROOT_CERTIFICATE_LEN {
                InvalidMessage::Truncated
            } else {
                InvalidMessage::TrailingData
            }
        })?;
        let (id, key) = b.split_at(ROOT_ID_LEN);
        let id: [u8; ROOT_ID_LEN] = id.try_into().map_err(|_| InvalidMessage::Truncated)?;
        let key: [u8; PUBLIC_KEY_LEN] = key.try_into().map_err(|_| InvalidMessage::Truncated)?;
        let public_key =
            LongtermPublicKey::from_bytes(&key).map_err(|_| InvalidMessage::InvalidPublicKey)?;
        Ok(Self {
            id: RootId(id),
            public_key,
        })
    }

    /// Encodes 81 bytes.
    pub fn encode(&self) -> [u8; ROOT_CERTIFICATE_LEN] {
        let mut out = [0u8; ROOT_CERTIFICATE_LEN];
        out[..ROOT_ID_LEN].copy_from_slice(&self.id.0);
        out[ROOT_ID_LEN..].copy_from_slice(self.public_key.as_bytes());
        out
    }
}

/// Where a client finds the root named by a server certificate.
pub trait RootStore {
    /// The root with this id, if trusted.
    fn root(&self, id: &RootId) -> Option<RootCertificate>;
}

impl RootStore for RootCertificate {
    fn root(&self, id: &RootId) -> Option<RootCertificate> {
        (self.id == *id).then(|| self.clone())
    }
}

impl RootStore for Vec<RootCertificate> {
    fn root(&self, id: &RootId) -> Option<RootCertificate> {
        self.iter().find(|r| r.id == *id).cloned()
    }
}

/// A server certificate: `reserved(24) ‖ root_id(16) ‖ public key(65) ‖ root signature(64)`.
/// Holding one does not mean it verified; see [`ServerCertificate::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCertificate([u8; SERVER_CERTIFICATE_LEN]);

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("root_id", &self.root_id())
            .finish_non_exhaustive()
    }
}

impl ServerCertificate {
    /// Wraps 169 bytes (no validation).
    pub fn from_bytes(bytes: [u8; SERVER_CERTIFICATE_LEN]) -> Self {
        Self(bytes)
    }

    /// Decodes a 169-byte slice (no signature validation).
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let b: [u8; SERVER_CERTIFICATE_LEN] = bytes.try_into().map_err(|_| {
            if bytes.len() < SERVER_CERTIFICATE_LEN {
                InvalidMessage::Truncated
            } else {
                InvalidMessage::TrailingData
            }
        })?;
        Ok(Self(b))
    }

    /// Issues a certificate for `server_key` signed by `root_key` (ECDSA with RFC 6979 k).
    pub fn issue(
        reserved: &[u8; RESERVED_LEN],
        root_id: &RootId,
        server_key: &LongtermPublicKey,
        root_key: &LongtermKeyPair,
    ) -> Result<Self, CryptoError> {
        let mut b = [0u8; SERVER_CERTIFICATE_LEN];
        b[..RESERVED_LEN].copy_from_slice(reserved);
        b[RESERVED_LEN..RESERVED_LEN + ROOT_ID_LEN].copy_from_slice(&root_id.0);
        b[RESERVED_LEN + ROOT_ID_LEN..SIGNED_LEN].copy_from_slice(server_key.as_bytes());
        let sig = root_key.sign_rfc6979(&b[..SIGNED_LEN], &[])?;
        b[SIGNED_LEN..].copy_from_slice(&sig);
        Ok(Self(b))
    }

    /// The 169 wire bytes.
    pub fn as_bytes(&self) -> &[u8; SERVER_CERTIFICATE_LEN] {
        &self.0
    }

    /// The opaque reserved field.
    pub fn reserved(&self) -> [u8; RESERVED_LEN] {
        let mut out = [0u8; RESERVED_LEN];
        out.copy_from_slice(&self.0[..RESERVED_LEN]);
        out
    }

    /// The root id this certificate claims.
    pub fn root_id(&self) -> RootId {
        let mut out = [0u8; ROOT_ID_LEN];
        out.copy_from_slice(&self.0[RESERVED_LEN..RESERVED_LEN + ROOT_ID_LEN]);
        RootId(out)
    }

    /// The server public key bytes (unvalidated).
    pub fn public_key_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(&self.0[RESERVED_LEN + ROOT_ID_LEN..SIGNED_LEN]);
        out
    }

    /// The root signature.
    pub fn root_signature(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(&self.0[SIGNED_LEN..]);
        out
    }

    /// Checks the certificate against `root` as C does (root id equal, root signature valid) and
    /// returns the validated server key.
    pub fn verify(&self, root: &RootCertificate) -> Result<LongtermPublicKey, Error> {
        if root.id != self.root_id() {
            return Err(PeerMisbehaved::RootIdMismatch.into());
        }
        if !root
            .public_key
            .verify(&self.0[..SIGNED_LEN], &self.root_signature())
        {
            return Err(PeerMisbehaved::BadRootSignature.into());
        }
        LongtermPublicKey::from_bytes(&self.public_key_bytes())
            .map_err(|_| InvalidMessage::InvalidPublicKey.into())
    }
}
