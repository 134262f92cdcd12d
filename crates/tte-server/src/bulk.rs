//! Bulk enrollment tooling (draft §8.2, formats in [`tte::bulk`]): the manufacturer makes a box of
//! devices with one label; the introducer binds the whole box with one call.

use std::path::Path;

use rand_core::OsRng;
use tte::api::{AddDevice, BulkBind};
use tte::bulk::{derive_dev_secret, derive_otp, BoxLabel, UrnRange};
use tte::{ContUrl, Key256};
use zeroize::Zeroizing;

use crate::device::DeviceSecrets;
use crate::manufacture::{self, ManufactureError};
use crate::{files, qr};

/// Makes a box: fresh masters, every device registered with its derived OTP, per-device secrets
/// files, and the box label (`box-label.png/.svg/.txt`).
///
/// Nothing is registered before it is on disk: the label (which carries both masters) is
/// written first, and each device's secrets file before its registration. A run that stopped
/// half-way (a crash, a network failure) is resumed by running the same command with the same
/// output directory: the label and the secrets files found there are reused, and registering a
/// device again with the same secrets is answered 200 by the Transfer Agent.
pub async fn create_box(
    http: &reqwest::Client,
    ta_api: &str,
    qr_base: &str,
    token: &str,
    range: UrnRange,
    out: &Path,
    mut progress: impl FnMut(),
) -> Result<BoxLabel, ManufactureError> {
    let (scheme, authority) = manufacture::scheme_authority(qr_base)?;
    let urns = range
        .urns()
        .map_err(|e| ManufactureError::TaUrl(e.to_string()))?;
    let label = match earlier_label(out)? {
        Some(label) => {
            if label.range != range || label.scheme != scheme || label.authority != authority {
                return Err(ManufactureError::OtherBox {
                    path: out.join(LABEL_TEXT),
                    detail: format!("its label is {}", redacted(&label)),
                });
            }
            label
        }
        None => {
            let label = BoxLabel {
                scheme,
                authority,
                range,
                otp_master: Key256::generate(&mut OsRng),
                dev_master: Key256::generate(&mut OsRng),
            };
            write_label(out, &label)?;
            label
        }
    };
    for urn in urns {
        let otp = derive_otp(&label.otp_master, &urn);
        let ds = derive_dev_secret(&label.dev_master, &urn);
        let p = out.join(format!("{}.json", urn.file_stem()));
        let dev = match earlier_device(&p)? {
            Some(dev) => {
                // Compared as secrets (in constant time), not as the text that carries them.
                let same = dev.urn == urn
                    && tte::Otp::from_b64(&dev.otp).is_ok_and(|o| o == otp)
                    && Key256::from_b64(&dev.dev_secret).is_ok_and(|k| k == ds);
                if !same {
                    return Err(ManufactureError::OtherBox {
                        path: p,
                        detail: "its secrets are not this label's".into(),
                    });
                }
                dev
            }
            None => {
                let dev = manufacture::new_device(urn, ta_api, qr_base, otp, ds, &mut OsRng)?;
                let json = Zeroizing::new(serde_json::to_vec_pretty(&dev).unwrap_or_default());
                files::write_private(&p, &json).map_err(|source| ManufactureError::Io {
                    path: p.clone(),
                    source,
                })?;
                dev
            }
        };
        manufacture::register(http, token, &dev).await?;
        progress();
    }
    Ok(label)
}

/// The label's text file: written last of the three, so a run resumes only from a whole label.
const LABEL_TEXT: &str = "box-label.txt";

/// Writes the label's images, then its text (all 0600: the label carries both masters).
fn write_label(out: &Path, label: &BoxLabel) -> Result<(), ManufactureError> {
    let url = label.to_url();
    for (name, data) in [
        ("box-label.png", qr::png(&url)?),
        ("box-label.svg", qr::svg(&url)?.into_bytes()),
        (LABEL_TEXT, format!("{url}\n").into_bytes()),
    ] {
        let p = out.join(name);
        files::write_private(&p, &data).map_err(|source| ManufactureError::Io {
            path: p.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The label an earlier run wrote into `out`, if any.
fn earlier_label(out: &Path) -> Result<Option<BoxLabel>, ManufactureError> {
    let p = out.join(LABEL_TEXT);
    let Some(text) = read_if_present(&p)? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&text).map_err(|_| ManufactureError::OtherBox {
        path: p.clone(),
        detail: "not a box label".into(),
    })?;
    BoxLabel::parse(text)
        .map(Some)
        .map_err(|e| ManufactureError::OtherBox {
            path: p,
            detail: e.to_string(),
        })
}

/// A device's secrets file an earlier run wrote, if any.
fn earlier_device(p: &Path) -> Result<Option<DeviceSecrets>, ManufactureError> {
    let Some(json) = read_if_present(p)? else {
        return Ok(None);
    };
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| ManufactureError::OtherBox {
            path: p.to_path_buf(),
            detail: format!("not a device secrets file: {e}"),
        })
}

/// The file's bytes, wiped when dropped (a label carries both masters, a device file its secrets).
fn read_if_present(p: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, ManufactureError> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(Zeroizing::new(b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ManufactureError::Io {
            path: p.to_path_buf(),
            source,
        }),
    }
}

/// A label for a message: its range and Transfer Agent, not its masters.
fn redacted(label: &BoxLabel) -> String {
    format!(
        "{}://{} {}{:0w$x} × {}",
        label.scheme,
        label.authority,
        label.range.prefix,
        label.range.first,
        label.range.count,
        w = usize::from(label.range.width)
    )
}

/// Why a box bind failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkBindError {
    /// HTTP failure.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// A server refused.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// URL.
        url: String,
        /// Status.
        status: reqwest::StatusCode,
        /// Body.
        body: String,
    },
    /// Range invalid.
    #[error(transparent)]
    Range(#[from] tte::bulk::RangeError),
}

/// Binds the whole box to `conturl` at the Transfer Agent, then (for HTTP(S) Controllers) adds
/// every device with its derived DevSecret. Returns the number of devices added (or found
/// already added).
///
/// A run that stopped part-way (the Controller refused an add, e.g. 503 when it holds as many
/// devices as it may, or the network failed) is finished by running it again with the same
/// Controller: the Transfer Agent answers a repeated bind to the same Controller as success,
/// and the Controller a repeated add of the same DevSecret. A box bound to another Controller
/// stays refused (409 `otp_used`).
pub async fn bind_box(
    http: &reqwest::Client,
    label: &BoxLabel,
    conturl: &ContUrl,
    dev_label_prefix: Option<&str>,
) -> Result<usize, BulkBindError> {
    let ta = format!("{}://{}", label.scheme, label.authority);
    let url = format!("{ta}/.well-known/tte1/b/c");
    let body = BulkBind {
        range: label.range.clone(),
        master: label.otp_master.to_b64(),
        conturl: conturl.to_string(),
    };
    put_json(http, url, &body).await?;
    let mut added = 0;
    for urn in label.range.urns()? {
        let Some(url) = conturl.well_known(&format!("c/{urn}/k")) else {
            break;
        };
        let body = AddDevice {
            dev_secret: derive_dev_secret(&label.dev_master, &urn).to_b64(),
            label: dev_label_prefix.map(|p| format!("{p} {urn}")),
        };
        put_json(http, url, &body).await?;
        added += 1;
    }
    Ok(added)
}

/// Longest wait for one `Retry-After`, and how many 429 answers one request may get: a box
/// of [`tte::bulk::MAX_BOX_COUNT`] devices fits in a Controller's default add burst, and one
/// more box from the same address then goes at its rate (one device a second).
const MAX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_RATE_LIMITED: u32 = 100;

/// PUTs `body` as JSON to `url`, waiting out rate limits (429 with `Retry-After`); anything
/// else but a success is [`BulkBindError::Status`].
async fn put_json(
    http: &reqwest::Client,
    url: String,
    body: &impl serde::Serialize,
) -> Result<(), BulkBindError> {
    let mut limited = 0;
    let resp = loop {
        let resp = http.put(&url).json(body).send().await?;
        if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || limited == MAX_RATE_LIMITED {
            break resp;
        }
        limited += 1;
        let wait = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map_or(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs,
            )
            .min(MAX_RETRY_WAIT);
        tracing::info!(%url, secs = wait.as_secs(), "rate limited; retrying");
        tokio::time::sleep(wait).await;
    };
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(BulkBindError::Status {
            url,
            status,
            body: xtt_tls::body::error_text(resp).await,
        });
    }
    Ok(())
}
