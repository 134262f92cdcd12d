//! Property tests: decoders never panic on arbitrary bytes, and encode(decode(x)) == x.

use proptest::prelude::*;
use xtt_proto::codec::decode_header;
use xtt_proto::msgs::*;

proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        let _ = decode_header(&bytes, 65535);
        let _ = ClientInit::decode(&bytes);
        let _ = ServerInitAndAttest::decode(&bytes);
        let _ = IdentityClientAttest::decode(&bytes);
        let _ = IdentityServerFinished::decode(&bytes);
        let _ = SessionClientAttest::decode(&bytes);
        let _ = SessionServerFinished::decode(&bytes);
        let _ = RecordRegular::decode(&bytes);
        let _ = ErrorMessage::decode(&bytes);
        let _ = ServerAttestPlaintext::decode(&bytes);
        let _ = ClientAttestPlaintext::decode(&bytes);
        let _ = ServerFinishedPlaintext::decode(&bytes);
    }

    #[test]
    fn client_init_round_trips(suite in 1u16..=4, nonce in any::<[u8; 32]>(), share in any::<[u8; 32]>()) {
        let ci = ClientInit { suite: xtt_proto::SuiteSpec::from_u16(suite).unwrap(), nonce, key_share: share };
        let bytes = ci.encode();
        prop_assert_eq!(ClientInit::decode(&bytes).unwrap(), ci);
    }

    #[test]
    fn well_formed_headers_decode_to_what_they_say(
        suite in 1u16..=4,
        body in proptest::collection::vec(any::<u8>(), 97)
    ) {
        let mut bytes = vec![0x13, 0x00, 0x67, 0x01];
        bytes.extend_from_slice(&suite.to_be_bytes());
        bytes.extend_from_slice(&body);
        let m = IdentityServerFinished::decode(&bytes).unwrap();
        prop_assert_eq!(m.encode(), bytes.clone());
        let h = decode_header(&bytes, 750).unwrap();
        prop_assert_eq!(h.body_len(), 99);
    }
}
