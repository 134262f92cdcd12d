//! The storage test suite, written against [`Registry`] so every backend runs the same checks.
//!
//! A backend's integration test calls [`run_all`] with a factory that returns a fresh, empty
//! registry per call. The checks panic (like any test assertion) on the first violation.

use std::collections::HashSet;
use std::sync::Arc;

use rand_core::{OsRng, RngCore};
use xtt_proto::daa::{GroupId, Pseudonym};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::{ClientId, UnixTime};

use crate::{
    CookieUse, GroupRecord, Refusal, Registration, Registry, RegistryError,
    COOKIE_SWEEP_MARGIN_SECS,
};

/// Makes a fresh, empty registry.
pub type Factory<'a> = &'a dyn Fn() -> Arc<dyn Registry>;

/// Every check, each on a fresh registry.
pub fn run_all(factory: Factory<'_>) {
    groups_round_trip_and_conflicts_are_refused(&*factory());
    fresh_ids_are_unique_under_concurrency(factory());
    requested_id_is_granted_only_if_free(&*factory());
    returning_device_keeps_its_id(&*factory());
    deleted_ids_are_never_reused(&*factory());
    unknown_group_is_refused(&*factory());
    batch_applies_requests_in_order(&*factory());
    cookies_are_accepted_once(&*factory());
    a_cookie_raced_by_many_threads_is_accepted_once(factory());
}

/// A random cookie that expires at `expires_at`.
pub fn sample_cookie(expires_at: u64) -> CookieUse {
    let mut id = [0u8; 13];
    OsRng.fill_bytes(&mut id);
    CookieUse {
        id,
        expires_at: UnixTime(expires_at),
    }
}

/// A group with random id and parameters.
pub fn sample_group() -> GroupRecord {
    let mut gid = [0u8; 32];
    OsRng.fill_bytes(&mut gid);
    let mut gpk = vec![0u8; 258];
    OsRng.fill_bytes(&mut gpk);
    GroupRecord {
        group_id: GroupId(gid),
        gpk,
        basename: b"conformance basename".to_vec(),
    }
}

/// A registration of a new random device in `group`.
pub fn sample_registration(group: &GroupId, requested_id: ClientId) -> Registration {
    let mut pseudonym = [4u8; 65];
    OsRng.fill_bytes(&mut pseudonym[1..]);
    Registration {
        group_id: *group,
        pseudonym: Pseudonym(pseudonym),
        requested_id,
        longterm_key: *LongtermKeyPair::generate(&mut OsRng).public_key(),
        now: UnixTime(1_700_000_000),
    }
}

fn must<T>(r: Result<T, RegistryError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("registry call failed: {e}"),
    }
}

/// Groups read back as written; the same id with other parameters is refused.
pub fn groups_round_trip_and_conflicts_are_refused(reg: &dyn Registry) {
    must(reg.ping());
    let g = sample_group();
    assert!(must(reg.add_group(&g)));
    assert!(
        !must(reg.add_group(&g)),
        "identical group is not added twice"
    );
    assert_eq!(must(reg.group(&g.group_id)), Some(g.clone()));
    assert_eq!(must(reg.groups()), vec![g.clone()]);
    let mut other = g.clone();
    other.basename = b"another basename".to_vec();
    assert!(matches!(
        reg.add_group(&other),
        Err(RegistryError::GroupConflict(_))
    ));
    assert_eq!(must(reg.group(&sample_group().group_id)), None);
}

/// 8 threads × 40 new devices: 320 distinct ids, each stored with its own key.
pub fn fresh_ids_are_unique_under_concurrency(reg: Arc<dyn Registry>) {
    let g = sample_group();
    must(reg.add_group(&g));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let reg = reg.clone();
            std::thread::spawn(move || {
                (0..40)
                    .map(|_| {
                        let r = sample_registration(&g.group_id, ClientId::NULL);
                        let a = must(reg.register(&r));
                        assert!(a.new_device);
                        (a.client_id, r.longterm_key)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        match t.join() {
            Ok(v) => all.extend(v),
            Err(_) => panic!("registering thread panicked"),
        }
    }
    let ids: HashSet<_> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 320);
    assert!(!ids.contains(&ClientId::NULL));
    assert_eq!(must(reg.identity_count()), 320);
    for (id, key) in &all {
        let rec = must(reg.identity(id));
        assert_eq!(rec.map(|r| r.longterm_key), Some(*key));
    }
}

/// A free requested id is granted as asked; a taken one is refused and nothing changes.
pub fn requested_id_is_granted_only_if_free(reg: &dyn Registry) {
    let g = sample_group();
    must(reg.add_group(&g));
    let wanted = ClientId([0x42; 16]);
    let first = sample_registration(&g.group_id, wanted);
    assert_eq!(must(reg.register(&first)).client_id, wanted);
    let second = sample_registration(&g.group_id, wanted);
    assert!(matches!(
        reg.register(&second),
        Err(RegistryError::Refused(Refusal::RequestedIdTaken(id))) if id == wanted
    ));
    let stored = must(reg.identity(&wanted));
    assert_eq!(stored.map(|r| r.pseudonym), Some(first.pseudonym));
    assert_eq!(must(reg.identity_count()), 1);
}

/// The same pseudonym provisions again: same id, new key, `last_seen` advances; asking for
/// another id is refused.
pub fn returning_device_keeps_its_id(reg: &dyn Registry) {
    let g = sample_group();
    must(reg.add_group(&g));
    let first = sample_registration(&g.group_id, ClientId::NULL);
    let a = must(reg.register(&first));
    let mut again = first.clone();
    again.longterm_key = *LongtermKeyPair::generate(&mut OsRng).public_key();
    again.now = UnixTime(first.now.0 + 60);
    let b = must(reg.register(&again));
    assert_eq!(b.client_id, a.client_id);
    assert!(!b.new_device);
    let rec = must(reg.identity(&a.client_id));
    let Some(rec) = rec else {
        panic!("identity vanished")
    };
    assert_eq!(rec.longterm_key, again.longterm_key);
    assert_eq!(rec.first_seen, first.now);
    assert_eq!(rec.last_seen, again.now);
    // Asking by its own id works; asking for another is refused.
    let mut by_id = again.clone();
    by_id.requested_id = a.client_id;
    assert_eq!(must(reg.register(&by_id)).client_id, a.client_id);
    by_id.requested_id = ClientId([0x17; 16]);
    assert!(matches!(
        reg.register(&by_id),
        Err(RegistryError::Refused(Refusal::DeviceHoldsOtherId { .. }))
    ));
    assert_eq!(must(reg.identity_count()), 1);
}

/// A deleted identity's id is refused when requested again; the device gets a new one.
pub fn deleted_ids_are_never_reused(reg: &dyn Registry) {
    let g = sample_group();
    must(reg.add_group(&g));
    let wanted = ClientId([0x99; 16]);
    let r = sample_registration(&g.group_id, wanted);
    must(reg.register(&r));
    assert!(must(reg.delete_identity(&wanted)));
    assert!(!must(reg.delete_identity(&wanted)));
    assert_eq!(must(reg.identity(&wanted)), None);
    let other = sample_registration(&g.group_id, wanted);
    assert!(matches!(
        reg.register(&other),
        Err(RegistryError::Refused(Refusal::RequestedIdTaken(_)))
    ));
    let mut same_device = r.clone();
    same_device.requested_id = ClientId::NULL;
    let again = must(reg.register(&same_device));
    assert!(again.new_device);
    assert_ne!(again.client_id, wanted);
}

/// Registration in a group the registry does not know is refused.
pub fn unknown_group_is_refused(reg: &dyn Registry) {
    let r = sample_registration(&sample_group().group_id, ClientId::NULL);
    assert!(matches!(
        reg.register(&r),
        Err(RegistryError::Refused(Refusal::UnknownGroup))
    ));
    assert_eq!(must(reg.identity_count()), 0);
}

/// One batch, two devices asking for the same id: the first gets it, the second is refused.
pub fn batch_applies_requests_in_order(reg: &dyn Registry) {
    let g = sample_group();
    must(reg.add_group(&g));
    let wanted = ClientId([0x55; 16]);
    let batch = vec![
        sample_registration(&g.group_id, wanted),
        sample_registration(&g.group_id, wanted),
        sample_registration(&g.group_id, ClientId::NULL),
    ];
    let out = must(reg.register_all(&batch));
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].map(|a| a.client_id), Ok(wanted));
    assert_eq!(out[1], Err(Refusal::RequestedIdTaken(wanted)));
    assert!(out[2].is_ok());
    assert_eq!(must(reg.identity_count()), 2);
}

/// A cookie claims once, alone or with a registration; a replayed one registers nothing; a
/// batch holding one cookie twice grants it to the first request only; expired cookies are
/// swept (past the clock-skew margin) and live ones are not.
pub fn cookies_are_accepted_once(reg: &dyn Registry) {
    let g = sample_group();
    must(reg.add_group(&g));
    let now = 1_700_000_000;
    let alone = sample_cookie(now + 20);
    assert!(must(reg.claim_cookie(&alone)));
    assert!(!must(reg.claim_cookie(&alone)));

    let cookie = sample_cookie(now + 20);
    let r = sample_registration(&g.group_id, ClientId::NULL);
    let out = must(reg.register_all_once(core::slice::from_ref(&r), &[cookie]));
    assert!(out[0].is_ok());
    // The same Identity_ClientAttest again (same cookie, same device), and another device
    // presenting that cookie: both refused, nothing changes.
    let other = sample_registration(&g.group_id, ClientId::NULL);
    let out = must(reg.register_all_once(&[r.clone(), other], &[cookie, cookie]));
    assert_eq!(
        out,
        vec![Err(Refusal::CookieReplayed), Err(Refusal::CookieReplayed)]
    );
    assert!(
        !must(reg.claim_cookie(&cookie)),
        "claimed by the registration"
    );
    assert_eq!(must(reg.identity_count()), 1);

    let twice = sample_cookie(now + 20);
    let batch = vec![
        sample_registration(&g.group_id, ClientId::NULL),
        sample_registration(&g.group_id, ClientId::NULL),
        sample_registration(&g.group_id, ClientId::NULL),
    ];
    let out = must(reg.register_all_once(&batch, &[twice, twice, sample_cookie(now + 20)]));
    assert!(out[0].is_ok());
    assert_eq!(out[1], Err(Refusal::CookieReplayed));
    assert!(out[2].is_ok());
    assert_eq!(must(reg.identity_count()), 3);
    assert!(matches!(
        reg.register_all_once(&batch, &[twice]),
        Err(RegistryError::Corrupt(_))
    ));

    // Sweeping: a cookie is deleted only once it expired more than the margin ago.
    let old = sample_cookie(now - COOKIE_SWEEP_MARGIN_SECS - 10);
    let recent = sample_cookie(now - 10);
    assert!(must(reg.claim_cookie(&old)));
    assert!(must(reg.claim_cookie(&recent)));
    assert_eq!(must(reg.sweep_used_cookies(UnixTime(now))), 1);
    assert!(!must(reg.claim_cookie(&recent)), "inside the margin: kept");
    assert!(!must(reg.claim_cookie(&twice)), "live: kept");
    assert!(must(reg.claim_cookie(&old)), "swept");
}

/// 8 threads present the same cookie at once (as 8 nodes receiving one replayed
/// Identity_ClientAttest would): exactly one registers.
pub fn a_cookie_raced_by_many_threads_is_accepted_once(reg: Arc<dyn Registry>) {
    let g = sample_group();
    must(reg.add_group(&g));
    let cookie = sample_cookie(1_700_000_020);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let reg = reg.clone();
            let r = sample_registration(&g.group_id, ClientId::NULL);
            std::thread::spawn(move || must(reg.register_all_once(&[r], &[cookie])))
        })
        .collect();
    let mut granted = 0;
    for t in threads {
        match t.join() {
            Ok(out) => match out[0] {
                Ok(_) => granted += 1,
                Err(Refusal::CookieReplayed) => {}
                Err(other) => panic!("unexpected refusal {other}"),
            },
            Err(_) => panic!("thread panicked"),
        }
    }
    assert_eq!(granted, 1);
    assert_eq!(must(reg.identity_count()), 1);
}
