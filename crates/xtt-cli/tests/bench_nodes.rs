//! `xtt bench --server A --server B`: the simulated devices are spread round-robin over two
//! real `xtt server` processes on 127.0.0.1, in the identity and the session-handshake modes,
//! and the report's per-address counts match what each server's own metrics counted.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use common::{fails, ok, ServerProcess};

/// An `xtt server` with its own registry and metrics, killed when dropped.
struct Server {
    _process: ServerProcess,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Server {
    fn start(dir: &Path, data: &str) -> Self {
        let process = ServerProcess::start_with(
            dir,
            &[],
            &[
                "--metrics",
                "127.0.0.1:0",
                "--data-dir",
                data,
                "--group",
                "acme",
            ],
        );
        let metrics = process
            .banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("metrics on http://"))
            .unwrap_or_else(|| panic!("no metrics line in {}", process.banner))
            .trim_end_matches("/metrics")
            .parse()
            .unwrap();
        Self {
            addr: process.addr,
            _process: process,
            metrics,
        }
    }

    /// The sum of the metric lines starting with `prefix`.
    fn metric(&self, prefix: &str) -> u64 {
        let mut s = TcpStream::connect(self.metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

fn bench(dir: &Path, servers: &[&Server], extra: &[&str]) -> serde_json::Value {
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    let mut args = vec!["bench", "--group", "acme", "--devices", "4", "--json", "-"];
    for a in &addrs {
        args.extend_from_slice(&["--server", a]);
    }
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(dir, &args)).unwrap()
}

#[test]
fn bench_spreads_devices_over_every_server_and_counts_each() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &["cert", "root", "--generate-key"]);
    ok(d, &["cert", "server", "--generate-key"]);
    ok(d, &["group", "create", "acme"]);
    let servers = [Server::start(d, "data-a"), Server::start(d, "data-b")];
    let both: Vec<&Server> = servers.iter().collect();

    // Identity handshakes: 10 over 4 devices, two per server.
    let j = bench(d, &both, &["--handshakes", "10"]);
    assert_eq!(j["handshakes_ok"], 10, "{j}");
    let per = j["per_target"].as_array().unwrap();
    assert_eq!(per.len(), 2, "{j}");
    for (p, s) in per.iter().zip(&servers) {
        assert_eq!(p["address"], s.addr.to_string(), "{j}");
        assert_eq!(p["devices"], 2, "{j}");
        assert_eq!(p["handshakes_failed"], 0, "{j}");
        let served = p["handshakes_ok"].as_u64().unwrap();
        assert!(served > 0, "{j}");
        assert_eq!(
            s.metric("xtt_handshakes_total{outcome=\"ok\""),
            served,
            "server {} counted otherwise: {j}",
            s.addr
        );
    }

    // Session handshakes: each device is provisioned on its own server first (the servers
    // share nothing), then 12 session handshakes.
    let j = bench(
        d,
        &both,
        &["--mode", "session-handshakes", "--handshakes", "12"],
    );
    assert_eq!(j["handshakes_ok"], 12, "{j}");
    assert_eq!(j["handshakes_failed"], 0, "{j}");
    let per = j["per_target"].as_array().unwrap();
    let mut sum = 0;
    for (p, s) in per.iter().zip(&servers) {
        assert_eq!(p["address"], s.addr.to_string(), "{j}");
        assert_eq!(p["devices"], 2, "{j}");
        let served = p["handshakes_ok"].as_u64().unwrap();
        assert!(served > 0, "{j}");
        assert_eq!(
            s.metric("xtt_session_handshakes_total{transport=\"tcp\",outcome=\"ok\"}"),
            served,
            "server {} counted otherwise: {j}",
            s.addr
        );
        sum += served;
    }
    assert_eq!(sum, 12);

    // --server and --target exclude each other.
    let first = servers[0].addr.to_string();
    let stderr = fails(
        d,
        &[
            "bench",
            "--group",
            "acme",
            "-t",
            "127.0.0.1:1",
            "--server",
            &first,
        ],
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
