//! The storage conformance suite and PostgreSQL-specific checks, against a real server.
//!
//! `scripts/test.sh` starts a throwaway PostgreSQL cluster and exports its URL as
//! `XTT_TEST_POSTGRES_URL`; these tests fail (never skip) without it. Each registry gets a
//! database of its own, so the tests run in parallel on one cluster.

use std::sync::Arc;

use rand_core::{OsRng, RngCore};
use xtt_proto::ClientId;
use xtt_registry::conformance::{run_all, sample_group, sample_registration};
use xtt_registry::{
    open_storage, PostgresRegistry, Registry, RegistryError, POSTGRES_SCHEMA_VERSION,
};

fn admin_config() -> postgres::Config {
    let Ok(url) = std::env::var("XTT_TEST_POSTGRES_URL") else {
        panic!(
            "XTT_TEST_POSTGRES_URL is not set: run scripts/test.sh, which starts a throwaway \
             PostgreSQL server for these tests"
        )
    };
    url.parse()
        .expect("XTT_TEST_POSTGRES_URL is a PostgreSQL URL")
}

/// A new, empty database on the test server; returns its connection configuration.
fn fresh_database() -> postgres::Config {
    let mut config = admin_config();
    let mut admin = config
        .connect(postgres::NoTls)
        .expect("connect to the test PostgreSQL server");
    let name = format!("xtt_test_{:016x}", OsRng.next_u64());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    config.dbname(&name);
    config
}

/// Returns once a session of this database waits for a lock (polled, at most 20 s): the
/// registration started on another thread is blocked on a transaction the test holds open.
fn wait_until_blocked_on_a_lock(watcher: &mut postgres::Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the registration never blocked on the open transaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn open_fresh() -> (postgres::Config, Arc<PostgresRegistry>) {
    let config = fresh_database();
    let reg = PostgresRegistry::from_config(config.clone(), 8).expect("open the registry");
    (config, Arc::new(reg))
}

#[test]
fn postgres_backend_passes_the_conformance_suite() {
    run_all(&|| open_fresh().1 as Arc<dyn Registry>);
}

#[test]
fn two_pools_on_one_database_never_assign_the_same_id() {
    // Two registries (as two server nodes would have) racing on one database, for one
    // requested id and for fresh ids.
    let (config, a) = open_fresh();
    let b = Arc::new(PostgresRegistry::from_config(config, 4).unwrap());
    let g = sample_group();
    a.add_group(&g).unwrap();
    let wanted = ClientId([7; 16]);
    let handles: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|reg| {
            let gid = g.group_id;
            std::thread::spawn(move || {
                let mut granted = 0;
                for _ in 0..10 {
                    reg.register(&sample_registration(&gid, ClientId::NULL))
                        .unwrap();
                    if reg.register(&sample_registration(&gid, wanted)).is_ok() {
                        granted += 1;
                    }
                }
                granted
            })
        })
        .collect();
    let granted: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(granted, 1, "the requested id is granted exactly once");
    assert_eq!(a.identity_count().unwrap(), 41);
    assert_eq!(b.identities().unwrap().len(), 41);
}

#[test]
fn the_same_new_device_racing_on_two_nodes_gets_one_id() {
    // Both nodes register the same pseudonym at once: one id, one new device, the other sees
    // a returning device; the id the loser drew is not left taken-but-unassigned for it.
    let (config, a) = open_fresh();
    let b = Arc::new(PostgresRegistry::from_config(config, 2).unwrap());
    let g = sample_group();
    a.add_group(&g).unwrap();
    for _ in 0..20 {
        let r = sample_registration(&g.group_id, ClientId::NULL);
        let (ra, rb) = (r.clone(), r);
        let (a2, b2) = (a.clone(), b.clone());
        let ta = std::thread::spawn(move || a2.register(&ra).unwrap());
        let tb = std::thread::spawn(move || b2.register(&rb).unwrap());
        let (x, y) = (ta.join().unwrap(), tb.join().unwrap());
        assert_eq!(x.client_id, y.client_id);
        assert!(x.new_device ^ y.new_device, "exactly one saw a new device");
    }
    assert_eq!(a.identity_count().unwrap(), 20);
}

#[test]
fn a_node_losing_the_race_for_a_new_device_returns_the_winners_id() {
    // Deterministic version of the race: another node's registration of the device is held
    // uncommitted while ours runs; ours must wait on the device constraint, give back the id it
    // claimed, and answer with the winner's id as a returning device.
    use postgres::types::Type;
    let (config, reg) = open_fresh();
    let g = sample_group();
    reg.add_group(&g).unwrap();
    let r = sample_registration(&g.group_id, ClientId::NULL);
    let winner_id = ClientId([0x61; 16]);

    let mut other = config.connect(postgres::NoTls).unwrap();
    let mut tx = other.transaction().unwrap();
    let none: Option<&[u8]> = None;
    tx.query_typed(
        "SELECT * FROM xtt_register_batch($1, $2, $3, $4, $5, $6)",
        &[
            (&vec![&g.group_id.0[..]], Type::BYTEA_ARRAY),
            (&vec![&r.pseudonym.0[..]], Type::BYTEA_ARRAY),
            (&vec![none], Type::BYTEA_ARRAY),
            (&vec![&r.longterm_key.as_bytes()[..]], Type::BYTEA_ARRAY),
            (&vec![1_i64], Type::INT8_ARRAY),
            (&vec![&winner_id.0[..]], Type::BYTEA_ARRAY),
        ],
    )
    .unwrap();

    let ours = {
        let (reg, r) = (reg.clone(), r.clone());
        std::thread::spawn(move || reg.register(&r))
    };
    // Wait until our registration is blocked on the other transaction's lock.
    let mut watcher = config.connect(postgres::NoTls).unwrap();
    wait_until_blocked_on_a_lock(&mut watcher);
    tx.commit().unwrap();

    let assigned = ours.join().unwrap().unwrap();
    assert_eq!(assigned.client_id, winner_id);
    assert!(!assigned.new_device);
    let ids: i64 = watcher
        .query_one("SELECT count(*) FROM client_ids", &[])
        .unwrap()
        .get(0);
    assert_eq!(ids, 1, "the loser's claimed id was given back");
    assert_eq!(reg.identity_count().unwrap(), 1);
}

#[test]
fn schema_is_versioned_and_newer_schemas_are_refused() {
    let (config, reg) = open_fresh();
    assert_eq!(reg.schema_version().unwrap(), POSTGRES_SCHEMA_VERSION);
    let g = sample_group();
    reg.add_group(&g).unwrap();
    let id = reg
        .register(&sample_registration(&g.group_id, ClientId::NULL))
        .unwrap()
        .client_id;
    drop(reg);

    // Reopening migrates nothing and keeps the data.
    let reg = PostgresRegistry::from_config(config.clone(), 1).unwrap();
    assert!(reg.identity(&id).unwrap().is_some());
    assert_eq!(reg.groups().unwrap(), vec![g]);
    drop(reg);

    let mut c = config.connect(postgres::NoTls).unwrap();
    let versions: Vec<i64> = c
        .query(
            "SELECT version FROM xtt_schema_version ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=POSTGRES_SCHEMA_VERSION).collect::<Vec<_>>());
    c.execute(
        "INSERT INTO xtt_schema_version (version) VALUES ($1)",
        &[&(POSTGRES_SCHEMA_VERSION + 1)],
    )
    .unwrap();
    assert!(matches!(
        PostgresRegistry::from_config(config, 1),
        Err(RegistryError::SchemaTooNew { found, .. }) if found == POSTGRES_SCHEMA_VERSION + 1
    ));
}

/// Another node migrates the shared database past this code while this registry is open:
/// its health probe reports it.
#[test]
fn the_probe_reports_a_schema_raised_after_open() {
    let config = fresh_database();
    let reg = PostgresRegistry::from_config(config.clone(), 1).unwrap();
    reg.ping().unwrap();
    let mut c = config.connect(postgres::NoTls).unwrap();
    c.execute(
        "INSERT INTO xtt_schema_version (version) VALUES ($1)",
        &[&(POSTGRES_SCHEMA_VERSION + 1)],
    )
    .unwrap();
    match reg.ping() {
        Err(RegistryError::SchemaTooNew { found, supported }) => assert_eq!(
            (found, supported),
            (POSTGRES_SCHEMA_VERSION + 1, POSTGRES_SCHEMA_VERSION)
        ),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn nodes_starting_together_migrate_once() {
    let config = fresh_database();
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || PostgresRegistry::from_config(config, 1))
        })
        .collect();
    for n in nodes {
        let reg = n.join().unwrap().expect("every node opens the registry");
        assert_eq!(reg.schema_version().unwrap(), POSTGRES_SCHEMA_VERSION);
    }
    let mut c = config.connect(postgres::NoTls).unwrap();
    let applied: i64 = c
        .query_one("SELECT count(*) FROM xtt_schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, POSTGRES_SCHEMA_VERSION);
}

#[test]
fn retired_ids_stay_taken_by_a_database_constraint() {
    // Not only the code path: the table itself refuses an id that was ever assigned.
    let (config, reg) = open_fresh();
    let g = sample_group();
    reg.add_group(&g).unwrap();
    let id = ClientId([0x31; 16]);
    reg.register(&sample_registration(&g.group_id, id)).unwrap();
    assert!(reg.delete_identity(&id).unwrap());
    let mut c = config.connect(postgres::NoTls).unwrap();
    let retired: Option<i64> = c
        .query_one(
            "SELECT retired_at FROM client_ids WHERE client_id = $1",
            &[&&id.0[..]],
        )
        .unwrap()
        .get(0);
    assert!(retired.is_some());
    let err = c
        .execute(
            "INSERT INTO client_ids (client_id, assigned_at) VALUES ($1, 0)",
            &[&&id.0[..]],
        )
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
    );
}

#[test]
fn storage_url_selects_postgres() {
    let config = fresh_database();
    let Some(db) = config.get_dbname() else {
        panic!("no database name")
    };
    // Rebuild a URL for the fresh database from the admin URL (socket dir or host, user).
    let admin = std::env::var("XTT_TEST_POSTGRES_URL").unwrap();
    let url = match admin.split_once('?') {
        Some((base, query)) => {
            let (prefix, _) = base.rsplit_once('/').unwrap();
            format!("{prefix}/{db}?{query}")
        }
        None => {
            let (prefix, _) = admin.rsplit_once('/').unwrap();
            format!("{prefix}/{db}")
        }
    };
    let reg = open_storage(&url).unwrap();
    let g = sample_group();
    assert!(reg.add_group(&g).unwrap());
    assert_eq!(reg.groups().unwrap(), vec![g]);

    // A server that is not there: the direct connection's own error (refused), not a pool
    // timeout ("PostgreSQL connection pool: ...").
    match open_storage("postgres://nobody@127.0.0.1:1/none?connect_timeout=2") {
        Err(RegistryError::Database(m)) => {
            assert!(m.starts_with("cannot connect to PostgreSQL"), "{m}");
            assert!(m.contains("refused"), "{m}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    // A database that does not exist: the server's own message.
    match open_storage(&url.replacen(db, "xtt_no_such_database", 1)) {
        Err(RegistryError::Database(m)) => assert!(m.contains("does not exist"), "{m}"),
        other => panic!("expected a missing-database error, got {other:?}"),
    }
}

/// A relay between the registry and the server that counts the server's `ReadyForQuery`
/// messages: the server sends exactly one per round trip (one per Sync or simple query).
mod round_trips {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    trait Stream: Read + Write + Send {
        fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>>;
        fn close(&self);
    }
    impl Stream for TcpStream {
        fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>> {
            Ok(Box::new(self.try_clone()?))
        }
        fn close(&self) {
            let _ = self.shutdown(Shutdown::Both);
        }
    }
    impl Stream for UnixStream {
        fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>> {
            Ok(Box::new(self.try_clone()?))
        }
        fn close(&self) {
            let _ = self.shutdown(Shutdown::Both);
        }
    }

    fn upstream(config: &postgres::Config) -> Box<dyn Stream> {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        match config.get_hosts().first() {
            Some(postgres::config::Host::Unix(dir)) => {
                Box::new(UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).unwrap())
            }
            Some(postgres::config::Host::Tcp(host)) => {
                Box::new(TcpStream::connect((host.as_str(), port)).unwrap())
            }
            None => Box::new(
                UnixStream::connect(format!("/var/run/postgresql/.s.PGSQL.{port}")).unwrap(),
            ),
        }
    }

    /// Starts the relay to the server `config` names; returns the relay's port and the counter.
    pub(crate) fn start(config: &postgres::Config) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let (config, counter) = (config.clone(), count.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = upstream(&config);
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone_box().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    s_out.close();
                });
                let counter = counter.clone();
                std::thread::spawn(move || relay_counting(server, client, &counter));
            }
        });
        (port, count)
    }

    /// Copies server messages (type byte, big-endian length including itself, body) to the
    /// client, counting `Z` (ReadyForQuery). With `sslmode=disable` there is no SSL byte first.
    fn relay_counting(mut server: Box<dyn Stream>, mut client: TcpStream, count: &AtomicUsize) {
        let mut header = [0u8; 5];
        while server.read_exact(&mut header).is_ok() {
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            if server.read_exact(&mut body).is_err() {
                break;
            }
            if header[0] == b'Z' {
                count.fetch_add(1, Ordering::SeqCst);
            }
            if client.write_all(&header).is_err() || client.write_all(&body).is_err() {
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
    }
}

#[test]
fn a_handshake_costs_one_round_trip_whatever_the_batch() {
    use std::sync::atomic::Ordering;
    let db = fresh_database();
    let (port, trips) = round_trips::start(&db);
    // A new configuration, not a clone: `host`/`port` append, and the test server's own
    // socket and port would come first.
    let mut via_relay = postgres::Config::new();
    via_relay
        .user(db.get_user().unwrap())
        .dbname(db.get_dbname().unwrap())
        .host("127.0.0.1")
        .port(port)
        .ssl_mode(postgres::config::SslMode::Disable);
    let reg = PostgresRegistry::from_config(via_relay, 1).unwrap();
    let g = sample_group();
    reg.add_group(&g).unwrap();
    for size in [1, 16] {
        let batch: Vec<_> = (0..size)
            .map(|_| sample_registration(&g.group_id, ClientId::NULL))
            .collect();
        let before = trips.load(Ordering::SeqCst);
        let out = reg.register_all(&batch).unwrap();
        assert_eq!(trips.load(Ordering::SeqCst) - before, 1, "batch of {size}");
        assert!(out.iter().all(|o| o.is_ok()));
    }
    // A returning device and a refused request: still one.
    let r = sample_registration(&g.group_id, ClientId::NULL);
    reg.register(&r).unwrap();
    let before = trips.load(Ordering::SeqCst);
    let out = reg
        .register_all(&[
            r,
            sample_registration(&sample_group().group_id, ClientId::NULL),
        ])
        .unwrap();
    assert_eq!(trips.load(Ordering::SeqCst) - before, 1);
    assert!(out[0].is_ok() && out[1].is_err());
    // Every other call but the export is one round trip too (a known group costs a second
    // look-up).
    let id = out[0].unwrap().client_id;
    let one = |what: &str, f: &dyn Fn()| {
        let before = trips.load(Ordering::SeqCst);
        f();
        assert_eq!(trips.load(Ordering::SeqCst) - before, 1, "{what}");
    };
    one("identity_count", &|| {
        assert_eq!(reg.identity_count().unwrap(), 18)
    });
    one("identity", &|| {
        assert!(reg.identity(&id).unwrap().is_some())
    });
    // The export lifts the statement timeout for a transaction of its own: BEGIN, SET LOCAL,
    // the query, COMMIT.
    let before = trips.load(Ordering::SeqCst);
    assert_eq!(reg.identities().unwrap().len(), 18);
    assert_eq!(trips.load(Ordering::SeqCst) - before, 4, "identities");
    one("groups", &|| assert_eq!(reg.groups().unwrap().len(), 1));
    one("group", &|| {
        assert!(reg.group(&g.group_id).unwrap().is_some())
    });
    one("add_group (new)", &|| {
        assert!(reg.add_group(&sample_group()).unwrap())
    });
    one("delete_identity", &|| {
        assert!(reg.delete_identity(&id).unwrap())
    });
}

#[test]
fn postgres_session_store_passes_the_session_conformance_suite() {
    xtt_registry::sessions::conformance::run_all(&|| {
        Arc::new(
            xtt_registry::sessions::PostgresSessionStore::from_config(fresh_database(), 4)
                .expect("open the session store"),
        ) as Arc<dyn xtt_registry::sessions::SessionStore>
    });
}

#[test]
fn a_session_take_over_costs_one_round_trip() {
    use std::sync::atomic::Ordering;
    use xtt_registry::sessions::{
        conformance::sample_session, Acquired, NodeId, PostgresSessionStore, SessionStore,
        UnixMillis,
    };
    let db = fresh_database();
    // Migrate directly, then count only the calls made through the relay.
    drop(PostgresSessionStore::from_config(db.clone(), 1).unwrap());
    let (port, trips) = round_trips::start(&db);
    // A new configuration, not a clone: `host`/`port` append (see above).
    let mut via_relay = postgres::Config::new();
    via_relay
        .user(db.get_user().unwrap())
        .dbname(db.get_dbname().unwrap())
        .host("127.0.0.1")
        .port(port)
        .ssl_mode(postgres::config::SslMode::Disable);
    let store = PostgresSessionStore::from_config(via_relay, 1).unwrap();
    let now = UnixMillis::now();
    let (a, b) = (NodeId(1), NodeId(2));
    store
        .register_node(a, "127.0.0.1:1", now.plus(60_000))
        .unwrap();
    let s = sample_session(now);
    let one = |what: &str, f: &dyn Fn()| {
        let before = trips.load(Ordering::SeqCst);
        f();
        assert_eq!(trips.load(Ordering::SeqCst) - before, 1, "{what}");
    };
    let r = xtt_proto::record::Reservation {
        recv_limit: 8,
        send_limit: 8,
    };
    let cookie = xtt_registry::CookieUse {
        id: [7; 13],
        expires_at: xtt_proto::UnixTime(now.secs().0 + 60),
    };
    one("create", &|| {
        assert_eq!(
            store.create(&s, &cookie, a, r, now).unwrap(),
            xtt_registry::sessions::CreateOutcome::Created
        )
    });
    one("extend", &|| {
        assert!(store.extend(&s.session_id, a, r, now).unwrap())
    });
    one("acquire (held)", &|| {
        assert!(matches!(
            store.acquire(&s.session_id, b, false, 8, now).unwrap(),
            Acquired::HeldBy { .. }
        ))
    });
    one("release", &|| {
        assert!(store
            .release(
                &s.session_id,
                a,
                &xtt_proto::record::RecordState::after_crash(0, 0),
                now
            )
            .unwrap())
    });
    one("acquire (taken)", &|| {
        assert!(matches!(
            store.acquire(&s.session_id, b, false, 8, now).unwrap(),
            Acquired::Taken { exact: true, .. }
        ))
    });
}

/// The TLS URL of the test server (no `sslmode`) for database `db`, and the CA file.
fn tls_url(db: &str) -> (String, String) {
    let (Ok(url), Ok(ca)) = (
        std::env::var("XTT_TEST_POSTGRES_TLS_URL"),
        std::env::var("XTT_TEST_POSTGRES_CA"),
    ) else {
        panic!(
            "XTT_TEST_POSTGRES_TLS_URL / XTT_TEST_POSTGRES_CA are not set: run scripts/test.sh \
             (it serves TLS on a loopback port with a throwaway CA)"
        )
    };
    let (prefix, _) = url.rsplit_once('/').unwrap();
    (format!("{prefix}/{db}"), ca)
}

/// Connections of database `db` that use TLS, as the server sees them.
fn tls_connections(db: &str) -> i64 {
    let mut admin = admin_config().connect(postgres::NoTls).unwrap();
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.datname = $1 AND s.ssl",
            &[&db],
        )
        .unwrap()
        .get(0)
}

#[test]
fn tls_verify_full_connects_and_checks_the_server() {
    let config = fresh_database();
    let db = config.get_dbname().unwrap().to_string();
    let (url, ca) = tls_url(&db);

    let reg = open_storage(&format!("{url}?sslmode=verify-full&sslrootcert={ca}")).unwrap();
    let g = sample_group();
    assert!(reg.add_group(&g).unwrap());
    assert!(tls_connections(&db) >= 1, "the pool's connections use TLS");
    drop(reg);

    // The certificate names 127.0.0.1 and localhost; reached under another name, verify-full
    // refuses while verify-ca (chain only) accepts.
    let (prefix, rest) = url.split_once("@127.0.0.1").unwrap();
    let renamed = format!("{prefix}@xtt-wrong-name.invalid{rest}?hostaddr=127.0.0.1");
    match open_storage(&format!("{renamed}&sslmode=verify-full&sslrootcert={ca}")) {
        Err(RegistryError::Database(m)) => {
            assert!(m.contains("cannot connect"), "{m}");
            assert!(m.to_lowercase().contains("certificate"), "{m}");
        }
        other => panic!("a certificate for another name was accepted: {other:?}"),
    }
    let reg = open_storage(&format!("{renamed}&sslmode=verify-ca&sslrootcert={ca}")).unwrap();
    assert_eq!(reg.groups().unwrap(), vec![g]);
    drop(reg);

    // A root that did not sign the server's certificate (the server certificate itself, next to
    // the CA in the test cluster's directory) is refused.
    let other_root = std::path::Path::new(&ca).with_file_name("server.crt");
    match open_storage(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other_root.display()
    )) {
        Err(RegistryError::Database(m)) => assert!(m.contains("cannot connect"), "{m}"),
        other => panic!("an unknown issuer was accepted: {other:?}"),
    }
}

#[test]
fn tls_require_encrypts_without_a_root_and_plain_urls_stay_plain() {
    let config = fresh_database();
    let db = config.get_dbname().unwrap().to_string();
    let (url, _) = tls_url(&db);
    let reg = open_storage(&format!("{url}?sslmode=require")).unwrap();
    assert_eq!(reg.identity_count().unwrap(), 0);
    assert!(tls_connections(&db) >= 1);
    drop(reg);
    assert_eq!(
        xtt_registry::pg_tls::tls_mode(&format!("{url}?sslmode=require")).unwrap(),
        xtt_registry::TlsMode::EncryptOnly
    );

    let plain = fresh_database();
    let plain_db = plain.get_dbname().unwrap().to_string();
    let (url, _) = tls_url(&plain_db);
    let reg = open_storage(&url).unwrap();
    assert_eq!(reg.identity_count().unwrap(), 0);
    assert_eq!(tls_connections(&plain_db), 0, "no sslmode: no TLS");
}

/// One device registering on two nodes at once with the ClientID it asks for: the second
/// waits for the first's insert of that id and must then find the device (a returning device
/// with its own id), not refuse the id as taken by someone else.
#[test]
fn a_device_registering_twice_at_once_with_its_requested_id_is_not_refused() {
    let (config, reg) = open_fresh();
    let g = sample_group();
    reg.add_group(&g).unwrap();
    let wanted = ClientId([0x42; 16]);
    let r = sample_registration(&g.group_id, wanted);

    // "Node A": the same registration, inserted in a transaction held open.
    let mut a = config.connect(postgres::NoTls).unwrap();
    let mut tx = a.transaction().unwrap();
    tx.execute(
        "INSERT INTO client_ids (client_id, assigned_at) VALUES ($1, 1)",
        &[&&wanted.0[..]],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO identities (client_id, group_id, pseudonym, longterm_key, first_seen,
                                 last_seen) VALUES ($1, $2, $3, $4, 1, 1)",
        &[
            &&wanted.0[..],
            &&g.group_id.0[..],
            &&r.pseudonym.0[..],
            &&r.longterm_key.as_bytes()[..],
        ],
    )
    .unwrap();

    // "Node B" registers the same device meanwhile; its insert of the id waits for A.
    let b = std::thread::spawn({
        let reg = reg.clone();
        move || reg.register(&r)
    });
    // The race under test: B is blocked on A's uncommitted insert when A commits.
    wait_until_blocked_on_a_lock(&mut config.connect(postgres::NoTls).unwrap());
    tx.commit().unwrap();
    let got = b.join().unwrap();
    assert!(
        matches!(got, Ok(ref a) if a.client_id == wanted && !a.new_device),
        "{got:?}"
    );
}

/// Runs `f` on a thread of its own and waits for it at most 30 s: a call that hangs fails the
/// test instead of hanging it. Returns `f`'s answer and how long it took.
fn within_30s<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, std::time::Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let out = f();
        let _ = tx.send((out, started.elapsed()));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(done) => done,
        Err(_) => panic!("{what} did not return within 30 s"),
    }
}

/// A DBA's `LOCK TABLE identities` (or any transaction holding a conflicting lock) must not
/// stall the registrations: each fails after the lock timeout (5 s) with a database error, and
/// registrations work again once the lock is gone.
#[test]
fn a_registration_behind_a_table_lock_fails_within_the_lock_timeout() {
    let (config, reg) = open_fresh();
    let g = sample_group();
    reg.add_group(&g).unwrap();
    let mut dba = config.connect(postgres::NoTls).unwrap();
    let mut lock = dba.transaction().unwrap();
    lock.batch_execute("LOCK TABLE identities IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let r = sample_registration(&g.group_id, ClientId::NULL);
    let (got, took) = within_30s("a registration behind a table lock", {
        let (reg, r) = (reg.clone(), r.clone());
        move || reg.register(&r)
    });
    match got {
        Err(RegistryError::Database(m)) => {
            assert!(m.contains("55P03") && m.contains("lock timeout"), "{m}")
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    // The lock timeout (5 s), not the statement timeout (10 s), ended it.
    assert!(took < std::time::Duration::from_secs(9), "{took:?}");

    lock.rollback().unwrap();
    let assigned = reg.register(&r).unwrap();
    assert!(assigned.new_device, "the failed attempt stored nothing");
    assert_eq!(reg.identity_count().unwrap(), 1);
}

/// A statement that runs away (here: a trigger sleeping 60 s, as a stuck function or a server
/// starved of I/O would) is cancelled by the statement timeout (10 s).
#[test]
fn a_registration_that_runs_away_is_cancelled_by_the_statement_timeout() {
    let (config, reg) = open_fresh();
    let g = sample_group();
    reg.add_group(&g).unwrap();
    let mut c = config.connect(postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE FUNCTION xtt_test_stall() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$;
         CREATE TRIGGER xtt_test_stall BEFORE INSERT ON identities
             FOR EACH ROW EXECUTE FUNCTION xtt_test_stall();",
    )
    .unwrap();
    let r = sample_registration(&g.group_id, ClientId::NULL);
    let (got, took) = within_30s("a registration stuck in a trigger", {
        let reg = reg.clone();
        move || reg.register(&r)
    });
    match got {
        Err(RegistryError::Database(m)) => {
            assert!(
                m.contains("57014") && m.contains("statement timeout"),
                "{m}"
            )
        }
        other => panic!("expected a statement timeout, got {other:?}"),
    }
    assert!(took >= std::time::Duration::from_secs(9), "{took:?}");
    assert_eq!(reg.identity_count().unwrap(), 0);
}

/// A database whose default isolation is REPEATABLE READ (a DBA's choice for the whole
/// database) must not break the registrations, which rely on READ COMMITTED; and two nodes
/// whose batches hold the same new devices, or replay the same flights, in opposite orders must
/// neither deadlock nor report a device or a cookie twice.
#[test]
fn opposite_batches_on_two_nodes_all_register_under_a_repeatable_read_default() {
    use std::sync::{Arc, Barrier};
    use xtt_registry::conformance::sample_cookie;
    use xtt_registry::{Assigned, Refusal};

    const DEVICES: usize = 32;
    const ROUNDS: usize = 8;
    let config = fresh_database();
    let mut admin = config.connect(postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} SET default_transaction_isolation = 'repeatable read';
             ALTER DATABASE {0} SET deadlock_timeout = '4s'",
            config.get_dbname().unwrap()
        ))
        .unwrap();
    // New connections get it (the pools below connect after this).
    let mut probe = config.connect(postgres::NoTls).unwrap();
    let level: String = probe
        .query_one("SHOW transaction_isolation", &[])
        .unwrap()
        .get(0);
    assert_eq!(level, "repeatable read");

    let a = Arc::new(PostgresRegistry::from_config(config.clone(), 2).unwrap());
    let b = Arc::new(PostgresRegistry::from_config(config.clone(), 2).unwrap());
    let g = sample_group();
    a.add_group(&g).unwrap();

    // Both nodes send their batch at the same moment; each batch is bounded (30 s). A deadlock
    // is found only after `deadlock_timeout` (4 s) of waiting, and then retried: a round that
    // fast had none, as the batches lock devices in one order.
    type Answers = Vec<Result<Assigned, Refusal>>;
    let race = |forward: (Vec<_>, Vec<_>), backward: (Vec<_>, Vec<_>)| -> (Answers, Answers) {
        let started = std::time::Instant::now();
        let barrier = Arc::new(Barrier::new(2));
        let node = |reg: &Arc<PostgresRegistry>, (batch, cookies): (Vec<_>, Vec<_>)| {
            let (reg, barrier) = (reg.clone(), barrier.clone());
            move || {
                barrier.wait();
                reg.register_all_once(&batch, &cookies)
            }
        };
        let ta = std::thread::spawn({
            let f = node(&a, forward);
            move || within_30s("node A's batch", f).0
        });
        let (on_b, _) = within_30s("node B's batch", node(&b, backward));
        let on_a = ta.join().unwrap();
        let (on_a, on_b) = (
            on_a.expect("node A's batch commits"),
            on_b.expect("node B's batch commits"),
        );
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(4),
            "a deadlock: {took:?}"
        );
        (on_a, on_b)
    };

    // The same new devices, each node with handshakes (cookies) of its own.
    for _ in 0..ROUNDS {
        let devices: Vec<_> = (0..DEVICES)
            .map(|_| sample_registration(&g.group_id, ClientId::NULL))
            .collect();
        let reversed: Vec<_> = devices.iter().rev().cloned().collect();
        let cookies = |n| {
            (0..n)
                .map(|_| sample_cookie(2_000_000_000))
                .collect::<Vec<_>>()
        };
        let (on_a, on_b) = race(
            (devices.clone(), cookies(DEVICES)),
            (reversed, cookies(DEVICES)),
        );
        for k in 0..DEVICES {
            let (x, y) = (on_a[k].unwrap(), on_b[DEVICES - 1 - k].unwrap());
            assert_eq!(x.client_id, y.client_id, "one id per device");
            assert!(x.new_device ^ y.new_device, "new on exactly one node");
        }
    }
    assert_eq!(a.identity_count().unwrap(), (ROUNDS * DEVICES) as u64);

    // The same flights (device and cookie) replayed to both nodes in opposite orders: each is
    // registered by exactly one node and refused as a replay by the other.
    for _ in 0..ROUNDS {
        let flights: Vec<_> = (0..DEVICES)
            .map(|_| {
                (
                    sample_registration(&g.group_id, ClientId::NULL),
                    sample_cookie(2_000_000_000),
                )
            })
            .collect();
        let forward = flights.iter().cloned().unzip();
        let backward = flights.iter().rev().cloned().unzip();
        let (on_a, on_b) = race(forward, backward);
        for k in 0..DEVICES {
            match (on_a[k], on_b[DEVICES - 1 - k]) {
                (Ok(x), Err(Refusal::CookieReplayed)) | (Err(Refusal::CookieReplayed), Ok(x)) => {
                    assert!(x.new_device)
                }
                other => panic!("flight {k}: {other:?}"),
            }
        }
    }
    assert_eq!(a.identity_count().unwrap(), (2 * ROUNDS * DEVICES) as u64);
    let (ids, cookies): (i64, i64) = {
        let row = admin_of(&config)
            .query_one(
                "SELECT (SELECT count(*) FROM client_ids), (SELECT count(*) FROM xtt_used_cookies)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(ids, (2 * ROUNDS * DEVICES) as i64, "no id left over");
    // First part: two handshakes per device; second: one cookie per flight.
    assert_eq!(cookies, (3 * ROUNDS * DEVICES) as i64);
}

fn admin_of(config: &postgres::Config) -> postgres::Client {
    config.connect(postgres::NoTls).unwrap()
}

/// A batch the server picks as a deadlock's victim is run again and then registers each of its
/// devices once. The deadlock is made on purpose: another transaction holds the batch's second
/// device while the batch holds its first, then asks for the first. (The batch's sessions find
/// the deadlock, 3 s after they start waiting; the other one would only look after 60 s.)
#[test]
fn a_batch_chosen_as_a_deadlock_victim_is_retried_and_registers_once() {
    let config = fresh_database();
    let mut other = admin_of(&config);
    other
        .batch_execute(&format!(
            "ALTER DATABASE {} SET deadlock_timeout = '3s'",
            config.get_dbname().unwrap()
        ))
        .unwrap();
    let reg = Arc::new(PostgresRegistry::from_config(config.clone(), 1).unwrap());
    let g = sample_group();
    reg.add_group(&g).unwrap();
    // In the order the registry sends them (by pseudonym), whatever the order given.
    let mut devices = [
        sample_registration(&g.group_id, ClientId::NULL),
        sample_registration(&g.group_id, ClientId::NULL),
    ];
    devices.sort_by_key(|x| x.pseudonym.0);
    let other_ids = [ClientId([0x71; 16]), ClientId([0x72; 16])];

    other
        .batch_execute("SET deadlock_timeout = '60s'; SET lock_timeout = '30s'")
        .unwrap();
    let mut tx = other.transaction().unwrap();
    let hold = |tx: &mut postgres::Transaction<'_>, k: usize| {
        let (d, id) = (&devices[k], &other_ids[k]);
        tx.execute(
            "INSERT INTO client_ids (client_id, assigned_at) VALUES ($1, 1)",
            &[&&id.0[..]],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO identities (client_id, group_id, pseudonym, longterm_key, first_seen,
                                     last_seen) VALUES ($1, $2, $3, $4, 1, 1)",
            &[
                &&id.0[..],
                &&g.group_id.0[..],
                &&d.pseudonym.0[..],
                &&d.longterm_key.as_bytes()[..],
            ],
        )
        .unwrap();
    };
    hold(&mut tx, 1);
    let batch = std::thread::spawn({
        let (reg, devices) = (reg.clone(), devices.clone());
        move || reg.register_all(&devices)
    });
    // The batch registered the first device and waits for the second...
    wait_until_blocked_on_a_lock(&mut admin_of(&config));
    // ...and now the other transaction asks for the first: a deadlock. This insert returns once
    // the batch's attempt was aborted (or fails after its own lock timeout, 30 s).
    hold(&mut tx, 0);
    tx.commit().unwrap();

    let out = batch
        .join()
        .unwrap()
        .expect("the batch is retried after the deadlock and commits");
    for k in 0..2 {
        let got = out[k].unwrap();
        assert_eq!(got.client_id, other_ids[k], "device {k}");
        assert!(
            !got.new_device,
            "device {k} was registered by the other transaction"
        );
    }
    let mut c = admin_of(&config);
    let ids: i64 = c
        .query_one("SELECT count(*) FROM client_ids", &[])
        .unwrap()
        .get(0);
    assert_eq!(ids, 2, "the aborted attempt's id was rolled back");
    assert_eq!(reg.identity_count().unwrap(), 2);
}
