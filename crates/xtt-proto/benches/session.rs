//! Session handshake steps and records per suite, and the "crypto floor" of one handshake side.
//!
//! Groups:
//! - `session_handshake/<suite>/<step>`: client start, server ClientInit, client attest,
//!   server attest (cookie reopen + rebuild + ECDSA verify + keys + finished), the server's total
//!   per handshake, and a complete in-memory handshake (both sides in one thread).
//! - `record/<suite>/<seal|open>/<size>`: 64 B, 1 KiB, 16 KiB; open goes through the sharded
//!   session table (lookup, window, authentication), as a server would.
//! - `crypto_floor/...`: the primitives one side of a session handshake cannot avoid (X25519
//!   key generation + DH, ECDSA P-256 sign + verify, the AEAD, the prf), each alone and summed
//!   in `crypto_floor/one_side/<hash>`; compare the server's total with it. Also the cost of
//!   building the AEAD per record (what the compact session table does) against a pre-expanded
//!   key.
//!
//! Run: `cargo bench -p xtt-proto --bench session` (about 5 minutes).
#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use xtt_proto::cert::{RootCertificate, RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::cookie::{CookieId, CookieKey, CookieKeyring, ReplayGuard, ReplayVerdict};
use xtt_proto::crypto_floor;
use xtt_proto::longterm::{LongtermKeyPair, LongtermPublicKey};
use xtt_proto::record::PayloadType;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::session::{SessionClientConfig, SessionClientHandshake};
use xtt_proto::session_table::{SessionTable, SessionTableConfig};
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
    server: Server,
    /// The same server with a handshake cache (no stateless rebuild at ClientAttest).
    server_cached: Server,
    config: SessionClientConfig,
    registry: HashMap<ClientId, LongtermPublicKey>,
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let root_key = LongtermKeyPair::generate(&mut rng);
    let root = RootCertificate {
        id: RootId([7; 16]),
        public_key: *root_key.public_key(),
    };
    let server_key = LongtermKeyPair::generate(&mut rng);
    let certificate = ServerCertificate::issue(
        &DEFAULT_RESERVED,
        &root.id,
        server_key.public_key(),
        &root_key,
    )
    .unwrap();
    let cookie_secret = [0x5a; 32];
    let make = || {
        Server::new(ServerConfig {
            certificate: certificate.clone(),
            signing_key: server_key.clone(),
            cookie_keys: CookieKeyring::new(CookieKey::from_secret(1, &cookie_secret)),
            cookie_lifetime_secs: 20,
            replay_guard: Arc::new(AcceptAll),
        })
    };
    let server = make();
    let server_cached = make().with_handshake_cache(4096);
    let device = LongtermKeyPair::generate(&mut rng);
    let client_id = ClientId([0xc1; 16]);
    let mut registry = HashMap::new();
    registry.insert(client_id, *device.public_key());
    Fixture {
        server,
        server_cached,
        config: SessionClientConfig {
            roots: Arc::new(root),
            client_id,
            longterm_key: device,
        },
        registry,
    }
}

fn short(suite: SuiteSpec) -> String {
    format!("suite{}", suite.to_u16())
}

fn handshake(c: &mut Criterion) {
    let fx = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("session_handshake");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for suite in SuiteSpec::ALL {
        let s = short(suite);
        g.bench_function(format!("{s}/client_start"), |b| {
            b.iter(|| SessionClientHandshake::start(fx.config.clone(), suite, &mut rng))
        });
        let (_, ci) = SessionClientHandshake::start(fx.config.clone(), suite, &mut rng);
        g.bench_function(format!("{s}/server_client_init"), |b| {
            b.iter(|| fx.server.handle_client_init(black_box(&ci), NOW, &mut rng))
        });
        let mut setup_rng = ChaCha20Rng::seed_from_u64(3);
        g.bench_function(format!("{s}/client_server_attest"), |b| {
            b.iter_batched(
                || {
                    let (st, ci) =
                        SessionClientHandshake::start(fx.config.clone(), suite, &mut setup_rng);
                    let sia = fx
                        .server
                        .handle_client_init(&ci, NOW, &mut setup_rng)
                        .unwrap();
                    (st, sia)
                },
                |(st, sia)| st.handle_server_attest(&sia, None, &mut rng).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let (st, ci) = SessionClientHandshake::start(fx.config.clone(), suite, &mut rng);
        let sia = fx.server.handle_client_init(&ci, NOW, &mut rng).unwrap();
        let (_, flight) = st.handle_server_attest(&sia, None, &mut rng).unwrap();
        g.bench_function(format!("{s}/server_session_attest"), |b| {
            b.iter(|| {
                fx.server
                    .handle_session_client_attest(black_box(&flight), NOW, &fx.registry, &mut rng)
                    .unwrap()
            })
        });
        g.bench_function(format!("{s}/server_total"), |b| {
            b.iter(|| {
                let _sia = fx.server.handle_client_init(&ci, NOW, &mut rng).unwrap();
                fx.server
                    .handle_session_client_attest(&flight, NOW, &fx.registry, &mut rng)
                    .unwrap()
            })
        });
        let mut setup_rng = ChaCha20Rng::seed_from_u64(6);
        g.bench_function(format!("{s}/server_session_attest_cached"), |b| {
            b.iter_batched(
                || {
                    let (st, ci) =
                        SessionClientHandshake::start(fx.config.clone(), suite, &mut setup_rng);
                    let sia = fx
                        .server_cached
                        .handle_client_init(&ci, NOW, &mut setup_rng)
                        .unwrap();
                    st.handle_server_attest(&sia, None, &mut setup_rng)
                        .unwrap()
                        .1
                },
                |flight| {
                    fx.server_cached
                        .handle_session_client_attest(&flight, NOW, &fx.registry, &mut rng)
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("{s}/full_both_sides"), |b| {
            b.iter(|| {
                let (st, ci) = SessionClientHandshake::start(fx.config.clone(), suite, &mut rng);
                let sia = fx.server.handle_client_init(&ci, NOW, &mut rng).unwrap();
                let (st, flight) = st.handle_server_attest(&sia, None, &mut rng).unwrap();
                let acc = fx
                    .server
                    .handle_session_client_attest(&flight, NOW, &fx.registry, &mut rng)
                    .unwrap();
                st.handle_server_finished(&acc.finished).unwrap()
            })
        });
    }
    g.finish();
}

fn records(c: &mut Criterion) {
    let fx = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut g = c.benchmark_group("record");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for suite in SuiteSpec::ALL {
        let table: SessionTable<u32> = SessionTable::new(SessionTableConfig::default());
        let (st, ci) = SessionClientHandshake::start(fx.config.clone(), suite, &mut rng);
        let sia = fx.server.handle_client_init(&ci, NOW, &mut rng).unwrap();
        let (st, flight) = st.handle_server_attest(&sia, None, &mut rng).unwrap();
        let acc = fx
            .server
            .handle_session_client_attest(&flight, NOW, &fx.registry, &mut rng)
            .unwrap();
        table.insert(acc.session, 0, NOW).unwrap();
        let mut client = st.handle_server_finished(&acc.finished).unwrap();
        for size in [64usize, 1024, 16384] {
            let payload = vec![0x5au8; size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(format!("{}/seal/{size}", short(suite)), |b| {
                b.iter(|| client.seal(PayloadType::QueueProtocol, &payload).unwrap())
            });
            g.bench_function(format!("{}/open/{size}", short(suite)), |b| {
                b.iter_batched(
                    || client.seal(PayloadType::QueueProtocol, &payload).unwrap(),
                    |r| table.open(&r, 0, NOW).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn crypto_floor(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut g = c.benchmark_group("crypto_floor");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let peer = [9u8; 32];
    let private = [0x42u8; 32];
    g.bench_function("x25519_keygen_and_dh", |b| {
        b.iter(|| crypto_floor::x25519_keygen_and_dh(black_box(&private), &peer).unwrap())
    });
    let key = LongtermKeyPair::generate(&mut rng);
    let msg = [0x17u8; 64];
    g.bench_function("ecdsa_p256_sign", |b| {
        b.iter(|| key.sign_rfc6979(black_box(&msg), &[1; 32]).unwrap())
    });
    let sig = key.sign_rfc6979(&msg, &[]).unwrap();
    let public = *key.public_key();
    g.bench_function("ecdsa_p256_verify", |b| {
        b.iter(|| assert!(public.verify(black_box(&msg), &sig)))
    });
    let aead_key = [3u8; 32];
    for suite in [
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
    ] {
        let name = if suite.to_u16() == 1 {
            "chacha20poly1305"
        } else {
            "aes256gcm"
        };
        // The session attest's plaintext (96 bytes), sealed then opened.
        g.bench_function(format!("aead_seal_open_96/{name}"), |b| {
            b.iter(|| {
                let s = crypto_floor::aead_seal(suite, &aead_key, black_box(&[1; 96]));
                assert!(crypto_floor::aead_open(suite, &aead_key, &s))
            })
        });
    }
    // Per-record key setup (what the compact table does) vs a pre-expanded AES-256-GCM key.
    let aes_suite = SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512;
    g.bench_function("aes256gcm_seal_64/key_setup_per_call", |b| {
        b.iter(|| crypto_floor::aead_seal(aes_suite, &aead_key, black_box(&[1; 64])))
    });
    let expanded = Aes256Gcm::new(&aead_key.into());
    g.bench_function("aes256gcm_seal_64/pre_expanded", |b| {
        b.iter(|| {
            expanded
                .encrypt(
                    &[0u8; 12].into(),
                    Payload {
                        msg: black_box(&[1u8; 64]),
                        aad: b"ad",
                    },
                )
                .unwrap()
        })
    });
    for (suite, name) in [
        (
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
            "sha512",
        ),
        (
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
            "blake2b",
        ),
    ] {
        let prf_key = [5u8; 64];
        g.bench_function(format!("prf_64B_to_32/{name}"), |b| {
            b.iter(|| {
                let mut out = [0u8; 32];
                crypto_floor::prf(suite, &prf_key, black_box(&[1; 64]), &mut out);
                out
            })
        });
        // One side of a session handshake, primitives only: X25519 ×2 (keygen + DH), one ECDSA
        // sign and one verify, one AEAD seal + open of the attest plaintext, and the prf calls
        // of the session key schedule (4 keys/IVs + awareness proof).
        g.bench_function(format!("one_side/{name}"), |b| {
            b.iter(|| {
                crypto_floor::x25519_keygen_and_dh(&private, &peer).unwrap();
                let s = key.sign_rfc6979(&msg, &[]).unwrap();
                assert!(public.verify(&msg, &s));
                let sealed = crypto_floor::aead_seal(suite, &aead_key, &[1; 96]);
                assert!(crypto_floor::aead_open(suite, &aead_key, &sealed));
                let mut out = [0u8; 32];
                for _ in 0..5 {
                    crypto_floor::prf(suite, &prf_key, &[1; 64], &mut out);
                }
                out
            })
        });
    }
    g.finish();
}

criterion_group!(benches, crypto_floor, handshake, records);
criterion_main!(benches);
