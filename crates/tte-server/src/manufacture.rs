//! Manufacturer tooling: make devices (fresh DevURN, OTP, TaSecret, DevSecret), register them with
//! the Transfer Agent, write each device's secrets file and QR code (PNG + SVG).

use std::path::{Path, PathBuf};

use rand_core::{CryptoRngCore, OsRng};
use tte::api::CreateDevice;
use tte::{DevUrn, Key256, Otp, SetupUrl};

use crate::device::DeviceSecrets;
use crate::{files, qr};

/// Why manufacturing a device failed.
#[derive(Debug, thiserror::Error)]
pub enum ManufactureError {
    /// The Transfer Agent URL is not `http(s)://host[:port]`.
    #[error("Transfer Agent URL {0:?} must be http(s)://host[:port]")]
    TaUrl(String),
    /// Bad DevURN prefix.
    #[error("DevURN: {0}")]
    Urn(#[from] tte::urn::UrnError),
    /// Registration refused or failed.
    #[error("registering {urn} with the Transfer Agent: {detail}")]
    Register {
        /// The device.
        urn: DevUrn,
        /// Why.
        detail: String,
    },
    /// Writing files failed. The OS error is the `source()` only: with it also in the message,
    /// `{:#}` printed it twice.
    #[error("writing {path}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// QR rendering failed.
    #[error(transparent)]
    Qr(#[from] qr::QrError),
    /// The output directory holds another box's files.
    #[error("{path} belongs to another box ({detail}); use a fresh output directory")]
    OtherBox {
        /// The file that does not match.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
}

/// Splits a base URL into (scheme, authority) for QR codes.
pub fn scheme_authority(base: &str) -> Result<(String, String), ManufactureError> {
    let u = url::Url::parse(base).map_err(|_| ManufactureError::TaUrl(base.into()))?;
    let host = u
        .host_str()
        .ok_or_else(|| ManufactureError::TaUrl(base.into()))?;
    if !matches!(u.scheme(), "http" | "https") || !matches!(u.path(), "" | "/") {
        return Err(ManufactureError::TaUrl(base.into()));
    }
    let authority = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    Ok((u.scheme().into(), authority))
}

/// A random, locally administered, unicast MAC address as `urn:dev:mac:…` (RFC 9039).
pub fn random_mac_urn(rng: &mut impl CryptoRngCore) -> DevUrn {
    let mut mac = [0u8; 6];
    rng.fill_bytes(&mut mac);
    mac[0] = (mac[0] | 0x02) & !0x01;
    // 12 lower-case hex digits are always a valid DevURN suffix.
    DevUrn::parse(&format!("urn:dev:mac:{}", hex::encode(mac)))
        .unwrap_or_else(|_| unreachable!("hex MAC is a valid URN"))
}

/// Secrets for one new device. `qr_base` is the Transfer Agent URL printed in QR codes.
pub fn new_device(
    urn: DevUrn,
    ta_api: &str,
    qr_base: &str,
    otp: Otp,
    dev_secret: Key256,
    rng: &mut impl CryptoRngCore,
) -> Result<DeviceSecrets, ManufactureError> {
    let (scheme, authority) = scheme_authority(qr_base)?;
    let ta_secret = Key256::generate(rng);
    let setup = SetupUrl {
        scheme,
        authority,
        urn: urn.clone(),
        otp: otp.clone(),
        dev_secret: dev_secret.clone(),
    };
    Ok(DeviceSecrets {
        urn,
        ta: ta_api.trim_end_matches('/').to_owned(),
        ta_secret: ta_secret.to_b64(),
        dev_secret: dev_secret.to_b64(),
        otp: otp.to_b64(),
        setup_url: setup.to_url(),
        xtt: None,
    })
}

/// Registers a device with the Transfer Agent (`POST /.well-known/tte1/d/{DevURN}`).
pub async fn register(
    http: &reqwest::Client,
    token: &str,
    dev: &DeviceSecrets,
) -> Result<(), ManufactureError> {
    let url = format!("{}/.well-known/tte1/d/{}", dev.ta, dev.urn);
    let body = CreateDevice {
        otp: dev.otp.clone(),
        ta_secret: dev.ta_secret.clone(),
    };
    let err = |detail: String| ManufactureError::Register {
        urn: dev.urn.clone(),
        detail,
    };
    let resp = http
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        // The whole chain: reqwest's own message only says "error sending request", while the
        // cause (connection refused, timed out, a certificate) is in its sources.
        .map_err(|e| err(xtt_tls::error_chain(&e)))?;
    // 200: this very registration had landed before (a lost reply, a resumed run).
    if matches!(
        resp.status(),
        reqwest::StatusCode::CREATED | reqwest::StatusCode::OK
    ) {
        return Ok(());
    }
    let status = resp.status();
    Err(err(format!(
        "{status}: {}",
        xtt_tls::body::error_text(resp).await
    )))
}

/// Writes `<stem>.json`, `<stem>.png` and `<stem>.svg` into `dir`, all 0600: the QR codes carry
/// the setup URL with the OTP and the DevSecret, so until they are printed they are as secret as
/// the secrets file.
pub fn write_device_files(dir: &Path, dev: &DeviceSecrets) -> Result<(), ManufactureError> {
    let stem = dev.urn.file_stem();
    let io = |path: PathBuf| move |source| ManufactureError::Io { path, source };
    let json = zeroize::Zeroizing::new(serde_json::to_vec_pretty(dev).unwrap_or_default());
    let p = dir.join(format!("{stem}.json"));
    files::write_private(&p, &json).map_err(io(p.clone()))?;
    let p = dir.join(format!("{stem}.png"));
    files::write_private(&p, &qr::png(&dev.setup_url)?).map_err(io(p.clone()))?;
    let p = dir.join(format!("{stem}.svg"));
    files::write_private(&p, qr::svg(&dev.setup_url)?.as_bytes()).map_err(io(p.clone()))?;
    Ok(())
}

/// Makes, registers and writes one random device.
pub async fn manufacture_one(
    http: &reqwest::Client,
    ta_api: &str,
    qr_base: &str,
    token: &str,
    out: &Path,
) -> Result<DeviceSecrets, ManufactureError> {
    manufacture_one_with_xtt(http, ta_api, qr_base, token, out, None).await
}

/// The same, flashing the device's XTT material (DAA membership, XTT root) into its secrets
/// file, for Controllers that are XTT servers.
pub async fn manufacture_one_with_xtt(
    http: &reqwest::Client,
    ta_api: &str,
    qr_base: &str,
    token: &str,
    out: &Path,
    xtt: Option<crate::xtt_enroll::XttSecrets>,
) -> Result<DeviceSecrets, ManufactureError> {
    let (urn, otp, dev_secret) = {
        let mut rng = OsRng;
        (
            random_mac_urn(&mut rng),
            Otp::generate(&mut rng),
            Key256::generate(&mut rng),
        )
    };
    let mut dev = new_device(urn, ta_api, qr_base, otp, dev_secret, &mut OsRng)?;
    dev.xtt = xtt;
    register(http, token, &dev).await?;
    write_device_files(out, &dev)?;
    Ok(dev)
}
