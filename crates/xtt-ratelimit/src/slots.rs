//! Caps on things held at once (connections, handshakes in progress): per client, keyed like
//! the token buckets (IPv4 address, IPv6 /64), and optionally in total.
//!
//! A total cap alone lets one client take every slot with connections that never send
//! anything; a per-client cap leaves the rest to everyone else. The map holds only clients
//! with a slot held, so its size is bounded by the total (or by whatever the caller bounds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::client_key;

/// At most `per_client` slots held at once by one client, and at most `total` in all.
#[derive(Debug)]
pub struct ClientSlots {
    per_client: u32,
    total: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    per_client: HashMap<IpAddr, u32>,
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    slots: Arc<ClientSlots>,
    /// `None` for a slot exempt from the per-client cap.
    key: Option<IpAddr>,
}

impl ClientSlots {
    /// Slots for up to `per_client` at once per client (0 is taken as 1), with no total cap.
    pub fn new(per_client: u32) -> Arc<Self> {
        Self::with_total(per_client, usize::MAX)
    }

    /// The same, and at most `total` slots held in all.
    pub fn with_total(per_client: u32, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_client: per_client.max(1),
            total,
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // A panic while holding the lock leaves only counts behind, still meaningful.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `ip`, or `None` when its client holds its maximum already or every slot is
    /// taken.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut held = self.held();
        if held.total >= self.total {
            return None;
        }
        let n = held.per_client.entry(key).or_insert(0);
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        held.total += 1;
        Some(ClientSlot {
            slots: self.clone(),
            key: Some(key),
        })
    }

    /// A slot that counts only toward the total: for a peer that carries many clients (a
    /// reverse proxy), or `None` when every slot is taken.
    pub fn try_acquire_exempt(self: &Arc<Self>) -> Option<ClientSlot> {
        let mut held = self.held();
        if held.total >= self.total {
            return None;
        }
        held.total += 1;
        Some(ClientSlot {
            slots: self.clone(),
            key: None,
        })
    }

    /// Slots `ip`'s client holds now.
    pub fn held_by(&self, ip: IpAddr) -> u32 {
        self.held()
            .per_client
            .get(&client_key(ip))
            .copied()
            .unwrap_or(0)
    }

    /// Slots held in all.
    pub fn held_in_all(&self) -> usize {
        self.held().total
    }

    /// Clients holding at least one slot (exempt slots not counted).
    pub fn clients(&self) -> usize {
        self.held().per_client.len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        held.total = held.total.saturating_sub(1);
        if let Some(key) = self.key {
            if let Some(n) = held.per_client.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.per_client.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_is_capped_and_others_still_get_slots() {
        let slots = ClientSlots::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.try_acquire(a).unwrap();
        let _second = slots.try_acquire(a).unwrap();
        assert!(slots.try_acquire(a).is_none());
        let _other = slots.try_acquire(b).unwrap();
        drop(first);
        assert_eq!(slots.held_by(a), 1);
        assert!(slots.try_acquire(a).is_some());
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_released_clients_leave_the_map() {
        let slots = ClientSlots::new(1);
        let x: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let held = slots.try_acquire(x).unwrap();
        assert!(slots.try_acquire(y).is_none(), "same /64");
        assert!(slots
            .try_acquire("2001:db8:1:3::5".parse().unwrap())
            .is_some());
        drop(held);
        assert_eq!(slots.clients(), 0);
    }

    #[test]
    fn the_total_caps_everyone_and_exempt_slots_count_toward_it_only() {
        let slots = ClientSlots::with_total(1, 3);
        let proxy = [slots.try_acquire_exempt(), slots.try_acquire_exempt()];
        assert!(proxy.iter().all(Option::is_some));
        let a = slots.try_acquire("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(slots.held_in_all(), 3);
        assert!(slots.try_acquire("192.0.2.2".parse().unwrap()).is_none());
        assert!(slots.try_acquire_exempt().is_none());
        drop(a);
        let b = slots.try_acquire("192.0.2.2".parse().unwrap());
        assert!(b.is_some());
        drop(proxy);
        assert_eq!((slots.held_in_all(), slots.clients()), (1, 1));
    }
}
