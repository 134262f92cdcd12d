//! A small, complete demo installation with fresh keys, so the trust cycle can be looked at
//! without a real deployment (`xtt anchors demo`):
//!
//! * manufacturer → DAA group, update key 2025 (rotated to 2026), update key 2026
//! * XTT root → XTT server (by its signature), TTE controller
//! * TTE controller → TaSecret → DevSecret
//! * XTT server and DAA group → a device identity provisioned by XTT
//! * a TLS certificate authority for the relay's and Transfer Agent's HTTPS (self-signed)
//!
//! Every key is generated here and thrown away: the store ends up with public halves (and two
//! random TTE secrets) only.

use rand_core::CryptoRngCore;
use xtt_proto::cert::{RootCertificate, RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::longterm::LongtermKeyPair;

use crate::anchor::{AnchorKind, Fingerprint, Provenance, SecretBytes, UnixSeconds};
use crate::error::AnchorError;
use crate::material;
use crate::store::{AnchorStore, Backend, NewAnchor};
use crate::update::UpdateSigningKey;

/// The vendor id the demo's update keys may sign for.
pub const DEMO_VENDOR_ID: [u8; 16] = [0xac; 16];
/// The class id the demo's update keys may sign for.
pub const DEMO_CLASS_ID: [u8; 16] = [0x5e; 16];

/// Grace period of the demo's update-key rotation.
pub const DEMO_ROTATION_WINDOW: u64 = 30 * 86_400;

fn generated(kind: AnchorKind, bytes: Vec<u8>, name: &str) -> NewAnchor {
    NewAnchor::public(kind, bytes, "")
        .named(name)
        .with_provenance(Provenance::Generated {
            source: "xtt anchors demo".into(),
        })
}

/// Fills `store` with the demo installation; returns the fingerprints in creation order.
pub fn build<B: Backend>(
    store: &mut AnchorStore<B>,
    rng: &mut dyn CryptoRngCore,
    now: UnixSeconds,
) -> Result<Vec<Fingerprint>, AnchorError> {
    let mut fps = Vec::new();
    let p256 = |rng: &mut dyn CryptoRngCore| UpdateSigningKey::generate(rng).public_sec1();

    let m = store.import(
        generated(AnchorKind::Manufacturer, p256(rng), "Acme manufacturer"),
        now,
    )?;
    fps.push(m);

    let issuer = xtt_ecdaa::Issuer::generate(rng);
    let group =
        material::daa_group_material(&issuer.group_public_key().to_bytes(), b"acme-sensors")?;
    let g = store.import(
        generated(AnchorKind::DaaGroup, group, "Acme sensors group").vouched_by(m),
        now,
    )?;
    fps.push(g);

    let u1 = store.import(
        generated(AnchorKind::UpdateKey, p256(rng), "Acme firmware 2025")
            .vouched_by(m)
            .may_sign_for(DEMO_VENDOR_ID, DEMO_CLASS_ID),
        now,
    )?;
    fps.push(u1);

    let root_key = LongtermKeyPair::generate(rng);
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let root = RootCertificate {
        id: RootId(id),
        public_key: *root_key.public_key(),
    };
    let r = store.import(
        generated(AnchorKind::XttRoot, root.encode().to_vec(), "Operator root"),
        now,
    )?;
    fps.push(r);

    let server_key = LongtermKeyPair::generate(rng);
    let cert = ServerCertificate::issue(
        &DEFAULT_RESERVED,
        &root.id,
        server_key.public_key(),
        &root_key,
    )
    .map_err(|e| AnchorError::InvalidMaterial {
        kind: AnchorKind::XttServer,
        reason: e.to_string(),
    })?;
    // Linked to the root automatically: the root's signature on it verifies.
    let s = store.import(
        generated(
            AnchorKind::XttServer,
            cert.as_bytes().to_vec(),
            "xtt.example.net",
        ),
        now,
    )?;
    fps.push(s);

    let c = store.import(
        generated(AnchorKind::Controller, p256(rng), "TTE controller").vouched_by(r),
        now,
    )?;
    fps.push(c);
    let mut secret = vec![0u8; 32];
    rng.fill_bytes(&mut secret);
    let t = store.import_tte_secret(
        AnchorKind::TteTaSecret,
        SecretBytes::new(secret),
        "urn:tte:ta:demo",
        "xtt anchors demo",
        &[c],
        now,
    )?;
    fps.push(t);
    let mut secret = vec![0u8; 32];
    rng.fill_bytes(&mut secret);
    let d = store.import_tte_secret(
        AnchorKind::TteDevSecret,
        SecretBytes::new(secret),
        "urn:tte:dev:demo-0001",
        "xtt anchors demo",
        &[t],
        now,
    )?;
    fps.push(d);

    let device_key = LongtermKeyPair::generate(rng);
    let mut client_id = xtt_proto::ClientId([0; 16]);
    rng.fill_bytes(&mut client_id.0);
    let i = store.record_xtt_identity(
        &client_id,
        device_key.public_key(),
        &[s, g],
        "xtt anchors demo",
        now,
    )?;
    fps.push(i);

    let u2 = store.rotate(
        &u1,
        generated(AnchorKind::UpdateKey, p256(rng), "Acme firmware 2026").vouched_by(m),
        DEMO_ROTATION_WINDOW,
        now,
    )?;
    fps.push(u2);

    let tls = store.import(
        generated(AnchorKind::TlsRoot, demo_tls_ca(rng, now)?, "Relay CA"),
        now,
    )?;
    fps.push(tls);
    Ok(fps)
}

/// A self-signed P-256 CA certificate (ten years from `now`), DER.
fn demo_tls_ca(rng: &mut dyn CryptoRngCore, now: UnixSeconds) -> Result<Vec<u8>, AnchorError> {
    use core::str::FromStr as _;
    use p256::pkcs8::EncodePublicKey as _;
    use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
    use x509_cert::der::{Decode as _, Encode as _};

    let bad = |e: String| AnchorError::InvalidMaterial {
        kind: AnchorKind::TlsRoot,
        reason: format!("demo CA: {e}"),
    };
    let key = p256::ecdsa::SigningKey::random(&mut &mut *rng);
    let spki_der = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| bad(e.to_string()))?;
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let at = |secs: u64| {
        x509_cert::time::Time::try_from(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .map_err(|e| bad(e.to_string()))
    };
    let validity = x509_cert::time::Validity {
        not_before: at(now)?,
        not_after: at(now + 10 * 365 * 86_400)?,
    };
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    serial[0] &= 0x7f;
    let serial =
        x509_cert::serial_number::SerialNumber::new(&serial).map_err(|e| bad(e.to_string()))?;
    let subject =
        x509_cert::name::Name::from_str("CN=Demo relay CA").map_err(|e| bad(e.to_string()))?;
    let builder = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &key)
        .map_err(|e| bad(e.to_string()))?;
    builder
        .build::<p256::ecdsa::DerSignature>()
        .map_err(|e| bad(e.to_string()))?
        .to_der()
        .map_err(|e| bad(e.to_string()))
}
