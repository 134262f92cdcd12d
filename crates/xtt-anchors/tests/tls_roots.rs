//! `tls-root` anchors: X.509 CAs imported from PEM or DER, handed to HTTPS clients through
//! `AnchorStore::tls_roots` only while valid and with the transport role.

use xtt_anchors::anchor::{AnchorKind, Roles, Validity};
use xtt_anchors::material::parse_tls_root_file;
use xtt_anchors::{AnchorError, AnchorStore, NewAnchor};

const T0: u64 = 1_767_225_600;

fn ca_pem(name: &str) -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), cert.der().to_vec())
}

#[test]
fn pem_and_der_import_to_the_same_anchor_and_reach_https_clients() {
    let (pem, der) = ca_pem("Relay CA");
    assert_eq!(parse_tls_root_file(pem.as_bytes()).unwrap(), der);
    assert_eq!(parse_tls_root_file(&der).unwrap(), der);

    let dir = tempfile::tempdir().unwrap();
    let mut store = AnchorStore::open(&dir.path().join("anchors.db")).unwrap();
    let fp = store
        .import(
            NewAnchor::public(AnchorKind::TlsRoot, der.clone(), "relay-ca.pem").named("Relay CA"),
            T0,
        )
        .unwrap();
    assert_eq!(store.get(&fp).unwrap().roles, Roles::TRANSPORT);
    assert_eq!(store.tls_roots(T0).unwrap(), vec![(fp, der.clone())]);
    // The same certificate again is the same anchor.
    assert!(matches!(
        store.import(NewAnchor::public(AnchorKind::TlsRoot, der, "again"), T0),
        Err(AnchorError::Duplicate(f)) if f == fp
    ));
}

#[test]
fn expired_or_role_less_roots_are_not_trusted() {
    let mut store = AnchorStore::in_memory();
    let (_, old) = ca_pem("old CA");
    let (_, update_only) = ca_pem("not for transport");
    let (_, current) = ca_pem("current CA");
    let mut expired = NewAnchor::public(AnchorKind::TlsRoot, old, "old");
    expired.validity = Some(Validity {
        not_before: T0 - 100,
        not_after: Some(T0),
    });
    store.import(expired, T0 - 50).unwrap();
    let mut wrong_role = NewAnchor::public(AnchorKind::TlsRoot, update_only, "u");
    wrong_role.roles = Some(Roles::UPDATE);
    store.import(wrong_role, T0).unwrap();
    let fp = store
        .import(
            NewAnchor::public(AnchorKind::TlsRoot, current.clone(), "c"),
            T0,
        )
        .unwrap();
    assert_eq!(store.tls_roots(T0).unwrap(), vec![(fp, current)]);
}

#[test]
fn malformed_files_and_bundles_are_refused() {
    let (a, _) = ca_pem("a");
    let (b, _) = ca_pem("b");
    let bundle = format!("{a}{b}");
    let e = parse_tls_root_file(bundle.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("2 certificates"), "{e}");
    assert!(parse_tls_root_file(b"not a certificate").is_err());
    let mut store = AnchorStore::in_memory();
    assert!(matches!(
        store.import(
            NewAnchor::public(AnchorKind::TlsRoot, b"\x30\x00".to_vec(), "x"),
            T0
        ),
        Err(AnchorError::InvalidMaterial { .. })
    ));
}
