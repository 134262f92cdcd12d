//! Identity provisioning end to end, in memory, with real cryptography and nothing to set up.
//!
//! Makes a throwaway trust anchor (root key and certificate), a server certificate signed by it,
//! a DAA group (issuer) and one enrolled member, then provisions the member in each of the four
//! suites against a stateless server and prints what each side learned.
//!
//! Run it with `cargo run --release -p xtt-proto --example provision`.

use std::sync::Arc;
use std::time::Instant;

use rand_core::{OsRng, RngCore};
use xtt_ecdaa::{generate_member_key, GroupVerifier, Issuer, Member};
use xtt_proto::cert::{RootCertificate, RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::client::{ClientConfig, ClientHandshake};
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const BASENAME: &[u8] = b"demo-manufacturer-basename";
const JOIN_NONCE: &[u8] = b"demo join nonce";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rng = &mut OsRng;
    let now = UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );

    // Trust anchor: the root a device is provisioned with, and the server certificate it signs.
    let root_key = LongtermKeyPair::generate(rng);
    let mut root_id = RootId([0; 16]);
    rng.fill_bytes(&mut root_id.0);
    let root = RootCertificate {
        id: root_id,
        public_key: *root_key.public_key(),
    };
    let server_key = LongtermKeyPair::generate(rng);
    let certificate = ServerCertificate::issue(
        &DEFAULT_RESERVED,
        &root.id,
        server_key.public_key(),
        &root_key,
    )?;

    // The manufacturer's DAA group and one device enrolled in it.
    let started = Instant::now();
    let issuer = Issuer::generate(rng);
    let (member_sk, member_request) = generate_member_key(JOIN_NONCE, rng);
    let (credential, _proof) = issuer.issue_credential(&member_request, JOIN_NONCE, rng)?;
    let member = Arc::new(Member::new(
        member_sk,
        credential,
        issuer.group_public_key(),
        BASENAME,
    )?);
    let verifier = GroupVerifier::new(issuer.group_public_key().clone(), BASENAME)?;
    println!(
        "DAA group {:?} with one member ready in {:.1} ms",
        verifier.group_id(),
        started.elapsed().as_secs_f64() * 1e3
    );

    let server = Server::new(ServerConfig {
        certificate,
        signing_key: server_key,
        cookie_keys: CookieKeyring::new(CookieKey::generate(1, rng)),
        cookie_lifetime_secs: 20,
        replay_guard: Arc::new(InMemoryReplayGuard::new(1024)),
    });

    let mut pseudonyms = Vec::new();
    for suite in SuiteSpec::C_COMPATIBLE {
        let started = Instant::now();
        let config = ClientConfig {
            roots: Arc::new(root.clone()),
            daa: member.clone(),
            longterm_key: None,
        };
        let (client, client_init) = ClientHandshake::start(config, suite, ClientId::NULL, rng);
        let server_attest = server.handle_client_init(&client_init, now, rng)?;
        let (client, client_attest) = client.handle_server_attest(&server_attest, rng)?;
        let attested = server.handle_client_attest(&client_attest, now)?;
        let verified = attested.verify_group(&verifier, rng)?;
        // The application's choice for a null request: a fresh random ClientID.
        let mut id = ClientId([0; 16]);
        rng.fill_bytes(&mut id.0);
        let (server_finished, provisioned) = verified.finish(id)?;
        let identity = client.handle_server_finished(&server_finished)?;
        assert_eq!(identity.client_id, provisioned.client_id);
        pseudonyms.push(provisioned.pseudonym);
        println!(
            "{}: ClientID {} in {:.2} ms ({} + {} + {} + {} bytes on the wire)",
            suite.name(),
            identity.client_id,
            started.elapsed().as_secs_f64() * 1e3,
            client_init.len(),
            server_attest.len(),
            client_attest.len(),
            server_finished.len(),
        );
    }
    // The server never learns which member it is talking to, but recognises it: one member
    // has one pseudonym per basename.
    pseudonyms.dedup();
    match pseudonyms.as_slice() {
        [one] => println!("all four handshakes came from one anonymous member: {one:?}"),
        more => return Err(format!("expected one pseudonym, saw {}", more.len()).into()),
    }
    Ok(())
}
