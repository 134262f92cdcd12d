//! `xtt bench --server A --server B`: the simulated devices are spread round-robin over two
//! real `xtt server` processes on 127.0.0.1, in the identity and the session-handshake modes,
//! and the report's per-address counts match what each server's own metrics counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtt"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run xtt");
    assert!(
        out.status.success(),
        "xtt {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An `xtt server` with its own registry and metrics, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Server {
    fn start(dir: &Path, data: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtt"))
            .args(["server", "-l", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .args(["--data-dir", data, "--group", "acme"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xtt server");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut addr, mut metrics) = (None, None);
        let mut banner = String::new();
        while addr.is_none() || metrics.is_none() {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("server did not start: {banner}");
            }
            if let Some(a) = line.trim().strip_prefix("xtt server listening on ") {
                addr = Some(a.parse().unwrap());
            }
            if let Some(m) = line.trim().strip_prefix("metrics on http://") {
                metrics = Some(m.trim_end_matches("/metrics").parse().unwrap());
            }
            banner.push_str(&line);
        }
        std::thread::spawn(move || for _ in stdout.lines() {});
        Self {
            child,
            addr: addr.unwrap(),
            metrics: metrics.unwrap(),
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let out = Command::new(env!("CARGO_BIN_EXE_xtt"))
        .args(["bench", "--group", "acme", "-t", "127.0.0.1:1", "--server"])
        .arg(servers[0].addr.to_string())
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
