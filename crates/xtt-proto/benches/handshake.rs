//! Handshake steps per suite, client and server side, with the real ECDAA crate and the xtt
//! sample DAA member; plus the extra cost of the stateless cookie.
//!
//! Run: `cargo bench -p xtt-proto --bench handshake`.
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand_core::SeedableRng;
use serde_json::Value;
use xtt_proto::cert::{RootCertificate, ServerCertificate};
use xtt_proto::client::{ClientConfig, ClientHandshake};
use xtt_proto::cookie::{self, CookieId, CookieKey, CookieKeyring, ReplayGuard, ReplayVerdict};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);

/// Accepts every cookie, so the same ClientAttest can be processed repeatedly.
struct AcceptAll;
impl ReplayGuard for AcceptAll {
    fn check_and_insert(&self, _: &CookieId, _: UnixTime, _: UnixTime) -> ReplayVerdict {
        ReplayVerdict::Fresh
    }
}

struct Fixture {
    json: Value,
}

impl Fixture {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vectors/xtt_id_handshake_suite1.json"
        );
        let json = serde_json::from_str(&std::fs::read_to_string(path).expect("vector")).unwrap();
        Self { json }
    }
    fn hex(&self, p: &str) -> Vec<u8> {
        hex::decode(self.json.pointer(p).and_then(Value::as_str).unwrap()).unwrap()
    }
    fn member(&self) -> xtt_ecdaa::Member {
        xtt_ecdaa::Member::from_bytes(
            &self.hex("/daa/member_secret_key"),
            &self.hex("/daa/credential"),
            &self.hex("/daa/group_public_key"),
            &self.hex("/daa/basename"),
        )
        .unwrap()
    }
    fn verifier(&self) -> xtt_ecdaa::GroupVerifier {
        let gpk =
            xtt_ecdaa::GroupPublicKey::from_bytes(&self.hex("/daa/group_public_key")).unwrap();
        xtt_ecdaa::GroupVerifier::new(gpk, &self.hex("/daa/basename")).unwrap()
    }
    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            roots: Arc::new(RootCertificate::decode(&self.hex("/root/root_certificate")).unwrap()),
            daa: Arc::new(self.member()),
            longterm_key: None,
        }
    }
    fn server_key(&self) -> LongtermKeyPair {
        let k: [u8; 32] = self.hex("/server_longterm/private_key").try_into().unwrap();
        LongtermKeyPair::from_private_bytes(&k).unwrap()
    }
    fn server(&self) -> Server {
        Server::new(ServerConfig {
            certificate: ServerCertificate::decode(&self.hex("/server_longterm/certificate"))
                .unwrap(),
            signing_key: self.server_key(),
            cookie_keys: CookieKeyring::new(CookieKey::from_secret(1, &[0x5a; 32])),
            cookie_lifetime_secs: 20,
            replay_guard: Arc::new(AcceptAll),
        })
    }
}

fn steps(c: &mut Criterion) {
    let f = Fixture::load();
    let config = f.client_config();
    let verifier = f.verifier();
    let server = f.server();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    for suite in SuiteSpec::C_COMPATIBLE {
        let mut g = c.benchmark_group(format!("suite{}", suite.to_u16()));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));

        g.bench_function("client_init", |b| {
            b.iter(|| ClientHandshake::start(config.clone(), suite, ClientId::NULL, &mut rng))
        });
        let (_, ci) = ClientHandshake::start(config.clone(), suite, ClientId::NULL, &mut rng);
        g.bench_function("server_handle_client_init", |b| {
            b.iter(|| {
                server
                    .handle_client_init(black_box(&ci), NOW, &mut rng)
                    .unwrap()
            })
        });
        let mut setup_rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        g.bench_function("client_handle_server_attest_incl_ecdsa_and_daa_sign", |b| {
            b.iter_batched(
                || {
                    let (st, ci) = ClientHandshake::start(
                        config.clone(),
                        suite,
                        ClientId::NULL,
                        &mut setup_rng,
                    );
                    let sia = server.handle_client_init(&ci, NOW, &mut setup_rng).unwrap();
                    (st, sia)
                },
                |(st, sia)| st.handle_server_attest(&sia, &mut rng).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let (st, ci) = ClientHandshake::start(config.clone(), suite, ClientId::NULL, &mut rng);
        let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
        let (_, attest) = st.handle_server_attest(&sia, &mut rng).unwrap();
        g.bench_function("server_handle_client_attest_no_daa", |b| {
            b.iter(|| {
                server
                    .handle_client_attest(black_box(&attest), NOW)
                    .unwrap()
            })
        });
        g.bench_function("server_verify_group_daa", |b| {
            b.iter_batched(
                || server.handle_client_attest(&attest, NOW).unwrap(),
                |a| a.verify_group(&verifier, &mut rng).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("server_finish", |b| {
            b.iter_batched(
                || {
                    server
                        .handle_client_attest(&attest, NOW)
                        .unwrap()
                        .verify_group(&verifier, &mut rng)
                        .unwrap()
                },
                |v| v.finish(ClientId([1; 16])).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("client_handle_server_finished", |b| {
            b.iter_batched(
                || {
                    let (st, ci) =
                        ClientHandshake::start(config.clone(), suite, ClientId::NULL, &mut rng);
                    let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
                    let (st, attest) = st.handle_server_attest(&sia, &mut rng).unwrap();
                    let (fin, _) = server
                        .handle_client_attest(&attest, NOW)
                        .unwrap()
                        .verify_group(&verifier, &mut rng)
                        .unwrap()
                        .finish(ClientId([1; 16]))
                        .unwrap();
                    (st, fin)
                },
                |(st, fin)| st.handle_server_finished(&fin).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

/// What statelessness adds at ClientAttest time compared with a server that kept its X25519
/// private key, cookie and signature in memory: opening the cookie (and sealing it at
/// ClientInit time), re-deriving the X25519 key pair, recomputing the ECDSA signature.
fn cookie_overhead(c: &mut Criterion) {
    let f = Fixture::load();
    let key = f.server_key();
    let keyring = CookieKeyring::new(CookieKey::from_secret(1, &[0x5a; 32]));
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("cookie_overhead");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("seal_and_open", |b| {
        b.iter(|| {
            assert!(cookie::seal_and_open_for_testing_only(
                &keyring, NOW, &mut rng
            ))
        })
    });
    g.bench_function("x25519_rederive_public", |b| {
        b.iter(|| {
            let s = x25519_dalek::StaticSecret::from(black_box([7u8; 32]));
            x25519_dalek::PublicKey::from(&s)
        })
    });
    g.bench_function("ecdsa_rfc6979_signature_recompute", |b| {
        b.iter(|| key.sign_rfc6979(black_box(&[3u8; 64]), &[]).unwrap())
    });
    g.finish();
}

criterion_group!(benches, steps, cookie_overhead);
criterion_main!(benches);
