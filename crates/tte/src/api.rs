//! JSON bodies of the HTTP APIs, shared by the services, the device client, the manufacturer
//! tool and the setup page. Field names are camelCase as the issue and page use them.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Every error response: `{"error": "<code>", "detail": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `otp_used`.
    pub error: String,
    /// Human-readable explanation.
    pub detail: String,
}

/// `POST /.well-known/tte1/d/{DevURN}` (manufacturer → Transfer Agent).
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(rename_all = "camelCase")]
pub struct CreateDevice {
    /// base64url OTP.
    pub otp: String,
    /// base64url TaSecret.
    pub ta_secret: String,
}

/// `PUT /.well-known/tte1/d/{DevURN}/c` (introducer → Transfer Agent).
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Bind {
    /// base64url OTP.
    pub otp: String,
    /// The Controller URL.
    pub conturl: String,
}

/// `PUT /.well-known/tte1/b/c` (bulk bind of a box, see [`crate::bulk`]).
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct BulkBind {
    /// The DevURN range on the box label.
    #[zeroize(skip)]
    pub range: crate::bulk::UrnRange,
    /// base64url OTP master secret.
    pub master: String,
    /// The Controller URL.
    pub conturl: String,
}

/// `PUT /.well-known/tte1/c/{DevURN}/k` (introducer → Controller).
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(rename_all = "camelCase")]
pub struct AddDevice {
    /// base64url DevSecret.
    pub dev_secret: String,
    /// Free-text label shown to operators.
    #[serde(default)]
    pub label: Option<String>,
}

/// These bodies carry secrets (base64url text): their `Debug` output names the type only, and
/// they are zeroized when dropped (the derives above), so neither the client that builds one nor
/// the server that parses one leaves the text behind in freed memory.
macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), " { <redacted> }"))
            }
        }
    )*};
}
redacted_debug!(CreateDevice, Bind, BulkBind, AddDevice);

/// Most characters in a DevLabel.
pub const MAX_LABEL_LEN: usize = 128;

/// `GET /devices` item (operator view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The DevURN.
    pub urn: String,
    /// Its label.
    pub label: Option<String>,
    /// Seconds since the epoch when it was added.
    pub added: i64,
    /// Last accepted sensor-update counter.
    pub last_seq: Option<u64>,
    /// Number of stored readings.
    pub readings: u64,
}

/// `GET /devices/{DevURN}/readings` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReading {
    /// The update counter it arrived with.
    pub seq: u64,
    /// The reading.
    #[serde(flatten)]
    pub reading: crate::senml::Reading,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LXRleHQtdGhhdC1tdXN0LW5vdC1zaG93LXVw";

    fn bodies() -> (CreateDevice, Bind, BulkBind, AddDevice) {
        let range = crate::bulk::UrnRange {
            prefix: "urn:dev:mac:90a2da00".into(),
            first: 0x1a00,
            count: 16,
            width: 4,
        };
        (
            CreateDevice {
                otp: SECRET.into(),
                ta_secret: SECRET.into(),
            },
            Bind {
                otp: SECRET.into(),
                conturl: "https://c.example".into(),
            },
            BulkBind {
                range,
                master: SECRET.into(),
                conturl: "https://c.example".into(),
            },
            AddDevice {
                dev_secret: SECRET.into(),
                label: Some("kitchen".into()),
            },
        )
    }

    fn zeroized_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn secret_bodies_are_redacted_and_zeroized() {
        let (mut create, mut bind, mut bulk, mut add) = bodies();
        for debug in [
            format!("{create:?}"),
            format!("{bind:?}"),
            format!("{bulk:?}"),
            format!("{add:?}"),
        ] {
            assert!(!debug.contains(SECRET), "{debug}");
            assert!(debug.contains("<redacted>"), "{debug}");
        }
        // Drop runs what zeroize() does (the ZeroizeOnDrop derive).
        zeroized_on_drop(&create);
        zeroized_on_drop(&bind);
        zeroized_on_drop(&bulk);
        zeroized_on_drop(&add);
        create.zeroize();
        bind.zeroize();
        bulk.zeroize();
        add.zeroize();
        assert!(create.otp.is_empty() && create.ta_secret.is_empty());
        assert!(bind.otp.is_empty());
        assert!(bulk.master.is_empty());
        assert!(add.dev_secret.is_empty());
    }
}
