//! The XTT hand-over: when a device's Controller is `xtt://host:port`, the enrollment goes on
//! as XTT identity provisioning against that server ("the seed's enrollment and XTT are one
//! trust cycle"): TTE told the device *where* to go, XTT gives it *who it is* there.
//!
//! # What the device needs, and where it comes from
//!
//! * **A DAA group membership** (group public key, basename, credential, member secret key):
//!   the XTT server lets in members of the groups it knows. `manufacture --daa-group DIR`
//!   enrolls every device it makes into that group (the join protocol, through
//!   `xtt_files::group::GroupDir`, as `xtt group enroll` does) and puts the member's four
//!   values into the device's secrets file, section `xtt` ([`XttSecrets`], base64url): the
//!   file is what a factory flashes, so the device carries its membership from birth.
//!   A device made without it can be given a member directory on the command line instead
//!   (`device fetch --daa-member DIR`, the files `xtt group enroll` writes).
//! * **The XTT root certificate** the server's certificate must chain to: `manufacture
//!   --xtt-root FILE` embeds it too (`xttRoot`), or `device fetch --xtt-root FILE` gives it.
//!   The Transfer Agent does not deliver it: the ContURL says where the server is, the root
//!   comes from the manufacturer, so a Transfer Agent cannot send a device to a server its
//!   maker did not vouch for.
//! * **Where the identity goes**: a directory in the C client's layout (`--xtt-dir`; by
//!   default `<secrets file stem>.xtt` beside the secrets file): the DAA inputs and root are
//!   copied there (secret key 0600), then `client_id.txt`, `longterm_cert.bin` and
//!   `longterm_priv.bin` (0600) are written exactly as `xtt client provision` writes them
//!   (through `xtt_server::client_files`), so `xtt info DIR` and the C tools read it.
//!
//! Everything is checked before anything is written: missing or inconsistent DAA material, a
//! malformed root, or a refused handshake is an [`XttError`] and leaves no file behind.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use xtt_ecdaa::{Credential, GroupPublicKey, Member, MemberSecretKey};
use xtt_files::daa::{self, MemberFileNames};
use xtt_files::{certs, client_dir, Overwrite};
use xtt_proto::cert::RootCertificate;
use xtt_proto::SuiteSpec;
use xtt_server::client_files::ClientFiles;
use xtt_server::Provisioner;
use zeroize::Zeroizing;

use crate::device::{DeviceSecrets, XttHandover};

/// Why the hand-over to XTT failed. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum XttError {
    /// The device carries no DAA membership and none was given.
    #[error(
        "device {urn} has no DAA credential, so it cannot prove it belongs to a group the XTT \
         server accepts: make it with `manufacture --daa-group DIR`, or give a member directory \
         with `device fetch --daa-member DIR`"
    )]
    NoDaaCredential {
        /// The device.
        urn: String,
    },
    /// The device carries no XTT root and none was given.
    #[error(
        "device {urn} has no XTT root certificate to check the server against: make it with \
         `manufacture --xtt-root FILE`, or give one with `device fetch --xtt-root FILE`"
    )]
    NoXttRoot {
        /// The device.
        urn: String,
    },
    /// The DAA material is malformed or does not fit together.
    #[error("the device's DAA material is unusable: {0}")]
    BadDaaMaterial(String),
    /// The root certificate is malformed.
    #[error("the XTT root certificate is unusable: {0}")]
    BadRoot(String),
    /// The handshake failed (server unreachable, refused, or its certificate did not verify).
    #[error("XTT provisioning with {addr} failed")]
    Provision {
        /// The server.
        addr: String,
        /// Why.
        #[source]
        source: xtt_server::ClientError,
    },
    /// Writing the identity failed.
    #[error("writing the XTT identity")]
    Write(#[from] xtt_files::Error),
}

/// A device's XTT material as it sits in its secrets file (base64url, no padding).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct XttSecrets {
    /// The group public key (258 bytes).
    pub daa_gpk: String,
    /// The group's basename.
    pub daa_basename: String,
    /// The member's credential.
    pub daa_credential: String,
    /// The member's secret key.
    pub daa_secret_key: String,
    /// The XTT root certificate (81 bytes), if the manufacturer knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xtt_root: Option<String>,
}

impl std::fmt::Debug for XttSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XttSecrets")
            .field("has_root", &self.xtt_root.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for XttSecrets {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.daa_secret_key);
    }
}

impl XttSecrets {
    /// From a member directory as `xtt group enroll` writes it (checked: the credential must
    /// belong to the key and group), and an optional root certificate file.
    pub fn from_member_dir(dir: &Path, root: Option<&Path>) -> Result<Self, XttError> {
        let m = DaaMaterial::from_dir(dir)?;
        let root = root
            .map(|p| certs::read_root(p).map_err(|e| XttError::BadRoot(e.to_string())))
            .transpose()?;
        Ok(m.to_secrets(root.as_ref()))
    }
}

/// A DAA membership, checked, with the bytes needed to write it out again.
struct DaaMaterial {
    gpk: GroupPublicKey,
    basename: Vec<u8>,
    credential: Credential,
    secret_key: MemberSecretKey,
    member: Member,
}

impl DaaMaterial {
    fn from_parts(
        gpk: GroupPublicKey,
        basename: Vec<u8>,
        credential: Credential,
        secret_key: MemberSecretKey,
    ) -> Result<Self, XttError> {
        if basename.is_empty() || basename.len() > daa::MAX_BASENAME_LEN {
            return Err(XttError::BadDaaMaterial(format!(
                "the basename must be 1 to {} bytes",
                daa::MAX_BASENAME_LEN
            )));
        }
        let member =
            Member::new(secret_key.clone(), credential.clone(), &gpk, &basename).map_err(|e| {
                XttError::BadDaaMaterial(format!(
                    "the credential does not belong to this secret key and group ({e})"
                ))
            })?;
        Ok(Self {
            gpk,
            basename,
            credential,
            secret_key,
            member,
        })
    }

    fn from_dir(dir: &Path) -> Result<Self, XttError> {
        let files = ClientFiles::in_dir(dir);
        let bad = |e: xtt_files::Error| XttError::BadDaaMaterial(e.to_string());
        Self::from_parts(
            daa::read_gpk(&files.gpk).map_err(bad)?,
            daa::read_basename(&files.basename).map_err(bad)?,
            daa::read_credential(&files.cred).map_err(bad)?,
            daa::read_member_secret_key(&files.secret).map_err(bad)?,
        )
    }

    fn from_secrets(x: &XttSecrets) -> Result<Self, XttError> {
        let field = |name: &str, v: &str| -> Result<Zeroizing<Vec<u8>>, XttError> {
            URL_SAFE_NO_PAD
                .decode(v.trim_end_matches('='))
                .map(Zeroizing::new)
                .map_err(|_| XttError::BadDaaMaterial(format!("{name} is not base64url")))
        };
        let ecdaa =
            |name: &str, e: xtt_ecdaa::Error| XttError::BadDaaMaterial(format!("{name}: {e}"));
        let gpk = GroupPublicKey::from_bytes(&field("daaGpk", &x.daa_gpk)?)
            .map_err(|e| ecdaa("daaGpk", e))?;
        let credential = Credential::from_bytes(&field("daaCredential", &x.daa_credential)?)
            .map_err(|e| ecdaa("daaCredential", e))?;
        let secret_key = MemberSecretKey::from_bytes(&field("daaSecretKey", &x.daa_secret_key)?)
            .map_err(|e| ecdaa("daaSecretKey", e))?;
        let basename = field("daaBasename", &x.daa_basename)?.to_vec();
        Self::from_parts(gpk, basename, credential, secret_key)
    }

    fn to_secrets(&self, root: Option<&RootCertificate>) -> XttSecrets {
        XttSecrets {
            daa_gpk: URL_SAFE_NO_PAD.encode(self.gpk.to_bytes()),
            daa_basename: URL_SAFE_NO_PAD.encode(&self.basename),
            daa_credential: URL_SAFE_NO_PAD.encode(self.credential.to_bytes()),
            daa_secret_key: URL_SAFE_NO_PAD.encode(self.secret_key.to_bytes().as_slice()),
            xtt_root: root.map(|r| URL_SAFE_NO_PAD.encode(r.encode())),
        }
    }

    /// Writes the inputs of the C client into `files`' directory (secret key 0600).
    fn write_inputs(&self, files: &ClientFiles, root: &RootCertificate) -> xtt_files::Result<()> {
        daa::write_gpk(&files.gpk, &self.gpk, Overwrite::Allow)?;
        daa::write_basename(&files.basename, &self.basename, Overwrite::Allow)?;
        if let Some(dir) = files.gpk.parent() {
            let gid = xtt_ecdaa::group_id(&self.gpk, &self.basename);
            daa::write_group_id(
                &dir.join(MemberFileNames::GID),
                &xtt_proto::daa::GroupId(gid.0),
                Overwrite::Allow,
            )?;
        }
        daa::write_credential(&files.cred, &self.credential, Overwrite::Allow)?;
        daa::write_member_secret_key(&files.secret, &self.secret_key, Overwrite::Allow)?;
        certs::write_root(&files.root, root, Overwrite::Allow)
    }
}

fn decode_root(b64: &str) -> Result<RootCertificate, XttError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| XttError::BadRoot("xttRoot is not base64url".into()))?;
    RootCertificate::decode(&bytes).map_err(|e| XttError::BadRoot(e.to_string()))
}

/// The [`XttHandover`] that provisions with this project's XTT client and writes the C
/// client's files.
#[derive(Debug, Clone)]
pub struct XttEnrollment {
    /// Where the identity goes (created 0700).
    pub out_dir: PathBuf,
    /// A member directory overriding the secrets file's `xtt` section.
    pub daa_member: Option<PathBuf>,
    /// A root certificate file overriding the secrets file's `xttRoot`.
    pub xtt_root: Option<PathBuf>,
    /// Suite to offer.
    pub suite: SuiteSpec,
    /// Per-step timeout.
    pub timeout: Duration,
}

impl XttEnrollment {
    /// Identity into `out_dir`, material from the device's secrets file, suite 1, 10 s steps.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into(),
            daa_member: None,
            xtt_root: None,
            suite: SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
            timeout: Duration::from_secs(10),
        }
    }

    fn material(&self, device: &DeviceSecrets) -> Result<(DaaMaterial, RootCertificate), XttError> {
        let urn = || device.urn.to_string();
        let daa = match (&self.daa_member, &device.xtt) {
            (Some(dir), _) => DaaMaterial::from_dir(dir)?,
            (None, Some(x)) => DaaMaterial::from_secrets(x)?,
            (None, None) => return Err(XttError::NoDaaCredential { urn: urn() }),
        };
        let root = match (
            &self.xtt_root,
            device.xtt.as_ref().and_then(|x| x.xtt_root.as_ref()),
        ) {
            (Some(path), _) => {
                certs::read_root(path).map_err(|e| XttError::BadRoot(e.to_string()))?
            }
            (None, Some(b64)) => decode_root(b64)?,
            (None, None) => return Err(XttError::NoXttRoot { urn: urn() }),
        };
        Ok((daa, root))
    }

    /// Provisions `device` with the XTT server at `host:port` and writes the identity.
    pub async fn run(
        &self,
        host: &str,
        port: u16,
        device: &DeviceSecrets,
    ) -> Result<xtt_proto::ClientId, XttError> {
        let (daa, root) = self.material(device)?;
        // Before the handshake, which registers the identity: a directory that cannot take the
        // files would leave the device with a ClientID it has no key for.
        let out = self.out_dir.clone();
        let created = tokio::task::spawn_blocking(move || -> Result<bool, XttError> {
            let created = !out.exists();
            xtt_files::fsio::create_private_dir(&out)?;
            ClientFiles::in_dir(&out).check_outputs()?;
            Ok(created)
        })
        .await
        .map_err(|e| {
            XttError::Write(xtt_files::Error {
                path: self.out_dir.clone(),
                kind: xtt_files::ErrorKind::Inconsistent(format!("checker task failed: {e}")),
            })
        })??;
        let mut provisioner = Provisioner::new(root.clone(), Arc::new(daa.member.clone()));
        provisioner.suite = self.suite;
        provisioner.timeout = self.timeout;
        let identity = match provisioner.provision((host, port)).await {
            Ok(identity) => identity,
            Err(source) => {
                // A failed handshake leaves nothing behind: not even the empty directory.
                if created {
                    let _ = std::fs::remove_dir(&self.out_dir);
                }
                return Err(XttError::Provision {
                    addr: format!("{host}:{port}"),
                    source,
                });
            }
        };
        let out = self.out_dir.clone();
        let client_id = identity.client_id;
        // File writes fsync; keep them off the async workers.
        tokio::task::spawn_blocking(move || -> Result<(), XttError> {
            xtt_files::fsio::create_private_dir(&out)?;
            let files = ClientFiles::in_dir(&out);
            daa.write_inputs(&files, &root)?;
            files.write_results(&identity)?;
            Ok(())
        })
        .await
        .map_err(|e| {
            XttError::Write(xtt_files::Error {
                path: self.out_dir.join(client_dir::CLIENT_ID),
                kind: xtt_files::ErrorKind::Inconsistent(format!("writer task failed: {e}")),
            })
        })??;
        Ok(client_id)
    }
}

impl XttHandover for XttEnrollment {
    fn provision<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        device: &'a DeviceSecrets,
    ) -> Pin<Box<dyn Future<Output = Result<(), XttError>> + Send + 'a>> {
        Box::pin(async move { self.run(host, port, device).await.map(|_| ()) })
    }
}
