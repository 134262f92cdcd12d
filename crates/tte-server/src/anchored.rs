//! TTE secrets in the installation's trust-anchor store (xtt-anchors), when one is configured
//! (`--anchors STORE`): decorators over the services' stores, following `xtt_anchors::seam`.
//!
//! * [`AnchoredTaStore`]: a TaSecret registered by the manufacturer is recorded as a
//!   `tte-ta-secret` anchor named by its DevURN; the Transfer Agent encrypts a device's answer
//!   under the TaSecret read from the anchor store, so an operator who removes (or lets expire,
//!   or takes the onboarding role from) that anchor stops the device's enrolment.
//! * [`AnchoredControllerStore`]: the DevSecret a Controller receives from the introducer is
//!   recorded as a `tte-dev-secret` anchor (provenance "delivered by TTE"), and sensor updates
//!   are decrypted with the DevSecret read from the anchor store.
//!
//! The service database and the anchor store are two files, so no transaction spans both. A
//! secret is recorded as an anchor only when the device's row is new, and the anchor is written
//! first, the row after:
//! * a crash in between leaves an anchor without a device, which grants nothing (both services
//!   answer only for devices with a row); the manufacturer's or introducer's retry finds the
//!   anchor already there and writes the row;
//! * a retry of an add or registration that already landed (the row exists) records nothing,
//!   so once an operator removes an anchor (`xtt anchors remove`, the documented revocation),
//!   no repeated request brings it back: the device stays refused;
//! * an add or registration refused (another secret, a full Controller) takes back the anchor
//!   it wrote.
//!
//! A new row also clears other anchors of its kind under its DevURN: left by attempts that
//! crashed before their row, they must not be found instead of the device's secret.

use std::path::Path;
use std::sync::Mutex;

use tte::api::{DeviceInfo, StoredReading};
use tte::senml::Reading;
use tte::{DevUrn, Key256};
use xtt_anchors::{AnchorError, AnchorKind, AnchorStore, Fingerprint, SecretBytes};

use crate::store::{
    Added, BindOutcome, ControllerStore, Created, Recorded, StoreError, TaDeviceState, TaStore,
};

fn store_err(e: AnchorError) -> StoreError {
    StoreError(format!("anchor store: {e}"))
}

fn now_secs() -> u64 {
    u64::try_from(crate::http::now_secs()).unwrap_or(0)
}

fn hold(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The anchor store, shared by a service's handlers (one connection behind a mutex; the
/// services call their stores from blocking tasks).
struct Anchors(Mutex<AnchorStore>);

impl Anchors {
    fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self(Mutex::new(
            AnchorStore::open(path).map_err(store_err)?,
        )))
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut AnchorStore) -> Result<T, AnchorError>,
    ) -> Result<T, StoreError> {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard).map_err(store_err)
    }

    /// Records `secret` for `urn` unless this very secret is already stored. Returns its
    /// fingerprint, and whether this call stored it.
    fn record(
        &self,
        kind: AnchorKind,
        urn: &DevUrn,
        secret: &Key256,
        source: &str,
    ) -> Result<(Fingerprint, bool), StoreError> {
        let fp = Fingerprint::of(kind, secret.as_bytes());
        let secret = SecretBytes::new(secret.as_bytes().to_vec());
        self.with(|s| {
            match s.import_tte_secret(kind, secret, urn.to_string(), source, &[], now_secs()) {
                Ok(_) => Ok((fp, true)),
                Err(AnchorError::Duplicate(_)) => Ok((fp, false)),
                Err(e) => Err(e),
            }
        })
    }

    /// Removes the anchor `fp`.
    fn remove(&self, fp: &Fingerprint) -> Result<(), StoreError> {
        self.with(|s| s.remove(fp).map(drop))
    }

    /// Removes every anchor of `kind` named `urn` except `keep` (all of them if `None`).
    fn remove_named(
        &self,
        kind: AnchorKind,
        urn: &DevUrn,
        keep: Option<&Fingerprint>,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            for stale in s.named(kind, &urn.to_string())? {
                if Some(&stale.fingerprint) != keep {
                    s.remove(&stale.fingerprint)?;
                }
            }
            Ok(())
        })
    }

    /// The secret of `kind` named `urn`, usable for onboarding now.
    fn secret(&self, kind: AnchorKind, urn: &DevUrn) -> Result<Option<Key256>, StoreError> {
        let found = self.with(|s| s.tte_secret_named(kind, &urn.to_string(), now_secs()))?;
        Ok(found.and_then(|(_, s)| {
            <[u8; 32]>::try_from(s.expose())
                .ok()
                .map(Key256::from_bytes)
        }))
    }
}

impl std::fmt::Debug for Anchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Anchors { .. }")
    }
}

/// A Transfer Agent store whose TaSecrets live in the anchor store.
#[derive(Debug)]
pub struct AnchoredTaStore<S> {
    inner: S,
    anchors: Anchors,
    /// Held from the "is the row new?" check to the anchor's last change.
    writes: Mutex<()>,
}

impl<S: TaStore> AnchoredTaStore<S> {
    /// Wraps `inner`, recording and reading TaSecrets in the anchor store at `path` (created,
    /// mode 0600, if missing).
    pub fn open(inner: S, path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            inner,
            anchors: Anchors::open(path)?,
            writes: Mutex::new(()),
        })
    }
}

impl<S: TaStore> TaStore for AnchoredTaStore<S> {
    fn create_device(
        &self,
        urn: &DevUrn,
        otp_hash: &[u8; 32],
        ta_secret: &Key256,
        now: i64,
    ) -> Result<Created, StoreError> {
        let _writes = hold(&self.writes);
        if self.inner.device_state(urn)?.is_some() {
            // Registered already: a retry (or a conflict). Its anchor, or an operator's removal
            // of it, stands.
            return self.inner.create_device(urn, otp_hash, ta_secret, now);
        }
        let kind = AnchorKind::TteTaSecret;
        let (fp, fresh) = self.anchors.record(
            kind,
            urn,
            ta_secret,
            "registered by the manufacturer at the Transfer Agent",
        )?;
        let created = self.inner.create_device(urn, otp_hash, ta_secret, now)?;
        match created {
            Created::New => self.anchors.remove_named(kind, urn, Some(&fp))?,
            // Registered meanwhile by another process on the same database.
            Created::Exists if fresh => self.anchors.remove(&fp)?,
            Created::Exists => {}
        }
        Ok(created)
    }

    fn device_state(&self, urn: &DevUrn) -> Result<Option<TaDeviceState>, StoreError> {
        self.inner.device_state(urn)
    }

    fn bind(
        &self,
        urns: &[DevUrn],
        otp_ok: &(dyn Fn(&DevUrn, &[u8]) -> bool + Sync),
        conturl: &str,
        now: i64,
    ) -> Result<BindOutcome, StoreError> {
        self.inner.bind(urns, otp_ok, conturl, now)
    }

    /// The TaSecret comes from the anchor store: no usable anchor, no answer for the device.
    fn fetch(&self, urn: &DevUrn) -> Result<Option<(Key256, Option<String>)>, StoreError> {
        let Some((_, conturl)) = self.inner.fetch(urn)? else {
            return Ok(None);
        };
        Ok(self
            .anchors
            .secret(AnchorKind::TteTaSecret, urn)?
            .map(|k| (k, conturl)))
    }
}

/// A Controller store whose DevSecrets live in the anchor store.
#[derive(Debug)]
pub struct AnchoredControllerStore<S> {
    inner: S,
    anchors: Anchors,
    /// Held from the "is the row new?" check to the anchor's last change.
    writes: Mutex<()>,
}

impl<S: ControllerStore> AnchoredControllerStore<S> {
    /// Wraps `inner`, recording and reading DevSecrets in the anchor store at `path` (created,
    /// mode 0600, if missing).
    pub fn open(inner: S, path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            inner,
            anchors: Anchors::open(path)?,
            writes: Mutex::new(()),
        })
    }
}

impl<S: ControllerStore> ControllerStore for AnchoredControllerStore<S> {
    fn add_device(
        &self,
        urn: &DevUrn,
        dev_secret: &Key256,
        label: Option<&str>,
        now: i64,
    ) -> Result<Added, StoreError> {
        let _writes = hold(&self.writes);
        if self.inner.device_key(urn)?.is_some() {
            // Known already: a retry (Same) or another secret (Conflict). Its anchor, or an
            // operator's removal of it, stands.
            return self.inner.add_device(urn, dev_secret, label, now);
        }
        let kind = AnchorKind::TteDevSecret;
        let (fp, fresh) = self.anchors.record(
            kind,
            urn,
            dev_secret,
            "added by the introducer at this Controller",
        )?;
        let added = self.inner.add_device(urn, dev_secret, label, now)?;
        match added {
            Added::New => self.anchors.remove_named(kind, urn, Some(&fp))?,
            Added::Same => {}
            Added::Conflict | Added::Full if fresh => self.anchors.remove(&fp)?,
            Added::Conflict | Added::Full => {}
        }
        Ok(added)
    }

    /// The DevSecret comes from the anchor store: no usable anchor, the device is refused.
    fn device_key(&self, urn: &DevUrn) -> Result<Option<Key256>, StoreError> {
        if self.inner.device_key(urn)?.is_none() {
            return Ok(None);
        }
        self.anchors.secret(AnchorKind::TteDevSecret, urn)
    }

    fn record(&self, urn: &DevUrn, seq: u64, readings: &[Reading]) -> Result<Recorded, StoreError> {
        self.inner.record(urn, seq, readings)
    }

    fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError> {
        self.inner.devices()
    }

    fn readings(&self, urn: &DevUrn, limit: u32) -> Result<Option<Vec<StoredReading>>, StoreError> {
        self.inner.readings(urn, limit)
    }

    /// Also removes the device's DevSecret anchors: a later add records the new secret, and
    /// lookups (first match by name) must not find the old one. The anchors go first: a crash
    /// between the two steps then leaves a device row without a secret (refused, and removed
    /// by the next try), never an old secret beside a re-added device's new one.
    fn remove_device(&self, urn: &DevUrn) -> Result<bool, StoreError> {
        let _writes = hold(&self.writes);
        self.anchors
            .remove_named(AnchorKind::TteDevSecret, urn, None)?;
        self.inner.remove_device(urn)
    }
}
