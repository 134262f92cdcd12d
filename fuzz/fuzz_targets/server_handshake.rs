//! The identity-provisioning server fed arbitrary bytes. The first byte picks the step:
//! ClientInit, or Identity_ClientAttest with a freshly issued valid cookie spliced in (so inputs
//! get past the cookie into the AEAD and state machine). Every input must end in a value or a
//! typed error, and a failed attempt must leave nothing in the replay cache.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use xtt_proto::cert::{RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::msgs::ClientInit;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::{SuiteSpec, UnixTime};

const NOW: UnixTime = UnixTime(1_700_000_000);
/// Offset and length of the echoed cookie in Identity_ClientAttest (XTT-WIRE §5.3).
const COOKIE_IN_ATTEST: core::ops::Range<usize> = 6..136;
/// Offset of the cookie in ServerInitAndAttest (XTT-WIRE §5.2).
const COOKIE_IN_SIA: core::ops::Range<usize> = 38..168;

struct Fixture {
    server: Server,
    guard: Arc<InMemoryReplayGuard>,
}

/// The server under test. A fixture that does not build fails the run: the target would
/// otherwise test nothing.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let root_key = LongtermKeyPair::generate(&mut rng);
        let server_key = LongtermKeyPair::generate(&mut rng);
        let certificate = ServerCertificate::issue(
            &DEFAULT_RESERVED,
            &RootId([7; 16]),
            server_key.public_key(),
            &root_key,
        )
        .expect("the server certificate issues");
        let guard = Arc::new(InMemoryReplayGuard::new(1024));
        let server = Server::new(ServerConfig {
            certificate,
            signing_key: server_key,
            cookie_keys: CookieKeyring::new(CookieKey::generate(1, &mut rng)),
            cookie_lifetime_secs: 20,
            replay_guard: guard.clone(),
        });
        Fixture { server, guard }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    if mode & 1 == 0 {
        let _ = f.server.handle_client_init(input, NOW, &mut rng);
        return;
    }
    // A valid cookie for a ClientInit whose key share and nonce come from the input.
    let mut share = [9u8; 32];
    let mut nonce = [0u8; 32];
    for (dst, src) in share.iter_mut().chain(nonce.iter_mut()).zip(input) {
        *dst = *src;
    }
    let suite = match mode >> 1 & 3 {
        0 => SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        1 => SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
        2 => SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
        _ => SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b,
    };
    let ci = ClientInit {
        suite,
        nonce,
        key_share: share,
    }
    .encode();
    let Ok(sia) = f.server.handle_client_init(&ci, NOW, &mut rng) else {
        return;
    };
    let mut attest = input.to_vec();
    if let (Some(dst), Some(src)) = (attest.get_mut(COOKIE_IN_ATTEST), sia.get(COOKIE_IN_SIA)) {
        dst.copy_from_slice(src);
    }
    let before = f.guard.len();
    if f.server.handle_client_attest(&attest, NOW).is_err() {
        assert_eq!(
            f.guard.len(),
            before,
            "a failed ClientAttest left a replay-cache entry"
        );
    }
});
