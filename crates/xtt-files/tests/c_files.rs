//! The C tools' files from `../shared/vectors` (the xtt repository's sample DAA files and the
//! key material and certificates recorded from a C handshake) are read, and what we write has
//! the C layouts, byte for byte where the C output is deterministic.
//!
//! The vectors hold no C-written key file or X.509 certificate, so those two layouts are
//! compared here with a transcription of the C functions that build them ([`c_key_file`],
//! [`c_x509`]): a model of the C code, which could share a misreading with ours.
//! `scripts/interop-c-files.sh` checks the same files against the C tool itself (each tool
//! reads and uses the other's key pairs and certificates); it needs the C reference built
//! outside the repository, so it is run by hand, not by the test suite.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use xtt_files::daa::MemberFileNames;
use xtt_files::{certs, client_id, daa, describe, keypair, x509, Overwrite};
use xtt_proto::cert::{RootCertificate, RootId};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::ClientId;

fn vectors() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    assert!(
        dir.is_dir(),
        "{} is missing: the C reference's vectors must sit beside the checkout",
        dir.display()
    );
    dir
}

fn handshake(suite: u8) -> Value {
    let p = vectors().join(format!("xtt_id_handshake_suite{suite}.json"));
    serde_json::from_slice(&fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

fn hexfield(v: &Value, path: &[&str]) -> Vec<u8> {
    let mut cur = v;
    for p in path {
        cur = &cur[p];
    }
    hex::decode(cur.as_str().unwrap_or_else(|| panic!("{path:?} missing"))).unwrap()
}

fn key_from(v: &Value, path: &[&str]) -> LongtermKeyPair {
    let private: [u8; 32] = hexfield(v, path).try_into().unwrap();
    LongtermKeyPair::from_private_bytes(&private).unwrap()
}

/// `build_asn1_key` of xtt's `src/util/internal/key_asn1.c`: a fixed frame with the private
/// key at offset 7 and the public key at 56.
fn c_key_file(private: &[u8], public: &[u8]) -> Vec<u8> {
    let mut f = vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20];
    f.extend_from_slice(private);
    f.extend_from_slice(&[
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    f.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    f.extend_from_slice(public);
    f
}

/// `build_x509_preamble` + `append_x509_signature` of xtt's `src/util/internal/cert_x509.c`,
/// transcribed: the C client's certificate for a given serial and signature (r, s).
fn c_x509(serial: &[u8; 20], cn: &str, public: &[u8], r: &[u8], s: &[u8]) -> Vec<u8> {
    let name = |out: &mut Vec<u8>| {
        out.extend_from_slice(&[
            0x30, 0x32, 0x31, 0x30, 0x30, 0x2e, 0x06, 0x03, 0x55, 0x04, 0x03,
        ]);
        out.extend_from_slice(&[0x0c, 0x27]);
        out.extend_from_slice(cn.as_bytes());
    };
    let ecdsa_sha256 = [
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    let mut c = vec![0x30, 0x82, 0x01, 0x62, 0x30, 0x82, 0x01, 0x09, 0x02, 0x14];
    c.extend_from_slice(serial);
    c.extend_from_slice(&ecdsa_sha256);
    name(&mut c);
    c.extend_from_slice(&[0x30, 0x22, 0x18, 0x0f]);
    c.extend_from_slice(b"00000101000000Z");
    c.extend_from_slice(&[0x18, 0x0f]);
    c.extend_from_slice(b"99991231235959Z");
    name(&mut c);
    c.extend_from_slice(&[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    ]);
    c.extend_from_slice(&[
        0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    c.extend_from_slice(&[0x03, 0x42, 0x00]);
    c.extend_from_slice(public);
    c.extend_from_slice(&ecdsa_sha256);
    c.extend_from_slice(&[0x03, 0x47, 0x00, 0x30, 0x44]);
    for int in [r, s] {
        c.push(0x02);
        if int[0] & 0x80 != 0 {
            c.extend_from_slice(&[0x21, 0x00]);
            c[3] += 1; // LENGTH_OFFSET + 1
            c[286] += 1; // SIGNATURE_BITSTRING_OFFSET
            c[289] += 1; // SIGNATURE_SEQUENCE_OFFSET
        } else {
            c.push(0x20);
        }
        c.extend_from_slice(int);
    }
    c
}

#[test]
fn sample_daa_files_from_the_xtt_repository_are_read() {
    let client = vectors().join("xaptum-data/client");
    let gpk = daa::read_gpk(&client.join(MemberFileNames::GPK)).unwrap();
    let basename = daa::read_basename(&client.join(MemberFileNames::BASENAME)).unwrap();
    assert_eq!(basename, b"BASENAME");
    let gid = daa::read_group_id(&client.join(MemberFileNames::GID)).unwrap();
    daa::check_group_id(&client.join("gid.bin"), &gid, &gpk, &basename).unwrap();
    let member = daa::read_member(&client).unwrap();
    assert_eq!(member.group_id().0, gid.0);

    // The server's copy is the same group.
    let server = vectors().join("xaptum-data/server");
    assert_eq!(daa::read_gpk(&server.join("daa_gpk.bin")).unwrap(), gpk);

    // Written back, every file is byte-identical to the C one.
    let out = tempfile::tempdir().unwrap();
    let o = |n: &str| out.path().join(n);
    daa::write_gpk(&o("g"), &gpk, Overwrite::Deny).unwrap();
    daa::write_basename(&o("b"), &basename, Overwrite::Deny).unwrap();
    daa::write_group_id(&o("i"), &gid, Overwrite::Deny).unwrap();
    daa::write_credential(&o("c"), member.credential(), Overwrite::Deny).unwrap();
    let sk = daa::read_member_secret_key(&client.join(MemberFileNames::SECRET_KEY)).unwrap();
    daa::write_member_secret_key(&o("k"), &sk, Overwrite::Deny).unwrap();
    for (ours, theirs) in [
        ("g", MemberFileNames::GPK),
        ("b", MemberFileNames::BASENAME),
        ("i", MemberFileNames::GID),
        ("c", MemberFileNames::CREDENTIAL),
        ("k", MemberFileNames::SECRET_KEY),
    ] {
        assert_eq!(
            fs::read(o(ours)).unwrap(),
            fs::read(client.join(theirs)).unwrap(),
            "{theirs}"
        );
    }
    assert_eq!(
        fs::metadata(o("k")).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // `info` recognises each sample file.
    for (file, kind) in [
        (MemberFileNames::GPK, "DAA group public key"),
        (MemberFileNames::CREDENTIAL, "DAA credential"),
        (MemberFileNames::SECRET_KEY, "DAA member secret key"),
        (MemberFileNames::GID, "DAA group id"),
        (MemberFileNames::BASENAME, "DAA basename"),
    ] {
        let d = describe::describe(&client.join(file)).unwrap();
        assert_eq!(d.kind, kind, "{file}");
        // The vectors are installed read-only for everyone (0444), so the secret key is flagged.
        let world_readable = fs::metadata(client.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o044
            != 0;
        assert_eq!(
            !d.warnings.is_empty(),
            d.secret && world_readable,
            "{file}: {:?}",
            d.warnings
        );
    }
    let d = describe::describe(&client.join(MemberFileNames::CREDENTIAL)).unwrap();
    assert!(d
        .fields
        .iter()
        .any(|(_, v)| v.contains("valid under daa_gpk.bin")));
}

#[test]
fn key_files_have_the_c_frame_for_every_recorded_key() {
    let v = handshake(1);
    let out = tempfile::tempdir().unwrap();
    for who in ["root", "server_longterm", "client_longterm"] {
        let key = key_from(&v, &[who, "private_key"]);
        assert_eq!(
            key.public_key().as_bytes().to_vec(),
            hexfield(&v, &[who, "public_key"])
        );
        let expected = c_key_file(
            &hexfield(&v, &[who, "private_key"]),
            &hexfield(&v, &[who, "public_key"]),
        );
        assert_eq!(&keypair::encode(&key).unwrap()[..], &expected[..], "{who}");
        let p = out.path().join(format!("{who}.asn1.bin"));
        keypair::write(&p, &key, Overwrite::Deny).unwrap();
        assert_eq!(fs::read(&p).unwrap(), expected);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A C-made file (the frame) reads back to the same key.
        fs::write(&p, &expected).unwrap();
        assert_eq!(keypair::read(&p).unwrap().public_key(), key.public_key());
    }
}

#[test]
fn root_and_server_certificates_are_the_c_bytes() {
    for suite in 1..=4 {
        let v = handshake(suite);
        let out = tempfile::tempdir().unwrap();
        let root_key = key_from(&v, &["root", "private_key"]);
        let root_id = RootId(hexfield(&v, &["root", "root_id"]).try_into().unwrap());
        let c_root = hexfield(&v, &["root", "root_certificate"]);
        let c_server = hexfield(&v, &["server_longterm", "certificate"]);

        // The C files are read.
        fs::write(out.path().join("root_cert.bin"), &c_root).unwrap();
        fs::write(out.path().join("server_cert.bin"), &c_server).unwrap();
        let root = certs::read_root(&out.path().join("root_cert.bin")).unwrap();
        assert_eq!(root.id, root_id);
        let server = certs::read_server(&out.path().join("server_cert.bin")).unwrap();
        let server_pub =
            certs::verify_server(Path::new("server_cert.bin"), &server, &root).unwrap();
        assert_eq!(
            server_pub.as_bytes().to_vec(),
            hexfield(&v, &["server_longterm", "public_key"])
        );
        let d = describe::describe(&out.path().join("server_cert.bin")).unwrap();
        assert!(
            d.fields
                .iter()
                .any(|(_, v)| v.contains("verifies under root_cert.bin")),
            "{d:?}"
        );

        // The root certificate we write for the same key and id is the C file.
        let ours = RootCertificate {
            id: root_id,
            public_key: *root_key.public_key(),
        };
        certs::write_root(&out.path().join("ours_root.bin"), &ours, Overwrite::Deny).unwrap();
        assert_eq!(fs::read(out.path().join("ours_root.bin")).unwrap(), c_root);

        // The server certificate we issue has the C layout and verifies; its signature differs
        // only because C draws a random ECDSA nonce (we use RFC 6979).
        let server_key = key_from(&v, &["server_longterm", "private_key"]);
        let reserved: [u8; 24] = hexfield(&v, &["server_longterm", "certificate_reserved"])
            .try_into()
            .unwrap();
        let issued = certs::issue_server(
            &root,
            &root_key,
            Path::new("root_keys.asn1.bin"),
            server_key.public_key(),
            &reserved,
        )
        .unwrap();
        certs::write_server(
            &out.path().join("ours_server.bin"),
            &issued,
            Overwrite::Deny,
        )
        .unwrap();
        let ours = fs::read(out.path().join("ours_server.bin")).unwrap();
        assert_eq!(ours.len(), 169);
        assert_eq!(ours[..105], c_server[..105]);
        certs::verify_server(Path::new("ours"), &issued, &root).unwrap();

        // Issuing with a key that is not the root's is refused, naming the key file.
        let err = certs::issue_server(
            &root,
            &server_key,
            Path::new("wrong_keys.asn1.bin"),
            server_key.public_key(),
            &reserved,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("wrong_keys.asn1.bin: this key is not the key of root"),
            "{err}"
        );
    }
}

#[test]
fn client_id_file_is_the_c_text_with_nul() {
    for name in [
        "xtt_id_handshake_suite1.json",
        "xtt_id_handshake_suite1_requested_id.json",
    ] {
        let v: Value = serde_json::from_slice(&fs::read(vectors().join(name)).unwrap()).unwrap();
        let id = ClientId(
            hexfield(&v, &["result", "assigned_client_id"])
                .try_into()
                .unwrap(),
        );
        let text = v["result"]["assigned_client_id_string"].as_str().unwrap();
        let mut expected = text.as_bytes().to_vec();
        expected.push(0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("client_id.txt");
        client_id::write(&p, &id, Overwrite::Deny).unwrap();
        assert_eq!(fs::read(&p).unwrap(), expected);
        assert_eq!(client_id::read(&p).unwrap(), id);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}

#[test]
fn longterm_certificate_is_the_c_template_for_the_recorded_client() {
    let v = handshake(1);
    let key = key_from(&v, &["client_longterm", "private_key"]);
    let id = ClientId(
        hexfield(&v, &["result", "assigned_client_id"])
            .try_into()
            .unwrap(),
    );
    let cn = v["result"]["assigned_client_id_string"].as_str().unwrap();
    let mut checked = 0;
    for first in 1u8..=40 {
        // Serial as C draws it: 19 bytes, top bit clear, then a zero byte.
        let mut serial = [first; 20];
        serial[19] = 0;
        let ours = x509::build_with(&key, &id, &serial, &[]).unwrap();
        let cert = x509::parse(&ours).unwrap();
        assert_eq!(cert.client_id, id);
        let (r, s) = cert.signature.split_at(32);
        if r[0] == 0 || s[0] == 0 {
            // C would write a non-minimal INTEGER here; we write minimal DER (documented).
            continue;
        }
        let c = c_x509(&serial, cn, key.public_key().as_bytes(), r, s);
        assert_eq!(ours, c, "serial byte {first}");
        checked += 1;
    }
    assert!(checked >= 30);
}

#[test]
fn c_certificate_with_non_minimal_signature_integers_is_read() {
    let v = handshake(2);
    let key = key_from(&v, &["client_longterm", "private_key"]);
    let id = ClientId(
        hexfield(&v, &["result", "assigned_client_id"])
            .try_into()
            .unwrap(),
    );
    let cn = id.to_string();
    // Find a serial whose deterministic signature has r < 2^247 (its first byte zero and the
    // next one's top bit clear, so minimal DER would drop a byte), and lay it out as C does.
    // One serial in 512 qualifies; the signatures are deterministic, so the search ends at the
    // same serial every run, and within the first few thousand.
    for n in 0u16..16_384 {
        let mut serial = [0x11; 20];
        let [hi, lo] = n.to_be_bytes();
        serial[0] = 0x40 | hi;
        serial[1] = lo;
        serial[19] = 0;
        let ours = x509::parse(&x509::build_with(&key, &id, &serial, &[]).unwrap()).unwrap();
        let (r, s) = ours.signature.split_at(32);
        if r[0] == 0 && r[1] & 0x80 == 0 {
            let c = c_x509(&serial, &cn, key.public_key().as_bytes(), r, s);
            let parsed = x509::parse(&c).unwrap();
            assert!(!parsed.signature_is_minimal_der);
            assert_eq!(parsed.signature, ours.signature);
            assert_eq!(parsed.client_id, id);
            return;
        }
    }
    panic!("no serial in 16,384 gave a signature with r < 2^247: the test checked nothing");
}

#[test]
fn bad_files_give_errors_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("root_cert.bin");
    fs::write(&p, [0u8; 80]).unwrap();
    let err = certs::read_root(&p).unwrap_err().to_string();
    assert!(
        err.contains("root_cert.bin: XTT root certificate must be 81 bytes, this file has 80"),
        "{err}"
    );
    fs::write(&p, [0u8; 81]).unwrap();
    let err = certs::read_root(&p).unwrap_err().to_string();
    assert!(
        err.contains("not a valid XTT root certificate: the public key is not a valid P-256 point"),
        "{err}"
    );

    let k = dir.path().join("keys.asn1.bin");
    fs::write(&k, b"not der at all").unwrap();
    let err = keypair::read(&k).unwrap_err().to_string();
    assert!(
        err.contains("keys.asn1.bin: not a valid ECDSA P-256 key pair file"),
        "{err}"
    );

    let g = dir.path().join("daa_gpk.bin");
    let mut gpk = fs::read(vectors().join("xaptum-data/client/daa_gpk.bin")).unwrap();
    gpk[100] ^= 1;
    fs::write(&g, &gpk).unwrap();
    let err = daa::read_gpk(&g).unwrap_err().to_string();
    assert!(
        err.contains("daa_gpk.bin: not a valid DAA group public key"),
        "{err}"
    );

    let err = describe::describe(&dir.path().join("nothing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read"), "{err}");
    let u = dir.path().join("mystery");
    fs::write(&u, [1u8; 7]).unwrap();
    let err = describe::describe(&u).unwrap_err().to_string();
    assert!(
        err.contains("7 bytes match none of the known formats"),
        "{err}"
    );
}
