//! `xtt client provision --anchors STORE`: the device's roots come from its trust-anchor store,
//! and the identity it was given is recorded there ("provisioned by XTT").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use xtt_anchors::seam::RootSnapshot;
use xtt_anchors::{AnchorKind, AnchorStore, Fingerprint};
use xtt_proto::cert::RootStore;
use xtt_server::ProvisionedIdentity;

use crate::server_anchors::unix_now;

/// A device's anchor store.
pub(crate) struct DeviceAnchors {
    path: PathBuf,
    store: AnchorStore,
    roots: RootSnapshot,
}

impl DeviceAnchors {
    /// Opens an existing store (a missing one is an error: it would hold no roots).
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            anyhow::bail!(
                "{}: no anchor store here (import the root first: `xtt anchors --store {} import xtt-root root_cert.bin`)",
                path.display(),
                path.display()
            );
        }
        let store = AnchorStore::open(path)
            .with_context(|| format!("cannot open anchor store {}", path.display()))?;
        let roots = store.xtt_roots(unix_now())?;
        if roots.is_empty() {
            anyhow::bail!(
                "{}: no xtt-root anchor with the transport role is valid now",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            store,
            roots,
        })
    }

    /// The roots valid now, for the handshake.
    pub(crate) fn roots(&self) -> anyhow::Result<Arc<dyn RootStore + Send + Sync>> {
        Ok(Arc::new(self.roots.clone()))
    }

    /// Records the identity, vouched for by the server certificate's anchor if stored (else
    /// the root that verified it) and the group's anchor if stored. A re-provisioning with the
    /// same key is already recorded and not an error.
    pub(crate) fn record(
        &mut self,
        identity: &ProvisionedIdentity,
        server: &str,
    ) -> anyhow::Result<(PathBuf, Fingerprint)> {
        let cert = &identity.server_certificate;
        let server_fp = Fingerprint::of(AnchorKind::XttServer, cert.as_bytes());
        let mut vouchers = Vec::new();
        if self.store.get(&server_fp).is_ok() {
            vouchers.push(server_fp);
        } else if let Some(root) = self.roots.fingerprint(&cert.root_id()) {
            vouchers.push(root);
        }
        if let Some(group) = self.store.daa_group_fingerprint(&identity.group_id)? {
            vouchers.push(group);
        }
        let public = identity.longterm_key.public_key();
        let fp = match self.store.record_xtt_identity(
            &identity.client_id,
            public,
            &vouchers,
            format!("xtt server {server}"),
            unix_now(),
        ) {
            Ok(fp) => fp,
            Err(xtt_anchors::AnchorError::Duplicate(fp)) => fp,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("recording the identity in {}", self.path.display()))
            }
        };
        Ok((self.path.clone(), fp))
    }
}
