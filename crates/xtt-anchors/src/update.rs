//! Signed software updates against the store: the vendor signs with a key whose public half is
//! an `update-key` anchor; the device accepts an envelope only if an update anchor valid now
//! signed it, it targets this vendor, class and component, its sequence number is newer than the last one
//! accepted for the component (kept in the store, compare-and-set in one transaction), and the
//! image has the manifest's size and digest.
//!
//! Each update key signs only for the vendor and class ids of its scopes
//! ([`crate::store::UpdateScope`]): a manifest is checked only against the keys whose scope
//! covers it, so one vendor's key cannot sign (and record a high sequence number) for another
//! vendor's devices in a store that trusts several vendors' keys. A key without any scope (e.g.
//! stored before scopes existed) signs nothing.
//!
//! Sequence numbers are kept per component (vendor id, class id, component id), not per key:
//! rotating the update key must not reset rollback protection.

use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::anchor::{AnchorKind, Fingerprint, Roles, UnixSeconds};
use crate::error::{AnchorError, UpdateError};
use crate::store::{AnchorStore, Backend, ComponentKey};
use crate::suit::{Envelope, Manifest};

/// What a device accepts updates for: manifests for other vendors, classes or components are
/// refused. The component matters as much as the others: sequence numbers are kept per
/// component, so an envelope for another component of the same vendor and class (an old one,
/// or a bootloader offered as firmware) would otherwise pass the rollback check with that
/// component's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateTarget<'a> {
    /// The vendor id the device accepts.
    pub vendor_id: [u8; 16],
    /// The class id the device accepts.
    pub class_id: [u8; 16],
    /// The component the device installs: the manifest's component identifier must be exactly
    /// this one part (what `xtt update sign --component` writes).
    pub component: &'a [u8],
}

/// A component identifier as text, for messages.
fn component_text(parts: &[Vec<u8>]) -> String {
    let parts: Vec<String> = parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    parts.join("/")
}

/// An accepted update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The authenticated manifest.
    pub manifest: Manifest,
    /// The update anchor whose signature verified.
    pub signer: Fingerprint,
    /// The sequence number accepted before this one.
    pub previous_sequence: Option<u64>,
    /// Whether the new sequence number was recorded (false for a dry run).
    pub recorded: bool,
}

/// The rollback-protection key of a manifest's component.
pub fn component_key(m: &Manifest) -> ComponentKey {
    let mut k = Vec::with_capacity(40);
    k.extend_from_slice(&m.vendor_id);
    k.extend_from_slice(&m.class_id);
    for part in &m.component_id {
        k.extend_from_slice(&(part.len() as u64).to_be_bytes());
        k.extend_from_slice(part);
    }
    ComponentKey(k)
}

/// The update-key fingerprint of a verifying key (what `kid` carries).
pub fn update_key_fingerprint(key: &VerifyingKey) -> Fingerprint {
    Fingerprint::of(
        AnchorKind::UpdateKey,
        key.to_encoded_point(false).as_bytes(),
    )
}

/// Device side, before the image is at hand (e.g. before downloading it): checks the
/// envelope's signature against the update anchors valid at `now`, its target and its sequence
/// number. Records nothing; [`verify_update`] must still be called with the image.
pub fn precheck_envelope<B: Backend>(
    store: &AnchorStore<B>,
    envelope: &[u8],
    device: &UpdateTarget<'_>,
    now: UnixSeconds,
) -> Result<Accepted, UpdateError> {
    let env = Envelope::decode(envelope)?;
    let claimed = env.unverified_manifest();
    let scopes = store.update_scopes()?;
    let (mut anchors, others): (Vec<_>, Vec<_>) = store
        .usable(AnchorKind::UpdateKey, Roles::UPDATE, now)?
        .into_iter()
        .partition(|a| {
            scopes.iter().any(|s| {
                s.key == a.fingerprint
                    && s.vendor_id == claimed.vendor_id
                    && s.class_id == claimed.class_id
            })
        });
    // The kid is only a hint (unauthenticated as far as choice goes): try the anchor it names
    // first, then every other one, so a wrong kid costs time but never a refusal.
    anchors.sort_by_key(|a| a.fingerprint.0.as_slice() != env.key_id());
    let mut signer = None;
    for a in &anchors {
        let Some(bytes) = a.public_material() else {
            continue;
        };
        let key = VerifyingKey::from_sec1_bytes(bytes).map_err(|_| {
            AnchorError::Corrupt(format!("update key {} is not a P-256 key", a.fingerprint))
        })?;
        if env.verify_signature(&key) {
            signer = Some(a.fingerprint);
            break;
        }
    }
    let Some(signer) = signer else {
        // Only to say why: a valid key outside its scope signed it.
        for a in &others {
            let key = a.public_material().map(VerifyingKey::from_sec1_bytes);
            if matches!(key, Some(Ok(k)) if env.verify_signature(&k)) {
                return Err(UpdateError::SignerNotAllowed {
                    signer: a.fingerprint,
                    vendor_id: hex::encode(claimed.vendor_id),
                    class_id: hex::encode(claimed.class_id),
                });
            }
        }
        return Err(UpdateError::UnknownSigner {
            tried: anchors.len(),
        });
    };
    let m = env.unverified_manifest().clone();
    for (what, found, expected) in [
        ("vendor id", m.vendor_id, device.vendor_id),
        ("class id", m.class_id, device.class_id),
    ] {
        if found != expected {
            return Err(UpdateError::WrongTarget {
                what,
                found: hex::encode(found),
                expected: hex::encode(expected),
            });
        }
    }
    if !matches!(m.component_id.as_slice(), [one] if one.as_slice() == device.component) {
        return Err(UpdateError::WrongTarget {
            what: "component",
            found: component_text(&m.component_id),
            expected: String::from_utf8_lossy(device.component).into_owned(),
        });
    }
    let previous = store.sequence(&component_key(&m))?;
    if let Some(current) = previous {
        if m.sequence_number <= current {
            return Err(UpdateError::Rollback {
                offered: m.sequence_number,
                current,
            });
        }
    }
    Ok(Accepted {
        manifest: m,
        signer,
        previous_sequence: previous,
        recorded: false,
    })
}

/// Device side: verifies `envelope` for `image` and, unless `dry_run`, records its sequence
/// number so that this and every older manifest is refused from now on.
pub fn verify_update<B: Backend>(
    store: &mut AnchorStore<B>,
    envelope: &[u8],
    image: &[u8],
    device: &UpdateTarget<'_>,
    now: UnixSeconds,
    dry_run: bool,
) -> Result<Accepted, UpdateError> {
    let Accepted {
        manifest: m,
        signer,
        previous_sequence: previous,
        ..
    } = precheck_envelope(store, envelope, device, now)?;
    let component = component_key(&m);
    if image.len() as u64 != m.image_size {
        return Err(UpdateError::ImageSizeMismatch {
            expected: m.image_size,
            actual: image.len() as u64,
        });
    }
    let actual: [u8; 32] = Sha256::digest(image).into();
    if !bool::from(actual.ct_eq(&m.image_digest)) {
        return Err(UpdateError::ImageDigestMismatch {
            expected: hex::encode(m.image_digest),
            actual: hex::encode(actual),
        });
    }
    if !dry_run {
        store
            .advance_sequence(&component, m.sequence_number, &signer, now)
            .map_err(|e| match e {
                AnchorError::Rollback { offered, current } => {
                    UpdateError::Rollback { offered, current }
                }
                other => UpdateError::Store(other),
            })?;
    }
    Ok(Accepted {
        manifest: m,
        signer,
        previous_sequence: previous,
        recorded: !dry_run,
    })
}

/// A vendor's update-signing key pair.
#[derive(Clone)]
pub struct UpdateSigningKey(SigningKey);

impl core::fmt::Debug for UpdateSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UpdateSigningKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl UpdateSigningKey {
    /// A fresh key.
    pub fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        UpdateSigningKey(SigningKey::random(&mut &mut *rng))
    }

    /// From a PKCS#8 PEM (`PRIVATE KEY`) or SEC1 PEM (`EC PRIVATE KEY`) file.
    pub fn from_pem(pem: &str) -> Result<Self, UpdateError> {
        if let Ok(k) = SigningKey::from_pkcs8_pem(pem) {
            return Ok(UpdateSigningKey(k));
        }
        p256::SecretKey::from_sec1_pem(pem)
            .map(|k| UpdateSigningKey(SigningKey::from(k)))
            .map_err(|_| {
                UpdateError::Signing("not a P-256 private key in PKCS#8 or SEC1 PEM form".into())
            })
    }

    /// PKCS#8 PEM, zeroized when dropped.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, UpdateError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| UpdateError::Signing(e.to_string()))
    }

    /// The public key as a PEM `PUBLIC KEY` (what `xtt anchors import update-key` reads).
    pub fn public_pem(&self) -> Result<String, UpdateError> {
        self.0
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| UpdateError::Signing(e.to_string()))
    }

    /// The 65-byte SEC1 public key (the anchor material).
    pub fn public_sec1(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// The fingerprint its anchor has in any store.
    pub fn fingerprint(&self) -> Fingerprint {
        update_key_fingerprint(self.0.verifying_key())
    }

    /// Vendor side: signs a manifest into an envelope (kid = this key's anchor fingerprint).
    pub fn sign(&self, manifest: &Manifest) -> Result<Vec<u8>, UpdateError> {
        crate::suit::sign_envelope(manifest, &self.0, &self.fingerprint().0)
    }
}
