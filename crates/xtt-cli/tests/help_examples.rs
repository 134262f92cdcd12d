//! Every subcommand an operator runs on its own shows examples in its own `--help`, not only in
//! its parent's.

mod common;

use common::ok;

#[test]
fn each_subcommand_has_examples_in_its_own_help() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in [
        &["registry", "migrate"][..],
        &["registry", "stats"],
        &["registry", "export"],
        &["update", "sign"],
        &["update", "verify"],
        &["update", "show"],
        &["update", "fetch"],
        &["anchors", "list"],
        &["anchors", "show"],
        &["anchors", "export"],
        &["anchors", "roles"],
        &["tte", "transfer-agent"],
        &["tte", "controller"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = ok(tmp.path(), &args);
        let examples: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.starts_with("Example"))
            .skip(1)
            .filter(|l| l.trim_start().starts_with("xtt "))
            .collect();
        let name = cmd.join(" ");
        assert!(
            examples.iter().any(|l| l.contains(&name)),
            "`xtt {name} --help` has no example of itself:\n{help}"
        );
    }
}
