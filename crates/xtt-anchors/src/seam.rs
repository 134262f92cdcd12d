//! What the XTT client and server, the TTE services and the relay call to get their anchors
//! from the store instead of loose files.
//!
//! * XTT client (device): `ClientConfig { roots: Arc::new(store.xtt_roots(now)?), .. }`.
//!   [`RootSnapshot`] implements [`xtt_proto::cert::RootStore`] with the roots that have the
//!   transport role and are valid at `now`; build one per handshake (it is a few bytes per root).
//! * XTT server: build a [`GroupDirectory`] once (it precomputes each group's pairing lines),
//!   rebuild it when [`AnchorStore::revision`] changes, and per handshake call
//!   [`GroupDirectory::verify`] on the `AttestedClient` (it checks the group's validity at that
//!   handshake's `now`, so a rotation window closes without a rebuild).
//!   A server that keeps its own verifier cache (batch verification) reads
//!   [`AnchorStore::daa_group_records`] instead: the fields of a registry row (group id, gpk,
//!   basename) plus fingerprint and validity, which it must check at use.
//! * After provisioning, either side may record the identity with
//!   [`AnchorStore::record_xtt_identity`] (provenance "provisioned by XTT", vouched for by the
//!   server certificate's anchor and the group's), which puts devices into the trust graph.
//! * TTE services: [`AnchorStore::tte_secrets`] / [`AnchorStore::tte_secret_named`] (by URN,
//!   the anchor's name) for TaSecret/DevSecret usable for onboarding,
//!   [`AnchorStore::import_tte_secret`] for a secret a TTE service delivers.
//! * [`AnchorStore`] holds one SQLite connection (`Send`, not `Sync`): an async service keeps
//!   it behind a mutex or in a blocking task; the lookup results above are `Send + Sync`.
//! * HTTPS clients (relay, TTE device): [`AnchorStore::tls_roots`], the DER CA certificates
//!   (kind `tls-root`, role transport) to trust besides the platform's roots.
//! * Relay and anything else: [`AnchorStore::usable`] with the kind and role it needs.
//! * Updates over an XTT session (once sessions exist): the device passes the received
//!   envelope and image to [`crate::update::verify_update`] with its store; nothing else in
//!   the update path depends on the transport.
//! * Deployments still configured with the `xtt` tool's loose files: [`import_xtt_tool_dir`]
//!   (`xtt anchors import-dir`) once, then the programs read the store.
//!
//! Where these seams are used: `xtt server --anchors` / `anchors = "PATH"` (xtt-server's
//! `anchors` module: groups via [`AnchorStore::daa_group_records`] into its own verifier cache,
//! identities recorded by a writer thread with [`xtt_identity_anchor`] in batches);
//! `xtt client provision --anchors` (roots via [`AnchorStore::xtt_roots`], identity via
//! [`AnchorStore::record_xtt_identity`]); `xtt tte transfer-agent|controller serve --anchors`
//! (tte-server's `anchored` module: [`AnchorStore::import_tte_secret`] and
//! [`AnchorStore::tte_secret_named`]); `xtt update fetch` ([`crate::delivery`] over a session,
//! then [`crate::update::verify_update`]).

use std::collections::HashMap;
use std::sync::Arc;

use rand_core::CryptoRngCore;
use xtt_ecdaa::{GroupPublicKey, GroupVerifier};
use xtt_proto::cert::{RootCertificate, RootId, RootStore};
use xtt_proto::daa::GroupId;
use xtt_proto::error::Refused;
use xtt_proto::longterm::LongtermPublicKey;
use xtt_proto::server::{AttestedClient, VerifiedClient};
use xtt_proto::ClientId;

use crate::anchor::{
    Anchor, AnchorKind, Fingerprint, Material, Provenance, Roles, SecretBytes, UnixSeconds,
    Validity,
};
use crate::error::AnchorError;
use crate::material;
use crate::store::{AnchorStore, Backend, NewAnchor};

/// The XTT roots a device accepts at one moment.
#[derive(Clone, Debug, Default)]
pub struct RootSnapshot {
    roots: Vec<(Fingerprint, RootCertificate)>,
}

impl RootSnapshot {
    /// The store fingerprint of the root with this id.
    pub fn fingerprint(&self, id: &RootId) -> Option<Fingerprint> {
        self.roots
            .iter()
            .find(|(_, r)| r.id == *id)
            .map(|(f, _)| *f)
    }

    /// How many roots are usable.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

impl RootStore for RootSnapshot {
    fn root(&self, id: &RootId) -> Option<RootCertificate> {
        self.roots
            .iter()
            .find(|(_, r)| r.id == *id)
            .map(|(_, r)| r.clone())
    }
}

struct GroupEntry {
    fingerprint: Fingerprint,
    validity: Validity,
    verifier: Arc<GroupVerifier>,
}

/// A DAA group as stored, for servers that keep their own verifier cache (e.g. one that
/// batch-verifies): the same fields as a registry row, plus the anchor's fingerprint and window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaaGroupRecord {
    /// The anchor.
    pub fingerprint: Fingerprint,
    /// SHA-256(gpk ‖ basename), as announced by clients.
    pub group_id: GroupId,
    /// The 258-byte group public key.
    pub gpk: Vec<u8>,
    /// The basename.
    pub basename: Vec<u8>,
    /// When the group is accepted.
    pub validity: Validity,
}

/// The DAA groups a server accepts, with verifiers ready (precomputed once).
pub struct GroupDirectory {
    groups: HashMap<GroupId, GroupEntry>,
}

impl core::fmt::Debug for GroupDirectory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupDirectory")
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl GroupDirectory {
    /// The verifier for `group`, if that group is stored with the attestation role and valid
    /// at `now`.
    pub fn verifier(&self, group: &GroupId, now: UnixSeconds) -> Option<&GroupVerifier> {
        self.groups
            .get(group)
            .filter(|g| g.validity.contains(now))
            .map(|g| g.verifier.as_ref())
    }

    /// The same verifier, shareable (e.g. with a batch-verification worker).
    pub fn shared_verifier(&self, group: &GroupId, now: UnixSeconds) -> Option<Arc<GroupVerifier>> {
        self.groups
            .get(group)
            .filter(|g| g.validity.contains(now))
            .map(|g| g.verifier.clone())
    }

    /// The store fingerprint of `group`.
    pub fn fingerprint(&self, group: &GroupId) -> Option<Fingerprint> {
        self.groups.get(group).map(|g| g.fingerprint)
    }

    /// How many groups are loaded.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The server's DAA step: looks the client's group up (valid at `now`) and verifies.
    /// An unknown or expired group is `Refused::UnknownGroup`, as the protocol core expects.
    pub fn verify(
        &self,
        attested: AttestedClient,
        now: UnixSeconds,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<VerifiedClient, xtt_proto::Error> {
        let verifier = self
            .verifier(attested.group_id(), now)
            .ok_or(Refused::UnknownGroup)?;
        attested.verify_group(verifier, rng)
    }
}

impl<B: Backend> AnchorStore<B> {
    /// The roots a device accepts at `now` (kind xtt-root, role transport, valid).
    pub fn xtt_roots(&self, now: UnixSeconds) -> Result<RootSnapshot, AnchorError> {
        let mut roots = Vec::new();
        for a in self.usable(AnchorKind::XttRoot, Roles::TRANSPORT, now)? {
            if let Some(bytes) = a.public_material() {
                roots.push((a.fingerprint, material::root_certificate(bytes)?));
            }
        }
        Ok(RootSnapshot { roots })
    }

    /// The TLS certificate authorities HTTPS clients accept at `now` besides the platform's
    /// (kind tls-root, role transport, valid): their fingerprints and DER certificates.
    pub fn tls_roots(&self, now: UnixSeconds) -> Result<Vec<(Fingerprint, Vec<u8>)>, AnchorError> {
        Ok(self
            .usable(AnchorKind::TlsRoot, Roles::TRANSPORT, now)?
            .into_iter()
            .filter_map(|a| a.public_material().map(|m| (a.fingerprint, m.to_vec())))
            .collect())
    }

    /// The groups a server accepts: every daa-group with the attestation role whose window has
    /// not closed at `now` (validity is checked again at each lookup).
    pub fn daa_groups(&self, now: UnixSeconds) -> Result<GroupDirectory, AnchorError> {
        let mut groups = HashMap::new();
        for g in self.daa_group_records(now)? {
            let bad = |e: xtt_ecdaa::Error| AnchorError::InvalidMaterial {
                kind: AnchorKind::DaaGroup,
                reason: e.to_string(),
            };
            let gpk = GroupPublicKey::from_bytes(&g.gpk).map_err(bad)?;
            let verifier = GroupVerifier::new(gpk, &g.basename).map_err(bad)?;
            groups.insert(
                g.group_id,
                GroupEntry {
                    fingerprint: g.fingerprint,
                    validity: g.validity,
                    verifier: Arc::new(verifier),
                },
            );
        }
        Ok(GroupDirectory { groups })
    }

    /// The groups a server accepts, as records (attestation role, window not closed at `now`;
    /// a record's own `validity` must still be checked at use).
    pub fn daa_group_records(&self, now: UnixSeconds) -> Result<Vec<DaaGroupRecord>, AnchorError> {
        let mut out = Vec::new();
        for a in self.list()? {
            let open = a.validity.not_after.is_none_or(|end| now < end);
            if a.kind != AnchorKind::DaaGroup || !a.roles.contains(Roles::ATTESTATION) || !open {
                continue;
            }
            let Some(bytes) = a.public_material() else {
                continue;
            };
            let (gpk, basename) = material::daa_group_parts(bytes).map_err(|reason| {
                AnchorError::InvalidMaterial {
                    kind: AnchorKind::DaaGroup,
                    reason,
                }
            })?;
            out.push(DaaGroupRecord {
                fingerprint: a.fingerprint,
                group_id: material::daa_group_id(bytes),
                gpk: gpk.to_vec(),
                basename: basename.to_vec(),
                validity: a.validity,
            });
        }
        Ok(out)
    }

    /// The stored group with this id (any validity), for linking identities to it.
    pub fn daa_group_fingerprint(
        &self,
        group: &GroupId,
    ) -> Result<Option<Fingerprint>, AnchorError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|a| {
                a.kind == AnchorKind::DaaGroup
                    && a.public_material()
                        .is_some_and(|m| material::daa_group_id(m) == *group)
            })
            .map(|a| a.fingerprint))
    }

    /// Records an identity XTT provisioned (on the device or the server), vouched for by the
    /// given anchors (typically the server certificate or root, and the DAA group).
    pub fn record_xtt_identity(
        &mut self,
        client_id: &ClientId,
        longterm_key: &LongtermPublicKey,
        vouched_by: &[Fingerprint],
        source: impl Into<String>,
        now: UnixSeconds,
    ) -> Result<Fingerprint, AnchorError> {
        self.import(
            xtt_identity_anchor(client_id, longterm_key, vouched_by, source),
            now,
        )
    }

    /// TTE secrets of `kind` usable for onboarding at `now`, with their fingerprints and names.
    pub fn tte_secrets(
        &self,
        kind: AnchorKind,
        now: UnixSeconds,
    ) -> Result<Vec<(Fingerprint, String, SecretBytes)>, AnchorError> {
        Ok(self
            .usable(kind, Roles::ONBOARDING, now)?
            .into_iter()
            .filter_map(|a: Anchor| match a.material {
                Material::Secret(s) => Some((a.fingerprint, a.name, s)),
                Material::Public(_) => None,
            })
            .collect())
    }

    /// The TTE secret of `kind` whose name is `name` (e.g. a TaURN or DevURN), usable for
    /// onboarding at `now`.
    pub fn tte_secret_named(
        &self,
        kind: AnchorKind,
        name: &str,
        now: UnixSeconds,
    ) -> Result<Option<(Fingerprint, SecretBytes)>, AnchorError> {
        // By name, not through tte_secrets: a service asks this per request, and reading every
        // anchor each time would make each request cost as much as the whole store.
        Ok(self
            .named(kind, name)?
            .into_iter()
            .filter(|a| a.usable_for(Roles::ONBOARDING, now))
            .find_map(|a| match a.material {
                Material::Secret(s) => Some((a.fingerprint, s)),
                Material::Public(_) => None,
            }))
    }

    /// Stores a secret a TTE service delivered (provenance "delivered by TTE").
    pub fn import_tte_secret(
        &mut self,
        kind: AnchorKind,
        secret: SecretBytes,
        name: impl Into<String>,
        source: impl Into<String>,
        vouched_by: &[Fingerprint],
        now: UnixSeconds,
    ) -> Result<Fingerprint, AnchorError> {
        if !kind.is_secret() {
            return Err(AnchorError::InvalidMaterial {
                kind,
                reason: "not a TTE secret kind".into(),
            });
        }
        let mut new = NewAnchor::secret(kind, secret, "")
            .named(name)
            .with_provenance(Provenance::DeliveredByTte {
                source: source.into(),
            });
        new.vouched_by = vouched_by.to_vec();
        self.import(new, now)
    }
}

/// The anchor [`AnchorStore::record_xtt_identity`] adds, for callers that record many at once
/// ([`AnchorStore::restore`] commits a batch in one transaction and skips identities already
/// stored).
pub fn xtt_identity_anchor(
    client_id: &ClientId,
    longterm_key: &LongtermPublicKey,
    vouched_by: &[Fingerprint],
    source: impl Into<String>,
) -> NewAnchor {
    let mut bytes = client_id.0.to_vec();
    bytes.extend_from_slice(longterm_key.as_bytes());
    let mut new = NewAnchor::public(AnchorKind::DeviceIdentity, bytes, "")
        .named(format!("device {client_id}"))
        .with_provenance(Provenance::ProvisionedByXtt {
            source: source.into(),
        });
    new.vouched_by = vouched_by.to_vec();
    new
}

/// What [`import_xtt_tool_dir`] did with each file it looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LooseImport {
    /// Imported as a new anchor.
    Imported(AnchorKind, Fingerprint),
    /// Already in the store (same fingerprint); nothing changed.
    AlreadyStored(AnchorKind, Fingerprint),
}

/// Imports the anchors among the `xtt` tool's loose files in `dir` (`root_cert.bin`;
/// `daa_gpk.bin` with `basename.bin`), idempotently: files already imported are reported, not
/// duplicated. This is the migration path for deployments configured with loose files; the
/// programs then read the store. Files that are absent are skipped; malformed ones are errors.
/// An anchor revoked since (`xtt anchors remove`) is refused with [`AnchorError::Revoked`]
/// before anything is imported: re-running the migration must not bring it back.
pub fn import_xtt_tool_dir<B: Backend>(
    store: &mut AnchorStore<B>,
    dir: &std::path::Path,
    now: UnixSeconds,
) -> Result<Vec<LooseImport>, AnchorError> {
    let read = |name: &str| -> Result<Option<Vec<u8>>, AnchorError> {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AnchorError::Io {
                path: path.display().to_string(),
                cause: source,
            }),
        }
    };
    let mut candidates = Vec::new();
    if let Some(root) = read("root_cert.bin")? {
        candidates.push((AnchorKind::XttRoot, root, "root_cert.bin"));
    }
    if let (Some(gpk), Some(bsn)) = (read("daa_gpk.bin")?, read("basename.bin")?) {
        let m = material::daa_group_material(&gpk, &bsn)?;
        candidates.push((AnchorKind::DaaGroup, m, "daa_gpk.bin"));
    }
    for (kind, bytes, _) in &candidates {
        let fp = crate::anchor::Fingerprint::of(*kind, bytes);
        if let Some(r) = store.revocation(&fp)? {
            return Err(r.refusal());
        }
    }
    let mut done = Vec::new();
    for (kind, bytes, file) in candidates {
        let source = dir.join(file).display().to_string();
        match store.import(NewAnchor::public(kind, bytes, source), now) {
            Ok(fp) => done.push(LooseImport::Imported(kind, fp)),
            Err(AnchorError::Duplicate(fp)) => done.push(LooseImport::AlreadyStored(kind, fp)),
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn lookup_results_can_be_shared_across_server_tasks() {
        assert_send_sync::<RootSnapshot>();
        assert_send_sync::<GroupDirectory>();
    }
}
