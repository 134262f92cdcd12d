//! `xtt server --anchors STORE` and `--updates DIR`: loose group files become store anchors,
//! and the update directory is served over sessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use xtt_anchors::{AnchorError, AnchorKind, AnchorStore, NewAnchor};
use xtt_files::daa;
use xtt_server::{SessionApp, UpdateServer};

/// Imports each (group public key, basename) pair into the store as a daa-group anchor (loose
/// files stay supported as import); those already stored are left alone. Returns how many were
/// new. The store must exist: a typo must not start a server with an empty one.
pub(crate) fn import_groups(store: &Path, groups: &[(PathBuf, PathBuf)]) -> anyhow::Result<usize> {
    if !store.exists() {
        anyhow::bail!(
            "{}: no anchor store here (create it with `xtt anchors --store {} import ...`)",
            store.display(),
            store.display()
        );
    }
    let mut s = AnchorStore::open(store)
        .with_context(|| format!("cannot open anchor store {}", store.display()))?;
    let now = unix_now();
    let mut added = 0;
    for (gpk_path, basename_path) in groups {
        let gpk = daa::read_gpk(gpk_path)?;
        let basename = daa::read_basename(basename_path)?;
        let material = xtt_anchors::material::daa_group_material(&gpk.to_bytes(), &basename)?;
        let new = NewAnchor::public(
            AnchorKind::DaaGroup,
            material,
            gpk_path.display().to_string(),
        );
        match s.import(new, now) {
            Ok(fp) => {
                tracing::info!(fingerprint = %fp, file = %gpk_path.display(), "DAA group imported into the anchor store");
                added += 1;
            }
            Err(AnchorError::Duplicate(_)) => {}
            Err(e) => return Err(e).with_context(|| format!("importing {}", gpk_path.display())),
        }
    }
    Ok(added)
}

/// The update server session application for the updates in `dir`, and a status line.
pub(crate) async fn prepare_updates(dir: PathBuf) -> anyhow::Result<(Arc<dyn SessionApp>, String)> {
    if !dir.is_dir() {
        anyhow::bail!("{}: not a directory of updates", dir.display());
    }
    let app = UpdateServer::new(dir.clone());
    let probe = app.clone();
    let offered = tokio::task::spawn_blocking(move || probe.rescan())
        .await?
        .with_context(|| format!("reading updates in {}", dir.display()))?;
    let line = match offered {
        Some(u) => format!(
            "updates {}: offering {} (sequence {}, image {} bytes{})",
            dir.display(),
            u.envelope.display(),
            u.sequence,
            u.image_len,
            if u.image_matches {
                ""
            } else {
                ", DOES NOT MATCH its manifest"
            }
        ),
        None => format!(
            "updates {}: none yet (NAME.suit + NAME.bin are picked up when added)",
            dir.display()
        ),
    };
    Ok((Arc::new(app), line))
}

/// Seconds since the epoch (the binary's edge reads the clock).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
