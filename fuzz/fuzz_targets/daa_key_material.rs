//! Arbitrary bytes through every ECDAA key-material decoder (group key, issuer key, member key,
//! credential, credential proof, secret key): typed errors only, and whatever decodes must
//! re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xtt_ecdaa::{
    Credential, CredentialSignature, GroupPublicKey, IssuerPublicKey, MemberPublicKey,
    MemberSecretKey,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(gpk) = GroupPublicKey::from_bytes(data) {
        assert_eq!(&gpk.to_bytes()[..], data);
    }
    if let Ok(ipk) = IssuerPublicKey::from_bytes(data) {
        assert_eq!(&ipk.to_bytes()[..], data);
    }
    if let Ok(mpk) = MemberPublicKey::from_bytes(data) {
        assert_eq!(&mpk.to_bytes()[..], data);
    }
    if let Ok(cred) = Credential::from_bytes(data) {
        assert_eq!(&cred.to_bytes()[..], data);
    }
    if let Ok(sig) = CredentialSignature::from_bytes(data) {
        assert_eq!(&sig.to_bytes()[..], data);
    }
    if let Ok(sk) = MemberSecretKey::from_bytes(data) {
        assert_eq!(&sk.to_bytes()[..], data);
    }
});
