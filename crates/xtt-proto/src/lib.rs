//! Sans-IO XTT (Xaptum Trusted Transit).
//!
//! This crate opens no sockets and files, reads no clock and owns no global random number
//! generator: bytes, the current time and randomness come in as arguments, and bytes to send come
//! out. The async drivers and the `xtt` command are built on top of it.
//!
//! Identity provisioning is byte-compatible with the deployed C library (xaptum/xtt v0.12.0),
//! including its deviations from the draft (see [`c_deviations`]), for all four suites.
//!
//! * Client: [`client::ClientHandshake::start`] → [`client::ExpectServerAttest`] →
//!   [`client::ExpectServerFinished`] → [`client::ProvisionedIdentity`].
//! * Server: a shared, stateless [`server::Server`] → [`server::AttestedClient`] →
//!   [`server::VerifiedClient`] → [`server::ProvisionedClient`].
//! * Every failure is an [`Error`]; [`Error::alert_bytes`] gives the 4-byte Error message to send.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod c_deviations;
pub mod cert;
pub mod client;
pub mod codec;
pub mod cookie;
mod crypto;
pub mod daa;
pub mod error;
pub mod identity;
pub mod key_schedule;
pub mod longterm;
pub mod msgs;
pub mod server;
pub mod suite;
pub mod transcript;

pub use error::Error;
pub use identity::ClientId;
pub use suite::SuiteSpec;

/// Seconds since the Unix epoch, supplied by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);
