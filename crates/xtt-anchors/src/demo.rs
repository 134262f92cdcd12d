//! A small, complete demo installation with fresh keys, so the trust cycle can be looked at
//! without a real deployment (`xtt anchors demo`):
//!
//! * manufacturer → DAA group, update key 2025 (rotated to 2026), update key 2026
//! * XTT root → XTT server (by its signature), TTE controller
//! * TTE controller → TaSecret → DevSecret
//! * XTT server and DAA group → a device identity provisioned by XTT
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
        generated(AnchorKind::UpdateKey, p256(rng), "Acme firmware 2025").vouched_by(m),
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
    Ok(fps)
}
