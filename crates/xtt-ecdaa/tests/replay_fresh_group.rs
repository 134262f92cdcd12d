//! Replays the ChaCha20 stream of `ecdaa_fp256bn.json` (seed `rng_seed`) through issuer key
//! generation, member key generation, credential issue and the signatures, in the order the
//! generator ran them, and requires every recorded byte to come out again.

mod common;

use common::{chacha_stream, hx, load_json, ReplayRng};
use xtt_ecdaa::{generate_member_key, Issuer, Member};

#[test]
fn fresh_group_reproduced_from_rng_seed() {
    let d = load_json("ecdaa_fp256bn.json");
    let g = &d["fresh_group"];
    let stream = chacha_stream(&hx(&d["rng_seed"]), 65 * 64);
    let mut rng = ReplayRng::new(stream);
    let issuer = Issuer::generate(&mut rng);
    assert_eq!(
        issuer.secret_key().to_bytes().to_vec(),
        hx(&g["issuer_secret_key"])
    );
    assert_eq!(
        issuer.public_key().to_bytes().to_vec(),
        hx(&g["issuer_public_key"])
    );
    let nonce = hx(&g["member_join_nonce"]);
    let (sk, mpk) = generate_member_key(&nonce, &mut rng);
    assert_eq!(sk.to_bytes().to_vec(), hx(&g["member_secret_key"]));
    assert_eq!(mpk.to_bytes().to_vec(), hx(&g["member_public_key"]));
    let (cred, csig) = issuer.issue_credential(&mpk, &nonce, &mut rng).unwrap();
    assert_eq!(cred.to_bytes().to_vec(), hx(&g["credential"]));
    assert_eq!(csig.to_bytes().to_vec(), hx(&g["credential_signature"]));

    // The valid signatures were made next, in file order, each drawing l, k, n.
    let bsn = b"xtt-kat-basename";
    let member = Member::new(sk, cred, issuer.group_public_key(), bsn).unwrap();
    let mut reproduced = 0;
    for case in g["signatures"].as_array().unwrap() {
        if !case["valid"].as_bool().unwrap() {
            continue;
        }
        let msg = hx(&case["message"]);
        let got = if case["basename"].is_null() {
            member.sign_without_basename(&msg, &mut rng).to_vec()
        } else {
            assert_eq!(hx(&case["basename"]), bsn.to_vec());
            member.sign(&msg, &mut rng).unwrap().to_vec()
        };
        assert_eq!(
            hex::encode(got),
            case["signature"].as_str().unwrap(),
            "{}",
            case["name"]
        );
        reproduced += 1;
    }
    assert_eq!(reproduced, 7);
}
