//! Transitive Trust Enrollment services and tools, on top of the sans-IO [`tte`] crate.
//!
//! - [`ta`]: the Transfer Agent (axum), with the introducer's [`setup_page`].
//! - [`controller`]: the Controller (axum), CORS for the setup page, replay-checked sensor updates.
//! - [`store`]: storage traits and their SQLite implementation; [`anchored`]: TaSecrets and
//!   DevSecrets kept in the trust-anchor store (`--anchors`).
//! - [`device`]: the device client, and the [`device::XttHandover`] seam to XTT provisioning;
//!   [`xtt_enroll`]: the hand-over itself (where a device's DAA membership and XTT root come
//!   from, where its identity goes).
//! - [`manufacture`], [`bulk`]: manufacturer and introducer tooling; [`qr`]: QR rendering.
//! - [`cli`]: the `tte` subcommands for the project CLI (`xtt tte …`).
//!
//! Protocol decisions and sources are in the [`tte`] crate docs. Production deployment: both
//! services speak plain HTTP and belong behind a TLS terminator; QR codes must carry `https://`.

pub mod anchored;
pub mod bulk;
pub mod cli;
pub mod controller;
pub mod device;
pub mod files;
pub mod http;
pub mod manufacture;
pub mod qr;
pub mod setup_page;
pub mod store;
pub mod ta;
pub mod xtt_enroll;
