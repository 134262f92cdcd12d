//! `xtt bench`: the load generator of crate xtt-server behind a command line: N concurrent
//! simulated devices of a DAA group provision against a server; the report gives handshakes/s
//! and latency percentiles as text and JSON, and an SVG latency histogram. The session modes
//! (`--mode session-handshakes|records`) live in [`crate::bench_sessions`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use xtt_files::certs;
use xtt_files::group::GroupDir;
use xtt_proto::SuiteSpec;
use xtt_server::bench::{self, BenchConfig, BenchReport, SessionBenchReport};

use crate::client::parse_suite;

/// The long help of `xtt bench` (set on its subcommand in `cli.rs`).
pub(crate) const LONG_ABOUT: &str = "\
                  Load-test an XTT server. Enrolls DEVICES simulated devices in a DAA group \
                  (in memory, from the group's issuer key; nothing is written to the group), \
                  then runs them concurrently, each provisioning again and again until \
                  HANDSHAKES handshakes are done. Reports handshakes per second, latency \
                  percentiles (p50, p90, p99), errors by kind and the CPU time the load \
                  generator itself spent (near the machine's core count, it and not the server \
                  may be the limit), as text, and optionally as JSON and as an SVG latency \
                  histogram. The server must know the group and \
                  have a certificate under ROOT.\n\n\
                  --mode session-handshakes: the devices are provisioned once, then run \
                  session handshakes (no DAA; ClientID + long-term key) in a loop: session \
                  handshakes per second and their latency. --mode records: each device holds \
                  one session and sends RECORDS records of --record-size bytes, --window at a \
                  time, to a server whose session application echoes (the default of `xtt \
                  server`): records per second, payload MB/s each way, round-trip latency. \
                  Both over --transport tcp or udp. Over UDP a server answers at most \
                  sessions.udp_client_inits_per_ip ClientInits and \
                  sessions.udp_client_attests_per_ip session flights per second from one \
                  address (50 each by default; spoofed sources must not turn it into an \
                  amplifier or a CPU sink): raise both on the server for a load test from one \
                  machine.\n\n\
                  Several nodes of one deployment: repeat --server ADDR; the devices are \
                  spread over the addresses round-robin (device i always uses the same one) \
                  and the report counts what each address served.";

/// Run the load generator.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
        xtt bench --group acme-sensors --rcert root_cert.bin \\\n      \
        --devices 200 --handshakes 2000\n  \
        xtt bench --target 10.0.0.5:4444 --group acme-sensors --rcert root_cert.bin \\\n      \
        --json report.json --svg latency.svg\n  \
        xtt bench --group g --rcert root_cert.bin \\\n      \
        -s X25519_LRSW_ECDSAP256_AES256GCM_BLAKE2B\n  \
        xtt bench --group g --mode session-handshakes --devices 16 --handshakes 3000\n  \
        xtt bench --group g --mode records --transport udp --devices 4 \\\n      \
        --record-size 1024 --json -\n  \
        xtt bench --group g --server 10.0.0.5:4444 --server 10.0.0.6:4444 \\\n      \
        --server 10.0.0.7:4444")]
pub(crate) struct BenchArgs {
    /// The server.
    #[arg(short = 't', long, default_value = "127.0.0.1:4444")]
    pub(crate) target: SocketAddr,
    /// A server of the deployment; repeat it for several nodes (devices are spread over them
    /// round-robin). Replaces --target.
    #[arg(long = "server", value_name = "ADDR", conflicts_with = "target")]
    pub(crate) servers: Vec<SocketAddr>,
    /// The DAA group directory (its issuer key enrolls the simulated devices).
    #[arg(short = 'g', long, value_name = "DIR")]
    pub(crate) group: PathBuf,
    /// The root certificate the server's certificate is signed by.
    #[arg(short = 'e', long = "rcert", default_value = "root_cert.bin")]
    pub(crate) rcert: PathBuf,
    /// Concurrent simulated devices. They all connect from this host, and `xtt server` lets one
    /// client hold at most `[limits] max_handshakes_per_client` (256) handshakes at once: raise
    /// it (0: no cap) on the server for more.
    #[arg(short = 'n', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) devices: u32,
    /// Total handshakes, at least 1 [default: 4 per device].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) handshakes: Option<u64>,
    /// Suite: a C name or 1-6 (5 and 6 authenticate records without encrypting them).
    #[arg(short = 's', long = "suitespec", default_value = "1", value_parser = parse_suite)]
    pub(crate) suite: SuiteSpec,
    /// Seconds each step may take (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: u64,
    /// Also write the report as JSON to this file ("-" for stdout instead of text).
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Write an SVG latency histogram to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
    /// Before the timed phase, let each device do the part of its handshakes that needs
    /// nothing from the server (DAA signature commitments, X25519 key share, long-term key), as
    /// a device can while idle. The server's work is unchanged; the load generator's halves.
    /// Use it when the load generator shares the server's cores, so that the figure is the
    /// server's. The preparation's CPU time is reported on its own line. Identity handshakes
    /// only.
    #[arg(long)]
    pub(crate) prepare: bool,
    #[command(flatten)]
    pub(crate) sessions: crate::bench_sessions::SessionBenchArgs,
}

impl BenchArgs {
    /// The addresses to load: every --server, or --target.
    pub(crate) fn targets(&self) -> Vec<SocketAddr> {
        if self.servers.is_empty() {
            vec![self.target]
        } else {
            self.servers.clone()
        }
    }
}

pub(crate) fn run(a: BenchArgs) -> anyhow::Result<()> {
    if a.sessions.mode != crate::bench_sessions::Mode::Identity {
        if a.prepare {
            anyhow::bail!(
                "--prepare applies to identity handshakes (the session modes sign no DAA \
                 signature and reuse their keys)"
            );
        }
        return crate::bench_sessions::run(&a);
    }
    let group = GroupDir::open(&a.group)?;
    let root = certs::read_root(&a.rcert)?;
    let n = usize::try_from(a.devices)?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("enrolling {n} simulated devices"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let devices = bench::enroll_devices(group.issuer(), group.basename(), n)
        .context("enrolling simulated devices")?;
    spinner.finish_and_clear();
    let config = BenchConfig {
        targets: a.targets(),
        suite: a.suite,
        roots: Arc::new(root),
        devices,
        handshakes: a.handshakes.unwrap_or(4 * u64::from(a.devices)),
        timeout: Duration::from_secs(a.timeout),
        prepare: a.prepare,
    };
    let report = run_with_bar(config)?;
    emit(&report, a.json.as_deref(), a.svg.as_deref())?;
    all_failed(&report)
}

/// A run in which every handshake failed measured nothing but the failure: say so and exit
/// non-zero, as the session modes do (the report, with the errors by kind, is printed first).
fn all_failed(report: &BenchReport) -> anyhow::Result<()> {
    if report.handshakes_ok == 0 && report.handshakes_failed > 0 {
        anyhow::bail!(
            "no handshake with {} succeeded ({} failed; the errors by kind are in the report)",
            report.target,
            report.handshakes_failed
        );
    }
    Ok(())
}

/// Runs the load generator with a progress bar.
pub(crate) fn run_with_bar(config: BenchConfig) -> anyhow::Result<BenchReport> {
    let bar = ProgressBar::new(config.handshakes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} handshakes [{bar:40.cyan/blue}] {pos}/{len} {per_sec} {msg}",
        )?
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let report = crate::block_on(bench::run(config, move |p| {
        b.set_position(p.done);
        if p.failed > 0 {
            b.set_message(format!("{} failed", p.failed));
        }
    }))?;
    bar.finish_and_clear();
    Ok(report)
}

/// The three forms of a bench report, whatever the mode (identity handshakes or sessions).
pub(crate) trait Report {
    fn text(&self) -> String;
    fn json(&self) -> String;
    fn svg_histogram(&self) -> String;
}

/// Both report types have the three forms under the same names.
macro_rules! report_forms {
    ($($report:ty),*) => {$(
        impl Report for $report {
            fn text(&self) -> String {
                self.to_text()
            }
            fn json(&self) -> String {
                self.to_json()
            }
            fn svg_histogram(&self) -> String {
                self.to_svg_histogram()
            }
        }
    )*};
}
report_forms!(BenchReport, SessionBenchReport);

/// Prints the text report (or JSON to stdout with `--json -`) and writes the optional JSON
/// file and SVG histogram.
pub(crate) fn emit(
    report: &impl Report,
    json: Option<&std::path::Path>,
    svg: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match json {
        Some(p) if p.as_os_str() == "-" => println!("{}", report.json()),
        Some(p) => {
            print!("{}", report.text());
            xtt_fsio::write_public(p, report.json().as_bytes())
                .with_context(|| format!("{}: cannot write", p.display()))?;
            println!("wrote {}", p.display());
        }
        None => print!("{}", report.text()),
    }
    if let Some(p) = svg {
        xtt_fsio::write_public(p, report.svg_histogram().as_bytes())
            .with_context(|| format!("{}: cannot write", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
