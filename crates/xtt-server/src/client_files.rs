//! A provisioning from and to the C client's files: the DAA member and root it reads, the
//! ClientID, long-term key and X.509 certificate it writes. `xtt client provision`, `xtt demo`
//! and the TTE device's XTT hand-over all go through here, so they read and write the same
//! files the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand_core::OsRng;
use xtt_ecdaa::Member;
use xtt_files::client_dir;
use xtt_files::daa::{self, MemberFileNames};
use xtt_files::identity::{self, IdentityPaths};
use xtt_files::{certs, client_id, ErrorKind};
use xtt_proto::cert::RootStore;
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::{ClientId, SuiteSpec};

use crate::client::Provisioner;
use crate::ProvisionedIdentity;

/// Where the C client's inputs and outputs are (each can be moved by a flag of the C client).
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// `daa_gpk.bin`.
    pub gpk: PathBuf,
    /// `daa_cred.bin`.
    pub cred: PathBuf,
    /// `daa_secretkey.bin` (0600).
    pub secret: PathBuf,
    /// `root_cert.bin`.
    pub root: PathBuf,
    /// `basename.bin`.
    pub basename: PathBuf,
    /// A requested ClientID (16 raw bytes); `None`: the server chooses.
    pub requested: Option<PathBuf>,
    /// `client_id.txt`, written.
    pub client_id: PathBuf,
    /// `longterm_cert.bin`, written.
    pub cert: PathBuf,
    /// `longterm_priv.bin`, written 0600.
    pub key: PathBuf,
}

impl ClientFiles {
    /// The C client's default names in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            gpk: dir.join(MemberFileNames::GPK),
            cred: dir.join(MemberFileNames::CREDENTIAL),
            secret: dir.join(MemberFileNames::SECRET_KEY),
            root: dir.join(client_dir::ROOT_CERT),
            basename: dir.join(MemberFileNames::BASENAME),
            requested: None,
            client_id: dir.join(client_dir::CLIENT_ID),
            cert: dir.join(client_dir::LONGTERM_CERT),
            key: dir.join(client_dir::LONGTERM_PRIV),
        }
    }

    /// The DAA member, its credential checked against its secret key and group.
    pub fn member(&self) -> xtt_files::Result<Member> {
        let gpk = daa::read_gpk(&self.gpk)?;
        let basename = daa::read_basename(&self.basename)?;
        let cred = daa::read_credential(&self.cred)?;
        let sk = daa::read_member_secret_key(&self.secret)?;
        Member::new(sk, cred, &gpk, &basename).map_err(|e| xtt_files::Error {
            path: self.cred.clone(),
            kind: ErrorKind::Inconsistent(format!(
                "this credential does not belong to {} and {} ({e})",
                self.secret.display(),
                self.gpk.display()
            )),
        })
    }

    /// A provisioner from these files.
    pub fn provisioner(
        &self,
        suite: SuiteSpec,
        timeout: Duration,
    ) -> xtt_files::Result<Provisioner> {
        self.provisioner_with_roots(suite, timeout, None)
    }

    /// The same, trusting `roots` (e.g. from a trust-anchor store) instead of the root file.
    pub fn provisioner_with_roots(
        &self,
        suite: SuiteSpec,
        timeout: Duration,
        roots: Option<Arc<dyn RootStore + Send + Sync>>,
    ) -> xtt_files::Result<Provisioner> {
        let roots: Arc<dyn RootStore + Send + Sync> = match roots {
            Some(r) => r,
            None => Arc::new(certs::read_root(&self.root)?),
        };
        let mut p = Provisioner::new_with_roots(roots, Arc::new(self.member()?));
        p.suite = suite;
        p.timeout = timeout;
        p.requested_id = match &self.requested {
            Some(f) => client_id::read_raw(f)?,
            None => ClientId::NULL,
        };
        Ok(p)
    }

    /// Checks that every output (key, certificate, ClientID) can be written, before a
    /// handshake: the server registers the ClientID during it, and a device that then cannot
    /// store its key has burnt that identity for nothing.
    pub fn check_outputs(&self) -> xtt_files::Result<()> {
        for path in [&self.key, &self.cert, &self.client_id] {
            xtt_fsio::check_writable(path).map_err(|e| xtt_files::Error {
                path: path.clone(),
                kind: ErrorKind::Write(e),
            })?;
        }
        Ok(())
    }

    /// Writes a provisioning's results as the C client does, replacing an earlier identity as
    /// one ([`xtt_files::identity`]): a crash at any point leaves either the old identity or the
    /// new one, whole.
    pub fn write_results(&self, id: &ProvisionedIdentity) -> xtt_files::Result<()> {
        self.write_identity(&id.longterm_key, &id.client_id)
    }

    fn write_identity(&self, key: &LongtermKeyPair, id: &ClientId) -> xtt_files::Result<()> {
        let paths = IdentityPaths {
            key: &self.key,
            cert: &self.cert,
            client_id: &self.client_id,
        };
        identity::write(paths, key, id, &mut OsRng).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(files: &ClientFiles) -> xtt_files::Result<()> {
        files.write_identity(&LongtermKeyPair::generate(&mut OsRng), &ClientId([7; 16]))
    }

    #[test]
    fn a_key_that_cannot_be_written_leaves_no_id_or_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = ClientFiles::in_dir(dir.path());
        files.key = dir.path().join("missing/longterm_priv.bin");
        let err = files.check_outputs().unwrap_err();
        assert_eq!(err.path, files.key, "{err}");
        assert!(write(&files).is_err());
        assert!(!files.client_id.exists());
        assert!(!files.cert.exists());
    }

    #[test]
    fn writable_outputs_pass_the_check_and_are_all_written() {
        let dir = tempfile::tempdir().unwrap();
        let files = ClientFiles::in_dir(dir.path());
        files.check_outputs().unwrap();
        write(&files).unwrap();
        assert_eq!(
            client_id::read(&files.client_id).unwrap(),
            ClientId([7; 16])
        );
        assert!(files.key.is_file() && files.cert.is_file());
    }
}
