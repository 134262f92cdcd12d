//! Load spread over several servers (the nodes of one deployment): device `i` always talks to
//! `targets[i % targets.len()]`, and the report says how much each address served, so a run
//! over three nodes shows it really reached all three.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// What one address served in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetCount {
    /// The server.
    pub address: String,
    /// Devices (clients) assigned to it.
    pub devices: usize,
    /// Successful handshakes it completed.
    pub handshakes_ok: u64,
    /// Failed handshakes against it.
    pub handshakes_failed: u64,
}

/// Live per-address counters of a run.
#[derive(Debug)]
pub(crate) struct Spread {
    targets: Vec<SocketAddr>,
    devices: Vec<usize>,
    ok: Vec<AtomicU64>,
    failed: Vec<AtomicU64>,
}

impl Spread {
    /// `devices` devices over `targets` (not empty), round-robin.
    pub(crate) fn new(targets: &[SocketAddr], devices: usize) -> Self {
        let n = targets.len().max(1);
        Self {
            targets: targets.to_vec(),
            devices: (0..n)
                .map(|t| devices / n + usize::from(t < devices % n))
                .collect(),
            ok: (0..n).map(|_| AtomicU64::new(0)).collect(),
            failed: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Device `i`'s slot: the index of its address.
    pub(crate) fn slot(&self, device: usize) -> usize {
        device % self.targets.len().max(1)
    }

    /// The address of slot `slot`.
    pub(crate) fn target(&self, slot: usize) -> Option<SocketAddr> {
        self.targets.get(slot).copied()
    }

    /// Counts one handshake of slot `slot`.
    pub(crate) fn count(&self, slot: usize, ok: bool) {
        let counters = if ok { &self.ok } else { &self.failed };
        if let Some(c) = counters.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The addresses, comma-separated (the report's `target`).
    pub(crate) fn joined(&self) -> String {
        let v: Vec<String> = self.targets.iter().map(ToString::to_string).collect();
        v.join(", ")
    }

    /// The per-address counts so far.
    pub(crate) fn counts(&self) -> Vec<TargetCount> {
        self.targets
            .iter()
            .enumerate()
            .map(|(i, a)| TargetCount {
                address: a.to_string(),
                devices: self.devices.get(i).copied().unwrap_or(0),
                handshakes_ok: self.ok.get(i).map_or(0, |c| c.load(Ordering::Relaxed)),
                handshakes_failed: self.failed.get(i).map_or(0, |c| c.load(Ordering::Relaxed)),
            })
            .collect()
    }
}

/// The text report's per-address lines (none for a single address).
pub(crate) fn text_lines(out: &mut String, counts: &[TargetCount]) {
    if counts.len() < 2 {
        return;
    }
    for c in counts {
        let _ = writeln!(
            out,
            "server          {}: {} devices, {} ok, {} failed",
            c.address, c.devices, c.handshakes_ok, c.handshakes_failed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_go_round_robin_and_are_counted_per_address() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let s = Spread::new(&[a, b], 5);
        assert_eq!(
            (0..5).map(|i| s.slot(i)).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0]
        );
        assert_eq!(s.target(1), Some(b));
        s.count(0, true);
        s.count(0, true);
        s.count(1, false);
        let c = s.counts();
        assert_eq!(
            (c[0].devices, c[0].handshakes_ok, c[0].handshakes_failed),
            (3, 2, 0)
        );
        assert_eq!(
            (c[1].devices, c[1].handshakes_ok, c[1].handshakes_failed),
            (2, 0, 1)
        );
        assert_eq!(s.joined(), "127.0.0.1:1, 127.0.0.1:2");
        let mut text = String::new();
        text_lines(&mut text, &c);
        assert!(
            text.contains("127.0.0.1:2: 2 devices, 0 ok, 1 failed"),
            "{text}"
        );
    }
}
