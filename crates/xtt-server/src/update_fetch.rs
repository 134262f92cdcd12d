//! The device side of update delivery over a session ([`xtt_anchors::delivery`]): ask the
//! server for its current update, check the envelope against the device's anchors before the
//! image is fetched, fetch the image chunk by chunk, then verify and install it.
//!
//! ```text
//! let mut session = SessionClient::connect(addr, config, SessionClientOptions::tcp(), None).await?;
//! let update = download_update(&mut session, &FetchOptions::default(), |env| {
//!     // refuse before downloading; the signed image size bounds the download
//!     precheck_envelope(&store, env, &target, now).map(|a| a.manifest.image_size)
//! }, |_, _| {}).await?;
//! let installed = install_update(&mut store, &update, &target, out_path, now)?;   // blocking
//! ```
//!
//! Installation is crash-safe and refuses before writing anything: the update is verified
//! (signature against an update anchor valid now, target, sequence number newer than the last
//! accepted, image size and digest) as a dry run; the image is written to a temporary file,
//! fsynced and renamed over the target; only then is the sequence number recorded
//! (compare-and-set). A crash between the rename and the record leaves the new image installed
//! and the same update acceptable again, never an old image with a new sequence number. An
//! exclusive lock on the image's directory spans the three steps, so concurrent installs run
//! one after the other and the second is refused as a rollback before it writes.

use std::path::Path;
use std::time::Duration;

use xtt_anchors::delivery::{DeliveryError, DeviceMessage, Download, Progress, ServerMessage};
use xtt_anchors::store::Backend;
use xtt_anchors::update::{verify_update, Accepted, UpdateTarget};
use xtt_anchors::{AnchorError, AnchorStore, UpdateError};
use xtt_proto::record::PayloadType;

use crate::session_client::{SessionClient, SessionClientError};

/// How to download.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Bytes asked for per chunk (at most [`xtt_anchors::delivery::MAX_CHUNK`]).
    pub chunk: u32,
    /// Largest image accepted.
    pub max_image: u64,
    /// How long to wait for each answer before asking again.
    pub answer_timeout: Duration,
    /// How many times one request is sent at most.
    pub max_tries: u32,
}

impl Default for FetchOptions {
    /// 16 KiB chunks, images up to 256 MiB, 2 s per answer, 5 tries.
    fn default() -> Self {
        Self {
            chunk: xtt_anchors::delivery::MAX_CHUNK,
            max_image: 256 * 1024 * 1024,
            answer_timeout: Duration::from_secs(2),
            max_tries: 5,
        }
    }
}

/// Why fetching or installing an update failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The session failed.
    #[error("session")]
    Session(#[from] SessionClientError),
    /// The server did not answer a request in time after every try.
    #[error("the server did not answer after {0} tries")]
    NoAnswer(u32),
    /// The server only sent each request back as it was: it has sessions but serves no updates
    /// (a server without an update directory echoes records).
    #[error(
        "the server sent each request back unchanged ({0} tries) instead of answering it: it \
         serves no updates (does it run with --updates DIR?)"
    )]
    Echoed(u32),
    /// The delivery protocol failed (including "no update offered").
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The update was refused (signer, target, rollback, image); nothing was installed.
    #[error("update refused")]
    Refused(#[from] UpdateError),
    /// Writing the image or recording the sequence number failed.
    #[error("install")]
    Install(#[from] AnchorError),
}

/// A downloaded update, not yet verified in full.
#[derive(Clone, Debug)]
pub struct DownloadedUpdate {
    /// The signed envelope (its SHA-256 matched the offered id).
    pub envelope: Vec<u8>,
    /// The image.
    pub image: Vec<u8>,
}

/// One request, answered: sends it and waits for a server message, asking again on timeout
/// (over TCP on a new connection, since a timeout may leave the stream mid-message).
async fn ask(
    session: &mut SessionClient,
    request: &DeviceMessage,
    options: &FetchOptions,
    mut wanted: impl FnMut(&ServerMessage) -> bool,
) -> Result<ServerMessage, FetchError> {
    let bytes = request.encode();
    let mut echoed = false;
    for _ in 0..options.max_tries.max(1) {
        session.send(PayloadType::QueueProtocol, &bytes).await?;
        let deadline = tokio::time::Instant::now() + options.answer_timeout;
        loop {
            let record = match tokio::time::timeout_at(deadline, session.recv()).await {
                Ok(Ok(r)) => r,
                Ok(Err(SessionClientError::Timeout)) | Err(_) => {
                    session.reconnect().await?;
                    break;
                }
                Ok(Err(e)) => return Err(e.into()),
            };
            if record.payload_type != PayloadType::QueueProtocol {
                continue;
            }
            let Ok(message) = ServerMessage::decode(&record.payload) else {
                echoed |= *record.payload == *bytes;
                tracing::debug!("undecodable update-delivery message ignored");
                continue;
            };
            if matches!(message, ServerMessage::Refused(_) | ServerMessage::NoUpdate)
                || wanted(&message)
            {
                return Ok(message);
            }
        }
    }
    let tries = options.max_tries.max(1);
    Err(if echoed {
        FetchError::Echoed(tries)
    } else {
        FetchError::NoAnswer(tries)
    })
}

/// Downloads the server's current update. `precheck` sees the envelope before the image is
/// fetched (typically [`xtt_anchors::update::precheck_envelope`]) and returns the image size
/// its signed manifest gives; a refusal, or an offer announcing another image size, ends the
/// download before any of the image is fetched. `progress` is called with (bytes received,
/// bytes in all) after each chunk.
pub async fn download_update(
    session: &mut SessionClient,
    options: &FetchOptions,
    mut precheck: impl FnMut(&[u8]) -> Result<u64, UpdateError>,
    mut progress: impl FnMut(u64, u64),
) -> Result<DownloadedUpdate, FetchError> {
    let offer = ask(session, &DeviceMessage::OfferRequest, options, |m| {
        matches!(m, ServerMessage::Offer { .. })
    })
    .await?;
    let mut download = Download::new(&offer, options.chunk, options.max_image)?;
    let mut checked = false;
    while let Some(request) = download.next_request() {
        let answer = ask(session, &request, options, |m| {
            matches!(m, ServerMessage::Chunk { .. })
        })
        .await?;
        if download.accept(answer)? == Progress::Advanced {
            let (have, all) = download.progress();
            progress(have, all);
        }
        if !checked {
            if let Some(envelope) = download.envelope()? {
                let signed_image_len = precheck(envelope)?;
                download.check_signed_image_len(signed_image_len)?;
                checked = true;
            }
        }
    }
    let (envelope, image) = download.finish()?;
    Ok(DownloadedUpdate { envelope, image })
}

/// Verifies `update` for this device and installs its image at `out` (blocking; see the module
/// documentation for the order of steps). On any refusal nothing is written or recorded.
pub fn install_update<B: Backend>(
    store: &mut AnchorStore<B>,
    update: &DownloadedUpdate,
    target: &UpdateTarget<'_>,
    out: &Path,
    now: u64,
) -> Result<Accepted, FetchError> {
    // Two installs at once (a timer and an operator) must not interleave: each could pass the
    // dry run, and the older image could land on top of the newer one after the newer one's
    // sequence number was recorded. The lock on the image's directory spans check, write and
    // record.
    let dir = xtt_fsio::parent_dir(out);
    let _locked = xtt_fsio::lock_dir(dir).map_err(|cause| AnchorError::Io {
        path: dir.display().to_string(),
        cause,
    })?;
    verify_update(store, &update.envelope, &update.image, target, now, true)?;
    xtt_anchors::fsio::write_atomic(out, &update.image, 0o644)?;
    Ok(verify_update(
        store,
        &update.envelope,
        &update.image,
        target,
        now,
        false,
    )?)
}
