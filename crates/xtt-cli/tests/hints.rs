//! What the `xtt` binary tells its user when something is off: help that matches what is
//! accepted, refusals that list their likely causes, hints that can be pasted as printed, and
//! values that would do nothing refused up front.

mod common;

/// Every `-s` accepts suites 1-6, and every help says so (5 and 6 do not encrypt).
#[test]
fn every_suite_option_says_1_to_6() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for cmd in [
        &["client", "provision"][..],
        &["client", "connect"],
        &["bench"],
        &["demo"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = common::xtt_command(d)
            .args(&args)
            .env("COLUMNS", "1000")
            .output()
            .unwrap();
        let help = String::from_utf8(help.stdout).unwrap();
        let line = help
            .lines()
            .skip_while(|l| !l.contains("--suitespec"))
            .nth(1)
            .unwrap_or_default();
        assert!(
            line.contains("1-6 (5 and 6 authenticate records without encrypting them)"),
            "xtt {cmd:?} --help: {line}"
        );
        assert!(!help.contains("1-4"), "xtt {cmd:?} --help: {help}");
    }
    // What the help says is what is accepted.
    let err = common::fails(d, &["bench", "-s", "7", "--handshakes", "1"]);
    assert!(err.contains("unknown suite \"7\""), "{err}");
}
