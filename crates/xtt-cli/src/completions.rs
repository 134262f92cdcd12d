//! `xtt completions SHELL`.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;

/// The long help of `xtt completions` (set on its subcommand in `cli.rs`).
pub(crate) const LONG_ABOUT: &str = "\
                  Print a completion script for SHELL to stdout. Install it where your shell \
                  looks for completions.";

/// Print a completion script for a shell to stdout.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
        xtt completions bash > ~/.local/share/bash-completion/completions/xtt\n  \
        xtt completions zsh > ~/.zfunc/_xtt        # with fpath+=~/.zfunc in ~/.zshrc\n  \
        xtt completions fish > ~/.config/fish/completions/xtt.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    shell: Shell,
}

pub(crate) fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics when its writer fails; ours reports the error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "xtt", &mut script);
    let mut out = crate::output::Stdout::lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}
