//! [`UpdateServer`]: a [`SessionApp`] that offers devices the newest signed update in a
//! directory, over the pull protocol of `xtt_anchors::delivery` (queue_protocol payloads).
//!
//! The directory holds pairs `NAME.suit` (a signed SUIT envelope, `xtt update sign`) and
//! `NAME.bin` (the image it describes). The newest is the envelope with the highest sequence
//! number (ties: the later name). The server does not judge updates (devices verify against their
//! own anchors); it only warns when an image does not match its manifest, because every device
//! will refuse it.
//!
//! An offer request rescans the directory (on a blocking thread) when its listing changed, so
//! an operator publishes an update by copying two files in; chunk requests are answered from
//! memory. One scan runs at a time: offer requests that arrive meanwhile are answered from
//! memory too, so a device sending them in a loop cannot pile up blocking work. Nothing is sent
//! unasked and no per-device state is kept.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use xtt_anchors::delivery::{DeviceMessage, Offering, MAX_ENVELOPE, MAX_IMAGE};
use xtt_anchors::suit::Envelope;
use xtt_proto::record::PayloadType;
use xtt_proto::ClientId;
use zeroize::Zeroizing;

use super::{IncomingRecord, Outbox, SessionApp};

/// What the server currently offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateSummary {
    /// The envelope file.
    pub envelope: PathBuf,
    /// Its manifest's sequence number.
    pub sequence: u64,
    /// Image size in bytes.
    pub image_len: u64,
    /// Whether the image matches the manifest's size and digest.
    pub image_matches: bool,
}

#[derive(Debug)]
struct Current {
    offering: Offering,
    summary: UpdateSummary,
}

/// A directory listing's identity: names, sizes and modification times of the `.suit` and
/// `.bin` files.
type Listing = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// Serves the newest update in a directory to devices over their sessions. Clones share
/// state.
#[derive(Clone, Debug)]
pub struct UpdateServer(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    current: RwLock<Option<Arc<Current>>>,
    listing: Mutex<Option<Listing>>,
    /// An offer request's rescan is queued or running.
    scanning: AtomicBool,
}

fn listing(dir: &Path) -> std::io::Result<Listing> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str());
        if matches!(ext, Some("suit" | "bin")) {
            let meta = entry.metadata()?;
            out.push((path, meta.len(), meta.modified().ok()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads `path` whole if it is a regular file of at most `max` bytes. A FIFO or device dropped
/// into the directory must not hang the scan, nor a huge file fill memory.
fn read_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    xtt_fsio::read_limited(path, usize::try_from(max).unwrap_or(usize::MAX))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn newest(dir: &Path) -> std::io::Result<Option<Current>> {
    let mut best: Option<(u64, PathBuf, Vec<u8>)> = None;
    for (path, _, _) in listing(dir)? {
        if path.extension().and_then(|e| e.to_str()) != Some("suit") {
            continue;
        }
        let bytes = match read_file(&path, MAX_ENVELOPE.into()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "envelope skipped");
                continue;
            }
        };
        let env = match Envelope::decode(&bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "not a SUIT envelope; skipped");
                continue;
            }
        };
        let seq = env.unverified_manifest().sequence_number;
        if best.as_ref().is_none_or(|(s, p, _)| (seq, &path) > (*s, p)) {
            best = Some((seq, path, bytes));
        }
    }
    let Some((sequence, envelope_path, envelope)) = best else {
        return Ok(None);
    };
    let image_path = envelope_path.with_extension("bin");
    let image = read_file(&image_path, MAX_IMAGE)?;
    let manifest = Envelope::decode(&envelope)
        .map_err(std::io::Error::other)?
        .unverified_manifest()
        .clone();
    let digest: [u8; 32] = Sha256::digest(&image).into();
    let image_matches =
        manifest.image_size == image.len() as u64 && digest == manifest.image_digest;
    if !image_matches {
        tracing::warn!(
            image = %image_path.display(),
            "the image does not match its manifest's size and digest: devices will refuse it"
        );
    }
    Ok(Some(Current {
        summary: UpdateSummary {
            envelope: envelope_path,
            sequence,
            image_len: image.len() as u64,
            image_matches,
        },
        offering: Offering::new(envelope, image),
    }))
}

impl UpdateServer {
    /// Serves the updates in `dir` (read when first asked, and again whenever the directory's
    /// `.suit`/`.bin` files change).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(Arc::new(Inner {
            dir: dir.into(),
            current: RwLock::new(None),
            listing: Mutex::new(None),
            scanning: AtomicBool::new(false),
        }))
    }

    /// Rereads the directory if its listing changed (blocking) and returns what is offered.
    pub fn rescan(&self) -> std::io::Result<Option<UpdateSummary>> {
        let inner = &self.0;
        let now = listing(&inner.dir)?;
        let mut last = match inner.listing.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if last.as_ref() != Some(&now) {
            let current = newest(&inner.dir)?.map(Arc::new);
            if let Some(c) = &current {
                tracing::info!(envelope = %c.summary.envelope.display(), sequence = c.summary.sequence, "offering update");
            }
            match inner.current.write() {
                Ok(mut g) => *g = current,
                Err(p) => *p.into_inner() = current,
            }
            *last = Some(now);
        }
        Ok(self.current().map(|c| c.summary.clone()))
    }

    fn current(&self) -> Option<Arc<Current>> {
        match self.0.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

struct ScanDone<'a>(&'a AtomicBool);

impl Drop for ScanDone<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn reply(out: &Outbox, client_id: &ClientId, payload: &[u8], current: Option<&Current>) {
    let answer = Offering::answer(current.map(|c| &c.offering), payload);
    if let Err(e) = out.send(client_id, PayloadType::QueueProtocol, &answer.encode()) {
        tracing::debug!(%client_id, error = %e, "update answer dropped");
    }
}

impl SessionApp for UpdateServer {
    fn on_record(&self, record: IncomingRecord<'_>, out: &Outbox) {
        if record.payload_type != PayloadType::QueueProtocol {
            return;
        }
        let offer_request =
            DeviceMessage::decode(record.payload) == Ok(DeviceMessage::OfferRequest);
        if offer_request && !self.0.scanning.swap(true, Ordering::AcqRel) {
            // Directory I/O off the receiving task.
            // The record is lent for this call only: keep a copy (wiped when dropped).
            let (me, out) = (self.clone(), out.clone());
            let (client_id, payload) = (record.client_id, Zeroizing::new(record.payload.to_vec()));
            tokio::task::spawn_blocking(move || {
                // Cleared however the scan ends (a panic would otherwise stop all rescans).
                let done = ScanDone(&me.0.scanning);
                if let Err(e) = me.rescan() {
                    tracing::warn!(dir = %me.0.dir.display(), error = %e, "reading the update directory failed");
                }
                drop(done);
                reply(&out, &client_id, &payload, me.current().as_deref());
            });
        } else {
            reply(
                out,
                &record.client_id,
                record.payload,
                self.current().as_deref(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtt_anchors::suit::Manifest;
    use xtt_anchors::update::UpdateSigningKey;

    fn publish(dir: &Path, name: &str, sequence: u64, image: &[u8]) {
        let key = UpdateSigningKey::generate(&mut rand_core::OsRng);
        let manifest = Manifest::for_image(
            image,
            sequence,
            [1; 16],
            [2; 16],
            vec![b"firmware".to_vec()],
        );
        std::fs::write(
            dir.join(format!("{name}.suit")),
            key.sign(&manifest).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{name}.bin")), image).unwrap();
    }

    fn mkfifo(path: &Path) {
        let made = std::process::Command::new("mkfifo").arg(path).status();
        assert!(made.unwrap().success(), "mkfifo {}", path.display());
    }

    #[test]
    fn a_fifo_in_the_directory_neither_hangs_the_scan_nor_hides_the_real_update() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path(), "v1", 1, b"image one");
        // Named like the newest envelope: were it opened for reading, the scan would block.
        mkfifo(&dir.path().join("zz.suit"));
        let server = UpdateServer::new(dir.path());
        let offered = server
            .rescan()
            .unwrap()
            .expect("the real update is offered");
        assert_eq!(
            (offered.sequence, offered.envelope.file_name().unwrap()),
            (1, std::ffi::OsStr::new("v1.suit"))
        );
        assert!(offered.image_matches);

        // A newer envelope whose image is a FIFO: the scan fails with the reason, at once.
        publish(dir.path(), "v2", 2, b"image two");
        std::fs::remove_file(dir.path().join("v2.bin")).unwrap();
        mkfifo(&dir.path().join("v2.bin"));
        let err = server.rescan().unwrap_err();
        assert!(err.to_string().contains("is not a regular file"), "{err}");
        assert!(err.to_string().contains("v2.bin"), "{err}");
    }
}
