//! `xtt`: one command for an IoT operator running XTT.
//!
//! Layout: `cli` declares the top-level [`cli::Command`] enum; every subcommand family lives in
//! its own module (or crate) that exposes a `clap` `Subcommand`/`Args` type and a
//! `run(...) -> anyhow::Result<()>`. Adding a family from another crate is one enum variant in
//! `cli.rs` and one match arm in [`run`]; a family whose `run` is async is driven with
//! [`block_on`].

mod bench;
mod bench_sessions;
mod cert;
mod cli;
mod client;
mod client_anchors;
mod completions;
mod connect;
mod demo;
mod group;
mod info;
mod keys;
mod output;
mod registry;
mod server;
mod server_anchors;
mod server_sessions;
mod update;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    stdout_failures_end_the_process();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // Every HTTPS client in the process (relay, TTE) uses rustls with ring; reqwest refuses to
    // build a client before a provider is chosen.
    xtt_tls::install_ring_provider();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match output::StdoutError::find(&e) {
            Some(io) => stdout_failed(io.kind() == std::io::ErrorKind::BrokenPipe, io),
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Exit status for a reader that went away: what a shell reports for a process killed by
/// SIGPIPE (128 + 13), as for `cat file | head -1` with the C tools.
const EXIT_BROKEN_PIPE: u8 = 141;

/// `EPIPE` (the same number on Linux, macOS and the BSDs).
const EPIPE: i32 = 32;

/// Rust ignores SIGPIPE, so `xtt info f | head -1` gets EPIPE, and `println!` panics on it (or
/// on a full disk) with exit 101 and a panic message. Restoring the default disposition needs
/// `unsafe` (forbidden in this workspace) and would also let a peer's reset kill the server, so
/// instead: a closed stdout ends the process quietly with [`EXIT_BROKEN_PIPE`], any other
/// stdout failure with an error message and status 1, and a broken stderr with status 1. Every
/// other panic goes to the default hook as before.
fn stdout_failures_end_the_process() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(reason) = message.strip_prefix("failed printing to stdout: ") {
            let closed = reason == std::io::Error::from_raw_os_error(EPIPE).to_string();
            let _ = std::io::stderr().flush();
            std::process::exit(i32::from(stdout_code(closed, reason)));
        }
        if message.starts_with("failed printing to stderr: ") {
            std::process::exit(1);
        }
        default(info);
    }));
}

/// Reports a stdout failure found in a command's error.
fn stdout_failed(closed: bool, e: &std::io::Error) -> ExitCode {
    ExitCode::from(stdout_code(closed, &e.to_string()))
}

/// The exit status for a stdout failure, after saying why unless the reader just went away.
fn stdout_code(closed: bool, reason: &str) -> u8 {
    if closed {
        EXIT_BROKEN_PIPE
    } else {
        eprintln!("error: cannot write to stdout: {reason}");
        1
    }
}

/// Dispatches one subcommand family.
fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Keys(c) => keys::run(c),
        Command::Cert(c) => cert::run(c),
        Command::Info(a) => info::run(a),
        Command::Group(c) => group::run(c),
        Command::Completions(a) => completions::run(a),
        Command::Server(a) => server::run(a),
        Command::Registry(c) => registry::run(c),
        Command::Client(c) => client::run(c),
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Tte(c) => block_on(tte_server::cli::run(c)),
        Command::Relay(c) => block_on(xtt_relay::cli::run(c)),
        Command::Anchors(a) => xtt_anchors::cli::run_anchors(a, &mut output::Stdout::lock()),
        Command::Update(a) => update::run(a),
    }
}

/// Runs an async subcommand on a multi-threaded tokio runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(future),
        // Without a runtime nothing async can run; say why and stop.
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

/// The log filter for `-v` given `verbose` times, when `RUST_LOG` is not set.
///
/// Without -v only this workspace's crates (targets `xtt…`, `tte…`) warn; other crates log
/// errors only, and `rustls_platform_verifier` nothing below -vv: it logs every refused
/// certificate, which the command itself reports in words.
fn default_log_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "error,xtt=warn,tte=warn,rustls_platform_verifier=off",
        1 => "info,rustls_platform_verifier=off",
        2 => "debug",
        _ => "trace",
    }
}

/// Logs go to stderr; `RUST_LOG` overrides `-v`.
fn init_tracing(verbose: u8) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_filter(verbose)));
    // Colour only for a person at a terminal: escape codes in a file or the journal are noise.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod log_filter_tests {
    use super::default_log_filter;
    use tracing::{enabled, Level};

    fn with_filter(verbose: u8, check: impl FnOnce()) {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(default_log_filter(
                verbose,
            )))
            .finish();
        tracing::subscriber::with_default(subscriber, check);
    }

    #[test]
    fn third_party_crates_are_quiet_by_default() {
        with_filter(0, || {
            // The platform verifier's "failed to verify TLS certificate" line.
            assert!(!enabled!(
                target: "rustls_platform_verifier::verification::others",
                Level::ERROR
            ));
            assert!(!enabled!(target: "rustls::common_state", Level::WARN));
            assert!(enabled!(target: "hyper_util::client", Level::ERROR));
            // This workspace's crates still warn.
            assert!(enabled!(target: "xtt", Level::WARN));
            assert!(enabled!(target: "xtt_relay::access", Level::WARN));
            assert!(enabled!(target: "tte_server::device", Level::WARN));
            assert!(!enabled!(target: "xtt_relay::access", Level::INFO));
        });
        with_filter(1, || {
            assert!(enabled!(target: "xtt_server", Level::INFO));
            assert!(!enabled!(
                target: "rustls_platform_verifier::verification::others",
                Level::ERROR
            ));
        });
        with_filter(2, || {
            assert!(enabled!(
                target: "rustls_platform_verifier::verification::others",
                Level::ERROR
            ));
        });
    }
}
