//! Decoders never panic on arbitrary input, and an envelope changed anywhere never verifies.

use proptest::prelude::*;
use xtt_anchors::suit::{Envelope, Manifest};
use xtt_anchors::update::UpdateSigningKey;

fn signed() -> (Vec<u8>, UpdateSigningKey) {
    let key = UpdateSigningKey::generate(
        &mut <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(9),
    );
    let m = Manifest::for_image(b"img", 9, [5; 16], [6; 16], vec![b"fw".to_vec()]);
    (key.sign(&m).unwrap(), key)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Envelope::decode(&bytes);
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn a_changed_envelope_never_verifies(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)
    ) {
        let (env, key) = signed();
        let mut t = env.clone();
        for (i, x) in edits {
            let i = i.index(t.len());
            t[i] ^= x;
        }
        let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key.public_sec1()).unwrap();
        let ok = Envelope::decode(&t).map(|e| e.verify_signature(&public)).unwrap_or(false);
        prop_assert!(!ok || t == env);
    }
}
