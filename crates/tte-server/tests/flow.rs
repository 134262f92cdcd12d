//! The whole enrollment over real sockets, and every rejection the issue lists.

mod common;

use std::sync::Arc;

use common::{assert_refused, enrolled, one_reading};
use reqwest::StatusCode;
use serde_json::json;
use tte::api::StoredReading;
use tte::{jwe, ContUrl, DevUrn, Key256, SetupUrl};
use tte_server::device::{DeviceClient, DeviceSecrets, Enrollment};

#[tokio::test]
async fn full_flow_create_scan_setup_alive_bind_add_fetch_report_list() {
    let s = common::start().await;
    let http = &s.http;
    let dev = s.manufacture().await;
    let client = DeviceClient::new(dev.clone()).unwrap();

    // Files on disk: secrets, QR PNG + SVG, all 0600 (the QR codes carry the OTP and DevSecret).
    let stem = dev.urn.file_stem();
    #[cfg(unix)]
    for ext in ["json", "png", "svg"] {
        let meta = std::fs::metadata(s.out().join(format!("{stem}.{ext}"))).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600,
            "{stem}.{ext}"
        );
    }
    assert!(s.out().join(format!("{stem}.png")).exists());
    assert!(std::fs::read_to_string(s.out().join(format!("{stem}.svg")))
        .unwrap()
        .contains("<svg"));

    // Before any bind the device is told "not yet".
    assert_eq!(client.enroll(None).await.unwrap(), Enrollment::NotBound);

    // Scan: the QR URL parses, and its fragment (DevSecret) is not what reaches the server.
    let scanned = SetupUrl::parse(&dev.setup_url).unwrap();
    assert_eq!(scanned.urn, dev.urn);
    let page_url = dev.setup_url.split('#').next().unwrap();
    let page = http.get(page_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-state="ready""#), "{html}");
    assert!(html.contains(dev.urn.as_str()));
    // The /d/ alias serves the same page.
    let alias = page_url.replace("/.well-known/tte1/", "/.well-known/tte1/d/");
    assert_eq!(
        http.get(&alias).send().await.unwrap().status(),
        StatusCode::OK
    );

    // Alive, with CORS for any origin.
    let alive = http
        .get(format!("{}/.well-known/tte1/alive", s.ctl))
        .header("Origin", "http://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), StatusCode::OK);
    assert_eq!(alive.headers()["access-control-allow-origin"], "*");

    // Bind at the TA, add at the Controller (with the preflight a browser would send).
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let pre = http
        .request(reqwest::Method::OPTIONS, s.add_url(&dev.urn))
        .header("Origin", s.ta.clone())
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    let r = s
        .add(&dev.urn, &scanned.dev_secret.to_b64(), Some("Kitchen"))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // The page now reports the OTP as used.
    let again = http.get(page_url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains(r#"data-state="used""#));

    // Device: fetch + decrypt, report twice.
    let cont = enrolled(&client).await;
    assert_eq!(cont, ContUrl::parse(&s.ctl).unwrap());
    client
        .report(&cont, &one_reading(&dev.urn, 21.5), 1)
        .await
        .unwrap();
    client
        .report(&cont, &one_reading(&dev.urn, 22.0), 2)
        .await
        .unwrap();

    // Operator view.
    let list = s.devices().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].urn, dev.urn.as_str());
    assert_eq!(list[0].label.as_deref(), Some("Kitchen"));
    assert_eq!((list[0].last_seq, list[0].readings), (Some(2), 2));
    let readings: Vec<StoredReading> = s.readings(&dev.urn).await;
    let values: Vec<_> = readings
        .iter()
        .map(|r| (r.seq, r.reading.value.clone()))
        .collect();
    assert_eq!(
        values,
        [
            (1, tte::senml::Value::Number(21.5)),
            (2, tte::senml::Value::Number(22.0))
        ]
    );
    assert_eq!(readings[0].reading.name, format!("{}:temp", dev.urn));
    let unauth = http
        .get(format!("{}/devices", s.ctl))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_refused!(unauth, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// A device's readings are the operator's: without the operator token, or with another one
/// (the manufacturer's, a token with a wrong prefix, a non-bearer scheme), the Controller
/// answers 401 and no reading, for an enrolled device that has readings.
#[tokio::test]
async fn readings_need_the_operator_token() {
    let s = common::start().await;
    let dev = s.manufacture().await;
    let scanned = SetupUrl::parse(&dev.setup_url).unwrap();
    assert_eq!(
        s.bind(&dev.urn, &dev.otp, &s.ctl).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.add(&dev.urn, &scanned.dev_secret.to_b64(), None)
            .await
            .status(),
        StatusCode::CREATED
    );
    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = enrolled(&client).await;
    client
        .report(&cont, &one_reading(&dev.urn, 19.25), 1)
        .await
        .unwrap();
    // With the operator token the reading is there (so a refusal below is about the token).
    let readings: Vec<StoredReading> = s.readings(&dev.urn).await;
    assert_eq!(readings.len(), 1);

    let url = format!("{}/devices/{}/readings", s.ctl, dev.urn);
    let none = s.http.get(&url).send().await.unwrap();
    assert_refused!(none, StatusCode::UNAUTHORIZED, "unauthorized");
    for token in [
        "wrong",
        common::MANUFACTURER_TOKEN,
        &format!("{}x", common::OPERATOR_TOKEN),
    ] {
        let r = s.http.get(&url).bearer_auth(token).send().await.unwrap();
        assert_refused!(r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let basic = s
        .http
        .get(&url)
        .header("Authorization", format!("Basic {}", common::OPERATOR_TOKEN))
        .send()
        .await
        .unwrap();
    let (status, body) = (basic.status(), basic.text().await.unwrap());
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains("19.25"), "{body}");
}

#[tokio::test]
async fn otp_is_single_use_under_50_racing_binds() {
    let s = common::start().await;
    let dev = s.manufacture().await;
    let http = &s.http;
    let url = Arc::new(s.bind_url(&dev.urn));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (http, url, otp) = (http.clone(), url.clone(), dev.otp.clone());
        set.spawn(async move {
            http.put(url.as_str())
                .json(&json!({"otp": otp, "conturl": format!("https://controller-{i}.example")}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let mut statuses = Vec::new();
    while let Some(r) = set.join_next().await {
        statuses.push(r.unwrap());
    }
    let wins = statuses
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    let used = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((wins, used), (1, 49), "{statuses:?}");
    // And later, sequentially, too.
    let r = s.bind(&dev.urn, &dev.otp, "https://x.example").await;
    assert_refused!(r, StatusCode::CONFLICT, "otp_used");
}

#[tokio::test]
async fn rejections() {
    let s = common::start().await;
    let http = &s.http;
    let dev = s.manufacture().await;
    let other = s.manufacture().await;

    // Manufacturer API: token required; a repeat of the registration (same secrets) is 200,
    // another registration under the same DevURN 409.
    let create = format!("{}/.well-known/tte1/d/{}", s.ta, dev.urn);
    let body = json!({"otp": dev.otp, "taSecret": dev.ta_secret});
    let r = http.post(&create).json(&body).send().await.unwrap();
    assert_refused!(r, StatusCode::UNAUTHORIZED, "unauthorized");
    let post = |body: serde_json::Value| {
        http.post(&create)
            .bearer_auth(common::MANUFACTURER_TOKEN)
            .json(&body)
            .send()
    };
    assert_eq!(post(body).await.unwrap().status(), StatusCode::OK);
    let other_secret = Key256::generate(&mut rand_core::OsRng).to_b64();
    let r = post(json!({"otp": dev.otp, "taSecret": other_secret}))
        .await
        .unwrap();
    assert_refused!(r, StatusCode::CONFLICT, "exists");
    let r = post(json!({"otp": other.otp, "taSecret": dev.ta_secret}))
        .await
        .unwrap();
    assert_refused!(r, StatusCode::CONFLICT, "exists");

    // Fetch before bind: 404; unknown device: 404.
    let fetch = format!("{}/.well-known/tte1/{}/c", s.ta, dev.urn);
    assert_refused!(
        http.get(&fetch).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_bound"
    );
    let r = http
        .get(format!(
            "{}/.well-known/tte1/urn:dev:mac:000000000000/c",
            s.ta
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Wrong OTP (another device's) and malformed input.
    let r = s.bind(&dev.urn, &other.otp, &s.ctl).await;
    assert_refused!(r, StatusCode::FORBIDDEN, "wrong_otp");
    let r = s.bind(&dev.urn, &dev.otp, "ftp://x").await;
    assert_refused!(r, StatusCode::BAD_REQUEST, "bad_conturl");
    let r = http
        .put(s.bind_url(&dev.urn))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_refused!(r, StatusCode::BAD_REQUEST, "bad_json");
    let r = http
        .get(format!("{}/.well-known/tte1/urn:bad%2Fslash/c", s.ta))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = http
        .get(format!(
            "{}/.well-known/tte1/{}/s?otp={}",
            s.ta, dev.urn, other.otp
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains(r#"data-state="bad-otp""#));

    // Oversized bodies: 413 with the JSON error shape, on both services.
    let big = "x".repeat(tte_server::http::MAX_BODY + 1);
    let r = http
        .put(s.bind_url(&dev.urn))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_refused!(r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let r = http
        .put(format!("{}/.well-known/tte1/s/{}/v", s.ctl, dev.urn))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_refused!(r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    // Bind and add properly, then attack the sensor endpoint.
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A bound device is no longer "the same registration": its OTP is spent.
    let r = http
        .post(&create)
        .bearer_auth(common::MANUFACTURER_TOKEN)
        .json(&json!({"otp": dev.otp, "taSecret": dev.ta_secret}))
        .send()
        .await
        .unwrap();
    assert_refused!(r, StatusCode::CONFLICT, "exists");
    assert_eq!(
        s.add(&dev.urn, &dev.dev_secret, None).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.add(&dev.urn, &dev.dev_secret, None).await.status(),
        StatusCode::OK,
        "identical retry"
    );
    let r = s.add(&dev.urn, &other.dev_secret, None).await;
    assert_refused!(r, StatusCode::CONFLICT, "device_exists");
    assert_eq!(
        s.add(&other.urn, &other.dev_secret, None).await.status(),
        StatusCode::CREATED
    );

    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = client.fetch_controller().await.unwrap().unwrap();
    let put = |urn: &DevUrn, body: String| {
        http.put(format!("{}/.well-known/tte1/s/{urn}/v", s.ctl))
            .header("content-type", jwe::MEDIA_TYPE)
            .body(body)
            .send()
    };
    let good = client.seal_update(&one_reading(&dev.urn, 1.0), 10);

    // Tampered ciphertext: one character of the ciphertext part changed.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let c = parts[3].remove(0);
    parts[3].insert(0, if c == 'A' { 'B' } else { 'A' });
    let r = put(&dev.urn, parts.join(".")).await.unwrap();
    assert_refused!(r, StatusCode::FORBIDDEN, "jwe_rejected");

    // Wrong AAD: a JWE sealed under this device's key but labelled (kid) for another DevURN,
    // and the same JWE sent to another device's path.
    let dkey = Key256::from_b64(&dev.dev_secret).unwrap();
    let mislabelled = jwe::encrypt(
        &dkey,
        &other.urn,
        Some(11),
        None,
        &one_reading(&dev.urn, 1.0).to_json(),
        &mut rand_core::OsRng,
    );
    let r = put(&other.urn, mislabelled).await.unwrap();
    assert_refused!(r, StatusCode::FORBIDDEN, "jwe_rejected");
    let r = put(&other.urn, good.clone()).await.unwrap();
    assert_refused!(r, StatusCode::FORBIDDEN, "jwe_rejected");

    // The good one is accepted once; replaying it, or an older counter, is refused.
    assert_eq!(
        put(&dev.urn, good.clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let r = put(&dev.urn, good).await.unwrap();
    assert_refused!(r, StatusCode::CONFLICT, "replay");
    let older = client.seal_update(&one_reading(&dev.urn, 2.0), 9);
    let r = put(&dev.urn, older).await.unwrap();
    assert_refused!(r, StatusCode::CONFLICT, "replay");
    // No counter at all, invalid SenML.
    let no_seq = jwe::encrypt(
        &dkey,
        &dev.urn,
        None,
        None,
        &one_reading(&dev.urn, 1.0).to_json(),
        &mut rand_core::OsRng,
    );
    assert_refused!(
        put(&dev.urn, no_seq).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "missing_seq"
    );
    let bad_senml = jwe::encrypt(
        &dkey,
        &dev.urn,
        Some(20),
        None,
        b"[{\"v\":1}]",
        &mut rand_core::OsRng,
    );
    assert_refused!(
        put(&dev.urn, bad_senml).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "bad_senml"
    );
    client
        .report(&cont, &one_reading(&dev.urn, 3.0), 21)
        .await
        .unwrap();

    // A TA response tampered in transit fails at the device.
    let body = http.get(&fetch).send().await.unwrap().text().await.unwrap();
    let tkey = Key256::from_b64(&dev.ta_secret).unwrap();
    assert!(jwe::decrypt(&tkey, &dev.urn, &body).is_ok());
    assert!(jwe::decrypt(&tkey, &other.urn, &body).is_err());
    assert!(jwe::decrypt(
        &Key256::from_b64(&other.ta_secret).unwrap(),
        &dev.urn,
        &body
    )
    .is_err());
}

/// Both services stopped and started anew (new processes would do the same) on the same
/// files and addresses: the bind, the add, the counter and the readings are all still there,
/// as seen through HTTP.
#[tokio::test]
async fn state_survives_a_restart() {
    use tte_server::store::sqlite::{SqliteControllerStore, SqliteTaStore};
    let mut s = common::start().await;
    let dev = s.manufacture().await;
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s.add(&dev.urn, &dev.dev_secret, Some("Cellar")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = enrolled(&client).await;
    client
        .report(&cont, &one_reading(&dev.urn, 12.5), 1)
        .await
        .unwrap();
    // Database and WAL hold secrets: owner-only.
    #[cfg(unix)]
    for p in [s.ta_db(), s.ctl_db(), s.dir.path().join("ta.sqlite-wal")] {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }

    s.stop().await;
    let ta_store = SqliteTaStore::open(&s.ta_db()).unwrap();
    let ctl_store = SqliteControllerStore::open(&s.ctl_db()).unwrap();
    s.start_ta(Arc::new(ta_store)).await;
    s.start_controller(Arc::new(ctl_store)).await;

    // The device is still told its Controller (the bind and the TaSecret survived), the page
    // still says its OTP is spent, and the Controller still knows the device, its label, its
    // counter and its reading.
    let client = DeviceClient::new(dev.clone()).unwrap();
    assert_eq!(enrolled(&client).await, ContUrl::parse(&s.ctl).unwrap());
    let page = dev.setup_url.split('#').next().unwrap();
    let r = s.http.get(page).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let list = s.devices().await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].label.as_deref(), Some("Cellar"));
    assert_eq!((list[0].last_seq, list[0].readings), (Some(1), 1));
    let readings: Vec<StoredReading> = s.readings(&dev.urn).await;
    assert_eq!(readings[0].reading.value, tte::senml::Value::Number(12.5));
    // The replay floor survived too; the DevSecret still decrypts the next update.
    let e = client
        .report(&cont, &one_reading(&dev.urn, 13.0), 1)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("409"), "{e}");
    client
        .report(&cont, &one_reading(&dev.urn, 13.0), 2)
        .await
        .unwrap();
}

/// Over HTTP: a squatter adds a device's DevURN under a secret of its own (the add takes no
/// credential), posts one update with the highest counter, and the operator removes the entry.
/// The real device, added with its real DevSecret, then reports (its counter is its own), while
/// a re-add under the squatter's secret still refuses the squatter's captured update.
#[tokio::test]
async fn a_squatters_counter_does_not_block_the_real_device() {
    let s = common::start().await;
    let dev = s.manufacture().await;
    let squat = Key256::generate(&mut rand_core::OsRng);
    let r = s.add(&dev.urn, &squat.to_b64(), None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let update_url = format!("{}/.well-known/tte1/s/{}/v", s.ctl, dev.urn);
    let pack = one_reading(&dev.urn, 99.0).to_json();
    let sealed = jwe::encrypt(
        &squat,
        &dev.urn,
        Some(u64::MAX),
        Some(tte::senml::MEDIA_TYPE),
        &pack,
        &mut rand_core::OsRng,
    );
    let put = |body: String| s.http.put(&update_url).body(body).send();
    assert_eq!(
        put(sealed.clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let r = s.remove(&dev.urn, common::OPERATOR_TOKEN).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let real = SetupUrl::parse(&dev.setup_url).unwrap().dev_secret.to_b64();
    assert_eq!(
        s.add(&dev.urn, &real, None).await.status(),
        StatusCode::CREATED
    );
    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let client = DeviceClient::new(dev.clone()).unwrap();
    let cont = enrolled(&client).await;
    client
        .report(&cont, &one_reading(&dev.urn, 20.0), 1)
        .await
        .unwrap();
    assert_eq!(s.devices().await[0].last_seq, Some(1));

    // The squatter's secret is let in again (say the operator re-adds it by mistake): its
    // captured update is still a replay.
    let r = s.remove(&dev.urn, common::OPERATOR_TOKEN).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.add(&dev.urn, &squat.to_b64(), None).await.status(),
        StatusCode::CREATED
    );
    assert_refused!(put(sealed).await.unwrap(), StatusCode::CONFLICT, "replay");
}

/// A Controller's add rate stops a box part-way: `bulk bind` waits out each 429's Retry-After
/// and adds the rest.
#[tokio::test]
async fn bulk_bind_waits_out_the_controllers_rate_limit() {
    let s = common::start_rated(tte_server::controller::ControllerRates {
        adds: xtt_ratelimit::RateLimits::per_client(10.0, 2.0),
        ..Default::default()
    })
    .await;
    let range = tte::bulk::UrnRange {
        prefix: "urn:dev:mac:90a2da01".into(),
        first: 0x1a00,
        count: 4,
        width: 4,
    };
    let out = s.out().join("box");
    std::fs::create_dir_all(&out).unwrap();
    let label = tte_server::bulk::create_box(
        &s.http,
        &s.ta,
        &s.ta,
        common::MANUFACTURER_TOKEN,
        range,
        &out,
        || {},
    )
    .await
    .unwrap();
    let cont = ContUrl::parse(&s.ctl).unwrap();
    let t0 = std::time::Instant::now();
    let added = tte_server::bulk::bind_box(&s.http, &label, &cont, None)
        .await
        .unwrap();
    assert_eq!(added, 4);
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(900),
        "waited"
    );
}

#[tokio::test]
async fn bulk_box_binds_with_one_call() {
    let s = common::start().await;
    let http = &s.http;
    let range = tte::bulk::UrnRange {
        prefix: "urn:dev:mac:90a2da00".into(),
        first: 0x1a00,
        count: 4,
        width: 4,
    };
    let out = s.out().join("box");
    std::fs::create_dir_all(&out).unwrap();
    let mut n = 0;
    let label = tte_server::bulk::create_box(
        http,
        &s.ta,
        &s.ta,
        common::MANUFACTURER_TOKEN,
        range,
        &out,
        || n += 1,
    )
    .await
    .unwrap();
    assert_eq!(n, 4);
    let parsed =
        tte::bulk::BoxLabel::parse(&std::fs::read_to_string(out.join("box-label.txt")).unwrap())
            .unwrap();
    assert_eq!(parsed, label);
    // A label with the wrong master binds nothing.
    let mut forged = label.clone();
    forged.otp_master = Key256::generate(&mut rand_core::OsRng);
    let cont = ContUrl::parse(&s.ctl).unwrap();
    assert!(tte_server::bulk::bind_box(http, &forged, &cont, None)
        .await
        .is_err());
    assert_eq!(
        tte_server::bulk::bind_box(http, &label, &cont, Some("box 1"))
            .await
            .unwrap(),
        4
    );
    // Binding it again to the same Controller is a retry: nothing changes, all are there.
    assert_eq!(
        tte_server::bulk::bind_box(http, &label, &cont, None)
            .await
            .unwrap(),
        4
    );
    assert_eq!(s.devices().await.len(), 4);
    // To another Controller, it is refused: the OTPs are spent.
    let other = ContUrl::parse("https://other-controller.example").unwrap();
    let err = tte_server::bulk::bind_box(http, &label, &other, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("otp_used"), "{err}");
    // Every device of the box enrolls and reports.
    for urn in label.range.urns().unwrap() {
        let secrets = common::read_secrets(&out.join(format!("{}.json", urn.file_stem())));
        let c = DeviceClient::new(secrets).unwrap();
        let got = enrolled(&c).await;
        c.report(&got, &one_reading(&urn, 5.0), 1).await.unwrap();
    }
}

/// A box bind the Controller stopped part-way (503: it holds as many devices as it may) is
/// finished by running it again once the Controller's limit is raised: the Transfer Agent takes
/// the repeated bind to the same Controller as a retry, and every device ends up added.
#[tokio::test]
async fn a_box_bind_the_controller_stopped_is_finished_by_running_it_again() {
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
    let first = limited(2);
    let mut s = common::start_with(dir, ta_store, first).await;
    let range = tte::bulk::UrnRange {
        prefix: "urn:dev:mac:90a2da02".into(),
        first: 0x3c00,
        count: 4,
        width: 4,
    };
    let out = s.out().join("box-limited");
    std::fs::create_dir_all(&out).unwrap();
    let label = tte_server::bulk::create_box(
        &s.http,
        &s.ta,
        &s.ta,
        common::MANUFACTURER_TOKEN,
        range,
        &out,
        || {},
    )
    .await
    .unwrap();
    let cont = ContUrl::parse(&s.ctl).unwrap();
    let err = tte_server::bulk::bind_box(&s.http, &label, &cont, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too_many_devices"), "{err}");
    assert_eq!(s.devices().await.len(), 2);

    // The operator raises the limit (a restart with another --max-devices); the same command
    // again finishes the box.
    s.stop_controller().await;
    s.start_controller(limited(10)).await;
    let added = tte_server::bulk::bind_box(&s.http, &label, &cont, None)
        .await
        .unwrap();
    assert_eq!(added, 4);
    assert_eq!(s.devices().await.len(), 4);
    for urn in label.range.urns().unwrap() {
        let secrets = common::read_secrets(&out.join(format!("{}.json", urn.file_stem())));
        let c = DeviceClient::new(secrets).unwrap();
        let got = enrolled(&c).await;
        c.report(&got, &one_reading(&urn, 5.0), 1).await.unwrap();
    }
}

/// A single bind repeated with the right OTP and the same Controller is a retry (204); with
/// another Controller it is refused (409 `otp_used`), and the first binding stands.
#[tokio::test]
async fn a_repeated_bind_to_the_same_controller_is_a_retry() {
    let s = common::start().await;
    let dev = s.manufacture().await;
    for _ in 0..2 {
        let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let r = s.bind(&dev.urn, &dev.otp, "https://other.example").await;
    assert_refused!(r, StatusCode::CONFLICT, "otp_used");
    let wrong = tte::Otp::generate(&mut rand_core::OsRng).to_b64();
    let r = s.bind(&dev.urn, &wrong, &s.ctl).await;
    assert_refused!(r, StatusCode::FORBIDDEN, "wrong_otp");
    let client = DeviceClient::new(dev).unwrap();
    assert_eq!(enrolled(&client).await, ContUrl::parse(&s.ctl).unwrap());
}

#[tokio::test]
async fn a_box_run_that_stopped_half_way_is_resumed_from_its_files() {
    let s = common::start().await;
    let http = &s.http;
    let range = tte::bulk::UrnRange {
        prefix: "urn:dev:mac:90a2da00".into(),
        first: 0x2b00,
        count: 3,
        width: 4,
    };
    let out = s.out().join("box-resumed");
    std::fs::create_dir_all(&out).unwrap();
    let (ta, out_dir) = (&s.ta, &out);
    let create = |token: &'static str, range: tte::bulk::UrnRange| async move {
        tte_server::bulk::create_box(http, ta, ta, token, range, out_dir, || {}).await
    };
    // The first run stops at its first registration (refused): the label and that device's
    // secrets are on disk already, nothing is registered.
    let err = create("not-the-token", range.clone()).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let first_label = std::fs::read_to_string(out.join("box-label.txt")).unwrap();
    let first_urn = range.urns().unwrap()[0].clone();
    let first_secrets = common::read_secrets(&out.join(format!("{}.json", first_urn.file_stem())));

    // The same command again finishes the box with the same label and secrets.
    let label = create(common::MANUFACTURER_TOKEN, range.clone())
        .await
        .unwrap();
    assert_eq!(label.to_url() + "\n", first_label);
    let again = common::read_secrets(&out.join(format!("{}.json", first_urn.file_stem())));
    assert_eq!(again.ta_secret, first_secrets.ta_secret);

    // Once more, as after a crash past every registration: each device is registered again
    // with the same secrets, which the Transfer Agent accepts (200), and nothing changes.
    let label2 = create(common::MANUFACTURER_TOKEN, range.clone())
        .await
        .unwrap();
    assert_eq!(label2, label);

    // Another range in the same directory is refused before anything is written or sent.
    let mut other = range.clone();
    other.first = 0x2c00;
    let err = create(common::MANUFACTURER_TOKEN, other).await.unwrap_err();
    assert!(err.to_string().contains("another box"), "{err}");

    // A registration under a known DevURN with other secrets is still a conflict.
    let mut forged = first_secrets.clone();
    forged.ta_secret = Key256::generate(&mut rand_core::OsRng).to_b64();
    let err = tte_server::manufacture::register(http, common::MANUFACTURER_TOKEN, &forged)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");

    // And the box binds and its devices enroll.
    let cont = ContUrl::parse(&s.ctl).unwrap();
    assert_eq!(
        tte_server::bulk::bind_box(http, &label, &cont, None)
            .await
            .unwrap(),
        3
    );
    let c = DeviceClient::new(again).unwrap();
    enrolled(&c).await;
}

#[tokio::test]
async fn xtt_controller_is_handed_over() {
    struct Recorder(std::sync::Mutex<Vec<(String, u16)>>);
    impl tte_server::device::XttHandover for Recorder {
        fn provision<'a>(
            &'a self,
            host: &'a str,
            port: u16,
            _device: &'a DeviceSecrets,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = Result<(), tte_server::xtt_enroll::XttError>>
                    + Send
                    + 'a,
            >,
        > {
            self.0.lock().unwrap().push((host.to_owned(), port));
            Box::pin(async { Ok(()) })
        }
    }
    let s = common::start().await;
    let dev = s.manufacture().await;
    let r = s.bind(&dev.urn, &dev.otp, "xtt://127.0.0.1:4444").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let c = DeviceClient::new(dev).unwrap();
    assert!(matches!(
        c.enroll(None).await.unwrap(),
        Enrollment::XttPending(_)
    ));
    let rec = Recorder(Default::default());
    assert!(matches!(
        c.enroll(Some(&rec)).await.unwrap(),
        Enrollment::HandedToXtt(_)
    ));
    assert_eq!(
        rec.0.lock().unwrap().as_slice(),
        [("127.0.0.1".to_owned(), 4444)]
    );
}

/// Setup and bind answer a DevURN nobody registered exactly as a registered one with a wrong
/// OTP: the same URN and OTP, asked before and after the device is registered (under another
/// OTP), get the same status and the same bytes. Otherwise DevURNs could be enumerated.
#[tokio::test]
async fn an_unknown_device_is_answered_as_a_wrong_otp() {
    let s = common::start().await;
    let http = &s.http;
    let urn = DevUrn::parse("urn:dev:mac:0200000000a1").unwrap();
    let guess = tte::Otp::generate(&mut rand_core::OsRng).to_b64();
    let page = format!("{}/.well-known/tte1/{urn}/s?otp={guess}", s.ta);
    let d_page = format!("{}/.well-known/tte1/d/{urn}/s?otp={guess}", s.ta);
    let no_otp = format!("{}/.well-known/tte1/{urn}/s", s.ta);
    let answers = || async {
        let mut out = Vec::new();
        let r = s.bind(&urn, &guess, &s.ctl).await;
        out.push((r.status(), r.bytes().await.unwrap()));
        for url in [&page, &d_page, &no_otp] {
            let r = http.get(url).send().await.unwrap();
            out.push((r.status(), r.bytes().await.unwrap()));
        }
        out
    };
    let unknown = answers().await;

    let r = http
        .post(format!("{}/.well-known/tte1/d/{urn}", s.ta))
        .bearer_auth(common::MANUFACTURER_TOKEN)
        .json(&json!({
            "otp": tte::Otp::generate(&mut rand_core::OsRng).to_b64(),
            "taSecret": Key256::generate(&mut rand_core::OsRng).to_b64(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let registered = answers().await;

    assert_eq!(unknown, registered);
    assert_eq!(unknown[0].0, StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_slice(&unknown[0].1).unwrap();
    assert_eq!(body["error"], "wrong_otp");
    assert_eq!(unknown[1].0, StatusCode::FORBIDDEN);
}

/// The Controller's update endpoint answers a DevURN nobody enrolled exactly as an enrolled one
/// until an update decrypts: the same requests, sent before and after the DevURN is added (under
/// a DevSecret the sender does not have), get the same status and the same bytes. Otherwise
/// enrolled DevURNs could be listed.
#[tokio::test]
async fn an_unknown_device_is_answered_as_an_enrolled_one_at_the_update_endpoint() {
    let s = common::start().await;
    let urn = DevUrn::parse("urn:dev:mac:0200000000b2").unwrap();
    let other = DevUrn::parse("urn:dev:mac:0200000000b3").unwrap();
    let guess = Key256::generate(&mut rand_core::OsRng);
    let seal = |kid: &DevUrn, seq| {
        jwe::encrypt(
            &guess,
            kid,
            seq,
            Some(tte::senml::MEDIA_TYPE),
            &one_reading(&urn, 1.0).to_json(),
            &mut rand_core::OsRng,
        )
    };
    let bodies = [
        "not a JWE".to_owned(),
        seal(&urn, Some(1)),
        seal(&urn, None),
        seal(&other, Some(1)),
    ];
    let answers = || async {
        let mut out = Vec::new();
        for body in &bodies {
            let r = s
                .http
                .put(format!("{}/.well-known/tte1/s/{urn}/v", s.ctl))
                .header("content-type", jwe::MEDIA_TYPE)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            out.push((r.status(), r.bytes().await.unwrap()));
        }
        out
    };
    let unknown = answers().await;
    let real = Key256::generate(&mut rand_core::OsRng).to_b64();
    assert_eq!(s.add(&urn, &real, None).await.status(), StatusCode::CREATED);
    let enrolled = answers().await;
    assert_eq!(unknown, enrolled);
    let statuses: Vec<_> = unknown.iter().map(|(st, _)| *st).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::BAD_REQUEST,
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN
        ]
    );
}
