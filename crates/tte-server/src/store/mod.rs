//! Storage behind traits, so the services do not care what keeps their state. The one
//! implementation is SQLite ([`sqlite`]); every change runs in a transaction that is committed
//! (with `synchronous=FULL`) before the handler replies, so a process killed mid-request loses
//! nothing it acknowledged.
//!
//! Secrets at rest: the TA database holds TaSecrets and the Controller database DevSecrets in the
//! clear (each service must use them on every request); OTPs are stored only as keyed hashes.
//! Both files are created mode 0600; put them on encrypted storage in production.
//!
//! The traits are synchronous; the services call them from `tokio::task::spawn_blocking`.

use tte::api::{DeviceInfo, StoredReading};
use tte::senml::Reading;
use tte::{DevUrn, Key256};

pub mod sqlite;

/// A storage failure (I/O, corruption). Shown to clients only as `storage_error`.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

/// Result of registering a device at the Transfer Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Stored.
    New,
    /// The DevURN was already registered; nothing changed.
    Exists,
}

/// Result of a (bulk) bind. All-or-nothing: anything but `Bound` changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// Every device now points at the Controller (some may have already: a bind repeated with
    /// the right OTP and the same Controller is a retry, not a second use).
    Bound,
    /// This device is not registered.
    NotFound(DevUrn),
    /// The OTP does not match this device.
    WrongOtp(DevUrn),
    /// This device's OTP was already used to bind another Controller.
    AlreadyBound(DevUrn),
}

/// What the setup page needs to know about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaDeviceState {
    /// Stored OTP hash.
    pub otp_hash: Vec<u8>,
    /// Whether a Controller is bound (the OTP is spent).
    pub bound: bool,
}

/// The Transfer Agent's state.
pub trait TaStore: Send + Sync + 'static {
    /// Registers a device. `Exists` if the DevURN is already known.
    fn create_device(
        &self,
        urn: &DevUrn,
        otp_hash: &[u8; 32],
        ta_secret: &Key256,
        now: i64,
    ) -> Result<Created, StoreError>;

    /// The device's OTP hash and whether it is bound.
    fn device_state(&self, urn: &DevUrn) -> Result<Option<TaDeviceState>, StoreError>;

    /// Binds every device in `urns` to `conturl` in one transaction, provided each exists,
    /// `otp_ok(urn, stored_hash)` holds for it, and it is unbound or already bound to this very
    /// `conturl` (a retry). The check runs inside the transaction, so of concurrent binds to
    /// different Controllers for one device exactly one can succeed.
    fn bind(
        &self,
        urns: &[DevUrn],
        otp_ok: &(dyn Fn(&DevUrn, &[u8]) -> bool + Sync),
        conturl: &str,
        now: i64,
    ) -> Result<BindOutcome, StoreError>;

    /// The TaSecret and the bound ContURL (if any) of a device.
    fn fetch(&self, urn: &DevUrn) -> Result<Option<(Key256, Option<String>)>, StoreError>;
}

/// Result of adding a device at the Controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// New device stored.
    New,
    /// Already known with the same DevSecret (a retried add): nothing changed.
    Same,
    /// Already known with another DevSecret: refused.
    Conflict,
    /// New, but the Controller already holds [`ControllerLimits::max_devices`]: refused.
    Full,
}

/// Most devices a Controller holds by default (see [`ControllerLimits`]).
pub const DEFAULT_MAX_DEVICES: u64 = 10_000;

/// Most readings a Controller keeps per device by default (see [`ControllerLimits`]).
pub const DEFAULT_MAX_READINGS_PER_DEVICE: u64 = 10_000;

/// Bounds on what a Controller stores. Adding a device takes no credential (the draft leaves the
/// add open to the introducer's browser) and its owner then posts updates under a DevSecret it
/// chose, so without bounds anyone could grow the database without end. With them it holds at
/// most `max_devices × max_readings_per_device` readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerLimits {
    /// Devices held at once; a new device beyond them is refused ([`Added::Full`]) until the
    /// operator removes some.
    pub max_devices: u64,
    /// Readings kept per device: the newest, older ones are deleted as new ones arrive (in the
    /// same transaction).
    pub max_readings_per_device: u64,
}

impl Default for ControllerLimits {
    fn default() -> Self {
        Self {
            max_devices: DEFAULT_MAX_DEVICES,
            max_readings_per_device: DEFAULT_MAX_READINGS_PER_DEVICE,
        }
    }
}

/// Result of storing a sensor update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Readings stored, counter advanced.
    Stored,
    /// `seq` not above the last accepted counter.
    Replay {
        /// Last accepted counter.
        last: u64,
    },
    /// The device is unknown.
    UnknownDevice,
}

/// The Controller's state.
pub trait ControllerStore: Send + Sync + 'static {
    /// Adds a device (first writer wins; identical retries are fine), unless it is new and the
    /// store is full.
    fn add_device(
        &self,
        urn: &DevUrn,
        dev_secret: &Key256,
        label: Option<&str>,
        now: i64,
    ) -> Result<Added, StoreError>;

    /// A device's DevSecret.
    fn device_key(&self, urn: &DevUrn) -> Result<Option<Key256>, StoreError>;

    /// Stores readings if `seq` is above the device's last counter, atomically with advancing it
    /// (and with deleting the device's oldest readings beyond the store's cap).
    fn record(&self, urn: &DevUrn, seq: u64, readings: &[Reading]) -> Result<Recorded, StoreError>;

    /// Every device.
    fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError>;

    /// The newest `limit` readings of a device, oldest first; `None` if the device is unknown.
    fn readings(&self, urn: &DevUrn, limit: u32) -> Result<Option<Vec<StoredReading>>, StoreError>;

    /// Removes a device and its readings (the operator clearing an entry, e.g. one a squatter
    /// added first); the device can then be added again. `false`: it was not there.
    fn remove_device(&self, urn: &DevUrn) -> Result<bool, StoreError>;
}
