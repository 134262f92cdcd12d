//! `xtt completions SHELL`.

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
    clap_complete::generate(args.shell, &mut cmd, "xtt", &mut std::io::stdout());
    Ok(())
}
