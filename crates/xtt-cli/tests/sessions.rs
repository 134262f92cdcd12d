//! Sessions through the real `xtt` binary on 127.0.0.1: `xtt server` (sessions on, echo
//! application) as a child process, a device provisioned with `xtt client provision`, then
//! `xtt client connect` piping lines through the server's echo — over TCP across a dropped
//! connection (a counting TCP relay in between shows the new connection opens with a record,
//! not a handshake), over UDP, and from a local UDP socket.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{deployment, member, ok, provisioned, serving, xtt, xtt_command, ServerProcess};

const WAIT: Duration = Duration::from_secs(20);

/// `xtt client connect` with piped stdio; stdout and stderr lines arrive on channels.
struct ConnectProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    err_log: Arc<Mutex<Vec<String>>>,
}

impl ConnectProcess {
    fn start(device: &Path, port: u16, extra: &[&str]) -> Self {
        let mut child = xtt_command(device)
            .args(["client", "connect", "--dir", device.to_str().unwrap()])
            .args(["-p", &port.to_string(), "--timeout", "5"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xtt client connect");
        let lines = |r: Box<dyn std::io::Read + Send>, log: Option<Arc<Mutex<Vec<String>>>>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if let Some(log) = &log {
                        log.lock().unwrap().push(line.clone());
                    }
                    let _ = tx.send(line);
                }
            });
            rx
        };
        let err_log = Arc::new(Mutex::new(Vec::new()));
        let out = lines(Box::new(child.stdout.take().unwrap()), None);
        let err = lines(
            Box::new(child.stderr.take().unwrap()),
            Some(err_log.clone()),
        );
        Self {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            err_log,
        }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn next_line(&self) -> String {
        self.out.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "no line on stdout; stderr: {:?}",
                self.err_log.lock().unwrap()
            )
        })
    }

    /// Waits for a stderr line containing `needle`.
    fn stderr_until(&self, needle: &str) -> String {
        loop {
            match self.err.recv_timeout(WAIT) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "no {needle:?} on stderr: {:?}",
                    self.err_log.lock().unwrap()
                ),
            }
        }
    }

    /// Closes stdin and waits for a clean exit; returns everything said on stderr.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        // Let the reader thread take the last lines.
        while self.err.recv_timeout(Duration::from_millis(200)).is_ok() {}
        let log = self.err_log.lock().unwrap().join("\n");
        assert!(status.success(), "client exit {status}: {log}");
        log
    }
}

impl Drop for ConnectProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to the server that notes the first byte each connection sends and can cut
/// every connection open so far.
struct Relay {
    addr: SocketAddr,
    first_bytes: Arc<Mutex<Vec<u8>>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let first_bytes = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (fb, op) = (first_bytes.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let upstream = TcpStream::connect(server).unwrap();
                op.lock().unwrap().push(client.try_clone().unwrap());
                op.lock().unwrap().push(upstream.try_clone().unwrap());
                let fb = fb.clone();
                let (mut c_read, mut u_write) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    use std::io::Read;
                    let mut first = [0u8; 1];
                    if c_read.read_exact(&mut first).is_ok() {
                        fb.lock().unwrap().push(first[0]);
                        let _ = u_write.write_all(&first);
                        let _ = std::io::copy(&mut c_read, &mut u_write);
                    }
                    let _ = u_write.shutdown(Shutdown::Both);
                });
                let (mut u_read, mut c_write) = (upstream, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Both);
                });
            }
        });
        Self {
            addr,
            first_bytes,
            open,
        }
    }

    fn cut_all(&self) {
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn tcp_lines_echo_and_the_session_survives_a_dropped_connection() {
    let (tmp, server) = serving(1);
    let d = tmp.path();
    let device = member(d, 1);
    assert!(
        server
            .banner
            .contains("sessions over TCP and UDP, records to echo"),
        "{}",
        server.banner
    );
    provisioned(d, &device, server.addr);
    let relay = Relay::start(server.addr);

    let mut c = ConnectProcess::start(&device, relay.addr.port(), &[]);
    let hello = c.stderr_until("session ");
    assert!(hello.contains("over TCP as ClientID"), "{hello}");
    for i in 1..=3 {
        c.send_line(&format!("line {i}"));
        assert_eq!(c.next_line(), format!("line {i}"));
    }
    relay.cut_all();
    let note = c.stderr_until("reconnected");
    assert!(note.contains("same session"), "{note}");
    for i in 4..=6 {
        c.send_line(&format!("line {i} after the drop"));
        assert_eq!(c.next_line(), format!("line {i} after the drop"));
    }
    let log = c.finish();
    assert!(log.contains("6 record(s) sent, 6 received"), "{log}");
    // One handshake only: the first connection opened with ClientInit (0x01), the one after the
    // drop with a record (0x31) of the same session.
    assert_eq!(*relay.first_bytes.lock().unwrap(), vec![0x01, 0x31]);
}

#[test]
fn udp_and_a_local_udp_socket_carry_records_and_ipv6_payload_type() {
    let (tmp, server) = serving(1);
    let d = tmp.path();
    let device = member(d, 1);
    provisioned(d, &device, server.addr);

    // stdin → UDP records → echo → stdout, all lines at once, then end of input.
    let mut c = ConnectProcess::start(&device, server.addr.port(), &["--transport", "udp"]);
    let lines: Vec<String> = (0..5).map(|i| format!("datagram {i}")).collect();
    for l in &lines {
        c.send_line(l);
    }
    let got: Vec<String> = (0..lines.len()).map(|_| c.next_line()).collect();
    assert_eq!(got, lines);
    let log = c.finish();
    assert!(log.contains("over UDP"), "{log}");

    // A local program talks through a UDP port of the client; payload type ipv6.
    let free = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = free.local_addr().unwrap();
    drop(free);
    let spec = format!("udp:{local}");
    let c = ConnectProcess::start(
        &device,
        server.addr.port(),
        &["--socket", &spec, "--payload-type", "ipv6"],
    );
    c.stderr_until("session ");
    let app = UdpSocket::bind("127.0.0.1:0").unwrap();
    app.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let packet = [0x60u8, 0, 0, 0, 0, 0, 59, 64];
    // The client binds its socket right after the handshake: resend until it answers.
    let mut echoed = None;
    for _ in 0..40 {
        app.send_to(&packet, local).unwrap();
        if let Ok((n, from)) = app.recv_from(&mut buf) {
            assert_eq!(from, local);
            echoed = Some(buf[..n].to_vec());
            break;
        }
    }
    assert_eq!(echoed.as_deref(), Some(&packet[..]));
    let pid = c.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let log = c.finish();
    assert!(log.contains("record(s) sent"), "{log}");
}

#[test]
fn server_session_settings_come_from_file_and_flags() {
    let tmp = deployment(1);
    let d = tmp.path();
    let device = member(d, 1);
    // The file turns UDP off and forwards to a local UDP service; the flag then turns
    // sessions off altogether.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    std::fs::write(
        d.join("server.toml"),
        format!(
            "[sessions]\nudp = false\napp = \"forward-udp {}\"\nidle_timeout_secs = 30\n",
            sink.local_addr().unwrap()
        ),
    )
    .unwrap();
    let server = ServerProcess::start(d, &["--config", "server.toml"]);
    assert!(
        server.banner.contains(&format!(
            "sessions over TCP, records to forward-udp {}",
            sink.local_addr().unwrap()
        )),
        "{}",
        server.banner
    );
    provisioned(d, &device, server.addr);
    // A line reaches the forwarding target as one datagram.
    let mut c = ConnectProcess::start(&device, server.addr.port(), &[]);
    c.send_line("to the service");
    sink.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = sink.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to the service");
    drop(c);
    drop(server);

    let server = ServerProcess::start(d, &["--config", "server.toml", "--no-sessions"]);
    assert!(server.banner.contains("sessions off"), "{}", server.banner);
    let out = xtt(
        d,
        &[
            "client",
            "connect",
            "--dir",
            device.to_str().unwrap(),
            "-p",
            &server.addr.port().to_string(),
            "--timeout",
            "3",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("session handshake with"), "{err}");

    // A bad app string is refused with the accepted forms.
    std::fs::write(d.join("bad.toml"), "[sessions]\napp = \"tee\"\n").unwrap();
    let out = xtt(d, &["server", "--config", "bad.toml", "--no-metrics"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forward-udp HOST:PORT"), "{err}");
}

#[test]
fn bench_session_modes_report_text_json_and_svg() {
    let (tmp, server) = serving(1);
    let d = tmp.path();
    let target = server.addr.to_string();
    let pid = server.child.id().to_string();
    let bench = |extra: &[&str]| -> (String, serde_json::Value) {
        let mut args = vec![
            "bench",
            "-t",
            &target,
            "--group",
            "acme",
            "--devices",
            "3",
            "--server-pid",
            &pid,
            "--json",
            "r.json",
            "--svg",
            "r.svg",
        ];
        args.extend_from_slice(extra);
        let text = ok(d, &args);
        let json = serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
        let svg = std::fs::read_to_string(d.join("r.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("p50"), "{svg}");
        (text, json)
    };

    // 300 handshakes: the server's CPU time is read from /proc in 10 ms ticks, and 30 session
    // handshakes (≈ 0.2 ms each) could all fall inside one tick and read as zero.
    let (text, j) = bench(&["--mode", "session-handshakes", "--handshakes", "300"]);
    assert!(text.contains("handshakes      300 ok, 0 failed"), "{text}");
    assert_eq!(j["mode"], "Handshakes", "{j}");
    assert_eq!(j["transport"], "tcp");
    assert_eq!(j["handshakes_ok"], 300);
    assert!(j["handshakes_per_sec"].as_f64().unwrap() > 0.0, "{j}");
    assert!(j["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{j}");
    // The server did the work of 300 handshakes: its CPU time per handshake is positive and
    // below a second.
    let per = j["server_cpu_us_per_op"].as_f64().unwrap();
    assert!(per > 0.0 && per < 1e6, "{j}");

    for transport in ["tcp", "udp"] {
        let (text, j) = bench(&[
            "--mode",
            "records",
            "--transport",
            transport,
            "--records",
            "50",
            "--window",
            "4",
            "--record-size",
            "300",
        ]);
        assert!(text.contains("records/s"), "{text}");
        assert_eq!(j["mode"], "Records", "{j}");
        assert_eq!(j["transport"], transport);
        assert_eq!(j["handshakes_ok"], 3, "{j}");
        assert_eq!(j["records_sent"], 150, "{j}");
        let echoed = j["records_echoed"].as_u64().unwrap();
        // Loopback UDP may in principle drop a datagram; TCP may not.
        assert!(
            echoed == 150 || (transport == "udp" && echoed >= 140),
            "{j}"
        );
        let rps = j["records_per_sec"].as_f64().unwrap();
        let mbs = j["mb_per_sec"].as_f64().unwrap();
        assert!(
            rps > 0.0 && (mbs - rps * 300.0 / 1e6).abs() < 1e-6 * rps.max(1.0),
            "{j}"
        );
    }
}
