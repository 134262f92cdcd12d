//! A demo installation built with the `xtt anchors` commands: its graph lists every anchor and
//! edge (text, DOT, SVG), `--impact` follows vouching transitively, and no secret is ever
//! printed. Also: the store file's mode, export/import round trips, removal.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use clap::CommandFactory;
use common::{fresh_root, vectors_dir, xtt, T0};
use xtt_anchors::anchor::{AnchorKind, EdgeKind, Fingerprint};
use xtt_anchors::update::UpdateSigningKey;
use xtt_anchors::AnchorStore;

const TA_SECRET: [u8; 32] = [0xa7; 32];
const DEV_SECRET: [u8; 32] = [0x5c; 32];

struct Demo {
    dir: tempfile::TempDir,
    db: String,
    fps: Vec<(String, Fingerprint)>,
}

impl Demo {
    fn fp(&self, name: &str) -> Fingerprint {
        self.fps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .unwrap()
    }
    fn run(&self, args: &[&str]) -> String {
        let at = T0.to_string();
        let mut all = vec!["anchors", "--store", &self.db, "--at", &at];
        all.extend_from_slice(args);
        xtt(&all).unwrap_or_else(|e| panic!("xtt {args:?}: {e:#}"))
    }
}

/// Manufacturer → DAA group, update key (rotated), XTT root → server → device identity,
/// root → TTE controller → TaSecret → DevSecret.
fn demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("anchors.db").to_str().unwrap().to_string();
    let mut demo = Demo {
        dir,
        db,
        fps: Vec::new(),
    };
    let file = |demo: &Demo, name: &str, bytes: &[u8]| {
        let p = demo.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let pem = |k: &UpdateSigningKey| k.public_pem().unwrap().into_bytes();
    let import = |demo: &mut Demo, name: &str, args: &[&str]| {
        let mut all = vec!["import"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--name", name]);
        let out = demo.run(&all);
        let hex = out
            .split_whitespace()
            .find(|w| w.len() == 64)
            .expect("fingerprint in output");
        let fp = Fingerprint(hex::decode(hex).unwrap().try_into().unwrap());
        demo.fps.push((name.to_string(), fp));
    };

    let manufacturer = UpdateSigningKey::generate(&mut common::rng(1));
    let f = file(&demo, "manufacturer.pub", &pem(&manufacturer));
    import(&mut demo, "Acme manufacturer", &["manufacturer", &f]);
    let m = demo.fp("Acme manufacturer").to_hex();

    let d = vectors_dir().join("xaptum-data/server");
    import(
        &mut demo,
        "Acme sensors group",
        &[
            "daa-group",
            d.join("daa_gpk.bin").to_str().unwrap(),
            "--basename",
            d.join("basename.bin").to_str().unwrap(),
            "--vouched-by",
            &m,
        ],
    );

    let update = UpdateSigningKey::generate(&mut common::rng(2));
    let f = file(&demo, "update.pub", &pem(&update));
    import(
        &mut demo,
        "Acme firmware 2025",
        &[
            "update-key",
            &f,
            "--vouched-by",
            &m,
            "--vendor-id",
            "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe",
            "--class-id",
            "1492af14-2569-5e48-bf42-9b2d51f2ab45",
        ],
    );

    let (root, root_key) = fresh_root(3);
    let f = file(&demo, "root_cert.bin", &root.encode());
    import(&mut demo, "Operator root", &["xtt-root", &f]);
    let (_, cert) = common::server_signed_by(&root, &root_key, 4);
    let f = file(&demo, "server.cert", cert.as_bytes());
    import(&mut demo, "xtt.example.net", &["xtt-server", &f]);

    let controller = UpdateSigningKey::generate(&mut common::rng(5));
    let f = file(&demo, "controller.pub", &pem(&controller));
    let r = demo.fp("Operator root").to_hex();
    import(
        &mut demo,
        "TTE controller",
        &["controller", &f, "--vouched-by", &r],
    );
    let c = demo.fp("TTE controller").to_hex();
    let f = file(&demo, "ta.secret", &TA_SECRET);
    import(
        &mut demo,
        "TaSecret",
        &[
            "tte-ta-secret",
            &f,
            "--vouched-by",
            &c,
            "--provenance",
            "tte",
        ],
    );
    let t = demo.fp("TaSecret").to_hex();
    let f = file(&demo, "dev.secret", &DEV_SECRET);
    import(
        &mut demo,
        "DevSecret",
        &[
            "tte-dev-secret",
            &f,
            "--vouched-by",
            &t,
            "--provenance",
            "tte",
        ],
    );

    let device_key = UpdateSigningKey::generate(&mut common::rng(6));
    let mut identity = vec![0x42u8; 16];
    identity.extend_from_slice(&device_key.public_sec1());
    let f = file(&demo, "identity.bin", &identity);
    let s = demo.fp("xtt.example.net").to_hex();
    let g = demo.fp("Acme sensors group").to_hex();
    import(
        &mut demo,
        "device 4242",
        &[
            "device-identity",
            &f,
            "--vouched-by",
            &s,
            "--vouched-by",
            &g,
            "--provenance",
            "xtt",
        ],
    );

    // The update key is rotated; its successor is vouched for by the manufacturer too.
    let next = UpdateSigningKey::generate(&mut common::rng(7));
    let f = file(&demo, "update2.pub", &pem(&next));
    let u = demo.fp("Acme firmware 2025").to_hex();
    let out = demo.run(&[
        "rotate",
        &u[..12],
        "update-key",
        &f,
        "--window",
        "30d",
        "--vouched-by",
        &m,
        "--name",
        "Acme firmware 2026",
    ]);
    let hex = out.split_whitespace().find(|w| w.len() == 64).unwrap();
    demo.fps.push((
        "Acme firmware 2026".into(),
        Fingerprint(hex::decode(hex).unwrap().try_into().unwrap()),
    ));
    demo
}

fn expected_edges(demo: &Demo) -> BTreeSet<(Fingerprint, Fingerprint, EdgeKind)> {
    let f = |n| demo.fp(n);
    let v = EdgeKind::Vouches;
    BTreeSet::from([
        (f("Acme manufacturer"), f("Acme sensors group"), v),
        (f("Acme manufacturer"), f("Acme firmware 2025"), v),
        (f("Acme manufacturer"), f("Acme firmware 2026"), v),
        (
            f("Acme firmware 2025"),
            f("Acme firmware 2026"),
            EdgeKind::RotatedTo,
        ),
        (f("Operator root"), f("xtt.example.net"), v),
        (f("Operator root"), f("TTE controller"), v),
        (f("TTE controller"), f("TaSecret"), v),
        (f("TaSecret"), f("DevSecret"), v),
        (f("xtt.example.net"), f("device 4242"), v),
        (f("Acme sensors group"), f("device 4242"), v),
    ])
}

#[test]
fn the_demo_graph_lists_every_anchor_and_edge_in_every_format() {
    let demo = demo();
    let store = AnchorStore::open(std::path::Path::new(&demo.db)).unwrap();
    let stored: BTreeSet<_> = store
        .edges()
        .unwrap()
        .into_iter()
        .map(|e| (e.from, e.to, e.kind))
        .collect();
    assert_eq!(stored, expected_edges(&demo));
    assert_eq!(store.list().unwrap().len(), demo.fps.len());
    assert_eq!(demo.fps.len(), 10);

    let text = demo.run(&["graph"]);
    let dot = demo.run(&["graph", "--format", "dot"]);
    let svg_path = demo.dir.path().join("trust.svg");
    demo.run(&[
        "graph",
        "--format",
        "svg",
        "--out",
        svg_path.to_str().unwrap(),
    ]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();

    assert!(
        text.starts_with("Trust graph: 10 anchors, 10 edges"),
        "{text}"
    );
    for (name, fp) in &demo.fps {
        assert!(
            text.contains(name) && text.contains(&fp.short()),
            "text lacks {name}\n{text}"
        );
        assert!(
            dot.contains(&format!("\"{}\" [label=", fp.to_hex())),
            "dot lacks {name}"
        );
        assert!(
            svg.contains(&format!("id=\"fp-{}\"", fp.to_hex())),
            "svg lacks {name}"
        );
    }
    for (from, to, kind) in expected_edges(&demo) {
        assert!(
            text.contains(&format!("[{}] --{}--> ", from.short(), kind.as_str()))
                && text.contains(&format!("[{}]\n", to.short())),
            "text lacks edge {from:?} -> {to:?}"
        );
        assert!(
            dot.contains(&format!("\"{}\" -> \"{}\"", from.to_hex(), to.to_hex())),
            "dot lacks edge"
        );
        assert!(
            svg.contains(&format!(
                "<title>{} {} → {} (",
                kind.as_str(),
                from.short(),
                to.short()
            )),
            "svg lacks edge"
        );
    }
    assert_eq!(svg.matches("<g class=\"node\"").count(), 10);
    assert_eq!(svg.matches("<line class=\"edge").count(), 10);
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
            && svg.trim_end().ends_with("</svg>")
    );
}

#[test]
fn impact_follows_vouching_and_rotation_transitively() {
    let demo = demo();
    let store = AnchorStore::open(std::path::Path::new(&demo.db)).unwrap();
    let graph = store.graph(T0).unwrap();
    let names = |fp: Fingerprint| -> BTreeSet<String> {
        graph
            .impact(&fp)
            .unwrap()
            .affected
            .into_iter()
            .map(|(n, _)| n.name)
            .collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        names(demo.fp("Acme manufacturer")),
        set(&[
            "Acme sensors group",
            "Acme firmware 2025",
            "Acme firmware 2026",
            "device 4242"
        ])
    );
    assert_eq!(
        names(demo.fp("Operator root")),
        set(&[
            "xtt.example.net",
            "device 4242",
            "TTE controller",
            "TaSecret",
            "DevSecret"
        ])
    );
    assert_eq!(
        names(demo.fp("Acme firmware 2025")),
        set(&["Acme firmware 2026"])
    );
    assert!(names(demo.fp("device 4242")).is_empty());

    let out = demo.run(&[
        "graph",
        "--impact",
        &demo.fp("Operator root").to_hex()[..10],
    ]);
    assert!(out.contains("certify rogue XTT servers"), "{out}");
    assert!(out.contains("for 5 anchors"), "{out}");
    for n in [
        "xtt.example.net",
        "device 4242",
        "TTE controller",
        "TaSecret",
        "DevSecret",
    ] {
        assert!(out.contains(n), "{out}");
    }
    assert!(!out.contains("Acme"), "{out}");
}

#[test]
fn secrets_are_never_printed_and_the_store_is_private() {
    let demo = demo();
    let mode = std::fs::metadata(&demo.db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "store mode {mode:o}");
    let mut outputs = vec![
        demo.run(&["list"]),
        demo.run(&["graph"]),
        demo.run(&["graph", "--format", "dot"]),
        demo.run(&["graph", "--impact", &demo.fp("TTE controller").to_hex()]),
    ];
    for n in ["TaSecret", "DevSecret"] {
        let out = demo.run(&["show", &demo.fp(n).to_hex()]);
        assert!(out.contains("secret, 32 bytes (never shown)"), "{out}");
        outputs.push(out);
    }
    for out in outputs {
        for secret in [TA_SECRET, DEV_SECRET] {
            assert!(
                !out.contains(&hex::encode(secret)),
                "secret printed:\n{out}"
            );
            assert!(
                !out.contains(&hex::encode(&secret[..4])),
                "secret prefix printed:\n{out}"
            );
        }
    }
    // Export of a secret needs --include-secret, and then writes a 0600 file.
    let ta = demo.fp("TaSecret").to_hex();
    let path = demo.dir.path().join("ta.out");
    let at = T0.to_string();
    let err = xtt(&[
        "anchors",
        "--store",
        &demo.db,
        "--at",
        &at,
        "export",
        &ta,
        "--out",
        path.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("--include-secret"), "{err}");
    demo.run(&[
        "export",
        &ta,
        "--out",
        path.to_str().unwrap(),
        "--include-secret",
    ]);
    assert_eq!(std::fs::read(&path).unwrap(), TA_SECRET);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn exported_anchors_import_again_with_the_same_fingerprint() {
    let demo = demo();
    let other = demo.dir.path().join("other.db");
    let other = other.to_str().unwrap();
    let at = T0.to_string();
    for name in [
        "Acme manufacturer",
        "Acme sensors group",
        "Operator root",
        "xtt.example.net",
    ] {
        let fp = demo.fp(name);
        let out_file = demo.dir.path().join(format!("{}.out", fp.short()));
        let out_file = out_file.to_str().unwrap();
        demo.run(&["export", &fp.to_hex(), "--out", out_file]);
        let store = AnchorStore::open(std::path::Path::new(&demo.db)).unwrap();
        let kind = store.get(&fp).unwrap().kind;
        let mut args = vec![
            "anchors",
            "--store",
            other,
            "--at",
            &at,
            "import",
            kind.as_str(),
            out_file,
        ];
        let bsn = format!("{out_file}.basename");
        if kind == AnchorKind::DaaGroup {
            args.extend_from_slice(&["--basename", &bsn]);
        }
        let out = xtt(&args).unwrap();
        assert!(out.contains(&fp.to_hex()), "{name}: {out}");
    }
}

#[test]
fn removing_a_voucher_reports_what_it_vouched_for_and_drops_its_edges() {
    let demo = demo();
    let out = demo.run(&["remove", &demo.fp("TTE controller").to_hex()]);
    assert!(
        out.contains(&format!(
            "no longer vouched for by it: {}",
            demo.fp("TaSecret").short()
        )),
        "{out}"
    );
    let store = AnchorStore::open(std::path::Path::new(&demo.db)).unwrap();
    assert_eq!(store.list().unwrap().len(), 9);
    assert!(store
        .edges()
        .unwrap()
        .iter()
        .all(|e| e.from != demo.fp("TTE controller") && e.to != demo.fp("TTE controller")));
    let err = xtt(&["anchors", "--store", &demo.db, "show", "00000000"]).unwrap_err();
    assert!(err.to_string().contains("no anchor matches"), "{err}");
}

#[test]
fn the_command_tree_is_consistent() {
    common::Xtt::command().debug_assert();
}

#[test]
fn xtt_anchors_demo_builds_a_complete_installation_only_in_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let db = db.to_str().unwrap();
    let out = xtt(&["anchors", "--store", db, "demo"]).unwrap();
    assert!(out.contains("demo installation with 11 anchors"), "{out}");
    let text = xtt(&["anchors", "--store", db, "graph"]).unwrap();
    assert!(
        text.starts_with("Trust graph: 11 anchors, 10 edges"),
        "{text}"
    );
    for kind in AnchorKind::ALL {
        assert!(text.contains(kind.as_str()), "{kind} missing:\n{text}");
    }
    let err = xtt(&["anchors", "--store", db, "demo"]).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[test]
fn a_bundle_carries_every_anchor_and_relation_to_another_store() {
    let demo = demo();
    let bundle = demo.dir.path().join("bundle");
    let b = bundle.to_str().unwrap();
    let out = demo.run(&["export-bundle", b]);
    assert!(
        out.contains("exported 8 anchors"),
        "secrets are left out by default: {out}"
    );
    demo.run(&["export-bundle", b, "--include-secrets"]);
    let index = std::fs::read_to_string(bundle.join("anchors.json")).unwrap();
    assert!(
        !index.contains(&hex::encode(TA_SECRET)),
        "secret in the index"
    );

    let other = demo.dir.path().join("copy.db");
    let o = other.to_str().unwrap();
    let at = T0.to_string();
    let out = xtt(&["anchors", "--store", o, "--at", &at, "import-bundle", b]).unwrap();
    assert!(out.contains("imported 10 new anchors"), "{out}");
    let out = xtt(&["anchors", "--store", o, "--at", &at, "import-bundle", b]).unwrap();
    assert!(out.contains("imported 0 new anchors"), "repeatable: {out}");

    let a = AnchorStore::open(std::path::Path::new(&demo.db)).unwrap();
    let c = AnchorStore::open(&other).unwrap();
    let strip = |s: &AnchorStore| -> Vec<_> {
        s.list()
            .unwrap()
            .into_iter()
            .map(|x| {
                (
                    x.fingerprint,
                    x.kind,
                    x.name,
                    x.roles,
                    x.validity,
                    x.material,
                )
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&c));
    // The provenance says where the copy came from; the original's is kept as a claim.
    for (x, y) in a.list().unwrap().into_iter().zip(c.list().unwrap()) {
        assert_eq!(
            y.provenance,
            xtt_anchors::Provenance::ImportedByHand {
                source: format!("from bundle {b}; claimed: {}", x.provenance)
            }
        );
    }
    assert_eq!(a.edges().unwrap(), c.edges().unwrap());

    // A file swapped for another key is caught by its fingerprint; nothing is imported.
    let (_, fp) = &demo.fps[2];
    let victim = std::fs::read_dir(&bundle)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .contains(&fp.short())
        })
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let fresh = demo.dir.path().join("fresh.db");
    let err = xtt(&[
        "anchors",
        "--store",
        fresh.to_str().unwrap(),
        "import-bundle",
        b,
    ])
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not match its fingerprint"),
        "{err:#}"
    );
    assert!(AnchorStore::open(&fresh)
        .unwrap()
        .list()
        .unwrap()
        .is_empty());
}

/// A bundle's index is not signed (the fingerprints tie each file to its entry, nothing more),
/// so what it says is recorded as a claim: an edited index that calls a rogue update key
/// "provisioned by XTT (vendor signing service)" gets "from bundle DIR; claimed: ...", and a
/// `rotated-to` edge from a key that stays valid forever is refused. `show` and `graph` label
/// each edge "checked" (the root's signature on the server certificate) or "recorded".
#[test]
fn an_edited_bundle_index_is_recorded_as_a_claim_and_edges_are_labelled() {
    let demo = demo();
    let rogue_key = UpdateSigningKey::generate(&mut common::rng(66));
    let rogue_file = demo.dir.path().join("rogue.pub");
    std::fs::write(&rogue_file, rogue_key.public_pem().unwrap()).unwrap();
    let out = demo.run(&[
        "import",
        "update-key",
        rogue_file.to_str().unwrap(),
        "--name",
        "rogue",
        "--vendor-id",
        "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe",
        "--class-id",
        "1492af14-2569-5e48-bf42-9b2d51f2ab45",
    ]);
    let rogue = out.split_whitespace().find(|w| w.len() == 64).unwrap();
    let real = demo.fp("Acme firmware 2026").to_hex();
    let bundle = demo.dir.path().join("bundle");
    let b = bundle.to_str().unwrap();
    demo.run(&["export-bundle", b]); // without the two TTE secrets and their two edges

    // The edit: rogue claims a vendor provenance, and the real (unexpiring) key "rotated" to it.
    let path = bundle.join("anchors.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for e in index["anchors"].as_array_mut().unwrap() {
        if e["fingerprint"] == rogue {
            e["provenance"] = "xtt".into();
            e["source"] = "vendor signing service".into();
        }
    }
    let rotation = serde_json::json!({"from": real, "to": rogue, "kind": "rotated-to"});
    index["edges"].as_array_mut().unwrap().push(rotation);
    std::fs::write(&path, index.to_string()).unwrap();

    let copy = demo.dir.path().join("copy.db");
    let o = copy.to_str().unwrap();
    let at = T0.to_string();
    let err = xtt(&["anchors", "--store", o, "--at", &at, "import-bundle", b]).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains(&format!("rotated-to edge {real} -> {rogue} refused"))
            && err.contains("no end of validity (not_after)")
            && err.contains("xtt anchors rotate"),
        "{err}"
    );
    assert!(
        AnchorStore::open(&copy).unwrap().list().unwrap().is_empty(),
        "a refused bundle stores nothing"
    );

    // Without the rotation edge the bundle imports; the provenance names the bundle and keeps
    // the index's provenance only as a claim.
    index["edges"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["kind"] != "rotated-to" || e["from"] != real.as_str());
    std::fs::write(&path, index.to_string()).unwrap();
    xtt(&["anchors", "--store", o, "--at", &at, "import-bundle", b]).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["anchors", "--store", o, "--at", &at];
        all.extend_from_slice(args);
        xtt(&all).unwrap()
    };
    let show = run(&["show", rogue]);
    assert!(
        show.contains(&format!(
            "provenance   imported by hand (from bundle {b}; claimed: provisioned by XTT (vendor signing service))"
        )),
        "{show}"
    );
    assert!(!show.contains("provenance   provisioned by XTT"), "{show}");
    let list = run(&["list"]);
    let line = list.lines().find(|l| l.contains("rogue")).unwrap();
    assert!(line.trim_end().ends_with("hand"), "{line}");

    // Edges: the root's signature on the server certificate is checked, the rest recorded.
    let root = demo.fp("Operator root").to_hex();
    let show = run(&["show", &root]);
    assert!(
        show.contains("vouches for  xtt-server xtt.example.net [")
            && show.contains("]  (checked: signature verified)\n")
            && show.contains("vouches for  controller TTE controller ["),
        "{show}"
    );
    let controller_line = show.lines().find(|l| l.contains("TTE controller")).unwrap();
    assert!(
        controller_line.ends_with("(recorded: not verified)"),
        "{controller_line}"
    );
    let show = run(&["show", &real]);
    assert!(
        show.lines().any(
            |l| l.starts_with("rotated from update-key Acme firmware 2025")
                && l.ends_with("(recorded: not verified)")
        ),
        "{show}"
    );

    let text = run(&["graph"]);
    assert!(
        text.starts_with("Trust graph: 9 anchors, 8 edges (1 checked, 7 recorded)\n(checked: "),
        "{text}"
    );
    let (s, r) = (demo.fp("xtt.example.net"), demo.fp("TTE controller"));
    let root_fp = demo.fp("Operator root");
    assert!(
        text.contains(&format!(
            "  checked   xtt-root Operator root [{}] --vouches--> xtt-server xtt.example.net [{}]\n",
            root_fp.short(),
            s.short()
        )) && text.contains(&format!(
            "  recorded  xtt-root Operator root [{}] --vouches--> controller TTE controller [{}]\n",
            root_fp.short(),
            r.short()
        )),
        "{text}"
    );
    assert!(
        text.contains("└─ vouches for (checked) xtt-server xtt.example.net")
            && text.contains("└─ vouches for (recorded) controller TTE controller")
            && text.contains("└─ rotated to (recorded) update-key Acme firmware 2026"),
        "{text}"
    );
    let dot = run(&["graph", "--format", "dot"]);
    assert!(
        dot.contains(&format!(
            "\"{}\" -> \"{}\" [label=\"vouches (checked)\"];",
            root_fp.to_hex(),
            s.to_hex()
        )) && dot.contains(&format!(
            "\"{}\" -> \"{}\" [label=\"vouches (recorded)\"];",
            root_fp.to_hex(),
            r.to_hex()
        )),
        "{dot}"
    );
    let svg_path = demo.dir.path().join("copy.svg");
    run(&[
        "graph",
        "--format",
        "svg",
        "--out",
        svg_path.to_str().unwrap(),
    ]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(
        svg.matches("<line class=\"edge vouches checked\"").count(),
        1
    );
    assert_eq!(
        svg.matches("<line class=\"edge vouches recorded\"").count(),
        6
    );
    assert_eq!(
        svg.matches("<line class=\"edge rotated-to recorded\"")
            .count(),
        1
    );

    // --impact does not claim more than the edges show.
    let impact = run(&["graph", "--impact", &root]);
    assert!(
        impact.contains(
            "By the edges recorded in this store (3 followed, 1 checked, 2 recorded only)"
        ) && impact.contains("Recorded edges only; unchecked edges may be missing or wrong"),
        "{impact}"
    );
    let impact = run(&["graph", "--impact", rogue]);
    assert!(
        impact.contains("No edge recorded in this store leads from it")
            && !impact.contains("vouches for nothing else"),
        "{impact}"
    );
}

#[test]
fn a_bundle_index_cannot_point_outside_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("anchors.json"),
        r#"{"format":"xtt-anchors bundle v1","edges":[],"anchors":[{"fingerprint":"00","kind":"xtt-root","name":"x","roles":"transport","not_before":0,"not_after":null,"provenance":"hand","source":"","file":"../../etc/passwd","basename_file":null}]}"#,
    )
    .unwrap();
    let mut s = AnchorStore::in_memory();
    let err = xtt_anchors::bundle::import(&mut s, dir.path(), T0).unwrap_err();
    assert!(
        err.to_string().contains("leaves the bundle directory"),
        "{err}"
    );
}

/// An I/O error names the file and its cause once (the cause is not also the error's source,
/// which `{:#}` would print a second time).
#[test]
fn an_unopenable_store_is_named_with_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("missing").join("anchors.db");
    let err = xtt(&["anchors", "--store", store.to_str().unwrap(), "demo"]).unwrap_err();
    let shown = format!("{err:#}");
    assert!(shown.contains(store.to_str().unwrap()), "{shown}");
    assert_eq!(shown.matches("(os error").count(), 1, "{shown}");
}

/// A bundle gets the checks single imports make, among its own anchors too: a server
/// certificate arriving with its root is verified by it, two roots with one id are refused, and
/// nothing of a refused bundle is stored.
#[test]
fn a_bundle_is_checked_among_its_own_anchors() {
    use xtt_anchors::anchor::Edge;
    use xtt_anchors::{AnchorError, NewAnchor};
    let (root, root_key) = fresh_root(31);
    let root_anchor = || NewAnchor::public(AnchorKind::XttRoot, root.encode().to_vec(), "r");
    let server = |cert: &xtt_proto::cert::ServerCertificate| {
        NewAnchor::public(AnchorKind::XttServer, cert.as_bytes().to_vec(), "s")
    };
    // A certificate naming the root's id, signed by another key.
    let (_, other_key) = fresh_root(32);
    let (_, forged) = common::server_signed_by(&root, &other_key, 33);
    let mut s = AnchorStore::in_memory();
    let err = s
        .restore(vec![server(&forged), root_anchor()], vec![], T0)
        .unwrap_err();
    assert!(
        matches!(err, AnchorError::BadCertificateSignature { .. }),
        "{err}"
    );
    assert!(
        s.list().unwrap().is_empty(),
        "a refused bundle stores nothing"
    );

    // Two roots with one id and different keys.
    let twin = xtt_proto::cert::RootCertificate {
        id: root.id,
        public_key: *other_key.public_key(),
    };
    let err = s
        .restore(
            vec![
                root_anchor(),
                NewAnchor::public(AnchorKind::XttRoot, twin.encode().to_vec(), "twin"),
            ],
            vec![],
            T0,
        )
        .unwrap_err();
    assert!(err.to_string().contains("root id already used"), "{err}");

    // The real thing goes in, with the root's vouch for its certificate found by the check.
    let (_, good) = common::server_signed_by(&root, &root_key, 34);
    let added = s
        .restore(vec![server(&good), root_anchor()], vec![], T0)
        .unwrap();
    assert_eq!(added.len(), 2);
    let (r, c) = (added[0], added[1]);
    assert!(s.edges().unwrap().contains(&Edge {
        from: r,
        to: c,
        kind: EdgeKind::Vouches
    }));
    // An edge claiming a root vouches for a certificate it did not sign is refused.
    let (other_root, other_root_key) = fresh_root(35);
    let (_, foreign) = common::server_signed_by(&other_root, &other_root_key, 36);
    let foreign_fp = Fingerprint::of(AnchorKind::XttServer, foreign.as_bytes());
    let err = s
        .restore(
            vec![server(&foreign)],
            vec![Edge {
                from: r,
                to: foreign_fp,
                kind: EdgeKind::Vouches,
            }],
            T0,
        )
        .unwrap_err();
    assert!(
        matches!(err, AnchorError::BadCertificateSignature { .. }),
        "{err}"
    );
}

/// The edge a bundle may not claim may not be added by hand either: `vouch` and an import's
/// voucher are refused when the voucher is an XTT root whose signature is not on the server
/// certificate, and the store keeps no edge; the root that did sign may vouch.
#[test]
fn a_root_cannot_be_said_to_vouch_for_a_certificate_it_did_not_sign() {
    use xtt_anchors::{AnchorError, NewAnchor};
    let (root, root_key) = fresh_root(41);
    let (other_root, other_root_key) = fresh_root(42);
    let (_, foreign) = common::server_signed_by(&other_root, &other_root_key, 43);
    let (_, own) = common::server_signed_by(&root, &root_key, 44);
    let root_anchor = || NewAnchor::public(AnchorKind::XttRoot, root.encode().to_vec(), "r");
    let server = |cert: &xtt_proto::cert::ServerCertificate| {
        NewAnchor::public(AnchorKind::XttServer, cert.as_bytes().to_vec(), "s")
    };
    let mut s = AnchorStore::in_memory();
    let r = s.import(root_anchor(), T0).unwrap();
    let f = s.import(server(&foreign), T0).unwrap();
    let edges_before = s.edges().unwrap();

    let err = s.vouch(r, f).unwrap_err();
    assert!(
        matches!(err, AnchorError::BadCertificateSignature { root } if root == r),
        "{err}"
    );
    let err = s
        .import(
            NewAnchor::public(AnchorKind::XttServer, own.as_bytes().to_vec(), "t")
                .vouched_by(r)
                .named("not this one"),
            T0,
        )
        .map(|_| ());
    assert!(err.is_ok(), "the signing root vouches: {err:?}");
    let (_, foreign2) = common::server_signed_by(&other_root, &other_root_key, 45);
    let err = s.import(server(&foreign2).vouched_by(r), T0).unwrap_err();
    assert!(
        matches!(err, AnchorError::BadCertificateSignature { root } if root == r),
        "{err}"
    );
    assert!(
        !s.edges().unwrap().iter().any(|e| e.from == r && e.to == f),
        "no edge from the refused vouch"
    );
    assert_eq!(s.edges().unwrap().len(), edges_before.len() + 1);

    // Through the CLI: refused with the reason, and the store unchanged.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("a.db");
    let store = store.to_str().unwrap();
    let root_file = dir.path().join("root.bin");
    std::fs::write(&root_file, root.encode()).unwrap();
    let cert_file = dir.path().join("server.bin");
    std::fs::write(&cert_file, foreign.as_bytes()).unwrap();
    xtt(&[
        "anchors",
        "--store",
        store,
        "import",
        "xtt-root",
        root_file.to_str().unwrap(),
    ])
    .unwrap();
    xtt(&[
        "anchors",
        "--store",
        store,
        "import",
        "xtt-server",
        cert_file.to_str().unwrap(),
    ])
    .unwrap();
    let rfp = r.to_hex();
    let ffp = f.to_hex();
    let err = xtt(&["anchors", "--store", store, "vouch", &rfp, &ffp]).unwrap_err();
    assert!(
        format!("{err:#}").contains("not signed by XTT root"),
        "{err:#}"
    );
}

/// Reading commands do not create a store at a mistyped path (it would then list nothing, as
/// if the installation had no anchors); importing does.
#[test]
fn only_adding_anchors_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    let db = db.to_str().unwrap();
    for args in [vec!["list"], vec!["graph"], vec!["show", "00000000"]] {
        let mut all = vec!["anchors", "--store", db];
        all.extend(args.iter().copied());
        let err = xtt(&all).unwrap_err();
        assert!(
            format!("{err:#}").contains("no anchor store at"),
            "{args:?}: {err:#}"
        );
        assert!(
            !std::path::Path::new(db).exists(),
            "{args:?} created the store"
        );
    }
    xtt(&["anchors", "--store", db, "demo"]).unwrap();
    assert!(xtt(&["anchors", "--store", db, "list"]).is_ok());
}
