//! Optional, bounded server caches around the stateless cookie: the per-handshake work between
//! ServerInitAndAttest and the ClientAttest (to spend less than the stateless rebuild costs), and
//! the Session_ServerFinished sent per accepted flight (to answer retransmissions, §5).
//!
//! The stateless server ([`crate::cookie`]) recomputes, when the ClientAttest arrives, what it
//! computed for ServerInitAndAttest: its X25519 public key and the shared secret (two scalar
//! multiplications) and its RFC 6979 signature `signature_s` (one ECDSA signature). For a session
//! handshake, which has no DAA verification to hide behind, that is about as much again as the
//! unavoidable work (see BENCHMARKS.md, issue 4). With [`crate::server::Server::with_handshake_cache`]
//! the server keeps that result for up to the cookie's lifetime, keyed by the cookie's id, and
//! takes it out (once) when the cookie comes back:
//!
//! - The cookie is still opened and checked first (authenticity, expiry, suite): the cache is
//!   consulted only for a cookie this server issued, and the entry is exactly what the rebuild
//!   would produce (everything in it is a deterministic function of the cookie).
//! - Bounded: at `capacity` live entries nothing more is cached and handshakes fall back to the
//!   stateless rebuild, so a ClientInit flood costs at most `capacity` × ~0.5 KiB and never
//!   breaks a handshake.
//! - Entries hold handshake keys: they are zeroized when taken or purged, and never leave the
//!   process. Expired entries are purged at most once a second by the next insert or take, so
//!   the keys of abandoned handshakes do not wait for the cache to fill; a server that falls
//!   completely silent keeps them until its next handshake.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cookie::CookieId;
use crate::msgs::COOKIE_LEN;
use crate::server::Rebuilt;
use crate::UnixTime;

/// The id of a cookie: its first 13 bytes (`key_id ‖ nonce`, see [`crate::cookie`]).
pub(crate) fn cookie_id(cookie: &[u8; COOKIE_LEN]) -> CookieId {
    let mut id = [0u8; 13];
    for (d, s) in id.iter_mut().zip(cookie.iter()) {
        *d = *s;
    }
    CookieId(id)
}

/// Entries with an expiry time, at most `capacity` of them.
struct Expiring<K, V> {
    map: HashMap<K, (UnixTime, V)>,
    /// When expired entries were last purged: the map is scanned at most once per second
    /// (expiry has a one-second granularity), not on every call, so an insert or take costs
    /// O(1) amortised instead of O(capacity).
    purged_at: Option<UnixTime>,
}

impl<K: core::hash::Hash + Eq, V> Expiring<K, V> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            purged_at: None,
        }
    }

    /// Drops the entries expired at `now`, unless that was already done this second.
    fn purge(&mut self, now: UnixTime) {
        if self.purged_at != Some(now) {
            self.purged_at = Some(now);
            self.map.retain(|_, (exp, _)| exp.0 >= now.0);
        }
    }

    /// Inserts unless the map is full of live entries.
    fn insert(&mut self, capacity: usize, key: K, value: V, expires_at: UnixTime, now: UnixTime) {
        self.purge(now);
        if self.map.len() < capacity {
            self.map.insert(key, (expires_at, value));
        }
    }

    /// Takes the entry for `key` if present and unexpired.
    fn take(&mut self, key: &K, now: UnixTime) -> Option<V> {
        self.purge(now);
        let (exp, value) = self.map.remove(key)?;
        (exp.0 >= now.0).then_some(value)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

pub(crate) struct HandshakeCache {
    capacity: usize,
    entries: Mutex<Expiring<CookieId, Box<Rebuilt>>>,
}

impl HandshakeCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(Expiring::new()),
        }
    }

    /// Keeps `rebuilt` until `expires_at`, unless the cache is full of live entries.
    pub(crate) fn insert(
        &self,
        id: CookieId,
        rebuilt: Rebuilt,
        expires_at: UnixTime,
        now: UnixTime,
    ) {
        lock(&self.entries).insert(self.capacity, id, Box::new(rebuilt), expires_at, now);
    }

    /// Takes the entry for `id` if present and unexpired.
    pub(crate) fn take(&self, id: &CookieId, now: UnixTime) -> Option<Box<Rebuilt>> {
        lock(&self.entries).take(id, now)
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }
}

/// Finished messages already sent, by a hash of the exact flight that produced them, so an
/// identical retransmitted ClientAttest is answered with the same bytes and not processed again
/// (XTT-SESSION §5). Bounded like [`HandshakeCache`]; when full, a retransmission is refused as a
/// replay instead (the client then starts over).
pub(crate) struct FinishedCache {
    capacity: usize,
    /// Flight hash → (expiry, finished bytes).
    entries: Mutex<Expiring<[u8; 32], Vec<u8>>>,
}

impl FinishedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(Expiring::new()),
        }
    }

    pub(crate) fn key(flight: &[u8]) -> [u8; 32] {
        crate::crypto::sha256(&[b"XTT finished cache", flight])
    }

    /// Keeps `finished` for the flight whose [`Self::key`] is `key`.
    pub(crate) fn insert_keyed(
        &self,
        key: [u8; 32],
        finished: &[u8],
        expires_at: UnixTime,
        now: UnixTime,
    ) {
        lock(&self.entries).insert(self.capacity, key, finished.to_vec(), expires_at, now);
    }

    pub(crate) fn get(&self, flight: &[u8], now: UnixTime) -> Option<Vec<u8>> {
        let key = Self::key(flight);
        let g = lock(&self.entries);
        let (exp, bytes) = g.map.get(&key)?;
        (exp.0 >= now.0).then(|| bytes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An abandoned entry (its cookie never comes back) is dropped by the next call after it
    /// expired, not kept until the map fills.
    #[test]
    fn expired_entries_are_purged_by_later_calls_not_only_when_full() {
        let mut m: Expiring<u8, [u8; 4]> = Expiring::new();
        m.insert(100, 1, [1; 4], UnixTime(20), UnixTime(0));
        m.insert(100, 2, [2; 4], UnixTime(40), UnixTime(0));
        assert_eq!(m.map.len(), 2);
        // A take of something else at 21 drops entry 1, keeps entry 2.
        assert_eq!(m.take(&9, UnixTime(21)), None);
        assert_eq!(m.map.len(), 1);
        assert_eq!(m.take(&2, UnixTime(21)), Some([2; 4]));
        // An insert purges too.
        m.insert(100, 3, [3; 4], UnixTime(30), UnixTime(22));
        m.insert(100, 4, [4; 4], UnixTime(60), UnixTime(31));
        assert_eq!(m.map.len(), 1);
        // At capacity nothing more is cached, and an expired entry is never handed out.
        m.insert(1, 5, [5; 4], UnixTime(90), UnixTime(31));
        assert_eq!(m.map.len(), 1);
        assert_eq!(m.take(&4, UnixTime(61)), None);
    }
}
