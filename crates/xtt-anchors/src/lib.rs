//! One store for every trust anchor of an installation, signed software updates, and the trust
//! cycle made visible.
//!
//! Onboarding, remote attestation and software update each need trust anchors, and each can
//! provide anchors for the others (M. Richardson, "Trust relationships and Trust Anchors for
//! Software Updates, Remote Attestation and Onboarding"). Here they live together:
//!
//! | kind | what it anchors | default roles |
//! |---|---|---|
//! | `xtt-root` | a device trusts the XTT servers it certifies | transport, onboarding |
//! | `xtt-server` | a server certificate, vouched for by its root (signature checked on import) | transport, onboarding |
//! | `daa-group` | a server trusts a manufacturer's devices (DAA group key + basename) | attestation, onboarding |
//! | `tte-ta-secret`, `tte-dev-secret` | TTE enrolment secrets (never printed) | onboarding |
//! | `controller` | a TTE controller's key | onboarding |
//! | `update-key` | who may sign software updates, for the vendor and class ids of its scope | update |
//! | `manufacturer` | the key that vouches for groups, update keys, identities | attestation, update |
//! | `device-identity` | an identity XTT provisioned (ClientID + long-term key) | transport, attestation |
//! | `tls-root` | an X.509 CA that HTTPS clients (relay, TTE device) trust besides the platform's | transport |
//!
//! Every anchor has a fingerprint ([`Fingerprint`], SHA-256 over kind and material), a
//! validity window, a provenance (imported by hand, delivered by TTE, provisioned by XTT,
//! generated) and edges saying which anchor vouched for it. Rotation adds the successor and
//! closes the old anchor's window after a grace period: both work during it, only the new one
//! after. Removing an anchor (`xtt anchors remove`, [`AnchorStore::revoke`]) revokes it: its
//! fingerprint is kept, and no import brings it back until an operator unrevokes it. Time is
//! always an argument (`now`): only [`cli`], the binary's edge, reads the clock.
//!
//! # Example
//!
//! ```
//! use rand_core::OsRng;
//! use xtt_anchors::anchor::AnchorKind;
//! use xtt_anchors::suit::Manifest;
//! use xtt_anchors::update::{verify_update, UpdateTarget, UpdateSigningKey};
//! use xtt_anchors::{AnchorStore, NewAnchor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = 1_767_225_600;
//! // Vendor: a signing key, and a signed manifest for an image.
//! let vendor = UpdateSigningKey::generate(&mut OsRng);
//! let image = b"firmware v7";
//! let device = UpdateTarget { vendor_id: [1; 16], class_id: [2; 16], component: b"fw" };
//! let manifest = Manifest::for_image(image, 7, [1; 16], [2; 16], vec![b"fw".to_vec()]);
//! let envelope = vendor.sign(&manifest)?;
//!
//! // Device: the vendor's key is an update anchor in its store, for this vendor and class
//! // (here in memory; a real device uses `AnchorStore::open(path)`).
//! let mut store = AnchorStore::in_memory();
//! let anchor = NewAnchor::public(AnchorKind::UpdateKey, vendor.public_sec1(), "factory")
//!     .may_sign_for([1; 16], [2; 16]);
//! store.import(anchor, now)?;
//! let accepted = verify_update(&mut store, &envelope, image, &device, now, false)?;
//! assert_eq!(accepted.signer, vendor.fingerprint());
//! // The same manifest again is a rollback.
//! assert!(verify_update(&mut store, &envelope, image, &device, now, false).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! * [`anchor`]: the data model. [`material`]: validation and loose-file formats.
//! * [`store`]: [`AnchorStore`] (rules) over a [`store::Backend`] (SQLite file, 0600, one
//!   transaction per change; or memory).
//! * [`seam`]: what the XTT client/server, TTE services and relay call (see there for the
//!   exact lines).
//! * [`delivery`]: the sans-IO pull protocol that carries an update over an XTT session.
//! * [`suit`]: the SUIT subset (CBOR envelope, COSE_Sign1 ES256). [`update`]: signing and
//!   device-side verification with rollback protection kept in the store.
//! * [`graph`]: the trust graph as text, DOT and SVG; impact of a compromised key.
//! * [`bundle`]: export/import of a whole store with its relations (a directory).
//! * [`demo`]: a small complete installation with fresh keys (`xtt anchors demo`).
//! * [`cli`]: `xtt anchors ...` and `xtt update ...` for the `xtt` binary.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod anchor;
pub mod bundle;
pub mod cli;
pub mod delivery;
pub mod demo;
pub mod error;
pub mod fsio;
pub mod graph;
pub mod material;
pub mod seam;
pub mod store;
pub mod suit;
pub mod update;

pub use anchor::{Anchor, AnchorKind, Fingerprint, Provenance, Roles, SecretBytes, Validity};
pub use error::{AnchorError, UpdateError};
pub use store::{AnchorStore, NewAnchor};
