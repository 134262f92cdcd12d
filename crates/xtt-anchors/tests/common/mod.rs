//! Shared helpers: the C reference's vectors (read in place from `../shared/vectors`), the
//! `xtt` command tree as the binary will mount it, and deterministic keys.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors"
    ))
}

/// A handshake vector's JSON.
pub fn vector(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the C vectors must be at ../shared/vectors)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("vector JSON")
}

pub fn hex_at(v: &Value, pointer: &str) -> Vec<u8> {
    hex::decode(
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("missing {pointer}")),
    )
    .expect("hex")
}

/// The `xtt` command tree, as the binary mounts this crate's commands.
#[derive(Debug, Parser)]
#[command(name = "xtt")]
pub struct Xtt {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Anchors(xtt_anchors::cli::AnchorsArgs),
    Update(xtt_anchors::cli::UpdateArgs),
}

/// Runs `xtt ARGS...` in process and returns its standard output.
pub fn xtt(args: &[&str]) -> anyhow::Result<String> {
    let cli = Xtt::try_parse_from(std::iter::once("xtt").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    match cli.command {
        Command::Anchors(a) => xtt_anchors::cli::run_anchors(a, &mut out)?,
        Command::Update(u) => xtt_anchors::cli::run_update(u, &mut out)?,
    }
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_core::SeedableRng::seed_from_u64(seed)
}

/// A fixed "now" for tests: 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600;

/// One identity handshake in memory: the client's roots and the server's groups are whatever
/// the store gave; `member` is the device's own DAA credential.
pub fn handshake(
    roots: xtt_anchors::seam::RootSnapshot,
    member: std::sync::Arc<xtt_ecdaa::Member>,
    groups: &xtt_anchors::seam::GroupDirectory,
    server: &xtt_proto::server::Server,
    suite: xtt_proto::SuiteSpec,
    now: u64,
    seed: u64,
) -> Result<
    (
        xtt_proto::client::ProvisionedIdentity,
        xtt_proto::server::ProvisionedClient,
    ),
    xtt_proto::Error,
> {
    use xtt_proto::{ClientId, UnixTime};
    let rng = &mut rng(seed);
    let config = xtt_proto::client::ClientConfig {
        roots: std::sync::Arc::new(roots),
        daa: member,
        longterm_key: None,
    };
    let (client, client_init) =
        xtt_proto::client::ClientHandshake::start(config, suite, ClientId::NULL, rng);
    let server_attest = server.handle_client_init(&client_init, UnixTime(now), rng)?;
    let (client, client_attest) = client.handle_server_attest(&server_attest, rng)?;
    let attested = server.handle_client_attest(&client_attest, UnixTime(now))?;
    let verified = groups.verify(attested, now, rng)?;
    let (server_finished, provisioned) = verified.finish(ClientId([0x42; 16]))?;
    let identity = client.handle_server_finished(&server_finished)?;
    Ok((identity, provisioned))
}

/// A server with a certificate from `root_key` (an in-memory stateless XTT server).
pub fn server_signed_by(
    root: &xtt_proto::cert::RootCertificate,
    root_key: &xtt_proto::longterm::LongtermKeyPair,
    seed: u64,
) -> (
    xtt_proto::server::Server,
    xtt_proto::cert::ServerCertificate,
) {
    use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
    let key = xtt_proto::longterm::LongtermKeyPair::generate(&mut rng(seed));
    let cert = xtt_proto::cert::ServerCertificate::issue(
        &xtt_proto::cert::DEFAULT_RESERVED,
        &root.id,
        key.public_key(),
        root_key,
    )
    .expect("certificate");
    let server = xtt_proto::server::Server::new(xtt_proto::server::ServerConfig {
        certificate: cert.clone(),
        signing_key: key,
        cookie_keys: CookieKeyring::new(CookieKey::from_secret(1, &[0x5a; 32])),
        cookie_lifetime_secs: 20,
        replay_guard: std::sync::Arc::new(InMemoryReplayGuard::new(64)),
    });
    (server, cert)
}

/// A fresh root: key and certificate with a random id.
pub fn fresh_root(
    seed: u64,
) -> (
    xtt_proto::cert::RootCertificate,
    xtt_proto::longterm::LongtermKeyPair,
) {
    use rand_core::RngCore;
    let r = &mut rng(seed);
    let key = xtt_proto::longterm::LongtermKeyPair::generate(r);
    let mut id = [0u8; 16];
    r.fill_bytes(&mut id);
    (
        xtt_proto::cert::RootCertificate {
            id: xtt_proto::cert::RootId(id),
            public_key: *key.public_key(),
        },
        key,
    )
}

/// A fresh DAA group with one member; returns the group's anchor material and the member.
pub fn fresh_group(seed: u64, basename: &[u8]) -> (Vec<u8>, std::sync::Arc<xtt_ecdaa::Member>) {
    let r = &mut rng(seed);
    let issuer = xtt_ecdaa::Issuer::generate(r);
    let (sk, request) = xtt_ecdaa::generate_member_key(b"join", r);
    let (cred, _) = issuer
        .issue_credential(&request, b"join", r)
        .expect("credential");
    let member =
        xtt_ecdaa::Member::new(sk, cred, issuer.group_public_key(), basename).expect("member");
    let material =
        xtt_anchors::material::daa_group_material(&issuer.group_public_key().to_bytes(), basename)
            .expect("group material");
    (material, std::sync::Arc::new(member))
}
