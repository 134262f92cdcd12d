//! Sans-IO XTT (Xaptum Trusted Transit).
//!
//! This crate opens no sockets and files, reads no clock and owns no global random number
//! generator: bytes, the current time ([`UnixTime`]) and randomness (`&mut dyn CryptoRngCore`)
//! come in as arguments, and bytes to send come out. The async drivers and the `xtt` command are
//! built on top of it.
//!
//! Identity provisioning is byte-compatible with the deployed C library (xaptum/xtt v0.12.0) for
//! all four suites, including its deviations from the draft; [`c_deviations`] explains each one
//! and its security consequence.
//!
//! # Client
//!
//! ```text
//! ClientHandshake::start(config, suite, requested_id, rng) -> (ExpectServerAttest, ClientInit bytes)
//! ExpectServerAttest::handle_server_attest(bytes, rng)     -> (ExpectServerFinished, ClientAttest bytes)
//! ExpectServerFinished::handle_server_finished(bytes)      -> ProvisionedIdentity
//! ```
//!
//! The application supplies a [`cert::RootStore`] and a [`daa::DaaSigner`] in
//! [`client::ClientConfig`]. RNG draws follow C's order (X25519 private key 32, long-term key 32,
//! signing nonce 32, then 32 bytes hedging the RFC 6979 long-term signature, then the DAA
//! signer's draws), so a recorded C RNG stream replays.
//!
//! # Server
//!
//! ```text
//! Server::handle_client_init(bytes, now, rng)  -> ServerInitAndAttest bytes   (no state kept)
//! Server::handle_client_attest(bytes, now)     -> AttestedClient              (cookie, AEAD, ECDSA; no DAA)
//! AttestedClient::verify_group(&dyn DaaVerifier, rng) -> VerifiedClient       (or with_verified_pseudonym)
//! VerifiedClient::finish(client_id)            -> (ServerFinished bytes, ProvisionedClient)
//! ```
//!
//! [`server::Server`] is `Sync` and keeps no per-client state between its two calls: see
//! [`cookie`] for the stateless cookie, its rotation and the [`cookie::ReplayGuard`]. The
//! application implements [`daa::DaaVerifier`] (per group), optionally
//! [`server::IdentityAuthority`], and [`cookie::ReplayGuard`] if the in-memory one does not fit.
//!
//! # Sessions and records
//!
//! After provisioning, a device opens sessions with the same first two messages and a session
//! ClientAttest (no DAA work on either side), then exchanges records bound to a session id rather
//! than a connection: see [`session`] (handshake, and the decisions taken where the session spec
//! is silent), [`record`], [`replay_window`] and [`session_table`] (the server's sharded table).
//!
//! # Errors
//!
//! Every step returns [`Error`]; [`Error::alert_bytes`] gives the 4-byte Error message to send
//! (none when the peer itself sent Error). Decryption and signature failures are opaque on the
//! wire: the Error message carries no code.
//!
//! # Modules
//!
//! [`codec`] (reader, header, [`codec::decode_header`] for stream drivers), [`msgs`] (one type
//! per message, including the session/record headers), [`suite`], [`key_schedule`],
//! [`transcript`], [`cert`], [`longterm`], [`identity`], [`cookie`], [`client`], [`server`],
//! [`error`], [`daa`], [`session`], [`record`], [`replay_window`], [`session_table`],
//! [`handshake_cache`] (optional: saves the stateless rebuild at ClientAttest, answers
//! retransmitted session flights). All primitive calls live in one private `crypto` module so that another
//! backend can be swapped in.
//!
//! Items whose names end in `_for_testing_only` are hidden test hooks (fixed ECDSA nonces, raw
//! keys); they must not be used in production.
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
#[doc(hidden)]
pub mod crypto_floor;
pub mod daa;
pub mod error;
pub mod handshake_cache;
pub mod identity;
pub mod key_schedule;
pub mod longterm;
pub mod msgs;
pub mod record;
mod record_cipher;
pub mod replay_window;
pub mod server;
pub mod session;
pub mod session_table;
pub mod suite;
pub mod transcript;

pub use error::Error;
pub use identity::ClientId;
pub use suite::SuiteSpec;

/// Seconds since the Unix epoch, supplied by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);
