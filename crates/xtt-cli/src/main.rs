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

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // Every HTTPS client in the process (relay, TTE) uses rustls with ring; reqwest refuses to
    // build a client before a provider is chosen.
    xtt_tls::install_ring_provider();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
        Command::Anchors(a) => xtt_anchors::cli::run_anchors(a, &mut std::io::stdout().lock()),
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

/// Logs go to stderr; `RUST_LOG` overrides `-v`.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
