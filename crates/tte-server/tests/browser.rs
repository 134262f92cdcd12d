//! The setup page in a real headless Chromium (Debian's `chromium` + `chromium-driver`), driven
//! over the W3C WebDriver protocol: the test types the Controller URL and label and submits;
//! the page's alive check, bind (same origin) and add (cross-origin, CORS preflight) must all
//! really happen. Fails, not skips, when chromedriver or chromium is missing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tte_server::device::{DeviceClient, DeviceSecrets, Enrollment};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // End the browser session even when the test failed (otherwise Chromium outlives
        // chromedriver): a plain blocking DELETE, since Drop cannot await.
        if !self.session.is_empty() {
            use std::io::{Read as _, Write as _};
            let host = self.base.trim_start_matches("http://").to_owned();
            if let Ok(mut s) = std::net::TcpStream::connect(&host) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let _ = s.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromium_binary() -> String {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("chromium is not installed (Debian package `chromium`; scripts/test.sh installs it)");
}

impl Driver {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed (Debian package `chromium-driver`)");
        let base = format!("http://127.0.0.1:{port}");
        let http = common::http();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--window-size=480,900"]
            }
        }}});
        let mut d = Self {
            child,
            base,
            http,
            session: String::new(),
        };
        let v = d.call(reqwest::Method::POST, "/session", caps).await;
        d.session = v["sessionId"].as_str().expect("no session id").to_owned();
        d
    }

    async fn call(&self, m: reqwest::Method, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut req = self.http.request(m.clone(), url);
        if m == reqwest::Method::POST {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "WebDriver error: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    /// WebDriver command `command` on the element `css` selects.
    async fn on_element(&self, css: &str, m: reqwest::Method, command: &str, body: Value) -> Value {
        let e = self.find(css).await;
        self.call(m, &format!("/element/{e}/{command}"), body).await
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, reqwest::Method::POST, "value", json!({"text": text}))
            .await;
    }

    async fn clear(&self, css: &str) {
        self.on_element(css, reqwest::Method::POST, "clear", json!({}))
            .await;
    }

    async fn click(&self, css: &str) {
        self.on_element(css, reqwest::Method::POST, "click", json!({}))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        self.on_element(css, reqwest::Method::GET, "text", Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn wait_text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.text(css).await;
            if !t.is_empty() {
                return t;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of `css` once it is neither empty nor `old` (the page clears and rewrites its
    /// result on each submit).
    async fn wait_text_other_than(&self, css: &str, old: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.text(css).await;
            if !t.is_empty() && t != old {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {css} to change"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let v = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Both services, a new device, and its setup page open in Chromium at the QR code's URL,
/// exactly as a phone camera would open it.
async fn scanned_in_chromium() -> (common::Stack, DeviceSecrets, Driver) {
    let s = common::start().await;
    let dev = s.manufacture().await;
    let d = Driver::start().await;
    d.goto(&dev.setup_url).await;
    assert!(d.wait_text("#state").await.contains("Scan accepted"));
    (s, dev, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_page_enrolls_a_device_in_headless_chromium() {
    let (s, dev, d) = scanned_in_chromium().await;

    // A Controller that does not answer: the page stops before binding, so the OTP stays usable.
    let dead = format!("http://127.0.0.1:{}", free_port());
    d.type_into("#conturl", &dead).await;
    d.click("#submit").await;
    let result = d.wait_text("#result").await;
    assert_eq!(
        result,
        "The Controller did not answer. Check the URL; nothing was changed."
    );
    let client = DeviceClient::new(dev.clone()).unwrap();
    assert_eq!(client.enroll(None).await.unwrap(), Enrollment::NotBound);

    d.clear("#conturl").await;
    d.type_into("#conturl", &s.ctl).await;
    d.type_into("#label", "Greenhouse north").await;
    d.click("#submit").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut result = d.wait_text("#result").await;
    while result.starts_with("The Controller did not answer") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        result = d.wait_text("#result").await;
    }
    if let Ok(dir) = std::env::var("TTE_SCREENSHOT_DIR") {
        d.screenshot(&std::path::Path::new(&dir).join("setup-page-done.png"))
            .await;
    }
    assert_eq!(
        result,
        "Device enrolled. It will contact its Controller when it next starts.",
        "steps: {}",
        d.text("#steps").await
    );

    // The bind really reached the TA, and the add (cross-origin) really reached the Controller.
    let cont = common::enrolled(&client).await;
    let list = s.devices().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].urn, dev.urn.as_str());
    assert_eq!(list[0].label.as_deref(), Some("Greenhouse north"));
    // The DevSecret the browser delivered is the one the device has: its report is accepted.
    client
        .report(&cont, &common::one_reading(&dev.urn, 1.0), 1)
        .await
        .unwrap();

    // Opening the same code again: the page says the OTP is spent.
    d.goto(&dev.setup_url).await;
    assert!(d.wait_text("#state").await.contains("already used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_page_binds_an_xtt_controller_and_shows_the_secret_for_manual_entry() {
    let (_s, dev, d) = scanned_in_chromium().await;
    d.type_into("#conturl", "xtt://127.0.0.1:4444").await;
    d.click("#submit").await;
    assert_eq!(
        d.wait_text("#result").await,
        "Bound. Give the device secret below to your Controller."
    );
    // The secret shown is the one from the QR fragment (the TA never saw it).
    d.click("#manual summary").await;
    assert_eq!(d.text("#secret").await, dev.dev_secret);
    let client = DeviceClient::new(dev).unwrap();
    let got = client.enroll(None).await.unwrap();
    assert!(
        matches!(got, Enrollment::XttPending(ref c) if c.xtt_endpoint() == Some(("127.0.0.1".into(), 4444))),
        "{got:?}"
    );
}

/// The Controller refuses the add part-way (503: it holds as many devices as it may): the page
/// says so and lets the user try again; once the Controller has room, the same page finishes
/// the enrollment (the Transfer Agent takes the repeated bind to the same Controller as a
/// retry). Opened again later, the spent code still offers the same Controller, and refuses
/// another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_page_finishes_an_enrollment_the_controller_refused_part_way() {
    use std::sync::Arc;
    use tte_server::store::sqlite::{SqliteControllerStore, SqliteTaStore};
    use tte_server::store::ControllerLimits;
    let dir = tempfile::tempdir().unwrap();
    let ctl_db = dir.path().join("controller.sqlite");
    let limited = |max_devices| {
        Arc::new(
            SqliteControllerStore::open(&ctl_db)
                .unwrap()
                .with_limits(ControllerLimits {
                    max_devices,
                    ..Default::default()
                }),
        )
    };
    let ta_store = Arc::new(SqliteTaStore::open(&dir.path().join("ta.sqlite")).unwrap());
    let mut s = common::start_with(dir, ta_store, limited(0)).await;
    let dev = s.manufacture().await;
    let d = Driver::start().await;
    d.goto(&dev.setup_url).await;
    assert!(d.wait_text("#state").await.contains("Scan accepted"));

    d.type_into("#conturl", &s.ctl).await;
    d.click("#submit").await;
    let refused = "Bound at the Transfer Agent, but the Controller did not take the secret. \
                   Try again later with the same Controller URL, or enter the secret there by hand.";
    assert_eq!(d.wait_text("#result").await, refused);
    assert!(s.devices().await.is_empty());

    s.stop_controller().await;
    s.start_controller(limited(10)).await;
    d.click("#submit").await;
    let done = "Device enrolled. It will contact its Controller when it next starts.";
    assert_eq!(d.wait_text_other_than("#result", refused).await, done);
    assert_eq!(s.devices().await.len(), 1);
    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = common::enrolled(&client).await;
    client
        .report(&cont, &common::one_reading(&dev.urn, 1.0), 1)
        .await
        .unwrap();

    // The code opened again: spent, but the same Controller is still accepted (a retry), and
    // another one is refused at the Transfer Agent.
    d.goto(&dev.setup_url).await;
    assert!(d.wait_text("#state").await.contains("already used"));
    d.type_into("#conturl", "xtt://127.0.0.1:4444").await;
    d.click("#submit").await;
    let failed = "Enrollment failed at the Transfer Agent.";
    assert_eq!(d.wait_text("#result").await, failed);
    assert!(d.text("#steps").await.contains("another Controller"));
    d.clear("#conturl").await;
    d.type_into("#conturl", &s.ctl).await;
    d.click("#submit").await;
    assert_eq!(d.wait_text_other_than("#result", failed).await, done);
    assert_eq!(s.devices().await.len(), 1);
}
