//! A session moving between two server tables (two nodes): exact hand-over of the receive
//! window and send counter, the crash path (a floor instead of the exact window), and
//! reservations that stop a node at its limits.

use rand_core::OsRng;
use xtt_proto::cert::{RootId, ServerCertificate, DEFAULT_RESERVED};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::record::{PayloadType, RecordError, RecordState, Reservation, SessionId};
use xtt_proto::session::{ClientSession, ServerSession};
use xtt_proto::session_table::{SessionTable, SessionTableConfig};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const Q: PayloadType = PayloadType::QueueProtocol;
const NOW: UnixTime = UnixTime(1_800_000_000);

fn pair() -> (ServerSession, ClientSession) {
    let id = SessionId([0x5e; 16]);
    let client = ClientId([0xc1; 16]);
    let suite = SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512;
    let root = LongtermKeyPair::generate(&mut OsRng);
    let key = LongtermKeyPair::generate(&mut OsRng);
    let cert =
        ServerCertificate::issue(&DEFAULT_RESERVED, &RootId([1; 16]), key.public_key(), &root)
            .unwrap();
    let seed = [9u8; 64];
    (
        ServerSession::new_for_testing_only(id, client, suite, &seed),
        ServerSession::client_for_testing_only(id, client, suite, &seed, cert),
    )
}

fn table() -> SessionTable<u8> {
    SessionTable::new(SessionTableConfig::default())
}

/// A node's copy of the session: rebuilt from exported keys, as a shared store would.
fn moved(s: &ServerSession, state: &RecordState, limits: Reservation) -> ServerSession {
    ServerSession::restore(
        s.id(),
        s.client_id(),
        s.suite(),
        &s.export_keys(),
        state,
        limits,
    )
}

#[test]
fn exact_hand_over_accepts_each_record_once_and_never_reuses_a_send_number() {
    let (server, mut client) = pair();
    let id = server.id();
    let records: Vec<_> = (0..6).map(|i| client.seal(Q, &[i]).unwrap()).collect();
    let limits = Reservation {
        recv_limit: 100,
        send_limit: 100,
    };
    let b = table();
    b.insert(server.with_reservation(limits), 1, NOW).unwrap();
    // Node B takes 0, 1, 3 (2 is late) and sends two records.
    for i in [0, 1, 3] {
        b.open(&records[i], 1, NOW).unwrap();
    }
    for _ in 0..2 {
        let (_, bytes) = b.seal_to_session(&id, Q, b"from b", NOW).unwrap();
        client.open(&bytes).unwrap();
    }
    let state = b.take_state(&id, NOW).unwrap();
    assert!(b.is_empty());
    assert_eq!(state.send_next, 2);
    assert_eq!(state.recv_next, 4);

    // Node C continues exactly: 2 (never accepted) is fine, 0, 1, 3 are duplicates.
    let c = table();
    let (same_keys, _) = pair();
    c.insert(moved(&same_keys, &state, limits), 2, NOW).unwrap();
    for i in [0, 1, 3] {
        assert_eq!(
            c.open(&records[i], 2, NOW),
            Err(RecordError::Duplicate),
            "{i}"
        );
    }
    assert_eq!(c.open(&records[2], 2, NOW).unwrap().record.payload[..], [2]);
    assert_eq!(c.open(&records[4], 2, NOW).unwrap().record.seq, 4);
    let (_, bytes) = c.seal_to_session(&id, Q, b"from c", NOW).unwrap();
    let opened = client.open(&bytes).unwrap();
    assert_eq!(opened.seq, 2, "C continues B's send numbers");
}

#[test]
fn after_a_crash_the_next_node_starts_at_the_reservation() {
    let (server, mut client) = pair();
    let id = server.id();
    let k = 8;
    let limits = Reservation {
        recv_limit: k,
        send_limit: k,
    };
    let b = table();
    b.insert(
        moved(&server, &RecordState::after_crash(0, 0), limits),
        1,
        NOW,
    )
    .unwrap();
    let records: Vec<_> = (0..20u8).map(|i| client.seal(Q, &[i]).unwrap()).collect();
    for r in &records[..5] {
        b.open(r, 1, NOW).unwrap();
    }
    // B stops at its reservation: authentic records beyond it are not recorded.
    assert_eq!(
        b.open(&records[8], 1, NOW),
        Err(RecordError::BeyondReservation(8))
    );
    for _ in 0..k {
        b.seal_to_session(&id, Q, b"x", NOW).unwrap();
    }
    assert_eq!(
        b.seal_to_session(&id, Q, b"x", NOW),
        Err(RecordError::SendReservationExhausted)
    );
    // B "crashes" holding its state; C knows only the reservation (8, 8).
    let c = table();
    let next = Reservation {
        recv_limit: 2 * k,
        send_limit: 2 * k,
    };
    c.insert(
        moved(&server, &RecordState::after_crash(k, k), next),
        2,
        NOW,
    )
    .unwrap();
    // Everything B accepted or could have accepted (below 8) is refused on C: 5..8 are lost.
    for (i, r) in records.iter().enumerate().take(8) {
        assert!(c.open(r, 2, NOW).is_err(), "{i}");
    }
    for (i, r) in records.iter().enumerate().skip(8).take(8) {
        assert_eq!(c.open(r, 2, NOW).unwrap().record.seq as usize, i);
    }
    // B may still accept within its own (disjoint) reservation, never C's numbers.
    assert!(b.open(&records[9], 1, NOW).is_err());
    let (_, bytes) = c.seal_to_session(&id, Q, b"from c", NOW).unwrap();
    assert_eq!(
        client.open(&bytes).unwrap().seq,
        k,
        "C sends above B's range"
    );
    assert!(c.raise_reservation(&id, next));
}

#[test]
fn a_session_past_its_idle_timeout_is_not_handed_on() {
    let (server, _) = pair();
    let id = server.id();
    let b = table();
    b.insert(server, 1, NOW).unwrap();
    let idle = SessionTableConfig::default().idle_timeout_secs;
    assert!(
        b.take_state(&id, UnixTime(NOW.0 + idle + 1)).is_none(),
        "an idle-expired session must end, not move to another node"
    );
    assert!(b.is_empty(), "and it is gone from the table");
}
