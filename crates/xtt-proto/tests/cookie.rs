//! The stateless cookie: expiry, unknown key, rotation, replay, tampering, and that failed
//! handshakes leave nothing behind.

mod common;

use std::sync::Arc;

use common::{client_until_attest, load_vectors, test_rng};
use xtt_proto::client::ClientHandshake;
use xtt_proto::cookie::{CookieKey, InMemoryReplayGuard};
use xtt_proto::error::{Error, InvalidMessage, PeerMisbehaved, Refused};
use xtt_proto::{ClientId, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);

fn at(secs: u64) -> UnixTime {
    UnixTime(NOW.0 + secs)
}

#[test]
fn cookie_is_accepted_until_its_lifetime_ends() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let guard = Arc::new(InMemoryReplayGuard::new(8));
    let server = v.server(guard.clone()); // lifetime 20 s
    let mut rng = test_rng(20);
    let (_, attest) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    assert_eq!(
        server.handle_client_attest(&attest, at(21)).unwrap_err(),
        PeerMisbehaved::ExpiredCookie.into()
    );
    // Issued in the future (clock went backwards): refused too.
    let (_, attest2) = client_until_attest(v, &server, ClientId::NULL, at(100), &mut rng);
    assert_eq!(
        server.handle_client_attest(&attest2, NOW).unwrap_err(),
        PeerMisbehaved::ExpiredCookie.into()
    );
    assert!(guard.is_empty());
    assert!(server.handle_client_attest(&attest, at(20)).is_ok());
}

#[test]
fn cookie_from_another_servers_key_is_refused() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let a = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    let guard = Arc::new(InMemoryReplayGuard::new(8));
    let b = v.server(guard.clone());
    b.rotate_cookie_key(CookieKey::from_secret(1, &[0x77; 32])); // same id, other secret
    b.rotate_cookie_key(CookieKey::from_secret(2, &[0x78; 32]));
    let mut rng = test_rng(21);
    let (_, attest) = client_until_attest(v, &a, ClientId::NULL, NOW, &mut rng);
    assert_eq!(
        b.handle_client_attest(&attest, NOW).unwrap_err(),
        PeerMisbehaved::InvalidCookie.into()
    );
    assert!(guard.is_empty());
}

#[test]
fn previous_cookie_key_is_accepted_and_older_ones_are_refused() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    let mut rng = test_rng(22);
    let (_, under_key1_a) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    let (_, under_key1_b) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    server.rotate_cookie_key(CookieKey::from_secret(2, &[2; 32]));
    let (_, under_key2) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    assert_eq!(under_key2[6], 2, "cookie names its key id in the clear");
    assert!(
        server.handle_client_attest(&under_key1_a, NOW).is_ok(),
        "previous key accepted"
    );
    server.rotate_cookie_key(CookieKey::from_secret(3, &[3; 32]));
    assert_eq!(
        server.handle_client_attest(&under_key1_b, NOW).unwrap_err(),
        PeerMisbehaved::InvalidCookie.into(),
        "key two rotations old refused"
    );
    assert!(server.handle_client_attest(&under_key2, NOW).is_ok());
}

#[test]
fn replayed_client_attest_is_refused() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let guard = Arc::new(InMemoryReplayGuard::new(8));
    let server = v.server(guard.clone());
    let mut rng = test_rng(23);
    let (_, attest) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    assert!(server.handle_client_attest(&attest, NOW).is_ok());
    assert_eq!(
        server.handle_client_attest(&attest, at(1)).unwrap_err(),
        PeerMisbehaved::ReplayedCookie.into()
    );
    assert_eq!(guard.len(), 1);
}

#[test]
fn tampered_cookie_is_refused_whether_changed_before_or_after_the_client_saw_it() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let guard = Arc::new(InMemoryReplayGuard::new(8));
    let server = v.server(guard.clone());
    let mut rng = test_rng(24);
    // After: the echoed cookie in ClientAttest is changed (key id, nonce, ciphertext, tag).
    let (_, attest) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    for i in [6usize, 7, 20, 60, 135] {
        let mut m = attest.clone();
        m[i] ^= 0x10;
        assert_eq!(
            server.handle_client_attest(&m, NOW).unwrap_err(),
            PeerMisbehaved::InvalidCookie.into(),
            "byte {i}"
        );
    }
    // Before: the cookie in ServerInitAndAttest is changed; the client (which cannot tell) echoes
    // it, and the server refuses it.
    let (state, ci) =
        ClientHandshake::start(v.client_config(), v.suite(), ClientId::NULL, &mut rng);
    let mut sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
    sia[100] ^= 1;
    // The cookie enters the key schedule, so the client already fails to decrypt.
    assert_eq!(
        state.handle_server_attest(&sia, &mut rng).unwrap_err(),
        PeerMisbehaved::DecryptionFailed.into()
    );
    assert!(guard.is_empty());
}

#[test]
fn suite_must_equal_the_cookies_suite() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    let mut rng = test_rng(25);
    let (_, mut attest) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    attest[5] ^= 0x02; // suite 1 -> 3
    assert_eq!(
        server.handle_client_attest(&attest, NOW).unwrap_err(),
        Error::InvalidMessage(InvalidMessage::ParameterMismatch)
    );
}

#[test]
fn full_replay_cache_refuses_new_cookies_until_entries_expire() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let guard = Arc::new(InMemoryReplayGuard::new(1));
    let server = v.server(guard.clone());
    let mut rng = test_rng(26);
    let (_, first) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    let (_, second) = client_until_attest(v, &server, ClientId::NULL, at(15), &mut rng);
    assert!(server.handle_client_attest(&first, at(16)).is_ok());
    assert_eq!(
        server.handle_client_attest(&second, at(16)).unwrap_err(),
        Refused::ReplayCacheFull.into()
    );
    // The first cookie expired at NOW+20: its entry is purged, the second is accepted.
    assert!(server.handle_client_attest(&second, at(21)).is_ok());
    assert_eq!(guard.len(), 1);
}

#[test]
fn session_attest_types_are_not_identity_attest() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let guard = Arc::new(InMemoryReplayGuard::new(8));
    let server = v.server(guard.clone());
    let mut rng = test_rng(27);
    let (_, mut attest) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    for t in [0x21u8, 0x22] {
        attest[0] = t;
        assert_eq!(
            server.handle_client_attest(&attest, NOW).unwrap_err(),
            InvalidMessage::UnexpectedType {
                expected: 0x11,
                got: t
            }
            .into()
        );
    }
    assert!(guard.is_empty());
}
