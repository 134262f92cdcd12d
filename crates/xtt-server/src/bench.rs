//! The load generator: N simulated devices (pre-enrolled DAA members) provision concurrently and
//! repeatedly against an XTT server (ours or any other at an address); the report gives
//! handshakes per second, latency percentiles, errors by kind, and renders as text, JSON and an
//! SVG latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use rayon::prelude::*;
use serde::Serialize;
use xtt_ecdaa::{generate_member_key, Issuer, Member, StockedMember};
use xtt_proto::cert::{RememberVerified, RootStore};
use xtt_proto::client::PreparedClientInit;
use xtt_proto::daa::DaaSigner;
use xtt_proto::{ClientId, SuiteSpec};

use crate::client::{ClientError, Provisioner};

mod cpu_time;
mod spread;

pub use cpu_time::{cpu_secs_in_stat, process_cpu_secs};
use spread::Spread;
pub use spread::TargetCount;

/// What to run.
#[derive(Clone)]
pub struct BenchConfig {
    /// The servers (the nodes of one deployment, or just one): device `i` provisions at
    /// `targets[i % targets.len()]`.
    pub targets: Vec<SocketAddr>,
    /// The suite every device offers.
    pub suite: SuiteSpec,
    /// Roots the devices trust.
    pub roots: Arc<dyn RootStore + Send + Sync>,
    /// The simulated devices; all run at once, so this is also the concurrency.
    pub devices: Vec<Arc<Member>>,
    /// Handshakes to run in total (shared among the devices).
    pub handshakes: u64,
    /// Per-message timeout of each device.
    pub timeout: Duration,
    /// Before the timed phase, each device does the part of its handshakes that needs nothing
    /// from the server (DAA signature commitments, X25519 key share, long-term key pair), as a
    /// device can while idle; the handshakes then start from it. The server's work is the same
    /// either way; the load generator's per handshake drops by about half, which matters when
    /// it shares the server's cores. The preparation's CPU time is reported on its own.
    pub prepare: bool,
}

impl std::fmt::Debug for BenchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchConfig")
            .field("targets", &self.targets)
            .field("suite", &self.suite)
            .field("devices", &self.devices.len())
            .field("handshakes", &self.handshakes)
            .field("prepare", &self.prepare)
            .finish_non_exhaustive()
    }
}

/// Progress, reported after each handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchProgress {
    /// Handshakes finished (successful or not).
    pub done: u64,
    /// Of which failed.
    pub failed: u64,
    /// Handshakes planned.
    pub total: u64,
}

/// Latency summary in milliseconds (successful handshakes only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Fastest.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// The servers measured (comma-separated).
    pub target: String,
    /// What each server did (devices are spread round-robin).
    pub per_target: Vec<TargetCount>,
    /// Suite name.
    pub suite: String,
    /// Concurrent devices.
    pub devices: usize,
    /// Successful handshakes.
    pub handshakes_ok: u64,
    /// Failed handshakes.
    pub handshakes_failed: u64,
    /// Wall-clock time of the run (s).
    pub elapsed_secs: f64,
    /// Successful handshakes per second of wall-clock time.
    pub handshakes_per_sec: f64,
    /// Latency of successful handshakes (connect to Identity_ServerFinished), ms.
    pub latency_ms: LatencySummary,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// `/proc/loadavg` at the end of the run (1, 5, 15 min), where available.
    pub load_average: Option<[f64; 3]>,
    /// CPU time (user + system) this process, the load generator, spent in the run, where
    /// /proc shows it (setting the devices up before the run is not counted).
    pub load_generator_cpu_secs: Option<f64>,
    /// Handshakes prepared per device before the run ([`BenchConfig::prepare`]; 0: none). A
    /// device that runs out signs in full.
    pub prepared_per_device: u64,
    /// CPU time (user + system) the preparation took, not counted in
    /// `load_generator_cpu_secs`.
    pub preparation_cpu_secs: Option<f64>,
    /// Every successful latency, µs, sorted (for the histogram; not in the JSON).
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
}

/// A throwaway PKI for load generators and tests: a fresh root (random id) and a server
/// certificate it issued, with both private keys.
#[derive(Debug)]
pub struct ThrowawayPki {
    /// The root's private key.
    pub root_key: xtt_proto::longterm::LongtermKeyPair,
    /// The root certificate the devices trust.
    pub root: xtt_proto::cert::RootCertificate,
    /// The server's long-term key.
    pub server_key: xtt_proto::longterm::LongtermKeyPair,
    /// The server certificate, issued by `root`.
    pub certificate: xtt_proto::cert::ServerCertificate,
}

impl ThrowawayPki {
    /// Generates the keys and issues the certificate.
    pub fn generate() -> Result<Self, xtt_proto::error::CryptoError> {
        use rand_core::RngCore;
        use xtt_proto::cert::{RootCertificate, RootId, ServerCertificate, DEFAULT_RESERVED};
        let root_key = xtt_proto::longterm::LongtermKeyPair::generate(&mut OsRng);
        let mut id = RootId([0; 16]);
        OsRng.fill_bytes(&mut id.0);
        let root = RootCertificate {
            id,
            public_key: *root_key.public_key(),
        };
        let server_key = xtt_proto::longterm::LongtermKeyPair::generate(&mut OsRng);
        let certificate =
            ServerCertificate::issue(&DEFAULT_RESERVED, &id, server_key.public_key(), &root_key)?;
        Ok(Self {
            root_key,
            root,
            server_key,
            certificate,
        })
    }
}

/// Registers `n` devices of `group_id` straight in `registry`, as identity provisioning would
/// leave them (a fresh long-term key each, a random pseudonym, an assigned ClientID), for session
/// benchmarks and tests that need provisioned devices but do not measure provisioning.
pub fn register_session_devices(
    registry: &dyn xtt_registry::Registry,
    group_id: xtt_proto::daa::GroupId,
    roots: Arc<dyn RootStore + Send + Sync>,
    n: usize,
) -> Result<Vec<xtt_proto::session::SessionClientConfig>, xtt_registry::RegistryError> {
    use rand_core::RngCore;
    (0..n)
        .map(|_| {
            let key = xtt_proto::longterm::LongtermKeyPair::generate(&mut OsRng);
            let mut pseudonym = [0u8; xtt_proto::daa::PSEUDONYM_LEN];
            OsRng.fill_bytes(&mut pseudonym);
            let assigned = registry.register(&xtt_registry::Registration {
                group_id,
                pseudonym: xtt_proto::daa::Pseudonym(pseudonym),
                requested_id: ClientId::NULL,
                longterm_key: *key.public_key(),
                now: xtt_proto::UnixTime(1),
            })?;
            Ok(xtt_proto::session::SessionClientConfig {
                roots: roots.clone(),
                client_id: assigned.client_id,
                longterm_key: key,
            })
        })
        .collect()
}

/// Enrolls `n` devices in `issuer`'s group (join protocol in-process), for load generation and
/// tests. Runs on all cores.
pub fn enroll_devices(
    issuer: &Issuer,
    basename: &[u8],
    n: usize,
) -> Result<Vec<Arc<Member>>, xtt_ecdaa::Error> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let nonce = format!("xtt bench device {i}");
            let (sk, request) = generate_member_key(nonce.as_bytes(), &mut OsRng);
            let (credential, _proof) =
                issuer.issue_credential(&request, nonce.as_bytes(), &mut OsRng)?;
            Ok(Arc::new(Member::new(
                sk,
                credential,
                issuer.group_public_key(),
                basename,
            )?))
        })
        .collect()
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// No devices were given.
    #[error("at least one device is needed")]
    NoDevices,
    /// No server address was given.
    #[error("at least one server address is needed")]
    NoTargets,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Protocol(p) => format!("protocol: {p}"),
        other => other.kind().to_string(),
    }
}

/// Runs the load: every device provisions in a loop until `handshakes` have been run.
pub async fn run(
    config: BenchConfig,
    progress: impl Fn(BenchProgress) + Send + Sync + 'static,
) -> Result<BenchReport, BenchError> {
    if config.devices.is_empty() {
        return Err(BenchError::NoDevices);
    }
    if config.targets.is_empty() {
        return Err(BenchError::NoTargets);
    }
    let spread = Arc::new(Spread::new(&config.targets, config.devices.len()));
    let total = config.handshakes;
    let wanted = if config.prepare {
        prepared_per_device(total, config.devices.len())
    } else {
        0
    };
    let cpu_before_preparing = process_cpu_secs(None).ok();
    let (devices, per_device) = prepare_devices(&config.devices, wanted).await;
    let preparation_cpu_secs = cpu_since(cpu_before_preparing);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let progress = Arc::new(progress);
    let started = Instant::now();
    let cpu_at_start = process_cpu_secs(None).ok();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (device, mut prepared)) in devices.into_iter().enumerate() {
        let slot = spread.slot(i);
        let Some(target) = spread.target(slot) else {
            return Err(BenchError::NoTargets);
        };
        let spread = spread.clone();
        // Each device remembers the server certificate it verified, as a device that stays in
        // the field would: the root's signature is checked at its first handshake.
        let provisioner = Provisioner {
            roots: Arc::new(RememberVerified::new(config.roots.clone())),
            daa: device,
            suite: config.suite,
            requested_id: ClientId::NULL,
            longterm_key: None,
            timeout: config.timeout,
        };
        let (next, done, failed, tally, progress) = (
            next.clone(),
            done.clone(),
            failed.clone(),
            tally.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t0 = Instant::now();
                let r = provisioner.provision_prepared(target, prepared.pop()).await;
                spread.count(slot, r.is_ok());
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                {
                    let mut t = match tally.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    match &r {
                        Ok(_) => t.latencies_us.push(us),
                        Err(e) => *t.errors.entry(error_kind(e)).or_default() += 1,
                    }
                }
                if r.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(BenchProgress {
                    done: d,
                    failed: failed.load(Ordering::Relaxed),
                    total,
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let tally = match Arc::try_unwrap(tally) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(shared) => {
            let g = match shared.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            Tally {
                latencies_us: g.latencies_us.clone(),
                errors: g.errors.clone(),
            }
        }
    };
    let mut report = BenchReport::new(&config, elapsed, tally);
    report.target = spread.joined();
    report.per_target = spread.counts();
    report.load_generator_cpu_secs = cpu_since(cpu_at_start);
    report.prepared_per_device = per_device as u64;
    report.preparation_cpu_secs = preparation_cpu_secs.filter(|_| per_device > 0);
    Ok(report)
}

/// At most this many handshakes are prepared in all (about 1 KB each); beyond it, devices sign
/// in full once their stock is used up.
const MAX_PREPARED: u64 = 200_000;

/// A device's share of the run plus a quarter and two: devices take handshakes from one
/// counter, so a fast one does more than its share.
fn prepared_per_device(handshakes: u64, devices: usize) -> usize {
    let devices = (devices as u64).max(1);
    let share = handshakes.div_ceil(devices);
    let wanted = share + share / 4 + 2;
    usize::try_from(wanted.min(MAX_PREPARED / devices)).unwrap_or(usize::MAX)
}

/// A simulated device: the signer it provisions with and the ClientInits it prepared.
type Device = (Arc<dyn DaaSigner + Send + Sync>, Vec<PreparedClientInit>);

/// Each device as it will run, and how many handshakes each has prepared: unless `per_device`
/// is 0, a [`StockedMember`] holding that many prepared DAA signatures and as many prepared
/// ClientInits (made on all cores, off the async runtime).
async fn prepare_devices(devices: &[Arc<Member>], per_device: usize) -> (Vec<Device>, usize) {
    let plain = || {
        let devices = devices
            .iter()
            .map(|m| (m.clone() as Arc<dyn DaaSigner + Send + Sync>, Vec::new()))
            .collect();
        (devices, 0)
    };
    if per_device == 0 {
        return plain();
    }
    let members: Vec<Member> = devices.iter().map(|m| Member::clone(m)).collect();
    let prepared = tokio::task::spawn_blocking(move || {
        let prepare = || -> Vec<Device> {
            members
                .into_par_iter()
                .map(|member| {
                    let stocked = StockedMember::new(member);
                    stocked.restock(per_device, &mut OsRng);
                    let inits = (0..per_device)
                        .map(|_| PreparedClientInit::generate(&mut OsRng))
                        .collect();
                    (Arc::new(stocked) as Arc<dyn DaaSigner + Send + Sync>, inits)
                })
                .collect()
        };
        // Threads of their own, named so that a process measuring its threads' CPU time (the
        // in-process load generator example) can tell the preparation from the server.
        match rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("bench-prepare-{i}"))
            .build()
        {
            Ok(pool) => pool.install(prepare),
            Err(_) => prepare(),
        }
    })
    .await;
    // The blocking task only fails by panicking; the devices then run unprepared, and the
    // report says so.
    match prepared {
        Ok(devices) => (devices, per_device),
        Err(_) => plain(),
    }
}

/// CPU seconds this process used since `start` (both from [`process_cpu_secs`]).
fn cpu_since(start: Option<f64>) -> Option<f64> {
    Some(process_cpu_secs(None).ok()? - start?)
}

/// The report line for the load generator's CPU: in all, per operation (`op`), and as cores
/// kept busy over the run's `elapsed` seconds (near the machine's core count, the generator
/// itself may have been the limit).
fn load_generator_line(s: &mut String, cpu_secs: Option<f64>, elapsed: f64, ops: u64, op: &str) {
    if let Some(cpu) = cpu_secs.filter(|_| ops > 0 && elapsed > 0.0) {
        let _ = writeln!(
            s,
            "load generator  {cpu:.2} s CPU = {:.1} µs per {op}, {:.2} cores busy",
            cpu * 1e6 / ops as f64,
            cpu / elapsed
        );
    }
}

/// Nearest-rank percentile in ms; `per_mille` is the rank in thousandths (500 = median).
fn percentile(sorted: &[u64], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (per_mille * sorted.len()).div_ceil(1000);
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1e3
}

impl LatencySummary {
    /// The summary of latencies in µs, sorted ascending.
    pub fn of_sorted(l: &[u64]) -> Self {
        if l.is_empty() {
            return Self::default();
        }
        Self {
            min: percentile(l, 0),
            mean: l.iter().sum::<u64>() as f64 / l.len() as f64 / 1e3,
            p50: percentile(l, 500),
            p90: percentile(l, 900),
            p99: percentile(l, 990),
            max: percentile(l, 1000),
        }
    }
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

impl BenchReport {
    fn new(config: &BenchConfig, elapsed: f64, mut tally: Tally) -> Self {
        tally.latencies_us.sort_unstable();
        let l = &tally.latencies_us;
        let ok = l.len() as u64;
        let failed: u64 = tally.errors.values().sum();
        let latency_ms = LatencySummary::of_sorted(l);
        Self {
            target: Spread::new(&config.targets, config.devices.len()).joined(),
            per_target: Vec::new(),
            suite: config.suite.name().to_string(),
            devices: config.devices.len(),
            handshakes_ok: ok,
            handshakes_failed: failed,
            elapsed_secs: elapsed,
            handshakes_per_sec: if elapsed > 0.0 {
                ok as f64 / elapsed
            } else {
                0.0
            },
            latency_ms,
            errors: tally.errors,
            load_average: load_average(),
            load_generator_cpu_secs: None,
            prepared_per_device: 0,
            preparation_cpu_secs: None,
            latencies_us: tally.latencies_us,
        }
    }

    /// Pretty JSON (without the raw latencies).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let l = &self.latency_ms;
        let mut s = String::new();
        let _ = writeln!(s, "target          {}", self.target);
        let _ = writeln!(s, "suite           {}", self.suite);
        let _ = writeln!(s, "devices         {} concurrent", self.devices);
        let _ = writeln!(
            s,
            "handshakes      {} ok, {} failed in {:.2} s",
            self.handshakes_ok, self.handshakes_failed, self.elapsed_secs
        );
        let _ = writeln!(
            s,
            "throughput      {:.1} handshakes/s",
            self.handshakes_per_sec
        );
        let _ = writeln!(
            s,
            "latency (ms)    p50 {:.2}  p90 {:.2}  p99 {:.2}  (min {:.2}, mean {:.2}, max {:.2})",
            l.p50, l.p90, l.p99, l.min, l.mean, l.max
        );
        spread::text_lines(&mut s, &self.per_target);
        load_generator_line(
            &mut s,
            self.load_generator_cpu_secs,
            self.elapsed_secs,
            self.handshakes_ok,
            "handshake",
        );
        if self.prepared_per_device > 0 {
            let cpu = self
                .preparation_cpu_secs
                .map(|c| format!(", {c:.2} s CPU before the run, not counted above"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "prepared        {} handshakes per device (DAA commitments, key shares, \
                 long-term keys{cpu})",
                self.prepared_per_device
            );
        }
        if let Some([a, b, c]) = self.load_average {
            let _ = writeln!(s, "load average    {a:.2} {b:.2} {c:.2}");
        }
        for (kind, n) in &self.errors {
            let _ = writeln!(s, "error           {n} × {kind}");
        }
        s
    }

    /// An SVG histogram of the successful latencies (40 bins up to the 99.9th percentile; slower
    /// ones land in the last bin), with p50/p90/p99 marked.
    pub fn to_svg_histogram(&self) -> String {
        let title = format!(
            "XTT handshake latency: {} ok, {:.1}/s, {} devices",
            self.handshakes_ok, self.handshakes_per_sec, self.devices
        );
        svg_histogram(&title, &self.latencies_us, &self.latency_ms)
    }
}

/// An SVG latency histogram of `sorted_us` (40 bins up to the 99.9th percentile, slower ones in
/// the last bin) titled `title`, with `summary`'s p50/p90/p99 marked.
fn svg_histogram(title: &str, sorted_us: &[u64], summary: &LatencySummary) -> String {
    const W: f64 = 720.0;
    const H: f64 = 400.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    const BINS: usize = 40;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let l = sorted_us;
    // The axis ends just above the 99.9th percentile; slower handshakes go in the last bin.
    let p999_us = l
        .get((999 * l.len()).div_ceil(1000).saturating_sub(1))
        .copied()
        .unwrap_or(1);
    let hi_us = (p999_us + p999_us / 20).max(1);
    let hi_ms = hi_us as f64 / 1e3;
    let mut counts = [0u64; BINS];
    for &us in l {
        let bin = usize::try_from(u128::from(us) * BINS as u128 / u128::from(hi_us))
            .unwrap_or(BINS)
            .min(BINS - 1);
        if let Some(c) = counts.get_mut(bin) {
            *c += 1;
        }
    }
    let max_count = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{title}</text>"#,
        W / 2.0,
    );
    let bar_w = plot_w / BINS as f64;
    for (i, &c) in counts.iter().enumerate() {
        let h = c as f64 / max_count as f64 * plot_h;
        let x = LEFT + i as f64 * bar_w;
        let y = TOP + plot_h - h;
        let _ = writeln!(
            s,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="#4a7ab7"><title>{c}</title></rect>"##,
            (bar_w - 1.0).max(0.5)
        );
    }
    // Axes and ticks.
    let base = TOP + plot_h;
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#,
        LEFT + plot_w
    );
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="black"/>"#
    );
    for t in 0..=5 {
        let v = hi_ms * t as f64 / 5.0;
        let x = LEFT + plot_w * t as f64 / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{v:.1}</text>"#,
            base + 16.0
        );
        let n = max_count as f64 * t as f64 / 5.0;
        let y = base - plot_h * t as f64 / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{n:.0}</text>"#,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">latency (ms)</text>"#,
        LEFT + plot_w / 2.0,
        H - 12.0
    );
    let marks = [
        ("p50", summary.p50, "#2a9d3a"),
        ("p90", summary.p90, "#e09b1a"),
        ("p99", summary.p99, "#c0392b"),
    ];
    for (name, v, color) in marks {
        let x = LEFT + (v / hi_ms).min(1.0) * plot_w;
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{base}" stroke="{color}" stroke-dasharray="4 3"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{name} {v:.2} ms</text>"#,
            x + 3.0,
            TOP + 12.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latencies_ms: &[u64]) -> BenchReport {
        let config = BenchConfig {
            targets: vec!["127.0.0.1:1".parse().unwrap()],
            suite: SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
            roots: Arc::new(Vec::<xtt_proto::cert::RootCertificate>::new()),
            devices: Vec::new(),
            handshakes: 0,
            timeout: Duration::from_secs(1),
            prepare: false,
        };
        let mut tally = Tally {
            latencies_us: latencies_ms.iter().map(|ms| ms * 1000).collect(),
            ..Tally::default()
        };
        tally.errors.insert("timeout".into(), 2);
        BenchReport::new(&config, 2.0, tally)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let r = report(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(r.handshakes_ok, 100);
        assert_eq!(r.handshakes_failed, 2);
        assert_eq!(r.handshakes_per_sec, 50.0);
        assert_eq!(r.latency_ms.p50, 50.0);
        assert_eq!(r.latency_ms.p90, 90.0);
        assert_eq!(r.latency_ms.p99, 99.0);
        assert_eq!((r.latency_ms.min, r.latency_ms.max), (1.0, 100.0));
        assert_eq!(r.latency_ms.mean, 50.5);
    }

    #[test]
    fn renders_text_json_and_svg() {
        let r = report(&[5, 5, 6, 7, 30]);
        assert!(r.to_text().contains("p50 6.00"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["handshakes_ok"], 5);
        assert_eq!(json["errors"]["timeout"], 2);
        assert!(json.get("latencies_us").is_none());
        let svg = r.to_svg_histogram();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Five handshakes in the bars' tooltips, p50 marked.
        let total: u64 = svg
            .split("<title>")
            .skip(1)
            .map(|t| t.split('<').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 5);
        assert!(svg.contains("p50 6.00 ms"));
    }

    #[test]
    fn each_device_prepares_its_share_and_some_spare_within_a_total_cap() {
        assert_eq!(prepared_per_device(9, 3), 3 + 2);
        assert_eq!(prepared_per_device(3000, 64), 47 + 11 + 2);
        assert_eq!(prepared_per_device(1, 0), 1 + 2);
        assert_eq!(
            prepared_per_device(10_000_000, 10),
            usize::try_from(MAX_PREPARED / 10).unwrap()
        );
    }

    #[test]
    fn reports_the_load_generators_cpu_when_known() {
        let mut r = report(&[5, 5, 6, 7, 30]);
        assert!(!r.to_text().contains("load generator"));
        r.load_generator_cpu_secs = Some(0.5);
        // 0.5 s over 5 handshakes in a 2 s run.
        assert!(r
            .to_text()
            .contains("load generator  0.50 s CPU = 100000.0 µs per handshake, 0.25 cores busy"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["load_generator_cpu_secs"], 0.5);
    }
}

/// What a session load run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SessionMode {
    /// Session handshakes per second (each client handshakes in a loop, no records).
    Handshakes,
    /// Records per second and MB/s: each client holds one session and sends records to an
    /// echo server, `window` in flight, counting the echoes.
    Records,
}

/// A session load run against a server with the [`crate::Echo`] application.
#[derive(Clone, Debug)]
pub struct SessionBenchConfig {
    /// The servers (TCP and UDP share each address): client `i` uses
    /// `targets[i % targets.len()]`.
    pub targets: Vec<SocketAddr>,
    /// Which measurement.
    pub mode: SessionMode,
    /// The transport and client timeouts.
    pub options: crate::SessionClientOptions,
    /// Provisioned identities; one concurrent client each.
    pub identities: Vec<xtt_proto::session::SessionClientConfig>,
    /// Handshakes in total ([`SessionMode::Handshakes`]) or records per client
    /// ([`SessionMode::Records`]).
    pub count: u64,
    /// Payload bytes per record.
    pub payload_len: usize,
    /// Records a client sends before reading their echoes.
    pub window: usize,
}

/// The outcome of a session load run.
#[derive(Clone, Debug, Serialize)]
pub struct SessionBenchReport {
    /// What was measured.
    pub mode: SessionMode,
    /// "tcp" or "udp".
    pub transport: &'static str,
    /// Concurrent clients.
    pub clients: usize,
    /// Completed handshakes (handshake mode; clients' setup handshakes otherwise).
    pub handshakes_ok: u64,
    /// Failed handshakes.
    pub handshakes_failed: u64,
    /// Records sent and echoes received (records mode).
    pub records_sent: u64,
    /// Echoes received.
    pub records_echoed: u64,
    /// Payload bytes per record.
    pub payload_len: usize,
    /// Wall time of the measured phase.
    pub elapsed_secs: f64,
    /// Handshakes per second.
    pub handshakes_per_sec: f64,
    /// Echoed records per second (each is one record each way).
    pub records_per_sec: f64,
    /// Echoed payload MB/s (10^6 bytes, one direction).
    pub mb_per_sec: f64,
    /// /proc/loadavg at the end.
    pub load_average: Option<[f64; 3]>,
    /// The servers measured (comma-separated).
    pub target: String,
    /// What each server did (clients are spread round-robin; in records mode the handshakes
    /// are the clients' setup handshakes).
    pub per_target: Vec<TargetCount>,
    /// Suite name.
    pub suite: String,
    /// Handshake latency (handshake mode) or record round trip, send to echo (records mode).
    pub latency_ms: LatencySummary,
    /// Every latency, µs, sorted (for the histogram; not in the JSON).
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
    /// CPU time (user + system) the server process spent during the measured phase, when the
    /// caller could read it (same machine); `run_sessions` leaves it `None`.
    pub server_cpu_secs: Option<f64>,
    /// CPU time this process, the load generator, spent in the measured phase, where /proc
    /// shows it.
    pub load_generator_cpu_secs: Option<f64>,
}

impl SessionBenchReport {
    /// What the mode counts (completed handshakes or echoed records), and its name.
    fn ops(&self) -> (u64, &'static str) {
        match self.mode {
            SessionMode::Handshakes => (self.handshakes_ok, "handshake"),
            SessionMode::Records => (self.records_echoed, "echoed record"),
        }
    }

    /// Server CPU µs per completed handshake (handshake mode) or per echoed record.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let (ops, _) = self.ops();
        self.server_cpu_secs
            .filter(|_| ops > 0)
            .map(|c| c * 1e6 / ops as f64)
    }

    /// An SVG histogram of the handshake latencies or record round trips.
    pub fn to_svg_histogram(&self) -> String {
        let title = match self.mode {
            SessionMode::Handshakes => format!(
                "XTT session handshake latency over {}: {:.0}/s, {} clients",
                self.transport, self.handshakes_per_sec, self.clients
            ),
            SessionMode::Records => format!(
                "XTT record round trip over {}: {} B, {:.0} records/s, {:.1} MB/s",
                self.transport, self.payload_len, self.records_per_sec, self.mb_per_sec
            ),
        };
        svg_histogram(&title, &self.latencies_us, &self.latency_ms)
    }

    /// A human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "target          {}", self.target);
        let _ = writeln!(s, "suite           {}", self.suite);
        let _ = writeln!(s, "mode            {:?} over {}", self.mode, self.transport);
        let _ = writeln!(s, "clients         {}", self.clients);
        match self.mode {
            SessionMode::Handshakes => {
                let _ = writeln!(
                    s,
                    "handshakes      {} ok, {} failed in {:.2} s = {:.0}/s",
                    self.handshakes_ok,
                    self.handshakes_failed,
                    self.elapsed_secs,
                    self.handshakes_per_sec
                );
            }
            SessionMode::Records => {
                let _ = writeln!(
                    s,
                    "records         {} sent, {} echoed, {} B payload, {:.2} s",
                    self.records_sent, self.records_echoed, self.payload_len, self.elapsed_secs
                );
                let _ = writeln!(
                    s,
                    "throughput      {:.0} records/s, {:.1} MB/s payload (each way)",
                    self.records_per_sec, self.mb_per_sec
                );
            }
        }
        let l = &self.latency_ms;
        let what = match self.mode {
            SessionMode::Handshakes => "latency (ms)",
            SessionMode::Records => "round trip (ms)",
        };
        let _ = writeln!(
            s,
            "{what:<16}p50 {:.2}  p90 {:.2}  p99 {:.2}  (min {:.2}, mean {:.2}, max {:.2})",
            l.p50, l.p90, l.p99, l.min, l.mean, l.max
        );
        spread::text_lines(&mut s, &self.per_target);
        let (ops, op) = self.ops();
        if let (Some(cpu), Some(per)) = (self.server_cpu_secs, self.server_cpu_us_per_op()) {
            let _ = writeln!(s, "server CPU      {cpu:.2} s = {per:.1} µs per {op}");
        }
        load_generator_line(
            &mut s,
            self.load_generator_cpu_secs,
            self.elapsed_secs,
            ops,
            op,
        );
        if let Some([a, b, c]) = self.load_average {
            let _ = writeln!(s, "load average    {a:.2} {b:.2} {c:.2}");
        }
        s
    }

    /// Pretty JSON (with `server_cpu_us_per_op` when the server's CPU time is known).
    pub fn to_json(&self) -> String {
        let mut v = match serde_json::to_value(self) {
            Ok(v) => v,
            Err(e) => return format!("{{\"error\":\"{e}\"}}"),
        };
        if let (Some(per), Some(map)) = (self.server_cpu_us_per_op(), v.as_object_mut()) {
            map.insert("server_cpu_us_per_op".into(), per.into());
        }
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Runs a session load (see [`SessionMode`]).
pub async fn run_sessions(config: SessionBenchConfig) -> Result<SessionBenchReport, BenchError> {
    use crate::{SessionClient, Transport};
    use xtt_proto::record::PayloadType;
    if config.identities.is_empty() {
        return Err(BenchError::NoDevices);
    }
    if config.targets.is_empty() {
        return Err(BenchError::NoTargets);
    }
    let spread = Arc::new(Spread::new(&config.targets, config.identities.len()));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let echoed = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    // Records mode: every client first establishes its session, then all start together.
    let mut clients = Vec::new();
    if config.mode == SessionMode::Records {
        for (i, identity) in config.identities.iter().enumerate() {
            let slot = spread.slot(i);
            let Some(target) = spread.target(slot) else {
                return Err(BenchError::NoTargets);
            };
            let connected =
                SessionClient::connect(target, identity.clone(), config.options.clone(), None)
                    .await;
            spread.count(slot, connected.is_ok());
            match connected {
                Ok(c) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                    clients.push(c);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "session setup failed");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let started = Instant::now();
    let cpu_at_start = process_cpu_secs(None).ok();
    let mut tasks = tokio::task::JoinSet::new();
    match config.mode {
        SessionMode::Handshakes => {
            for (i, identity) in config.identities.iter().enumerate() {
                let (identity, options) = (identity.clone(), config.options.clone());
                let (ok, failed, next) = (ok.clone(), failed.clone(), next.clone());
                let slot = spread.slot(i);
                let Some(target) = spread.target(slot) else {
                    return Err(BenchError::NoTargets);
                };
                let (spread, total) = (spread.clone(), config.count);
                tasks.spawn(async move {
                    let mut latencies = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let t0 = Instant::now();
                        match SessionClient::connect(
                            target,
                            identity.clone(),
                            options.clone(),
                            None,
                        )
                        .await
                        {
                            Ok(_) => {
                                latencies.push(micros(t0.elapsed()));
                                ok.fetch_add(1, Ordering::Relaxed);
                                spread.count(slot, true);
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "session handshake failed");
                                failed.fetch_add(1, Ordering::Relaxed);
                                spread.count(slot, false);
                            }
                        };
                    }
                    latencies
                });
            }
        }
        SessionMode::Records => {
            let payload = vec![0x5au8; config.payload_len];
            for mut c in clients {
                let (sent, echoed, payload) = (sent.clone(), echoed.clone(), payload.clone());
                let (count, window) = (config.count, config.window.max(1) as u64);
                tasks.spawn(async move {
                    let mut latencies = Vec::new();
                    let mut sent_at = Vec::new();
                    let mut done = 0u64;
                    while done < count {
                        let burst = window.min(count - done);
                        sent_at.clear();
                        for _ in 0..burst {
                            if c.send(PayloadType::QueueProtocol, &payload).await.is_err() {
                                return latencies;
                            }
                            sent_at.push(Instant::now());
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // Echoes come back in order (a lost UDP one shifts the pairing by one:
                        // the round trips are then slight overestimates).
                        for t0 in &sent_at {
                            // Counted, not kept: opened in the client's buffer, no copy.
                            match c.recv_with(|_| ()).await {
                                Ok(_) => {
                                    latencies.push(micros(t0.elapsed()));
                                    echoed.fetch_add(1, Ordering::Relaxed);
                                }
                                // UDP: lost datagram (timeout); TCP: the stream is unusable.
                                Err(_) => break,
                            }
                        }
                        done += burst;
                    }
                    latencies
                });
            }
        }
    }
    let mut latencies_us = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies_us.extend(done.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    let per_sec = |n: u64| {
        if elapsed > 0.0 {
            n as f64 / elapsed
        } else {
            0.0
        }
    };
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let (sent, echoed) = (sent.load(Ordering::Relaxed), echoed.load(Ordering::Relaxed));
    Ok(SessionBenchReport {
        mode: config.mode,
        transport: match config.options.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        },
        clients: config.identities.len(),
        handshakes_ok: ok,
        handshakes_failed: failed,
        records_sent: sent,
        records_echoed: echoed,
        payload_len: config.payload_len,
        elapsed_secs: elapsed,
        handshakes_per_sec: if config.mode == SessionMode::Handshakes {
            per_sec(ok)
        } else {
            0.0
        },
        records_per_sec: per_sec(echoed),
        mb_per_sec: per_sec(echoed) * config.payload_len as f64 / 1e6,
        load_average: load_average(),
        target: spread.joined(),
        per_target: spread.counts(),
        suite: config.options.suite.name().to_string(),
        latency_ms: LatencySummary::of_sorted(&latencies_us),
        latencies_us,
        server_cpu_secs: None,
        load_generator_cpu_secs: cpu_since(cpu_at_start),
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
