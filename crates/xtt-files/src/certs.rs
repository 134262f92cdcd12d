//! XTT's own certificate files: the root certificate (`root_cert.bin`, 81 bytes:
//! `root_id(16) ‖ public key(65)`), the server certificate (`server_cert.bin`, 169 bytes:
//! `reserved(24) ‖ root_id(16) ‖ public key(65) ‖ root signature(64)`), and the small inputs the
//! C tool takes from files: a root id (16 bytes) and a reserved field (24 bytes).

use std::path::Path;

use xtt_proto::cert::{
    RootCertificate, RootId, ServerCertificate, RESERVED_LEN, ROOT_CERTIFICATE_LEN, ROOT_ID_LEN,
    SERVER_CERTIFICATE_LEN,
};
use xtt_proto::longterm::{LongtermKeyPair, LongtermPublicKey};

use crate::error::{Error, ErrorKind, Result};
use crate::fsio::{self, Access, Overwrite};

const ROOT_WHAT: &str = "XTT root certificate";
const SERVER_WHAT: &str = "XTT server certificate";

/// Reads and validates a root certificate (81 bytes, public key on the curve).
pub fn read_root(path: &Path) -> Result<RootCertificate> {
    let bytes = fsio::read_exact::<ROOT_CERTIFICATE_LEN>(path, ROOT_WHAT)?;
    RootCertificate::decode(&bytes)
        .map_err(|_| Error::malformed(path, ROOT_WHAT, "the public key is not a valid P-256 point"))
}

/// Writes a root certificate (0644).
pub fn write_root(path: &Path, root: &RootCertificate, overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, &root.encode(), Access::Public, overwrite)
}

/// Reads a server certificate (169 bytes). Its signature is not checked here: that needs the
/// root, see [`verify_server`].
pub fn read_server(path: &Path) -> Result<ServerCertificate> {
    let bytes = fsio::read_exact::<SERVER_CERTIFICATE_LEN>(path, SERVER_WHAT)?;
    Ok(ServerCertificate::from_bytes(bytes))
}

/// Writes a server certificate (0644).
pub fn write_server(path: &Path, cert: &ServerCertificate, overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, cert.as_bytes(), Access::Public, overwrite)
}

/// Checks a server certificate read from `path` against a root, naming the file on failure.
pub fn verify_server(
    path: &Path,
    cert: &ServerCertificate,
    root: &RootCertificate,
) -> Result<LongtermPublicKey> {
    cert.verify(root).map_err(|e| {
        Error::new(
            path,
            ErrorKind::Inconsistent(format!(
                "server certificate does not verify under root {}: {e}",
                hex(&root.id.0)
            )),
        )
    })
}

/// Reads a 16-byte root id file (the C tool's `-d/--rid`).
pub fn read_root_id(path: &Path) -> Result<RootId> {
    fsio::read_exact::<ROOT_ID_LEN>(path, "root id").map(RootId)
}

/// Reads a 24-byte reserved-field file (the C tool's `-x/--reserved`).
pub fn read_reserved(path: &Path) -> Result<[u8; RESERVED_LEN]> {
    fsio::read_exact::<RESERVED_LEN>(path, "certificate reserved field")
}

/// Issues a server certificate for `server_key`, signed by the root. Unlike the C tool this
/// first checks that `root_key` is the key of `root` (otherwise the certificate could never
/// verify); `root_key_path` names the key file in that error.
pub fn issue_server(
    root: &RootCertificate,
    root_key: &LongtermKeyPair,
    root_key_path: &Path,
    server_key: &LongtermPublicKey,
    reserved: &[u8; RESERVED_LEN],
) -> Result<ServerCertificate> {
    if root_key.public_key() != &root.public_key {
        return Err(Error::new(
            root_key_path,
            ErrorKind::Inconsistent(format!(
                "this key is not the key of root {} (its public key differs from the root \
                 certificate's)",
                hex(&root.id.0)
            )),
        ));
    }
    ServerCertificate::issue(reserved, &root.id, server_key, root_key).map_err(|e| {
        Error::new(
            root_key_path,
            ErrorKind::Inconsistent(format!("signing failed: {e}")),
        )
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
