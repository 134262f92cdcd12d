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
/// quickly; unknown ids are never cached (a miss always asks the database). A miss may block on
/// the database: call [`ClientRegistry::longterm_key`] off the reactor, [`Self::cached`] on it.
pub struct RegistryKeys {
    registry: Arc<dyn Registry>,
    cache: Mutex<HashMap<ClientId, (LongtermPublicKey, Instant)>>,
    capacity: usize,
    ttl: Duration,
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
}

impl ClientRegistry for RegistryKeys {
    fn longterm_key(&self, client_id: &ClientId) -> Option<LongtermPublicKey> {
        if let Some(key) = self.cached(client_id) {
            return Some(key);
        }
        let now = Instant::now();
        let key = match self.registry.identity(client_id) {
            Ok(Some(record)) => record.longterm_key,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "registry lookup failed");
                return None;
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.capacity {
                // Cheap bound: drop what has expired, and everything if that was not enough.
                cache.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
                if cache.len() >= self.capacity {
                    cache.clear();
                }
            }
            if self.capacity > 0 {
                cache.insert(*client_id, (key, now));
            }
        }
        Some(key)
    }
}
