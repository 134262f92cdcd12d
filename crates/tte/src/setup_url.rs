//! The URL printed as a QR code on each device:
//!
//! ```text
//! https://<TA authority>/.well-known/tte1/<DevURN>/s?otp=<base64url OTP>#<base64url DevSecret>
//! ```
//!
//! The DevSecret sits in the fragment, which browsers never send to a server: the Transfer Agent
//! sees the OTP (it must, to check it) but never the key the device shares with its Controller.

use crate::secret::{Key256, Otp, SecretError};
use crate::urn::{DevUrn, UrnError};

/// The path prefix of every TTE resource (draft §5: `/.well-known/tte1/`).
pub const WELL_KNOWN: &str = "/.well-known/tte1";

/// Everything a device's QR code carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupUrl {
    /// `https` in production; `http` only for tests on 127.0.0.1.
    pub scheme: String,
    /// Host and optional port of the Transfer Agent.
    pub authority: String,
    /// The device.
    pub urn: DevUrn,
    /// Its one-time password.
    pub otp: Otp,
    /// The key it shares with its Controller.
    pub dev_secret: Key256,
}

/// Why a URL is not a TTE setup URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupUrlError {
    /// Not a URL, or not http(s).
    #[error("not an http(s) URL")]
    NotUrl,
    /// Path is not `/.well-known/tte1/<DevURN>/s`.
    #[error("path is not {WELL_KNOWN}/<DevURN>/s")]
    Path,
    /// Bad DevURN in the path.
    #[error(transparent)]
    Urn(#[from] UrnError),
    /// Missing `otp` query parameter or DevSecret fragment.
    #[error("missing {0}")]
    Missing(&'static str),
    /// Bad OTP or DevSecret.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl SetupUrl {
    /// The URL text (the QR code's content).
    pub fn to_url(&self) -> String {
        format!(
            "{}://{}{WELL_KNOWN}/{}/s?otp={}#{}",
            self.scheme,
            self.authority,
            self.urn,
            self.otp.to_b64(),
            self.dev_secret.to_b64()
        )
    }

    /// Parses a scanned URL.
    pub fn parse(s: &str) -> Result<Self, SetupUrlError> {
        let u = url::Url::parse(s.trim()).map_err(|_| SetupUrlError::NotUrl)?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(SetupUrlError::NotUrl);
        }
        let host = u.host_str().ok_or(SetupUrlError::NotUrl)?;
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let rest = u
            .path()
            .strip_prefix(WELL_KNOWN)
            .ok_or(SetupUrlError::Path)?;
        let urn = rest
            .strip_prefix('/')
            .and_then(|r| r.strip_suffix("/s"))
            .ok_or(SetupUrlError::Path)?;
        let urn = DevUrn::parse(urn)?;
        let otp = u
            .query_pairs()
            .find(|(k, _)| k == "otp")
            .ok_or(SetupUrlError::Missing("otp query parameter"))?;
        let otp = Otp::from_b64(&otp.1)?;
        let dev_secret = Key256::from_b64(
            u.fragment()
                .ok_or(SetupUrlError::Missing("DevSecret fragment"))?,
        )?;
        Ok(Self {
            scheme: u.scheme().to_owned(),
            authority,
            urn,
            otp,
            dev_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = SetupUrl {
            scheme: "https".into(),
            authority: "ta.example:8443".into(),
            urn: DevUrn::parse("urn:dev:mac:90a2da001a0c").unwrap(),
            otp: Otp::from_bytes([3; 16]),
            dev_secret: Key256::from_bytes([4; 32]),
        };
        let text = s.to_url();
        assert!(text.starts_with(
            "https://ta.example:8443/.well-known/tte1/urn:dev:mac:90a2da001a0c/s?otp="
        ));
        assert_eq!(SetupUrl::parse(&text).unwrap(), s);
        assert_eq!(
            SetupUrl::parse("https://x/.well-known/tte1/urn:a:b/s#x").unwrap_err(),
            SetupUrlError::Missing("otp query parameter")
        );
        assert_eq!(
            SetupUrl::parse("https://x/other").unwrap_err(),
            SetupUrlError::Path
        );
    }
}
