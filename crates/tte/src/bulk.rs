//! Bulk enrollment (draft §8.2): one label on a box of devices instead of one QR code each.
//!
//! The box label carries a DevURN range and two 256-bit master secrets, mirroring the
//! single-device QR code: the *OTP master* (query part, sent to the Transfer Agent) and the
//! *DevSecret master* (fragment, never sent to the Transfer Agent). Each device's secrets are
//! HKDF-SHA256 (RFC 5869) outputs with the DevURN as `info`:
//!
//! ```text
//! OTP_i       = HKDF(salt = "tte1 bulk otp",       ikm = OTP master,       info = DevURN_i)[..16]
//! DevSecret_i = HKDF(salt = "tte1 bulk devsecret", ikm = DevSecret master, info = DevURN_i)[..32]
//! ```
//!
//! The manufacturer registers every device with its derived OTP as usual, so the Transfer Agent
//! stores only per-device OTP hashes. A box bind (`PUT /.well-known/tte1/b/c`) sends the range,
//! the OTP master and the ContURL; the Transfer Agent derives every OTP, and binds all devices in
//! one transaction only if every one is registered, unbound and matches — all or nothing.
//!
//! The range is `prefix` followed by a lower-case hexadecimal counter of fixed `width`, e.g.
//! prefix `urn:dev:mac:90a2da00`, width 4, first `0x1a00`, count 16 gives
//! `urn:dev:mac:90a2da001a00` … `urn:dev:mac:90a2da001a0f`: consecutive MAC addresses.

use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::{Key256, Otp};
use crate::urn::{DevUrn, UrnError};

/// Most devices one box label may cover (bounds the work of one bind request).
pub const MAX_BOX_COUNT: u32 = 1000;

/// A contiguous DevURN range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrnRange {
    /// Text before the counter, e.g. `urn:dev:mac:90a2da00`.
    pub prefix: String,
    /// First counter value.
    pub first: u64,
    /// Number of devices.
    pub count: u32,
    /// Hex digits of the counter (zero-padded), 1..=16.
    pub width: u8,
}

/// Why a range is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `count` is 0 or above [`MAX_BOX_COUNT`].
    #[error("a box holds 1 to {MAX_BOX_COUNT} devices")]
    Count,
    /// `width` outside 1..=16, or the counter overflows it.
    #[error("the counter does not fit in {0} hex digits")]
    Width(u8),
    /// A generated DevURN is invalid.
    #[error(transparent)]
    Urn(#[from] UrnError),
}

impl UrnRange {
    /// Every DevURN of the range, in order.
    pub fn urns(&self) -> Result<Vec<DevUrn>, RangeError> {
        if self.count == 0 || self.count > MAX_BOX_COUNT {
            return Err(RangeError::Count);
        }
        if !(1..=16).contains(&self.width) {
            return Err(RangeError::Width(self.width));
        }
        let last = self
            .first
            .checked_add(u64::from(self.count) - 1)
            .ok_or(RangeError::Width(self.width))?;
        if self.width < 16 && last >> (4 * u32::from(self.width)) != 0 {
            return Err(RangeError::Width(self.width));
        }
        let w = usize::from(self.width);
        (self.first..=last)
            .map(|n| Ok(DevUrn::parse(&format!("{}{n:0w$x}", self.prefix))?))
            .collect()
    }
}

fn expand<const N: usize>(salt: &[u8], master: &Key256, urn: &DevUrn) -> [u8; N] {
    let hk = Hkdf::<Sha256>::new(Some(salt), master.as_bytes());
    let mut out = [0u8; N];
    // N <= 32 is far below HKDF-SHA256's 8160-byte limit.
    let _ = hk.expand(urn.as_str().as_bytes(), &mut out);
    out
}

/// The OTP of device `urn` in a box with OTP master `master`.
pub fn derive_otp(master: &Key256, urn: &DevUrn) -> Otp {
    Otp::from_bytes(expand(b"tte1 bulk otp", master, urn))
}

/// The DevSecret of device `urn` in a box with DevSecret master `master`.
pub fn derive_dev_secret(master: &Key256, urn: &DevUrn) -> Key256 {
    Key256::from_bytes(expand(b"tte1 bulk devsecret", master, urn))
}

/// Everything a box label carries. Its URL (the label's QR code) is
///
/// ```text
/// https://<TA>/.well-known/tte1/b/s?prefix=<p>&first=<hex>&count=<n>&width=<w>&m=<OTP master>#<DevSecret master>
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxLabel {
    /// `https` in production.
    pub scheme: String,
    /// Transfer Agent host\[:port\].
    pub authority: String,
    /// The devices in the box.
    pub range: UrnRange,
    /// Master of the per-device OTPs (sent to the TA on bind).
    pub otp_master: Key256,
    /// Master of the per-device DevSecrets (never sent to the TA).
    pub dev_master: Key256,
}

/// Why a URL is not a box label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxLabelError {
    /// Not an http(s) URL with the box-label path.
    #[error("not a TTE box label URL (http(s)://TA/.well-known/tte1/b/s?...)")]
    NotLabel,
    /// Missing or malformed query parameter or fragment.
    #[error("box label: missing or malformed {0}")]
    Field(&'static str),
    /// Range unusable.
    #[error(transparent)]
    Range(#[from] RangeError),
}

impl BoxLabel {
    /// The label URL.
    pub fn to_url(&self) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("prefix", &self.range.prefix)
            .append_pair("first", &format!("{:x}", self.range.first))
            .append_pair("count", &self.range.count.to_string())
            .append_pair("width", &self.range.width.to_string())
            .append_pair("m", &self.otp_master.to_b64())
            .finish();
        format!(
            "{}://{}/.well-known/tte1/b/s?{q}#{}",
            self.scheme,
            self.authority,
            self.dev_master.to_b64()
        )
    }

    /// Parses a scanned label URL and checks its range.
    pub fn parse(s: &str) -> Result<Self, BoxLabelError> {
        let u = url::Url::parse(s.trim()).map_err(|_| BoxLabelError::NotLabel)?;
        if !matches!(u.scheme(), "http" | "https") || u.path() != "/.well-known/tte1/b/s" {
            return Err(BoxLabelError::NotLabel);
        }
        let host = u.host_str().ok_or(BoxLabelError::NotLabel)?;
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let q = |k: &'static str| {
            u.query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
                .ok_or(BoxLabelError::Field(k))
        };
        let range = UrnRange {
            prefix: q("prefix")?,
            first: u64::from_str_radix(&q("first")?, 16)
                .map_err(|_| BoxLabelError::Field("first"))?,
            count: q("count")?
                .parse()
                .map_err(|_| BoxLabelError::Field("count"))?,
            width: q("width")?
                .parse()
                .map_err(|_| BoxLabelError::Field("width"))?,
        };
        range.urns()?;
        let otp_master = Key256::from_b64(&q("m")?).map_err(|_| BoxLabelError::Field("m"))?;
        let dev_master = Key256::from_b64(u.fragment().ok_or(BoxLabelError::Field("fragment"))?)
            .map_err(|_| BoxLabelError::Field("fragment"))?;
        Ok(Self {
            scheme: u.scheme().into(),
            authority,
            range,
            otp_master,
            dev_master,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trip() {
        let l = BoxLabel {
            scheme: "https".into(),
            authority: "ta.example".into(),
            range: UrnRange {
                prefix: "urn:dev:mac:90a2da00".into(),
                first: 0x1a00,
                count: 16,
                width: 4,
            },
            otp_master: Key256::from_bytes([1; 32]),
            dev_master: Key256::from_bytes([2; 32]),
        };
        let url = l.to_url();
        assert!(url.starts_with(
            "https://ta.example/.well-known/tte1/b/s?prefix=urn%3Adev%3Amac%3A90a2da00&first=1a00"
        ));
        assert_eq!(BoxLabel::parse(&url).unwrap(), l);
        assert_eq!(
            BoxLabel::parse("https://ta.example/x").unwrap_err(),
            BoxLabelError::NotLabel
        );
    }

    #[test]
    fn range_and_derivation() {
        let r = UrnRange {
            prefix: "urn:dev:mac:90a2da00".into(),
            first: 0x1a00,
            count: 16,
            width: 4,
        };
        let urns = r.urns().unwrap();
        assert_eq!(urns.len(), 16);
        assert_eq!(urns[0].as_str(), "urn:dev:mac:90a2da001a00");
        assert_eq!(urns[15].as_str(), "urn:dev:mac:90a2da001a0f");
        let m = Key256::from_bytes([5; 32]);
        assert_ne!(derive_otp(&m, &urns[0]), derive_otp(&m, &urns[1]));
        assert_eq!(derive_otp(&m, &urns[0]), derive_otp(&m, &urns[0]));
        assert_ne!(
            derive_otp(&m, &urns[0]).as_bytes()[..],
            derive_dev_secret(&m, &urns[0]).as_bytes()[..16]
        );
        assert_eq!(
            UrnRange {
                count: 0,
                ..r.clone()
            }
            .urns(),
            Err(RangeError::Count)
        );
        assert_eq!(
            UrnRange {
                first: 0xfff8,
                ..r.clone()
            }
            .urns(),
            Err(RangeError::Width(4))
        );
        assert_eq!(UrnRange { width: 0, ..r }.urns(), Err(RangeError::Width(0)));
    }
}
