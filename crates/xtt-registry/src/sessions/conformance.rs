//! The session-store test suite, written against [`SessionStore`] so that SQLite and
//! PostgreSQL run the same checks (`tests/sqlite.rs`, `tests/postgres.rs`).

use std::sync::Arc;

use rand_core::{OsRng, RngCore};
use xtt_proto::record::{RecordState, Reservation, SessionId};
use xtt_proto::{ClientId, UnixTime};

use super::{Acquired, CreateOutcome, NodeId, SessionStore, StoredSession, UnixMillis};
use crate::CookieUse;

/// Makes a fresh, empty store.
pub type Factory<'a> = &'a dyn Fn() -> Arc<dyn SessionStore>;

/// Every check, each on a fresh store.
pub fn run_all(factory: Factory<'_>) {
    create_refuses_a_used_id(&*factory());
    create_refuses_a_used_cookie(&*factory());
    a_live_owner_is_asked_and_a_forced_take_over_starts_above_its_reservation(&*factory());
    release_hands_over_the_exact_state(&*factory());
    retiring_releases_every_listed_session_exactly_and_ends_the_lease(&*factory());
    a_dead_owner_is_taken_over_without_asking(&*factory());
    the_owner_asking_for_its_own_session_is_told_so(&*factory());
    expired_sessions_are_unknown_and_swept(&*factory());
    a_crashed_owners_busy_session_is_idle_from_the_crash(&*factory());
    concurrent_take_overs_hand_out_disjoint_ranges(factory());
}

fn random_node() -> NodeId {
    NodeId(i64::from(OsRng.next_u32()) << 16 | 1)
}

/// A session stored at `now` for an hour.
pub fn sample_session(now: UnixMillis) -> StoredSession {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    let mut cid = [0u8; 16];
    OsRng.fill_bytes(&mut cid);
    let mut sealed = vec![0u8; 128];
    OsRng.fill_bytes(&mut sealed);
    StoredSession {
        session_id: SessionId(id),
        client_id: ClientId(cid),
        suite: 1,
        sealed_keys: sealed,
        created: now.secs(),
        expires_at: UnixTime(now.secs().0 + 3600),
    }
}

fn res(recv: u32, send: u32) -> Reservation {
    Reservation {
        recv_limit: recv,
        send_limit: send,
    }
}

fn live(store: &dyn SessionStore, node: NodeId, addr: &str, now: UnixMillis) {
    store.register_node(node, addr, now.plus(60_000)).unwrap();
}

fn create_refuses_a_used_id(store: &dyn SessionStore) {
    let now = UnixMillis::now();
    let a = random_node();
    live(store, a, "127.0.0.1:1", now);
    let s = sample_session(now);
    assert_eq!(
        store
            .create(&s, &fresh_cookie(now), a, res(8, 8), now)
            .unwrap(),
        CreateOutcome::Created
    );
    let mut other = sample_session(now);
    other.session_id = s.session_id;
    assert_eq!(
        store
            .create(&other, &fresh_cookie(now), a, res(8, 8), now)
            .unwrap(),
        CreateOutcome::SessionIdInUse
    );
    assert_eq!(store.session_count().unwrap(), 1);
}

/// A flight replayed to another node carries the cookie of a session already made: that node
/// must not make a second session (it would have the same keys).
fn create_refuses_a_used_cookie(store: &dyn SessionStore) {
    let now = UnixMillis::now();
    let (a, b) = (random_node(), random_node());
    live(store, a, "127.0.0.1:1", now);
    live(store, b, "127.0.0.1:2", now);
    let cookie = fresh_cookie(now);
    let first = sample_session(now);
    assert_eq!(
        store.create(&first, &cookie, a, res(8, 8), now).unwrap(),
        CreateOutcome::Created
    );
    let replayed = sample_session(now);
    assert_eq!(
        store.create(&replayed, &cookie, b, res(8, 8), now).unwrap(),
        CreateOutcome::CookieUsed
    );
    assert_eq!(store.session_count().unwrap(), 1);
    // Swept only well past its expiry (a node whose clock lags must still find it).
    store.sweep(now, 3_600_000).unwrap();
    assert_eq!(
        store
            .create(&sample_session(now), &cookie, b, res(8, 8), now)
            .unwrap(),
        CreateOutcome::CookieUsed
    );
    let later = UnixMillis(now.0 + 1000 * (60 + 2 * crate::COOKIE_SWEEP_MARGIN_SECS as i64));
    live(store, b, "127.0.0.1:2", later);
    store.sweep(later, 3_600_000 * 24).unwrap();
    let mut fresh = sample_session(later);
    fresh.expires_at = UnixTime(later.secs().0 + 3600);
    assert_eq!(
        store.create(&fresh, &cookie, b, res(8, 8), later).unwrap(),
        CreateOutcome::Created,
        "a swept cookie no longer blocks (no node accepts it anyway: it expired)"
    );
}

/// A cookie claim that expires a minute after `now`.
fn fresh_cookie(now: UnixMillis) -> CookieUse {
    let mut id = [0u8; 13];
    OsRng.fill_bytes(&mut id);
    CookieUse {
        id,
        expires_at: UnixTime(now.secs().0 + 60),
    }
}

fn a_live_owner_is_asked_and_a_forced_take_over_starts_above_its_reservation(
    store: &dyn SessionStore,
) {
    let now = UnixMillis::now();
    let (a, b) = (random_node(), random_node());
    live(store, a, "127.0.0.1:1001", now);
    live(store, b, "127.0.0.1:1002", now);
    let s = sample_session(now);
    store
        .create(&s, &fresh_cookie(now), a, res(8, 8), now)
        .unwrap();
    // The owner raised its reservation once; lowering is impossible.
    assert!(store.extend(&s.session_id, a, res(20, 12), now).unwrap());
    assert!(store.extend(&s.session_id, a, res(5, 5), now).unwrap());
    assert!(!store.extend(&s.session_id, b, res(99, 99), now).unwrap());

    match store.acquire(&s.session_id, b, false, 16, now).unwrap() {
        Acquired::HeldBy {
            node,
            handover_addr,
        } => {
            assert_eq!(node, a);
            assert_eq!(handover_addr, "127.0.0.1:1001");
        }
        other => panic!("expected HeldBy, got {other:?}"),
    }
    match store.acquire(&s.session_id, b, true, 16, now).unwrap() {
        Acquired::Taken {
            session,
            start,
            reservation,
            exact,
        } => {
            assert_eq!(session, s);
            assert!(!exact);
            assert_eq!(start, RecordState::after_crash(20, 12));
            assert_eq!(reservation, res(36, 28));
        }
        other => panic!("expected Taken, got {other:?}"),
    }
    // The former owner has lost it: it cannot extend or release any more.
    assert!(!store.extend(&s.session_id, a, res(40, 40), now).unwrap());
    assert!(!store
        .release(&s.session_id, a, &RecordState::after_crash(0, 0), now)
        .unwrap());
}

fn release_hands_over_the_exact_state(store: &dyn SessionStore) {
    let now = UnixMillis::now();
    let (a, b) = (random_node(), random_node());
    live(store, a, "127.0.0.1:1", now);
    live(store, b, "127.0.0.1:2", now);
    let s = sample_session(now);
    store
        .create(&s, &fresh_cookie(now), a, res(64, 64), now)
        .unwrap();
    let state = RecordState {
        recv_next: 40,
        recv_bits: [0xdead_beef_0000_00ff, 0x0123_4567_89ab_cdef],
        send_next: 17,
    };
    assert!(store.release(&s.session_id, a, &state, now).unwrap());
    match store.acquire(&s.session_id, b, false, 10, now).unwrap() {
        Acquired::Taken {
            start,
            reservation,
            exact,
            ..
        } => {
            assert!(exact);
            assert_eq!(start, state);
            assert_eq!(reservation, res(50, 27));
        }
        other => panic!("expected Taken, got {other:?}"),
    }
}

fn retiring_releases_every_listed_session_exactly_and_ends_the_lease(store: &dyn SessionStore) {
    let now = UnixMillis::now();
    let (a, b) = (random_node(), random_node());
    live(store, a, "127.0.0.1:1", now);
    live(store, b, "127.0.0.1:2", now);
    let listed: Vec<StoredSession> = (0..3).map(|_| sample_session(now)).collect();
    let unlisted = sample_session(now);
    let foreign = sample_session(now);
    for s in listed.iter().chain([&unlisted]) {
        assert_eq!(
            CreateOutcome::Created,
            store
                .create(s, &fresh_cookie(now), a, res(64, 64), now)
                .unwrap()
        );
    }
    assert_eq!(
        CreateOutcome::Created,
        store
            .create(&foreign, &fresh_cookie(now), b, res(64, 64), now)
            .unwrap()
    );
    let states: Vec<(SessionId, RecordState)> = listed
        .iter()
        .zip(0u32..)
        .map(|(s, i)| {
            let state = RecordState {
                recv_next: u64::from(5 + i),
                recv_bits: [0x1f ^ u64::from(i), 0],
                send_next: 9 + i,
            };
            (s.session_id, state)
        })
        // B's session listed by mistake: not A's to release.
        .chain([(foreign.session_id, RecordState::after_crash(1, 1))])
        .collect();
    assert_eq!(store.retire(a, &states, now).unwrap(), 3);
    let later = UnixMillis(now.0 + 1);
    for (id, state) in states.iter().take(3) {
        match store.acquire(id, b, false, 10, later).unwrap() {
            Acquired::Taken { start, exact, .. } => {
                assert!(exact);
                assert_eq!(start, *state);
            }
            other => panic!("expected Taken, got {other:?}"),
        }
    }
    // Not listed: A's lease has ended, so B takes it at once, above the reservation.
    match store
        .acquire(&unlisted.session_id, b, false, 10, later)
        .unwrap()
    {
        Acquired::Taken { start, exact, .. } => {
            assert!(!exact);
            assert_eq!(start, RecordState::after_crash(64, 64));
        }
        other => panic!("expected Taken, got {other:?}"),
    }
    assert_eq!(
        store
            .acquire(&foreign.session_id, b, false, 10, later)
            .unwrap(),
        Acquired::OwnedByCaller
    );
    // Nothing to release: only the lease ends.
    assert_eq!(store.retire(b, &[], later).unwrap(), 0);
}

fn a_dead_owner_is_taken_over_without_asking(store: &dyn SessionStore) {
    let now = UnixMillis::now();
    let (a, b) = (random_node(), random_node());
    store
        .register_node(a, "127.0.0.1:1", UnixMillis(now.0 - 1))
        .unwrap();
    live(store, b, "127.0.0.1:2", now);
    let s = sample_session(now);
    store
        .create(&s, &fresh_cookie(now), a, res(8, 4), now)
        .unwrap();
    match store.acquire(&s.session_id, b, false, 8, now).unwrap() {
        Acquired::Taken {
            start,
            exact,
            reservation,
            ..
        } => {
            assert!(!exact);
            assert_eq!(start, RecordState::after_crash(8, 4));
            assert_eq!(reservation, res(16, 12));
        }
        other => panic!("expected Taken, got {other:?}"),
    }
    // A heartbeat renews a lease; an unknown node has none to renew.
    assert!(store.heartbeat(a, now.plus(60_000)).unwrap());
    assert!(!store.heartbeat(random_node(), now).unwrap());
}

fn the_owner_asking_for_its_own_session_is_told_so(store: &dyn SessionStore) {
    let now = UnixMillis::now();
    let a = random_node();
    live(store, a, "127.0.0.1:1", now);
    let s = sample_session(now);
    store
        .create(&s, &fresh_cookie(now), a, res(8, 8), now)
        .unwrap();
    assert_eq!(
        store.acquire(&s.session_id, a, true, 8, now).unwrap(),
        Acquired::OwnedByCaller
    );
    assert_eq!(store.remove(&[s.session_id], random_node()).unwrap(), 0);
    assert_eq!(store.remove(&[s.session_id], a).unwrap(), 1);
    assert_eq!(
        store.acquire(&s.session_id, a, false, 8, now).unwrap(),
        Acquired::Unknown
    );
}

fn expired_sessions_are_unknown_and_swept(store: &dyn SessionStore) {
    let now = UnixMillis::now();
    let (a, b) = (random_node(), random_node());
    live(store, a, "127.0.0.1:1", now);
    live(store, b, "127.0.0.1:2", now);
    let mut old = sample_session(now);
    old.expires_at = UnixTime(now.secs().0 - 1);
    store
        .create(&old, &fresh_cookie(now), a, res(8, 8), now)
        .unwrap();
    assert_eq!(
        store.acquire(&old.session_id, b, true, 8, now).unwrap(),
        Acquired::Unknown
    );
    assert_eq!(
        store.session_count().unwrap(),
        0,
        "deleted when found expired"
    );

    let mut expired = sample_session(now);
    expired.expires_at = UnixTime(now.secs().0 - 1);
    store
        .create(&expired, &fresh_cookie(now), a, res(8, 8), now)
        .unwrap();
    let owned_live = sample_session(now);
    store
        .create(&owned_live, &fresh_cookie(now), a, res(8, 8), now)
        .unwrap();
    let released = sample_session(now);
    store
        .create(&released, &fresh_cookie(now), a, res(8, 8), now)
        .unwrap();
    store
        .release(
            &released.session_id,
            a,
            &RecordState::after_crash(0, 0),
            now,
        )
        .unwrap();
    // Later than the idle timeout: the released one and the expired one go, the one a live
    // node owns stays (its owner enforces idleness itself).
    let later = now.plus(10_000);
    assert_eq!(store.sweep(later, 5_000).unwrap(), 2);
    assert_eq!(store.session_count().unwrap(), 1);
    assert!(matches!(
        store
            .acquire(&owned_live.session_id, b, false, 8, later)
            .unwrap(),
        Acquired::HeldBy { .. }
    ));
}

/// A session its owner used for an hour without writing its row (records between reservation
/// raises touch nothing), then the owner crashed: it is idle from the crash, not from its last
/// write, so the next node can still take it over within the idle timeout.
fn a_crashed_owners_busy_session_is_idle_from_the_crash(store: &dyn SessionStore) {
    let start = UnixMillis::now();
    let (a, b) = (random_node(), random_node());
    live(store, a, "127.0.0.1:1", start);
    let mut s = sample_session(start);
    s.expires_at = UnixTime(start.secs().0 + 7200);
    store
        .create(&s, &fresh_cookie(start), a, res(8, 8), start)
        .unwrap();
    // A keeps renewing its lease for an hour, then stops (kill -9).
    let crash = start.plus(3_600_000);
    assert!(store.heartbeat(a, crash).unwrap());
    live(store, b, "127.0.0.1:2", crash.plus(60_000));
    let idle_ms = 600_000;
    // A minute after the crash: kept (idle for a minute, not for an hour).
    assert_eq!(store.sweep(crash.plus(60_000), idle_ms).unwrap(), 0);
    assert!(matches!(
        store
            .acquire(&s.session_id, b, false, 8, crash.plus(60_000))
            .unwrap(),
        Acquired::Taken { exact: false, .. }
    ));
    // A session whose dead owner's lease ended longer ago than the idle timeout goes.
    let c = random_node();
    live(store, c, "127.0.0.1:3", start);
    let gone = sample_session(start);
    store
        .create(&gone, &fresh_cookie(start), c, res(8, 8), start)
        .unwrap();
    assert_eq!(
        store
            .sweep(start.plus(60_000 + idle_ms + 1), idle_ms)
            .unwrap(),
        1
    );
    assert!(matches!(
        store
            .acquire(
                &gone.session_id,
                b,
                false,
                8,
                start.plus(60_000 + idle_ms + 1)
            )
            .unwrap(),
        Acquired::Unknown
    ));
}

fn concurrent_take_overs_hand_out_disjoint_ranges(store: Arc<dyn SessionStore>) {
    let now = UnixMillis::now();
    let first = random_node();
    live(&*store, first, "127.0.0.1:1", now);
    let s = sample_session(now);
    store
        .create(&s, &fresh_cookie(now), first, res(10, 10), now)
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let id = s.session_id;
            std::thread::spawn(move || {
                let mut ranges = Vec::new();
                for _ in 0..10 {
                    // A new node each time (the owner asking again is told it owns it).
                    let me = random_node();
                    if let Acquired::Taken {
                        start, reservation, ..
                    } = store.acquire(&id, me, true, 10, UnixMillis::now()).unwrap()
                    {
                        ranges.push((
                            start.recv_next,
                            u64::from(reservation.recv_limit),
                            u64::from(start.send_next),
                            u64::from(reservation.send_limit),
                        ));
                    }
                }
                ranges
            })
        })
        .collect();
    let mut all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), 40, "every forced take-over succeeds");
    all.sort_unstable();
    for pair in all.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(a.1 <= b.0, "receive ranges overlap: {a:?} {b:?}");
        assert!(a.3 <= b.2, "send ranges overlap: {a:?} {b:?}");
    }
    assert!(
        all[0].0 >= 10 && all[0].2 >= 10,
        "above the creator's range"
    );
}
