//! `xtt client connect`: a session with the server as the identity `xtt client provision`
//! stored, then a two-way stream of records between the server and stdin/stdout or a local
//! socket. The session outlives connections: a dropped TCP connection or a failing UDP socket
//! is replaced and the same session goes on (XTT-SESSION.md, mobility); only a server that no
//! longer knows the session costs a new handshake.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use tokio::sync::mpsc;
use xtt_files::{certs, client_dir, client_id, keypair};
use xtt_proto::record::{PayloadType, RecordError, MAX_PAYLOAD_LEN};
use xtt_proto::session::SessionClientConfig;
use xtt_proto::SuiteSpec;
use xtt_server::{SessionClient, SessionClientError, SessionClientOptions, Transport};

use crate::client::parse_suite;

pub(crate) const LONG_ABOUT: &str = "\
Open an XTT session with the server as this device, then exchange records until the input \
ends.

The device's identity is what `xtt client provision` wrote in --dir: client_id.txt (the \
ClientID), longterm_priv.bin (the long-term key the server registered for it) and \
root_cert.bin (to check the server's certificate). The session handshake is four messages (two \
round trips) and needs no DAA signature; the server then knows the device by its ClientID.

By default every line of stdin becomes one record (without its newline) and every record \
from the server is printed as one line; --raw sends stdin in chunks as they arrive and \
prints payloads unchanged. With --socket the records come from and go to a local socket \
instead: `udp:127.0.0.1:6000` (each datagram received there is one record; records from the \
server are sent to whoever sent the last datagram) or `unix:/run/dev.sock` (the same with a \
Unix datagram socket, created at start and removed at exit).

The session is not tied to a connection. When the TCP connection drops (or the UDP socket \
fails) the client opens a new one and keeps sending records in the same session, without a \
handshake; the server answers on whatever path last brought it an authentic record. If the \
server has forgotten the session (idle timeout, restart) a new handshake is run. Records are \
datagrams: one in flight while the path breaks may be lost. Progress notes go to stderr.

The server is --server HOST:PORT (as `xtt bench` and `xtt update fetch` spell it) or the C \
client's -a HOST and -p PORT, not both.";

pub(crate) const AFTER_LONG_HELP: &str = "\
Examples:
  # Type lines, read the server's answers (the default server application echoes):
  xtt client connect --dir acme-sensors/members/000001

  # Over UDP, one record per line of a file, answers to a file:
  xtt client connect --dir dev1 --transport udp < readings.txt > answers.txt

  # A server elsewhere (the same as -a xtt.example.net -p 4444):
  xtt client connect --dir dev1 --server xtt.example.net:4444

  # A local program talks to the server through a UDP port of ours:
  xtt client connect --dir dev1 --socket udp:127.0.0.1:6000 &
  echo hello | socat - UDP:127.0.0.1:6000

  # IPv6 packets (payload type ipv6) from a Unix datagram socket:
  xtt client connect --dir dev1 --payload-type ipv6 --socket unix:/run/dev1.sock";

/// `--transport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportArg {
    /// One TCP connection at a time.
    Tcp,
    /// One record per datagram; handshake messages retransmitted on timeout.
    Udp,
}

impl TransportArg {
    /// The transport of `--transport T` and its shorthand `--udp` (clap refuses both at once).
    pub(crate) fn chosen(transport: TransportArg, udp: bool) -> TransportArg {
        if udp {
            TransportArg::Udp
        } else {
            transport
        }
    }
}

/// `--payload-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PayloadTypeArg {
    /// 0x01: application messages.
    QueueProtocol,
    /// 0x02: IPv6 packets.
    Ipv6,
}

impl From<PayloadTypeArg> for PayloadType {
    fn from(p: PayloadTypeArg) -> Self {
        match p {
            PayloadTypeArg::QueueProtocol => PayloadType::QueueProtocol,
            PayloadTypeArg::Ipv6 => PayloadType::Ipv6,
        }
    }
}

/// Where records come from and go to, besides stdin/stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SocketSpec {
    /// A UDP socket bound here.
    Udp(SocketAddr),
    /// A Unix datagram socket created here.
    Unix(PathBuf),
}

fn parse_socket(s: &str) -> Result<SocketSpec, String> {
    if let Some(a) = s.strip_prefix("udp:") {
        a.parse()
            .map(SocketSpec::Udp)
            .map_err(|e| format!("{a:?}: not an address ({e})"))
    } else if let Some(p) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
        Ok(SocketSpec::Unix(p.into()))
    } else {
        Err(format!("{s:?}: expected udp:HOST:PORT or unix:PATH"))
    }
}

/// `xtt client connect` arguments.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The provisioned client directory.
    #[arg(long, default_value = ".", visible_aliases = ["client-dir", "xtt-dir"])]
    dir: PathBuf,
    /// Server host (or --server).
    #[arg(short = 'a', long = "serverhost", default_value = "127.0.0.1")]
    serverhost: String,
    /// Server port, TCP and UDP (or --server).
    #[arg(short = 'p', long = "port", default_value_t = 4444)]
    port: u16,
    /// The server as HOST:PORT (an IPv6 address in brackets), instead of -a and -p.
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::client::parse_server, conflicts_with_all = ["serverhost", "port"])]
    server: Option<crate::client::ServerAddr>,
    /// Transport.
    #[arg(long, value_enum, default_value_t = TransportArg::Tcp)]
    transport: TransportArg,
    /// Shorthand for --transport udp.
    #[arg(long, conflicts_with = "transport")]
    udp: bool,
    /// Suite: a C name or 1-6 (5 and 6 authenticate records without encrypting them).
    #[arg(short = 's', long = "suitespec", default_value = "X25519_LRSW_ECDSAP256_CHACHA20POLY1305_SHA512", value_parser = parse_suite)]
    suitespec: SuiteSpec,
    /// Payload type of the records sent.
    #[arg(long, value_enum, default_value_t = PayloadTypeArg::QueueProtocol)]
    payload_type: PayloadTypeArg,
    /// Exchange records with a local socket instead of stdin/stdout: udp:ADDR or unix:PATH.
    #[arg(long, value_name = "SPEC", value_parser = parse_socket)]
    socket: Option<SocketSpec>,
    /// stdin in chunks as they arrive, payloads printed unchanged (no line framing).
    #[arg(long, conflicts_with = "socket")]
    raw: bool,
    /// The ClientID file [default: DIR/client_id.txt].
    #[arg(short = 'i', long = "assignedid", value_name = "FILE")]
    assignedid: Option<PathBuf>,
    /// The long-term key pair [default: DIR/longterm_priv.bin].
    #[arg(short = 'v', long = "longtermpriv", value_name = "FILE")]
    longtermpriv: Option<PathBuf>,
    /// Root certificate [default: DIR/root_cert.bin].
    #[arg(short = 'e', long = "rcert", value_name = "FILE")]
    rcert: Option<PathBuf>,
    /// Seconds each network step may take (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// After the input ends, wait this many milliseconds (from the last record received) for
    /// the server's last records.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    linger_ms: u64,
    /// Give up after this many failed reconnection attempts in a row.
    #[arg(long, value_name = "N", default_value_t = 10)]
    reconnect_attempts: u32,
}

/// The identity from the client directory.
fn load_identity(a: &ConnectArgs) -> anyhow::Result<SessionClientConfig> {
    let file = |o: &Option<PathBuf>, name: &str| o.clone().unwrap_or_else(|| a.dir.join(name));
    let id_path = file(&a.assignedid, client_dir::CLIENT_ID);
    let key_path = file(&a.longtermpriv, client_dir::LONGTERM_PRIV);
    let root_path = file(&a.rcert, client_dir::ROOT_CERT);
    let hint = |p: &Path| {
        format!(
            "{}: reading this device's identity (run `xtt client provision --dir {}` first)",
            p.display(),
            a.dir.display()
        )
    };
    // A re-provisioning that a crash interrupted after its commit point completes first.
    xtt_files::identity::finish_interrupted(&key_path).with_context(|| hint(&key_path))?;
    Ok(SessionClientConfig {
        roots: Arc::new(certs::read_root(&root_path).with_context(|| hint(&root_path))?),
        client_id: client_id::read(&id_path).with_context(|| hint(&id_path))?,
        longterm_key: keypair::read(&key_path).with_context(|| hint(&key_path))?,
    })
}

pub(crate) fn run(a: ConnectArgs) -> anyhow::Result<()> {
    let identity = load_identity(&a)?;
    crate::block_on(connect(a, identity))
}

/// The local side of the stream.
enum Endpoint {
    /// Lines or chunks from a reader thread; records to stdout.
    Stdio {
        input: mpsc::Receiver<Vec<u8>>,
        raw: bool,
    },
    Udp {
        socket: tokio::net::UdpSocket,
        peer: Option<SocketAddr>,
    },
    Unix {
        socket: tokio::net::UnixDatagram,
        path: PathBuf,
        peer: Option<PathBuf>,
    },
}

impl Endpoint {
    async fn open(a: &ConnectArgs) -> anyhow::Result<Self> {
        Ok(match &a.socket {
            None => Self::Stdio {
                input: spawn_stdin_reader(a.raw),
                raw: a.raw,
            },
            Some(SocketSpec::Udp(addr)) => Self::Udp {
                socket: tokio::net::UdpSocket::bind(addr)
                    .await
                    .with_context(|| format!("binding UDP {addr}"))?,
                peer: None,
            },
            Some(SocketSpec::Unix(path)) => {
                if path.exists() {
                    bail!(
                        "{}: already exists (another client running? remove it if not)",
                        path.display()
                    );
                }
                Self::Unix {
                    socket: tokio::net::UnixDatagram::bind(path)
                        .with_context(|| format!("creating Unix socket {}", path.display()))?,
                    path: path.clone(),
                    peer: None,
                }
            }
        })
    }

    /// The next payload to send; `None` when the input has ended. Cancel-safe.
    async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; MAX_PAYLOAD_LEN];
        match self {
            Self::Stdio { input, .. } => Ok(input.recv().await),
            Self::Udp { socket, peer } => {
                let (n, from) = socket.recv_from(&mut buf).await?;
                *peer = Some(from);
                buf.truncate(n);
                Ok(Some(buf))
            }
            Self::Unix { socket, peer, .. } => {
                let (n, from) = socket.recv_from(&mut buf).await?;
                *peer = from.as_pathname().map(Path::to_path_buf);
                buf.truncate(n);
                Ok(Some(buf))
            }
        }
    }

    /// Hands one payload from the server to the local side.
    async fn deliver(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        match self {
            Self::Stdio { raw, .. } => {
                use std::io::Write;
                let mut out = crate::output::Stdout::lock();
                out.write_all(payload)?;
                if !*raw {
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
            Self::Udp { socket, peer } => match peer {
                Some(p) => {
                    socket.send_to(payload, *p).await?;
                }
                None => tracing::warn!("record from the server before any local datagram: dropped"),
            },
            Self::Unix { socket, peer, .. } => match peer {
                Some(p) => {
                    if let Err(e) = socket.send_to(payload, &*p).await {
                        tracing::warn!(error = %e, "cannot deliver to {}", p.display());
                    }
                }
                None => tracing::warn!(
                    "record from the server, but no bound local sender to give it to: dropped"
                ),
            },
        }
        Ok(())
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Self::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads stdin on a thread of its own (lines without their newline, or chunks), so the
/// session loop can wait on it next to the network.
fn spawn_stdin_reader(raw: bool) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        use std::io::{BufRead, Read};
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut buf = Vec::new();
            let n = if raw {
                buf.resize(16 * 1024, 0);
                input.read(&mut buf)
            } else {
                input.read_until(b'\n', &mut buf)
            };
            match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if !raw && buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    if tx.blocking_send(buf).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// The session loop's view of the server.
struct Link {
    server: SocketAddr,
    identity: SessionClientConfig,
    options: SessionClientOptions,
    client: SessionClient,
    /// Failed reconnection attempts in a row, and the most allowed.
    attempts: u32,
    max_attempts: u32,
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "TCP",
        Transport::Udp => "UDP",
    }
}

impl Link {
    async fn handshake(
        server: SocketAddr,
        identity: &SessionClientConfig,
        options: &SessionClientOptions,
    ) -> anyhow::Result<SessionClient> {
        let client = SessionClient::connect(server, identity.clone(), options.clone(), None)
            .await
            .with_context(|| {
                format!(
                    "session handshake with {server} over {} as ClientID {}",
                    transport_name(options.transport),
                    identity.client_id
                )
            })?;
        eprintln!(
            "session {} with {server} over {} as ClientID {} ({})",
            hex::encode(client.session().session_id().0),
            transport_name(options.transport),
            identity.client_id,
            options.suite.name()
        );
        Ok(client)
    }

    /// A new connection (or UDP socket) for the same session, retried with backoff.
    async fn reconnect(&mut self, why: &SessionClientError) -> anyhow::Result<()> {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.client.reconnect().await {
                Ok(()) => {
                    self.attempts = 0;
                    eprintln!(
                        "path to {} lost ({why}); reconnected from {}, same session {}",
                        self.server,
                        self.client
                            .local_addr()
                            .map_or_else(|_| "?".into(), |a| a.to_string()),
                        hex::encode(self.client.session().session_id().0)
                    );
                    return Ok(());
                }
                Err(e) => {
                    self.attempts += 1;
                    if self.attempts >= self.max_attempts {
                        bail!("cannot reach {} again: {e}", self.server);
                    }
                    tracing::info!(error = %e, "reconnect failed; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The server has forgotten the session: a new handshake, same identity, retried with
    /// backoff like [`Self::reconnect`] (the server may be restarting, the path may be down, and
    /// over UDP a handshake step can fail on an unauthenticated Error).
    async fn rehandshake(&mut self) -> anyhow::Result<()> {
        eprintln!("the session is over (unknown to the server, or used up); new session handshake");
        let mut wait = Duration::from_millis(100);
        loop {
            match Self::handshake(self.server, &self.identity, &self.options).await {
                Ok(client) => {
                    self.client = client;
                    self.attempts = 0;
                    return Ok(());
                }
                Err(e) => {
                    self.attempts += 1;
                    if self.attempts >= self.max_attempts {
                        return Err(e.context(format!(
                            "no new session with {} after {} attempts",
                            self.server, self.attempts
                        )));
                    }
                    tracing::info!("session handshake failed ({e:#}); retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Repairs the path after `e`; errors that no new path can fix end the program.
    async fn recover(&mut self, e: SessionClientError) -> anyhow::Result<()> {
        match e {
            SessionClientError::SessionUnknown => self.rehandshake().await,
            SessionClientError::Closed
            | SessionClientError::Io(_)
            | SessionClientError::Timeout
            | SessionClientError::Connect(_) => self.reconnect(&e).await,
            e => Err(e.into()),
        }
    }

    /// Sends one record; on a broken path, repairs it and sends once more.
    async fn send(&mut self, payload_type: PayloadType, payload: &[u8]) -> anyhow::Result<()> {
        match self.client.send(payload_type, payload).await {
            Ok(()) => Ok(()),
            // 2^32 records sent: the spec's answer is a new session handshake.
            Err(SessionClientError::Record(RecordError::RekeyRequired)) => {
                self.rehandshake().await?;
                Ok(self.client.send(payload_type, payload).await?)
            }
            Err(SessionClientError::Record(e)) => Err(e.into()),
            Err(e) => {
                self.recover(e).await?;
                Ok(self.client.send(payload_type, payload).await?)
            }
        }
    }
}

async fn connect(a: ConnectArgs, identity: SessionClientConfig) -> anyhow::Result<()> {
    let target =
        crate::client::ServerAddr::chosen(a.server.as_ref(), &a.serverhost, a.port).to_string();
    let server = tokio::net::lookup_host(&target)
        .await
        .with_context(|| format!("resolving {target}"))?
        .next()
        .with_context(|| format!("{target}: no address"))?;
    let base = match TransportArg::chosen(a.transport, a.udp) {
        TransportArg::Tcp => SessionClientOptions::tcp(),
        TransportArg::Udp => SessionClientOptions::udp(),
    };
    let options = SessionClientOptions {
        suite: a.suitespec,
        timeout: Duration::from_secs(a.timeout.max(1)),
        ..base
    };
    let payload_type = PayloadType::from(a.payload_type);
    let mut endpoint = Endpoint::open(&a).await?;
    let client = Link::handshake(server, &identity, &options).await?;
    let mut link = Link {
        server,
        identity,
        options,
        client,
        attempts: 0,
        max_attempts: a.reconnect_attempts.max(1),
    };
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let linger = Duration::from_millis(a.linger_ms);
    let mut input_open = true;
    let mut quiet_until = tokio::time::Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    loop {
        tokio::select! {
            // `recv` is cancel-safe: losing the race to input drops no bytes.
            got = link.client.recv() => match got {
                Ok(record) => {
                    received += 1;
                    endpoint.deliver(&record.payload).await?;
                    quiet_until = tokio::time::Instant::now() + linger;
                }
                // Nothing from the server for a while: normal for an idle session.
                Err(SessionClientError::Timeout) => {}
                Err(e) => link.recover(e).await?,
            },
            next = endpoint.next(), if input_open => match next? {
                Some(payload) if payload.len() > MAX_PAYLOAD_LEN => eprintln!(
                    "input of {} bytes skipped: a record carries at most {MAX_PAYLOAD_LEN}",
                    payload.len()
                ),
                Some(payload) => {
                    link.send(payload_type, &payload).await?;
                    sent += 1;
                }
                None => {
                    input_open = false;
                    quiet_until = tokio::time::Instant::now() + linger;
                }
            },
            () = tokio::time::sleep_until(quiet_until), if !input_open => break,
            // SIGINT/SIGTERM end a socket-fed client cleanly (its Unix socket file is removed).
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    eprintln!("input ended: {sent} record(s) sent, {received} received");
    Ok(())
}
