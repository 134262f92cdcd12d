//! The `tte` subcommands, run in-process against services on 127.0.0.1, as the project CLI will.

mod common;

use clap::{CommandFactory, Parser};
use common::{parse, Xtt};
use tte_server::cli::run;

#[test]
fn clap_definition_is_consistent() {
    Xtt::command().debug_assert();
    assert!(Xtt::try_parse_from([
        "xtt",
        "manufacture",
        "--count",
        "0",
        "--ta",
        "x",
        "--token",
        "t"
    ])
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manufacture_fetch_report_led_through_the_cli() {
    let s = common::start().await;
    let out = s.out().join("batch");
    common::manufacture_cli(&s.ta, &out, &["--count", "3"]).await;
    let jsons = common::secrets_files(&out);
    assert_eq!(jsons.len(), 3);
    for j in &jsons {
        assert!(j.with_extension("png").exists() && j.with_extension("svg").exists());
    }
    let secrets = jsons[0].to_str().unwrap();
    let dev = common::read_secrets(&jsons[0]);

    // Not bound yet: fetch is an error that says so.
    let e = run(parse(&["device", "fetch", "--secrets", secrets]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no Controller is bound"), "{e}");

    let r = s.bind(&dev.urn, &dev.otp, &s.ctl).await;
    assert_eq!(r.status(), 204);
    let r = s.add(&dev.urn, &dev.dev_secret, None).await;
    assert_eq!(r.status(), 201);

    run(parse(&["device", "fetch", "--secrets", secrets]))
        .await
        .unwrap();
    run(parse(&[
        "device",
        "report",
        "--secrets",
        secrets,
        "--name",
        "temp",
        "--value",
        "-3.5",
        "--unit",
        "Cel",
    ]))
    .await
    .unwrap();
    let readings: serde_json::Value = s.readings(&dev.urn).await;
    assert_eq!(readings[0]["value"]["number"], -3.5);
    assert_eq!(readings[0]["name"], format!("{}:temp", dev.urn));

    run(parse(&[
        "led",
        "encode",
        "--secrets",
        secrets,
        "--ta-urn",
        "urn:tte:ta.example",
    ]))
    .await
    .unwrap();
    assert!(run(parse(&["led", "decode", "0101"])).await.is_err());
}
