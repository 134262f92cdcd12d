//! Several servers, one deployment: two `XttServer`s in one process on one PostgreSQL database
//! (the throwaway server `scripts/test.sh` starts; these tests fail without it), sharing a
//! cookie key file. A ClientAttest may land on another node than its ClientInit, and is
//! accepted once deployment-wide.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use common::{run, test_config, wait_idle, Fixture, BASENAME};
use rand_core::{OsRng, RngCore};
use tokio::net::TcpStream;
use xtt_proto::client::{ClientConfig, ClientHandshake};
use xtt_proto::codec::MAX_HANDSHAKE_LEN;
use xtt_proto::session::SessionClientHandshake;
use xtt_proto::{ClientId, SuiteSpec};
use xtt_registry::sessions::open_session_store;
use xtt_registry::Registry;
use xtt_server::bench::register_session_devices;
use xtt_server::framing::{read_message, write_message, FrameError};
use xtt_server::sessions::shared::{SharedOptions, StorageKey};
use xtt_server::{
    add_group, Echo, SessionClient, SessionClientError, SessionClientOptions, SessionOptions,
    XttServer,
};

const T: Duration = Duration::from_secs(10);

fn fresh_database_url() -> String {
    let Ok(admin_url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
        panic!("XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)")
    };
    let config: postgres::Config = admin_url.parse().unwrap();
    let mut admin = config.connect(postgres::NoTls).unwrap();
    let name = format!("xtt_nodes_{:016x}", OsRng.next_u64());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}?{query}")
}

/// Connects, sends a fresh ClientInit, ignores the answer, then sends `client_attest` (made for
/// a cookie another connection got) and returns the server's answer.
async fn attest_on(
    addr: std::net::SocketAddr,
    config: ClientConfig,
    client_attest: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (_st, ci) = ClientHandshake::start(config, SuiteSpec::ALL[0], ClientId::NULL, &mut OsRng);
    write_message(&mut s, &ci, T).await.unwrap();
    let _sia = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
    write_message(&mut s, client_attest, T).await.unwrap();
    read_message(&mut s, MAX_HANDSHAKE_LEN, T).await
}

/// A cookie key file (0600) in `dir`, as every node of one deployment would be given.
fn cookie_key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let key_file = dir.join("cookie.keys");
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    std::fs::write(&key_file, format!("7 {}\n", hex::encode(secret))).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    key_file
}

/// One node's configuration and keys: cookie keys from the shared `key_file`, and a cookie
/// secret of its own (which differs per node: only the shared file makes them agree).
fn node_settings(
    fx: &Fixture,
    dir: &std::path::Path,
    key_file: &std::path::Path,
) -> (xtt_server::ServerConfig, xtt_server::ServerKeys) {
    let mut config = test_config(dir);
    config.metrics.listen = None;
    config.cookies.key_file = Some(key_file.to_path_buf());
    let mut keys = fx.keys();
    OsRng.fill_bytes(keys.cookie_secret.as_mut_slice());
    (config, keys)
}

/// The tests' runtime, built outside it: the PostgreSQL client blocks, so registries are
/// opened and dropped on the test's own thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_client_attest_lands_on_another_node_and_is_accepted_once() {
    let fx = Fixture::new();
    let url = fresh_database_url();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cookie_key_file(dir.path());

    // Two pools on one database, as two server processes would have. Opened (and dropped)
    // outside the async runtime: the PostgreSQL client blocks.
    let reg_a = xtt_registry::open_storage(&url).unwrap();
    add_group(&*reg_a, &fx.gpk(), BASENAME).unwrap();
    let reg_b = xtt_registry::open_storage(&url).unwrap();
    let members = fx.members(1);

    let rt = runtime();
    rt.block_on(async {
        let node = |reg: Arc<dyn Registry>| {
            let (config, keys) = node_settings(&fx, dir.path(), &key_file);
            async move { run(XttServer::bind(config, keys, reg).await.unwrap()) }
        };
        let a = node(reg_a.clone()).await;
        let b = node(reg_b.clone()).await;
        let client = ClientConfig {
            roots: Arc::new(fx.root.clone()),
            daa: members[0].clone(),
            longterm_key: None,
        };

        // ClientInit to A ...
        let mut s = TcpStream::connect(a.addr).await.unwrap();
        let (st, ci) = ClientHandshake::start(
            client.clone(),
            SuiteSpec::ALL[0],
            ClientId::NULL,
            &mut OsRng,
        );
        write_message(&mut s, &ci, T).await.unwrap();
        let sia = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
        drop(s);
        let (st, client_attest) = st.handle_server_attest(&sia, &mut OsRng).unwrap();
        // ... ClientAttest to B: B opens A's cookie and finishes A's handshake.
        let finished = attest_on(b.addr, client.clone(), &client_attest)
            .await
            .expect("B accepts a cookie A issued");
        let provisioned = st.handle_server_finished(&finished).unwrap();
        assert!(!provisioned.client_id.is_null());

        // The same ClientAttest replayed to A: A never saw it accepted, the registry did.
        let replayed = attest_on(a.addr, client.clone(), &client_attest).await;
        assert!(
            matches!(
                replayed,
                Err(FrameError::Protocol(xtt_proto::Error::ReceivedErrorMessage))
            ),
            "replay to the other node refused, got {replayed:?}"
        );
        // And to B (its own replay guard refuses it before any DAA work).
        let replayed = attest_on(b.addr, client, &client_attest).await;
        assert!(
            matches!(
                replayed,
                Err(FrameError::Protocol(xtt_proto::Error::ReceivedErrorMessage))
            ),
            "replay to the node that accepted it refused, got {replayed:?}"
        );

        wait_idle(&a.handle).await;
        wait_idle(&b.handle).await;
        assert_eq!(
            a.handle
                .metrics()
                .handshakes_count("failed", "replayed_cookie"),
            1
        );
        assert_eq!(b.handle.metrics().handshakes_count("ok", "none"), 1);
        assert_eq!(
            b.handle
                .metrics()
                .handshakes_count("failed", "replayed_cookie"),
            1
        );
        a.stop().await;
        b.stop().await;
    });
    drop(rt);
    assert_eq!(reg_a.identity_count().unwrap(), 1);
}

#[test]
fn a_session_flight_replayed_to_another_node_sharing_cookie_keys_is_refused() {
    let fx = Fixture::new();
    let url = fresh_database_url();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cookie_key_file(dir.path());
    let reg_a = xtt_registry::open_storage(&url).unwrap();
    let (group_id, _) = add_group(&*reg_a, &fx.gpk(), BASENAME).unwrap();
    let reg_b = xtt_registry::open_storage(&url).unwrap();
    let device = register_session_devices(&*reg_a, group_id, Arc::new(fx.root.clone()), 1)
        .unwrap()
        .remove(0);

    let rt = runtime();
    rt.block_on(async {
        // Sessions on each node alone (no shared session store), cookie keys from one file.
        let node = |reg: Arc<dyn Registry>| {
            let (config, keys) = node_settings(&fx, dir.path(), &key_file);
            async move {
                let mut server = XttServer::bind(config, keys, reg).await.unwrap();
                server
                    .enable_sessions(SessionOptions::new(Arc::new(Echo)))
                    .await
                    .unwrap();
                run(server)
            }
        };
        let a = node(reg_a.clone()).await;
        let b = node(reg_b.clone()).await;

        let mut s = TcpStream::connect(a.addr).await.unwrap();
        let (st, ci) = SessionClientHandshake::start(device.clone(), SuiteSpec::ALL[0], &mut OsRng);
        write_message(&mut s, &ci, T).await.unwrap();
        let sia = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
        let (st, flight) = st.handle_server_attest(&sia, None, &mut OsRng).unwrap();
        write_message(&mut s, &flight, T).await.unwrap();
        let finished = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
        st.handle_server_finished(&finished).unwrap();

        // The flight again, on B: B opens A's cookie, but the registry knows it was used.
        let mut r = TcpStream::connect(b.addr).await.unwrap();
        let (_st, ci) =
            SessionClientHandshake::start(device.clone(), SuiteSpec::ALL[0], &mut OsRng);
        write_message(&mut r, &ci, T).await.unwrap();
        read_message(&mut r, MAX_HANDSHAKE_LEN, T).await.unwrap();
        write_message(&mut r, &flight, T).await.unwrap();
        let replayed = read_message(&mut r, MAX_HANDSHAKE_LEN, T).await;
        assert!(
            matches!(
                replayed,
                Err(FrameError::Protocol(xtt_proto::Error::ReceivedErrorMessage))
            ),
            "B accepted a session flight A had accepted: {replayed:?}"
        );
        assert_eq!(b.handle.outbox().unwrap().session_count(), 0);
        assert_eq!(a.handle.outbox().unwrap().session_count(), 1);
        drop((s, r));
        a.stop().await;
        b.stop().await;
    });
    drop(rt);
}

/// A TCP relay to the test PostgreSQL server that can be cut: every connection through it, and
/// the listener, close at once.
struct Relay {
    port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    accept: tokio::task::JoinHandle<()>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(socket: std::path::PathBuf) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let c = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let socket = socket.clone();
                c.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::UnixStream::connect(&socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self {
            port,
            tasks: Vec::new(),
            accept,
            conns,
        }
    }

    fn cut(&mut self) {
        self.accept.abort();
        for t in self
            .conns
            .lock()
            .unwrap()
            .drain(..)
            .chain(self.tasks.drain(..))
        {
            t.abort();
        }
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut text))
        .await
        .unwrap()
        .unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

/// A relay on `rt` to the database at `url` (the test server's unix socket), and a URL of the
/// same database through it.
fn relayed(rt: &tokio::runtime::Runtime, url: &str) -> (Relay, String) {
    let config: postgres::Config = url.parse().unwrap();
    let Some(postgres::config::Host::Unix(dir)) = config.get_hosts().first() else {
        panic!("the test server is reached over its unix socket")
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let socket = dir.join(format!(".s.PGSQL.{port}"));
    let (user, db) = (config.get_user().unwrap(), config.get_dbname().unwrap());
    let relay = rt.block_on(Relay::start(socket));
    let via_relay = format!(
        "postgres://{user}@127.0.0.1:{}/{db}?connect_timeout=2",
        relay.port
    );
    (relay, via_relay)
}

#[test]
fn healthz_reports_an_unreachable_database_with_503() {
    let fx = Fixture::new();
    let url = fresh_database_url();
    let rt = runtime();
    let (mut relay, via_relay) = relayed(&rt, &url);
    let registry = xtt_registry::open_storage(&via_relay).unwrap();
    add_group(&*registry, &fx.gpk(), BASENAME).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let server = run(
            XttServer::bind(test_config(tmp.path()), fx.keys(), registry.clone())
                .await
                .unwrap(),
        );
        let metrics = server.metrics_addr.unwrap();
        let (status, body) = get(metrics, "/healthz").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["storage"], "ok");

        relay.cut();
        let (status, body) = get(metrics, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["storage"], "unreachable");
        assert!(!body["reason"].as_str().unwrap().is_empty(), "{body}");
        server.stop().await;
    });
    drop(rt);
    drop(registry);
}

/// What a newer node's migration leaves in a version table (`xtt_schema_version` or
/// `xtt_session_schema_version`): a row one above the newest. Returns (newest before, new).
async fn newer_version_recorded(url: &str, table: &'static str) -> (i64, i64) {
    let config: postgres::Config = url.parse().unwrap();
    // The blocking client runs its own runtime: not on this one's threads.
    tokio::task::spawn_blocking(move || {
        let mut c = config.connect(postgres::NoTls).unwrap();
        let supported: i64 = c
            .query_one(&format!("SELECT max(version)::bigint FROM {table}"), &[])
            .unwrap()
            .get(0);
        c.execute(
            &format!("INSERT INTO {table} (version) VALUES ($1)"),
            &[&(supported + 1)],
        )
        .unwrap();
        (supported, supported + 1)
    })
    .await
    .unwrap()
}

/// A newer xtt migrates the shared database while this node runs: the node keeps running on a
/// schema it does not know, and its /healthz says so (503, with what to do) where it said 200.
#[test]
fn healthz_reports_a_database_migrated_by_a_newer_node_with_503() {
    let fx = Fixture::new();
    let url = fresh_database_url();
    let rt = runtime();
    let registry = xtt_registry::open_storage(&url).unwrap();
    add_group(&*registry, &fx.gpk(), BASENAME).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let server = run(
            XttServer::bind(test_config(tmp.path()), fx.keys(), registry.clone())
                .await
                .unwrap(),
        );
        let metrics = server.metrics_addr.unwrap();
        let (status, body) = get(metrics, "/healthz").await;
        assert_eq!(status, 200, "{body}");

        let (supported, newer) = newer_version_recorded(&url, "xtt_schema_version").await;
        assert_eq!(supported, xtt_registry::POSTGRES_SCHEMA_VERSION);
        for _ in 0..2 {
            let (status, body) = get(metrics, "/healthz").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["status"], "unavailable");
            assert_eq!(body["storage"], "schema");
            assert_eq!(
                body["reason"].as_str().unwrap(),
                format!(
                    "the registry database was migrated to schema version {newer} by a newer \
                     xtt; this node supports up to {}: restart it with the newer version",
                    xtt_registry::POSTGRES_SCHEMA_VERSION
                ),
                "{body}"
            );
        }
        server.stop().await;
    });
    drop(rt);
    drop(registry);
}

/// UDP options that give up within about two seconds: a refused flight is answered with the
/// Error message (or, once its cookie was tried, dropped), never with a session.
fn udp_quick() -> SessionClientOptions {
    SessionClientOptions {
        retransmit_after: Duration::from_millis(300),
        max_sends: 3,
        ..SessionClientOptions::udp()
    }
}

/// Asserts that a session handshake after the database was cut got no session: over TCP the
/// server's Error message; over UDP that, or no answer at all.
fn assert_refused(what: &str, got: Result<SessionClient, SessionClientError>) {
    match got {
        Err(SessionClientError::Handshake(xtt_proto::Error::ReceivedErrorMessage)) => {}
        Err(SessionClientError::Timeout) if what.contains("udp") => {}
        other => panic!(
            "{what}: a session handshake with the store unreachable must be refused, got {other:?}"
        ),
    }
}

/// After the database was cut, a session over TCP and one over UDP are refused: the node counts
/// both as failed and still holds only the one session made before the cut.
async fn expect_refusals_after_cut(
    node: &common::Running,
    device: &xtt_proto::session::SessionClientConfig,
    why: &str,
) {
    let tcp =
        SessionClient::connect(node.addr, device.clone(), SessionClientOptions::tcp(), None).await;
    assert_refused("tcp", tcp);
    let udp = SessionClient::connect(node.addr, device.clone(), udp_quick(), None).await;
    assert_refused("udp", udp);

    wait_idle(&node.handle).await;
    let metrics = node.handle.metrics();
    assert_eq!(metrics.session_handshakes_count("tcp", "ok"), 1);
    assert_eq!(metrics.session_handshakes_count("tcp", "failed"), 1);
    assert_eq!(metrics.session_handshakes_count("udp", "ok"), 0);
    assert_eq!(metrics.session_handshakes_count("udp", "failed"), 1);
    assert_eq!(node.handle.outbox().unwrap().session_count(), 1, "{why}");
}

/// A node whose cookie keys come from a key file claims each session flight in the registry
/// (deployment-wide anti-replay) before it answers. When that claim cannot be stored (the
/// database is gone), the handshake must fail closed: accepting it would let the same flight,
/// replayed to another node, make a second session with the same keys.
#[test]
fn a_session_handshake_is_refused_when_its_cookie_claim_cannot_be_stored() {
    let fx = Fixture::new();
    let url = fresh_database_url();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cookie_key_file(dir.path());
    let rt = runtime();
    let (mut relay, via_relay) = relayed(&rt, &url);
    let registry = xtt_registry::open_storage(&via_relay).unwrap();
    let (group_id, _) = add_group(&*registry, &fx.gpk(), BASENAME).unwrap();
    let device = register_session_devices(&*registry, group_id, Arc::new(fx.root.clone()), 1)
        .unwrap()
        .remove(0);
    rt.block_on(async {
        let (config, keys) = node_settings(&fx, dir.path(), &key_file);
        let mut server = XttServer::bind(config, keys, registry.clone())
            .await
            .unwrap();
        server
            .enable_sessions(SessionOptions::new(Arc::new(Echo)))
            .await
            .unwrap();
        let node = run(server);
        // One session while the database is there: the claim path works, and the device's key
        // is now in the node's key cache (5 s), so the handshakes below get as far as the claim
        // rather than failing at the key lookup. (Were they more than 5 s later, they would be
        // refused at the lookup instead: still refused, but the claim would go unchecked; the
        // metrics below cannot tell the two apart. They take well under a second.)
        let primed =
            SessionClient::connect(node.addr, device.clone(), SessionClientOptions::tcp(), None)
                .await
                .expect("a session while the database is reachable");
        assert_eq!(node.handle.outbox().unwrap().session_count(), 1);

        relay.cut();
        expect_refusals_after_cut(&node, &device, "no session made without its cookie claim").await;
        drop(primed);
        node.stop().await;
    });
    drop(rt);
    drop(registry);
}

/// With a shared session store, a new session is written there (with its cookie) before the
/// client is answered. When that write fails (the store's database is gone), the handshake must
/// fail closed: the session would exist on this node only, and its cookie would not be marked
/// used for the other nodes.
/// A node (echo application) that shares its sessions through `store`, under a fresh key.
async fn node_sharing_sessions(
    fx: &Fixture,
    dir: &std::path::Path,
    registry: Arc<dyn Registry>,
    store: Arc<dyn xtt_registry::sessions::SessionStore>,
) -> common::Running {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    let key = Arc::new(StorageKey::from_secret(&secret));
    let mut server = XttServer::bind(test_config(dir), fx.keys(), registry)
        .await
        .unwrap();
    let mut options = SessionOptions::new(Arc::new(Echo));
    options.shared = Some(SharedOptions::new(store, key));
    server.enable_sessions(options).await.unwrap();
    run(server)
}

#[test]
fn a_session_handshake_is_refused_when_the_shared_session_store_is_unreachable() {
    let fx = Fixture::new();
    let url = fresh_database_url();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (mut relay, via_relay) = relayed(&rt, &url);
    // The registry directly (the device's key stays readable), the session store through the
    // relay.
    let registry = xtt_registry::open_storage(&url).unwrap();
    let (group_id, _) = add_group(&*registry, &fx.gpk(), BASENAME).unwrap();
    let device = register_session_devices(&*registry, group_id, Arc::new(fx.root.clone()), 1)
        .unwrap()
        .remove(0);
    let store = open_session_store(&via_relay, 2).unwrap();
    rt.block_on(async {
        let node = node_sharing_sessions(&fx, dir.path(), registry.clone(), store.clone()).await;
        let primed =
            SessionClient::connect(node.addr, device.clone(), SessionClientOptions::tcp(), None)
                .await
                .expect("a session while the store is reachable");

        relay.cut();
        expect_refusals_after_cut(
            &node,
            &device,
            "no session made without its row in the shared store",
        )
        .await;
        drop(primed);
        node.stop().await;
    });
    drop(rt);
    drop((registry, store));
}

/// A node sharing sessions probes its session store too: when a newer xtt migrates the session
/// tables while the node runs (the registry's tables untouched), /healthz says 503
/// `sessions-schema` with what to do where it said 200; when the store's database cannot be
/// reached, 503 `sessions`.
#[test]
fn healthz_reports_session_tables_migrated_by_a_newer_node_with_503() {
    let fx = Fixture::new();
    let url = fresh_database_url();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (mut relay, via_relay) = relayed(&rt, &url);
    // The registry directly, the session store through the relay (cut at the end).
    let registry = xtt_registry::open_storage(&url).unwrap();
    add_group(&*registry, &fx.gpk(), BASENAME).unwrap();
    let store = open_session_store(&via_relay, 2).unwrap();
    rt.block_on(async {
        let node = node_sharing_sessions(&fx, dir.path(), registry.clone(), store.clone()).await;
        let metrics = node.metrics_addr.unwrap();
        let (status, body) = get(metrics, "/healthz").await;
        assert_eq!(status, 200, "{body}");
        assert!(body["sessions_ms"].is_number(), "{body}");

        let (supported, newer) = newer_version_recorded(&url, "xtt_session_schema_version").await;
        for _ in 0..2 {
            let (status, body) = get(metrics, "/healthz").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["status"], "unavailable");
            assert_eq!(body["storage"], "sessions-schema");
            assert_eq!(
                body["reason"].as_str().unwrap(),
                format!(
                    "the shared session tables were migrated to schema version {newer} by a \
                     newer xtt; this node supports up to {supported}: restart it with the \
                     newer version"
                ),
                "{body}"
            );
        }

        relay.cut();
        let (status, body) = get(metrics, "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["storage"], "sessions");
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.starts_with("session store: "), "{body}");
        assert!(!reason.contains("127.0.0.1"), "no storage URL: {body}");
        node.stop().await;
    });
    drop(rt);
    drop((registry, store));
}
