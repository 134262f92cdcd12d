//! The session server's third-message step (Session_ClientAttest, 0x21 alone or 0x22 + early
//! record). Inputs either mutate a genuine flight (so they reach the AEAD, the registry lookup,
//! the signature and the early-record checks) or replace it with arbitrary bytes carrying a valid
//! cookie. Every input must end in a value or a typed error, and a failed attempt must never
//! reach the replay guard (a failure leaves nothing behind).
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use xtt_proto::cert::{RootCertificate, RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::cookie::{CookieId, CookieKey, CookieKeyring, ReplayGuard, ReplayVerdict};
use xtt_proto::longterm::{LongtermKeyPair, LongtermPublicKey};
use xtt_proto::record::PayloadType;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::session::{SessionClientConfig, SessionClientHandshake};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const NOW: UnixTime = UnixTime(1_700_000_000);
/// The echoed cookie in Session_ClientAttest (XTT-SESSION §1.1).
const COOKIE_IN_ATTEST: core::ops::Range<usize> = 6..136;

/// Counts recordings and accepts every cookie, so genuine flights stay usable.
#[derive(Default)]
struct CountingGuard(AtomicUsize);
impl ReplayGuard for CountingGuard {
    fn check_and_insert(&self, _: &CookieId, _: UnixTime, _: UnixTime) -> ReplayVerdict {
        self.0.fetch_add(1, Ordering::SeqCst);
        ReplayVerdict::Fresh
    }
}

struct Fixture {
    server: Server,
    guard: Arc<CountingGuard>,
    registry: HashMap<ClientId, LongtermPublicKey>,
    /// Per suite: a genuine 0x21 flight and a genuine 0x22 flight.
    flights: Vec<[Vec<u8>; 2]>,
}

/// The server and genuine flights. A fixture that does not build fails the run: the target
/// would otherwise test nothing.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
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
        .expect("the server certificate issues");
        let guard = Arc::new(CountingGuard::default());
        let server = Server::new(ServerConfig {
            certificate,
            signing_key: server_key,
            cookie_keys: CookieKeyring::new(CookieKey::generate(1, &mut rng)),
            cookie_lifetime_secs: 20,
            replay_guard: guard.clone(),
        });
        let device = LongtermKeyPair::generate(&mut rng);
        let client_id = ClientId([0xc1; 16]);
        let mut registry = HashMap::new();
        registry.insert(client_id, *device.public_key());
        let config = SessionClientConfig {
            roots: Arc::new(root),
            client_id,
            longterm_key: device,
        };
        let mut flights = Vec::new();
        for suite in SuiteSpec::ALL {
            let mut pair = [Vec::new(), Vec::new()];
            for (i, early) in [None, Some((PayloadType::QueueProtocol, &b"early"[..]))]
                .into_iter()
                .enumerate()
            {
                let (st, ci) = SessionClientHandshake::start(config.clone(), suite, &mut rng);
                let sia = server
                    .handle_client_init(&ci, NOW, &mut rng)
                    .expect("a genuine ClientInit is answered");
                pair[i] = st
                    .handle_server_attest(&sia, early, &mut rng)
                    .expect("a genuine ServerInitAndAttest is accepted")
                    .1;
            }
            flights.push(pair);
        }
        Fixture {
            server,
            guard,
            registry,
            flights,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let pair = &f.flights[usize::from(mode & 0x3f) % f.flights.len()];
    let genuine = &pair[usize::from(mode >> 6 & 1)];
    let flight = if mode & 0x80 == 0 {
        // Mutations: (position u16, xor) triples, then an optional length change.
        let mut m = genuine.clone();
        let mut chunks = input.chunks_exact(3);
        for c in &mut chunks {
            let pos = usize::from(u16::from_be_bytes([c[0], c[1]])) % (m.len() + 1);
            match m.get_mut(pos) {
                Some(b) => *b ^= c[2],
                None => m.push(c[2]),
            }
        }
        if let [n] = chunks.remainder() {
            m.truncate(usize::from(*n) * 2);
        }
        m
    } else {
        // Arbitrary bytes with the genuine (valid) cookie spliced in.
        let mut m = input.to_vec();
        if let (Some(dst), Some(src)) = (m.get_mut(COOKIE_IN_ATTEST), genuine.get(COOKIE_IN_ATTEST))
        {
            dst.copy_from_slice(src);
        }
        m
    };
    let before = f.guard.0.load(Ordering::SeqCst);
    let result = f.server.handle_session_client_attest(
        &flight,
        NOW,
        &f.registry,
        &mut ChaCha20Rng::seed_from_u64(2),
    );
    let after = f.guard.0.load(Ordering::SeqCst);
    match result {
        Ok(acc) => {
            assert_eq!(after, before + 1, "accepted without recording the cookie");
            assert!(!acc.session.id().is_null());
        }
        Err(_) => assert_eq!(
            after, before,
            "a failed session attest reached the replay guard"
        ),
    }
});
