//! The device side: on boot, ask the Transfer Agent for the Controller; then report SenML
//! readings to it. A real device runs the same steps in C on a microcontroller; this client is
//! what the tests, the load generator and the `xtt tte device` command use.
//!
//! # The XTT seam
//!
//! When the decrypted ContURL is `xtt://host:port`, the device's Controller is this project's XTT
//! server: enrollment hands over to XTT identity provisioning instead of SenML-over-HTTP. This
//! module detects the case and calls the [`XttHandover`] it is given
//! ([`Enrollment::HandedToXtt`] tells which happened); [`crate::xtt_enroll::XttEnrollment`] is
//! the real one (this project's XTT client, the C client's files), which `xtt tte device fetch`
//! passes. Without one, [`DeviceClient::enroll`] reports [`Enrollment::XttPending`].

use std::future::Future;
use std::pin::Pin;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use tte::senml::{self, Pack};
use tte::{jwe, ContUrl, DevUrn, Key256, Otp};
use xtt_tls::body::BodyError;

/// What is flashed into one device at manufacture (the `manufacture` command writes this file).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSecrets {
    /// The DevURN.
    pub urn: DevUrn,
    /// Base URL of the Transfer Agent, e.g. `https://ta.example`.
    pub ta: String,
    /// base64url TaSecret.
    pub ta_secret: String,
    /// base64url DevSecret.
    pub dev_secret: String,
    /// base64url OTP (also in the QR code).
    pub otp: String,
    /// The QR code's URL.
    pub setup_url: String,
    /// The device's XTT material (DAA membership, XTT root) for an `xtt://` Controller; written
    /// by `manufacture --daa-group`. See [`crate::xtt_enroll`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xtt: Option<crate::xtt_enroll::XttSecrets>,
}

impl std::fmt::Debug for DeviceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSecrets")
            .field("urn", &self.urn)
            .field("ta", &self.ta)
            .finish_non_exhaustive()
    }
}

impl Drop for DeviceSecrets {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.ta_secret);
        zeroize::Zeroize::zeroize(&mut self.dev_secret);
        zeroize::Zeroize::zeroize(&mut self.otp);
        zeroize::Zeroize::zeroize(&mut self.setup_url);
    }
}

/// Why the device could not enroll or report.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Network or HTTP failure.
    #[error("HTTP: {}", xtt_tls::error_chain(.0))]
    Http(#[from] reqwest::Error),
    /// The server's TLS certificate was refused.
    #[error("{url} cannot be trusted: {reason}")]
    Certificate {
        /// Requested URL.
        url: String,
        /// Why (e.g. not signed by a trusted certificate authority).
        reason: String,
    },
    /// The trust roots could not be set up.
    #[error(transparent)]
    Tls(#[from] xtt_tls::TlsError),
    /// The server answered with an error.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// Requested URL.
        url: String,
        /// HTTP status.
        status: reqwest::StatusCode,
        /// Response body.
        body: String,
    },
    /// The Transfer Agent's answer did not authenticate under TaSecret.
    #[error("Transfer Agent response rejected: {0}")]
    Jwe(#[from] jwe::JweError),
    /// The decrypted ContURL is unusable.
    #[error("Controller URL from the Transfer Agent is invalid: {0}")]
    ContUrl(#[from] tte::conturl::ContUrlError),
    /// A secret in the secrets file is malformed.
    #[error("secrets file: {0}")]
    Secret(#[from] tte::secret::SecretError),
    /// The Controller speaks CoAP or XTT, not HTTP.
    #[error("Controller {0} does not take SenML over HTTP(S)")]
    NotHttp(String),
    /// The XTT hand-over failed.
    #[error(transparent)]
    Xtt(#[from] crate::xtt_enroll::XttError),
    /// The answer was longer than any answer of the protocol.
    #[error("{url} sent more than {limit} bytes; not read further")]
    TooLarge {
        /// Requested URL.
        url: String,
        /// What was accepted.
        limit: usize,
    },
}

/// The response body, at most `limit` bytes: the Controller's address comes from the
/// introducer, so it may be anyone's server, and a device must not hold whatever it streams.
async fn body_limited(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, DeviceError> {
    let url = resp.url().to_string();
    xtt_tls::body::read_limited(resp, limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => DeviceError::TooLarge { url, limit },
            BodyError::Transport(e) => e.into(),
        })
}

/// Hook into XTT identity provisioning for `xtt://host:port` Controllers.
pub trait XttHandover: Send + Sync {
    /// Runs XTT provisioning of `device` against `host:port`.
    fn provision<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        device: &'a DeviceSecrets,
    ) -> Pin<Box<dyn Future<Output = Result<(), crate::xtt_enroll::XttError>> + Send + 'a>>;
}

/// Outcome of [`DeviceClient::enroll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrollment {
    /// No Controller bound yet (404): try again later.
    NotBound,
    /// An HTTP/CoAP Controller to report to.
    Controller(ContUrl),
    /// `xtt://` Controller, handed to the XTT hook which succeeded.
    HandedToXtt(ContUrl),
    /// `xtt://` Controller, but no XTT hook was supplied.
    XttPending(ContUrl),
}

/// A device's HTTP client.
#[derive(Debug, Clone)]
pub struct DeviceClient {
    http: reqwest::Client,
    secrets: DeviceSecrets,
    urn: DevUrn,
    ta_secret: Key256,
    dev_secret: Key256,
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response, DeviceError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let url = resp.url().to_string();
    let status = resp.status();
    let body = xtt_tls::body::error_text(resp).await;
    Err(DeviceError::Status { url, status, body })
}

impl DeviceClient {
    /// A client for the device described by `secrets`, trusting the platform's certificate
    /// authorities for `https://` Transfer Agents and Controllers.
    pub fn new(secrets: DeviceSecrets) -> Result<Self, DeviceError> {
        Self::with_roots(secrets, &xtt_tls::TrustRoots::platform())
    }

    /// The same, trusting `roots` (the platform's plus extra, e.g. `--ca-file`).
    pub fn with_roots(
        secrets: DeviceSecrets,
        roots: &xtt_tls::TrustRoots,
    ) -> Result<Self, DeviceError> {
        let ta_secret = Key256::from_b64(&secrets.ta_secret)?;
        let dev_secret = Key256::from_b64(&secrets.dev_secret)?;
        Otp::from_b64(&secrets.otp)?;
        let http = roots
            .client_builder()?
            .timeout(std::time::Duration::from_secs(15))
            .build()?;
        Ok(Self {
            urn: secrets.urn.clone(),
            http,
            secrets,
            ta_secret,
            dev_secret,
        })
    }

    /// The device's secrets.
    pub fn secrets(&self) -> &DeviceSecrets {
        &self.secrets
    }

    /// Asks the Transfer Agent for the Controller and authenticates the answer under TaSecret.
    pub async fn fetch_controller(&self) -> Result<Option<ContUrl>, DeviceError> {
        let url = format!(
            "{}/.well-known/tte1/{}/c",
            self.secrets.ta.trim_end_matches('/'),
            self.urn
        );
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| transport(&url, e))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = body_limited(check(resp).await?, jwe::MAX_JWE_LEN).await?;
        let body = String::from_utf8(body).map_err(|_| jwe::JweError::Format)?;
        let d = jwe::decrypt(&self.ta_secret, &self.urn, &body)?;
        let text = String::from_utf8(d.plaintext)
            .map_err(|_| tte::conturl::ContUrlError::Parse("not UTF-8".into()))?;
        Ok(Some(ContUrl::parse(&text)?))
    }

    /// First-boot enrollment: fetch the Controller and, for `xtt://`, hand over to XTT.
    pub async fn enroll(&self, xtt: Option<&dyn XttHandover>) -> Result<Enrollment, DeviceError> {
        let Some(cont) = self.fetch_controller().await? else {
            return Ok(Enrollment::NotBound);
        };
        let Some((host, port)) = cont.xtt_endpoint() else {
            return Ok(Enrollment::Controller(cont));
        };
        match xtt {
            Some(h) => {
                h.provision(&host, port, &self.secrets).await?;
                Ok(Enrollment::HandedToXtt(cont))
            }
            None => Ok(Enrollment::XttPending(cont)),
        }
    }

    /// Builds the encrypted body of a sensor update (exposed for tests and load generation).
    pub fn seal_update(&self, pack: &Pack, seq: u64) -> String {
        jwe::encrypt(
            &self.dev_secret,
            &self.urn,
            Some(seq),
            Some(senml::MEDIA_TYPE),
            &pack.to_json(),
            &mut OsRng,
        )
    }

    /// The URL sensor updates go to.
    pub fn update_url(&self, cont: &ContUrl) -> Result<String, DeviceError> {
        cont.well_known(&format!("s/{}/v", self.urn))
            .ok_or_else(|| DeviceError::NotHttp(cont.to_string()))
    }

    /// Sends `pack` to the Controller with counter `seq`.
    pub async fn report(&self, cont: &ContUrl, pack: &Pack, seq: u64) -> Result<(), DeviceError> {
        let url = self.update_url(cont)?;
        let body = self.seal_update(pack, seq);
        let resp = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, jwe::MEDIA_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&url, e))?;
        check(resp).await?;
        Ok(())
    }
}

/// A transport failure, with a refused certificate told apart from the rest.
fn transport(url: &str, e: reqwest::Error) -> DeviceError {
    match xtt_tls::certificate_problem(&e) {
        Some(reason) => DeviceError::Certificate {
            url: url.to_owned(),
            reason,
        },
        None => DeviceError::Http(e),
    }
}

/// A counter that only grows while the clock does: microseconds since the Unix epoch.
pub fn clock_seq() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use xtt_tls::test_http::{serve_body, Framing};

    /// A "Transfer Agent" on 127.0.0.1 that answers every request with `status` and a body of
    /// `len` bytes.
    async fn serving(status: &'static str, len: usize) -> String {
        let addr = serve_body(status, len, b'a', Framing::ContentLength).await;
        format!("http://{addr}")
    }

    fn client(ta: &str) -> DeviceClient {
        let urn = crate::manufacture::random_mac_urn(&mut OsRng);
        let otp = tte::Otp::generate(&mut OsRng);
        let dev = crate::manufacture::new_device(
            urn,
            ta,
            ta,
            otp,
            Key256::generate(&mut OsRng),
            &mut OsRng,
        )
        .unwrap();
        DeviceClient::new(dev).unwrap()
    }

    #[tokio::test]
    async fn a_server_cannot_make_the_device_hold_an_endless_answer() {
        let big = client(&serving("200 OK", 4 * jwe::MAX_JWE_LEN).await);
        let err = big.fetch_controller().await.unwrap_err();
        assert!(matches!(err, DeviceError::TooLarge { .. }), "{err}");
        // An error answer's body is kept only up to a few KiB, and then not at all.
        let failing = client(&serving("500 Internal Server Error", 1 << 20).await);
        match failing.fetch_controller().await.unwrap_err() {
            DeviceError::Status { body, .. } => assert!(body.len() < 100, "{body}"),
            other => panic!("{other}"),
        }
    }
}
