//! The session server's third-message step fed arbitrary flights, with a freshly issued valid
//! cookie spliced in (so inputs get past the cookie into the AEAD, the registry lookup and the
//! early-record path). Every input must end in a value or a typed error, and a failed attempt
//! must leave nothing in the replay cache.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use xtt_proto::cert::{RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::longterm::{LongtermKeyPair, LongtermPublicKey};
use xtt_proto::msgs::ClientInit;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const NOW: UnixTime = UnixTime(1_700_000_000);
/// The echoed cookie in Session_ClientAttest (XTT-SESSION §1.1).
const COOKIE_IN_ATTEST: core::ops::Range<usize> = 6..136;
/// The cookie in ServerInitAndAttest (XTT-WIRE §5.2).
const COOKIE_IN_SIA: core::ops::Range<usize> = 38..168;

struct Fixture {
    server: Server,
    guard: Arc<InMemoryReplayGuard>,
    registry: HashMap<ClientId, LongtermPublicKey>,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let root_key = LongtermKeyPair::generate(&mut rng);
            let server_key = LongtermKeyPair::generate(&mut rng);
            let certificate = ServerCertificate::issue(
                &DEFAULT_RESERVED,
                &RootId([7; 16]),
                server_key.public_key(),
                &root_key,
            )
            .ok()?;
            let guard = Arc::new(InMemoryReplayGuard::new(1 << 16));
            let server = Server::new(ServerConfig {
                certificate,
                signing_key: server_key,
                cookie_keys: CookieKeyring::new(CookieKey::generate(1, &mut rng)),
                cookie_lifetime_secs: 20,
                replay_guard: guard.clone(),
            });
            let mut registry = HashMap::new();
            let device = LongtermKeyPair::generate(&mut rng);
            registry.insert(ClientId([0xc1; 16]), *device.public_key());
            Some(Fixture {
                server,
                guard,
                registry,
            })
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(f) = fixture() else { return };
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let suite = SuiteSpec::ALL[usize::from(mode) % SuiteSpec::ALL.len()];
    let ci = ClientInit {
        suite,
        nonce: [mode; 32],
        key_share: [9; 32],
    }
    .encode();
    let Ok(sia) = f.server.handle_client_init(&ci, NOW, &mut rng) else {
        return;
    };
    let mut flight = input.to_vec();
    if let (Some(dst), Some(src)) = (flight.get_mut(COOKIE_IN_ATTEST), sia.get(COOKIE_IN_SIA)) {
        dst.copy_from_slice(src);
    }
    let before = f.guard.len();
    if f
        .server
        .handle_session_client_attest(&flight, NOW, &f.registry, &mut rng)
        .is_err()
    {
        assert_eq!(f.guard.len(), before, "a failed session attest left a replay-cache entry");
    }
});
