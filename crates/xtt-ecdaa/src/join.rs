//! Join (ECDAA.md §7): the member's key pair and its proof bound to the issuer's nonce, the
//! issuer's credential (A, B, C, D) with its proof, and the member-side credential check.

use core::fmt;

use miracl_core::fp256bn::big::BIG;
use miracl_core::fp256bn::ecp::ECP;
use miracl_core::fp256bn::pair;
use rand_core::CryptoRngCore;

use crate::curve::{ct_mul_g1, neg_mod_r, p1, p2, vt_mul2_g1};
use crate::encoding::{decode_g1, encode_g1, G1_LEN};
use crate::error::Error;
use crate::hash::hash_to_scalar;
use crate::issuer::{GroupPublicKey, Issuer};
use crate::scalar::{big_to_bytes, order, read_big, Scalar, SCALAR_LEN};

/// Length of a member public key `Q ‖ c ‖ s ‖ n`.
pub const MEMBER_PUBLIC_KEY_LEN: usize = G1_LEN + 3 * SCALAR_LEN;
/// Length of a member secret key.
pub const MEMBER_SECRET_KEY_LEN: usize = SCALAR_LEN;
/// Length of a credential `A ‖ B ‖ C ‖ D`.
pub const CREDENTIAL_LEN: usize = 4 * G1_LEN;
/// Length of a credential signature `c ‖ s`.
pub const CREDENTIAL_SIGNATURE_LEN: usize = 2 * SCALAR_LEN;

fn check_len(bytes: &[u8], expected: usize) -> Result<(), Error> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(Error::WrongLength {
            expected,
            actual: bytes.len(),
        })
    }
}

fn scalar_field(chunk: &[u8]) -> [u8; SCALAR_LEN] {
    let mut out = [0u8; SCALAR_LEN];
    if chunk.len() == SCALAR_LEN {
        out.copy_from_slice(chunk);
    }
    out
}

/// The member secret key sk (XTT's `daa_secretkey.bin`). Zeroized on drop; never printed.
#[derive(Clone)]
pub struct MemberSecretKey(pub(crate) Scalar);

impl fmt::Debug for MemberSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemberSecretKey(<redacted>)")
    }
}

impl MemberSecretKey {
    /// Decodes 32 bytes; sk must be non-zero and below r.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let s = Scalar::from_bytes(bytes)?;
        if s.is_zero() {
            return Err(Error::ZeroScalar);
        }
        Ok(MemberSecretKey(s))
    }

    /// 32 bytes, in a buffer that wipes itself.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; MEMBER_SECRET_KEY_LEN]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// Q = [sk]P1, constant-time.
    pub(crate) fn public_point(&self) -> ECP {
        ct_mul_g1(&p1(), &self.0)
    }
}

/// The member's join request: `Q = [sk]P1` and a Schnorr proof of sk bound to the issuer nonce.
#[derive(Clone)]
pub struct MemberPublicKey {
    pub(crate) q: ECP,
    c: [u8; SCALAR_LEN],
    s: [u8; SCALAR_LEN],
    n: [u8; SCALAR_LEN],
}

impl fmt::Debug for MemberPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberPublicKey")
            .field("q", &crate::hex(&encode_g1(&self.q)))
            .finish_non_exhaustive()
    }
}

/// `c' = Hr(ser1(E) ‖ ser1(P1) ‖ ser1(Q) ‖ nonce)`, then `c = Hr(b32(n) ‖ b32(c'))`.
fn member_challenge(e: &ECP, q: &ECP, nonce: &[u8], n: &[u8; SCALAR_LEN]) -> [u8; SCALAR_LEN] {
    let c1 = hash_to_scalar(&[&encode_g1(e), &encode_g1(&p1()), &encode_g1(q), nonce]);
    big_to_bytes(&hash_to_scalar(&[n, &big_to_bytes(&c1)]))
}

impl MemberPublicKey {
    /// Decodes `Q ‖ c ‖ s ‖ n` (161 bytes). The proof is checked by [`Self::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes, MEMBER_PUBLIC_KEY_LEN)?;
        let (qb, rest) = bytes.split_at(G1_LEN);
        let q = decode_g1(qb)?;
        let mut it = rest.chunks_exact(SCALAR_LEN);
        let c = scalar_field(it.next().unwrap_or_default());
        let s = scalar_field(it.next().unwrap_or_default());
        let n = scalar_field(it.next().unwrap_or_default());
        Ok(MemberPublicKey { q, c, s, n })
    }

    /// `Q ‖ c ‖ s ‖ n`, 161 bytes.
    pub fn to_bytes(&self) -> [u8; MEMBER_PUBLIC_KEY_LEN] {
        let mut out = [0u8; MEMBER_PUBLIC_KEY_LEN];
        let (qo, rest) = out.split_at_mut(G1_LEN);
        qo.copy_from_slice(&encode_g1(&self.q));
        for (chunk, v) in rest
            .chunks_exact_mut(SCALAR_LEN)
            .zip([&self.c, &self.s, &self.n])
        {
            chunk.copy_from_slice(v);
        }
        out
    }

    /// The issuer's check of the join request: `E' = [s]P1 − [c]Q` and the two-level challenge
    /// over `nonce` must reproduce c.
    pub fn verify(&self, nonce: &[u8]) -> Result<(), Error> {
        let c = read_big(&self.c)?;
        if BIG::comp(&c, &order()) >= 0 {
            return Err(Error::InvalidMemberProof);
        }
        let s = read_big(&self.s)?;
        let e = vt_mul2_g1(&p1(), &s, &self.q, &neg_mod_r(&c));
        if member_challenge(&e, &self.q, nonce, &self.n) == self.c {
            Ok(())
        } else {
            Err(Error::InvalidMemberProof)
        }
    }

    /// The encoded public point Q.
    pub fn q_bytes(&self) -> [u8; G1_LEN] {
        encode_g1(&self.q)
    }
}

/// Generates a member key pair and join request over the issuer's `nonce`. RNG draws in C's
/// order: sk, k, n.
pub fn generate_member_key(
    nonce: &[u8],
    rng: &mut dyn CryptoRngCore,
) -> (MemberSecretKey, MemberPublicKey) {
    let sk = loop {
        let s = Scalar::random(rng);
        if !s.is_zero() {
            break MemberSecretKey(s);
        }
    };
    let q = sk.public_point();
    let k = Scalar::random(rng);
    let e = ct_mul_g1(&p1(), &k);
    let c1 = hash_to_scalar(&[&encode_g1(&e), &encode_g1(&p1()), &encode_g1(&q), nonce]);
    let n = Scalar::random(rng).to_bytes();
    let c = hash_to_scalar(&[&n, &big_to_bytes(&c1)]);
    let s = Scalar::schnorr_response(&k, &c, &sk.0).to_bytes();
    let pk = MemberPublicKey {
        q,
        c: big_to_bytes(&c),
        s,
        n,
    };
    (sk, pk)
}

/// An LRSW credential (A, B, C, D) = (`[l]P1`, `[ly]P1`, `[x](A + D)`, `[ly]Q`).
#[derive(Clone)]
pub struct Credential {
    pub(crate) a: ECP,
    pub(crate) b: ECP,
    pub(crate) c: ECP,
    pub(crate) d: ECP,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credential is not secret by itself, but together with sk it identifies the
        // member; print nothing.
        f.write_str("Credential(..)")
    }
}

impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}
impl Eq for Credential {}

impl Credential {
    /// Decodes `A ‖ B ‖ C ‖ D` (260 bytes) with G1 validation.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes, CREDENTIAL_LEN)?;
        let mut pts = [ECP::new(), ECP::new(), ECP::new(), ECP::new()];
        for (p, chunk) in pts.iter_mut().zip(bytes.chunks_exact(G1_LEN)) {
            *p = decode_g1(chunk)?;
        }
        let [a, b, c, d] = pts;
        Ok(Credential { a, b, c, d })
    }

    /// `A ‖ B ‖ C ‖ D`, 260 bytes.
    pub fn to_bytes(&self) -> [u8; CREDENTIAL_LEN] {
        let mut out = [0u8; CREDENTIAL_LEN];
        for (chunk, p) in out
            .chunks_exact_mut(G1_LEN)
            .zip([&self.a, &self.b, &self.c, &self.d])
        {
            chunk.copy_from_slice(&encode_g1(p));
        }
        out
    }

    /// The LRSW relations `e(A, Y) = e(B, P2)` and `e(C, P2) = e(A + D, X)`, each checked as a
    /// two-pairing product with one final exponentiation.
    pub fn check_pairings(&self, gpk: &GroupPublicKey) -> Result<(), Error> {
        let g2 = p2();
        let mut nb = self.b.clone();
        nb.neg();
        let first = pair::fexp(&pair::ate2(&gpk.y, &self.a, &g2, &nb));
        let mut ad = self.a.clone();
        ad.add(&self.d);
        ad.neg();
        let second = pair::fexp(&pair::ate2(&g2, &self.c, &gpk.x, &ad));
        if first.isunity() && second.isunity() {
            Ok(())
        } else {
            Err(Error::InvalidCredential)
        }
    }

    /// The member's "process credential" step: decode, check the issuer's proof against the
    /// member's Q, and both pairing equations.
    pub fn validate(
        &self,
        signature: &CredentialSignature,
        member: &MemberPublicKey,
        gpk: &GroupPublicKey,
    ) -> Result<(), Error> {
        signature.verify(self, &member.q)?;
        self.check_pairings(gpk)
    }
}

/// The issuer's proof that B and D share the discrete log l·y w.r.t. P1 and Q: `c ‖ s`.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialSignature {
    c: [u8; SCALAR_LEN],
    s: [u8; SCALAR_LEN],
}

impl fmt::Debug for CredentialSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSignature")
            .finish_non_exhaustive()
    }
}

/// `Hr(ser1(U) ‖ ser1(V) ‖ ser1(P1) ‖ ser1(B) ‖ ser1(Q) ‖ ser1(D))`.
fn credential_challenge(u: &ECP, v: &ECP, b: &ECP, q: &ECP, d: &ECP) -> BIG {
    hash_to_scalar(&[
        &encode_g1(u),
        &encode_g1(v),
        &encode_g1(&p1()),
        &encode_g1(b),
        &encode_g1(q),
        &encode_g1(d),
    ])
}

impl CredentialSignature {
    /// Decodes `c ‖ s` (64 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes, CREDENTIAL_SIGNATURE_LEN)?;
        let (c, s) = bytes.split_at(SCALAR_LEN);
        Ok(CredentialSignature {
            c: scalar_field(c),
            s: scalar_field(s),
        })
    }

    /// `c ‖ s`, 64 bytes.
    pub fn to_bytes(&self) -> [u8; CREDENTIAL_SIGNATURE_LEN] {
        let mut out = [0u8; CREDENTIAL_SIGNATURE_LEN];
        let (c, s) = out.split_at_mut(SCALAR_LEN);
        c.copy_from_slice(&self.c);
        s.copy_from_slice(&self.s);
        out
    }

    /// `U' = [s]P1 − [c]B`, `V' = [s]Q − [c]D`, and the challenge must reproduce c.
    pub(crate) fn verify(&self, cred: &Credential, q: &ECP) -> Result<(), Error> {
        let c = read_big(&self.c)?;
        if BIG::comp(&c, &order()) >= 0 {
            return Err(Error::InvalidCredential);
        }
        let s = read_big(&self.s)?;
        let nc = neg_mod_r(&c);
        let u = vt_mul2_g1(&p1(), &s, &cred.b, &nc);
        let v = vt_mul2_g1(q, &s, &cred.d, &nc);
        let got = credential_challenge(&u, &v, &cred.b, q, &cred.d);
        if big_to_bytes(&got) == self.c {
            Ok(())
        } else {
            Err(Error::InvalidCredential)
        }
    }
}

impl Issuer {
    /// Checks the member's join request against `nonce` and issues a credential with its
    /// proof. RNG draws in C's order: l, then the proof's t.
    pub fn issue_credential(
        &self,
        member: &MemberPublicKey,
        nonce: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(Credential, CredentialSignature), Error> {
        member.verify(nonce)?;
        let q = &member.q;
        let l = Scalar::random(rng);
        let g1 = p1();
        let a = ct_mul_g1(&g1, &l);
        let b = ct_mul_g1(&a, &self.sk.y);
        let ly = Scalar::mul(&l, &self.sk.y);
        let d = ct_mul_g1(q, &ly);
        let mut c = ct_mul_g1(&a, &self.sk.x);
        let lyx = Scalar::mul(&ly, &self.sk.x);
        c.add(&ct_mul_g1(q, &lyx));
        let cred = Credential { a, b, c, d };

        let t = Scalar::random(rng);
        let u = ct_mul_g1(&g1, &t);
        let v = ct_mul_g1(q, &t);
        let ch = credential_challenge(&u, &v, &cred.b, q, &cred.d);
        let s = Scalar::schnorr_response(&t, &ch, &ly);
        Ok((
            cred,
            CredentialSignature {
                c: big_to_bytes(&ch),
                s: s.to_bytes(),
            },
        ))
    }
}
