//! TTE with the trust-anchor store (`--anchors`): over real sockets on 127.0.0.1 and real
//! SQLite files, the Transfer Agent records each TaSecret and the Controller the DevSecret it is
//! delivered, both then use the secrets from the store, and removing an anchor stops the device.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tte::{ContUrl, Key256, SetupUrl};
use tte_server::anchored::{AnchoredControllerStore, AnchoredTaStore};
use tte_server::controller::Controller;
use tte_server::device::{DeviceClient, Enrollment};
use tte_server::http::serve;
use tte_server::manufacture;
use tte_server::store::sqlite::{SqliteControllerStore, SqliteTaStore};
use tte_server::ta::TransferAgent;
use xtt_anchors::{AnchorKind, AnchorStore, Provenance};

const MANUFACTURER_TOKEN: &str = "manufacturer-token-for-tests";
const OPERATOR_TOKEN: &str = "operator-token-for-tests";

fn secrets_named(store: &Path, kind: AnchorKind, name: &str) -> Vec<xtt_anchors::Anchor> {
    AnchorStore::open(store)
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == kind && a.name == name)
        .collect()
}

#[tokio::test]
async fn the_controller_writes_the_delivered_dev_secret_into_its_store_and_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ta_anchors = d.join("ta-anchors.db");
    let ctl_anchors = d.join("controller-anchors.db");
    let ta_store = AnchoredTaStore::open(
        SqliteTaStore::open(&d.join("ta.sqlite")).unwrap(),
        &ta_anchors,
    )
    .unwrap();
    let ctl_store = AnchoredControllerStore::open(
        SqliteControllerStore::open(&d.join("controller.sqlite")).unwrap(),
        &ctl_anchors,
    )
    .unwrap();
    let otp_key = Key256::generate(&mut rand_core::OsRng);
    let any = "127.0.0.1:0".parse().unwrap();
    let (ta_addr, t1) = serve(
        any,
        TransferAgent::new(Arc::new(ta_store), otp_key, MANUFACTURER_TOKEN).router(),
    )
    .await
    .unwrap();
    let (ctl_addr, t2) = serve(
        any,
        Controller::new(Arc::new(ctl_store), OPERATOR_TOKEN).router(),
    )
    .await
    .unwrap();
    let (ta, ctl) = (format!("http://{ta_addr}"), format!("http://{ctl_addr}"));
    xtt_tls::install_ring_provider();
    let http = reqwest::Client::new();

    // Manufacture: the TA records the TaSecret as an anchor named by the DevURN.
    std::fs::create_dir(d.join("devices")).unwrap();
    let dev = manufacture::manufacture_one(&http, &ta, &ta, MANUFACTURER_TOKEN, &d.join("devices"))
        .await
        .unwrap();
    let urn = dev.urn.to_string();
    let ta_secret = secrets_named(&ta_anchors, AnchorKind::TteTaSecret, &urn);
    assert_eq!(ta_secret.len(), 1, "TaSecret recorded");
    assert_eq!(
        ta_secret[0].secret().unwrap().expose(),
        Key256::from_b64(&dev.ta_secret).unwrap().as_bytes()
    );

    // Bind at the TA, then the introducer delivers the DevSecret to the Controller.
    let r = http
        .put(format!("{ta}/.well-known/tte1/d/{urn}/c"))
        .json(&json!({"otp": dev.otp, "conturl": ctl}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    let scanned = SetupUrl::parse(&dev.setup_url).unwrap();
    let add = format!("{ctl}/.well-known/tte1/c/{urn}/k");
    let body = json!({"devSecret": scanned.dev_secret.to_b64(), "label": "Kitchen"});
    let r = http.put(&add).json(&body).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    // A retried add is fine and records nothing twice.
    let r = http.put(&add).json(&body).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let dev_secret = secrets_named(&ctl_anchors, AnchorKind::TteDevSecret, &urn);
    assert_eq!(dev_secret.len(), 1, "DevSecret recorded once");
    assert!(matches!(
        &dev_secret[0].provenance,
        Provenance::DeliveredByTte { .. }
    ));
    assert_eq!(
        dev_secret[0].secret().unwrap().expose(),
        scanned.dev_secret.as_bytes()
    );

    // The device enrols (TA encrypts under the stored TaSecret) and reports (Controller
    // decrypts with the stored DevSecret).
    let client = DeviceClient::new(dev.clone()).unwrap();
    let Enrollment::Controller(cont) = client.enroll(None).await.unwrap() else {
        panic!("not bound")
    };
    assert_eq!(cont, ContUrl::parse(&ctl).unwrap());
    let pack = tte::senml::Pack(vec![tte::senml::Record {
        bn: Some(format!("{urn}:")),
        n: Some("temp".into()),
        v: Some(20.0),
        ..Default::default()
    }]);
    client.report(&cont, &pack, 1).await.unwrap();

    // The operator removes the DevSecret anchor: the Controller refuses the device.
    AnchorStore::open(&ctl_anchors)
        .unwrap()
        .remove(&dev_secret[0].fingerprint)
        .unwrap();
    assert!(client.report(&cont, &pack, 2).await.is_err());
    // Removing the TaSecret anchor stops the TA's answer too.
    AnchorStore::open(&ta_anchors)
        .unwrap()
        .remove(&ta_secret[0].fingerprint)
        .unwrap();
    assert_eq!(client.enroll(None).await.unwrap(), Enrollment::NotBound);
    t1.abort();
    t2.abort();
}
