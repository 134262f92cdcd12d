//! `xtt relay …` arguments parsed as the `xtt` binary parses them.

use clap::Parser;
use xtt_relay::cli::RelayCommand;

#[derive(Parser)]
struct Xtt {
    #[command(subcommand)]
    relay: RelayCommand,
}

/// `args` after `xtt relay`, or clap's error.
pub fn parse(args: &[&str]) -> Result<RelayCommand, clap::Error> {
    let mut v = vec!["xtt"];
    v.extend_from_slice(args);
    Xtt::try_parse_from(v).map(|x| x.relay)
}

/// `args` after `xtt relay`, which must parse.
pub fn cmd(args: &[&str]) -> RelayCommand {
    parse(args).unwrap()
}
