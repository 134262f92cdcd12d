//! `xtt group ...`: DAA groups on the issuer side.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::OsRng;
use xtt_files::client_dir::{ClientDir, ROOT_CERT};
use xtt_files::group::GroupDir;

use crate::output::hex;

/// DAA group commands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a DAA group: issuer key pair, group public key, basename, group id.
    #[command(
        long_about = "Create a DAA group in a new directory: the issuer's key pair (ipk.bin, \
                      isk.bin 0600), the group public key (daa_gpk.bin), the basename \
                      (basename.bin) and the group id SHA-256(gpk ‖ basename) (gid.bin). Give \
                      daa_gpk.bin and basename.bin to XTT servers; keep isk.bin secret. The \
                      basename is signed into every DAA signature: a device's signatures under \
                      one basename are linkable (same pseudonym), across basenames they are \
                      not.",
        after_long_help = "Examples:\n  \
            xtt group create acme-sensors                      # basename \"acme-sensors\"\n  \
            xtt group create g1 --basename BASENAME\n  \
            xtt group create g2 --basename-file basename.bin"
    )]
    Create(CreateArgs),
    /// Enroll members: run the DAA join protocol and write each member's files.
    #[command(
        long_about = "Enroll COUNT new members in a group. For each, the issuer picks a nonce, \
                      the member makes its secret key and proves knowledge of it over the \
                      nonce, the issuer checks the proof and issues a credential with its own \
                      proof, and the member checks that. Each member gets a directory \
                      members/NNNNNN/ with the files the C client reads: daa_secretkey.bin \
                      (0600), daa_cred.bin, daa_gpk.bin, basename.bin, gid.bin. With --root it \
                      also gets root_cert.bin and is a complete client directory for \
                      `xtt client provision` or the C client.",
        after_long_help = "Examples:\n  \
            xtt group enroll acme-sensors                   # one member\n  \
            xtt group enroll acme-sensors --count 200 --root root_cert.bin"
    )]
    Enroll(EnrollArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The new group's directory (must not exist or be empty).
    dir: PathBuf,
    /// The basename as text [default: the directory's name].
    #[arg(long, conflicts_with = "basename_file")]
    basename: Option<String>,
    /// Read the basename from a file (e.g. the C tools' basename.bin).
    #[arg(long)]
    basename_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// The group's directory.
    dir: PathBuf,
    /// How many members to enroll.
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    /// Worker threads; 0 = four per CPU.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also copy this root certificate into each member's directory.
    #[arg(long)]
    root: Option<PathBuf>,
}

pub(crate) fn run(cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::Create(a) => create(a),
        GroupCommand::Enroll(a) => enroll(a),
    }
}

fn create(a: CreateArgs) -> anyhow::Result<()> {
    let basename = match (&a.basename, &a.basename_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(f)) => xtt_files::daa::read_basename(f)?,
        (None, None) => a
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned().into_bytes())
            .context("cannot take a basename from this directory name; pass --basename")?,
    };
    let group = GroupDir::create(&a.dir, &basename, &mut OsRng)?;
    println!("created DAA group in {}", a.dir.display());
    println!("  group id   {}", hex(&group.group_id().0));
    println!(
        "  basename   {:?}",
        String::from_utf8_lossy(group.basename())
    );
    println!("  for servers: daa_gpk.bin, basename.bin   secret: isk.bin (0600)");
    println!("next: xtt group enroll {} --count N", a.dir.display());
    Ok(())
}

fn enroll(a: EnrollArgs) -> anyhow::Result<()> {
    let group = GroupDir::open(&a.dir)?;
    let root = a
        .root
        .as_ref()
        .map(|p| xtt_files::certs::read_root(p).map(|_| p.clone()))
        .transpose()?;
    let count = usize::try_from(a.count)?;
    let bar = ProgressBar::new(u64::from(a.count));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} enrolling [{bar:40.cyan/blue}] {pos}/{len} {per_sec} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let members = group.enroll(count, a.threads, &|_| bar.inc(1))?;
    bar.finish_and_clear();
    if let Some(root) = &root {
        for m in &members {
            let dir = ClientDir::new(&m.dir);
            let r = xtt_files::certs::read_root(root)?;
            xtt_files::certs::write_root(&dir.file(ROOT_CERT), &r, xtt_files::Overwrite::Allow)?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (first, last) = match (members.first(), members.last()) {
        (Some(f), Some(l)) => (f.index, l.index),
        _ => (0, 0),
    };
    println!(
        "enrolled {} member(s) in {:.1}s ({:.0}/s): {}/members/{first:06} .. {last:06}",
        members.len(),
        secs,
        members.len() as f64 / secs.max(1e-9),
        a.dir.display(),
    );
    Ok(())
}
