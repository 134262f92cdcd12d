//! In-memory handshakes between our client and our stateless server, every suite, with the real
//! ECDAA crate and the xtt sample DAA member.

mod common;

use std::sync::Arc;

use common::{client_until_attest, load_vectors, test_rng, TestAuthority};
use xtt_proto::cert::{RootCertificate, RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::client::{ClientConfig, ClientHandshake};
use xtt_proto::codec::ERROR_MESSAGE;
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::error::{Error, PeerMisbehaved, Refused};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);

#[test]
fn full_handshake_with_server_assigned_id_in_every_suite() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let authority = TestAuthority::new();
    let mut rng = test_rng(1);
    for suite in SuiteSpec::ALL {
        let guard = Arc::new(InMemoryReplayGuard::new(8));
        let server = v.server(guard.clone());
        let (state, ci) =
            ClientHandshake::start(v.client_config(), suite, ClientId::NULL, &mut rng);
        let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
        let (state, attest) = state.handle_server_attest(&sia, &mut rng).unwrap();
        let attested = server
            .handle_client_attest(&attest, UnixTime(NOW.0 + 3))
            .unwrap();
        assert_eq!(attested.suite(), suite);
        assert_eq!(attested.group_id().0.to_vec(), v.hex("/daa/group_id"));
        assert!(attested.requested_id().is_null());
        let verified = attested.verify_group(&v.verifier(), &mut rng).unwrap();
        assert_eq!(
            verified.pseudonym().0.to_vec(),
            v.hex("/result/client_daa_pseudonym")
        );
        let (finished, provisioned) = verified.assign_and_finish(&authority).unwrap();
        let identity = state.handle_server_finished(&finished).unwrap();
        assert_eq!(identity.client_id, provisioned.client_id);
        assert!(!identity.client_id.is_null());
        assert_eq!(
            identity.longterm_key.public_key(),
            &provisioned.longterm_key
        );
        assert_eq!(identity.pseudonym, Some(provisioned.pseudonym));
        assert_eq!(identity.suite, suite);
        assert_eq!(guard.len(), 1);
    }
}

#[test]
fn full_handshake_with_requested_id_in_every_suite() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(2);
    let requested: ClientId = "7265:7175:6573:7465:642D:6964:2D6B:6174".parse().unwrap();
    for suite in SuiteSpec::ALL {
        let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
        let (state, ci) = ClientHandshake::start(v.client_config(), suite, requested, &mut rng);
        let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
        let (state, attest) = state.handle_server_attest(&sia, &mut rng).unwrap();
        let verified = server
            .handle_client_attest(&attest, NOW)
            .unwrap()
            .verify_group(&v.verifier(), &mut rng)
            .unwrap();
        assert_eq!(verified.requested_id(), &requested);
        // An async driver commits the registration, then finishes with the committed id.
        let (finished, provisioned) = verified.finish(requested).unwrap();
        assert_eq!(provisioned.client_id, requested);
        let identity = state.handle_server_finished(&finished).unwrap();
        assert_eq!(identity.client_id, requested);
    }
}

#[test]
fn server_refuses_to_grant_a_different_id_than_requested() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(3);
    let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    let (_, attest) = client_until_attest(v, &server, ClientId([7; 16]), NOW, &mut rng);
    let verified = server
        .handle_client_attest(&attest, NOW)
        .unwrap()
        .verify_group(&v.verifier(), &mut rng)
        .unwrap();
    let err = verified.finish(ClientId([8; 16])).unwrap_err();
    assert_eq!(err, Refused::AssignedIdMismatch.into());
    assert_eq!(err.alert_bytes(), Some(ERROR_MESSAGE));
}

#[test]
fn refused_identity_sends_error_and_client_ends_cleanly() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(4);
    let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    let (state, attest) = client_until_attest(v, &server, ClientId([7; 16]), NOW, &mut rng);
    let verified = server
        .handle_client_attest(&attest, NOW)
        .unwrap()
        .verify_group(&v.verifier(), &mut rng)
        .unwrap();
    let authority = TestAuthority {
        refuse_specific: true,
        ..TestAuthority::new()
    };
    let err = verified.assign_and_finish(&authority).unwrap_err();
    assert_eq!(err, Refused::IdentityRefused.into());
    let alert = err.alert_bytes().unwrap();
    let client_err = state.handle_server_finished(&alert).unwrap_err();
    assert_eq!(client_err, Error::ReceivedErrorMessage);
    assert_eq!(client_err.alert_bytes(), None);
}

#[test]
fn wrong_group_is_rejected_by_the_daa_verifier() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(6);
    let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    let (_, attest) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    let attested = server.handle_client_attest(&attest, NOW).unwrap();
    // Same gpk, different basename: the signature does not verify.
    let gpk = xtt_ecdaa::GroupPublicKey::from_bytes(&v.hex("/daa/group_public_key")).unwrap();
    let other = xtt_ecdaa::GroupVerifier::new(gpk, b"OTHER BASENAME").unwrap();
    let err = attested.verify_group(&other, &mut rng).unwrap_err();
    assert!(matches!(
        err,
        Error::PeerMisbehaved(PeerMisbehaved::BadDaaSignature(_))
    ));
}

#[test]
fn batch_style_verification_through_daa_message_and_signature() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(7);
    let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    let (state, attest) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
    let attested = server.handle_client_attest(&attest, NOW).unwrap();
    let verifier = v.verifier();
    let nym = xtt_proto::daa::DaaVerifier::verify(
        &verifier,
        attested.daa_message(),
        attested.daa_signature(),
        &mut rng,
    )
    .unwrap();
    // A pseudonym that is not the signature's is refused.
    let mut wrong = nym;
    wrong.0[64] ^= 1;
    let (attested_again, _) = {
        let (st2, attest2) = client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
        (server.handle_client_attest(&attest2, NOW).unwrap(), st2)
    };
    assert!(attested_again.with_verified_pseudonym(wrong).is_err());
    let verified = attested.with_verified_pseudonym(nym).unwrap();
    let (fin, _) = verified.finish(ClientId([3; 16])).unwrap();
    assert_eq!(
        state.handle_server_finished(&fin).unwrap().client_id,
        ClientId([3; 16])
    );
}

#[test]
fn handshake_with_freshly_issued_root_and_certificate_and_configured_longterm_key() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(8);
    let root_key = LongtermKeyPair::generate(&mut rng);
    let root = RootCertificate {
        id: RootId([0x42; 16]),
        public_key: *root_key.public_key(),
    };
    let server_key = LongtermKeyPair::generate(&mut rng);
    let cert = ServerCertificate::issue(
        &DEFAULT_RESERVED,
        &root.id,
        server_key.public_key(),
        &root_key,
    )
    .unwrap();
    let server = Server::new(ServerConfig {
        certificate: cert,
        signing_key: server_key,
        cookie_keys: CookieKeyring::new(CookieKey::generate(1, &mut rng)),
        cookie_lifetime_secs: 10,
        replay_guard: Arc::new(InMemoryReplayGuard::new(4)),
    });
    let longterm = LongtermKeyPair::generate(&mut rng);
    let config = ClientConfig {
        roots: Arc::new(vec![root.clone()]),
        daa: Arc::new(v.member()),
        longterm_key: Some(longterm.clone()),
    };
    let (state, ci) = ClientHandshake::start(
        config,
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b,
        ClientId::NULL,
        &mut rng,
    );
    let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
    let (state, attest) = state.handle_server_attest(&sia, &mut rng).unwrap();
    let attested = server.handle_client_attest(&attest, NOW).unwrap();
    assert_eq!(attested.longterm_public_key(), longterm.public_key());
    let (fin, _) = attested
        .verify_group(&v.verifier(), &mut rng)
        .unwrap()
        .finish(ClientId([1; 16]))
        .unwrap();
    let id = state.handle_server_finished(&fin).unwrap();
    assert_eq!(id.longterm_key.public_key(), longterm.public_key());

    // A client that does not trust this root refuses it (and would send Error).
    let (state, ci) = ClientHandshake::start(
        v.client_config(),
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b,
        ClientId::NULL,
        &mut rng,
    );
    let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
    let err = state.handle_server_attest(&sia, &mut rng).unwrap_err();
    assert_eq!(err, Refused::UnknownRoot.into());
    assert_eq!(err.alert_bytes(), Some(ERROR_MESSAGE));
}

/// A man in the middle who replays a genuine server's certificate (public: every
/// ServerInitAndAttest carries it) but holds another private key. The certificate verifies against
/// the trusted root, so only the client's check of the server's handshake signature under the
/// certificate's key stops it. Bit flips of the encrypted ServerInitAndAttest (corruption.rs) fail
/// the AEAD before that check; this server encrypts correctly and signs with the wrong key.
#[test]
fn server_signing_with_another_key_than_its_certificates_is_refused_in_every_suite() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(10);
    let genuine = v.server(Arc::new(InMemoryReplayGuard::new(8)));
    // The certificate is genuine: the trusted root vouches for the vector's server key ...
    let certificate = v.server_certificate();
    assert_eq!(
        certificate.verify(&v.root()).unwrap(),
        *v.server_key().public_key()
    );
    // ... which the impostor does not have.
    let impostor_key = LongtermKeyPair::generate(&mut rng);
    assert_ne!(impostor_key.public_key(), v.server_key().public_key());
    let impostor = Server::new(ServerConfig {
        certificate,
        signing_key: impostor_key,
        cookie_keys: CookieKeyring::new(CookieKey::generate(1, &mut rng)),
        cookie_lifetime_secs: 20,
        replay_guard: Arc::new(InMemoryReplayGuard::new(8)),
    });
    for suite in SuiteSpec::ALL {
        // The same client configuration accepts the genuine server ...
        let (state, ci) =
            ClientHandshake::start(v.client_config(), suite, ClientId::NULL, &mut rng);
        let sia = genuine.handle_client_init(&ci, NOW, &mut rng).unwrap();
        assert!(
            state.handle_server_attest(&sia, &mut rng).is_ok(),
            "{suite:?}"
        );
        // ... and refuses the impostor, with an Error to send and no ClientAttest.
        let (state, ci) =
            ClientHandshake::start(v.client_config(), suite, ClientId::NULL, &mut rng);
        let sia = impostor.handle_client_init(&ci, NOW, &mut rng).unwrap();
        let err = state.handle_server_attest(&sia, &mut rng).unwrap_err();
        assert_eq!(
            err,
            Error::PeerMisbehaved(PeerMisbehaved::BadServerSignature),
            "{suite:?}"
        );
        assert_eq!(err.alert_bytes(), Some(ERROR_MESSAGE));
    }
}

#[test]
fn received_error_message_ends_either_side_without_a_reply() {
    let vectors = load_vectors();
    let v = &vectors[0];
    let mut rng = test_rng(9);
    let guard = Arc::new(InMemoryReplayGuard::new(8));
    let server = v.server(guard.clone());
    // Whatever the version byte (C sends whatever its context holds).
    for error in [ERROR_MESSAGE, [0x41, 0x00, 0x04, 0xff]] {
        let e = server
            .handle_client_init(&error, NOW, &mut rng)
            .unwrap_err();
        assert_eq!(
            (e.clone(), e.alert_bytes()),
            (Error::ReceivedErrorMessage, None)
        );
        let e = server.handle_client_attest(&error, NOW).unwrap_err();
        assert_eq!(
            (e.clone(), e.alert_bytes()),
            (Error::ReceivedErrorMessage, None)
        );
        let (state, _) =
            ClientHandshake::start(v.client_config(), v.suite(), ClientId::NULL, &mut rng);
        let e = state.handle_server_attest(&error, &mut rng).unwrap_err();
        assert_eq!(
            (e.clone(), e.alert_bytes()),
            (Error::ReceivedErrorMessage, None)
        );
    }
    // The C client tool's 4 bytes of garbage instead of an Error: a failed handshake too.
    let e = server
        .handle_client_attest(&[0x9c, 0x3f, 0x00, 0x12], NOW)
        .unwrap_err();
    assert_eq!(e.alert_bytes(), Some(ERROR_MESSAGE));
    assert!(guard.is_empty());
}
