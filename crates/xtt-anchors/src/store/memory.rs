//! An in-memory backend with the same atomicity as the SQLite one (changes are applied to a
//! copy that replaces the state only when every change succeeded).

use std::collections::{BTreeMap, BTreeSet};

use super::{Backend, Change, ComponentKey, Revocation, UpdateScope};
use crate::anchor::{Anchor, Edge, Fingerprint, UnixSeconds};
use crate::error::AnchorError;

#[derive(Clone, Debug, Default)]
struct State {
    anchors: BTreeMap<Fingerprint, Anchor>,
    edges: BTreeSet<Edge>,
    revoked: BTreeMap<Fingerprint, Revocation>,
    scopes: BTreeSet<UpdateScope>,
}

/// Anchors held in memory only.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: State,
    sequences: BTreeMap<ComponentKey, u64>,
    revision: u64,
}

impl Backend for MemoryBackend {
    fn anchors(&self) -> Result<Vec<Anchor>, AnchorError> {
        Ok(self.state.anchors.values().cloned().collect())
    }

    fn edges(&self) -> Result<Vec<Edge>, AnchorError> {
        Ok(self.state.edges.iter().copied().collect())
    }

    fn update_scopes(&self) -> Result<Vec<UpdateScope>, AnchorError> {
        Ok(self.state.scopes.iter().copied().collect())
    }

    fn revocations(&self) -> Result<Vec<Revocation>, AnchorError> {
        Ok(self.state.revoked.values().cloned().collect())
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), AnchorError> {
        let mut next = self.state.clone();
        for change in changes {
            match change {
                Change::Insert(a) => {
                    if let Some(r) = next.revoked.get(&a.fingerprint) {
                        return Err(r.refusal());
                    }
                    if next.anchors.contains_key(&a.fingerprint) {
                        return Err(AnchorError::Duplicate(a.fingerprint));
                    }
                    next.anchors.insert(a.fingerprint, a.clone());
                }
                Change::Remove(fp) => {
                    next.anchors.remove(fp);
                    next.edges.retain(|e| e.from != *fp && e.to != *fp);
                    next.scopes.retain(|s| s.key != *fp);
                }
                Change::SetNotAfter(fp, end) => {
                    next.anchors
                        .get_mut(fp)
                        .ok_or_else(|| AnchorError::NotFound(fp.to_hex()))?
                        .validity
                        .not_after = *end;
                }
                Change::SetRoles(fp, roles) => {
                    next.anchors
                        .get_mut(fp)
                        .ok_or_else(|| AnchorError::NotFound(fp.to_hex()))?
                        .roles = *roles;
                }
                Change::AddEdge(e) => {
                    for end in [e.from, e.to] {
                        if !next.anchors.contains_key(&end) {
                            return Err(AnchorError::NotFound(end.to_hex()));
                        }
                    }
                    next.edges.insert(*e);
                }
                Change::AddScope(scope) => {
                    if !next.anchors.contains_key(&scope.key) {
                        return Err(AnchorError::NotFound(scope.key.to_hex()));
                    }
                    next.scopes.insert(*scope);
                }
                Change::Revoke(r) => {
                    next.revoked.insert(r.fingerprint, r.clone());
                }
                Change::Unrevoke(fp) => {
                    next.revoked
                        .remove(fp)
                        .ok_or_else(|| AnchorError::NotFound(fp.to_hex()))?;
                }
            }
        }
        self.state = next;
        self.revision += 1;
        Ok(())
    }

    fn sequence(&self, component: &ComponentKey) -> Result<Option<u64>, AnchorError> {
        Ok(self.sequences.get(component).copied())
    }

    fn advance_sequence(
        &mut self,
        component: &ComponentKey,
        sequence: u64,
        _signer: &Fingerprint,
        _now: UnixSeconds,
    ) -> Result<(), AnchorError> {
        if let Some(&current) = self.sequences.get(component) {
            if sequence <= current {
                return Err(AnchorError::Rollback {
                    offered: sequence,
                    current,
                });
            }
        }
        self.sequences.insert(component.clone(), sequence);
        self.revision += 1;
        Ok(())
    }

    fn revision(&self) -> Result<u64, AnchorError> {
        Ok(self.revision)
    }
}
