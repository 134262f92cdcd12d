//! The relay subcommands as a stand-alone program, exactly as the project CLI wires them:
//!
//! ```text
//! cargo run -p xtt-relay --example relay -- serve --db /tmp/relay.db
//! cargo run -p xtt-relay --example relay -- share --relay http://127.0.0.1:8080 --content '{"token":"abc"}'
//! ```
//!
//! Used by `bench/run.sh` for the load figures; the product binary is `xtt` (`xtt relay ...`).

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "relay",
    about = "Secure credential transfer relay (example front end)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: xtt_relay::cli::RelayCommand,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    xtt_relay::cli::run(Cli::parse().cmd).await
}
