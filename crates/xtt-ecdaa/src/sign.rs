//! The member and its signing operation (ECDAA.md §8), with the C library's exact Fiat–Shamir
//! inputs and RNG draw order (l, k, n) so recorded C RNG streams reproduce C signatures.

use core::fmt;

use miracl_core::fp256bn::ecp::ECP;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use xtt_proto::daa::GroupId;

use std::sync::Arc;

use crate::curve::ct_mul_g1;
use crate::encoding::{encode_g1, G1_LEN};
use crate::error::Error;
use crate::fixed_base::FixedBase;
use crate::g1::G1;
use crate::hash::{hash_to_g1, hash_to_scalar};
use crate::issuer::GroupPublicKey;
use crate::join::{Credential, MemberSecretKey};
use crate::scalar::{big_to_bytes, Scalar, SCALAR_LEN};

/// Length of a signature without pseudonym: `c ‖ s ‖ R ‖ S ‖ T ‖ W ‖ n`.
pub const SIGNATURE_LEN_WITHOUT_PSEUDONYM: usize = 3 * SCALAR_LEN + 4 * G1_LEN;
/// Length of a signature with pseudonym: the above followed by K.
pub const SIGNATURE_LEN_WITH_PSEUDONYM: usize = SIGNATURE_LEN_WITHOUT_PSEUDONYM + G1_LEN;

/// The XTT group id convention: SHA-256(gpk(258) ‖ basename).
pub fn group_id(gpk: &GroupPublicKey, basename: &[u8]) -> GroupId {
    GroupId(
        Sha256::new()
            .chain_update(gpk.to_bytes())
            .chain_update(basename)
            .finalize()
            .into(),
    )
}

/// What a basename fixes for a member: the basename bytes, J = HashToG1(bsn) and the member's
/// pseudonym K = [sk]J (public in every signature, so caching it leaks nothing).
#[derive(Clone)]
pub(crate) struct BasenamePoint {
    pub(crate) basename: Vec<u8>,
    pub(crate) j: ECP,
    pub(crate) j_bytes: [u8; G1_LEN],
}

impl BasenamePoint {
    pub(crate) fn new(basename: &[u8]) -> Result<Option<Self>, Error> {
        if basename.is_empty() {
            return Ok(None);
        }
        let j = hash_to_g1(basename)?;
        Ok(Some(BasenamePoint {
            basename: basename.to_vec(),
            j_bytes: encode_g1(&j),
            j,
        }))
    }
}

/// Fixed-base tables for the points a member multiplies in every signature.
struct SignTables {
    a: FixedBase,
    b: FixedBase,
    c: FixedBase,
    d: FixedBase,
    j: Option<FixedBase>,
}

/// A group member: secret key, credential and basename. Implements
/// [`xtt_proto::daa::DaaSigner`].
///
/// Construction precomputes constant-time fixed-base tables for the credential points A, B,
/// C, D and the basename point J (about 37 KiB each, shared between clones), so every
/// multiplication in [`Member::sign`] is a table walk.
#[derive(Clone)]
pub struct Member {
    sk: MemberSecretKey,
    cred: Credential,
    bsn: Option<BasenamePoint>,
    tables: Arc<SignTables>,
    /// K = [sk]J, encoded, when a basename is configured.
    nym: Option<[u8; G1_LEN]>,
    group_id: GroupId,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

impl Member {
    /// Builds a member and checks that the credential belongs to `sk` (`D = [sk]B`) and satisfies
    /// both LRSW pairing equations under `gpk`. An empty basename means "sign without".
    pub fn new(
        sk: MemberSecretKey,
        cred: Credential,
        gpk: &GroupPublicKey,
        basename: &[u8],
    ) -> Result<Self, Error> {
        if !ct_mul_g1(&cred.b, &sk.0).equals(&cred.d) {
            return Err(Error::InvalidCredential);
        }
        cred.check_pairings(gpk)?;
        let bsn = BasenamePoint::new(basename)?;
        let nym = bsn.as_ref().map(|b| encode_g1(&ct_mul_g1(&b.j, &sk.0)));
        let tables = Arc::new(SignTables {
            a: FixedBase::new(&cred.a),
            b: FixedBase::new(&cred.b),
            c: FixedBase::new(&cred.c),
            d: FixedBase::new(&cred.d),
            j: bsn.as_ref().map(|b| FixedBase::new(&b.j)),
        });
        Ok(Member {
            tables,
            group_id: group_id(gpk, basename),
            sk,
            cred,
            bsn,
            nym,
        })
    }

    /// Convenience: decodes XTT's `daa_secretkey.bin`, `daa_cred.bin`, `daa_gpk.bin` contents.
    pub fn from_bytes(
        secret_key: &[u8],
        credential: &[u8],
        gpk: &[u8],
        basename: &[u8],
    ) -> Result<Self, Error> {
        let sk = MemberSecretKey::from_bytes(secret_key)?;
        let cred = Credential::from_bytes(credential)?;
        let gpk = GroupPublicKey::from_bytes(gpk)?;
        Self::new(sk, cred, &gpk, basename)
    }

    /// SHA-256(gpk ‖ basename).
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    /// The member's credential.
    pub fn credential(&self) -> &Credential {
        &self.cred
    }

    /// The member's pseudonym for its basename, if one is configured.
    pub fn pseudonym(&self) -> Option<[u8; G1_LEN]> {
        self.nym
    }

    /// Signs with the configured basename: the 421-byte form with pseudonym.
    pub fn sign(
        &self,
        message: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<[u8; SIGNATURE_LEN_WITH_PSEUDONYM], Error> {
        if self.bsn.is_none() {
            return Err(Error::EmptyBasename);
        }
        self.sign_prepared(self.prepare(rng), message)
    }

    /// Signs without a basename (unlinkable): the 356-byte form.
    pub fn sign_without_basename(
        &self,
        message: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> [u8; SIGNATURE_LEN_WITHOUT_PSEUDONYM] {
        let prepared = self.prepare_core(false, rng);
        let mut out = [0u8; SIGNATURE_LEN_WITHOUT_PSEUDONYM];
        self.finish(&prepared, message, None, &mut out);
        out
    }

    /// Does every point multiplication of one signature with the configured basename ahead of
    /// the message (§8.1–8.2: the randomized credential, both commitments), so that
    /// [`Member::sign_prepared`] only hashes and computes one scalar response. A device can
    /// prepare while it waits for the server, or before it connects. Draws l, k and n in the
    /// order [`Member::sign`] does, so a recorded RNG stream gives the same signature.
    pub fn prepare(&self, rng: &mut dyn CryptoRngCore) -> PreparedSignature {
        self.prepare_core(self.bsn.is_some(), rng)
    }

    /// Completes a signature from [`Member::prepare`] over `message`; the same bytes
    /// [`Member::sign`] gives for the same draws. The preparation is consumed: its nonce k
    /// signs exactly one message (a second use would reveal the secret key).
    pub fn sign_prepared(
        &self,
        prepared: PreparedSignature,
        message: &[u8],
    ) -> Result<[u8; SIGNATURE_LEN_WITH_PSEUDONYM], Error> {
        let (bsn, nym) = match (&self.bsn, &self.nym) {
            (Some(b), Some(k)) => (b, k),
            _ => return Err(Error::EmptyBasename),
        };
        if !Arc::ptr_eq(&prepared.tables, &self.tables) || prepared.l.is_none() {
            return Err(Error::PreparedForAnotherMember);
        }
        let mut out = [0u8; SIGNATURE_LEN_WITH_PSEUDONYM];
        let (head, tail) = out.split_at_mut(SIGNATURE_LEN_WITHOUT_PSEUDONYM);
        self.finish(&prepared, message, Some((bsn, nym)), head);
        tail.copy_from_slice(nym);
        Ok(out)
    }

    /// §8.1–8.2 and the draw of n: everything that does not depend on the message.
    fn prepare_core(&self, with_basename: bool, rng: &mut dyn CryptoRngCore) -> PreparedSignature {
        let tb = &*self.tables;
        // 8.1: randomize the credential with l (secret: it unlinks signatures).
        let l = Scalar::random(rng);
        let r = tb.a.mul(&l.0);
        let s = tb.b.mul(&l.0);
        let t = tb.c.mul(&l.0);
        let w = tb.d.mul(&l.0);
        // 8.2: commit. E = [k]S = [k·l]B, so B's table serves here too.
        let k = Scalar::random(rng);
        let kl = Scalar::mul(&k, &l);
        let e = tb.b.mul(&kl.0);
        let (e, s, w, l_pt, r, t) = match (&tb.j, with_basename) {
            (Some(jt), true) => {
                let l_pt = jt.mul(&k.0);
                let [e, s, w, l_pt, r, t] = G1::encode_batch([&e, &s, &w, &l_pt, &r, &t]);
                (e, s, w, Some(l_pt), r, t)
            }
            _ => {
                let [e, s, w, r, t] = G1::encode_batch([&e, &s, &w, &r, &t]);
                (e, s, w, None, r, t)
            }
        };
        let n = Scalar::random(rng).to_bytes();
        PreparedSignature {
            tables: self.tables.clone(),
            k,
            e,
            s,
            w,
            l: l_pt,
            r,
            t,
            n,
        }
    }

    /// §8.3–8.4: Fiat–Shamir over the prepared points and `message`, then the response; writes
    /// `c ‖ s ‖ R ‖ S ‖ T ‖ W ‖ n` into `out` (356 bytes).
    fn finish(
        &self,
        p: &PreparedSignature,
        message: &[u8],
        bsn: Option<(&BasenamePoint, &[u8; G1_LEN])>,
        out: &mut [u8],
    ) {
        let c1 = match (bsn, &p.l) {
            (Some((b, nym)), Some(l_b)) => {
                hash_to_scalar(&[&p.e, &p.s, &p.w, l_b, &b.j_bytes, nym, &b.basename, message])
            }
            _ => hash_to_scalar(&[&p.e, &p.s, &p.w, message]),
        };
        let c = hash_to_scalar(&[&p.n, &big_to_bytes(&c1)]);
        let sresp = Scalar::schnorr_response(&p.k, &c, &self.sk.0);
        let fields: [&[u8]; 7] = [
            &big_to_bytes(&c),
            &sresp.to_bytes(),
            &p.r,
            &p.s,
            &p.t,
            &p.w,
            &p.n,
        ];
        let mut pos = 0usize;
        for f in fields {
            if let Some(dst) = out.get_mut(pos..pos + f.len()) {
                dst.copy_from_slice(f);
            }
            pos += f.len();
        }
    }
}

/// The message-independent part of one signature by one member ([`Member::prepare`]): the
/// randomized credential R, S, T, W, the commitments E and L, the nonce n, and the secret k that
/// answers the challenge. Not `Clone`: it signs one message and is gone; k is wiped on drop.
pub struct PreparedSignature {
    /// Identifies the member that prepared it (its tables are shared only between its clones).
    tables: Arc<SignTables>,
    k: Scalar,
    e: [u8; G1_LEN],
    s: [u8; G1_LEN],
    w: [u8; G1_LEN],
    /// L = [k]J, present when prepared for a signature with the basename.
    l: Option<[u8; G1_LEN]>,
    r: [u8; G1_LEN],
    t: [u8; G1_LEN],
    n: [u8; SCALAR_LEN],
}

impl fmt::Debug for PreparedSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedSignature").finish_non_exhaustive()
    }
}
