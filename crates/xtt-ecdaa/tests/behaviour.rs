//! Behaviour tests on freshly generated groups: round trips, sizes, malformed inputs,
//! revocation, batches, the XTT trait impls and secret hygiene.

mod common;

use common::test_rng;
use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::ecp::ECP;
use miracl_core::fp256bn::ecp2::ECP2;
use miracl_core::fp256bn::fp2::FP2;
use miracl_core::fp256bn::rom;
use proptest::prelude::*;
use xtt_ecdaa::encoding::{decode_g1, decode_g2, encode_g1, encode_g2};
use xtt_ecdaa::{
    generate_member_key, Credential, Error, GroupPublicKey, GroupVerifier, Issuer, IssuerPublicKey,
    IssuerSecretKey, Member, MemberPublicKey, MemberSecretKey, RevocationLists,
};
use xtt_proto::daa::{DaaError, DaaSignature, DaaSigner, DaaVerifier};

struct Group {
    issuer: Issuer,
    member: Member,
    sk: Vec<u8>,
    verifier: GroupVerifier,
}

const BSN: &[u8] = b"test-basename";

fn group(seed: u64) -> Group {
    let mut rng = test_rng(seed);
    let issuer = Issuer::generate(&mut rng);
    let (sk, mpk) = generate_member_key(b"nonce", &mut rng);
    let (cred, csig) = issuer.issue_credential(&mpk, b"nonce", &mut rng).unwrap();
    cred.validate(&csig, &mpk, issuer.group_public_key())
        .unwrap();
    let sk_bytes = sk.to_bytes().to_vec();
    let member = Member::new(sk, cred, issuer.group_public_key(), BSN).unwrap();
    let verifier = GroupVerifier::new(issuer.group_public_key().clone(), BSN).unwrap();
    Group {
        issuer,
        member,
        sk: sk_bytes,
        verifier,
    }
}

#[test]
fn issuer_keys_round_trip_and_proof_is_checked() {
    let g = group(1);
    let ipk = g.issuer.public_key().to_bytes();
    let isk = g.issuer.secret_key().to_bytes();
    assert_eq!((ipk.len(), isk.len()), (354, 64));
    let back = IssuerPublicKey::from_bytes(&ipk).unwrap();
    assert_eq!(back.to_bytes(), ipk);
    Issuer::from_keys(&isk[..], &ipk).unwrap();
    assert_eq!(g.issuer.group_public_key().to_bytes().len(), 258);
    assert_eq!(&ipk[..258], &g.issuer.group_public_key().to_bytes()[..]);
    // Tampered proof scalars are rejected.
    for off in [258, 290, 322] {
        let mut bad = ipk;
        bad[off + 5] ^= 0x40;
        assert_eq!(
            IssuerPublicKey::from_bytes(&bad).unwrap_err(),
            Error::InvalidIssuerProof
        );
    }
    // A secret key that does not match the public key is refused.
    let other = Issuer::generate(&mut test_rng(99));
    assert!(Issuer::from_keys(&other.secret_key().to_bytes()[..], &ipk).is_err());
    assert!(IssuerSecretKey::from_bytes(&[0u8; 64]).is_err());
}

#[test]
fn join_round_trip_and_failures() {
    let mut rng = test_rng(2);
    let issuer = Issuer::generate(&mut rng);
    let (_sk, mpk) = generate_member_key(b"join-nonce", &mut rng);
    let bytes = mpk.to_bytes();
    assert_eq!(bytes.len(), 161);
    let mpk2 = MemberPublicKey::from_bytes(&bytes).unwrap();
    mpk2.verify(b"join-nonce").unwrap();
    assert_eq!(
        issuer
            .issue_credential(&mpk2, b"other-nonce", &mut rng)
            .unwrap_err(),
        Error::InvalidMemberProof
    );
    let (cred, csig) = issuer
        .issue_credential(&mpk2, b"join-nonce", &mut rng)
        .unwrap();
    assert_eq!((cred.to_bytes().len(), csig.to_bytes().len()), (260, 64));
    cred.validate(&csig, &mpk2, issuer.group_public_key())
        .unwrap();
    // Credential under another group fails the pairing equations.
    let other = Issuer::generate(&mut rng);
    assert_eq!(
        cred.validate(&csig, &mpk2, other.group_public_key())
            .unwrap_err(),
        Error::InvalidCredential
    );
    // Swapping A and B breaks it.
    let cb = cred.to_bytes();
    let mut swapped = cb;
    swapped[..65].copy_from_slice(&cb[65..130]);
    swapped[65..130].copy_from_slice(&cb[..65]);
    let bad = Credential::from_bytes(&swapped).unwrap();
    assert!(bad
        .validate(&csig, &mpk2, issuer.group_public_key())
        .is_err());
    // A member whose sk does not match the credential is refused.
    let (sk_other, _) = generate_member_key(b"x", &mut rng);
    assert_eq!(
        Member::new(sk_other, cred, issuer.group_public_key(), b"b").unwrap_err(),
        Error::InvalidCredential
    );
}

#[test]
fn sign_verify_both_forms_and_pseudonym() {
    let g = group(3);
    let mut rng = test_rng(30);
    let s1 = g.member.sign(b"m1", &mut rng).unwrap();
    let s2 = g.member.sign(b"m1", &mut rng).unwrap();
    assert_eq!(s1.len(), 421);
    assert_ne!(s1, s2, "signatures are randomized");
    let k1 = g.verifier.verify(b"m1", &s1, &mut rng).unwrap().unwrap();
    let k2 = g.verifier.verify(b"m1", &s2, &mut rng).unwrap().unwrap();
    assert_eq!(k1, k2);
    assert_eq!(Some(k1), g.member.pseudonym());
    assert_eq!(&s1[356..], &k1[..]);
    assert_eq!(
        g.verifier.verify(b"m2", &s1, &mut rng).unwrap_err(),
        Error::InvalidSignature
    );

    let plain = GroupVerifier::new(g.issuer.group_public_key().clone(), b"").unwrap();
    let s3 = g.member.sign_without_basename(b"m3", &mut rng);
    assert_eq!(s3.len(), 356);
    assert_eq!(plain.verify(b"m3", &s3, &mut rng).unwrap(), None);
    // A no-basename signature does not verify for a basename verifier (K := P1, as in C).
    assert!(g.verifier.verify(b"m3", &s3, &mut rng).is_err());
    // A member without basename cannot produce the 421-byte form.
    let sk = MemberSecretKey::from_bytes(&g.sk).unwrap();
    let m = Member::new(
        sk,
        Credential::from_bytes(&member_cred(&g)).unwrap(),
        g.issuer.group_public_key(),
        b"",
    )
    .unwrap();
    assert_eq!(m.sign(b"x", &mut rng).unwrap_err(), Error::EmptyBasename);
    let prepared = m.prepare(&mut rng);
    assert_eq!(
        m.sign_prepared(prepared, b"x").unwrap_err(),
        Error::EmptyBasename
    );
}

#[test]
fn prepared_signatures_verify_and_belong_to_their_member() {
    let g = group(5);
    let mut rng = test_rng(50);
    let prepared: Vec<_> = (0..3).map(|_| g.member.prepare(&mut rng)).collect();
    for (i, p) in prepared.into_iter().enumerate() {
        let msg = [u8::try_from(i).unwrap(); 64];
        let sig = g.member.sign_prepared(p, &msg).unwrap();
        let nym = g.verifier.verify(&msg, &sig, &mut rng).unwrap();
        assert_eq!(nym, g.member.pseudonym());
        assert_eq!(
            g.verifier
                .verify(b"another message", &sig, &mut rng)
                .unwrap_err(),
            Error::InvalidSignature
        );
    }
    // A clone shares the member's tables, so it may finish what the original prepared.
    let clone = g.member.clone();
    let sig = clone
        .sign_prepared(g.member.prepare(&mut rng), b"c")
        .unwrap();
    assert!(g.verifier.verify(b"c", &sig, &mut rng).is_ok());
    // Another member refuses it rather than answer with a nonce committed against another
    // credential.
    let other = group(6);
    assert_eq!(
        other
            .member
            .sign_prepared(g.member.prepare(&mut rng), b"m")
            .unwrap_err(),
        Error::PreparedForAnotherMember
    );
    // Prepared without the basename (a member that has none) cannot make the 421-byte form.
    let sk = MemberSecretKey::from_bytes(&g.sk).unwrap();
    let cred = Credential::from_bytes(&g.member.credential().to_bytes()).unwrap();
    let plain = Member::new(sk, cred, g.issuer.group_public_key(), b"").unwrap();
    assert_eq!(
        g.member
            .sign_prepared(plain.prepare(&mut rng), b"m")
            .unwrap_err(),
        Error::PreparedForAnotherMember
    );
}

fn member_cred(g: &Group) -> Vec<u8> {
    // Rebuild the credential bytes from a signature-independent route: re-issue is not
    // deterministic, so keep it simple and take it from a fresh member built the same way.
    let mut rng = test_rng(3);
    let issuer = Issuer::generate(&mut rng);
    let (_sk, mpk) = generate_member_key(b"nonce", &mut rng);
    let (cred, _) = issuer.issue_credential(&mpk, b"nonce", &mut rng).unwrap();
    assert_eq!(
        issuer.group_public_key().to_bytes(),
        g.issuer.group_public_key().to_bytes()
    );
    cred.to_bytes().to_vec()
}

#[test]
fn malformed_signatures_give_typed_errors() {
    let g = group(4);
    let mut rng = test_rng(40);
    let sig = g.member.sign(b"m", &mut rng).unwrap();
    let v = &g.verifier;
    for len in [0usize, 1, 355, 357, 420, 422] {
        let bytes = vec![0u8; len];
        assert!(
            matches!(
                v.verify(b"m", &bytes, &mut rng),
                Err(Error::WrongLength { .. })
            ),
            "len {len}"
        );
    }
    // Each point (R, S, T, W, K): bad prefix, off curve, coordinate ≥ p, all-zero (no
    // encoding of infinity exists).
    let p_bytes = {
        let mut b = [0u8; 32];
        BIG::new_ints(&rom::MODULUS).tobytes(&mut b);
        b
    };
    for off in [64usize, 129, 194, 259, 356] {
        let mut bad = sig;
        bad[off] = 0x02;
        assert_eq!(
            v.verify(b"m", &bad, &mut rng).unwrap_err(),
            Error::BadPointPrefix
        );
        let mut bad = sig;
        bad[off + 64] ^= 1;
        assert_eq!(
            v.verify(b"m", &bad, &mut rng).unwrap_err(),
            Error::NotOnCurve
        );
        let mut bad = sig;
        bad[off + 1..off + 33].copy_from_slice(&p_bytes);
        assert_eq!(
            v.verify(b"m", &bad, &mut rng).unwrap_err(),
            Error::CoordinateOutOfRange
        );
        let mut bad = sig;
        bad[off + 1..off + 65].fill(0);
        assert_eq!(
            v.verify(b"m", &bad, &mut rng).unwrap_err(),
            Error::NotOnCurve
        );
    }
    // s ≥ r is rejected (non-malleability), c ≥ r cannot verify.
    let mut bad = sig;
    bad[32..64].fill(0xff);
    assert_eq!(
        v.verify(b"m", &bad, &mut rng).unwrap_err(),
        Error::ScalarOutOfRange
    );
    let mut bad = sig;
    bad[..32].fill(0xff);
    assert_eq!(
        v.verify(b"m", &bad, &mut rng).unwrap_err(),
        Error::InvalidSignature
    );
    // s + r, the same scalar mod r, would pass C's check (it reduces s); we reject it for its
    // range. It fits in 32 bytes only for s < 2^256 - r (about 2^210), which an ordinary
    // signature's s is with a chance of about 2^-46: so take a small s, the signature's cut
    // to 192 bits. That s is in range and merely wrong (the Schnorr proof fails); its alias
    // s + r is refused before the proof is looked at.
    let r = BIG::new_ints(&rom::CURVE_ORDER);
    let mut small = sig;
    small[32..40].fill(0);
    assert_eq!(
        v.verify(b"m", &small, &mut rng).unwrap_err(),
        Error::InvalidSignature
    );
    let mut sr = BIG::frombytes(&small[32..64]);
    sr.add(&r);
    sr.norm();
    assert!(sr.nbits() <= 256, "s + r does not fit in 32 bytes");
    let mut bad = small;
    sr.tobytes(&mut bad[32..64]);
    assert_ne!(bad[32..64], small[32..64]);
    assert_eq!(
        v.verify(b"m", &bad, &mut rng).unwrap_err(),
        Error::ScalarOutOfRange
    );
    // R replaced by 2R passes the Schnorr check but fails the pairing equations.
    let mut bad = sig;
    let mut r2 = decode_g1(&sig[64..129]).unwrap();
    r2.dbl();
    bad[64..129].copy_from_slice(&encode_g1(&r2));
    assert_eq!(
        v.verify(b"m", &bad, &mut rng).unwrap_err(),
        Error::InvalidSignature
    );
}

fn g2_point_outside_subgroup() -> ECP2 {
    let mut i = 1;
    loop {
        let x = FP2::new_ints(i, 1);
        let q = ECP2::new_fp2(&x, 0);
        if !q.is_infinity() && !q.mul(&BIG::new_ints(&rom::CURVE_ORDER)).is_infinity() {
            return q;
        }
        i += 1;
    }
}

#[test]
fn malformed_group_keys_and_points() {
    let g = group(5);
    let gpk = g.issuer.group_public_key().to_bytes();
    assert!(matches!(
        GroupPublicKey::from_bytes(&gpk[..257]),
        Err(Error::WrongLength { .. })
    ));
    // G2 point on the twist but not in G2.
    let q = g2_point_outside_subgroup();
    let enc = encode_g2(&q);
    assert_eq!(decode_g2(&enc).unwrap_err(), Error::NotInSubgroup);
    let mut bad = gpk;
    bad[129..].copy_from_slice(&enc);
    assert_eq!(
        GroupPublicKey::from_bytes(&bad).unwrap_err(),
        Error::NotInSubgroup
    );
    // Off the twist, coordinate ≥ p, bad prefix, all-zero.
    let mut bad = gpk;
    bad[128] ^= 1;
    assert_eq!(
        GroupPublicKey::from_bytes(&bad).unwrap_err(),
        Error::NotOnCurve
    );
    let mut bad = gpk;
    bad[33..65].fill(0xff);
    assert_eq!(
        GroupPublicKey::from_bytes(&bad).unwrap_err(),
        Error::CoordinateOutOfRange
    );
    let mut bad = gpk;
    bad[0] = 0x03;
    assert_eq!(
        GroupPublicKey::from_bytes(&bad).unwrap_err(),
        Error::BadPointPrefix
    );
    let mut zero = [0u8; 129];
    zero[0] = 4;
    assert_eq!(decode_g2(&zero).unwrap_err(), Error::NotOnCurve);
    // G1: the generator round-trips; infinity has no encoding.
    let p1 = ECP::generator();
    let e = encode_g1(&p1);
    assert!(decode_g1(&e).unwrap().equals(&p1));
    assert!(decode_g1(&[0u8]).is_err());
    assert!(MemberSecretKey::from_bytes(&[0u8; 32]).is_err());
    assert!(MemberSecretKey::from_bytes(&[0xffu8; 32]).is_err());
    assert!(Credential::from_bytes(&[0u8; 260]).is_err());
}

#[test]
fn revocation_lists() {
    let g = group(6);
    let mut rng = test_rng(60);
    let sig = g.member.sign(b"m", &mut rng).unwrap();
    let nym = g.member.pseudonym().unwrap();
    let other = group(7);
    let other_nym = other.member.pseudonym().unwrap();

    let by_key = g
        .verifier
        .clone()
        .with_revocation(RevocationLists::from_lists(&g.sk, &[]).unwrap());
    assert_eq!(
        by_key.verify(b"m", &sig, &mut rng).unwrap_err(),
        Error::Revoked
    );
    let by_nym = g
        .verifier
        .clone()
        .with_revocation(RevocationLists::from_lists(&[], &nym).unwrap());
    assert_eq!(
        by_nym.verify(b"m", &sig, &mut rng).unwrap_err(),
        Error::Revoked
    );
    // Unrelated entries do not revoke.
    let mut lists = RevocationLists::new();
    lists.revoke_secret_key(&other.sk).unwrap();
    lists.revoke_pseudonym(&other_nym).unwrap();
    let unrelated = g.verifier.clone().with_revocation(lists);
    unrelated.verify(b"m", &sig, &mut rng).unwrap();
    // Key revocation also catches no-basename signatures.
    let plain = GroupVerifier::new(g.issuer.group_public_key().clone(), b"")
        .unwrap()
        .with_revocation(RevocationLists::from_lists(&g.sk, &[]).unwrap());
    let s = g.member.sign_without_basename(b"m", &mut rng);
    assert_eq!(
        plain.verify(b"m", &s, &mut rng).unwrap_err(),
        Error::Revoked
    );
    // List parsing errors.
    assert!(RevocationLists::from_lists(&[0u8; 33], &[]).is_err());
    assert!(RevocationLists::from_lists(&[], &[4u8; 65]).is_err());
}

#[test]
fn batch_identifies_bad_signatures() {
    let g = group(8);
    let mut rng = test_rng(80);
    let msgs: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 20]).collect();
    let mut sigs: Vec<[u8; 421]> = msgs
        .iter()
        .map(|m| g.member.sign(m, &mut rng).unwrap())
        .collect();
    let items = |sigs: &[[u8; 421]]| -> Vec<(Vec<u8>, Vec<u8>)> {
        msgs.iter()
            .cloned()
            .zip(sigs.iter().map(|s| s.to_vec()))
            .collect()
    };
    let run = |v: &GroupVerifier, it: &[(Vec<u8>, Vec<u8>)], rng: &mut rand_chacha::ChaCha20Rng| {
        let refs: Vec<(&[u8], &[u8])> = it.iter().map(|(m, s)| (&m[..], &s[..])).collect();
        v.verify_batch(&refs, rng)
    };
    let ok = run(&g.verifier, &items(&sigs), &mut rng).unwrap();
    assert_eq!(ok.len(), 9);
    assert!(ok.iter().all(|k| *k == g.member.pseudonym()));

    // Hide a pairing-level bad signature (T of another signature: the Schnorr check still
    // passes) and a Schnorr-level bad one.
    let t_other: Vec<u8> = sigs[1][194..259].to_vec();
    sigs[5][194..259].copy_from_slice(&t_other);
    sigs[7][40] ^= 1;
    let res = run(&g.verifier, &items(&sigs), &mut rng).unwrap_err();
    let bad: Vec<usize> = res
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad, vec![5, 7]);
    assert_eq!(res[5], Err(Error::InvalidSignature));
    // Each bad one alone is rejected by the single verifier too.
    assert!(g.verifier.verify(&msgs[5], &sigs[5], &mut rng).is_err());
    // Empty batch is trivially fine.
    assert!(g.verifier.verify_batch(&[], &mut rng).unwrap().is_empty());
}

#[test]
fn xtt_trait_impls() {
    let g = group(9);
    let mut rng = test_rng(90);
    let signer: &dyn DaaSigner = &g.member;
    let verifier: &dyn DaaVerifier = &g.verifier;
    assert_eq!(signer.group_id(), g.verifier.group_id());
    let sig = signer.sign(&[7u8; 64], &mut rng).unwrap();
    let nym = verifier.verify(&[7u8; 64], &sig, &mut rng).unwrap();
    assert_eq!(nym, sig.pseudonym_unverified());
    assert_eq!(
        verifier.verify(&[8u8; 64], &sig, &mut rng).unwrap_err(),
        DaaError::InvalidSignature
    );
    let mut bad = sig.0;
    bad[64] = 0;
    assert_eq!(
        verifier
            .verify(&[7u8; 64], &DaaSignature(bad), &mut rng)
            .unwrap_err(),
        DaaError::Malformed
    );
    // A verifier without basename refuses to hand out an unbound "pseudonym".
    let plain = GroupVerifier::new(g.issuer.group_public_key().clone(), b"").unwrap();
    assert!(DaaVerifier::verify(&plain, &[7u8; 64], &sig, &mut rng).is_err());
}

#[test]
fn debug_output_hides_secrets() {
    let g = group(10);
    let sk = MemberSecretKey::from_bytes(&g.sk).unwrap();
    let isk = g.issuer.secret_key();
    let isk_hex = hex::encode(isk.to_bytes());
    for s in [
        format!("{sk:?}"),
        format!("{isk:?}"),
        format!("{:?}", g.issuer),
        format!("{:?}", g.member),
    ] {
        assert!(!s.contains(&hex::encode(&g.sk)), "{s}");
        assert!(
            !s.contains(&isk_hex[..64]) && !s.contains(&isk_hex[64..]),
            "{s}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_messages_and_basenames_verify(
        msg in proptest::collection::vec(any::<u8>(), 0..200),
        bsn in proptest::collection::vec(any::<u8>(), 1..64),
        seed in any::<u64>(),
    ) {
        let mut rng = test_rng(seed);
        let base = shared_group();
        let member = Member::new(
            MemberSecretKey::from_bytes(&base.sk).unwrap(),
            base.cred.clone(),
            &base.gpk,
            &bsn,
        ).unwrap();
        let v = GroupVerifier::new(base.gpk.clone(), &bsn).unwrap();
        let sig = member.sign(&msg, &mut rng).unwrap();
        prop_assert_eq!(v.verify(&msg, &sig, &mut rng).unwrap(), member.pseudonym());
        let mut other = msg.clone();
        other.push(1);
        prop_assert!(v.verify(&other, &sig, &mut rng).is_err());
        let s2 = member.sign_without_basename(&msg, &mut rng);
        prop_assert!(base.plain.verify(&msg, &s2, &mut rng).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
        let base = shared_group();
        let mut rng = test_rng(1);
        let _ = base.plain.verify(b"m", &bytes, &mut rng);
        let _ = base.named.verify(b"m", &bytes, &mut rng);
        let _ = base.named.verify_batch(&[(b"m", &bytes), (b"", &bytes)], &mut rng);
        let _ = GroupPublicKey::from_bytes(&bytes);
        let _ = IssuerPublicKey::from_bytes(&bytes);
        let _ = MemberPublicKey::from_bytes(&bytes);
        let _ = Credential::from_bytes(&bytes);
        let _ = decode_g1(&bytes);
        let _ = decode_g2(&bytes);
    }
}

struct Shared {
    sk: Vec<u8>,
    cred: Credential,
    gpk: GroupPublicKey,
    plain: GroupVerifier,
    named: GroupVerifier,
}

fn shared_group() -> &'static Shared {
    static S: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let mut rng = test_rng(1234);
        let issuer = Issuer::generate(&mut rng);
        let (sk, mpk) = generate_member_key(b"n", &mut rng);
        let (cred, _) = issuer.issue_credential(&mpk, b"n", &mut rng).unwrap();
        let gpk = issuer.group_public_key().clone();
        Shared {
            sk: sk.to_bytes().to_vec(),
            cred,
            plain: GroupVerifier::new(gpk.clone(), b"").unwrap(),
            named: GroupVerifier::new(gpk.clone(), b"named").unwrap(),
            gpk,
        }
    })
}
