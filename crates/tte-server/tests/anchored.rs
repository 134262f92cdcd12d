//! TTE with the trust-anchor store (`--anchors`): over real sockets on 127.0.0.1 and real
//! SQLite files, the Transfer Agent records each TaSecret and the Controller the DevSecret it is
//! delivered, both then use the secrets from the store, and removing an anchor stops the device.

mod common;

use std::path::Path;
use std::sync::Arc;

use tte::{ContUrl, Key256, SetupUrl};
use tte_server::anchored::{AnchoredControllerStore, AnchoredTaStore};
use tte_server::device::{DeviceClient, Enrollment};
use tte_server::store::sqlite::{SqliteControllerStore, SqliteTaStore};
use xtt_anchors::{AnchorKind, AnchorStore, Provenance};

fn secrets_named(store: &Path, kind: AnchorKind, name: &str) -> Vec<xtt_anchors::Anchor> {
    AnchorStore::open(store)
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == kind && a.name == name)
        .collect()
}

/// A Controller store in `dir` that keeps DevSecrets in the anchor store at `anchors`.
fn controller_with_anchors(
    dir: &Path,
    anchors: &Path,
) -> AnchoredControllerStore<SqliteControllerStore> {
    AnchoredControllerStore::open(
        SqliteControllerStore::open(&dir.join("controller.sqlite")).unwrap(),
        anchors,
    )
    .unwrap()
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
    let ctl_store = controller_with_anchors(d, &ctl_anchors);
    let s = common::start_with(dir, Arc::new(ta_store), Arc::new(ctl_store)).await;

    // Manufacture: the TA records the TaSecret as an anchor named by the DevURN.
    let dev = s.manufacture().await;
    let urn = dev.urn.to_string();
    let ta_secret = secrets_named(&ta_anchors, AnchorKind::TteTaSecret, &urn);
    assert_eq!(ta_secret.len(), 1, "TaSecret recorded");
    assert_eq!(
        ta_secret[0].secret().unwrap().expose(),
        Key256::from_b64(&dev.ta_secret).unwrap().as_bytes()
    );

    // Bind at the TA, then the introducer delivers the DevSecret to the Controller.
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    let scanned = SetupUrl::parse(&dev.setup_url).unwrap();
    let dev_secret_b64 = scanned.dev_secret.to_b64();
    let r = s.add(&dev.urn, &dev_secret_b64, Some("Kitchen")).await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    // A retried add is fine and records nothing twice.
    let r = s.add(&dev.urn, &dev_secret_b64, Some("Kitchen")).await;
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
    let cont = common::enrolled(&client).await;
    assert_eq!(cont, ContUrl::parse(&s.ctl).unwrap());
    let pack = common::one_reading(&dev.urn, 20.0);
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
}

/// A squatter adds a device's URN first with a secret of its own; the operator removes the
/// entry (and with it the squatter's DevSecret anchor), then the real introducer's add
/// succeeds and the device's updates decrypt with the real DevSecret.
#[tokio::test]
async fn the_operator_removes_a_squatted_device_and_the_real_add_then_works() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ctl_anchors = d.join("controller-anchors.db");
    let ta_store = SqliteTaStore::open(&d.join("ta.sqlite")).unwrap();
    let ctl_store = controller_with_anchors(d, &ctl_anchors);
    let s = common::start_with(dir, Arc::new(ta_store), Arc::new(ctl_store)).await;
    let dev = s.manufacture().await;
    let urn = dev.urn.to_string();
    let squat = Key256::generate(&mut rand_core::OsRng).to_b64();
    assert_eq!(
        s.add(&dev.urn, &squat, None).await.status(),
        StatusCode::CREATED
    );
    let real = SetupUrl::parse(&dev.setup_url).unwrap().dev_secret.to_b64();
    assert_eq!(
        s.add(&dev.urn, &real, None).await.status(),
        StatusCode::CONFLICT
    );

    let wrong = s.remove(&dev.urn, "not-the-operator-token").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let removed = s.remove(&dev.urn, common::OPERATOR_TOKEN).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert!(secrets_named(&ctl_anchors, AnchorKind::TteDevSecret, &urn).is_empty());
    let again = s.remove(&dev.urn, common::OPERATOR_TOKEN).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    assert_eq!(
        s.add(&dev.urn, &real, None).await.status(),
        StatusCode::CREATED
    );
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = common::enrolled(&client).await;
    client
        .report(&cont, &common::one_reading(&dev.urn, 20.5), 1)
        .await
        .unwrap();
    assert_eq!(s.devices().await.len(), 1);
}

/// Removing an anchor is the revocation: a repeated registration or add of the device (answered
/// 200 as a retry, or 409) does not bring it back, and the device stays refused.
#[tokio::test]
async fn a_removed_anchor_is_not_brought_back_by_a_repeated_request() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ta_anchors, ctl_anchors) = (d.join("ta-anchors.db"), d.join("controller-anchors.db"));
    let ta_store = AnchoredTaStore::open(
        SqliteTaStore::open(&d.join("ta.sqlite")).unwrap(),
        &ta_anchors,
    )
    .unwrap();
    let ctl_store = controller_with_anchors(d, &ctl_anchors);
    let s = common::start_with(dir, Arc::new(ta_store), Arc::new(ctl_store)).await;
    let remove_all = |store: &Path, kind: AnchorKind, name: &str| {
        let mut anchors = AnchorStore::open(store).unwrap();
        for a in secrets_named(store, kind, name) {
            anchors.remove(&a.fingerprint).unwrap();
        }
    };
    let register = |dev: tte_server::device::DeviceSecrets| {
        let http = s.http.clone();
        async move { tte_server::manufacture::register(&http, common::MANUFACTURER_TOKEN, &dev).await }
    };

    // A TaSecret revoked before the bind: the manufacturer's repeated registration does not
    // record it again (the TA no longer holds a secret to find it the same, so it is answered
    // 409), and the device is never answered.
    let early = s.manufacture().await;
    let early_urn = early.urn.to_string();
    register(early.clone()).await.unwrap();
    remove_all(&ta_anchors, AnchorKind::TteTaSecret, &early_urn);
    let err = register(early.clone()).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    assert!(secrets_named(&ta_anchors, AnchorKind::TteTaSecret, &early_urn).is_empty());
    let r = s.bind(&early.urn, &early.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let early_client = DeviceClient::new(early).unwrap();
    assert_eq!(
        early_client.enroll(None).await.unwrap(),
        Enrollment::NotBound
    );

    // A device enrolled and reporting.
    let dev = s.manufacture().await;
    let urn = dev.urn.to_string();
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let real = SetupUrl::parse(&dev.setup_url).unwrap().dev_secret.to_b64();
    assert_eq!(
        s.add(&dev.urn, &real, None).await.status(),
        StatusCode::CREATED
    );
    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = common::enrolled(&client).await;
    let pack = common::one_reading(&dev.urn, 20.0);
    client.report(&cont, &pack, 1).await.unwrap();

    // The operator revokes its DevSecret; the same add again is a retry (200) and the anchor
    // stays gone, so its reports stay refused.
    remove_all(&ctl_anchors, AnchorKind::TteDevSecret, &urn);
    assert_eq!(s.add(&dev.urn, &real, None).await.status(), StatusCode::OK);
    assert!(secrets_named(&ctl_anchors, AnchorKind::TteDevSecret, &urn).is_empty());
    assert!(client.report(&cont, &pack, 2).await.is_err());
    // Another secret under its DevURN is a conflict and records nothing either.
    let other = Key256::generate(&mut rand_core::OsRng).to_b64();
    assert_eq!(
        s.add(&dev.urn, &other, None).await.status(),
        StatusCode::CONFLICT
    );
    assert!(secrets_named(&ctl_anchors, AnchorKind::TteDevSecret, &urn).is_empty());

    // The operator revokes its TaSecret; the registration repeated (409, it is bound) does not
    // bring it back.
    remove_all(&ta_anchors, AnchorKind::TteTaSecret, &urn);
    let err = register(dev.clone()).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    assert!(secrets_named(&ta_anchors, AnchorKind::TteTaSecret, &urn).is_empty());
    assert_eq!(client.enroll(None).await.unwrap(), Enrollment::NotBound);
}

/// A crash between the anchor and the row (the anchor is written first) leaves an anchor and no
/// device: the introducer's retry adds the device, which then uses that anchor; an anchor a
/// crashed add of another secret left under the DevURN is cleared, not used.
#[tokio::test]
async fn an_add_that_crashed_after_its_anchor_is_completed_by_the_retry() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ctl_anchors = d.join("controller-anchors.db");
    let ta_store = SqliteTaStore::open(&d.join("ta.sqlite")).unwrap();
    let ctl_store = controller_with_anchors(d, &ctl_anchors);
    let s = common::start_with(dir, Arc::new(ta_store), Arc::new(ctl_store)).await;
    let dev = s.manufacture().await;
    let urn = dev.urn.to_string();
    let real = SetupUrl::parse(&dev.setup_url).unwrap().dev_secret;
    let leftover = Key256::generate(&mut rand_core::OsRng);
    {
        let mut anchors = AnchorStore::open(&ctl_anchors).unwrap();
        for k in [&leftover, &real] {
            let secret = xtt_anchors::SecretBytes::new(k.as_bytes().to_vec());
            anchors
                .import_tte_secret(AnchorKind::TteDevSecret, secret, &urn, "crashed", &[], 0)
                .unwrap();
        }
    }
    assert!(s.devices().await.is_empty());
    assert_eq!(
        s.add(&dev.urn, &real.to_b64(), None).await.status(),
        StatusCode::CREATED
    );
    let left = secrets_named(&ctl_anchors, AnchorKind::TteDevSecret, &urn);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].secret().unwrap().expose(), real.as_bytes());
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = common::enrolled(&client).await;
    client
        .report(&cont, &common::one_reading(&dev.urn, 20.0), 1)
        .await
        .unwrap();
}
