//! Errors: one enum for the store and anchor material, one for signed updates.

use crate::anchor::{AnchorKind, Fingerprint};

impl From<rusqlite::Error> for AnchorError {
    fn from(e: rusqlite::Error) -> Self {
        AnchorError::Database(e)
    }
}

/// What went wrong with the store or an anchor's material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The kind name is not one of ours.
    #[error("unknown anchor kind {0:?} (expected one of: xtt-root, xtt-server, daa-group, update-key, manufacturer, controller, tte-ta-secret, tte-dev-secret, device-identity, tls-root)")]
    UnknownKind(String),
    /// A role name (or stored role bit) is not one of ours.
    #[error("unknown role {0:?} (expected onboarding, attestation, update, transport)")]
    UnknownRole(String),
    /// A stored provenance tag is not one of ours.
    #[error("unknown provenance {0:?}")]
    UnknownProvenance(String),
    /// A stored edge kind is not one of ours.
    #[error("unknown edge kind {0:?}")]
    UnknownEdge(String),
    /// The bytes are not valid material for the kind.
    #[error("not a valid {kind} anchor: {reason}")]
    InvalidMaterial {
        /// The kind being imported.
        kind: AnchorKind,
        /// Why it was refused.
        reason: String,
    },
    /// The anchor is already stored.
    #[error("anchor {0} is already in the store")]
    Duplicate(Fingerprint),
    /// The anchor was revoked (`xtt anchors remove`): importing it again, by any path, is
    /// refused until an operator undoes the revocation. Without this, re-running a migration
    /// or restoring an older bundle would bring a compromised key back, valid without end.
    #[error("anchor {fingerprint} ({kind} {name}) was revoked at {revoked_at} (Unix seconds) and is not imported again; if that revocation was a mistake, undo it with `xtt anchors unrevoke {fingerprint}`, then import it")]
    Revoked {
        /// The revoked fingerprint.
        fingerprint: Fingerprint,
        /// Its kind.
        kind: AnchorKind,
        /// Its name when it was revoked.
        name: String,
        /// When it was revoked.
        revoked_at: u64,
    },
    /// No anchor has this fingerprint (or prefix).
    #[error("no anchor matches {0:?}")]
    NotFound(String),
    /// A fingerprint prefix matches several anchors.
    #[error("{0:?} matches several anchors; give more hex digits")]
    Ambiguous(String),
    /// A fingerprint prefix is too short or not hex.
    #[error("{0:?} is not a fingerprint (at least 8 hex digits)")]
    BadFingerprint(String),
    /// A server certificate is not signed by a root it is tied to: the root it names (its
    /// signature does not verify), or a root said to vouch for it (another root's id, or a
    /// signature that does not verify).
    #[error("the server certificate is not signed by XTT root {root}: it names another root, or its signature does not verify under this one")]
    BadCertificateSignature {
        /// The root it claims.
        root: Fingerprint,
    },
    /// Rotation between anchors of different kinds.
    #[error("cannot rotate a {old} anchor into a {new} anchor")]
    RotationKindMismatch {
        /// The old kind.
        old: AnchorKind,
        /// The new kind.
        new: AnchorKind,
    },
    /// Rotation of an anchor that is not valid now.
    #[error("anchor {0} is not valid now, so there is nothing to rotate")]
    RotationOfInvalidAnchor(Fingerprint),
    /// A restored (bundle) `rotated-to` edge whose old anchor stays valid without end: that is
    /// not a rotation, only a claim of one, and `show`/`graph` would present the old key as
    /// replaced while it still verifies forever.
    #[error("rotated-to edge {from} -> {to} refused: the old anchor {from} has no end of validity (not_after), so both keys would stay valid forever; set its not_after in the bundle (or rotate with `xtt anchors rotate`, which ends the old key's validity) and import again")]
    RotationWithoutEnd {
        /// The rotated-out anchor.
        from: Fingerprint,
        /// Its claimed successor.
        to: Fingerprint,
    },
    /// The validity window ends before it starts.
    #[error("validity window is empty (not-after must be later than not-before)")]
    EmptyValidity,
    /// An anchor may not vouch for itself.
    #[error("an anchor cannot vouch for itself")]
    SelfVouch,
    /// A value does not fit the database's signed 64-bit integers.
    #[error("{0} is too large to store (at most 2^63-1)")]
    TooLarge(u64),
    /// A stored sequence number would go backwards or repeat.
    #[error("sequence number {offered} is not newer than the accepted {current} for this component (rollback refused)")]
    Rollback {
        /// The number on offer.
        offered: u64,
        /// The number already accepted.
        current: u64,
    },
    /// The database reported an error (in the message, not as `source()`, as for `Io`).
    #[error("anchor database: {0}")]
    Database(rusqlite::Error),
    /// A file could not be read or written. The cause is part of the message and deliberately
    /// not the error's `source()`: logs print only the message, and `{:#}` would print it twice.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The database holds something this version cannot read.
    #[error("anchor database is corrupt or from a newer version: {0}")]
    Corrupt(String),
}

/// Why a signed update was refused or could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The bytes are not CBOR, or not the CBOR structure SUIT requires.
    #[error("malformed SUIT envelope: {0}")]
    Malformed(String),
    /// The authentication block is not a well-formed COSE_Sign1.
    #[error("malformed COSE_Sign1 in the authentication wrapper: {0}")]
    Cose(String),
    /// The COSE_Sign1 names an algorithm other than ES256.
    #[error("unsupported signature algorithm {0} (only ES256 is accepted)")]
    UnsupportedAlgorithm(String),
    /// The digest in the authentication wrapper does not match the manifest.
    #[error(
        "the manifest does not match the digest in the authentication wrapper (manifest modified)"
    )]
    ManifestDigestMismatch,
    /// No valid update anchor's signature verifies.
    #[error("signature does not verify under any update anchor valid now ({tried} tried): unknown or untrusted signer")]
    UnknownSigner {
        /// How many anchors were tried.
        tried: usize,
    },
    /// An update anchor valid now signed it, but its scope does not cover the manifest's vendor
    /// and class (or it has no scope at all).
    #[error("signed by update key {signer}, which may not sign for vendor {vendor_id} class {class_id}; if it should, allow it with `xtt anchors scope {signer} --vendor-id {vendor_id} --class-id {class_id}`")]
    SignerNotAllowed {
        /// The key whose signature verified.
        signer: Fingerprint,
        /// The manifest's vendor id (hex).
        vendor_id: String,
        /// The manifest's class id (hex).
        class_id: String,
    },
    /// The manifest is for another vendor, device class or component.
    #[error("manifest is for {what} {found}, this device expects {expected}")]
    WrongTarget {
        /// "vendor id", "class id" or "component".
        what: &'static str,
        /// In the manifest.
        found: String,
        /// Expected by the device.
        expected: String,
    },
    /// The manifest's sequence number is not newer than the one accepted before.
    #[error("rollback refused: manifest sequence number {offered} is not newer than the installed {current}")]
    Rollback {
        /// The manifest's number.
        offered: u64,
        /// The accepted number.
        current: u64,
    },
    /// The manifest's sequence number is above [`crate::suit::MAX_SEQUENCE`] (2^63-1): the store
    /// keeps sequence numbers as SQLite's signed 64-bit integers, so a device would install the
    /// update and then fail to record it, losing rollback protection. Refused when decoding and
    /// when signing, before anything is installed.
    #[error("sequence number {0} is larger than 2^63-1, the most a device can record (it would install the update but never record it, so older updates would install again)")]
    SequenceTooLarge(u64),
    /// The image's digest differs from the manifest's.
    #[error("image digest does not match the manifest (expected {expected}, image has {actual})")]
    ImageDigestMismatch {
        /// From the manifest.
        expected: String,
        /// Of the image.
        actual: String,
    },
    /// The image's size differs from the manifest's.
    #[error("image size {actual} does not match the manifest's {expected}")]
    ImageSizeMismatch {
        /// From the manifest.
        expected: u64,
        /// Of the image.
        actual: u64,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The anchor store failed.
    #[error(transparent)]
    Store(#[from] AnchorError),
}
