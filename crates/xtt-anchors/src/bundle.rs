//! Export and import of a whole store with its relations: a directory with one loose file per
//! anchor (the same formats `xtt anchors import` reads) and `anchors.json`, the index with
//! kinds, names, roles, validity, provenance, fingerprints, edges and update keys' scopes
//! (`update_scopes`, absent in bundles from before scopes: such update keys sign nothing until
//! an operator scopes them).
//!
//! Import recomputes every fingerprint from the files and refuses a bundle whose files do not
//! match its index, then adds everything in one transaction. The index itself is not signed:
//! its provenance is recorded only as a claim next to "from bundle DIR", a `rotated-to` edge
//! needs an old anchor whose validity ends, and its other edges show as "recorded" (not
//! checked) in `show` and `graph`. Secrets are exported only when
//! asked (files 0600), and edges to anchors left out are left out too.

use std::path::Path;

use serde_json::{json, Value};

use crate::anchor::{
    AnchorKind, Edge, EdgeKind, Fingerprint, Material, Provenance, SecretBytes, UnixSeconds,
    Validity,
};
use crate::error::AnchorError;
use crate::fsio::write_atomic;
use crate::material;
use crate::store::{AnchorStore, Backend, NewAnchor};

/// Name of the index file.
pub const INDEX: &str = "anchors.json";
const FORMAT: &str = "xtt-anchors bundle v1";

fn corrupt(why: impl Into<String>) -> AnchorError {
    AnchorError::Corrupt(format!("{INDEX}: {}", why.into()))
}

fn io(path: &Path, source: std::io::Error) -> AnchorError {
    AnchorError::Io {
        path: path.display().to_string(),
        cause: source,
    }
}

/// Writes every anchor (secrets only with `include_secrets`) and the index into `dir`, which
/// is created if needed. Returns how many anchors were written.
pub fn export<B: Backend>(
    store: &AnchorStore<B>,
    dir: &Path,
    include_secrets: bool,
) -> Result<usize, AnchorError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut entries = Vec::new();
    let mut kept = Vec::new();
    for a in store.list()? {
        if a.kind.is_secret() && !include_secrets {
            continue;
        }
        let file = format!("{}-{}.bin", a.kind, a.fingerprint.short());
        let mut basename_file = Value::Null;
        match &a.material {
            Material::Secret(s) => write_atomic(&dir.join(&file), s.expose(), 0o600)?,
            Material::Public(m) if a.kind == AnchorKind::DaaGroup => {
                let (gpk, bsn) = material::daa_group_parts(m).map_err(corrupt)?;
                write_atomic(&dir.join(&file), gpk, 0o644)?;
                let b = format!("{}-{}.basename", a.kind, a.fingerprint.short());
                write_atomic(&dir.join(&b), bsn, 0o644)?;
                basename_file = Value::String(b);
            }
            Material::Public(m) => write_atomic(&dir.join(&file), m, 0o644)?,
        }
        entries.push(json!({
            "fingerprint": a.fingerprint.to_hex(),
            "kind": a.kind.as_str(),
            "name": a.name,
            "roles": a.roles.to_string(),
            "not_before": a.validity.not_before,
            "not_after": a.validity.not_after,
            "provenance": a.provenance.tag(),
            "source": a.provenance.detail(),
            "file": file,
            "basename_file": basename_file,
        }));
        kept.push(a.fingerprint);
    }
    let edges: Vec<Value> = store
        .edges()?
        .into_iter()
        .filter(|e| kept.contains(&e.from) && kept.contains(&e.to))
        .map(|e| json!({"from": e.from.to_hex(), "to": e.to.to_hex(), "kind": e.kind.as_str()}))
        .collect();
    let scopes: Vec<Value> = store
        .update_scopes()?
        .into_iter()
        .filter(|s| kept.contains(&s.key))
        .map(|s| {
            json!({
                "key": s.key.to_hex(),
                "vendor_id": hex::encode(s.vendor_id),
                "class_id": hex::encode(s.class_id),
            })
        })
        .collect();
    let index =
        json!({"format": FORMAT, "anchors": entries, "edges": edges, "update_scopes": scopes});
    let text = serde_json::to_string_pretty(&index).map_err(|e| corrupt(e.to_string()))?;
    write_atomic(&dir.join(INDEX), text.as_bytes(), 0o644)?;
    Ok(kept.len())
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, AnchorError> {
    v.get(key)
        .ok_or_else(|| corrupt(format!("missing {key:?}")))
}

fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str, AnchorError> {
    field(v, key)?
        .as_str()
        .ok_or_else(|| corrupt(format!("{key:?} is not a string")))
}

fn fingerprint(v: &Value, key: &str) -> Result<Fingerprint, AnchorError> {
    let bytes = hex::decode(text(v, key)?).map_err(|_| corrupt(format!("{key:?} is not hex")))?;
    bytes
        .try_into()
        .map(Fingerprint)
        .map_err(|_| corrupt(format!("{key:?} is not 32 bytes")))
}

/// A file named by the index, which must stay inside the bundle directory.
fn read_in(dir: &Path, name: &str) -> Result<Vec<u8>, AnchorError> {
    let p = Path::new(name);
    if p.components().count() != 1 || p.is_absolute() || name.starts_with('.') {
        return Err(corrupt(format!(
            "file name {name:?} leaves the bundle directory"
        )));
    }
    let path = dir.join(p);
    std::fs::read(&path).map_err(|e| io(&path, e))
}

/// What the store records as an imported anchor's provenance: that it came from this bundle,
/// with the index's provenance kept only as a claim. The index is not signed (the fingerprints
/// tie each file to its entry, not the entry's other fields), so an edited index could
/// otherwise make a rogue key show as "provisioned by XTT (vendor signing service)". Kept in
/// the free-text detail, so no schema change: `list` shows "hand", `show` e.g.
/// "imported by hand (from bundle DIR; claimed: provisioned by XTT (vendor signing service))".
fn bundle_provenance(dir: &Path, tag: &str, source: &str) -> Result<Provenance, AnchorError> {
    // Parsed only so that an index with an unknown provenance is still refused as corrupt.
    let claimed = Provenance::from_parts(tag, source.to_string())?;
    Ok(Provenance::ImportedByHand {
        source: format!("from bundle {}; claimed: {claimed}", dir.display()),
    })
}

/// Imports a bundle written by [`export`]; anchors already stored are skipped. Returns the
/// fingerprints that were added. Provenance is "from bundle DIR" with the index's as a claim
/// ([`bundle_provenance`]); a `rotated-to` edge whose old anchor never expires is refused
/// ([`AnchorStore::restore`]).
pub fn import<B: Backend>(
    store: &mut AnchorStore<B>,
    dir: &Path,
    now: UnixSeconds,
) -> Result<Vec<Fingerprint>, AnchorError> {
    let index_path = dir.join(INDEX);
    let raw = std::fs::read(&index_path).map_err(|e| io(&index_path, e))?;
    let index: Value = serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
    if index.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(corrupt(format!("not a {FORMAT:?} index")));
    }
    let mut anchors = Vec::new();
    for e in field(&index, "anchors")?
        .as_array()
        .ok_or_else(|| corrupt("anchors is not a list"))?
    {
        let kind: AnchorKind = text(e, "kind")?.parse()?;
        let bytes = read_in(dir, text(e, "file")?)?;
        let material = if kind.is_secret() {
            Material::Secret(SecretBytes::new(bytes))
        } else if kind == AnchorKind::DaaGroup {
            let b = text(e, "basename_file")?;
            Material::Public(material::daa_group_material(&bytes, &read_in(dir, b)?)?)
        } else {
            Material::Public(bytes)
        };
        let claimed = fingerprint(e, "fingerprint")?;
        let actual = Fingerprint::of(kind, material.fingerprint_input());
        if claimed != actual {
            return Err(corrupt(format!(
                "the file of anchor {} does not match its fingerprint (changed or swapped)",
                claimed.short()
            )));
        }
        let number = |key: &str| field(e, key).map(Value::as_u64);
        let not_before = number("not_before")?.ok_or_else(|| corrupt("not_before"))?;
        let not_after = match field(e, "not_after")? {
            Value::Null => None,
            v => Some(v.as_u64().ok_or_else(|| corrupt("not_after"))?),
        };
        anchors.push(NewAnchor {
            kind,
            name: text(e, "name")?.to_string(),
            roles: Some(text(e, "roles")?.parse()?),
            validity: Some(Validity {
                not_before,
                not_after,
            }),
            provenance: bundle_provenance(dir, text(e, "provenance")?, text(e, "source")?)?,
            material,
            vouched_by: Vec::new(),
            update_scopes: Vec::new(),
        });
    }
    let uuid = |v: &Value, key: &str| -> Result<[u8; 16], AnchorError> {
        hex::decode(text(v, key)?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt(format!("{key:?} is not 16 bytes of hex")))
    };
    for s in index
        .get("update_scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = fingerprint(s, "key")?;
        let scope = (uuid(s, "vendor_id")?, uuid(s, "class_id")?);
        match anchors.iter_mut().find(|a| a.fingerprint() == key) {
            Some(a) => a.update_scopes.push(scope),
            None => {
                return Err(corrupt(format!(
                    "scope for {} not in the bundle",
                    key.short()
                )))
            }
        }
    }
    let mut edges = Vec::new();
    for e in field(&index, "edges")?
        .as_array()
        .ok_or_else(|| corrupt("edges is not a list"))?
    {
        edges.push(Edge {
            from: fingerprint(e, "from")?,
            to: fingerprint(e, "to")?,
            kind: EdgeKind::parse(text(e, "kind")?)?,
        });
    }
    store.restore(anchors, edges, now)
}
