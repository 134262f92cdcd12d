//! Shared helpers: the C reference's vectors (read in place from `../shared/vectors`), the
//! `xtt` command tree as the binary will mount it, and deterministic keys.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors"
    ))
}

/// A handshake vector's JSON.
pub fn vector(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the C vectors must be at ../shared/vectors)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("vector JSON")
}

pub fn hex_at(v: &Value, pointer: &str) -> Vec<u8> {
    hex::decode(
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("missing {pointer}")),
    )
    .expect("hex")
}

/// The `xtt` command tree, as the binary mounts this crate's commands.
#[derive(Debug, Parser)]
#[command(name = "xtt")]
pub struct Xtt {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Anchors(xtt_anchors::cli::AnchorsArgs),
    Update(xtt_anchors::cli::UpdateArgs),
}

/// Runs `xtt ARGS...` in process and returns its standard output.
pub fn xtt(args: &[&str]) -> anyhow::Result<String> {
    let cli = Xtt::try_parse_from(std::iter::once("xtt").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    match cli.command {
        Command::Anchors(a) => xtt_anchors::cli::run_anchors(a, &mut out)?,
        Command::Update(u) => xtt_anchors::cli::run_update(u, &mut out)?,
    }
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_core::SeedableRng::seed_from_u64(seed)
}

/// A fixed "now" for tests: 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600;
