//! `xtt demo`: the quickstart. A throwaway root, server, DAA group and members in a new
//! directory, the server on its embedded registry, a batch of simulated devices provisioned
//! concurrently, a summary, and where everything lives.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::{OsRng, RngCore};
use xtt_files::client_dir::ROOT_CERT;
use xtt_files::group::GroupDir;
use xtt_files::{certs, keypair, Overwrite};
use xtt_proto::cert::{RootCertificate, RootId, DEFAULT_RESERVED};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::SuiteSpec;
use xtt_registry::Registry;
use xtt_server::{XttServer, DEFAULT_CONFIG_TOML};

use crate::client::{parse_suite, ClientPaths};
use crate::server::{add_groups, load_keys, FILES_SECTION_TOML};

/// The long help of `xtt demo` (set on its subcommand in `cli.rs`).
pub(crate) const LONG_ABOUT: &str = "\
                  Show the whole of XTT in one command. In a new directory (kept, so you can \
                  look at everything afterwards) it makes a root key and certificate, a server \
                  key and certificate, a DAA group and DEVICES enrolled members; starts the \
                  server on 127.0.0.1 with its embedded SQLite registry; provisions every \
                  device concurrently over TCP (each gets a ClientID, a long-term key and an \
                  X.509 certificate, written as the C client writes them); checks every \
                  ClientID is in the registry; stops the server and prints a summary and \
                  where everything lives.";

/// Run the quickstart.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
        cargo run --release -- demo\n  \
        xtt demo --devices 500\n  \
        xtt demo --dir ./xtt-demo -s X25519_LRSW_ECDSAP256_AES256GCM_BLAKE2B")]
pub(crate) struct DemoArgs {
    /// Simulated devices to enroll and provision.
    #[arg(short = 'n', long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    devices: u32,
    /// Directory to use (must not exist or be empty) [default: a new one under the temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Suite: a C name or 1-6 (5 and 6 authenticate records without encrypting them).
    #[arg(short = 's', long = "suitespec", default_value = "1", value_parser = parse_suite)]
    suite: SuiteSpec,
}

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn p(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

pub(crate) fn run(a: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = match &a.dir {
        Some(d) => {
            if std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()) {
                bail!(
                    "{}: not empty; the demo needs a directory of its own",
                    d.display()
                );
            }
            xtt_files::fsio::create_private_dir(d)?;
            d.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("xtt-demo-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    let l = Layout { dir: dir.clone() };
    println!("XTT demo in {}", dir.display());

    // 1. Root and server, as `xtt cert root/server --generate-key` would make them.
    let root_key = LongtermKeyPair::generate(&mut OsRng);
    keypair::write(&l.p("root_keys.asn1.bin"), &root_key, Overwrite::Deny)?;
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    let root = RootCertificate {
        id: RootId(id),
        public_key: *root_key.public_key(),
    };
    certs::write_root(&l.p(ROOT_CERT), &root, Overwrite::Deny)?;
    let server_key = LongtermKeyPair::generate(&mut OsRng);
    keypair::write(&l.p("server_keys.asn1.bin"), &server_key, Overwrite::Deny)?;
    let cert = certs::issue_server(
        &root,
        &root_key,
        &l.p("root_keys.asn1.bin"),
        server_key.public_key(),
        &DEFAULT_RESERVED,
    )?;
    certs::write_server(&l.p("server_cert.bin"), &cert, Overwrite::Deny)?;
    println!("  root and server certificates     done");

    // 2. A DAA group and its members, each a complete client directory.
    let group = GroupDir::create(&l.p("group"), b"xtt-demo", &mut OsRng)?;
    let n = usize::try_from(a.devices)?;
    let enrolling = progress_bar(a.devices.into(), "enrolling   ")?;
    let members = group.enroll(n, 0, &|_| enrolling.inc(1))?;
    enrolling.finish_and_clear();
    for m in &members {
        certs::write_root(&m.dir.join(ROOT_CERT), &root, Overwrite::Deny)?;
    }
    println!("  DAA group, {n} members enrolled   done");

    // 3. The server's configuration file, reusable with `xtt server --config`.
    let config_path = l.p("server.toml");
    let toml = DEFAULT_CONFIG_TOML.replace(
        "data_dir = \"xtt-data\"",
        &format!("data_dir = {:?}", l.p("xtt-data").display().to_string()),
    ) + &FILES_SECTION_TOML
        .replace(
            "server_certificate = \"server_cert.bin\"",
            &format!(
                "server_certificate = {:?}",
                l.p("server_cert.bin").display().to_string()
            ),
        )
        .replace(
            "server_keypair = \"server_keys.asn1.bin\"",
            &format!(
                "server_keypair = {:?}",
                l.p("server_keys.asn1.bin").display().to_string()
            ),
        )
        .replace(
            "groups = []",
            &format!("groups = [{:?}]", l.p("group").display().to_string()),
        );
    xtt_fsio::write_public(&config_path, toml.as_bytes())?;
    let (mut config, _files) = crate::server::parse_config_file(&config_path)?;
    // This run takes free ports so that it never collides with a server already running.
    config.listen = "127.0.0.1:0".parse()?;
    config.metrics.listen = Some("127.0.0.1:0".parse()?);
    // Every simulated device connects from 127.0.0.1: the per-client handshake cap, meant for
    // one source among many, would refuse all but the first 256 of a larger batch.
    config.limits.max_handshakes_per_client = 0;
    let keys = load_keys(&l.p("server_cert.bin"), &l.p("server_keys.asn1.bin"))?;

    // Devices load their files up front: the provisioning below is only network and crypto.
    let devices: Vec<(PathBuf, ClientPaths)> = members
        .iter()
        .map(|m| (m.dir.clone(), ClientPaths::in_dir(&m.dir)))
        .collect();
    let provisioners = devices
        .iter()
        .map(|(_, p)| Ok(p.provisioner(a.suite, Duration::from_secs(30))?))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let registry_path = config.registry_path();
    let outcome = crate::block_on(async move {
        let registry: Arc<dyn Registry> = Arc::new(xtt_server::open_registry(&config)?);
        add_groups(
            &*registry,
            &[(l.p("group/daa_gpk.bin"), l.p("group/basename.bin"))],
        )?;
        let server = XttServer::bind(config, keys, registry.clone()).await?;
        let addr = server.local_addr()?;
        let metrics = server.metrics_addr();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async move {
            let _ = stop_rx.await;
        }));
        println!(
            "  server on {addr} (registry {})",
            registry_path_display(&registry_path)
        );

        let bar = progress_bar(provisioners.len() as u64, "provisioning")?;
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (provisioner, (_, paths)) in provisioners.into_iter().zip(devices) {
            let bar = bar.clone();
            tasks.spawn(async move {
                let t = Instant::now();
                let identity = provisioner.provision(addr).await;
                let latency = t.elapsed();
                let r = match identity {
                    Ok(id) => {
                        let client_id = id.client_id;
                        tokio::task::spawn_blocking(move || Ok(paths.write_results(&id)?))
                            .await
                            .map_err(anyhow::Error::from)
                            .and_then(|r| r)
                            .map(|()| client_id)
                    }
                    Err(e) => Err(anyhow::Error::from(e)),
                };
                bar.inc(1);
                (r, latency)
            });
        }
        let mut ids = Vec::new();
        let mut errors = Vec::new();
        let mut latencies = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (r, latency) = joined?;
            match r {
                Ok(id) => {
                    ids.push(id);
                    latencies.push(latency);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        let wall = t0.elapsed();
        bar.finish_and_clear();
        let stored = registry.identity_count()?;
        let mut missing = 0usize;
        for id in &ids {
            if registry.identity(id)?.is_none() {
                missing += 1;
            }
        }
        let _ = stop_tx.send(());
        serving.await??;
        anyhow::Ok(Outcome {
            addr: addr.to_string(),
            metrics: metrics.map(|m| m.to_string()),
            ids,
            errors,
            latencies,
            wall,
            stored,
            missing,
        })
    })?;
    summary(&dir, &outcome, a.suite, started.elapsed())?;
    let distinct: HashSet<_> = outcome.ids.iter().map(|i| i.0).collect();
    if !outcome.errors.is_empty() || outcome.missing > 0 || distinct.len() != n {
        bail!(
            "{} device(s) failed, {} ClientID(s) missing from the registry, {} distinct \
             ClientIDs for {n} devices",
            outcome.errors.len(),
            outcome.missing,
            distinct.len()
        );
    }
    Ok(())
}

struct Outcome {
    addr: String,
    metrics: Option<String>,
    ids: Vec<xtt_proto::ClientId>,
    errors: Vec<String>,
    latencies: Vec<Duration>,
    wall: Duration,
    stored: u64,
    missing: usize,
}

fn registry_path_display(p: &Path) -> String {
    p.display().to_string()
}

fn progress_bar(len: u64, what: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "  {what} [{{bar:40.cyan/blue}}] {{pos}}/{{len}} {{per_sec}}"
        ))?
        .progress_chars("=> "),
    );
    Ok(bar)
}

/// Nearest-rank percentile in milliseconds (`p` in percent).
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let rank = (p * sorted.len())
        .div_ceil(100)
        .clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// `s` as one POSIX shell word: as it is when it has only characters no shell treats
/// specially, otherwise in single quotes (a `'` inside written as `'\''`).
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-+=@%:,./".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn summary(dir: &Path, o: &Outcome, suite: SuiteSpec, total: Duration) -> anyhow::Result<()> {
    let mut lat = o.latencies.clone();
    lat.sort_unstable();
    let distinct: HashSet<_> = o.ids.iter().map(|i| i.0).collect();
    let d = dir.display();
    println!();
    println!(
        "provisioned {} device(s) concurrently in {:.2} s: {:.0} handshakes/s, latency p50 {:.1} ms, \
         p90 {:.1} ms, p99 {:.1} ms ({})",
        o.ids.len(),
        o.wall.as_secs_f64(),
        o.ids.len() as f64 / o.wall.as_secs_f64().max(1e-9),
        percentile(&lat, 50),
        percentile(&lat, 90),
        percentile(&lat, 99),
        suite.name()
    );
    println!(
        "{} distinct ClientIDs; registry holds {} identities; {} missing; {} failed",
        distinct.len(),
        o.stored,
        o.missing,
        o.errors.len()
    );
    for e in o.errors.iter().take(5) {
        println!("  error: {e}");
    }
    println!(
        "server was on {}{}",
        o.addr,
        o.metrics.as_ref().map_or(String::new(), |m| format!(
            ", metrics on http://{m}/metrics"
        ))
    );
    println!("total {:.1} s", total.as_secs_f64());
    println!();
    println!("where everything lives ({d}, kept; remove it when done):");
    println!("  root_cert.bin, root_keys.asn1.bin (0600)        the root of trust");
    println!("  server_cert.bin, server_keys.asn1.bin (0600)    the server's certificate and key");
    println!(
        "  server.toml                                     the server's configuration (commented)"
    );
    println!("  group/                                          DAA group: ipk.bin, isk.bin (0600), daa_gpk.bin, basename.bin, gid.bin");
    println!("  group/members/NNNNNN/                           one device each: DAA files, root_cert.bin,");
    println!("                                                  client_id.txt, longterm_priv.bin (0600), longterm_cert.bin");
    println!("  xtt-data/registry.sqlite                        the server's registry (groups, identities)");
    println!();
    let exe = std::env::current_exe().map_or_else(|_| "xtt".into(), |p| p.display().to_string());
    println!("try next (xtt is {exe}; `cargo install --path crates/xtt-cli` puts it on PATH):");
    // Paths quoted for the shell: the commands are meant to be pasted, and --dir may have spaces.
    let q = |rel: &str| shell_quote(&dir.join(rel).to_string_lossy());
    let member = q("group/members/000001");
    println!("  xtt info {member}");
    println!(
        "  xtt server --config {}    # the same server on 127.0.0.1:4444",
        q("server.toml")
    );
    println!("  xtt client provision --dir {member}    # with it running: same ClientID again");
    println!(
        "  xtt bench --group {} --rcert {} --devices 100",
        q("group"),
        q("root_cert.bin")
    );
    println!(
        "  sqlite3 {} 'SELECT hex(client_id) FROM identities LIMIT 3'",
        q("xtt-data/registry.sqlite")
    );
    Ok(())
}
