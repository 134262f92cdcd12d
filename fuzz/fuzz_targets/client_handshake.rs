//! The identity-provisioning client, after sending ClientInit, fed arbitrary bytes as the
//! server's reply. It must end in a typed error (a forged ServerInitAndAttest cannot pass the
//! AEAD), never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use xtt_ecdaa::Member;
use xtt_proto::cert::{RootCertificate, RootId};
use xtt_proto::client::{ClientConfig, ClientHandshake};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::{ClientId, SuiteSpec};

/// The C reference's sample member (xtt's `data/client` files), read at build time.
const SK: &[u8] = include_bytes!("../../../shared/vectors/xaptum-data/client/daa_secretkey.bin");
const CRED: &[u8] = include_bytes!("../../../shared/vectors/xaptum-data/client/daa_cred.bin");
const GPK: &[u8] = include_bytes!("../../../shared/vectors/xaptum-data/client/daa_gpk.bin");
const BASENAME: &[u8] = include_bytes!("../../../shared/vectors/xaptum-data/client/basename.bin");

/// The client's configuration. A fixture that does not load fails the run: the target would
/// otherwise test nothing.
fn config() -> ClientConfig {
    static MEMBER: OnceLock<Arc<Member>> = OnceLock::new();
    let member = MEMBER
        .get_or_init(|| {
            Arc::new(Member::from_bytes(SK, CRED, GPK, BASENAME).expect("the sample member loads"))
        })
        .clone();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let root = RootCertificate {
        id: RootId([7; 16]),
        public_key: *LongtermKeyPair::generate(&mut rng).public_key(),
    };
    ClientConfig {
        roots: Arc::new(root),
        daa: member,
        longterm_key: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let config = config();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (state, _client_init) = ClientHandshake::start(
        config,
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        ClientId::NULL,
        &mut rng,
    );
    let _ = state.handle_server_attest(data, &mut rng);
});
