//! Known-answer tests against the C library's vectors in `shared/vectors` (read at run time).

mod common;

use common::{hx, load_json, read_file, test_rng, ReplayRng};
use serde_json::Value;
use xtt_ecdaa::{
    Credential, CredentialSignature, GroupPublicKey, GroupVerifier, Issuer, IssuerPublicKey,
    Member, MemberPublicKey, MemberSecretKey,
};

fn check_signature_cases(gpk: &GroupPublicKey, cases: &[Value]) -> (usize, usize) {
    let mut rng = test_rng(1);
    let (mut valid, mut invalid) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let msg = hx(&case["message"]);
        let bsn = if case["basename"].is_null() {
            Vec::new()
        } else {
            hx(&case["basename"])
        };
        let sig = hx(&case["signature"]);
        let expect_valid = case["valid"].as_bool().unwrap();
        let has_nym = case["has_pseudonym"].as_bool().unwrap();
        assert_eq!(sig.len(), if has_nym { 421 } else { 356 }, "{name}");
        let v = GroupVerifier::new(gpk.clone(), &bsn).unwrap();
        let res = v.verify(&msg, &sig, &mut rng);
        if expect_valid {
            let nym = res.unwrap_or_else(|e| panic!("{name}: valid signature rejected: {e}"));
            if has_nym {
                assert_eq!(nym.unwrap().to_vec(), hx(&case["pseudonym_K"]), "{name}");
            } else {
                assert!(nym.is_none(), "{name}");
            }
            valid += 1;
        } else {
            let err = res.expect_err(name);
            if name == "corrupt_point_R" {
                assert!(
                    matches!(err, xtt_ecdaa::Error::NotOnCurve),
                    "{name}: {err:?}"
                );
            }
            invalid += 1;
        }
    }
    (valid, invalid)
}

#[test]
fn fresh_group_issuer_member_credential_and_signatures() {
    let d = load_json("ecdaa_fp256bn.json");
    let g = &d["fresh_group"];
    let sizes = &d["serialization_sizes"];
    let ipk_b = hx(&g["issuer_public_key"]);
    let isk_b = hx(&g["issuer_secret_key"]);
    let gpk_b = hx(&g["group_public_key"]);
    assert_eq!(
        ipk_b.len() as u64,
        sizes["issuer_public_key"].as_u64().unwrap()
    );

    // Issuer public key: decodes, proof verifies, round-trips; gpk is its prefix.
    let ipk = IssuerPublicKey::from_bytes(&ipk_b).unwrap();
    assert_eq!(ipk.to_bytes().to_vec(), ipk_b);
    assert_eq!(ipk.group_public_key().to_bytes().to_vec(), gpk_b);
    let issuer = Issuer::from_keys(&isk_b, &ipk_b).unwrap();
    assert_eq!(issuer.secret_key().to_bytes().to_vec(), isk_b);
    let gpk = GroupPublicKey::from_bytes(&gpk_b).unwrap();
    assert_eq!(gpk.to_bytes().to_vec(), gpk_b);

    // Member join request verifies with the recorded nonce, not with another.
    let nonce = hx(&g["member_join_nonce"]);
    let mpk_b = hx(&g["member_public_key"]);
    let mpk = MemberPublicKey::from_bytes(&mpk_b).unwrap();
    assert_eq!(mpk.to_bytes().to_vec(), mpk_b);
    mpk.verify(&nonce).unwrap();
    assert!(mpk.verify(b"other nonce").is_err());
    let sk = MemberSecretKey::from_bytes(&hx(&g["member_secret_key"])).unwrap();

    // Credential: proof against Q, both pairing equations.
    let cred_b = hx(&g["credential"]);
    let cred = Credential::from_bytes(&cred_b).unwrap();
    assert_eq!(cred.to_bytes().to_vec(), cred_b);
    let csig_b = hx(&g["credential_signature"]);
    let csig = CredentialSignature::from_bytes(&csig_b).unwrap();
    assert_eq!(csig.to_bytes().to_vec(), csig_b);
    cred.validate(&csig, &mpk, &gpk).unwrap();
    let mut bad = csig_b.clone();
    bad[40] ^= 1;
    assert!(cred
        .validate(&CredentialSignature::from_bytes(&bad).unwrap(), &mpk, &gpk)
        .is_err());

    // The recorded member builds (D = [sk]B, pairings).
    Member::new(sk, cred, &gpk, b"xtt-kat-basename").unwrap();

    let (valid, invalid) = check_signature_cases(&gpk, g["signatures"].as_array().unwrap());
    assert_eq!((valid, invalid), (7, 9));
}

#[test]
fn xtt_sample_member_and_signatures() {
    let d = load_json("ecdaa_fp256bn.json");
    let g = &d["xtt_sample_member"];
    let gpk_b = hx(&g["group_public_key"]);
    let gpk = GroupPublicKey::from_bytes(&gpk_b).unwrap();
    let bsn = hx(&g["basename"]);
    let member = Member::from_bytes(
        &hx(&g["member_secret_key"]),
        &hx(&g["credential"]),
        &gpk_b,
        &bsn,
    )
    .unwrap();
    assert_eq!(
        member.group_id().0.to_vec(),
        hx(&g["group_id_sha256_gpk_basename"])
    );
    let (valid, invalid) = check_signature_cases(&gpk, g["signatures"].as_array().unwrap());
    assert_eq!((valid, invalid), (3, 9));
}

#[test]
fn xaptum_sample_files() {
    let gpk = read_file("xaptum-data/client/daa_gpk.bin");
    assert_eq!(gpk, read_file("xaptum-data/server/daa_gpk.bin"));
    let bsn = read_file("xaptum-data/client/basename.bin");
    assert_eq!(bsn, read_file("xaptum-data/server/basename.bin"));
    let member = Member::from_bytes(
        &read_file("xaptum-data/client/daa_secretkey.bin"),
        &read_file("xaptum-data/client/daa_cred.bin"),
        &gpk,
        &bsn,
    )
    .unwrap();
    assert_eq!(
        member.group_id().0.to_vec(),
        read_file("xaptum-data/client/gid.bin")
    );
    let cred = Credential::from_bytes(&read_file("xaptum-data/client/daa_cred.bin")).unwrap();
    assert_eq!(
        cred.to_bytes().to_vec(),
        read_file("xaptum-data/client/daa_cred.bin")
    );
    let sk =
        MemberSecretKey::from_bytes(&read_file("xaptum-data/client/daa_secretkey.bin")).unwrap();
    assert_eq!(
        sk.to_bytes().to_vec(),
        read_file("xaptum-data/client/daa_secretkey.bin")
    );
    // A fresh signature from the sample member verifies under the server's files.
    let v = GroupVerifier::new(GroupPublicKey::from_bytes(&gpk).unwrap(), &bsn).unwrap();
    let mut rng = test_rng(7);
    let sig = member.sign(b"sample", &mut rng).unwrap();
    let nym = v.verify(b"sample", &sig, &mut rng).unwrap().unwrap();
    assert_eq!(Some(nym), member.pseudonym());
}

const HANDSHAKES: [&str; 5] = [
    "xtt_id_handshake_suite1.json",
    "xtt_id_handshake_suite1_requested_id.json",
    "xtt_id_handshake_suite2.json",
    "xtt_id_handshake_suite3.json",
    "xtt_id_handshake_suite4.json",
];

fn draw<'a>(h: &'a Value, label: &str) -> &'a Value {
    h["rng"]["draws"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["label"] == label)
        .unwrap_or_else(|| panic!("draw {label} missing"))
}

#[test]
fn handshake_signatures_reproduced_byte_for_byte_from_recorded_draws() {
    for file in HANDSHAKES {
        let h = load_json(file);
        let daa = &h["daa"];
        let member = Member::from_bytes(
            &hx(&daa["member_secret_key"]),
            &hx(&daa["credential"]),
            &hx(&daa["group_public_key"]),
            &hx(&daa["basename"]),
        )
        .unwrap();
        assert_eq!(member.group_id().0.to_vec(), hx(&daa["group_id"]), "{file}");
        let mut stream = Vec::new();
        for label in [
            "ecdaa_credential_randomizer_l",
            "ecdaa_schnorr_commit_k",
            "ecdaa_schnorr_nonce_n",
        ] {
            let d = draw(&h, label);
            assert_eq!(d["len"].as_u64(), Some(65));
            stream.extend(hx(&d["bytes"]));
        }
        let mut rng = ReplayRng::new(stream.clone());
        let msg = hx(&h["signatures"]["client_daa_sig_hash"]);
        let sig = member.sign(&msg, &mut rng).unwrap();
        assert_eq!(rng.remaining(), 0, "{file}: sign must draw exactly l, k, n");
        // Prepared ahead of the message from the same draws: the same C bytes.
        let mut rng = ReplayRng::new(stream);
        let prepared = member.prepare(&mut rng);
        assert_eq!(
            rng.remaining(),
            0,
            "{file}: prepare must draw exactly l, k, n"
        );
        let from_prepared = member.sign_prepared(prepared, &msg).unwrap();
        assert_eq!(
            hex::encode(from_prepared),
            h["signatures"]["client_daa_signature"].as_str().unwrap(),
            "{file}: prepared"
        );
        assert_eq!(
            hex::encode(sig),
            h["signatures"]["client_daa_signature"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(
            sig[356..].to_vec(),
            hx(&h["result"]["client_daa_pseudonym"]),
            "{file}"
        );
        // And it verifies.
        let v = GroupVerifier::new(
            GroupPublicKey::from_bytes(&hx(&daa["group_public_key"])).unwrap(),
            &hx(&daa["basename"]),
        )
        .unwrap();
        v.verify(&msg, &sig, &mut test_rng(3)).unwrap();
    }
}

#[test]
fn handshake_rng_is_the_chacha20_keystream() {
    // The draws are consecutive slices of the ChaCha20 keystream keyed with the seed, so
    // signing from the live stream (positioned at l) gives the same signature.
    let h = load_json("xtt_id_handshake_suite1.json");
    let draws = h["rng"]["draws"].as_array().unwrap();
    let total: usize = draws
        .iter()
        .map(|d| usize::try_from(d["len"].as_u64().unwrap()).unwrap())
        .sum();
    let stream = common::chacha_stream(&hx(&h["rng"]["seed"]), total);
    let mut pos = 0;
    let mut l_pos = None;
    for d in draws {
        let n = usize::try_from(d["len"].as_u64().unwrap()).unwrap();
        assert_eq!(
            stream[pos..pos + n].to_vec(),
            hx(&d["bytes"]),
            "{}",
            d["label"]
        );
        if d["label"] == "ecdaa_credential_randomizer_l" {
            l_pos = Some(pos);
        }
        pos += n;
    }
    let l_pos = l_pos.unwrap();
    let daa = &h["daa"];
    let member = Member::from_bytes(
        &hx(&daa["member_secret_key"]),
        &hx(&daa["credential"]),
        &hx(&daa["group_public_key"]),
        &hx(&daa["basename"]),
    )
    .unwrap();
    let mut rng = ReplayRng::new(stream[l_pos..].to_vec());
    let sig = member
        .sign(&hx(&h["signatures"]["client_daa_sig_hash"]), &mut rng)
        .unwrap();
    assert_eq!(
        hex::encode(sig),
        h["signatures"]["client_daa_signature"].as_str().unwrap()
    );
}
