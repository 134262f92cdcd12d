//! `xtt registry`: operations on a server's registry (SQLite file or PostgreSQL database)
//! without running a server: migrate the schema, show statistics, export identities.
//!
//! The registry holds no secrets (group public keys, basenames, ClientIDs, device public keys,
//! DAA pseudonyms and times), so an export contains none. Pseudonyms link a device's
//! provisionings to each other; treat exports as you would the registry itself.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use xtt_registry::{redact_url, Registry};

/// Where the registry is.
#[derive(Debug, Args)]
pub(crate) struct StorageArg {
    /// Registry URL: sqlite:PATH or postgres://USER@HOST/DB[?sslmode=verify-full&sslrootcert=CA.pem]
    /// [default: sqlite:xtt-data/registry.sqlite]. Also read from XTT_STORAGE.
    #[arg(long, value_name = "URL", env = "XTT_STORAGE", hide_env_values = true)]
    storage: Option<String>,
}

/// Whether a command may create the registry it is pointed at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    Create,
    /// Reading commands: a mistyped path must not turn into an empty registry that then
    /// reports no identities.
    Refuse,
}

impl StorageArg {
    fn open(&self, missing: Missing) -> anyhow::Result<(String, Arc<dyn Registry>)> {
        let url = self
            .storage
            .clone()
            .unwrap_or_else(|| "sqlite:xtt-data/registry.sqlite".into());
        let shown = redact_url(&url);
        if let Some(path) = xtt_registry::sqlite_path(&url) {
            if missing == Missing::Refuse && !path.exists() {
                anyhow::bail!(
                    "no registry at {} (a server creates it when it first starts); check \
                     --storage or XTT_STORAGE",
                    path.display()
                );
            }
        }
        let reg = xtt_registry::open_storage(&url)
            .with_context(|| format!("opening the registry {shown}"))?;
        Ok((shown, reg))
    }
}

/// Registry maintenance: schema migrations, statistics, export.
#[derive(Debug, Subcommand)]
#[command(after_long_help = "Examples:\n  \
    xtt registry migrate --storage postgres://xtt@db.example/xtt\n  \
    xtt registry stats --storage sqlite:xtt-data/registry.sqlite --json\n  \
    xtt registry export --format csv > identities.csv")]
pub(crate) enum RegistryCommand {
    /// Bring the schema to the newest version (servers do this at start too) and print it.
    #[command(after_long_help = "Examples:\n  \
        xtt registry migrate --storage sqlite:xtt-data/registry.sqlite\n  \
        XTT_STORAGE='postgres://xtt@db.example/xtt?sslmode=verify-full' xtt registry migrate")]
    Migrate(MigrateArgs),
    /// Groups, identities per group, newest registration.
    #[command(after_long_help = "Examples:\n  \
        xtt registry stats                      # sqlite:xtt-data/registry.sqlite\n  \
        xtt registry stats --storage sqlite:/var/lib/xtt/registry.sqlite --json")]
    Stats(StatsArgs),
    /// Write every identity (and, in JSON lines, every group) to stdout or a file.
    #[command(after_long_help = "Examples:\n  \
        xtt registry export > registry.jsonl\n  \
        xtt registry export --format csv --out identities.csv\n  \
        xtt registry export --storage sqlite:/var/lib/xtt/registry.sqlite --format csv")]
    Export(ExportArgs),
}

/// `xtt registry migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    storage: StorageArg,
}

/// `xtt registry stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    storage: StorageArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line: groups first ("kind":"group"), then identities.
    Jsonl,
    /// Identities only, with a header line.
    Csv,
}

/// `xtt registry export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    storage: StorageArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Write here instead of stdout.
    #[arg(short, long, value_name = "FILE", visible_alias = "out")]
    output: Option<PathBuf>,
}

pub(crate) fn run(command: RegistryCommand) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Migrate(a) => {
            let (shown, reg) = a.storage.open(Missing::Create)?;
            println!("{shown}: schema version {}", reg.schema_version()?);
            Ok(())
        }
        RegistryCommand::Stats(a) => stats(&a),
        RegistryCommand::Export(a) => export(&a),
    }
}

fn stats(a: &StatsArgs) -> anyhow::Result<()> {
    let (shown, reg) = a.storage.open(Missing::Refuse)?;
    let groups = reg.groups()?;
    let identities = reg.identities()?;
    let mut per_group: BTreeMap<String, u64> = groups
        .iter()
        .map(|g| (hex::encode(g.group_id.0), 0))
        .collect();
    for i in &identities {
        *per_group.entry(hex::encode(i.group_id.0)).or_default() += 1;
    }
    let newest = identities.iter().max_by_key(|i| i.last_seen.0);
    if a.json {
        let v = serde_json::json!({
            "storage": shown,
            "schema_version": reg.schema_version()?,
            "groups": groups.len(),
            "identities": identities.len(),
            "identities_per_group": per_group,
            "newest_registration": newest.map(|i| serde_json::json!({
                "client_id": i.client_id.to_string(),
                "last_seen": i.last_seen.0,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "registry    {shown} (schema version {})",
            reg.schema_version()?
        );
        println!("groups      {}", groups.len());
        println!("identities  {}", identities.len());
        for (g, n) in &per_group {
            println!("  group {g}: {n}");
        }
        match newest {
            Some(i) => println!(
                "newest      {} (last seen {})",
                i.client_id,
                utc(i.last_seen.0)
            ),
            None => println!("newest      none"),
        }
    }
    Ok(())
}

fn export(a: &ExportArgs) -> anyhow::Result<()> {
    let (_, reg) = a.storage.open(Missing::Refuse)?;
    // A file is written whole and crash-safely (temp, fsync, rename) from memory: the
    // identities are in memory already, and a half-written export must not look complete.
    let mut text = Vec::new();
    let mut out: Box<dyn Write + '_> = match &a.output {
        Some(_) => Box::new(&mut text),
        None => Box::new(std::io::BufWriter::new(crate::output::Stdout::lock())),
    };
    let mut identities = reg.identities()?;
    identities.sort_by_key(|i| (i.first_seen.0, i.client_id.0));
    match a.format {
        Format::Jsonl => {
            for g in reg.groups()? {
                let v = serde_json::json!({
                    "kind": "group",
                    "group_id": hex::encode(g.group_id.0),
                    "gpk": hex::encode(&g.gpk),
                    "basename": hex::encode(&g.basename),
                });
                writeln!(out, "{v}")?;
            }
            for i in &identities {
                let v = serde_json::json!({
                    "kind": "identity",
                    "client_id": hex::encode(i.client_id.0),
                    "group_id": hex::encode(i.group_id.0),
                    "pseudonym": hex::encode(i.pseudonym.0),
                    "longterm_public_key": hex::encode(i.longterm_key.as_bytes()),
                    "first_seen": i.first_seen.0,
                    "last_seen": i.last_seen.0,
                });
                writeln!(out, "{v}")?;
            }
        }
        Format::Csv => {
            // Every field is hex or a number: nothing needs quoting.
            writeln!(
                out,
                "client_id,group_id,pseudonym,longterm_public_key,first_seen,last_seen"
            )?;
            for i in &identities {
                writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    hex::encode(i.client_id.0),
                    hex::encode(i.group_id.0),
                    hex::encode(i.pseudonym.0),
                    hex::encode(i.longterm_key.as_bytes()),
                    i.first_seen.0,
                    i.last_seen.0
                )?;
            }
        }
    }
    out.flush()?;
    drop(out);
    if let Some(p) = &a.output {
        xtt_fsio::write_public(p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// `2026-12-07T17:25:02Z`, or the number of seconds if it is not a representable time.
fn utc(unix_secs: u64) -> String {
    use time::format_description::well_known::Rfc3339;
    i64::try_from(unix_secs)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix_secs} s after 1970"))
}
