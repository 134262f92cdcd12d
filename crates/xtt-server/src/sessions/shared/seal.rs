//! The deployment's storage key: a 32-byte secret every node reads from a 0600 file. Two keys
//! are derived from it (HKDF-SHA256): one seals session keys before they go to the database,
//! one authenticates hand-over requests between nodes. The database alone reveals no session
//! key; a node without the file cannot take sessions over.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use xtt_proto::record::SessionId;
use xtt_proto::session::SESSION_KEYS_LEN;
use xtt_proto::ClientId;
use zeroize::Zeroizing;

/// Length of the storage key file's content.
pub const STORAGE_KEY_LEN: usize = 32;

const SEAL_INFO: &[u8] = b"xtt shared sessions: seal session keys v1";
const HANDOVER_INFO: &[u8] = b"xtt shared sessions: hand-over requests v1";
const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Sealed form: version ‖ nonce ‖ ciphertext of the keys ‖ tag.
pub(crate) const SEALED_LEN: usize = 1 + NONCE_LEN + SESSION_KEYS_LEN + 16;

/// Why the storage key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageKeyError {
    /// Reading or writing the file failed. The cause is the `source()` only: with it also in
    /// the message, `{:#}` printed it twice.
    #[error("session storage key file {path}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not exactly 32 bytes.
    #[error("{0}: a session storage key file holds exactly 32 bytes")]
    Length(String),
    /// Group or others may read the file.
    #[error("{0}: the session storage key must be readable by its owner only (chmod 600)")]
    Permissions(String),
}

/// The deployment's storage key and what is derived from it.
pub struct StorageKey {
    seal: Zeroizing<[u8; 32]>,
    handover: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageKey(..)")
    }
}

impl StorageKey {
    /// Derives the keys from the 32-byte secret.
    pub fn from_secret(secret: &[u8; STORAGE_KEY_LEN]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(None, secret);
        let mut seal = Zeroizing::new([0u8; 32]);
        let mut handover = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit: expand cannot fail.
        let _ = hk.expand(SEAL_INFO, seal.as_mut_slice());
        let _ = hk.expand(HANDOVER_INFO, handover.as_mut_slice());
        Self { seal, handover }
    }

    /// Reads the key file, refusing one that group or others may read.
    pub fn read(path: &Path) -> Result<Self, StorageKeyError> {
        let shown = path.display().to_string();
        let io = |source| StorageKeyError::Io {
            path: shown.clone(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(StorageKeyError::Permissions(shown));
            }
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
        let secret: &[u8; STORAGE_KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StorageKeyError::Length(shown.clone()))?;
        Ok(Self::from_secret(secret))
    }

    /// Writes a new random key file (0600, crash-safely: temporary file, fsync, rename, fsync of
    /// the directory); refuses to overwrite an existing file. Copy it to every node.
    pub fn create(path: &Path) -> Result<(), StorageKeyError> {
        let shown = path.display().to_string();
        let io = |source| StorageKeyError::Io {
            path: shown.clone(),
            source,
        };
        let mut secret = Zeroizing::new([0u8; STORAGE_KEY_LEN]);
        OsRng.fill_bytes(secret.as_mut_slice());
        // Refuses an existing file even when two creators race (exactly one wins), and leaves
        // no temporary file behind after a failure.
        xtt_fsio::write_atomic(
            path,
            secret.as_slice(),
            xtt_fsio::SECRET,
            xtt_fsio::Overwrite::Deny,
        )
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                io(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "refusing to overwrite an existing key",
                ))
            } else {
                io(e)
            }
        })?;
        Ok(())
    }

    fn ad(id: &SessionId, client_id: &ClientId, suite: u16) -> Vec<u8> {
        let mut ad = Vec::with_capacity(1 + 16 + 16 + 2);
        ad.push(SEALED_VERSION);
        ad.extend_from_slice(&id.0);
        ad.extend_from_slice(&client_id.0);
        ad.extend_from_slice(&suite.to_be_bytes());
        ad
    }

    /// Seals a session's keys, bound to its id, client and suite (a row's sealed keys cannot be
    /// moved to another row).
    pub(crate) fn seal(
        &self,
        id: &SessionId,
        client_id: &ClientId,
        suite: u16,
        keys: &[u8; SESSION_KEYS_LEN],
    ) -> Option<Vec<u8>> {
        let cipher = XChaCha20Poly1305::new_from_slice(self.seal.as_slice()).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ad = Self::ad(id, client_id, suite);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: keys,
                    aad: &ad,
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Some(out)
    }

    /// Opens sealed keys; `None` if they were not sealed for this session under this key.
    pub(crate) fn unseal(
        &self,
        id: &SessionId,
        client_id: &ClientId,
        suite: u16,
        sealed: &[u8],
    ) -> Option<Zeroizing<[u8; SESSION_KEYS_LEN]>> {
        if sealed.len() != SEALED_LEN || sealed.first() != Some(&SEALED_VERSION) {
            return None;
        }
        let (nonce, ct) = sealed.get(1..)?.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new_from_slice(self.seal.as_slice()).ok()?;
        let ad = Self::ad(id, client_id, suite);
        let pt = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &ad })
                .ok()?,
        );
        let mut out = Zeroizing::new([0u8; SESSION_KEYS_LEN]);
        if pt.len() != SESSION_KEYS_LEN {
            return None;
        }
        out.copy_from_slice(&pt);
        Some(out)
    }

    /// HMAC-SHA256 of a hand-over request body (`None` never happens: HMAC takes any key).
    pub(crate) fn handover_mac(&self, body: &[u8]) -> Option<[u8; 32]> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.handover.as_slice()).ok()?;
        m.update(body);
        Some(m.finalize().into_bytes().into())
    }

    /// Checks a hand-over request's MAC in constant time.
    pub(crate) fn handover_mac_ok(&self, body: &[u8], tag: &[u8]) -> bool {
        match <Hmac<Sha256> as Mac>::new_from_slice(self.handover.as_slice()) {
            Ok(mut m) => {
                m.update(body);
                m.verify_slice(tag).is_ok()
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_for_their_session_and_key() {
        let k = StorageKey::from_secret(&[7; 32]);
        let id = SessionId([1; 16]);
        let cid = ClientId([2; 16]);
        let keys = [0x5a; SESSION_KEYS_LEN];
        let sealed = k.seal(&id, &cid, 1, &keys).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(!sealed.windows(8).any(|w| w == [0x5a; 8]), "keys in clear");
        assert_eq!(*k.unseal(&id, &cid, 1, &sealed).unwrap(), keys);
        assert!(k.unseal(&SessionId([3; 16]), &cid, 1, &sealed).is_none());
        assert!(k.unseal(&id, &ClientId([3; 16]), 1, &sealed).is_none());
        assert!(k.unseal(&id, &cid, 2, &sealed).is_none());
        let other = StorageKey::from_secret(&[8; 32]);
        assert!(other.unseal(&id, &cid, 1, &sealed).is_none());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(k.unseal(&id, &cid, 1, &bad).is_none());
    }

    #[test]
    fn key_files_are_created_private_and_refused_when_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.key");
        StorageKey::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap().len(), STORAGE_KEY_LEN);
        StorageKey::read(&path).unwrap();
        assert!(StorageKey::create(&path).is_err(), "never overwritten");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            StorageKey::read(&path),
            Err(StorageKeyError::Permissions(_))
        ));
        let short = dir.path().join("short.key");
        std::fs::write(&short, [1u8; 16]).unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            StorageKey::read(&short),
            Err(StorageKeyError::Length(_))
        ));
    }
}
