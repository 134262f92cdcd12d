//! A flood of ClientInit messages leaves no state behind: the server keeps nothing between
//! ServerInitAndAttest and Identity_ClientAttest. Its own test binary, so that the process's
//! memory is this test's alone.

mod common;

use std::time::Duration;

use common::{start, test_config, wait_idle, Fixture};
use rand_core::{OsRng, RngCore};
use tokio::net::TcpStream;
use xtt_proto::codec::MAX_HANDSHAKE_LEN;
use xtt_server::framing::{read_message, write_message};

const T: Duration = Duration::from_secs(10);

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_init_flood_leaves_no_state_behind() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::new();
    let registry = fx.registry(dir.path());
    let server = start(test_config(dir.path()), fx.keys(), registry).await;
    let addr = server.addr;
    let flood = |n: usize| async move {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..n / 32 {
                        let mut s = TcpStream::connect(addr).await.unwrap();
                        let mut ci = vec![0x01, 0x00, 0x46, 0x01, 0x00, 0x01];
                        let mut rest = [0u8; 64];
                        OsRng.fill_bytes(&mut rest);
                        ci.extend_from_slice(&rest);
                        write_message(&mut s, &ci, T).await.unwrap();
                        let sia = read_message(&mut s, MAX_HANDSHAKE_LEN, T).await.unwrap();
                        assert_eq!(sia.len(), 417);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    };
    flood(320).await; // warm-up: allocator pools, task slabs
    let before = rss_bytes();
    flood(3200).await;
    let after = rss_bytes();
    // Stateless: nothing is remembered for a ClientInit, and nothing is left in flight.
    assert_eq!(server.handle.replay_cache_len(), 0);
    wait_idle(&server.handle).await;
    assert!(
        after.saturating_sub(before) < 4 << 20,
        "RSS grew by {} bytes over 3200 ClientInits",
        after.saturating_sub(before)
    );
    server.stop().await;
}
