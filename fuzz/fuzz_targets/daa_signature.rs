//! Arbitrary bytes as a DAA signature (and message) against the xtt sample group: decoding and
//! verification must reject cleanly, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use xtt_ecdaa::{GroupPublicKey, GroupVerifier};

/// The sample group of the C reference (xtt's `data/` files), read at build time.
const SAMPLE_GPK: &[u8] = include_bytes!("../../../shared/vectors/xaptum-data/server/daa_gpk.bin");
const SAMPLE_BASENAME: &[u8] =
    include_bytes!("../../../shared/vectors/xaptum-data/server/basename.bin");

/// The sample group's verifier. A fixture that does not load fails the run: the target would
/// otherwise test nothing.
fn verifier() -> &'static GroupVerifier {
    static VERIFIER: OnceLock<GroupVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let gpk = GroupPublicKey::from_bytes(SAMPLE_GPK).expect("the sample group key decodes");
        GroupVerifier::new(gpk, SAMPLE_BASENAME).expect("the sample group verifier builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let verifier = verifier();
    // First byte picks how much of the input is message; the rest is the signature.
    let (message, signature) = match data.split_first() {
        Some((&n, rest)) => rest.split_at(usize::from(n).min(rest.len())),
        None => (&[][..], data),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let _ = verifier.verify(message, signature, &mut rng);
});
