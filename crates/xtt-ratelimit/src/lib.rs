//! Per-client and global token buckets, keyed by IP address; and per-client caps on slots held
//! at once ([`ClientSlots`]).
//!
//! Hand-written rather than a crate (governor) on purpose: it is a few dozen lines, needs no
//! extra dependency tree, and keys IPv6 clients by their /64 (one host usually owns a whole
//! /64, so per-address buckets would be trivial to evade). Buckets live in memory only, and
//! their number is bounded: when the map is full, buckets that have refilled are forgotten
//! (forgetting them changes nothing), at most once a second; clients that still find no room
//! share one overflow bucket. So a flood from more (spoofed) sources than the map holds costs
//! neither memory nor a scan of the map per request: it only drains the overflow bucket.
//!
//! Used by the relay's HTTP API (requests per client) and by the XTT server for UDP
//! ClientInit answers (so a spoofed source cannot make the server send more than a trickle of
//! handshake replies to one victim).

mod proxies;
mod slots;

pub use proxies::forwarded_client;
pub use slots::{ClientSlot, ClientSlots};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rates in requests per second and bursts in requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Per client (IPv4 address or IPv6 /64), per second.
    pub per_client_rate: f64,
    /// Per client, at once.
    pub per_client_burst: f64,
    /// For everyone together, per second.
    pub global_rate: f64,
    /// For everyone together, at once.
    pub global_burst: f64,
}

impl RateLimits {
    /// Only per-client limits: no global bucket (an infinite global rate means none).
    pub fn per_client(rate: f64, burst: f64) -> Self {
        RateLimits {
            per_client_rate: rate,
            per_client_burst: burst,
            global_rate: f64::INFINITY,
            global_burst: f64::INFINITY,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_client_rate: 20.0,
            per_client_burst: 40.0,
            global_rate: 2000.0,
            global_burst: 4000.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = if rate > 0.0 {
                (1.0 - self.tokens) / rate
            } else {
                3600.0
            };
            Err(Duration::from_secs_f64(wait.clamp(0.0, 3600.0)))
        }
    }
}

/// Largest number of client buckets kept.
const MAX_CLIENTS: usize = 100_000;

/// How often a full map may be scanned for buckets that have refilled.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// The limiter shared by all requests.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    /// `None` when the global rate is infinite.
    global: Option<Mutex<Bucket>>,
    clients: Mutex<Clients>,
}

#[derive(Debug)]
struct Clients {
    buckets: HashMap<IpAddr, Bucket>,
    capacity: usize,
    /// Shared by the clients that found the map full.
    overflow: Bucket,
    last_purge: Option<Instant>,
}

impl Clients {
    /// The bucket `key` is charged to: its own, a new one if there is room (after at most one
    /// purge per [`PURGE_INTERVAL`]), else the shared overflow bucket.
    fn bucket(&mut self, key: IpAddr, now: Instant, l: &RateLimits) -> &mut Bucket {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            let due = self
                .last_purge
                .is_none_or(|t| now.saturating_duration_since(t) >= PURGE_INTERVAL);
            if due {
                self.last_purge = Some(now);
                // Forgetting a bucket that has refilled changes nothing.
                self.buckets.retain(|_, b| {
                    b.refill(now, l.per_client_rate, l.per_client_burst);
                    b.tokens < l.per_client_burst
                });
            }
            if self.buckets.len() >= self.capacity {
                return &mut self.overflow;
            }
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(l.per_client_burst, now))
    }
}

/// The client `ip` is counted as: an IPv4 address (also when written IPv4-mapped in IPv6), or
/// the /64 of an IPv6 address (low 64 bits zero), since one host usually holds a whole /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl RateLimiter {
    /// A limiter with full buckets.
    pub fn new(limits: RateLimits) -> Self {
        Self::with_capacity(limits, MAX_CLIENTS)
    }

    /// The same, keeping at most `capacity` client buckets (tests use a small one).
    pub fn with_capacity(limits: RateLimits, capacity: usize) -> Self {
        let now = Instant::now();
        RateLimiter {
            limits,
            global: limits
                .global_rate
                .is_finite()
                .then(|| Mutex::new(Bucket::full(limits.global_burst, now))),
            clients: Mutex::new(Clients {
                buckets: HashMap::new(),
                capacity: capacity.max(1),
                overflow: Bucket::full(limits.per_client_burst, now),
                last_purge: None,
            }),
        }
    }

    /// Admits one request from `ip`, or returns the time to wait (HTTP 429 Retry-After).
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let l = self.limits;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bucket(client_key(ip), now, &l)
            .take(now, l.per_client_rate, l.per_client_burst)?;
        match &self.global {
            None => Ok(()),
            Some(global) => global.lock().unwrap_or_else(|p| p.into_inner()).take(
                now,
                l.global_rate,
                l.global_burst,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_client_and_v6_prefix() {
        let limiter = RateLimiter::new(RateLimits {
            per_client_rate: 0.001,
            per_client_burst: 3.0,
            global_rate: 0.001,
            global_burst: 100.0,
        });
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let a2: IpAddr = "2001:db8::2".parse().unwrap();
        let b: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..3 {
            limiter.check(a).unwrap();
        }
        assert!(limiter.check(a2).is_err(), "same /64 shares the bucket");
        limiter.check(b).unwrap();
    }

    #[test]
    fn global_bucket_caps_everyone() {
        let limiter = RateLimiter::new(RateLimits {
            per_client_rate: 1000.0,
            per_client_burst: 1000.0,
            global_rate: 0.001,
            global_burst: 2.0,
        });
        limiter.check("192.0.2.1".parse().unwrap()).unwrap();
        limiter.check("192.0.2.2".parse().unwrap()).unwrap();
        let wait = limiter.check("192.0.2.3".parse().unwrap()).unwrap_err();
        assert!(wait > Duration::from_secs(60));
    }

    #[test]
    fn without_a_global_bucket_only_clients_are_limited() {
        let limiter = RateLimiter::new(RateLimits::per_client(0.001, 2.0));
        assert!(limiter.global.is_none());
        for i in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limiter.check(ip).unwrap();
        }
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        limiter.check(one).unwrap();
        limiter.check(one).unwrap();
        assert!(limiter.check(one).is_err());
    }

    #[test]
    fn sources_beyond_the_map_share_one_bucket_and_the_map_stays_bounded() {
        let limiter = RateLimiter::with_capacity(RateLimits::per_client(0.001, 3.0), 4);
        // Four clients take a token each: their buckets are not full, so none can be forgotten.
        for i in 1..=4u8 {
            limiter.check(IpAddr::from([192, 0, 2, i])).unwrap();
        }
        // A flood from many more sources: three get through the shared bucket, then none.
        let admitted = (0..10_000u32)
            .filter(|i| {
                let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                limiter.check(ip).is_ok()
            })
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(limiter.clients.lock().unwrap().buckets.len(), 4);
        // The clients that have a bucket keep their own allowance.
        for i in 1..=4u8 {
            limiter.check(IpAddr::from([192, 0, 2, i])).unwrap();
        }
    }
}
