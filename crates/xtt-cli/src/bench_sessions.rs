//! `xtt bench --mode session-handshakes|records`: the simulated devices of a DAA group are
//! provisioned once (identity handshakes, not measured), then measured as session clients with
//! xtt-server's [`bench::run_sessions`]: session handshakes per second, or records per second
//! and MB/s through the server's echo application.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use xtt_files::certs;
use xtt_files::group::GroupDir;
use xtt_proto::session::SessionClientConfig;
use xtt_proto::ClientId;
use xtt_server::bench::{self, SessionBenchConfig, SessionMode};
use xtt_server::{Provisioner, SessionClientOptions};

use crate::bench::{emit, BenchArgs};
use crate::connect::TransportArg;

/// What `xtt bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Identity provisioning handshakes (DAA) per second.
    Identity,
    /// Session handshakes per second (provisioned devices, no DAA).
    SessionHandshakes,
    /// Record throughput through the server's echo: records/s and MB/s.
    Records,
}

/// The flags of the session modes.
#[derive(Debug, Args)]
pub(crate) struct SessionBenchArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Identity)]
    pub(crate) mode: Mode,
    /// Session modes: the transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Tcp)]
    transport: TransportArg,
    /// Session modes: shorthand for --transport udp.
    #[arg(long, conflicts_with = "transport")]
    udp: bool,
    /// Records mode: payload bytes per record.
    #[arg(long, value_name = "BYTES", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(0..=65_494))]
    record_size: u32,
    /// Records mode: records each device sends (and gets back).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    records: u64,
    /// Records mode: records a device sends before reading their echoes.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    window: u32,
    /// Session modes, server on this machine: its process id, to report the CPU time it spent
    /// in the measured phase (per handshake or per echoed record; from /proc/PID/stat).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
}

/// User + system CPU seconds of process `pid` so far (Linux).
fn process_cpu_secs(pid: u32) -> anyhow::Result<f64> {
    bench::process_cpu_secs(Some(pid)).with_context(|| format!("CPU time of process {pid}"))
}

pub(crate) fn run(a: &BenchArgs) -> anyhow::Result<()> {
    let s = &a.sessions;
    let group = GroupDir::open(&a.group)?;
    let root = Arc::new(certs::read_root(&a.rcert)?);
    let n = usize::try_from(a.devices)?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("enrolling {n} simulated devices"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let members = bench::enroll_devices(group.issuer(), group.basename(), n)
        .context("enrolling simulated devices")?;
    spinner.finish_and_clear();
    let timeout = Duration::from_secs(a.timeout);
    let bar = bar(n as u64, "provisioning")?;
    let b = bar.clone();
    let targets = a.targets();
    let suite = a.suite;
    let identities = crate::block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        // Device i is provisioned where its sessions will run (bench::run_sessions spreads the
        // same way), so nodes need not share a registry.
        for (i, m) in members.into_iter().enumerate() {
            let target = *targets
                .get(i % targets.len().max(1))
                .context("no server address")?;
            let p = Provisioner {
                roots: root.clone(),
                daa: m,
                suite,
                requested_id: ClientId::NULL,
                longterm_key: None,
                timeout,
            };
            tasks.spawn(async move {
                let r = p.provision(target).await;
                (
                    i,
                    r.with_context(|| format!("provisioning a simulated device with {target}")),
                )
            });
        }
        let mut identities = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (i, id) = r.context("provisioning task")?;
            let id = id?;
            b.inc(1);
            identities.push((
                i,
                SessionClientConfig {
                    roots: root.clone(),
                    client_id: id.client_id,
                    longterm_key: id.longterm_key,
                },
            ));
        }
        // Back in device order, so identity i runs against the address it was provisioned at.
        identities.sort_by_key(|(i, _)| *i);
        anyhow::Ok(identities.into_iter().map(|(_, c)| c).collect::<Vec<_>>())
    })?;
    bar.finish_and_clear();
    let transport = TransportArg::chosen(s.transport, s.udp);
    let base = match transport {
        TransportArg::Tcp => SessionClientOptions::tcp(),
        TransportArg::Udp => SessionClientOptions {
            // A lost record costs the receiving client this timeout: keep it short.
            retransmit_after: Duration::from_millis(200),
            ..SessionClientOptions::udp()
        },
    };
    let options = SessionClientOptions {
        suite: a.suite,
        timeout: match transport {
            TransportArg::Tcp => timeout,
            TransportArg::Udp => timeout.min(Duration::from_millis(500)),
        },
        ..base
    };
    let (mode, count) = match s.mode {
        Mode::SessionHandshakes => (
            SessionMode::Handshakes,
            a.handshakes.unwrap_or(20 * u64::from(a.devices)),
        ),
        _ => (SessionMode::Records, s.records),
    };
    let config = SessionBenchConfig {
        targets: a.targets(),
        mode,
        options,
        identities,
        count,
        payload_len: usize::try_from(s.record_size)?,
        window: usize::try_from(s.window)?,
    };
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(match mode {
        SessionMode::Handshakes => format!("{count} session handshakes"),
        SessionMode::Records => format!("{n} devices × {count} records"),
    });
    spinner.enable_steady_tick(Duration::from_millis(120));
    let cpu_before = s.server_pid.map(process_cpu_secs).transpose()?;
    let mut report = crate::block_on(bench::run_sessions(config))?;
    if let (Some(pid), Some(before)) = (s.server_pid, cpu_before) {
        report.server_cpu_secs = Some(process_cpu_secs(pid)? - before);
    }
    spinner.finish_and_clear();
    emit(&report, a.json.as_deref(), a.svg.as_deref())
}

fn bar(len: u64, what: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40.cyan/blue}}] {{pos}}/{{len}}"
        ))?
        .progress_chars("=> "),
    );
    Ok(bar)
}
