//! Bulk enrollment tooling (draft §8.2, formats in [`tte::bulk`]): the manufacturer makes a box of
//! devices with one label; the introducer binds the whole box with one call.

use std::path::Path;

use rand_core::OsRng;
use tte::api::{AddDevice, BulkBind};
use tte::bulk::{derive_dev_secret, derive_otp, BoxLabel, UrnRange};
use tte::{ContUrl, Key256};

use crate::manufacture::{self, ManufactureError};
use crate::{files, qr};

/// Makes a box: fresh masters, every device registered with its derived OTP, per-device secrets
/// files, and the box label (`box-label.png/.svg/.txt`).
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
    let label = BoxLabel {
        scheme,
        authority,
        range,
        otp_master: Key256::generate(&mut OsRng),
        dev_master: Key256::generate(&mut OsRng),
    };
    for urn in urns {
        let otp = derive_otp(&label.otp_master, &urn);
        let ds = derive_dev_secret(&label.dev_master, &urn);
        let dev = manufacture::new_device(urn, ta_api, qr_base, otp, ds, &mut OsRng)?;
        manufacture::register(http, token, &dev).await?;
        let p = out.join(format!("{}.json", dev.urn.file_stem()));
        files::write_private(&p, &serde_json::to_vec_pretty(&dev).unwrap_or_default()).map_err(
            |source| ManufactureError::Io {
                path: p.clone(),
                source,
            },
        )?;
        progress();
    }
    let url = label.to_url();
    for (name, data) in [
        ("box-label.png", qr::png(&url)?),
        ("box-label.svg", qr::svg(&url)?.into_bytes()),
        ("box-label.txt", format!("{url}\n").into_bytes()),
    ] {
        let p = out.join(name);
        files::write_private(&p, &data).map_err(|source| ManufactureError::Io {
            path: p.clone(),
            source,
        })?;
    }
    Ok(label)
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
/// every device with its derived DevSecret. Returns the number of devices added.
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

/// PUTs `body` as JSON to `url`; anything but a success is [`BulkBindError::Status`].
async fn put_json(
    http: &reqwest::Client,
    url: String,
    body: &impl serde::Serialize,
) -> Result<(), BulkBindError> {
    let resp = http.put(&url).json(body).send().await?;
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
