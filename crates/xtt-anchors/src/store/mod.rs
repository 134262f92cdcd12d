//! The anchor store: one place for every mechanism's anchors.
//!
//! [`AnchorStore`] holds the rules (validation, automatic vouching for server certificates,
//! rotation windows, role- and time-filtered lookups); a [`Backend`] only persists. Every write
//! is one [`Change`] batch that the backend applies atomically, so a crash leaves either the old
//! or the new state, never half a rotation.

mod memory;
mod sqlite;

pub use memory::MemoryBackend;
pub use sqlite::SqliteBackend;

use std::collections::BTreeSet;
use std::path::Path;

use crate::anchor::{
    Anchor, AnchorKind, Edge, EdgeKind, Fingerprint, Material, Provenance, Roles, SecretBytes,
    UnixSeconds, Validity,
};
use crate::error::AnchorError;
use crate::material;

/// One write, applied together with the others of its batch.
#[derive(Clone, Debug)]
pub enum Change {
    /// Add an anchor (fails if its fingerprint exists).
    Insert(Anchor),
    /// Remove an anchor and every edge touching it.
    Remove(Fingerprint),
    /// Change when an anchor stops being valid.
    SetNotAfter(Fingerprint, Option<UnixSeconds>),
    /// Change an anchor's roles.
    SetRoles(Fingerprint, Roles),
    /// Add a relation (both ends must exist; adding an existing one is a no-op).
    AddEdge(Edge),
    /// Record a fingerprint as revoked: from then on the backend refuses to insert it
    /// ([`AnchorError::Revoked`]). [`AnchorStore::revoke`] pairs it with a `Remove`.
    Revoke(Revocation),
    /// Forget a revocation (an operator's explicit undo); fails if there is none.
    Unrevoke(Fingerprint),
    /// Allow an update key to sign for a vendor and class (its anchor must exist; adding an
    /// existing one is a no-op). Removed with the anchor.
    AddScope(UpdateScope),
}

/// What an update key may sign for: manifests of this vendor id and class id. Update keys are
/// tried only for manifests inside one of their scopes, so that one vendor's key (compromised,
/// or another product line's) cannot sign for another vendor's devices and, by recording a
/// high sequence number, block that vendor's genuine updates as rollbacks. An update key
/// without any scope (e.g. stored before scopes existed) signs nothing until one is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpdateScope {
    /// The update key's anchor.
    pub key: Fingerprint,
    /// The vendor id (UUID bytes) it may sign for.
    pub vendor_id: [u8; 16],
    /// The class id (UUID bytes) it may sign for.
    pub class_id: [u8; 16],
}

/// A revoked anchor: what `xtt anchors remove` leaves behind so that no import brings the
/// anchor back (kind and name are kept for `list`/`show`, the material is gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The anchor's fingerprint.
    pub fingerprint: Fingerprint,
    /// Its kind.
    pub kind: AnchorKind,
    /// Its name when it was revoked.
    pub name: String,
    /// When it was revoked.
    pub revoked_at: UnixSeconds,
}

impl Revocation {
    /// The error an import of this fingerprint gets.
    pub fn refusal(&self) -> AnchorError {
        AnchorError::Revoked {
            fingerprint: self.fingerprint,
            kind: self.kind,
            name: self.name.clone(),
            revoked_at: self.revoked_at,
        }
    }
}

/// Names one updatable component for rollback protection: vendor id, class id and component id
/// as they appear in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentKey(pub Vec<u8>);

/// Persistence for anchors, edges and accepted update sequence numbers.
///
/// Implementations must make [`Backend::apply`] and [`Backend::advance_sequence`] atomic and
/// durable before returning (the SQLite backend commits with `synchronous=FULL`).
pub trait Backend {
    /// Every stored anchor.
    fn anchors(&self) -> Result<Vec<Anchor>, AnchorError>;
    /// The stored anchor with this fingerprint.
    fn anchor(&self, fingerprint: &Fingerprint) -> Result<Option<Anchor>, AnchorError> {
        Ok(self
            .anchors()?
            .into_iter()
            .find(|a| a.fingerprint == *fingerprint))
    }
    /// The stored anchors of `kind` named `name` (a per-request lookup: backends with an index
    /// answer it without reading every anchor).
    fn anchors_named(&self, kind: AnchorKind, name: &str) -> Result<Vec<Anchor>, AnchorError> {
        Ok(self
            .anchors()?
            .into_iter()
            .filter(|a| a.kind == kind && a.name == name)
            .collect())
    }
    /// Every stored edge.
    fn edges(&self) -> Result<Vec<Edge>, AnchorError>;
    /// Every update key's scopes.
    fn update_scopes(&self) -> Result<Vec<UpdateScope>, AnchorError>;
    /// Every revoked fingerprint.
    fn revocations(&self) -> Result<Vec<Revocation>, AnchorError>;
    /// The revocation of this fingerprint, if it is revoked.
    fn revocation(&self, fingerprint: &Fingerprint) -> Result<Option<Revocation>, AnchorError> {
        Ok(self
            .revocations()?
            .into_iter()
            .find(|r| r.fingerprint == *fingerprint))
    }
    /// Applies every change or none. An `Insert` of a revoked fingerprint must fail with
    /// [`AnchorError::Revoked`], checked in the same transaction, so that no path (nor another
    /// process racing a revocation) stores a revoked anchor.
    fn apply(&mut self, changes: &[Change]) -> Result<(), AnchorError>;
    /// The highest sequence number accepted for `component`.
    fn sequence(&self, component: &ComponentKey) -> Result<Option<u64>, AnchorError>;
    /// Records `sequence` for `component` if it is strictly greater than the stored one
    /// (compare and set in one transaction); otherwise [`AnchorError::Rollback`].
    fn advance_sequence(
        &mut self,
        component: &ComponentKey,
        sequence: u64,
        signer: &Fingerprint,
        now: UnixSeconds,
    ) -> Result<(), AnchorError>;
    /// A number that changes whenever anyone (another process included) changed the store, so
    /// a long-running service knows when to rebuild its caches.
    fn revision(&self) -> Result<u64, AnchorError>;
}

/// What to add: everything but the fingerprint, which is computed.
#[derive(Clone, Debug)]
pub struct NewAnchor {
    /// What it is.
    pub kind: AnchorKind,
    /// A label for people (defaults to kind + short fingerprint when empty).
    pub name: String,
    /// Roles; `None` takes the kind's defaults.
    pub roles: Option<Roles>,
    /// Validity; `None` means from now on, without end.
    pub validity: Option<Validity>,
    /// How it got here.
    pub provenance: Provenance,
    /// The material.
    pub material: Material,
    /// Anchors that vouch for it (must already be stored).
    pub vouched_by: Vec<Fingerprint>,
    /// For an update key: the (vendor id, class id) pairs it may sign for; without any it
    /// signs nothing (a rotation's successor inherits the old key's when none is given).
    pub update_scopes: Vec<([u8; 16], [u8; 16])>,
}

impl NewAnchor {
    /// The fingerprint the anchor will be stored under.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.kind, self.material.fingerprint_input())
    }

    /// A public anchor imported by hand, with default roles and validity.
    pub fn public(kind: AnchorKind, bytes: Vec<u8>, source: impl Into<String>) -> Self {
        NewAnchor {
            kind,
            name: String::new(),
            roles: None,
            validity: None,
            provenance: Provenance::ImportedByHand {
                source: source.into(),
            },
            material: Material::Public(bytes),
            vouched_by: Vec::new(),
            update_scopes: Vec::new(),
        }
    }

    /// A secret anchor imported by hand.
    pub fn secret(kind: AnchorKind, secret: SecretBytes, source: impl Into<String>) -> Self {
        NewAnchor {
            material: Material::Secret(secret),
            ..NewAnchor::public(kind, Vec::new(), source)
        }
    }

    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a voucher.
    pub fn vouched_by(mut self, voucher: Fingerprint) -> Self {
        self.vouched_by.push(voucher);
        self
    }

    /// For an update key: allows it to sign for this vendor id and class id.
    pub fn may_sign_for(mut self, vendor_id: [u8; 16], class_id: [u8; 16]) -> Self {
        self.update_scopes.push((vendor_id, class_id));
        self
    }

    /// Sets the provenance.
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = provenance;
        self
    }
}

/// The store: rules over a [`Backend`].
#[derive(Debug)]
pub struct AnchorStore<B: Backend = SqliteBackend> {
    backend: B,
}

impl AnchorStore<SqliteBackend> {
    /// Opens (creating if needed, mode 0600) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Self, AnchorError> {
        Ok(AnchorStore {
            backend: SqliteBackend::open(path)?,
        })
    }
}

impl AnchorStore<MemoryBackend> {
    /// A store that lives only in memory (tests, short-lived tools).
    pub fn in_memory() -> Self {
        AnchorStore {
            backend: MemoryBackend::default(),
        }
    }
}

impl<B: Backend> AnchorStore<B> {
    /// A store over any backend.
    pub fn with_backend(backend: B) -> Self {
        AnchorStore { backend }
    }

    /// The backend (e.g. for its revision).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Every anchor, sorted by kind then name.
    pub fn list(&self) -> Result<Vec<Anchor>, AnchorError> {
        let mut all = self.backend.anchors()?;
        all.sort_by(|a, b| {
            let ka = AnchorKind::ALL.iter().position(|k| *k == a.kind);
            let kb = AnchorKind::ALL.iter().position(|k| *k == b.kind);
            ka.cmp(&kb)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        Ok(all)
    }

    /// The anchors of `kind` named `name`, in [`Self::list`]'s order.
    pub fn named(&self, kind: AnchorKind, name: &str) -> Result<Vec<Anchor>, AnchorError> {
        let mut found = self.backend.anchors_named(kind, name)?;
        found.sort_by_key(|a| a.fingerprint);
        Ok(found)
    }

    /// Every edge.
    pub fn edges(&self) -> Result<Vec<Edge>, AnchorError> {
        let mut e = self.backend.edges()?;
        e.sort();
        Ok(e)
    }

    /// The anchor with this fingerprint.
    pub fn get(&self, fingerprint: &Fingerprint) -> Result<Anchor, AnchorError> {
        self.backend
            .anchors()?
            .into_iter()
            .find(|a| a.fingerprint == *fingerprint)
            .ok_or_else(|| AnchorError::NotFound(fingerprint.to_hex()))
    }

    /// Resolves a full fingerprint or a unique prefix of at least 8 hex digits.
    pub fn resolve(&self, text: &str) -> Result<Fingerprint, AnchorError> {
        let fps = self.backend.anchors()?.into_iter().map(|a| a.fingerprint);
        resolve_among(text, fps)
    }

    /// Resolves a full fingerprint or a unique prefix among the revoked ones.
    pub fn resolve_revoked(&self, text: &str) -> Result<Revocation, AnchorError> {
        let revoked = self.backend.revocations()?;
        let fp = resolve_among(text, revoked.iter().map(|r| r.fingerprint))?;
        revoked
            .into_iter()
            .find(|r| r.fingerprint == fp)
            .ok_or_else(|| AnchorError::NotFound(text.to_string()))
    }

    /// Every revoked fingerprint, oldest revocation first.
    pub fn revocations(&self) -> Result<Vec<Revocation>, AnchorError> {
        let mut r = self.backend.revocations()?;
        r.sort_by_key(|r| (r.revoked_at, r.fingerprint));
        Ok(r)
    }

    /// The revocation of `fingerprint`, if it is revoked.
    pub fn revocation(&self, fingerprint: &Fingerprint) -> Result<Option<Revocation>, AnchorError> {
        self.backend.revocation(fingerprint)
    }

    /// Validates and adds an anchor; returns its fingerprint. A server certificate is linked
    /// to the stored root it names (after checking the root's signature on it).
    pub fn import(&mut self, new: NewAnchor, now: UnixSeconds) -> Result<Fingerprint, AnchorError> {
        let scopes = new.update_scopes.clone();
        let (anchor, edges) = self.prepare(new, now)?;
        let fp = anchor.fingerprint;
        let mut changes = vec![Change::Insert(anchor)];
        changes.extend(edges.into_iter().map(Change::AddEdge));
        changes.extend(scope_changes(fp, &scopes));
        self.backend.apply(&changes)?;
        Ok(fp)
    }

    fn prepare(
        &self,
        new: NewAnchor,
        now: UnixSeconds,
    ) -> Result<(Anchor, Vec<Edge>), AnchorError> {
        // Checked here for a clear error before anything else; the backend checks again in
        // the inserting transaction.
        let fingerprint = new.fingerprint();
        if let Some(r) = self.backend.revocation(&fingerprint)? {
            return Err(r.refusal());
        }
        // Only vouchers, roots and server certificates are checked against other anchors; for
        // the rest (e.g. a TTE service recording one secret per device) the duplicate check
        // needs just the one anchor, not a read of the whole store per import.
        let against_others = !new.vouched_by.is_empty()
            || matches!(new.kind, AnchorKind::XttRoot | AnchorKind::XttServer);
        if against_others {
            return prepare_among(&self.backend.anchors()?, new, now);
        }
        let same: Vec<Anchor> = self.backend.anchor(&fingerprint)?.into_iter().collect();
        prepare_among(&same, new, now)
    }

    /// Adds several anchors and the edges among them (and to stored anchors) in one atomic
    /// batch, as when restoring an exported bundle. Anchors already stored are skipped, so a
    /// restore can be repeated. Returns the fingerprints that were new. A revoked anchor in the
    /// batch refuses the whole batch ([`AnchorError::Revoked`]): an old bundle must not bring
    /// it back.
    ///
    /// Each anchor gets the checks a single import makes, against the stored anchors and the
    /// batch's earlier ones (roots go first): a server certificate is verified by its root even
    /// when both arrive together, and two roots with one id are refused. A `Vouches` edge from a
    /// root into a server certificate is refused unless the certificate verifies under it, and a
    /// `RotatedTo` edge unless the old anchor's validity already ends
    /// ([`AnchorError::RotationWithoutEnd`]): a bundle's index is not signed, and an edge
    /// claiming a rotation that left the old key valid forever would make `show` and `graph`
    /// present a live key as replaced.
    pub fn restore(
        &mut self,
        mut anchors: Vec<NewAnchor>,
        edges: Vec<Edge>,
        now: UnixSeconds,
    ) -> Result<Vec<Fingerprint>, AnchorError> {
        let mut known = self.backend.anchors()?;
        let stored: BTreeSet<Fingerprint> = known.iter().map(|a| a.fingerprint).collect();
        anchors.sort_by_key(|a| a.kind != AnchorKind::XttRoot);
        let mut changes = Vec::new();
        let mut added = Vec::new();
        for new in anchors {
            let fp = new.fingerprint();
            if stored.contains(&fp) || added.contains(&fp) {
                continue;
            }
            if let Some(r) = self.backend.revocation(&fp)? {
                return Err(r.refusal());
            }
            let scopes = new.update_scopes.clone();
            let (anchor, auto_edges) = prepare_among(&known, new, now)?;
            changes.push(Change::Insert(anchor.clone()));
            changes.extend(auto_edges.into_iter().map(Change::AddEdge));
            changes.extend(scope_changes(fp, &scopes));
            known.push(anchor);
            added.push(fp);
        }
        for e in edges {
            if e.from == e.to {
                return Err(AnchorError::SelfVouch);
            }
            let anchor_of = |fp: &Fingerprint| known.iter().find(|a| a.fingerprint == *fp);
            // `known` holds the stored anchor when there is one (the batch's copy was skipped),
            // so this is the validity the store will actually have.
            if e.kind == EdgeKind::RotatedTo
                && anchor_of(&e.from).is_some_and(|old| old.validity.not_after.is_none())
            {
                return Err(AnchorError::RotationWithoutEnd {
                    from: e.from,
                    to: e.to,
                });
            }
            if let (EdgeKind::Vouches, Some(voucher), Some(subject)) =
                (e.kind, anchor_of(&e.from), anchor_of(&e.to))
            {
                check_checkable_vouch(
                    voucher,
                    subject.kind,
                    subject.public_material().unwrap_or_default(),
                )?;
            }
            changes.push(Change::AddEdge(e));
        }
        self.backend.apply(&changes)?;
        Ok(added)
    }

    /// Records that `voucher` vouches for `subject`.
    pub fn vouch(&mut self, voucher: Fingerprint, subject: Fingerprint) -> Result<(), AnchorError> {
        if voucher == subject {
            return Err(AnchorError::SelfVouch);
        }
        let subject_anchor = self.get(&subject)?;
        check_checkable_vouch(
            &self.get(&voucher)?,
            subject_anchor.kind,
            subject_anchor.public_material().unwrap_or_default(),
        )?;
        self.backend.apply(&[Change::AddEdge(Edge {
            from: voucher,
            to: subject,
            kind: EdgeKind::Vouches,
        })])
    }

    /// Revokes an anchor: removes it and its edges and records its fingerprint as revoked, in
    /// one batch, so that no later import (single, `import-dir`, bundle, a service's) brings it
    /// back until [`Self::unrevoke`]. This is what `xtt anchors remove` does. Returns the
    /// anchors it vouched for, which have now lost that voucher.
    pub fn revoke(
        &mut self,
        fingerprint: &Fingerprint,
        now: UnixSeconds,
    ) -> Result<Vec<Fingerprint>, AnchorError> {
        let a = self.get(fingerprint)?;
        check_storable(now)?;
        let orphans = self.vouched_for_by(fingerprint)?;
        self.backend.apply(&[
            Change::Remove(*fingerprint),
            Change::Revoke(Revocation {
                fingerprint: *fingerprint,
                kind: a.kind,
                name: a.name,
                revoked_at: now,
            }),
        ])?;
        Ok(orphans)
    }

    /// Undoes a revocation (an operator's explicit decision): the fingerprint may be imported
    /// again. Nothing is imported here. Returns what was revoked.
    pub fn unrevoke(&mut self, fingerprint: &Fingerprint) -> Result<Revocation, AnchorError> {
        let r = self
            .backend
            .revocation(fingerprint)?
            .ok_or_else(|| AnchorError::NotFound(fingerprint.to_hex()))?;
        self.backend.apply(&[Change::Unrevoke(*fingerprint)])?;
        Ok(r)
    }

    fn vouched_for_by(&self, fingerprint: &Fingerprint) -> Result<Vec<Fingerprint>, AnchorError> {
        Ok(self
            .backend
            .edges()?
            .into_iter()
            .filter(|e| e.from == *fingerprint)
            .map(|e| e.to)
            .collect())
    }

    /// Removes an anchor and its edges WITHOUT revoking it (it may be imported again): for a
    /// program taking back an anchor it has just written (e.g. a TTE service whose request
    /// failed after it recorded the secret). An operator's removal is [`Self::revoke`].
    /// Returns the anchors it vouched for, which have now lost that voucher.
    pub fn remove(&mut self, fingerprint: &Fingerprint) -> Result<Vec<Fingerprint>, AnchorError> {
        self.get(fingerprint)?;
        let orphans = self.vouched_for_by(fingerprint)?;
        self.backend.apply(&[Change::Remove(*fingerprint)])?;
        Ok(orphans)
    }

    /// Allows the update key `fingerprint` to sign for `vendor_id`/`class_id` as well (also how
    /// a key stored before scopes existed gets its first).
    pub fn add_update_scope(
        &mut self,
        fingerprint: &Fingerprint,
        vendor_id: [u8; 16],
        class_id: [u8; 16],
    ) -> Result<(), AnchorError> {
        let a = self.get(fingerprint)?;
        if a.kind != AnchorKind::UpdateKey {
            return Err(not_an_update_key(a.kind));
        }
        self.backend
            .apply(&scope_changes(*fingerprint, &[(vendor_id, class_id)]))
    }

    /// What the update key `fingerprint` may sign for (empty: nothing).
    pub fn update_scopes_of(
        &self,
        fingerprint: &Fingerprint,
    ) -> Result<Vec<UpdateScope>, AnchorError> {
        let mut s: Vec<UpdateScope> = self
            .backend
            .update_scopes()?
            .into_iter()
            .filter(|s| s.key == *fingerprint)
            .collect();
        s.sort();
        Ok(s)
    }

    /// Every update key's scopes.
    pub fn update_scopes(&self) -> Result<Vec<UpdateScope>, AnchorError> {
        let mut s = self.backend.update_scopes()?;
        s.sort();
        Ok(s)
    }

    /// Changes an anchor's roles.
    pub fn set_roles(
        &mut self,
        fingerprint: &Fingerprint,
        roles: Roles,
    ) -> Result<(), AnchorError> {
        self.get(fingerprint)?;
        self.backend.apply(&[Change::SetRoles(*fingerprint, roles)])
    }

    /// Rotation: adds `new` (same kind, inheriting the old roles unless given) valid from
    /// `now`, and ends the old anchor's validity at `now + window`. Both are valid during the
    /// window; afterwards only the new one. One atomic batch.
    pub fn rotate(
        &mut self,
        old: &Fingerprint,
        mut new: NewAnchor,
        window: u64,
        now: UnixSeconds,
    ) -> Result<Fingerprint, AnchorError> {
        let old_anchor = self.get(old)?;
        if old_anchor.kind != new.kind {
            return Err(AnchorError::RotationKindMismatch {
                old: old_anchor.kind,
                new: new.kind,
            });
        }
        if !old_anchor.validity.contains(now) {
            return Err(AnchorError::RotationOfInvalidAnchor(*old));
        }
        if new.roles.is_none() {
            new.roles = Some(old_anchor.roles);
        }
        // The successor of an update key signs for what its predecessor did, unless told.
        if new.update_scopes.is_empty() {
            new.update_scopes = self
                .update_scopes_of(old)?
                .into_iter()
                .map(|s| (s.vendor_id, s.class_id))
                .collect();
        }
        let scopes = new.update_scopes.clone();
        let end = now.saturating_add(window);
        let end = old_anchor.validity.not_after.map_or(end, |e| e.min(end));
        let (anchor, edges) = self.prepare(new, now)?;
        let fp = anchor.fingerprint;
        let mut changes = vec![
            Change::Insert(anchor),
            Change::SetNotAfter(*old, Some(end)),
            Change::AddEdge(Edge {
                from: *old,
                to: fp,
                kind: EdgeKind::RotatedTo,
            }),
        ];
        changes.extend(edges.into_iter().map(Change::AddEdge));
        changes.extend(scope_changes(fp, &scopes));
        self.backend.apply(&changes)?;
        Ok(fp)
    }

    /// Anchors of `kind` usable for `role` at `now`.
    pub fn usable(
        &self,
        kind: AnchorKind,
        role: Roles,
        now: UnixSeconds,
    ) -> Result<Vec<Anchor>, AnchorError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|a| a.kind == kind && a.usable_for(role, now))
            .collect())
    }

    /// The accepted sequence number of a component.
    pub fn sequence(&self, component: &ComponentKey) -> Result<Option<u64>, AnchorError> {
        self.backend.sequence(component)
    }

    /// Records a newly accepted sequence number (strictly increasing, atomically).
    pub fn advance_sequence(
        &mut self,
        component: &ComponentKey,
        sequence: u64,
        signer: &Fingerprint,
        now: UnixSeconds,
    ) -> Result<(), AnchorError> {
        check_storable(sequence)?;
        self.backend
            .advance_sequence(component, sequence, signer, now)
    }

    /// Changes whenever the stored data changes (see [`Backend::revision`]).
    pub fn revision(&self) -> Result<u64, AnchorError> {
        self.backend.revision()
    }
}

/// What importing `new` stores, checked against `existing` (the stored anchors, plus a batch's
/// earlier ones when restoring).
fn prepare_among(
    existing: &[Anchor],
    new: NewAnchor,
    now: UnixSeconds,
) -> Result<(Anchor, Vec<Edge>), AnchorError> {
    material::validate(new.kind, &new.material)?;
    if !new.update_scopes.is_empty() && new.kind != AnchorKind::UpdateKey {
        return Err(not_an_update_key(new.kind));
    }
    let fingerprint = Fingerprint::of(new.kind, new.material.fingerprint_input());
    if existing.iter().any(|a| a.fingerprint == fingerprint) {
        return Err(AnchorError::Duplicate(fingerprint));
    }
    for v in &new.vouched_by {
        let Some(voucher) = existing.iter().find(|a| a.fingerprint == *v) else {
            return Err(AnchorError::NotFound(v.to_hex()));
        };
        if *v == fingerprint {
            return Err(AnchorError::SelfVouch);
        }
        if let Material::Public(subject) = &new.material {
            check_checkable_vouch(voucher, new.kind, subject)?;
        }
    }
    let validity = new.validity.unwrap_or(Validity::from(now));
    if validity
        .not_after
        .is_some_and(|end| end <= validity.not_before)
    {
        return Err(AnchorError::EmptyValidity);
    }
    check_storable(validity.not_before)?;
    if let Some(end) = validity.not_after {
        check_storable(end)?;
    }
    check_storable(now)?;
    let mut vouchers: BTreeSet<Fingerprint> = new.vouched_by.iter().copied().collect();
    match (new.kind, &new.material) {
        (AnchorKind::XttServer, Material::Public(cert)) => {
            if let Some(root) = signing_root(existing, cert)? {
                vouchers.insert(root);
            }
        }
        (AnchorKind::XttRoot, Material::Public(bytes)) => {
            // Devices look roots up by id alone, so an id must name one key.
            let id = material::root_certificate(bytes)?.id;
            for other in existing.iter().filter(|a| a.kind == AnchorKind::XttRoot) {
                let other_id = other
                    .public_material()
                    .map(material::root_certificate)
                    .transpose()?
                    .map(|r| r.id);
                if other_id == Some(id) {
                    return Err(AnchorError::InvalidMaterial {
                        kind: AnchorKind::XttRoot,
                        reason: format!(
                            "root id already used by anchor {} with another key (give the new root a new id)",
                            other.fingerprint.short()
                        ),
                    });
                }
            }
        }
        _ => {}
    }
    let name = if new.name.trim().is_empty() {
        format!("{} {}", new.kind, &fingerprint.short()[..8])
    } else {
        new.name.trim().to_string()
    };
    let anchor = Anchor {
        fingerprint,
        kind: new.kind,
        name,
        roles: new.roles.unwrap_or(new.kind.default_roles()),
        validity,
        provenance: new.provenance,
        added_at: now,
        material: new.material,
    };
    let edges = vouchers
        .into_iter()
        .map(|from| Edge {
            from,
            to: fingerprint,
            kind: EdgeKind::Vouches,
        })
        .collect();
    Ok((anchor, edges))
}

fn scope_changes(key: Fingerprint, scopes: &[([u8; 16], [u8; 16])]) -> Vec<Change> {
    scopes
        .iter()
        .map(|&(vendor_id, class_id)| {
            Change::AddScope(UpdateScope {
                key,
                vendor_id,
                class_id,
            })
        })
        .collect()
}

fn not_an_update_key(kind: AnchorKind) -> AnchorError {
    AnchorError::InvalidMaterial {
        kind,
        reason: "only an update-key has a vendor/class scope".into(),
    }
}

/// A full fingerprint or a unique prefix of at least 8 hex digits among `fps`.
fn resolve_among(
    text: &str,
    fps: impl Iterator<Item = Fingerprint>,
) -> Result<Fingerprint, AnchorError> {
    let t = text.trim().to_ascii_lowercase();
    if t.len() < 8 || t.len() > 64 || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(AnchorError::BadFingerprint(text.to_string()));
    }
    let mut hits = fps.filter(|fp| fp.to_hex().starts_with(&t));
    match (hits.next(), hits.next()) {
        (Some(fp), None) => Ok(fp),
        (None, _) => Err(AnchorError::NotFound(text.to_string())),
        (Some(_), Some(_)) => Err(AnchorError::Ambiguous(text.to_string())),
    }
}

fn check_storable(v: u64) -> Result<(), AnchorError> {
    i64::try_from(v)
        .map(|_| ())
        .map_err(|_| AnchorError::TooLarge(v))
}

/// Whether `edge`'s claim is a signature this store can verify and that verifies: an XTT root
/// vouching for a server certificate it signed. Every other edge (an operator's `vouch` or
/// `--vouched-by`, a service's record of whom it provisioned or delivered, a rotation, a
/// bundle's edges) is a statement that no signature here backs. Checked again from the stored
/// material rather than trusted from how the edge was recorded, so `anchors vouch` between a
/// root and a server it did not sign is not presented as checked.
pub fn signature_checked(anchors: &[Anchor], edge: &Edge) -> bool {
    let find = |fp: &Fingerprint| anchors.iter().find(|a| a.fingerprint == *fp);
    let (Some(root), Some(server)) = (find(&edge.from), find(&edge.to)) else {
        return false;
    };
    if edge.kind != EdgeKind::Vouches
        || root.kind != AnchorKind::XttRoot
        || server.kind != AnchorKind::XttServer
    {
        return false;
    }
    let cert = server.public_material().unwrap_or_default();
    matches!(signing_root(std::slice::from_ref(root), cert), Ok(Some(fp)) if fp == root.fingerprint)
}

/// Refuses a `vouches` edge the store can check and that is false: an XTT root "vouching" for
/// a server certificate its signature does not verify. Recorded, such an edge would show a
/// forged certificate under a genuine root in `show`, `graph` and `--impact`. Other edges
/// carry no signature the store could check, and are only recorded.
fn check_checkable_vouch(
    voucher: &Anchor,
    subject_kind: AnchorKind,
    subject: &[u8],
) -> Result<(), AnchorError> {
    let root_and_server =
        voucher.kind == AnchorKind::XttRoot && subject_kind == AnchorKind::XttServer;
    if root_and_server
        && signing_root(std::slice::from_ref(voucher), subject)? != Some(voucher.fingerprint)
    {
        return Err(AnchorError::BadCertificateSignature {
            root: voucher.fingerprint,
        });
    }
    Ok(())
}

/// The stored root that signed `cert`, if it is stored; an error if the named root is stored
/// but its signature does not verify (a forged or corrupted certificate).
fn signing_root(existing: &[Anchor], cert: &[u8]) -> Result<Option<Fingerprint>, AnchorError> {
    let cert = xtt_proto::cert::ServerCertificate::decode(cert).map_err(|e| {
        AnchorError::InvalidMaterial {
            kind: AnchorKind::XttServer,
            reason: e.to_string(),
        }
    })?;
    for anchor in existing.iter().filter(|a| a.kind == AnchorKind::XttRoot) {
        let Some(bytes) = anchor.public_material() else {
            continue;
        };
        let root = material::root_certificate(bytes)?;
        if root.id == cert.root_id() {
            return match cert.verify(&root) {
                Ok(_) => Ok(Some(anchor.fingerprint)),
                Err(_) => Err(AnchorError::BadCertificateSignature {
                    root: anchor.fingerprint,
                }),
            };
        }
    }
    Ok(None)
}
