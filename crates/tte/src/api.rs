//! JSON bodies of the HTTP APIs, shared by the services, the device client, the manufacturer
//! tool and the setup page. Field names are camelCase as the issue and page use them.

use serde::{Deserialize, Serialize};

/// Every error response: `{"error": "<code>", "detail": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `otp_used`.
    pub error: String,
    /// Human-readable explanation.
    pub detail: String,
}

/// `POST /.well-known/tte1/d/{DevURN}` (manufacturer → Transfer Agent).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDevice {
    /// base64url OTP.
    pub otp: String,
    /// base64url TaSecret.
    pub ta_secret: String,
}

/// `PUT /.well-known/tte1/d/{DevURN}/c` (introducer → Transfer Agent).
#[derive(Clone, Serialize, Deserialize)]
pub struct Bind {
    /// base64url OTP.
    pub otp: String,
    /// The Controller URL.
    pub conturl: String,
}

/// `PUT /.well-known/tte1/b/c` (bulk bind of a box, see [`crate::bulk`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct BulkBind {
    /// The DevURN range on the box label.
    pub range: crate::bulk::UrnRange,
    /// base64url OTP master secret.
    pub master: String,
    /// The Controller URL.
    pub conturl: String,
}

/// `PUT /.well-known/tte1/c/{DevURN}/k` (introducer → Controller).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddDevice {
    /// base64url DevSecret.
    pub dev_secret: String,
    /// Free-text label shown to operators.
    #[serde(default)]
    pub label: Option<String>,
}

/// These bodies carry secrets: their `Debug` output names the type only.
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
