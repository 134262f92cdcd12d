//! Every truncated prefix and every single-bit flip of each handshake message is rejected, by the
//! decoder or by the state machine fed the message. Uses the C-recorded messages and, where the
//! recorded message cannot reach the interesting checks of our stateless server (C's cookie is
//! not ours), messages our own client produced.

mod common;

use std::sync::Arc;

use common::{load_vectors, test_rng, Vector};
use xtt_proto::client::{ClientConfig, ClientHandshake, ExpectServerAttest, ExpectServerFinished};
use xtt_proto::codec::{decode_header, MAX_HANDSHAKE_LEN};
use xtt_proto::cookie::InMemoryReplayGuard;
use xtt_proto::msgs::*;
use xtt_proto::{ClientId, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);

/// Our client in the state C's client was in before ServerInitAndAttest (same RNG draws).
fn replayed_client(v: &Vector, config: &ClientConfig) -> (ExpectServerAttest, common::RecordedRng) {
    let mut rng = v.rng();
    rng.skip_to(v.offset_of_draw("client_x25519_private_key"));
    let (state, _) = ClientHandshake::start(
        config.clone(),
        v.suite(),
        ClientId(v.arr("/result/requested_client_id")),
        &mut rng,
    );
    rng.skip_to(v.offset_of_draw("ecdsa_k_client_longterm_signature"));
    (state, rng)
}

fn replayed_client_expecting_finished(v: &Vector, config: &ClientConfig) -> ExpectServerFinished {
    let (state, mut rng) = replayed_client(v, config);
    state
        .handle_server_attest(&v.message(1), &mut rng)
        .unwrap()
        .0
}

fn flips(msg: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..msg.len() * 8).map(move |bit| {
        let mut m = msg.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        m
    })
}

#[test]
fn every_truncated_prefix_of_every_recorded_message_is_rejected() {
    for v in load_vectors() {
        let server = v.server(Arc::new(InMemoryReplayGuard::new(4)));
        let config = v.client_config();
        let mut rng = test_rng(10);
        for i in 0..4 {
            let m = v.message(i);
            for n in 0..m.len() {
                let p = &m[..n];
                if n < 4 {
                    assert!(decode_header(p, MAX_HANDSHAKE_LEN).is_err());
                }
                assert!(ClientInit::decode(p).is_err());
                assert!(ServerInitAndAttest::decode(p).is_err());
                assert!(IdentityClientAttest::decode(p).is_err());
                assert!(IdentityServerFinished::decode(p).is_err());
                assert!(server.handle_client_init(p, NOW, &mut rng).is_err());
                assert!(server.handle_client_attest(p, NOW).is_err());
            }
        }
        // The client state machines, fed prefixes of the messages they expect.
        let sia = v.message(1);
        for n in 0..sia.len() {
            let (state, mut rng) = replayed_client(&v, &config);
            assert!(
                state.handle_server_attest(&sia[..n], &mut rng).is_err(),
                "{} SIA[..{n}]",
                v.name
            );
        }
        let sf = v.message(3);
        for n in (0..sf.len()).step_by(7).chain([sf.len() - 1]) {
            let state = replayed_client_expecting_finished(&v, &config);
            assert!(state.handle_server_finished(&sf[..n]).is_err());
        }
    }
}

#[test]
fn every_bit_flip_of_server_init_and_attest_is_rejected_by_the_client() {
    for v in load_vectors() {
        let config = v.client_config();
        // Sanity: the unmodified message is accepted.
        let (state, mut rng) = replayed_client(&v, &config);
        assert!(state.handle_server_attest(&v.message(1), &mut rng).is_ok());
        for (bit, m) in flips(&v.message(1)).enumerate() {
            let (state, mut rng) = replayed_client(&v, &config);
            assert!(
                state.handle_server_attest(&m, &mut rng).is_err(),
                "{}: bit {bit} accepted",
                v.name
            );
        }
    }
}

#[test]
fn every_bit_flip_of_server_finished_is_rejected_by_the_client() {
    for v in load_vectors() {
        let config = v.client_config();
        for (bit, m) in flips(&v.message(3)).enumerate() {
            let state = replayed_client_expecting_finished(&v, &config);
            assert!(
                state.handle_server_finished(&m).is_err(),
                "{}: bit {bit} accepted",
                v.name
            );
        }
    }
}

#[test]
fn every_bit_flip_of_client_init_is_rejected_by_the_server_or_then_by_the_client() {
    for v in load_vectors() {
        let config = v.client_config();
        let server = v.server(Arc::new(InMemoryReplayGuard::new(4)));
        // Bits the server accepted, so that the client-side check below actually ran for them.
        let mut reached = Vec::new();
        for (bit, m) in flips(&v.message(0)).enumerate() {
            let Ok(sia) = server.handle_client_init(&m, NOW, &mut test_rng(bit as u64)) else {
                continue; // rejected by the server
            };
            reached.push(bit);
            // Accepted by the server (a flipped nonce or key share is a valid ClientInit), but the
            // transcript no longer matches the client's: the client rejects the answer.
            let (state, mut rng) = replayed_client(&v, &config);
            assert!(
                state.handle_server_attest(&sia, &mut rng).is_err(),
                "{}: bit {bit} survived",
                v.name
            );
        }
        // Without this the loop above could skip every flip and pass. Every flip of the nonce or
        // key share (the 64 bytes after the 6-byte header) is a well-formed ClientInit the server
        // must answer, so all 512 of them reach the client; so do the 2 header flips that turn
        // the suite into another supported one. Nothing else does.
        let header_bits = (CLIENT_INIT_LEN - SIGNING_NONCE_LEN - KEY_SHARE_LEN) * 8;
        let body: Vec<usize> = (header_bits..CLIENT_INIT_LEN * 8).collect();
        assert_eq!(body.len(), 512);
        let missed: Vec<_> = body.iter().filter(|b| !reached.contains(b)).collect();
        assert!(
            missed.is_empty(),
            "{}: {} of 512 nonce/key-share flips never reached the client (first: {:?})",
            v.name,
            missed.len(),
            &missed[..missed.len().min(8)]
        );
        assert_eq!(reached.len(), 514, "{}: flips reaching the client", v.name);
    }
}

#[test]
fn every_bit_flip_of_client_attest_is_rejected_by_the_server() {
    let vectors = load_vectors();
    for v in &vectors {
        // C's recorded ClientAttest carries C's cookie: rejected as it is and with any flip.
        let guard = Arc::new(InMemoryReplayGuard::new(4));
        let server = v.server(guard.clone());
        for m in flips(&v.message(2)).chain([v.message(2)]) {
            assert!(server.handle_client_attest(&m, NOW).is_err());
        }
        assert!(guard.is_empty());
    }
    // Our own ClientAttest, one per suite: every flip fails, nothing is recorded, and the
    // original is still accepted afterwards.
    for v in vectors.iter().filter(|v| !v.name.contains("requested")) {
        let guard = Arc::new(InMemoryReplayGuard::new(4));
        let server = v.server(guard.clone());
        let mut rng = test_rng(11);
        let (_, attest) = common::client_until_attest(v, &server, ClientId::NULL, NOW, &mut rng);
        for (bit, m) in flips(&attest).enumerate() {
            assert!(
                server.handle_client_attest(&m, NOW).is_err(),
                "{}: bit {bit}",
                v.name
            );
        }
        assert!(guard.is_empty(), "failed attempts leave no state");
        assert!(server.handle_client_attest(&attest, NOW).is_ok());
        assert_eq!(guard.len(), 1);
    }
}
