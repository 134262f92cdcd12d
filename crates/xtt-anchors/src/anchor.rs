//! What an anchor is: its kind, the roles it serves, its fingerprint, validity and provenance,
//! and its key material (public bytes, or a secret that is never printed).

use core::fmt;
use core::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::AnchorError;

/// Seconds since the Unix epoch. Every time-dependent call takes it as an argument, so tests
/// (and rotation windows) move time without sleeping.
pub type UnixSeconds = u64;

/// The kinds of anchor (and anchored identity) an installation holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnchorKind {
    /// An XTT root certificate, `root_id(16) ‖ P-256 key(65)`: devices trust servers it signs.
    XttRoot,
    /// An XTT server certificate (169 bytes), vouched for by the root whose signature it carries.
    XttServer,
    /// A DAA group public key (258 bytes) with its basename: servers trust the group's members.
    DaaGroup,
    /// A P-256 key that signs software-update manifests.
    UpdateKey,
    /// A manufacturer's P-256 key, which vouches for groups, update keys and identities.
    Manufacturer,
    /// A TTE controller's P-256 key (the party that enrols devices transitively).
    Controller,
    /// A TTE TaSecret (symmetric, secret).
    TteTaSecret,
    /// A TTE DevSecret (symmetric, secret).
    TteDevSecret,
    /// A device identity provisioned by XTT: `ClientID(16) ‖ long-term P-256 key(65)`.
    DeviceIdentity,
    /// A TLS (X.509) certificate authority, DER: HTTPS clients (relay, TTE devices) accept
    /// servers it certifies, in addition to the platform's roots.
    TlsRoot,
}

impl AnchorKind {
    /// Every kind, in display order.
    pub const ALL: [AnchorKind; 10] = [
        AnchorKind::Manufacturer,
        AnchorKind::XttRoot,
        AnchorKind::XttServer,
        AnchorKind::DaaGroup,
        AnchorKind::Controller,
        AnchorKind::TteTaSecret,
        AnchorKind::TteDevSecret,
        AnchorKind::UpdateKey,
        AnchorKind::DeviceIdentity,
        AnchorKind::TlsRoot,
    ];

    /// The stable name used in the database, on the command line and in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            AnchorKind::XttRoot => "xtt-root",
            AnchorKind::XttServer => "xtt-server",
            AnchorKind::DaaGroup => "daa-group",
            AnchorKind::UpdateKey => "update-key",
            AnchorKind::Manufacturer => "manufacturer",
            AnchorKind::Controller => "controller",
            AnchorKind::TteTaSecret => "tte-ta-secret",
            AnchorKind::TteDevSecret => "tte-dev-secret",
            AnchorKind::DeviceIdentity => "device-identity",
            AnchorKind::TlsRoot => "tls-root",
        }
    }

    /// Whether the material is secret (stored apart, never printed, zeroized in memory).
    pub fn is_secret(self) -> bool {
        matches!(self, AnchorKind::TteTaSecret | AnchorKind::TteDevSecret)
    }

    /// The roles an anchor of this kind serves unless the operator says otherwise.
    pub fn default_roles(self) -> Roles {
        match self {
            AnchorKind::XttRoot | AnchorKind::XttServer => Roles::TRANSPORT | Roles::ONBOARDING,
            AnchorKind::DaaGroup => Roles::ATTESTATION | Roles::ONBOARDING,
            AnchorKind::UpdateKey => Roles::UPDATE,
            AnchorKind::Manufacturer => Roles::ATTESTATION | Roles::UPDATE,
            AnchorKind::Controller | AnchorKind::TteTaSecret | AnchorKind::TteDevSecret => {
                Roles::ONBOARDING
            }
            AnchorKind::DeviceIdentity => Roles::TRANSPORT | Roles::ATTESTATION,
            AnchorKind::TlsRoot => Roles::TRANSPORT,
        }
    }

    /// What an attacker holding this anchor's private half (or the secret itself) could do.
    pub fn compromise_means(self) -> &'static str {
        match self {
            AnchorKind::XttRoot => "certify rogue XTT servers that devices would accept",
            AnchorKind::XttServer => "impersonate this server to devices",
            AnchorKind::DaaGroup => "enrol rogue members that servers would provision",
            AnchorKind::UpdateKey => "sign software updates that devices would install",
            AnchorKind::Manufacturer => "vouch for rogue groups, update keys and identities",
            AnchorKind::Controller => "enrol rogue devices through TTE",
            AnchorKind::TteTaSecret => "derive or forge TTE enrolment secrets",
            AnchorKind::TteDevSecret => "impersonate this device during TTE enrolment",
            AnchorKind::DeviceIdentity => "impersonate this device",
            AnchorKind::TlsRoot => {
                "certify rogue HTTPS servers (relay, Transfer Agent) that clients would accept"
            }
        }
    }
}

impl fmt::Display for AnchorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AnchorKind {
    type Err = AnchorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AnchorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| AnchorError::UnknownKind(s.to_string()))
    }
}

/// The purposes an anchor serves, as a small bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(u8);

impl Roles {
    /// Onboarding: identity provisioning and TTE enrolment.
    pub const ONBOARDING: Roles = Roles(1);
    /// Remote attestation: who may prove group membership.
    pub const ATTESTATION: Roles = Roles(2);
    /// Software update: who may sign manifests.
    pub const UPDATE: Roles = Roles(4);
    /// Transport: who a device accepts as its server for sessions.
    pub const TRANSPORT: Roles = Roles(8);
    const NAMED: [(Roles, &'static str); 4] = [
        (Roles::ONBOARDING, "onboarding"),
        (Roles::ATTESTATION, "attestation"),
        (Roles::UPDATE, "update"),
        (Roles::TRANSPORT, "transport"),
    ];

    /// The raw bits (database column).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits; unknown bits are an error so a newer database is not misread.
    pub fn from_bits(bits: u8) -> Result<Self, AnchorError> {
        if bits & !0x0f != 0 {
            return Err(AnchorError::UnknownRole(format!("bits {bits:#04x}")));
        }
        Ok(Roles(bits))
    }

    /// Whether every role in `other` is in `self`.
    pub fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether no role is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::ops::BitOr for Roles {
    type Output = Roles;
    fn bitor(self, rhs: Roles) -> Roles {
        Roles(self.0 | rhs.0)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (role, name) in Roles::NAMED {
            if self.contains(role) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Roles({self})")
    }
}

impl FromStr for Roles {
    type Err = AnchorError;
    /// A comma-separated list such as `transport,onboarding`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut roles = Roles::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (role, _) = Roles::NAMED
                .into_iter()
                .find(|(_, name)| *name == part)
                .ok_or_else(|| AnchorError::UnknownRole(part.to_string()))?;
            roles = roles | role;
        }
        Ok(roles)
    }
}

/// SHA-256 over the kind's name and the anchor's material: names an anchor everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Domain-separated by kind, so the same bytes imported as two kinds are two anchors.
    pub fn of(kind: AnchorKind, material: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"xtt-anchors fingerprint v1\0");
        h.update(kind.as_str().as_bytes());
        h.update([0]);
        h.update(material);
        Fingerprint(h.finalize().into())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 16 hex characters, for tables and pictures.
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(16);
        s
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

/// When an anchor may be used: `not_before ≤ now < not_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// First second of validity.
    pub not_before: UnixSeconds,
    /// First second of invalidity, if the anchor expires.
    pub not_after: Option<UnixSeconds>,
}

impl Validity {
    /// Valid from `now` on, without end.
    pub fn from(now: UnixSeconds) -> Self {
        Validity {
            not_before: now,
            not_after: None,
        }
    }

    /// Whether the anchor may be used at `now`.
    pub fn contains(&self, now: UnixSeconds) -> bool {
        now >= self.not_before && self.not_after.is_none_or(|end| now < end)
    }

    /// Where `now` falls.
    pub fn status(&self, now: UnixSeconds) -> Status {
        if now < self.not_before {
            Status::NotYetValid
        } else if self.not_after.is_some_and(|end| now >= end) {
            Status::Expired
        } else if self.not_after.is_some() {
            Status::ValidUntilEnd
        } else {
            Status::Valid
        }
    }
}

/// An anchor's state at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Its window has not opened yet.
    NotYetValid,
    /// Valid without end.
    Valid,
    /// Valid, but with an end (e.g. an anchor being rotated out).
    ValidUntilEnd,
    /// Its window has closed.
    Expired,
}

impl Status {
    /// Whether the anchor may be used.
    pub fn is_usable(self) -> bool {
        matches!(self, Status::Valid | Status::ValidUntilEnd)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::NotYetValid => "not yet valid",
            Status::Valid => "valid",
            Status::ValidUntilEnd => "valid (ends)",
            Status::Expired => "expired",
        })
    }
}

/// How an anchor entered the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Imported by an operator, from the named file.
    ImportedByHand {
        /// Where it came from (a path, or a note).
        source: String,
    },
    /// Delivered by a TTE service.
    DeliveredByTte {
        /// Which service or enrolment.
        source: String,
    },
    /// Provisioned by an XTT identity handshake.
    ProvisionedByXtt {
        /// Which server or handshake.
        source: String,
    },
    /// Made on this machine (e.g. `xtt update keygen`, a demo).
    Generated {
        /// By what.
        source: String,
    },
}

impl Provenance {
    /// The tag stored in the database.
    pub fn tag(&self) -> &'static str {
        match self {
            Provenance::ImportedByHand { .. } => "hand",
            Provenance::DeliveredByTte { .. } => "tte",
            Provenance::ProvisionedByXtt { .. } => "xtt",
            Provenance::Generated { .. } => "generated",
        }
    }

    /// The free-text detail.
    pub fn detail(&self) -> &str {
        match self {
            Provenance::ImportedByHand { source }
            | Provenance::DeliveredByTte { source }
            | Provenance::ProvisionedByXtt { source }
            | Provenance::Generated { source } => source,
        }
    }

    /// Rebuilds from the stored tag and detail.
    pub fn from_parts(tag: &str, detail: String) -> Result<Self, AnchorError> {
        Ok(match tag {
            "hand" => Provenance::ImportedByHand { source: detail },
            "tte" => Provenance::DeliveredByTte { source: detail },
            "xtt" => Provenance::ProvisionedByXtt { source: detail },
            "generated" => Provenance::Generated { source: detail },
            other => return Err(AnchorError::UnknownProvenance(other.to_string())),
        })
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Provenance::ImportedByHand { .. } => "imported by hand",
            Provenance::DeliveredByTte { .. } => "delivered by TTE",
            Provenance::ProvisionedByXtt { .. } => "provisioned by XTT",
            Provenance::Generated { .. } => "generated",
        };
        if self.detail().is_empty() {
            f.write_str(what)
        } else {
            write!(f, "{what} ({})", self.detail())
        }
    }
}

/// Secret bytes: zeroized on drop, compared in constant time, never printed.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes` (the vector is wiped when this value drops).
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The secret itself. Named so that every use is easy to find in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SecretBytes {
    /// Constant time in the contents (lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}
impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes, redacted)", self.0.len())
    }
}

/// An anchor's key material.
#[derive(Clone, PartialEq, Eq)]
pub enum Material {
    /// Public bytes (certificates, public keys, group keys).
    Public(Vec<u8>),
    /// A secret (TTE secrets).
    Secret(SecretBytes),
}

impl Material {
    /// The bytes the fingerprint is computed over.
    pub(crate) fn fingerprint_input(&self) -> &[u8] {
        match self {
            Material::Public(b) => b,
            Material::Secret(s) => s.expose(),
        }
    }
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Material::Public(b) => write!(f, "Public({} bytes)", b.len()),
            Material::Secret(s) => s.fmt(f),
        }
    }
}

/// One stored anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Its name everywhere.
    pub fingerprint: Fingerprint,
    /// What it is.
    pub kind: AnchorKind,
    /// A label for people.
    pub name: String,
    /// What it is used for; lookups only return anchors with the role they need.
    pub roles: Roles,
    /// When it may be used.
    pub validity: Validity,
    /// How it got here.
    pub provenance: Provenance,
    /// When it was added.
    pub added_at: UnixSeconds,
    /// Its key material.
    pub material: Material,
}

impl Anchor {
    /// The public bytes, or `None` for a secret.
    pub fn public_material(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Public(b) => Some(b),
            Material::Secret(_) => None,
        }
    }

    /// The secret, or `None` for a public anchor.
    pub fn secret(&self) -> Option<&SecretBytes> {
        match &self.material {
            Material::Public(_) => None,
            Material::Secret(s) => Some(s),
        }
    }

    /// Whether it may be used at `now` for `role`.
    pub fn usable_for(&self, role: Roles, now: UnixSeconds) -> bool {
        self.roles.contains(role) && self.validity.contains(now)
    }
}

/// How two anchors are related.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// `from` vouches for `to` (signed it, issued it, attested it, delivered it).
    Vouches,
    /// `to` replaces `from` (a rotation); both are valid during the window.
    RotatedTo,
}

impl EdgeKind {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Vouches => "vouches",
            EdgeKind::RotatedTo => "rotated-to",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Result<Self, AnchorError> {
        match s {
            "vouches" => Ok(EdgeKind::Vouches),
            "rotated-to" => Ok(EdgeKind::RotatedTo),
            other => Err(AnchorError::UnknownEdge(other.to_string())),
        }
    }
}

/// A directed relation between two stored anchors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// The voucher (or the rotated-out anchor).
    pub from: Fingerprint,
    /// The subject (or the successor).
    pub to: Fingerprint,
    /// Which relation.
    pub kind: EdgeKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print_round_trip() {
        let r: Roles = "transport, update".parse().unwrap();
        assert_eq!(r.to_string(), "update,transport");
        assert_eq!(r.to_string().parse::<Roles>().unwrap(), r);
        assert!("transport,flying".parse::<Roles>().is_err());
        assert!(Roles::from_bits(0x10).is_err());
    }

    #[test]
    fn validity_window_is_half_open() {
        let v = Validity {
            not_before: 10,
            not_after: Some(20),
        };
        assert!(!v.contains(9));
        assert!(v.contains(10));
        assert!(v.contains(19));
        assert!(!v.contains(20));
        assert_eq!(v.status(25), Status::Expired);
    }

    #[test]
    fn fingerprints_are_separated_by_kind() {
        assert_ne!(
            Fingerprint::of(AnchorKind::UpdateKey, b"k"),
            Fingerprint::of(AnchorKind::Manufacturer, b"k")
        );
    }

    #[test]
    fn secret_debug_never_shows_bytes() {
        let s = SecretBytes::new(vec![0xab; 32]);
        let text = format!("{:?}", Material::Secret(s));
        assert!(!text.contains("ab"), "{text}");
        assert!(!text.contains("171"), "{text}");
    }
}
