//! Arbitrary bytes through the session-handshake decoders added for XTT-SESSION: the client's
//! attest flight (0x21 alone, 0x22 + record), and both plaintexts. Decoding never panics, and
//! whatever decodes re-encodes to exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xtt_proto::session::{AttestFlight, SessionAttestPlaintext, SessionFinishedPlaintext};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = AttestFlight::decode(data) {
        let mut again = f.attest.encode();
        match &f.early_record {
            Some(r) => {
                assert!(f.attest.with_payload);
                again.extend_from_slice(&r.encode().expect("decoded record re-encodes"));
            }
            None => assert!(!f.attest.with_payload),
        }
        assert_eq!(again, data, "flight re-encodes differently");
    }
    if let Ok(p) = SessionAttestPlaintext::decode(data) {
        assert_eq!(&p.encode()[..], data);
    }
    if let Ok(p) = SessionFinishedPlaintext::decode(data) {
        assert_eq!(&p.encode()[..], data);
    }
});
