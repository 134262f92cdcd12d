//! Our JWEs are read by an independent JOSE implementation (Python `jwcrypto`), and we read
//! theirs. Fails, not skips, when python3 or jwcrypto is missing.

mod common;

use std::process::Command;

use rand_core::OsRng;
use tte::{jwe, DevUrn, Key256};

const PY: &str = r#"
import json, sys
from jwcrypto import jwk, jwe
req = json.load(sys.stdin)
key = jwk.JWK(kty="oct", k=req["k"])
if req["op"] == "decrypt":
    tok = jwe.JWE()
    tok.deserialize(req["jwe"], key=key)
    hdr = json.loads(tok.objects["protected"])
    print(json.dumps({"plaintext": tok.payload.decode(), "header": hdr}))
else:
    hdr = {"alg": "dir", "enc": "A256GCM", "kid": req["kid"], "seq": 7}
    tok = jwe.JWE(req["plaintext"].encode(), protected=json.dumps(hdr))
    tok.add_recipient(key)
    print(json.dumps({"jwe": tok.serialize(compact=True)}))
"#;

fn python(req: serde_json::Value) -> serde_json::Value {
    let out = common::output_within(
        Command::new("python3").args(["-c", PY]),
        Some(req.to_string().as_bytes()),
        common::PEER_LIMIT,
    )
    .expect("python3 is required");
    assert!(
        out.status.success(),
        "python/jwcrypto failed (pip install jwcrypto; scripts/test.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn jwcrypto_decrypts_ours_and_we_decrypt_theirs() {
    let key = Key256::generate(&mut OsRng);
    let urn = DevUrn::parse("urn:dev:mac:90a2da001a0c").unwrap();
    let ours = jwe::encrypt(
        &key,
        &urn,
        None,
        Some("text/uri-list"),
        b"https://controller.example:8443",
        &mut OsRng,
    );
    let v = python(serde_json::json!({"op": "decrypt", "k": key.to_b64(), "jwe": ours}));
    assert_eq!(v["plaintext"], "https://controller.example:8443");
    assert_eq!(v["header"]["kid"], urn.as_str());
    assert_eq!(v["header"]["alg"], "dir");
    assert_eq!(v["header"]["enc"], "A256GCM");

    let v = python(
        serde_json::json!({"op": "encrypt", "k": key.to_b64(), "kid": urn.as_str(), "plaintext": "[{\"n\":\"t\",\"v\":1}]"}),
    );
    let d = jwe::decrypt(&key, &urn, v["jwe"].as_str().unwrap()).unwrap();
    assert_eq!(d.plaintext, b"[{\"n\":\"t\",\"v\":1}]");
    assert_eq!(d.header.seq, Some(7));
    // Their JWE for this device does not pass as another device's.
    let other = DevUrn::parse("urn:dev:mac:90a2da001a0d").unwrap();
    assert!(jwe::decrypt(&key, &other, v["jwe"].as_str().unwrap()).is_err());
}
