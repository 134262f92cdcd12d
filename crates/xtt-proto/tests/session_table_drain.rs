//! A server node stopping gracefully takes every session out of its table with its exact
//! record state (`SessionTable::take_all_states`), to hand them all to the shared store.

use xtt_proto::record::{PayloadType, SessionId};
use xtt_proto::session::ServerSession;
use xtt_proto::session_table::{SessionTable, SessionTableConfig};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const Q: PayloadType = PayloadType::QueueProtocol;
const NOW: UnixTime = UnixTime(1_800_000_000);
const SUITE: SuiteSpec = SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512;

#[test]
fn take_all_states_empties_the_table_with_each_sessions_exact_state() {
    let table: SessionTable<u8> = SessionTable::new(SessionTableConfig::default());
    let seed = [7u8; 64];
    let mut clients = Vec::new();
    for n in 1..=3u8 {
        let (id, cid) = (SessionId([n; 16]), ClientId([0xc0 | n; 16]));
        table
            .insert(
                ServerSession::new_for_testing_only(id, cid, SUITE, &seed),
                n,
                NOW,
            )
            .unwrap();
        clients.push(ServerSession::client_for_testing_only(
            id,
            cid,
            SUITE,
            &seed,
            xtt_proto::cert::ServerCertificate::issue(
                &xtt_proto::cert::DEFAULT_RESERVED,
                &xtt_proto::cert::RootId([1; 16]),
                xtt_proto::longterm::LongtermKeyPair::generate(&mut rand_core::OsRng).public_key(),
                &xtt_proto::longterm::LongtermKeyPair::generate(&mut rand_core::OsRng),
            )
            .unwrap(),
        ));
    }
    // Session n receives n records and sends one.
    for (n, client) in (1..=3u8).zip(clients.iter_mut()) {
        for _ in 0..n {
            let record = client.seal(Q, b"up").unwrap();
            table.open(&record, 0, NOW).unwrap();
        }
        table
            .seal_to_session(&SessionId([n; 16]), Q, b"down", NOW)
            .unwrap();
    }
    let mut states = table.take_all_states();
    states.sort_by_key(|(id, _)| id.0);
    assert_eq!(states.len(), 3);
    for ((id, state), n) in states.iter().zip(1..=3u8) {
        assert_eq!(*id, SessionId([n; 16]));
        assert_eq!(state.recv_next, u64::from(n));
        assert_eq!(state.send_next, 1);
    }
    assert!(table.is_empty());
    assert_eq!(table.session_of(&ClientId([0xc1; 16])), None);
    assert!(table.take_all_states().is_empty());
}
