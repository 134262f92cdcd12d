//! Arbitrary bytes through every XTT message decoder and the stream header decoder. Decoding
//! never panics, and whatever decodes re-encodes to exactly the input (fixed layouts leave no
//! room for two encodings of one message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xtt_proto::cert::{RootCertificate, ServerCertificate};
use xtt_proto::codec::decode_header;
use xtt_proto::msgs::{
    ClientAttestPlaintext, ClientInit, ErrorMessage, IdentityClientAttest, IdentityServerFinished,
    RecordRegular, ServerAttestPlaintext, ServerFinishedPlaintext, ServerInitAndAttest,
    SessionClientAttest, SessionServerFinished,
};

macro_rules! round_trip {
    ($data:expr, $($ty:ty),+ $(,)?) => {$(
        if let Ok(m) = <$ty>::decode($data) {
            assert_eq!(&m.encode()[..], $data, "{} re-encodes differently", stringify!($ty));
        }
    )+};
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_header(data, 750);
    let _ = decode_header(data, usize::from(u16::MAX));
    round_trip!(
        data,
        ClientInit,
        ServerInitAndAttest,
        ServerAttestPlaintext,
        IdentityClientAttest,
        ClientAttestPlaintext,
        IdentityServerFinished,
        ServerFinishedPlaintext,
        SessionClientAttest,
        SessionServerFinished,
    );
    // Receivers ignore an Error message's version byte (XTT-WIRE §13.1), so only the rest of it
    // must survive a round trip.
    if ErrorMessage::decode(data).is_ok() {
        assert_eq!(ErrorMessage.encode()[..3], data[..3]);
    }
    if let Ok(rec) = RecordRegular::decode(data) {
        assert_eq!(rec.encode().ok().as_deref(), Some(data));
    }
    if let Ok(root) = RootCertificate::decode(data) {
        assert_eq!(&root.encode()[..], data);
    }
    if let Ok(cert) = ServerCertificate::decode(data) {
        assert_eq!(&cert.as_bytes()[..], data);
    }
});
