//! The server certificate (169 bytes) and the root certificate (81 bytes), XTT-WIRE §9.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::error::{CryptoError, Error, InvalidMessage, PeerMisbehaved, Refused};
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

    /// Checks `certificate` against the trusted root it names and returns the server key it
    /// vouches for. Stores may remember results ([`RememberVerified`]).
    fn verify_certificate(
        &self,
        certificate: &ServerCertificate,
    ) -> Result<LongtermPublicKey, Error> {
        let root = self
            .root(&certificate.root_id())
            .ok_or(Refused::UnknownRoot)?;
        certificate.verify(&root)
    }
}

/// A root store that remembers the last server certificate it verified, for a device that
/// handshakes with the same server again and again: the root's ECDSA signature on those exact
/// 169 bytes is checked once, not at every handshake. Anything else (another certificate, a
/// changed byte) is verified in full and replaces the remembered one. Meant for a store whose
/// roots do not change while it lives.
pub struct RememberVerified {
    inner: std::sync::Arc<dyn RootStore + Send + Sync>,
    last: std::sync::Mutex<Option<(ServerCertificate, LongtermPublicKey)>>,
}

impl RememberVerified {
    /// Remembers on top of `inner`.
    pub fn new(inner: std::sync::Arc<dyn RootStore + Send + Sync>) -> Self {
        Self {
            inner,
            last: std::sync::Mutex::new(None),
        }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<(ServerCertificate, LongtermPublicKey)>> {
        match self.last.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl fmt::Debug for RememberVerified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberVerified").finish_non_exhaustive()
    }
}

impl RootStore for RememberVerified {
    fn root(&self, id: &RootId) -> Option<RootCertificate> {
        self.inner.root(id)
    }

    fn verify_certificate(
        &self,
        certificate: &ServerCertificate,
    ) -> Result<LongtermPublicKey, Error> {
        if let Some((cert, key)) = self.last().as_ref() {
            if cert == certificate {
                return Ok(*key);
            }
        }
        let key = self.inner.verify_certificate(certificate)?;
        *self.last() = Some((certificate.clone(), key));
        Ok(key)
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use rand_core::OsRng;

    use super::*;

    /// A one-root store that counts its lookups (one per full verification).
    struct Counting(RootCertificate, AtomicUsize);

    impl RootStore for Counting {
        fn root(&self, id: &RootId) -> Option<RootCertificate> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.root(id)
        }
    }

    #[test]
    fn remember_verified_checks_a_certificate_once_and_anything_else_in_full() {
        let root_key = LongtermKeyPair::generate(&mut OsRng);
        let root = RootCertificate {
            id: RootId([7; ROOT_ID_LEN]),
            public_key: *root_key.public_key(),
        };
        let server_key = *LongtermKeyPair::generate(&mut OsRng).public_key();
        let cert =
            ServerCertificate::issue(&[0; RESERVED_LEN], &root.id, &server_key, &root_key).unwrap();
        let counting = Arc::new(Counting(root, AtomicUsize::new(0)));
        let store = RememberVerified::new(counting.clone());
        let lookups = || counting.1.load(Ordering::Relaxed);

        for _ in 0..3 {
            let key = store.verify_certificate(&cert).unwrap();
            assert_eq!(key.as_bytes(), server_key.as_bytes());
        }
        assert_eq!(lookups(), 1);

        // One changed byte of the signature, then of the key: verified in full, refused, and
        // the good certificate is still the remembered one.
        for at in [SERVER_CERTIFICATE_LEN - 1, RESERVED_LEN + ROOT_ID_LEN + 5] {
            let mut bad = *cert.as_bytes();
            bad[at] ^= 1;
            let before = lookups();
            assert!(store
                .verify_certificate(&ServerCertificate::from_bytes(bad))
                .is_err());
            assert_eq!(lookups(), before + 1);
        }
        let before = lookups();
        assert!(store.verify_certificate(&cert).is_ok());
        assert_eq!(lookups(), before);
    }
}
