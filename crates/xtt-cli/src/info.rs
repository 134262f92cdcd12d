//! `xtt info FILE...`: recognise and explain any file of the XTT and ECDAA tools.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use xtt_files::describe::{describe, Description};

/// The long help of `xtt info` (set on its subcommand in `cli.rs`).
pub(crate) const LONG_ABOUT: &str = "\
                  Recognise each FILE (key pair, root/server/X.509 certificate, ClientID, DAA \
                  group public key, basename, group id, credential, secret keys, issuer keys, \
                  DAA signature) or directory (DAA group, client directory) and explain what \
                  it is, who uses it and what it holds. Secrets are never printed; a secret \
                  readable by others is reported. Files beside it are used for cross-checks: \
                  a server certificate is verified under root_cert.bin in the same directory, \
                  a credential under daa_gpk.bin, a group id against daa_gpk.bin and \
                  basename.bin.";

/// Explain files.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
        xtt info root_cert.bin server_cert.bin server_keys.asn1.bin\n  \
        xtt info client/                    # a client directory: group, ClientID, key\n  \
        xtt info acme-sensors/              # a DAA group directory\n  \
        xtt info --json longterm_cert.bin")]
pub(crate) struct InfoArgs {
    /// Files or directories to explain.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON (one object per file) instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: InfoArgs) -> anyhow::Result<()> {
    let mut failed = 0usize;
    let mut json = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        match describe(path) {
            Ok(d) if args.json => json.push(to_json(&path.display().to_string(), &d)),
            Ok(d) => {
                if i > 0 {
                    println!();
                }
                print_text(&path.display().to_string(), &d);
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) not recognised", args.files.len());
    }
    Ok(())
}

fn print_text(path: &str, d: &Description) {
    println!("{path}: {}", d.kind);
    println!("  {}", d.purpose);
    let width = d.fields.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, value) in &d.fields {
        println!("  {label:width$}  {value}");
    }
    for w in &d.warnings {
        println!("  warning: {w}");
    }
}

fn to_json(path: &str, d: &Description) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "kind": d.kind,
        "purpose": d.purpose,
        "secret": d.secret,
        "fields": d.fields.iter().map(|(l, v)| (l.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "warnings": d.warnings,
    })
}

/// `e`, an error reading `path` as a `wanted` (e.g. "XTT root certificate"), with what `xtt info`
/// recognises the file as when that is something else: "this is an XTT server certificate (169
/// bytes), not an XTT root certificate".
pub(crate) fn wrong_kind(path: &Path, wanted: &str, e: impl Into<anyhow::Error>) -> anyhow::Error {
    let e = e.into();
    if !path.is_file() {
        return e;
    }
    match describe(path) {
        Ok(d) if d.kind != wanted => {
            let len = std::fs::metadata(path).map_or(0, |m| m.len());
            e.context(format!(
                "{}: this is {} ({len} bytes), not {}",
                path.display(),
                with_article(d.kind),
                with_article(wanted)
            ))
        }
        _ => e,
    }
}

/// "a …" or "an …".
fn with_article(kind: &str) -> String {
    let vowel = kind.starts_with(['A', 'E', 'I', 'O', 'U', 'X', 'a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}
