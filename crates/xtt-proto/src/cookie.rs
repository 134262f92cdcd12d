//! The stateless server cookie.
//!
//! C keeps 130 random bytes per connection. This server keeps nothing between
//! ServerInitAndAttest and Identity_ClientAttest: what it needs to finish travels in the cookie,
//! sealed with an AEAD key only the server knows (quinn's retry token is the model).
//!
//! Layout (130 bytes, opaque to clients):
//!
//! ```text
//! key_id(1) ‖ nonce(12) ‖ ChaCha20-Poly1305( plaintext(101) ) ‖ tag(16)
//! plaintext = version(1) ‖ suite(2) ‖ client signing nonce(32) ‖ client key share(32)
//!             ‖ issued_at(u64, unix seconds) ‖ zeros(26)
//! AD        = "XTT cookie v1" ‖ key_id
//! ```
//!
//! The server's ephemeral X25519 private key is not stored: it is
//! `HMAC-SHA256(x25519_key, "XTT cookie x25519" ‖ key_id ‖ nonce)`, where `x25519_key` is derived
//! from the same cookie secret, so the server re-derives it when the cookie comes back. The random
//! 12-byte nonce is therefore both the AEAD nonce and the per-handshake seed.
//!
//! Keys rotate: the keyring holds the current key (used to seal) and the previous one (still
//! accepted), each named by the 1-byte key id in the clear. Cookies under any older key are
//! refused. Cookies expire `lifetime` seconds after issue. Each accepted cookie is recorded in a
//! [`ReplayGuard`] until it expires, so a cookie is accepted at most once. The cookie is recorded
//! only once the ClientAttest has passed the cookie, AEAD and long-term signature checks, so
//! attempts that fail those leave no state. In identity provisioning that is before the DAA
//! verification, on purpose: a replayed ClientAttest is refused before it can buy a second
//! DAA verification (≈ 0.3–2 ms of CPU each). So an attempt that then fails DAA keeps its cookie
//! recorded until the cookie expires; it cost its sender a full handshake, and the server a DAA
//! verification, which bounds how fast such entries can accumulate.
//!
//! # Cost
//!
//! Compared with C's stateful server, statelessness adds, per handshake: sealing (ClientInit) and
//! opening (ClientAttest) 130 bytes of ChaCha20-Poly1305 plus two HMAC-SHA256 (≈ 4 µs together),
//! one X25519 base-point multiplication to re-derive the server key share (≈ 16 µs) and one
//! P-256 ECDSA signature to recompute `signature_s` (≈ 60 µs with the fixed-base table in
//! `crypto`): ≈ 80 µs, ≈ 3.5 % of the server's ≈ 2.3 ms handshake (dominated by the 1.9 ms DAA
//! verification). Figures from `benches/handshake.rs` on a quiet 2-core machine (BENCHMARKS.md).

use core::fmt;
use std::collections::HashMap;
use std::sync::Mutex;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{self, AeadAlg};
use crate::error::PeerMisbehaved;
use crate::msgs::{COOKIE_LEN, KEY_SHARE_LEN, SIGNING_NONCE_LEN};
use crate::suite::SuiteSpec;
use crate::UnixTime;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const PLAINTEXT_LEN: usize = COOKIE_LEN - 1 - NONCE_LEN - TAG_LEN;
const USED_LEN: usize = 1 + 2 + SIGNING_NONCE_LEN + KEY_SHARE_LEN + 8;
const AD_LABEL: &[u8] = b"XTT cookie v1";
const X25519_LABEL: &[u8] = b"XTT cookie x25519";
const AEAD_LABEL: &[u8] = b"XTT cookie aead";
const X25519_KEY_LABEL: &[u8] = b"XTT cookie x25519 key";

/// Default cookie lifetime in seconds.
pub const DEFAULT_COOKIE_LIFETIME_SECS: u64 = 20;

/// One cookie key: a 1-byte id and two subkeys derived from a 32-byte secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CookieKey {
    id: u8,
    aead_key: [u8; 32],
    x25519_key: [u8; 32],
}

impl fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CookieKey {
    /// A key from a 32-byte secret (e.g. shared by several server instances).
    pub fn from_secret(id: u8, secret: &[u8; 32]) -> Self {
        let aead_key = crypto::hmac_sha256(secret, &[AEAD_LABEL]);
        let x25519_key = crypto::hmac_sha256(secret, &[X25519_KEY_LABEL]);
        Self {
            id,
            aead_key: *aead_key,
            x25519_key: *x25519_key,
        }
    }

    /// A fresh random key.
    pub fn generate(id: u8, rng: &mut dyn CryptoRngCore) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *secret);
        Self::from_secret(id, &secret)
    }

    /// The key id carried in the clear in each cookie.
    pub fn id(&self) -> u8 {
        self.id
    }

    fn x25519_private(&self, nonce: &[u8; NONCE_LEN]) -> Zeroizing<[u8; 32]> {
        crypto::hmac_sha256(&self.x25519_key, &[X25519_LABEL, &[self.id], nonce])
    }
}

/// The current cookie key and the previous one.
#[derive(Clone, Debug)]
pub struct CookieKeyring {
    current: CookieKey,
    previous: Option<CookieKey>,
}

impl CookieKeyring {
    /// A keyring with one key.
    pub fn new(current: CookieKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// A keyring with a current key (seals and opens) and a previous one (opens only).
    pub fn with_previous(current: CookieKey, previous: Option<CookieKey>) -> Self {
        Self { current, previous }
    }

    /// The id of the key new cookies are sealed with.
    pub fn current_id(&self) -> u8 {
        self.current.id
    }

    /// Makes `next` current; the old current key stays acceptable, the one before is dropped.
    /// `next` should have a different id than the current key.
    pub fn rotate(&mut self, next: CookieKey) {
        let old = core::mem::replace(&mut self.current, next);
        self.previous = Some(old);
    }

    fn find(&self, id: u8) -> Option<&CookieKey> {
        if self.current.id == id {
            return Some(&self.current);
        }
        self.previous.as_ref().filter(|k| k.id == id)
    }
}

/// What a cookie carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CookieContents {
    pub(crate) suite: SuiteSpec,
    pub(crate) client_nonce: [u8; SIGNING_NONCE_LEN],
    pub(crate) client_key_share: [u8; KEY_SHARE_LEN],
    pub(crate) issued_at: UnixTime,
}

/// Identifies one cookie for the replay cache: `key_id ‖ nonce`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CookieId(pub [u8; 1 + NONCE_LEN]);

/// A cookie that opened.
pub(crate) struct OpenedCookie {
    pub(crate) contents: CookieContents,
    pub(crate) id: CookieId,
    pub(crate) server_x25519_private: Zeroizing<[u8; 32]>,
}

/// A sealed cookie plus the server ephemeral private key it implies.
pub(crate) struct SealedCookie {
    pub(crate) bytes: [u8; COOKIE_LEN],
    pub(crate) server_x25519_private: Zeroizing<[u8; 32]>,
}

fn padded_plaintext(c: &CookieContents) -> Zeroizing<[u8; PLAINTEXT_LEN]> {
    let mut p = Zeroizing::new([0u8; PLAINTEXT_LEN]);
    let mut v = Vec::with_capacity(USED_LEN);
    v.push(crate::codec::VERSION);
    v.extend_from_slice(&c.suite.to_u16().to_be_bytes());
    v.extend_from_slice(&c.client_nonce);
    v.extend_from_slice(&c.client_key_share);
    v.extend_from_slice(&c.issued_at.0.to_be_bytes());
    for (d, s) in p.iter_mut().zip(v.iter()) {
        *d = *s;
    }
    p
}

fn ad(id: u8) -> Vec<u8> {
    let mut ad = AD_LABEL.to_vec();
    ad.push(id);
    ad
}

pub(crate) fn seal(
    keyring: &CookieKeyring,
    contents: &CookieContents,
    rng: &mut dyn CryptoRngCore,
) -> Result<SealedCookie, crate::error::CryptoError> {
    let key = &keyring.current;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let pt = padded_plaintext(contents);
    let ct = crypto::aead_seal(
        AeadAlg::ChaCha20Poly1305,
        &key.aead_key,
        &nonce,
        &ad(key.id),
        &pt[..],
    )
    .map_err(|_| crate::error::CryptoError::Primitive)?;
    let mut bytes = [0u8; COOKIE_LEN];
    let mut v = Vec::with_capacity(COOKIE_LEN);
    v.push(key.id);
    v.extend_from_slice(&nonce);
    v.extend_from_slice(&ct);
    if v.len() != COOKIE_LEN {
        return Err(crate::error::CryptoError::Primitive);
    }
    bytes.copy_from_slice(&v);
    Ok(SealedCookie {
        bytes,
        server_x25519_private: key.x25519_private(&nonce),
    })
}

/// Opens a cookie: key known, tag valid, padding zero, not expired. Does not touch the replay
/// cache.
pub(crate) fn open(
    keyring: &CookieKeyring,
    cookie: &[u8; COOKIE_LEN],
    now: UnixTime,
    lifetime_secs: u64,
) -> Result<OpenedCookie, PeerMisbehaved> {
    let (&key_id, rest) = cookie.split_first().ok_or(PeerMisbehaved::InvalidCookie)?;
    let (nonce, ct) = rest.split_at(NONCE_LEN.min(rest.len()));
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| PeerMisbehaved::InvalidCookie)?;
    let key = keyring.find(key_id).ok_or(PeerMisbehaved::InvalidCookie)?;
    let pt = crypto::aead_open(
        AeadAlg::ChaCha20Poly1305,
        &key.aead_key,
        &nonce,
        &ad(key_id),
        ct,
    )
    .map_err(|_| PeerMisbehaved::InvalidCookie)?;
    let mut r = crate::codec::Reader::new(&pt);
    let version = r.u8().map_err(|_| PeerMisbehaved::InvalidCookie)?;
    let suite = r.u16().map_err(|_| PeerMisbehaved::InvalidCookie)?;
    let client_nonce = r
        .array::<SIGNING_NONCE_LEN>()
        .map_err(|_| PeerMisbehaved::InvalidCookie)?;
    let client_key_share = r
        .array::<KEY_SHARE_LEN>()
        .map_err(|_| PeerMisbehaved::InvalidCookie)?;
    let issued_at = u64::from_be_bytes(r.array::<8>().map_err(|_| PeerMisbehaved::InvalidCookie)?);
    let padding = r.rest();
    // Authentic cookies always satisfy these; checking them keeps a key compromise from
    // turning into parser confusion.
    if version != crate::codec::VERSION
        || !bool::from(padding.ct_eq(&[0u8; PLAINTEXT_LEN - USED_LEN][..]))
    {
        return Err(PeerMisbehaved::InvalidCookie);
    }
    let suite = SuiteSpec::from_u16(suite).map_err(|_| PeerMisbehaved::InvalidCookie)?;
    if now.0 < issued_at || now.0 - issued_at > lifetime_secs {
        return Err(PeerMisbehaved::ExpiredCookie);
    }
    let mut id = [0u8; 1 + NONCE_LEN];
    id[0] = key_id;
    id[1..].copy_from_slice(&nonce);
    Ok(OpenedCookie {
        contents: CookieContents {
            suite,
            client_nonce,
            client_key_share,
            issued_at: UnixTime(issued_at),
        },
        id: CookieId(id),
        server_x25519_private: key.x25519_private(&nonce),
    })
}

/// Seals a cookie and opens it again (what the stateless design costs in AEAD work); for
/// benchmarks.
#[doc(hidden)]
pub fn seal_and_open_for_testing_only(
    keyring: &CookieKeyring,
    now: UnixTime,
    rng: &mut dyn CryptoRngCore,
) -> bool {
    let contents = CookieContents {
        suite: SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
        client_nonce: [0; SIGNING_NONCE_LEN],
        client_key_share: [9; KEY_SHARE_LEN],
        issued_at: now,
    };
    match seal(keyring, &contents, rng) {
        Ok(sealed) => open(keyring, &sealed.bytes, now, DEFAULT_COOKIE_LIFETIME_SECS).is_ok(),
        Err(_) => false,
    }
}

/// What a [`ReplayGuard`] says about a cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// First use; now recorded.
    Fresh,
    /// Seen before: refuse.
    Replayed,
    /// Cannot record it (cache full of live entries): refuse, shed load.
    Full,
    /// Expired before a time at which the guard already forgot expired cookies: it can no
    /// longer tell a first use from a replay, so refuse it as expired. Only a wall clock that
    /// stepped backwards (an NTP step, a resumed VM) lets such a cookie open again.
    Expired,
}

/// Remembers accepted cookies until they expire, so each is accepted at most once.
///
/// Implementations must be atomic: two concurrent calls with the same id must not both get
/// [`ReplayVerdict::Fresh`].
pub trait ReplayGuard: Send + Sync {
    /// Records `id` (valid until `expires_at`) unless already present.
    fn check_and_insert(&self, id: &CookieId, expires_at: UnixTime, now: UnixTime)
        -> ReplayVerdict;
}

/// A bounded in-memory [`ReplayGuard`].
///
/// When it holds `capacity` live entries it **refuses new cookies** ([`ReplayVerdict::Full`])
/// instead of evicting live ones (evicting would reopen a replay window). Expired entries are
/// purged when the cache is full. With lifetime L seconds and capacity C, it sustains C/L
/// handshakes per second.
#[derive(Debug)]
pub struct InMemoryReplayGuard {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    map: HashMap<CookieId, UnixTime>,
    /// When expired cookies were last purged: a full guard is scanned at most once per second,
    /// not on every check, so checks against a full guard cost O(1) instead of O(capacity)
    /// under its lock. A second scan within the same second could remove nothing: what the first
    /// kept expires no earlier than that second.
    purged_at: Option<UnixTime>,
    /// The latest `now` of a purge: cookies that expired before it may have been forgotten, so
    /// none of them is accepted again, however far the caller's clock steps back.
    forgotten_before: u64,
}

impl InMemoryReplayGuard {
    /// A cache for at most `capacity` live cookies.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: Mutex::new(Seen {
                map: HashMap::new(),
                purged_at: None,
                forgotten_before: 0,
            }),
        }
    }

    /// Number of cookies currently remembered.
    pub fn len(&self) -> usize {
        match self.seen.lock() {
            Ok(g) => g.map.len(),
            Err(p) => p.into_inner().map.len(),
        }
    }

    /// Whether no cookie is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayGuard for InMemoryReplayGuard {
    fn check_and_insert(
        &self,
        id: &CookieId,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> ReplayVerdict {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if seen.map.contains_key(id) {
            return ReplayVerdict::Replayed;
        }
        if expires_at.0 < seen.forgotten_before {
            return ReplayVerdict::Expired;
        }
        if seen.map.len() >= self.capacity {
            if seen.purged_at != Some(now) {
                seen.purged_at = Some(now);
                seen.forgotten_before = seen.forgotten_before.max(now.0);
                seen.map.retain(|_, exp| exp.0 >= now.0);
            }
            if seen.map.len() >= self.capacity {
                return ReplayVerdict::Full;
            }
        }
        seen.map.insert(*id, expires_at);
        ReplayVerdict::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(t: u64) -> CookieContents {
        CookieContents {
            suite: SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
            client_nonce: [1; 32],
            client_key_share: [2; 32],
            issued_at: UnixTime(t),
        }
    }

    struct Counter(u8);
    impl rand_core::RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            for b in d {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Counter {}

    #[test]
    fn cookie_round_trips_and_rederives_the_same_ephemeral() {
        let ring = CookieKeyring::new(CookieKey::from_secret(7, &[9; 32]));
        let sealed = seal(&ring, &contents(100), &mut Counter(0)).unwrap();
        assert_eq!(sealed.bytes[0], 7);
        let opened = open(&ring, &sealed.bytes, UnixTime(105), 20).unwrap();
        assert_eq!(opened.contents, contents(100));
        assert_eq!(*opened.server_x25519_private, *sealed.server_x25519_private);
    }

    #[test]
    fn rejects_cookie_from_the_future_or_past_lifetime() {
        let ring = CookieKeyring::new(CookieKey::from_secret(7, &[9; 32]));
        let sealed = seal(&ring, &contents(100), &mut Counter(0)).unwrap();
        assert!(open(&ring, &sealed.bytes, UnixTime(120), 20).is_ok());
        assert_eq!(
            open(&ring, &sealed.bytes, UnixTime(121), 20).err(),
            Some(PeerMisbehaved::ExpiredCookie)
        );
        assert_eq!(
            open(&ring, &sealed.bytes, UnixTime(99), 20).err(),
            Some(PeerMisbehaved::ExpiredCookie)
        );
    }

    #[test]
    fn replay_guard_refuses_when_full_of_live_entries() {
        let g = InMemoryReplayGuard::new(2);
        let id = |b| CookieId([b; 13]);
        assert_eq!(
            g.check_and_insert(&id(1), UnixTime(10), UnixTime(0)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            g.check_and_insert(&id(1), UnixTime(10), UnixTime(0)),
            ReplayVerdict::Replayed
        );
        assert_eq!(
            g.check_and_insert(&id(2), UnixTime(20), UnixTime(0)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            g.check_and_insert(&id(3), UnixTime(20), UnixTime(5)),
            ReplayVerdict::Full
        );
        // Once the first entry expired, it is purged to make room.
        assert_eq!(
            g.check_and_insert(&id(3), UnixTime(30), UnixTime(11)),
            ReplayVerdict::Fresh
        );
        assert_eq!(g.len(), 2);
    }

    /// A purge forgets cookies that expired; a clock stepped back behind the purge must not
    /// make one of them acceptable again (a replayed flight would get a second session with
    /// the same keys).
    #[test]
    fn a_forgotten_cookie_stays_refused_when_the_clock_steps_back() {
        let g = InMemoryReplayGuard::new(1);
        let id = |b| CookieId([b; 13]);
        assert_eq!(
            g.check_and_insert(&id(1), UnixTime(120), UnixTime(100)),
            ReplayVerdict::Fresh
        );
        // Full: the purge at 126 forgets id 1 (expired at 120) to make room.
        assert_eq!(
            g.check_and_insert(&id(2), UnixTime(146), UnixTime(126)),
            ReplayVerdict::Fresh
        );
        assert_eq!(g.len(), 1);
        // The clock steps back to 110, where id 1's cookie opens again.
        assert_eq!(
            g.check_and_insert(&id(1), UnixTime(120), UnixTime(110)),
            ReplayVerdict::Expired
        );
        // Cookies expiring after the purge are still judged as before.
        assert_eq!(
            g.check_and_insert(&id(2), UnixTime(146), UnixTime(110)),
            ReplayVerdict::Replayed
        );
    }
}
