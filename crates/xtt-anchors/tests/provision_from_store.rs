//! Identity provisioning whose trust anchors come only from the store: the C reference's root
//! certificate and DAA group key are imported from `../shared/vectors/` (through the same
//! `xtt anchors import` the operator uses), and the client's root lookup and the server's
//! group lookup are the store's. The handshake runs in memory (sans-IO), in every suite.

mod common;

use std::sync::Arc;

use common::{hex_at, vector, vectors_dir, xtt, T0};
use xtt_anchors::anchor::AnchorKind;
use xtt_anchors::seam::{GroupDirectory, RootSnapshot};
use xtt_anchors::AnchorStore;
use xtt_proto::cert::ServerCertificate;
use xtt_proto::client::ProvisionedIdentity;
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::error::Refused;
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::server::{ProvisionedClient, Server, ServerConfig};
use xtt_proto::SuiteSpec;

/// The device's own DAA credential (not an anchor): the xtt sample member.
fn member() -> xtt_ecdaa::Member {
    let d = vectors_dir().join("xaptum-data/client");
    let read = |f: &str| std::fs::read(d.join(f)).expect("xaptum-data client file");
    xtt_ecdaa::Member::from_bytes(
        &read("daa_secretkey.bin"),
        &read("daa_cred.bin"),
        &read("daa_gpk.bin"),
        &read("basename.bin"),
    )
    .expect("member")
}

/// The server's own credential (not an anchor): the C vector's certificate and key.
fn server() -> Server {
    let v = vector("xtt_id_handshake_suite1.json");
    Server::new(ServerConfig {
        certificate: ServerCertificate::decode(&hex_at(&v, "/server_longterm/certificate"))
            .unwrap(),
        signing_key: LongtermKeyPair::from_private_bytes(
            &hex_at(&v, "/server_longterm/private_key")
                .try_into()
                .unwrap(),
        )
        .unwrap(),
        cookie_keys: CookieKeyring::new(CookieKey::from_secret(1, &[0x5a; 32])),
        cookie_lifetime_secs: 20,
        replay_guard: Arc::new(InMemoryReplayGuard::new(64)),
    })
}

fn provision(
    roots: RootSnapshot,
    groups: &GroupDirectory,
    server: &Server,
    suite: SuiteSpec,
    now: u64,
    seed: u64,
) -> Result<(ProvisionedIdentity, ProvisionedClient), xtt_proto::Error> {
    common::handshake(roots, Arc::new(member()), groups, server, suite, now, seed)
}

#[test]
fn provisioning_runs_with_anchors_only_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("anchors.db");
    let db = db.to_str().unwrap();
    let v = vector("xtt_id_handshake_suite1.json");
    // The C tool keeps its root as root_cert.bin; the vector carries those 81 bytes.
    let root_file = dir.path().join("root_cert.bin");
    std::fs::write(&root_file, hex_at(&v, "/root/root_certificate")).unwrap();
    let server_data = vectors_dir().join("xaptum-data/server");
    let cert_file = dir.path().join("server_cert.bin");
    std::fs::write(&cert_file, hex_at(&v, "/server_longterm/certificate")).unwrap();
    let at = T0.to_string();

    let out = xtt(&[
        "anchors",
        "--store",
        db,
        "--at",
        &at,
        "import",
        "xtt-root",
        root_file.to_str().unwrap(),
        "--name",
        "C reference root",
    ])
    .unwrap();
    assert!(out.contains("imported xtt-root C reference root"), "{out}");
    xtt(&[
        "anchors",
        "--store",
        db,
        "--at",
        &at,
        "import",
        "daa-group",
        server_data.join("daa_gpk.bin").to_str().unwrap(),
        "--basename",
        server_data.join("basename.bin").to_str().unwrap(),
        "--name",
        "xtt sample group",
    ])
    .unwrap();
    // The server certificate is linked to the root because the root's signature verifies.
    let out = xtt(&[
        "anchors",
        "--store",
        db,
        "--at",
        &at,
        "import",
        "xtt-server",
        cert_file.to_str().unwrap(),
        "--name",
        "C reference server",
    ])
    .unwrap();
    assert!(out.contains("vouched for by"), "{out}");

    let mut store = AnchorStore::open(std::path::Path::new(db)).unwrap();
    let roots = store.xtt_roots(T0).unwrap();
    let groups = store.daa_groups(T0).unwrap();
    assert_eq!((roots.len(), groups.len()), (1, 1));
    // The group id the store computes is the one the C tool derived (gid.bin).
    let gid = std::fs::read(vectors_dir().join("xaptum-data/client/gid.bin")).unwrap();
    let gid = xtt_proto::daa::GroupId(gid.try_into().unwrap());
    assert!(groups.verifier(&gid, T0).is_some());

    let server = server();
    for (i, suite) in SuiteSpec::ALL.into_iter().enumerate() {
        let (identity, provisioned) = provision(
            store.xtt_roots(T0).unwrap(),
            &groups,
            &server,
            suite,
            T0,
            i as u64,
        )
        .unwrap();
        assert_eq!(identity.client_id, provisioned.client_id);
        assert_eq!(provisioned.group_id, gid);
    }

    // The provisioned identity joins the graph, vouched for by its server and group.
    let (identity, _) = provision(
        store.xtt_roots(T0).unwrap(),
        &groups,
        &server,
        SuiteSpec::ALL[0],
        T0,
        9,
    )
    .unwrap();
    let root_id = identity.server_certificate.root_id();
    let server_fp = store
        .usable(AnchorKind::XttServer, xtt_anchors::Roles::TRANSPORT, T0)
        .unwrap()[0]
        .fingerprint;
    let group_fp = groups.fingerprint(&gid).unwrap();
    assert_eq!(
        roots.fingerprint(&root_id),
        Some(
            store
                .usable(AnchorKind::XttRoot, xtt_anchors::Roles::TRANSPORT, T0)
                .unwrap()[0]
                .fingerprint
        )
    );
    let id_fp = store
        .record_xtt_identity(
            &identity.client_id,
            identity.longterm_key.public_key(),
            &[server_fp, group_fp],
            "in-memory handshake",
            T0,
        )
        .unwrap();
    let out = xtt(&[
        "anchors",
        "--store",
        db,
        "--at",
        &at,
        "show",
        &id_fp.to_hex(),
    ])
    .unwrap();
    assert!(
        out.contains("provisioned by XTT (in-memory handshake)"),
        "{out}"
    );
    assert!(
        out.contains("vouched by   xtt-server C reference server"),
        "{out}"
    );
    assert!(
        out.contains("vouched by   daa-group xtt sample group"),
        "{out}"
    );
}

#[test]
fn without_the_root_or_the_group_in_the_store_provisioning_is_refused() {
    let v = vector("xtt_id_handshake_suite1.json");
    let server = server();
    let suite = SuiteSpec::ALL[0];

    // Only the group: the client finds no root for the server's certificate.
    let mut store = AnchorStore::in_memory();
    let d = vectors_dir().join("xaptum-data/server");
    let gm = xtt_anchors::material::daa_group_material(
        &std::fs::read(d.join("daa_gpk.bin")).unwrap(),
        &std::fs::read(d.join("basename.bin")).unwrap(),
    )
    .unwrap();
    store
        .import(
            xtt_anchors::NewAnchor::public(AnchorKind::DaaGroup, gm, "test"),
            T0,
        )
        .unwrap();
    let groups = store.daa_groups(T0).unwrap();
    let err = provision(store.xtt_roots(T0).unwrap(), &groups, &server, suite, T0, 1).unwrap_err();
    assert_eq!(err, xtt_proto::Error::Refused(Refused::UnknownRoot));

    // Only the root: the server finds no group for the client's group id.
    let mut store = AnchorStore::in_memory();
    store
        .import(
            xtt_anchors::NewAnchor::public(
                AnchorKind::XttRoot,
                hex_at(&v, "/root/root_certificate"),
                "test",
            ),
            T0,
        )
        .unwrap();
    let groups = store.daa_groups(T0).unwrap();
    let err = provision(store.xtt_roots(T0).unwrap(), &groups, &server, suite, T0, 2).unwrap_err();
    assert_eq!(err, xtt_proto::Error::Refused(Refused::UnknownGroup));
}

#[test]
fn a_root_withdrawn_from_transport_is_not_offered_to_the_client() {
    let v = vector("xtt_id_handshake_suite1.json");
    let mut store = AnchorStore::in_memory();
    let fp = store
        .import(
            xtt_anchors::NewAnchor::public(
                AnchorKind::XttRoot,
                hex_at(&v, "/root/root_certificate"),
                "test",
            ),
            T0,
        )
        .unwrap();
    assert_eq!(store.xtt_roots(T0).unwrap().len(), 1);
    store
        .set_roles(&fp, xtt_anchors::Roles::ONBOARDING)
        .unwrap();
    assert!(store.xtt_roots(T0).unwrap().is_empty());
}

#[test]
fn a_forged_server_certificate_is_refused_on_import() {
    let v = vector("xtt_id_handshake_suite1.json");
    let mut store = AnchorStore::in_memory();
    store
        .import(
            xtt_anchors::NewAnchor::public(
                AnchorKind::XttRoot,
                hex_at(&v, "/root/root_certificate"),
                "test",
            ),
            T0,
        )
        .unwrap();
    let mut cert = hex_at(&v, "/server_longterm/certificate");
    let last = cert.len() - 1;
    cert[last] ^= 1;
    let err = store
        .import(
            xtt_anchors::NewAnchor::public(AnchorKind::XttServer, cert, "test"),
            T0,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
}

#[test]
fn the_xtt_tool_data_directory_imports_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let data = vectors_dir().join("xaptum-data/server");
    let args = [
        "anchors",
        "--store",
        db.to_str().unwrap(),
        "import-dir",
        data.to_str().unwrap(),
    ];
    let first = xtt(&args).unwrap();
    assert!(first.starts_with("imported daa-group "), "{first}");
    let second = xtt(&args).unwrap();
    assert!(second.starts_with("already stored daa-group "), "{second}");
    let store = AnchorStore::open(&db).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}
