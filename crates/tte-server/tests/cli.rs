//! The `tte` subcommands, run in-process against services on 127.0.0.1, as the project CLI will.

mod common;

use clap::{CommandFactory, Parser};
use serde_json::json;
use tte_server::cli::{run, TteCommand};

#[derive(Parser)]
struct Xtt {
    #[command(subcommand)]
    tte: TteCommand,
}

fn parse(args: &[&str]) -> TteCommand {
    let mut v = vec!["xtt"];
    v.extend_from_slice(args);
    Xtt::try_parse_from(v).unwrap().tte
}

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
    let out_s = out.to_str().unwrap();
    run(parse(&[
        "manufacture",
        "--ta",
        &s.ta,
        "--token",
        common::MANUFACTURER_TOKEN,
        "--count",
        "3",
        "--out",
        out_s,
    ]))
    .await
    .unwrap();
    let mut jsons: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    jsons.sort();
    assert_eq!(jsons.len(), 3);
    for j in &jsons {
        assert!(j.with_extension("png").exists() && j.with_extension("svg").exists());
    }
    let secrets = jsons[0].to_str().unwrap();
    let dev: tte_server::device::DeviceSecrets =
        serde_json::from_slice(&std::fs::read(secrets).unwrap()).unwrap();

    // Not bound yet: fetch is an error that says so.
    let e = run(parse(&["device", "fetch", "--secrets", secrets]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no Controller is bound"), "{e}");

    let http = common::http();
    let r = http
        .put(format!("{}/.well-known/tte1/d/{}/c", s.ta, dev.urn))
        .json(&json!({"otp": dev.otp, "conturl": s.ctl}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .put(format!("{}/.well-known/tte1/c/{}/k", s.ctl, dev.urn))
        .json(&json!({"devSecret": dev.dev_secret}))
        .send()
        .await
        .unwrap();
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
    let readings: serde_json::Value = http
        .get(format!("{}/devices/{}/readings", s.ctl, dev.urn))
        .bearer_auth(common::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
