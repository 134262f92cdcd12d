//! The async side of XTT identity provisioning: the concurrent server, the provisioning client
//! and the load generator, on tokio.
//!
//! # Server
//!
//! ```text
//! let config = ServerConfig::from_toml(text)?;            // or ServerConfig::default()
//! let registry = Arc::new(open_registry(&config)?);        // <data_dir>/registry.sqlite
//! add_group(&*registry, &gpk_bytes, basename)?;            // DAA groups live in the registry
//! let server = XttServer::bind(config, ServerKeys { .. }, registry).await?;
//! server.run(shutdown_signal()).await?;                    // SIGINT/SIGTERM: graceful stop
//! ```
//!
//! [`XttServer`] drives xtt-proto's stateless sans-IO server. Connection tasks only move bytes;
//! the cryptography (cookies, ECDSA, DAA verification, plain or batched) runs on a bounded pool
//! of CPU threads ([`cpu::CpuPool`]); registrations are committed by one writer thread in
//! group-commit transactions before Identity_ServerFinished is sent. Limits (concurrent
//! handshakes with immediate refusal beyond, per-message and per-handshake timeouts, message
//! size) come from [`ServerConfig`], whose commented TOML form is [`DEFAULT_CONFIG_TOML`].
//! Metrics are served in the Prometheus format on their own address; logs go through `tracing`.
//!
//! # Sessions (XTT-SESSION.md)
//!
//! ```text
//! let mut server = XttServer::bind(config, keys, registry).await?;
//! server.enable_sessions(SessionOptions::new(Arc::new(Echo))).await?;   // TCP + UDP, same address
//! let outbox = server.handle().outbox();                                 // send to a ClientID
//! server.run(shutdown_signal()).await?;
//! ```
//!
//! A configuration file's `[sessions]` section ([`sessions::SessionSettings`], in
//! [`ServerConfig::sessions`]) gives the options: `config.sessions.options()?` (on/off, UDP,
//! idle timeout, lifetime, table size, and the application: echo, forward-udp or forward-unix).
//!
//! The same TCP port serves both handshakes (the third message's type decides) and records;
//! UDP on the same address serves session handshakes and records. Client keys come from the
//! registry ([`sessions::RegistryKeys`]). See [`sessions`] for the design and
//! [`SessionClient`] for the device side.
//!
//! # Trust anchors and updates
//!
//! With `anchors = "PATH"` in the configuration the DAA groups come from that trust-anchor store
//! (validity checked per handshake, changes picked up while running) and provisioned identities
//! are recorded in it (module `anchors`). [`UpdateServer`] is a session application that offers
//! the newest signed update in a directory; [`update_fetch`] is the device side.
//!
//! # Client
//!
//! [`Provisioner::provision`] runs one identity handshake and returns xtt-proto's
//! [`ProvisionedIdentity`] (ClientID, long-term key pair, ...). Storing it (key file 0600,
//! certificate) is the caller's business.
//!
//! # Load generator
//!
//! [`bench::run`] runs N simulated devices ([`bench::enroll_devices`]) concurrently and returns
//! a [`bench::BenchReport`] (`to_text`, `to_json`, `to_svg_histogram`).
//! [`bench::run_sessions`] measures session handshakes per second or record throughput
//! (records/s, MB/s) over TCP or UDP against a server running [`Echo`].

pub(crate) mod anchors;
pub mod bench;
pub mod client;
pub mod client_files;
pub mod config;
pub mod cookie_keys;
pub mod cpu;
mod daa;
pub mod framing;
pub mod health;
pub mod metrics;
pub mod outcome;
mod registrar;
mod server;
pub mod session_client;
pub mod sessions;
mod stream_order;
pub mod update_fetch;

pub use client::{ClientError, Provisioner};
pub use config::{ServerConfig, ServerKeys, StorageUrl, DEFAULT_CONFIG_TOML};
pub use server::{shutdown_signal, ServerError, ServerHandle, XttServer};
pub use session_client::{SessionClient, SessionClientError, SessionClientOptions, Transport};
pub use sessions::{Echo, Outbox, SessionApp, SessionOptions, UpdateServer};
pub use xtt_proto::client::ProvisionedIdentity;

use xtt_ecdaa::{GroupPublicKey, GroupVerifier};
use xtt_proto::daa::GroupId;
use xtt_registry::{GroupRecord, Registry, RegistryError, SqliteRegistry};

/// Opens (creating the data directory if needed) the SQLite registry named by `config`.
pub fn open_registry(config: &ServerConfig) -> Result<SqliteRegistry, ServerError> {
    xtt_fsio::create_dir_private_if_missing(&config.data_dir).map_err(|source| {
        ServerError::Io {
            context: format!("creating data directory {}", config.data_dir.display()),
            source,
        }
    })?;
    Ok(SqliteRegistry::open(
        &config.registry_path(),
        config.registry.durability.into(),
    )?)
}

/// Opens the registry `config` names ([`ServerConfig::storage_url`]): the SQLite file in the
/// data directory (created, with the directory, if missing) unless `storage` says otherwise.
/// Schema migrations run here. Blocks (PostgreSQL connects and migrates): call it before the
/// async runtime starts or from `spawn_blocking`. Errors never show the URL's password.
pub fn open_storage(config: &ServerConfig) -> Result<std::sync::Arc<dyn Registry>, ServerError> {
    let url = config.storage_url();
    if config.storage.is_none() {
        xtt_fsio::create_dir_private_if_missing(&config.data_dir).map_err(|source| {
            ServerError::Io {
                context: format!("creating data directory {}", config.data_dir.display()),
                source,
            }
        })?;
    }
    let exposed = url.expose();
    if exposed.starts_with("postgres") {
        if let Ok(mode) = xtt_registry::pg_tls::tls_mode(exposed) {
            if mode.is_unauthenticated() {
                tracing::warn!(
                    storage = %url,
                    "sslmode=require without sslrootcert: the connection is encrypted but the \
                     database server is not authenticated; use sslmode=verify-full"
                );
            }
        }
        if let Some(why) = xtt_registry::pg_tls::implicit_plaintext(exposed) {
            tracing::warn!(storage = %url, "{why}");
        }
    }
    let options = xtt_registry::StorageOptions {
        sqlite_durability: config.registry.durability.into(),
        postgres_pool_size: config.registry.pool_size,
    };
    let registry = xtt_registry::open_storage_with(exposed, options)?;
    tracing::info!(storage = %url, "registry opened");
    Ok(registry)
}

/// Why a group could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddGroupError {
    /// The group public key does not decode or fails its checks, or the basename is unusable.
    #[error("invalid DAA group: {0}")]
    InvalidGroup(#[from] xtt_ecdaa::Error),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Validates a group public key (258-byte ECDAA form) with its basename and adds it to the
/// registry under its group id, SHA-256(gpk ‖ basename). Returns the id and whether it was new.
pub fn add_group(
    registry: &dyn Registry,
    gpk: &[u8],
    basename: &[u8],
) -> Result<(GroupId, bool), AddGroupError> {
    let key = GroupPublicKey::from_bytes(gpk)?;
    let verifier = GroupVerifier::new(key.clone(), basename)?;
    let group_id = verifier.group_id();
    let added = registry.add_group(&GroupRecord {
        group_id,
        gpk: key.to_bytes().to_vec(),
        basename: basename.to_vec(),
    })?;
    Ok((group_id, added))
}
