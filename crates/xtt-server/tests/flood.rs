//! A flood of ClientInit messages costs the server bounded memory: the only thing it keeps
//! between ServerInitAndAttest and Identity_ClientAttest is the optional handshake cache
//! ([`xtt_proto::handshake_cache`]), which holds at most 4 × `max_concurrent_handshakes` entries
//! however many ClientInits arrive. Its own test binary, so that the process's memory is this
//! test's alone.

mod common;

use std::time::{Duration, Instant};

use common::{start, test_config, wait_idle, Fixture, Running};
use rand_core::{OsRng, RngCore};
use tokio::net::{TcpStream, ToSocketAddrs};
use xtt_proto::codec::MAX_HANDSHAKE_LEN;
use xtt_server::framing::{read_message, write_message};

const T: Duration = Duration::from_secs(10);
/// A small handshake cap, so the cache's bound (4 × the cap) is far below the flood.
const MAX_CONCURRENT: usize = 8;
const CACHE_CAPACITY: usize = 4 * MAX_CONCURRENT;
/// ClientInits in the measured flood: ≫ CACHE_CAPACITY.
const FLOOD: usize = 8192;
/// Roughly what one cached ServerInitAndAttest costs (the entry plus its map slot).
const ENTRY_BYTES: u64 = 512;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// One ClientInit on a fresh connection; true if answered with a ServerInitAndAttest, false if
/// the server refused the connection (over the handshake cap: a client can reconnect before the
/// server has released the slot of its previous connection).
async fn client_init(addr: impl ToSocketAddrs) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut ci = vec![0x01, 0x00, 0x46, 0x01, 0x00, 0x01];
    let mut rest = [0u8; 64];
    OsRng.fill_bytes(&mut rest);
    ci.extend_from_slice(&rest);
    if write_message(&mut s, &ci, T).await.is_err() {
        return false;
    }
    match read_message(&mut s, MAX_HANDSHAKE_LEN, T).await {
        Ok(sia) if sia.len() == 417 => true,
        Ok(m) => {
            assert_eq!(
                m,
                xtt_proto::codec::ERROR_MESSAGE,
                "neither SIA nor refusal"
            );
            false
        }
        Err(_) => false,
    }
}

/// `n` answered ClientInits from `MAX_CONCURRENT / 2` clients at once (within 60 s).
async fn flood(server: &Running, n: usize) {
    let clients = MAX_CONCURRENT / 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, handle) = (server.addr, server.handle.clone());
            tokio::spawn(async move {
                let mut answered = 0;
                while answered < n / clients {
                    assert!(
                        Instant::now() < deadline,
                        "flood of {n} not answered in 60 s"
                    );
                    if client_init(addr).await {
                        answered += 1;
                    } else {
                        // Refused at the cap: wait for a slot to be released.
                        while handle.in_flight() >= MAX_CONCURRENT && Instant::now() < deadline {
                            tokio::task::yield_now().await;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_init_flood_leaves_bounded_state_behind() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let mut config = test_config(dir.path());
    config.limits.max_concurrent_handshakes = MAX_CONCURRENT;
    // Nothing expires during the test: only the capacity bounds the cache.
    config.cookies.lifetime_secs = 3600;
    let server = start(config, fx.keys(), registry).await;
    flood(&server, 4 * CACHE_CAPACITY).await; // warm-up: allocator pools, task slabs; fills the cache
    assert_eq!(
        server.handle.handshake_cache_len(),
        CACHE_CAPACITY,
        "the handshake cache is in use and full after the warm-up"
    );
    let before = rss_bytes();
    flood(&server, FLOOD).await;
    let after = rss_bytes();
    wait_idle(&server.handle).await;
    assert_eq!(
        server.handle.handshake_cache_len(),
        CACHE_CAPACITY,
        "{FLOOD} ClientInits: the handshake cache stays at its capacity"
    );
    // No other per-ClientInit state either: an unbounded store of even a quarter of an entry
    // per ClientInit would show.
    let grown = after.saturating_sub(before);
    assert!(
        grown < FLOOD as u64 * ENTRY_BYTES / 4,
        "RSS grew by {grown} bytes over {FLOOD} ClientInits"
    );
    server.stop().await;
}
