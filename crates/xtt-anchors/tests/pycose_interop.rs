//! The COSE_Sign1 inside our SUIT envelopes verifies with pycose (Python), an independent COSE
//! implementation. Needs python3 with pycose (scripts/test.sh installs it); fails without.

mod common;

use std::process::Command;

use xtt_anchors::suit::{Envelope, Manifest};
use xtt_anchors::update::UpdateSigningKey;

fn pycose(dir: &std::path::Path, cose: &[u8], payload: &[u8], key: &[u8]) -> (bool, String) {
    let files = [
        ("sign1.cbor", cose),
        ("payload.cbor", payload),
        ("key.sec1", key),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pycose_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .args(files.map(|(n, _)| dir.join(n)))
        .output()
        .expect("python3 must be installed (scripts/test.sh installs the test peers)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "pycose is missing: pip install pycose (scripts/test.sh does)\n{text}"
    );
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "pycose script failed: {text}"
    );
    (out.status.success(), text)
}

#[test]
fn our_cose_sign1_verifies_with_pycose_and_a_tampered_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let key = UpdateSigningKey::generate(&mut common::rng(7));
    for seq in [1u64, 1 << 40] {
        let m = Manifest::for_image(
            b"interop image",
            seq,
            [3; 16],
            [4; 16],
            vec![b"fw".to_vec()],
        );
        let env = Envelope::decode(&key.sign(&m).unwrap()).unwrap();
        let (cose, payload) = env.cose_sign1().unwrap();
        let (ok, text) = pycose(dir.path(), &cose, &payload, &key.public_sec1());
        assert!(ok, "pycose refused our COSE_Sign1 (sequence {seq}): {text}");
        assert!(text.contains("alg ES256"), "{text}");

        // The same signature over a different manifest digest must not verify there either.
        let mut other = payload.clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        let (ok, text) = pycose(dir.path(), &cose, &other, &key.public_sec1());
        assert!(!ok, "pycose accepted a changed payload: {text}");
    }
}
