//! Per-client caps on things held at once (connections, handshakes in progress), keyed like the
//! token buckets (IPv4 address, IPv6 /64).
//!
//! A global cap alone lets one client take every slot with connections that never send
//! anything; a per-client cap leaves the rest to everyone else. The map holds only clients
//! with a slot held, so its size is bounded by whatever global cap the caller also applies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::client_key;

/// At most `per_client` slots held at once by one client.
#[derive(Debug)]
pub struct ClientSlots {
    per_client: u32,
    held: Mutex<HashMap<IpAddr, u32>>,
}

/// One slot of one client, given back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    slots: Arc<ClientSlots>,
    key: IpAddr,
}

impl ClientSlots {
    /// Slots for up to `per_client` at once per client (0 is taken as 1).
    pub fn new(per_client: u32) -> Arc<Self> {
        Arc::new(Self {
            per_client: per_client.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    fn held(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // A panic while holding the lock leaves only counts behind, still meaningful.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `ip`, or `None` when its client holds its maximum already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut held = self.held();
        let n = held.entry(key).or_insert(0);
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            slots: self.clone(),
            key,
        })
    }

    /// Slots `ip`'s client holds now.
    pub fn held_by(&self, ip: IpAddr) -> u32 {
        self.held().get(&client_key(ip)).copied().unwrap_or(0)
    }

    /// Clients holding at least one slot.
    pub fn clients(&self) -> usize {
        self.held().len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
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
}
