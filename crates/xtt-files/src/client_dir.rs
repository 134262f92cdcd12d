//! The C client's files, by the names it uses by default, in one directory: the inputs it reads
//! (root certificate, DAA material) and the outputs a provisioning writes (the ClientID, the
//! long-term key pair and its X.509 certificate). Our client reads and writes the same set, so a
//! directory provisioned by either tool is usable by the other.

use std::path::{Path, PathBuf};

use rand_core::CryptoRngCore;
use xtt_proto::cert::RootCertificate;
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::ClientId;

use crate::daa::MemberFileNames;
use crate::error::{Error, ErrorKind, Result};
use crate::fsio::Overwrite;
use crate::{certs, client_id, keypair, x509};

/// Root certificate the client trusts.
pub const ROOT_CERT: &str = "root_cert.bin";
/// The assigned ClientID (text, 40 bytes).
pub const CLIENT_ID: &str = "client_id.txt";
/// The long-term key pair (DER ECPrivateKey, 0600).
pub const LONGTERM_PRIV: &str = "longterm_priv.bin";
/// The long-term key's self-signed X.509 certificate.
pub const LONGTERM_CERT: &str = "longterm_cert.bin";
/// A requested ClientID (16 raw bytes), if the client asks for one.
pub const REQUESTED_ID: &str = "req_id.bin";

/// A client directory.
#[derive(Debug, Clone)]
pub struct ClientDir {
    path: PathBuf,
}

/// What one provisioning left in a client directory.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The assigned ClientID.
    pub client_id: ClientId,
    /// `longterm_cert.bin`'s DER.
    pub certificate: Vec<u8>,
}

impl ClientDir {
    /// A client directory at `path` (not touched until read from or written to).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of one of its files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The trusted root.
    pub fn root(&self) -> Result<RootCertificate> {
        certs::read_root(&self.file(ROOT_CERT))
    }

    /// The DAA member (credential checked against key and group).
    pub fn member(&self) -> Result<xtt_ecdaa::Member> {
        crate::daa::read_member(&self.path)
    }

    /// The requested ClientID: `req_id.bin` if present, else the null id (server chooses).
    pub fn requested_id(&self) -> Result<ClientId> {
        let p = self.file(REQUESTED_ID);
        if p.exists() {
            client_id::read_raw(&p)
        } else {
            Ok(ClientId::NULL)
        }
    }

    /// Writes the results of a provisioning as the C client does: `longterm_priv.bin` (0600),
    /// `longterm_cert.bin` (0644) and `client_id.txt` (0644), replacing an earlier identity as
    /// one ([`crate::identity`]).
    pub fn write_provisioned(
        &self,
        id: &ClientId,
        longterm: &LongtermKeyPair,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Provisioned> {
        let certificate = crate::identity::write(
            crate::identity::IdentityPaths {
                key: &self.file(LONGTERM_PRIV),
                cert: &self.file(LONGTERM_CERT),
                client_id: &self.file(CLIENT_ID),
            },
            longterm,
            id,
            rng,
        )?;
        Ok(Provisioned {
            client_id: *id,
            certificate,
        })
    }

    /// Reads back what a provisioning wrote and checks it fits together (certificate names the
    /// id and certifies the key).
    pub fn read_provisioned(&self) -> Result<(ClientId, LongtermKeyPair)> {
        crate::identity::finish_interrupted(&self.file(LONGTERM_PRIV))?;
        let id = client_id::read(&self.file(CLIENT_ID))?;
        let key = keypair::read(&self.file(LONGTERM_PRIV))?;
        let cert_path = self.file(LONGTERM_CERT);
        let cert = x509::read(&cert_path)?;
        if cert.client_id != id || &cert.public_key != key.public_key() {
            return Err(Error::new(
                &cert_path,
                ErrorKind::Inconsistent(format!(
                    "this certificate is not for {CLIENT_ID} and {LONGTERM_PRIV} beside it"
                )),
            ));
        }
        Ok((id, key))
    }

    /// Copies a group member's DAA files and the root certificate into this directory, making
    /// it ready for provisioning (the directory is created 0700 if needed).
    pub fn prepare(&self, member_dir: &Path, root_cert: &Path) -> Result<()> {
        crate::fsio::create_private_dir(&self.path)?;
        for name in [
            MemberFileNames::GPK,
            MemberFileNames::BASENAME,
            MemberFileNames::GID,
            MemberFileNames::CREDENTIAL,
            MemberFileNames::SECRET_KEY,
        ] {
            let src = member_dir.join(name);
            let bytes = zeroize::Zeroizing::new(crate::fsio::read_limited(&src, name, 4096)?);
            let access = if name == MemberFileNames::SECRET_KEY {
                crate::fsio::Access::Secret
            } else {
                crate::fsio::Access::Public
            };
            crate::fsio::write_atomic(&self.file(name), &bytes, access, Overwrite::Allow)?;
        }
        let root = certs::read_root(root_cert)?;
        certs::write_root(&self.file(ROOT_CERT), &root, Overwrite::Allow)
    }
}
