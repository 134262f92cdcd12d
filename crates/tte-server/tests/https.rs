//! A Transfer Agent served over HTTPS on 127.0.0.1 (rustls; CA and certificate made here):
//! `manufacture` and `device fetch` reach it with `--ca-file`, and without it the device says
//! the Transfer Agent cannot be trusted.

mod common;

use std::sync::Arc;

use common::parse;
use serde_json::json;
use tte::{ContUrl, Key256};
use tte_server::cli::run;
use tte_server::device::{DeviceClient, DeviceError};
use tte_server::store::sqlite::SqliteTaStore;
use tte_server::ta::TransferAgent;
use xtt_tls::server::TlsListener;
use xtt_tls::test_pki::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_fetches_its_controller_from_an_https_transfer_agent_with_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("TTE test CA");
    let ca_file = ca.write_pem(dir.path(), "ca");
    let ca_s = ca_file.to_str().unwrap();

    let store = SqliteTaStore::open(&dir.path().join("ta.sqlite")).unwrap();
    let otp_key = Key256::generate(&mut rand_core::OsRng);
    let app = TransferAgent::new(Arc::new(store), otp_key, common::MANUFACTURER_TOKEN).router();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TlsListener::new(tcp, ca.server_cert().server_config()).unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let ta = format!("https://{addr}");

    // The manufacturer registers over HTTPS too.
    let out = dir.path().join("devices");
    common::manufacture_cli(&ta, &out, &["--ca-file", ca_s]).await;
    let secrets_path = common::secrets_files(&out).remove(0);
    let dev = common::read_secrets(&secrets_path);
    assert!(
        dev.setup_url.starts_with("https://127.0.0.1:"),
        "{}",
        dev.setup_url
    );

    let mut roots = xtt_tls::TrustRoots::platform();
    roots.add_pem_file(&ca_file).unwrap();
    let http = roots.client(std::time::Duration::from_secs(10)).unwrap();
    let conturl = "https://controller.example:8443";
    let r = http
        .put(format!("{ta}/.well-known/tte1/d/{}/c", dev.urn))
        .json(&json!({"otp": dev.otp, "conturl": conturl}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let secrets = secrets_path.to_str().unwrap();
    run(parse(&[
        "device",
        "fetch",
        "--secrets",
        secrets,
        "--ca-file",
        ca_s,
    ]))
    .await
    .unwrap();
    let got = DeviceClient::with_roots(dev.clone(), &roots)
        .unwrap()
        .fetch_controller()
        .await
        .unwrap();
    assert_eq!(got, Some(ContUrl::parse(conturl).unwrap()));

    // Without the CA the device refuses the Transfer Agent, and says why.
    let err = run(parse(&["device", "fetch", "--secrets", secrets]))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("cannot be trusted")
            && message.contains("not signed by a trusted certificate authority"),
        "{message}"
    );
    let err = DeviceClient::new(dev)
        .unwrap()
        .fetch_controller()
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Certificate { .. }), "{err}");
    server.abort();
}
