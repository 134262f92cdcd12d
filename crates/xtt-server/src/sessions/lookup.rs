//! The session handshake's ClientID → long-term key lookup, over the provisioning registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xtt_proto::longterm::LongtermPublicKey;
use xtt_proto::session::ClientRegistry;
use xtt_proto::ClientId;
use xtt_registry::Registry;

/// [`ClientRegistry`] over [`Registry::identity`], with a small bounded cache. Entries live a
/// few seconds only, so a device that re-provisions with a new key (or is deleted) is seen
/// quickly. Unknown ids are cached too, for two seconds only and in a bounded map of their
/// own: flights naming made-up ClientIDs then cost no database query each, and cannot push the
/// known devices' keys out. A miss may block on the database: call
/// [`ClientRegistry::longterm_key`] off the reactor, [`Self::cached`] on it.
pub struct RegistryKeys {
    registry: Arc<dyn Registry>,
    cache: Mutex<HashMap<ClientId, (LongtermPublicKey, Instant)>>,
    /// ClientIDs the registry did not know, and when it was asked.
    unknown: Mutex<HashMap<ClientId, Instant>>,
    capacity: usize,
    ttl: Duration,
}

/// How long a ClientID the registry did not know is answered as unknown without asking again:
/// short, so a device provisioned (on any node) just after its id was looked up is soon seen.
const UNKNOWN_TTL: Duration = Duration::from_secs(2);

/// Drops expired entries of `map` when it has reached `capacity`, and everything if that was not
/// enough (a cheap bound: no ordering to maintain on the lookup path).
fn make_room<V>(map: &mut HashMap<ClientId, V>, capacity: usize, fresh: impl Fn(&V) -> bool) {
    if map.len() >= capacity {
        map.retain(|_, v| fresh(v));
        if map.len() >= capacity {
            map.clear();
        }
    }
}

impl std::fmt::Debug for RegistryKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryKeys")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RegistryKeys {
    /// A lookup caching at most `capacity` keys for `ttl` each.
    pub fn new(registry: Arc<dyn Registry>, capacity: usize, ttl: Duration) -> Self {
        Self {
            registry,
            cache: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// The cached key of `client_id`, if fresh; never blocks on the registry (the session
    /// handshake asks this on the reactor, and [`ClientRegistry::longterm_key`] on a blocking
    /// thread only when it misses).
    pub fn cached(&self, client_id: &ClientId) -> Option<LongtermPublicKey> {
        let cache = self.cache.lock().ok()?;
        let (key, at) = cache.get(client_id)?;
        (at.elapsed() < self.ttl).then_some(*key)
    }

    /// What the caches know of `client_id` without asking the registry: `Some(Some(key))` a
    /// fresh key, `Some(None)` unknown a moment ago, `None` ask [`ClientRegistry::longterm_key`].
    pub fn cached_verdict(&self, client_id: &ClientId) -> Option<Option<LongtermPublicKey>> {
        if let Some(key) = self.cached(client_id) {
            return Some(Some(key));
        }
        let unknown = self.unknown.lock().ok()?;
        let at = unknown.get(client_id)?;
        (at.elapsed() < UNKNOWN_TTL).then_some(None)
    }
}

impl ClientRegistry for RegistryKeys {
    fn longterm_key(&self, client_id: &ClientId) -> Option<LongtermPublicKey> {
        if let Some(verdict) = self.cached_verdict(client_id) {
            return verdict;
        }
        let now = Instant::now();
        let key = match self.registry.identity(client_id) {
            Ok(Some(record)) => record.longterm_key,
            Ok(None) => {
                if let Ok(mut unknown) = self.unknown.lock() {
                    make_room(&mut unknown, self.capacity, |at| {
                        now.duration_since(*at) < UNKNOWN_TTL
                    });
                    if self.capacity > 0 {
                        unknown.insert(*client_id, now);
                    }
                }
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "registry lookup failed");
                return None;
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            make_room(&mut cache, self.capacity, |(_, at)| {
                now.duration_since(*at) < self.ttl
            });
            if self.capacity > 0 {
                cache.insert(*client_id, (key, now));
            }
        }
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtt_registry::{Durability, SqliteRegistry};

    /// A lookup caching at most `capacity` entries, over an empty registry.
    fn keys(capacity: usize) -> (tempfile::TempDir, RegistryKeys) {
        let dir = tempfile::tempdir().unwrap();
        let registry =
            SqliteRegistry::open(&dir.path().join("registry.sqlite"), Durability::Full).unwrap();
        let keys = RegistryKeys::new(Arc::new(registry), capacity, Duration::from_secs(5));
        (dir, keys)
    }

    fn id(i: u32) -> ClientId {
        let mut id = [0u8; xtt_proto::identity::CLIENT_ID_LEN];
        id[..4].copy_from_slice(&i.to_be_bytes());
        ClientId(id)
    }

    /// An unknown ClientID is answered from the cache (no registry query) for two seconds, and
    /// asked again after that.
    #[test]
    fn an_unknown_client_id_is_remembered_for_its_lifetime_only() {
        let (_dir, keys) = keys(16);
        assert!(keys.cached_verdict(&id(1)).is_none(), "not asked yet");
        assert!(keys.longterm_key(&id(1)).is_none());
        assert!(
            matches!(keys.cached_verdict(&id(1)), Some(None)),
            "unknown, from the cache"
        );
        // The clock is not injectable: the verdict is backdated instead.
        let asked = Instant::now().checked_sub(UNKNOWN_TTL).unwrap();
        keys.unknown.lock().unwrap().insert(id(1), asked);
        assert!(
            keys.cached_verdict(&id(1)).is_none(),
            "expired: the registry is asked again"
        );
    }

    /// However many made-up ClientIDs are looked up, their map holds at most the capacity.
    #[test]
    fn unknown_client_ids_are_kept_within_the_capacity() {
        let (_dir, keys) = keys(8);
        for i in 0..100 {
            assert!(keys.longterm_key(&id(i)).is_none());
            let held = keys.unknown.lock().unwrap().len();
            assert!((1..=8).contains(&held), "{held} unknown ids held");
        }
    }
}
