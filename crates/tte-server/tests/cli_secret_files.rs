//! `bulk bind --label-file` and `led decode --levels-file`: the master secrets of a box and a
//! device's LED frame need not be put on the command line, where other local users read them.

mod common;

use clap::Parser as _;
use common::{parse, Xtt};
use tte::led::{self, LedFrame};
use tte_server::cli::run;

fn rejected(args: &[&str]) -> String {
    let mut v = vec!["xtt"];
    v.extend_from_slice(args);
    match Xtt::try_parse_from(v) {
        Ok(_) => panic!("{args:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_inline_and_file_forms_are_exclusive_and_one_is_needed() {
    let e = rejected(&[
        "bulk",
        "bind",
        "--label",
        "x",
        "--label-file",
        "f",
        "--conturl",
        "c",
    ]);
    assert!(e.contains("cannot be used with"), "{e}");
    let e = rejected(&["bulk", "bind", "--conturl", "c"]);
    assert!(e.contains("--label"), "{e}");
    let e = rejected(&["led", "decode", "0101", "--levels-file", "f"]);
    assert!(e.contains("cannot be used with"), "{e}");
    let e = rejected(&["led", "decode"]);
    assert!(e.contains("LEVELS") || e.contains("levels"), "{e}");
    parse(&["bulk", "bind", "--label-file", "-", "--conturl", "c"]);
    parse(&["led", "decode", "--levels-file", "-"]);
}

#[test]
fn the_help_warns_that_the_command_line_is_visible() {
    let mut cmd = <Xtt as clap::CommandFactory>::command();
    let bulk = cmd.find_subcommand_mut("bulk").unwrap();
    let help = bulk
        .find_subcommand_mut("bind")
        .unwrap()
        .render_help()
        .to_string();
    assert!(
        help.contains("--label-file") && help.contains("other local users"),
        "{help}"
    );
    let mut cmd = <Xtt as clap::CommandFactory>::command();
    let led = cmd.find_subcommand_mut("led").unwrap();
    let help = led
        .find_subcommand_mut("decode")
        .unwrap()
        .render_help()
        .to_string();
    assert!(
        help.contains("--levels-file") && help.contains("other local users"),
        "{help}"
    );
}

#[tokio::test]
async fn led_decode_reads_the_levels_from_a_file() {
    let frame = LedFrame {
        ta_urn: b"urn:tte:ta.example".to_vec(),
        dev_urn: b"urn:dev:mac:90a2da001a00".to_vec(),
        otp: vec![7; 16],
        dev_secret: vec![9; 32],
    };
    let levels: String = led::nrzi_encode(&led::to_bits(&frame.encode().unwrap()))
        .iter()
        .map(|&l| if l { '1' } else { '0' })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("levels.txt");
    std::fs::write(&file, format!("{levels}\n")).unwrap();
    let file = file.to_str().unwrap();
    run(parse(&["led", "decode", "--levels-file", file]))
        .await
        .unwrap();
    let missing = dir.path().join("missing.txt");
    let e = run(parse(&[
        "led",
        "decode",
        "--levels-file",
        missing.to_str().unwrap(),
    ]))
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("missing.txt"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_bind_reads_the_label_from_the_file_bulk_create_wrote() {
    let s = common::start().await;
    let out = s.out().join("box");
    let out_s = out.to_str().unwrap();
    run(parse(&[
        "bulk",
        "create",
        "--ta",
        &s.ta,
        "--token",
        common::MANUFACTURER_TOKEN,
        "--prefix",
        "urn:dev:mac:90a2da00",
        "--first",
        "1a00",
        "--count",
        "2",
        "--out",
        out_s,
    ]))
    .await
    .unwrap();
    let label_file = out.join("box-label.txt");
    run(parse(&[
        "bulk",
        "bind",
        "--label-file",
        label_file.to_str().unwrap(),
        "--conturl",
        &s.ctl,
    ]))
    .await
    .unwrap();
    // The box is bound: a second bind, with the same label inline, to another Controller is
    // refused (to the same one it would be a retry).
    let label = std::fs::read_to_string(&label_file).unwrap();
    assert!(run(parse(&[
        "bulk",
        "bind",
        "--label",
        label.trim(),
        "--conturl",
        "https://other-controller.example",
    ]))
    .await
    .is_err());
}
