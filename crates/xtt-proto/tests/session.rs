//! Session handshakes (XTT-SESSION §1–2) and records (§3–4) in memory, every suite, between our
//! client and our stateless server, for a device that first went through real identity
//! provisioning (ECDAA member of the xtt sample group).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use common::{load_vectors, test_rng, TestAuthority, Vector};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use xtt_proto::cert::RememberVerified;
use xtt_proto::client::ClientHandshake;
use xtt_proto::codec::ERROR_MESSAGE;
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::error::{Error, InvalidMessage, PeerMisbehaved, Refused};
use xtt_proto::key_schedule::{DirectionKeys, HandshakeKeys};
use xtt_proto::longterm::{LongtermKeyPair, LongtermPublicKey};
use xtt_proto::msgs::{
    ServerInitAndAttest, RECORD_OVERHEAD, SERVER_INIT_PRE_COOKIE_LEN, SESSION_CLIENT_ATTEST_LEN,
    SESSION_SERVER_FINISHED_LEN,
};
use xtt_proto::record::{PayloadType, RecordError, SessionId, MAX_PAYLOAD_LEN};
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::session::{
    AcceptedSession, ClientSession, SessionClientConfig, SessionClientHandshake,
    SessionFinishedPlaintext, SESSION_FINISHED_PLAINTEXT_LEN,
};
use xtt_proto::session_table::{SessionTable, SessionTableConfig};
use xtt_proto::transcript;
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);

/// A device provisioned once per test binary by a real identity handshake.
struct Device {
    client_id: ClientId,
    longterm: LongtermKeyPair,
}

fn vector() -> &'static Vector {
    static V: OnceLock<Vector> = OnceLock::new();
    V.get_or_init(|| load_vectors().remove(0))
}

fn device() -> &'static Device {
    static D: OnceLock<Device> = OnceLock::new();
    D.get_or_init(|| {
        let v = vector();
        let mut rng = test_rng(99);
        let server = v.server(Arc::new(InMemoryReplayGuard::new(8)));
        let (state, ci) = ClientHandshake::start(
            v.client_config(),
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
            ClientId::NULL,
            &mut rng,
        );
        let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
        let (state, attest) = state.handle_server_attest(&sia, &mut rng).unwrap();
        let (finished, provisioned) = server
            .handle_client_attest(&attest, NOW)
            .unwrap()
            .verify_group(&v.verifier(), &mut rng)
            .unwrap()
            .assign_and_finish(&TestAuthority::new())
            .unwrap();
        let identity = state.handle_server_finished(&finished).unwrap();
        assert_eq!(identity.client_id, provisioned.client_id);
        Device {
            client_id: identity.client_id,
            longterm: identity.longterm_key,
        }
    })
}

struct Fixture {
    server: Server,
    guard: Arc<InMemoryReplayGuard>,
    registry: HashMap<ClientId, LongtermPublicKey>,
    rng: ChaCha20Rng,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        let guard = Arc::new(InMemoryReplayGuard::new(64));
        let d = device();
        let mut registry = HashMap::new();
        registry.insert(d.client_id, *d.longterm.public_key());
        Self {
            server: vector().server(guard.clone()),
            guard,
            registry,
            rng: test_rng(seed),
        }
    }

    fn config(&self) -> SessionClientConfig {
        let d = device();
        SessionClientConfig {
            roots: Arc::new(vector().root()),
            client_id: d.client_id,
            longterm_key: d.longterm.clone(),
        }
    }

    /// Runs the handshake up to the client's attest flight.
    fn attest(
        &mut self,
        config: SessionClientConfig,
        suite: SuiteSpec,
        early: Option<(PayloadType, &[u8])>,
    ) -> (xtt_proto::session::ExpectSessionServerFinished, Vec<u8>) {
        let (state, ci) = SessionClientHandshake::start(config, suite, &mut self.rng);
        let sia = self
            .server
            .handle_client_init(&ci, NOW, &mut self.rng)
            .unwrap();
        state
            .handle_server_attest(&sia, early, &mut self.rng)
            .unwrap()
    }

    fn accept(&mut self, flight: &[u8]) -> Result<AcceptedSession, Error> {
        self.server.handle_session_client_attest(
            flight,
            UnixTime(NOW.0 + 1),
            &self.registry,
            &mut self.rng,
        )
    }

    /// A full handshake; the session is stored in `table` with peer token `peer`.
    fn establish(
        &mut self,
        suite: SuiteSpec,
        early: Option<(PayloadType, &[u8])>,
        table: &SessionTable<u32>,
        peer: u32,
    ) -> (ClientSession, AcceptedSessionInfo) {
        let (state, flight) = self.attest(self.config(), suite, early);
        let accepted = self.accept(&flight).unwrap();
        let info = AcceptedSessionInfo {
            flight_len: flight.len(),
            finished_len: accepted.finished.len(),
            early: accepted
                .early_data
                .as_ref()
                .map(|r| (r.payload_type, r.payload.to_vec(), r.seq)),
        };
        let finished = accepted.finished.clone();
        table.insert(accepted.session, peer, NOW).unwrap();
        let session = state.handle_server_finished(&finished).unwrap();
        (session, info)
    }
}

struct AcceptedSessionInfo {
    flight_len: usize,
    finished_len: usize,
    early: Option<(PayloadType, Vec<u8>, u32)>,
}

fn table() -> SessionTable<u32> {
    SessionTable::new(SessionTableConfig {
        shards: 4,
        idle_timeout_secs: 60,
        max_lifetime_secs: 3600,
        max_sessions: 1000,
        max_sessions_per_client: 4,
        hot_sessions_per_shard: 2,
    })
}

/// Records both ways, both payload types.
fn exchange(client: &mut ClientSession, table: &SessionTable<u32>, peer: u32) {
    for (pt, payload) in [
        (PayloadType::QueueProtocol, &b"temperature=21.5"[..]),
        (PayloadType::Ipv6, &[0x60, 0, 0, 0, 0, 8, 17, 64][..]),
        (PayloadType::QueueProtocol, &[][..]),
    ] {
        let rec = client.seal(pt, payload).unwrap();
        assert_eq!(rec.len(), RECORD_OVERHEAD + payload.len());
        let got = table.open(&rec, peer, NOW).unwrap();
        assert_eq!(got.client_id, device().client_id);
        assert_eq!(got.record.payload_type, pt);
        assert_eq!(&got.record.payload[..], payload);
        let (to, back) = table
            .seal_to_client(&device().client_id, pt, payload, NOW)
            .unwrap();
        assert_eq!(to, peer);
        let opened = client.open(&back).unwrap();
        assert_eq!(opened.payload_type, pt);
        assert_eq!(&opened.payload[..], payload);
    }
}

#[test]
fn session_without_payload_in_every_suite() {
    let mut fx = Fixture::new(1);
    for suite in SuiteSpec::ALL {
        let table = table();
        let (mut client, info) = fx.establish(suite, None, &table, 7);
        assert_eq!(info.flight_len, SESSION_CLIENT_ATTEST_LEN);
        assert_eq!(info.finished_len, SESSION_SERVER_FINISHED_LEN);
        assert!(info.early.is_none());
        assert!(!client.session_id().is_null());
        assert_eq!(client.suite(), suite);
        assert_eq!(client.next_send_seq(), 0);
        assert_eq!(
            table.session_of(&device().client_id),
            Some(client.session_id())
        );
        exchange(&mut client, &table, 7);
        assert_eq!(table.counters().delivered, 3);
    }
    assert_eq!(fx.guard.len(), SuiteSpec::ALL.len());
}

#[test]
fn early_data_rides_with_the_attest_in_every_suite() {
    let mut fx = Fixture::new(2);
    for suite in SuiteSpec::ALL {
        let table = table();
        let payload = b"first reading, one round trip after hello";
        let (mut client, info) = fx.establish(
            suite,
            Some((PayloadType::QueueProtocol, payload)),
            &table,
            3,
        );
        assert_eq!(
            info.flight_len,
            SESSION_CLIENT_ATTEST_LEN + RECORD_OVERHEAD + payload.len()
        );
        assert_eq!(
            info.early,
            Some((PayloadType::QueueProtocol, payload.to_vec(), 0))
        );
        // The early record was number 0; the next one is 1 and the server takes it.
        assert_eq!(client.next_send_seq(), 1);
        exchange(&mut client, &table, 3);
    }
}

#[test]
fn integrity_only_suites_send_payload_in_clear_but_authenticated() {
    let mut fx = Fixture::new(3);
    let secret = b"the payload is already end-to-end encrypted";
    for suite in SuiteSpec::ALL {
        let table = table();
        let (mut client, _) = fx.establish(suite, None, &table, 1);
        let rec = client.seal(PayloadType::Ipv6, secret).unwrap();
        let visible = rec.windows(secret.len()).any(|w| w == secret);
        assert_eq!(visible, suite.is_integrity_only(), "{suite:?}");
        let mut flipped = rec.clone();
        flipped[30] ^= 0x01;
        assert_eq!(table.open(&flipped, 1, NOW), Err(RecordError::Forged));
        assert!(table.open(&rec, 1, NOW).is_ok());
    }
}

#[test]
fn tampered_replayed_and_reordered_records_are_dropped_and_the_session_survives() {
    let mut fx = Fixture::new(4);
    for suite in SuiteSpec::ALL {
        let table = table();
        let (mut client, _) = fx.establish(suite, None, &table, 1);
        let recs: Vec<Vec<u8>> = (0..5u8)
            .map(|i| client.seal(PayloadType::QueueProtocol, &[i; 20]).unwrap())
            .collect();
        // Reordered: 2 before 0 and 1 is fine, each once.
        for i in [2usize, 0, 1] {
            let seq = table.open(&recs[i], 1, NOW).unwrap().record.seq;
            assert_eq!(usize::try_from(seq).unwrap(), i);
        }
        // Duplicated / replayed.
        assert_eq!(table.open(&recs[1], 1, NOW), Err(RecordError::Duplicate));
        assert_eq!(table.open(&recs[2], 1, NOW), Err(RecordError::Duplicate));
        // Every single-bit flip anywhere in record 3 is refused (header bits change the session
        // id, sequence number, length or type; body bits fail the tag).
        for byte in 0..recs[3].len() {
            for bit in [0x01u8, 0x80] {
                let mut r = recs[3].clone();
                r[byte] ^= bit;
                assert!(table.open(&r, 9, NOW).is_err(), "{suite:?} byte {byte}");
            }
        }
        // Truncated at every length.
        for n in 0..recs[3].len() {
            assert!(
                table.open(&recs[3][..n], 9, NOW).is_err(),
                "{suite:?} prefix {n}"
            );
        }
        // Forged: right session id and a fresh number, but not made with the key.
        let mut forged = recs[4].clone();
        forged[24..].fill(0xab);
        assert_eq!(table.open(&forged, 9, NOW), Err(RecordError::Forged));
        // A client record reflected back at the client is not accepted as the server's.
        assert_eq!(client.open(&recs[4]), Err(RecordError::Forged));
        // None of that moved the session: the untouched records still open, from the old peer.
        assert_eq!(table.open(&recs[3], 1, NOW).unwrap().record.seq, 3);
        assert_eq!(table.open(&recs[4], 1, NOW).unwrap().record.seq, 4);
        assert_eq!(table.peer_of(&client.session_id()), Some(1));
        let drops = table.drops_of(&client.session_id()).unwrap();
        // Two replays, plus the bit flip that turned sequence number 3 into the used 2.
        assert_eq!(drops.duplicate, 3);
        assert!(drops.forged >= 2);
        exchange(&mut client, &table, 1);
    }
}

#[test]
fn replay_window_edges_through_the_table() {
    let mut fx = Fixture::new(5);
    let table = table();
    let (mut client, _) = fx.establish(
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmBlake2b,
        None,
        &table,
        1,
    );
    let recs: Vec<Vec<u8>> = (0..200)
        .map(|_| client.seal(PayloadType::QueueProtocol, b"x").unwrap())
        .collect();
    assert!(table.open(&recs[100], 1, NOW).is_ok());
    // 100 − 63 is the oldest number inside the 64-wide window, 100 − 64 is too old.
    assert!(table.open(&recs[37], 1, NOW).is_ok());
    assert_eq!(table.open(&recs[36], 1, NOW), Err(RecordError::TooOld));
    assert_eq!(table.open(&recs[37], 1, NOW), Err(RecordError::Duplicate));
    // A jump ahead forgets older numbers.
    assert!(table.open(&recs[199], 1, NOW).is_ok());
    assert_eq!(table.open(&recs[101], 1, NOW), Err(RecordError::TooOld));
    assert!(table.open(&recs[136], 1, NOW).is_ok());
    let c = table.counters();
    assert_eq!((c.dropped.too_old, c.dropped.duplicate), (2, 1));
}

#[test]
fn records_follow_the_device_across_addresses_without_a_new_handshake() {
    let mut fx = Fixture::new(6);
    let table = table();
    let (mut client, _) = fx.establish(
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
        None,
        &table,
        100,
    );
    let id = client.session_id();
    let a = client
        .seal(PayloadType::QueueProtocol, b"from wifi")
        .unwrap();
    table.open(&a, 100, NOW).unwrap();
    assert_eq!(table.peer_of(&id), Some(100));
    // The device moves (new address / new connection) and keeps sending.
    let b = client
        .seal(PayloadType::QueueProtocol, b"from lte")
        .unwrap();
    table.open(&b, 200, NOW).unwrap();
    assert_eq!(table.peer_of(&id), Some(200));
    // An attacker replaying an old record, or forging one, from elsewhere moves nothing.
    assert!(table.open(&a, 666, NOW).is_err());
    let mut f = client.seal(PayloadType::QueueProtocol, b"x").unwrap();
    let last = f.len() - 1;
    f[last] ^= 1;
    assert!(table.open(&f, 666, NOW).is_err());
    assert_eq!(table.peer_of(&id), Some(200));
    let (to, bytes) = table
        .seal_to_client(&device().client_id, PayloadType::Ipv6, b"reply", NOW)
        .unwrap();
    assert_eq!(to, 200);
    assert_eq!(&client.open(&bytes).unwrap().payload[..], b"reply");
}

#[test]
fn unknown_client_id_is_refused_and_leaves_nothing_behind() {
    let mut fx = Fixture::new(7);
    let mut stranger = fx.config();
    stranger.client_id = ClientId([0x77; 16]);
    let (_, flight) = fx.attest(stranger, SuiteSpec::ALL[0], None);
    let err = fx.accept(&flight).unwrap_err();
    assert_eq!(err, Error::Refused(Refused::UnknownClient));
    assert_eq!(err.alert_bytes(), Some(ERROR_MESSAGE));
    assert_eq!(fx.guard.len(), 0);
    // Once the registry knows the id (with the right key), the same flight is accepted: the
    // failed attempt did not burn the cookie.
    fx.registry
        .insert(ClientId([0x77; 16]), *device().longterm.public_key());
    assert!(fx.accept(&flight).is_ok());
    assert_eq!(fx.guard.len(), 1);
}

#[test]
fn wrong_longterm_key_is_refused() {
    let mut fx = Fixture::new(8);
    // The device signs with a key other than the one registered for its id.
    let mut impostor = fx.config();
    impostor.longterm_key = LongtermKeyPair::generate(&mut test_rng(80));
    let (_, flight) = fx.attest(impostor, SuiteSpec::ALL[2], None);
    assert_eq!(
        fx.accept(&flight).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::BadLongtermSignature)
    );
    // And the registry holding another key for the genuine device refuses it too.
    let (_, flight) = fx.attest(fx.config(), SuiteSpec::ALL[4], None);
    fx.registry.insert(
        device().client_id,
        *LongtermKeyPair::generate(&mut test_rng(81)).public_key(),
    );
    assert_eq!(
        fx.accept(&flight).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::BadLongtermSignature)
    );
    assert_eq!(fx.guard.len(), 0);
}

#[test]
fn replayed_attest_and_tampered_flights_are_refused() {
    let mut fx = Fixture::new(9);
    let (_, flight) = fx.attest(
        fx.config(),
        SuiteSpec::ALL[1],
        Some((PayloadType::QueueProtocol, b"early")),
    );
    // Tampered early record (tag): the handshake fails and the cookie is not burnt.
    let mut bad = flight.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        fx.accept(&bad).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::BadEarlyRecord)
    );
    // The early record's session id or sequence number changed (cleartext header).
    for pos in [
        SESSION_CLIENT_ATTEST_LEN + 4,
        SESSION_CLIENT_ATTEST_LEN + 23,
    ] {
        let mut moved = flight.clone();
        moved[pos] ^= 1;
        assert_eq!(
            fx.accept(&moved).unwrap_err(),
            Error::PeerMisbehaved(PeerMisbehaved::BadEarlyRecord)
        );
    }
    // Truncated flight, trailing bytes, flipped attest byte.
    assert!(fx.accept(&flight[..SESSION_CLIENT_ATTEST_LEN]).is_err());
    let mut long = flight.clone();
    long.push(0);
    assert!(matches!(
        fx.accept(&long).unwrap_err(),
        Error::InvalidMessage(_)
    ));
    let mut flipped = flight.clone();
    flipped[200] ^= 4;
    assert_eq!(
        fx.accept(&flipped).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::DecryptionFailed)
    );
    assert_eq!(fx.guard.len(), 0);
    // The genuine flight is accepted once; its replay is refused.
    assert!(fx.accept(&flight).is_ok());
    assert_eq!(
        fx.accept(&flight).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::ReplayedCookie)
    );
    // 0x21 turned into 0x22 (type byte is authenticated additional data).
    let (_, plain) = fx.attest(fx.config(), SuiteSpec::ALL[0], None);
    let mut retyped = plain.clone();
    retyped[0] = 0x22;
    assert!(fx.accept(&retyped).is_err());
}

#[test]
fn early_data_larger_than_one_record_is_refused_locally() {
    let mut fx = Fixture::new(16);
    let (state, ci) = SessionClientHandshake::start(fx.config(), SuiteSpec::ALL[0], &mut fx.rng);
    let sia = fx.server.handle_client_init(&ci, NOW, &mut fx.rng).unwrap();
    let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
    assert_eq!(
        state
            .handle_server_attest(&sia, Some((PayloadType::Ipv6, &big)), &mut fx.rng)
            .unwrap_err(),
        Error::Refused(Refused::EarlyDataTooLarge)
    );
}

#[test]
fn client_rejects_a_finished_from_another_handshake_or_tampered() {
    let mut fx = Fixture::new(10);
    let suite = SuiteSpec::ALL[3];
    let (state_a, flight_a) = fx.attest(fx.config(), suite, None);
    // Handshake b three times over: the same generator state replays the same draws, so the three
    // client states are one handshake (byte-identical flights; the server answers it once). A
    // state is consumed by any answer, so each tampered Finished needs a state of its own.
    let replay = fx.rng.clone();
    let mut twins = Vec::new();
    for _ in 0..3 {
        fx.rng = replay.clone();
        twins.push(fx.attest(fx.config(), suite, None));
    }
    let flight_b = twins[0].1.clone();
    assert!(twins.iter().all(|(_, f)| *f == flight_b));
    let mut states_b = twins.into_iter().map(|(s, _)| s);
    let fin_a = fx.accept(&flight_a).unwrap().finished;
    let accepted_b = fx.accept(&flight_b).unwrap();
    let fin_b = accepted_b.finished.clone();
    assert_eq!(fin_b.len(), SESSION_SERVER_FINISHED_LEN);
    // Another handshake's Finished.
    assert_eq!(
        state_a.handle_server_finished(&fin_b).unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::DecryptionFailed)
    );
    // This handshake's own Finished, tampered: one bit of the encrypted awareness proof, one bit
    // of the tag. Both fail authentication.
    for pos in [30, SESSION_SERVER_FINISHED_LEN - 1] {
        let mut t = fin_b.clone();
        t[pos] ^= 1;
        assert_eq!(
            states_b.next().unwrap().handle_server_finished(&t).err(),
            Some(Error::PeerMisbehaved(PeerMisbehaved::DecryptionFailed)),
            "byte {pos} flipped"
        );
    }
    // The genuine one still completes the same handshake.
    let session = states_b
        .next()
        .unwrap()
        .handle_server_finished(&fin_b)
        .unwrap();
    assert_eq!(session.session_id(), accepted_b.session.id());
    let _ = fin_a;
    // A received Error ends the handshake without a reply.
    let (state_d, _) = fx.attest(fx.config(), suite, None);
    let e = state_d.handle_server_finished(&ERROR_MESSAGE).unwrap_err();
    assert_eq!(e, Error::ReceivedErrorMessage);
    assert_eq!(e.alert_bytes(), None);
}

#[test]
fn a_proposed_session_id_that_is_in_use_is_refused() {
    let mut fx = Fixture::new(11);
    let table = table();
    let suite = SuiteSpec::ALL[0];
    // Two flights whose session id draw comes from identically seeded generators.
    let mut flights = Vec::new();
    for _ in 0..2 {
        let (state, ci) = SessionClientHandshake::start(fx.config(), suite, &mut fx.rng);
        let sia = fx.server.handle_client_init(&ci, NOW, &mut fx.rng).unwrap();
        let (_, flight) = state
            .handle_server_attest(&sia, Some((PayloadType::Ipv6, b"p")), &mut test_rng(5))
            .unwrap();
        flights.push(flight);
    }
    let a = fx.accept(&flights[0]).unwrap();
    let b = fx.accept(&flights[1]).unwrap();
    assert_eq!(a.session.id(), b.session.id());
    table.insert(a.session, 1, NOW).unwrap();
    assert_eq!(
        table.insert(b.session, 2, NOW),
        Err(Refused::SessionIdInUse)
    );
    assert_eq!(table.len(), 1);
}

#[test]
fn sequence_exhaustion_requires_a_new_handshake() {
    let mut fx = Fixture::new(12);
    let table = table();
    let (mut client, _) = fx.establish(SuiteSpec::ALL[5], None, &table, 1);
    // Client side: the last usable number is 2³² − 2.
    client.set_next_send_seq_for_testing_only(u32::MAX - 1);
    let last = client.seal(PayloadType::QueueProtocol, b"last").unwrap();
    assert_eq!(
        client.seal(PayloadType::QueueProtocol, b"one more"),
        Err(RecordError::RekeyRequired)
    );
    assert_eq!(table.open(&last, 1, NOW).unwrap().record.seq, u32::MAX - 1);
    // Server side: exhaustion removes the session; the client's next record is answered with
    // Error, its hint to re-handshake.
    let id = client.session_id();
    assert!(table.set_next_send_seq_for_testing_only(&id, u32::MAX));
    assert_eq!(
        table.seal_to_client(&device().client_id, PayloadType::Ipv6, b"x", NOW),
        Err(RecordError::RekeyRequired)
    );
    assert_eq!(table.len(), 0);
    assert_eq!(table.session_of(&device().client_id), None);
    let mut fresh = fx.establish(SuiteSpec::ALL[5], None, &table, 1).0;
    let r = fresh
        .seal(PayloadType::QueueProtocol, b"new session")
        .unwrap();
    assert!(table.open(&r, 1, NOW).is_ok());
    // A record for the removed session is answered with the Error message.
    let err = table.open(&last, 1, NOW).unwrap_err();
    assert_eq!(err, RecordError::UnknownSession);
    assert_eq!(err.alert_bytes(), Some(ERROR_MESSAGE));
    assert_eq!(RecordError::Forged.alert_bytes(), None);
}

#[test]
fn oversized_payload_is_refused_before_sealing() {
    let mut fx = Fixture::new(13);
    let table = table();
    let (mut client, _) = fx.establish(SuiteSpec::ALL[0], None, &table, 1);
    let big = vec![0u8; MAX_PAYLOAD_LEN];
    let rec = client.seal(PayloadType::Ipv6, &big).unwrap();
    assert_eq!(rec.len(), usize::from(u16::MAX));
    assert_eq!(
        table.open(&rec, 1, NOW).unwrap().record.payload.len(),
        big.len()
    );
    let too_big = vec![0u8; MAX_PAYLOAD_LEN + 1];
    assert_eq!(
        client.seal(PayloadType::Ipv6, &too_big),
        Err(RecordError::PayloadTooLarge(MAX_PAYLOAD_LEN + 1))
    );
    assert_eq!(client.next_send_seq(), 1);
}

/// One client cannot fill the table: past `max_sessions_per_client` live sessions its new ones
/// are refused until one ends. The client's newest session stays reachable by ClientID.
#[test]
fn sessions_per_client_are_bounded() {
    let mut fx = Fixture::new(15);
    let table = SessionTable::new(SessionTableConfig {
        max_sessions_per_client: 2,
        ..SessionTableConfig::default()
    });
    let first = fx
        .establish(SuiteSpec::ALL[0], None, &table, 1)
        .0
        .session_id();
    let second = fx
        .establish(SuiteSpec::ALL[1], None, &table, 2)
        .0
        .session_id();
    let (_, flight) = fx.attest(fx.config(), SuiteSpec::ALL[0], None);
    let third = fx.accept(&flight).unwrap();
    let third_id = third.session.id();
    assert_eq!(
        table.insert(third.session, 3, NOW),
        Err(Refused::TooManySessions)
    );
    assert_eq!(table.len(), 2);
    assert_eq!(table.session_of(&device().client_id), Some(second));
    // One ends: room for another.
    assert!(table.remove(&first));
    let (_, flight) = fx.attest(fx.config(), SuiteSpec::ALL[2], None);
    let fourth = fx.accept(&flight).unwrap();
    let fourth_id = fourth.session.id();
    assert_ne!(fourth_id, third_id);
    table.insert(fourth.session, 4, NOW).unwrap();
    assert_eq!(table.session_of(&device().client_id), Some(fourth_id));
    // The newest ends while an older one lives: not found by ClientID (as before the count).
    assert!(table.remove(&fourth_id));
    assert_eq!(table.session_of(&device().client_id), None);
    assert!(table.remove(&second));
    assert!(table.is_empty());
}

#[test]
fn idle_timeout_and_maximum_lifetime() {
    let mut fx = Fixture::new(14);
    let table = SessionTable::new(SessionTableConfig {
        shards: 2,
        idle_timeout_secs: 10,
        max_lifetime_secs: 25,
        max_sessions: 2,
        ..SessionTableConfig::default()
    });
    let (mut client, _) = fx.establish(SuiteSpec::ALL[0], None, &table, 1);
    let at = |s: u64| UnixTime(NOW.0 + s);
    // Traffic every 8 s keeps it alive against the 10 s idle timeout ...
    for t in [8, 16, 24] {
        let r = client.seal(PayloadType::QueueProtocol, b"tick").unwrap();
        assert!(table.open(&r, 1, at(t)).is_ok(), "t={t}");
    }
    assert_eq!(table.sweep(at(25)), 0);
    // ... but not past the 25 s lifetime.
    let r = client.seal(PayloadType::QueueProtocol, b"tick").unwrap();
    assert_eq!(table.open(&r, 1, at(26)), Err(RecordError::UnknownSession));
    assert_eq!(table.len(), 0);
    // Idle expiry, found by the sweep.
    let (_, _) = fx.establish(SuiteSpec::ALL[1], None, &table, 1);
    let (_, _) = fx.establish(SuiteSpec::ALL[2], None, &table, 1);
    assert_eq!(table.len(), 2);
    // The table is full.
    let (_, flight) = fx.attest(fx.config(), SuiteSpec::ALL[0], None);
    let extra = fx.accept(&flight).unwrap();
    assert_eq!(
        table.insert(extra.session, 1, NOW),
        Err(Refused::SessionTableFull)
    );
    assert_eq!(table.sweep(at(10)), 0);
    assert_eq!(table.sweep(at(11)), 2);
    assert!(table.is_empty());
    assert_eq!(table.counters().expired, 3);
    assert_eq!(
        table.seal_to_client(&device().client_id, PayloadType::Ipv6, b"x", at(11)),
        Err(RecordError::UnknownSession)
    );
}

#[test]
fn malformed_records_are_typed_errors() {
    let table = table();
    assert_eq!(
        table.open(&[0x31, 0x00], 1, NOW),
        Err(RecordError::Malformed(InvalidMessage::Truncated))
    );
    let mut r = vec![0u8; RECORD_OVERHEAD];
    r[..4].copy_from_slice(&[0x31, 0x00, 41, 0x01]);
    assert_eq!(table.open(&r, 1, NOW), Err(RecordError::UnknownSession));
    r[3] = 2;
    assert_eq!(
        table.open(&r, 1, NOW),
        Err(RecordError::Malformed(InvalidMessage::UnsupportedVersion(
            2
        )))
    );
    assert_eq!(table.counters().unknown_session, 1);
}

#[test]
fn table_serves_sessions_from_several_threads() {
    let mut fx = Fixture::new(15);
    let table = table();
    let mut clients: Vec<ClientSession> = (0..4)
        .map(|i| fx.establish(SuiteSpec::ALL[i], None, &table, 0).0)
        .collect();
    let batches: Vec<Vec<Vec<u8>>> = clients
        .iter_mut()
        .map(|c| {
            (0..50)
                .map(|i| c.seal(PayloadType::QueueProtocol, &[i; 32]).unwrap())
                .collect()
        })
        .collect();
    std::thread::scope(|s| {
        for (peer, batch) in batches.iter().enumerate() {
            let table = &table;
            s.spawn(move || {
                for r in batch.iter().rev() {
                    let peer = u32::try_from(peer).unwrap();
                    // Reversed order: the first 50 numbers all fit in the window.
                    assert!(table.open(r, peer, NOW).is_ok());
                }
            });
        }
    });
    assert_eq!(table.counters().delivered, 200);
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(table.peer_of(&c.session_id()), u32::try_from(i).ok());
    }
    let _: SessionId = clients[0].session_id();
}

#[test]
fn handshake_cache_saves_the_rebuild_and_falls_back_when_full() {
    let d = device();
    let mut registry = HashMap::new();
    registry.insert(d.client_id, *d.longterm.public_key());
    // Room for one handshake in flight.
    let server = vector()
        .server(Arc::new(InMemoryReplayGuard::new(8)))
        .with_handshake_cache(1);
    let mut rng = test_rng(17);
    let config = Fixture::new(17).config();
    let suite = SuiteSpec::ALL[1];
    let (st1, ci1) = SessionClientHandshake::start(config.clone(), suite, &mut rng);
    let (st2, ci2) = SessionClientHandshake::start(config, suite, &mut rng);
    let sia1 = server.handle_client_init(&ci1, NOW, &mut rng).unwrap();
    assert_eq!(server.handshake_cache_len(), 1);
    // Full: the second handshake is not cached and takes the stateless path.
    let sia2 = server.handle_client_init(&ci2, NOW, &mut rng).unwrap();
    assert_eq!(server.handshake_cache_len(), 1);
    for (st, sia) in [(st2, sia2), (st1, sia1)] {
        let (st, flight) = st
            .handle_server_attest(&sia, Some((PayloadType::Ipv6, b"v6")), &mut rng)
            .unwrap();
        let acc = server
            .handle_session_client_attest(&flight, NOW, &registry, &mut rng)
            .unwrap();
        assert_eq!(&acc.early_data.unwrap().payload[..], b"v6");
        let session = st.handle_server_finished(&acc.finished).unwrap();
        assert_eq!(session.session_id(), acc.session.id());
    }
    assert_eq!(server.handshake_cache_len(), 0);
    // Identity provisioning goes through the same cache.
    let v = vector();
    let (state, ci) = ClientHandshake::start(
        v.client_config(),
        SuiteSpec::ALL[5],
        ClientId::NULL,
        &mut rng,
    );
    let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
    assert_eq!(server.handshake_cache_len(), 1);
    let (state, attest) = state.handle_server_attest(&sia, &mut rng).unwrap();
    let (finished, _) = server
        .handle_client_attest(&attest, NOW)
        .unwrap()
        .verify_group(&v.verifier(), &mut rng)
        .unwrap()
        .assign_and_finish(&TestAuthority::new())
        .unwrap();
    assert!(state.handle_server_finished(&finished).is_ok());
    assert_eq!(server.handshake_cache_len(), 0);
}

#[test]
fn identical_retransmitted_attest_gets_the_same_finished() {
    let d = device();
    let mut registry = HashMap::new();
    registry.insert(d.client_id, *d.longterm.public_key());
    let server = vector()
        .server(Arc::new(InMemoryReplayGuard::new(8)))
        .with_finished_cache(16);
    let mut rng = test_rng(18);
    let config = Fixture::new(18).config();
    let (st, ci) = SessionClientHandshake::start(config, SuiteSpec::ALL[2], &mut rng);
    let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
    let (st, flight) = st
        .handle_server_attest(&sia, Some((PayloadType::QueueProtocol, b"e")), &mut rng)
        .unwrap();
    assert_eq!(server.retransmitted_session_finished(&flight, NOW), None);
    let mut acc = server
        .handle_session_client_attest(&flight, NOW, &registry, &mut rng)
        .unwrap();
    // Nothing is answered for the flight until the driver says its session is stored ...
    assert_eq!(server.retransmitted_session_finished(&flight, NOW), None);
    let receipt = acc.retransmission.take().expect("a datagram flight");
    server.remember_finished(receipt, &acc.finished, NOW);
    // ... then the retransmission is answered from the cache with the same bytes ...
    assert_eq!(
        server.retransmitted_session_finished(&flight, UnixTime(NOW.0 + 5)),
        Some(acc.finished.clone())
    );
    // ... any other bytes are not, and processing the flight again is a replay.
    let mut other = flight.clone();
    other[200] ^= 1;
    assert_eq!(server.retransmitted_session_finished(&other, NOW), None);
    assert_eq!(
        server
            .handle_session_client_attest(&flight, NOW, &registry, &mut rng)
            .unwrap_err(),
        Error::PeerMisbehaved(PeerMisbehaved::ReplayedCookie)
    );
    // After the cookie lifetime the entry is gone.
    assert_eq!(
        server.retransmitted_session_finished(&flight, UnixTime(NOW.0 + 21)),
        None
    );
    assert!(st.handle_server_finished(&acc.finished).is_ok());
}

#[test]
fn session_id_proposals_the_spec_forbids_are_refused() {
    let mut fx = Fixture::new(19);
    for (early, proposal) in [
        // 0x21 must carry zero ...
        (None, SessionId([9; 16])),
        // ... and 0x22 must not.
        (
            Some((PayloadType::QueueProtocol, &b"e"[..])),
            SessionId::NULL,
        ),
    ] {
        let (st, ci) = SessionClientHandshake::start(fx.config(), SuiteSpec::ALL[0], &mut fx.rng);
        let sia = fx.server.handle_client_init(&ci, NOW, &mut fx.rng).unwrap();
        let (_, flight) = st
            .handle_server_attest_proposing_for_testing_only(&sia, early, proposal, &mut fx.rng)
            .unwrap();
        assert_eq!(
            fx.accept(&flight).unwrap_err(),
            Error::PeerMisbehaved(PeerMisbehaved::BadSessionIdProposal)
        );
    }
    assert_eq!(fx.guard.len(), 0);
}

/// Busy sessions keep their expanded keys, at most `hot_sessions_per_shard` per shard (least
/// recently used evicted); evicted sessions simply expand again; forged records warm nothing.
#[test]
fn only_the_most_recently_used_sessions_keep_expanded_keys() {
    let mut fx = Fixture::new(21);
    let table = SessionTable::new(SessionTableConfig {
        shards: 1,
        hot_sessions_per_shard: 2,
        ..SessionTableConfig::default()
    });
    for suite in [
        SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
        SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
    ] {
        let mut clients: Vec<ClientSession> = (0..4)
            .map(|peer| fx.establish(suite, None, &table, peer).0)
            .collect();
        assert_eq!(
            table.hot_sessions(),
            0,
            "a fresh session holds no expanded key"
        );
        // A forged record for a live session costs one expansion and keeps nothing.
        let mut forged = clients[0].seal(PayloadType::QueueProtocol, b"x").unwrap();
        let last = forged.len() - 1;
        forged[last] ^= 0x80;
        assert_eq!(
            table.open(&forged, 9, NOW).unwrap_err(),
            RecordError::Forged
        );
        assert_eq!(table.hot_sessions(), 0);
        for round in 0..3u8 {
            for (i, c) in clients.iter_mut().enumerate() {
                let payload = [round, u8::try_from(i).unwrap()];
                let rec = c.seal(PayloadType::QueueProtocol, &payload).unwrap();
                let got = table.open(&rec, 1, NOW).unwrap();
                assert_eq!(&got.record.payload[..], &payload[..]);
                let (_, back) = table
                    .seal_to_session(&c.session_id(), PayloadType::Ipv6, &payload, NOW)
                    .unwrap();
                assert_eq!(&c.open(&back).unwrap().payload[..], &payload[..]);
                let hot = table.hot_sessions();
                assert!((1..=2).contains(&hot), "{hot} sessions hold expanded keys");
            }
        }
        for c in &clients {
            assert!(table.remove(&c.session_id()));
        }
        assert_eq!(table.hot_sessions(), 0, "removed sessions drop their keys");
    }
    // Capacity 0: nothing is ever kept, records still flow.
    let cold = SessionTable::new(SessionTableConfig {
        shards: 1,
        hot_sessions_per_shard: 0,
        ..SessionTableConfig::default()
    });
    let (mut c, _) = fx.establish(SuiteSpec::ALL[0], None, &cold, 1);
    exchange(&mut c, &cold, 1);
    assert_eq!(cold.hot_sessions(), 0);
}

#[test]
fn records_opened_in_place_match_and_move_the_peer_like_copied_ones() {
    let mut fx = Fixture::new(8);
    let table = table();
    let suite = SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512;
    let (mut client, _) = fx.establish(suite, None, &table, 1);
    let id = client.session_id();
    let mut rec = client
        .seal(PayloadType::QueueProtocol, b"in place")
        .unwrap();
    let mut replay = rec.clone();
    let (client_id, opened) = table.open_in_place(&mut rec, 2, NOW).unwrap();
    assert_eq!(client_id, device().client_id);
    assert_eq!(opened.payload_type, PayloadType::QueueProtocol);
    assert_eq!(opened.payload, b"in place");
    assert_eq!(table.peer_of(&id), Some(2));
    // A replay from elsewhere is refused, counted, and moves nothing.
    assert_eq!(
        table.open_in_place(&mut replay, 3, NOW).unwrap_err(),
        RecordError::Duplicate
    );
    assert_eq!(table.peer_of(&id), Some(2));
    assert_eq!(table.counters().dropped.duplicate, 1);
    let (to, mut back) = table
        .seal_to_client(&device().client_id, PayloadType::Ipv6, b"back", NOW)
        .unwrap();
    assert_eq!(to, 2);
    let opened = client.open_in_place(&mut back).unwrap();
    assert_eq!(
        (opened.payload_type, opened.payload),
        (PayloadType::Ipv6, &b"back"[..])
    );
}

#[test]
fn a_session_attest_opened_but_never_finished_records_nothing() {
    let mut fx = Fixture::new(9);
    let (_, flight) = fx.attest(fx.config(), SuiteSpec::ALL[0], None);
    let now = UnixTime(NOW.0 + 1);
    let opened = fx.server.open_session_client_attest(&flight, now).unwrap();
    assert_eq!(opened.client_id(), device().client_id);
    drop(opened);
    assert_eq!(fx.guard.len(), 0);
    // No key: refused, still nothing recorded; with the key the same flight is accepted.
    let opened = fx.server.open_session_client_attest(&flight, now).unwrap();
    let refused = fx
        .server
        .finish_session_client_attest(opened, None, now, &mut fx.rng)
        .unwrap_err();
    assert_eq!(refused, Error::Refused(Refused::UnknownClient));
    assert_eq!(fx.guard.len(), 0);
    let opened = fx.server.open_session_client_attest(&flight, now).unwrap();
    let key = *device().longterm.public_key();
    assert!(fx
        .server
        .finish_session_client_attest(opened, Some(&key), now, &mut fx.rng)
        .is_ok());
    assert_eq!(fx.guard.len(), 1);
}

#[test]
fn flights_from_a_reliable_stream_take_no_room_in_the_finished_cache() {
    let d = device();
    let mut registry = HashMap::new();
    registry.insert(d.client_id, *d.longterm.public_key());
    let server = vector()
        .server(Arc::new(InMemoryReplayGuard::new(8)))
        .with_finished_cache(1);
    let mut rng = test_rng(20);
    // A TCP flight: accepted, not remembered.
    let config = Fixture::new(20).config();
    let (st, ci) = SessionClientHandshake::start(config, SuiteSpec::ALL[0], &mut rng);
    let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
    let (_, tcp) = st.handle_server_attest(&sia, None, &mut rng).unwrap();
    let opened = server.open_session_client_attest(&tcp, NOW).unwrap();
    let key = registry.get(&d.client_id).copied();
    let acc = server
        .finish_session_client_attest(opened.from_reliable_stream(), key.as_ref(), NOW, &mut rng)
        .unwrap();
    assert!(acc.retransmission.is_none());
    assert_eq!(server.retransmitted_session_finished(&tcp, NOW), None);
    // A datagram flight still finds the cache's one slot free.
    let config = Fixture::new(20).config();
    let (st, ci) = SessionClientHandshake::start(config, SuiteSpec::ALL[0], &mut rng);
    let sia = server.handle_client_init(&ci, NOW, &mut rng).unwrap();
    let (_, udp) = st.handle_server_attest(&sia, None, &mut rng).unwrap();
    let acc = server
        .handle_session_client_attest(&udp, NOW, &registry, &mut rng)
        .unwrap();
    let receipt = acc.retransmission.expect("a datagram flight");
    server.remember_finished(receipt, &acc.finished, NOW);
    assert_eq!(
        server.retransmitted_session_finished(&udp, NOW),
        Some(acc.finished)
    );
}

/// The session handshake's first two messages, and the client's checks of them, are identity
/// provisioning's: a man in the middle replaying the genuine server's certificate (public) but
/// signing with its own key must fail the check of the server's signature under the
/// certificate's key, the only check that stands between it and the device (the certificate
/// itself verifies against the trusted root). Also with a root store that remembers the
/// certificate as verified (which skips only the root's signature on it), and also through
/// `try_server_attest` (datagrams), after which the genuine answer still completes the handshake.
#[test]
fn server_signing_with_another_key_than_its_certificates_is_refused() {
    let mut fx = Fixture::new(22);
    let v = vector();
    let impostor = Server::new(ServerConfig {
        certificate: v.server_certificate(),
        signing_key: LongtermKeyPair::generate(&mut test_rng(220)),
        cookie_keys: CookieKeyring::new(CookieKey::from_secret(2, &[0xa5; 32])),
        cookie_lifetime_secs: 20,
        replay_guard: Arc::new(InMemoryReplayGuard::new(8)),
    });
    let mut config = fx.config();
    config.roots = Arc::new(RememberVerified::new(Arc::new(v.root())));
    let bad_signature = Error::PeerMisbehaved(PeerMisbehaved::BadServerSignature);
    for suite in SuiteSpec::ALL {
        let (state, ci) = SessionClientHandshake::start(config.clone(), suite, &mut fx.rng);
        let forged = impostor.handle_client_init(&ci, NOW, &mut fx.rng).unwrap();
        let genuine = fx.server.handle_client_init(&ci, NOW, &mut fx.rng).unwrap();
        let err = state
            .try_server_attest(&forged, None, &mut fx.rng)
            .unwrap_err();
        assert_eq!(err, bad_signature, "{suite:?}");
        assert_eq!(err.alert_bytes(), Some(ERROR_MESSAGE));
        let (state, flight) = state
            .try_server_attest(&genuine, None, &mut fx.rng)
            .unwrap();
        let accepted = fx.accept(&flight).unwrap();
        let session = state.handle_server_finished(&accepted.finished).unwrap();
        assert_eq!(session.session_id(), accepted.session.id());
        // With early data (0x22) the forged answer ends the handshake: nothing is sealed.
        let (state, ci) = SessionClientHandshake::start(config.clone(), suite, &mut fx.rng);
        let forged = impostor.handle_client_init(&ci, NOW, &mut fx.rng).unwrap();
        let early = Some((PayloadType::QueueProtocol, &b"reading"[..]));
        assert_eq!(
            state
                .handle_server_attest(&forged, early, &mut fx.rng)
                .unwrap_err(),
            bad_signature,
            "{suite:?}"
        );
    }
}

/// The server's handshake keys of a handshake whose client drew `x25519_private`, derived from
/// the first two messages as both ends do (XTT-WIRE §7): what a server that computed the right
/// keys seals Session_ServerFinished with.
fn server_handshake_keys(
    suite: SuiteSpec,
    x25519_private: [u8; 32],
    client_init: &[u8],
    sia: &[u8],
) -> DirectionKeys {
    let msg = ServerInitAndAttest::decode(sia).unwrap();
    let shared = x25519_dalek::StaticSecret::from(x25519_private)
        .diffie_hellman(&x25519_dalek::PublicKey::from(msg.key_share));
    let inner = transcript::inner_hash(
        suite,
        client_init.try_into().unwrap(),
        sia[..SERVER_INIT_PRE_COOKIE_LEN].try_into().unwrap(),
    );
    let hkh = transcript::handshake_key_hash(suite, &inner, &msg.cookie);
    HandshakeKeys::derive(suite, shared.as_bytes(), &hkh)
        .server_send()
        .clone()
}

/// The client's checks on Session_ServerFinished that sit behind the AEAD: a Finished sealed with
/// the right server handshake keys (so it decrypts) but carrying a null session id, another id
/// than the client proposed (0x22), another id than the server assigned with that id's proof
/// (0x21), or a wrong awareness proof. Bit flips of the ciphertext (see
/// `client_rejects_a_finished_from_another_handshake_or_tampered`) fail the AEAD first and never
/// get here. A refused Finished leaves no session: `handle_server_finished` returns none, and
/// `verify_server_finished` leaves the state waiting, so the genuine Finished still completes it.
#[test]
fn client_rejects_a_correctly_sealed_finished_with_a_wrong_session_id_or_proof() {
    let mut fx = Fixture::new(23);
    let wrong_id = Error::PeerMisbehaved(PeerMisbehaved::WrongSessionId);
    let bad_proof = Error::PeerMisbehaved(PeerMisbehaved::BadAwarenessProof);
    for (suite, early) in [
        (SuiteSpec::ALL[0], None),
        (
            SuiteSpec::ALL[3],
            Some((PayloadType::QueueProtocol, &b"early"[..])),
        ),
    ] {
        // The same generator state replays the same draws, so these client states are one
        // handshake (byte-identical flights); each consuming call needs a state of its own. The
        // client's first draw is its X25519 private key.
        let replay = fx.rng.clone();
        let mut x25519_private = [0u8; 32];
        replay.clone().fill_bytes(&mut x25519_private);
        let mut states = Vec::new();
        let mut first_two = None;
        let mut flights = Vec::new();
        for _ in 0..4 {
            fx.rng = replay.clone();
            let (st, ci) = SessionClientHandshake::start(fx.config(), suite, &mut fx.rng);
            let sia = fx.server.handle_client_init(&ci, NOW, &mut fx.rng).unwrap();
            let (st, flight) = st.handle_server_attest(&sia, early, &mut fx.rng).unwrap();
            states.push(st);
            flights.push(flight);
            first_two = Some((ci, sia));
        }
        assert!(flights.iter().all(|f| *f == flights[0]));
        let (ci, sia) = first_two.unwrap();
        let keys = server_handshake_keys(suite, x25519_private, &ci, &sia);
        let accepted = fx.accept(&flights[0]).unwrap();
        let genuine = accepted.finished;
        // The cleartext header (the AEAD's additional data), then plaintext and 16-byte tag.
        let (header, sealed) =
            genuine.split_at(genuine.len() - SESSION_FINISHED_PLAINTEXT_LEN - 16);
        // The derived keys are the server's: they open its Finished.
        let fin = SessionFinishedPlaintext::decode(&keys.open(suite, 1, header, sealed).unwrap())
            .unwrap();
        assert_eq!(fin.session_id, accepted.session.id());
        let proposed = states[0].proposed_session_id();
        assert_eq!(proposed.is_null(), early.is_none());
        if !proposed.is_null() {
            assert_eq!(fin.session_id, proposed);
        }

        let other = SessionId([0x5a; 16]);
        assert_ne!(other, fin.session_id);
        let mut flipped = fin.awareness_proof;
        flipped[0] ^= 1;
        let cases = [
            (
                "null session id",
                SessionId::NULL,
                fin.awareness_proof,
                &wrong_id,
            ),
            if proposed.is_null() {
                (
                    "another id than assigned",
                    other,
                    fin.awareness_proof,
                    &bad_proof,
                )
            } else {
                (
                    "another id than proposed",
                    other,
                    fin.awareness_proof,
                    &wrong_id,
                )
            },
            ("wrong awareness proof", fin.session_id, flipped, &bad_proof),
        ];
        let mut states = states.into_iter();
        let waiting = states.next().unwrap();
        for ((what, session_id, awareness_proof, expected), state) in cases.into_iter().zip(states)
        {
            let plaintext = SessionFinishedPlaintext {
                session_id,
                awareness_proof,
            };
            let mut forged = header.to_vec();
            forged.extend(keys.seal(suite, 1, header, &plaintext.encode()).unwrap());
            assert_eq!(forged.len(), SESSION_SERVER_FINISHED_LEN);
            assert_eq!(
                waiting.verify_server_finished(&forged).unwrap_err(),
                *expected,
                "{suite:?} {what}"
            );
            assert_eq!(
                state
                    .handle_server_finished(&forged)
                    .map(|s| s.session_id()),
                Err(expected.clone()),
                "{suite:?} {what}"
            );
        }
        let session = waiting.handle_server_finished(&genuine).unwrap();
        assert_eq!(session.session_id(), fin.session_id);
    }
}
