//! The issuer: key generation with its Schnorr proof of knowledge of (x, y), the issuer public
//! key (354 bytes) and the group public key it is cut down to (258 bytes). ECDAA.md §6.

use core::fmt;

use miracl_core::fp256bn::ecp2::ECP2;
use miracl_core::fp256bn::pair;
use rand_core::CryptoRngCore;

use crate::curve::{ct_mul_g2, p2};
use crate::encoding::{decode_g2, encode_g2, G2_LEN};
use crate::error::Error;
use crate::hash::hash_to_scalar;
use crate::scalar::{big_to_bytes, read_big, Scalar, SCALAR_LEN};

/// Length of a serialized issuer public key `X ‖ Y ‖ c ‖ sx ‖ sy`.
pub const ISSUER_PUBLIC_KEY_LEN: usize = 2 * G2_LEN + 3 * SCALAR_LEN;
/// Length of a serialized issuer secret key `x ‖ y`.
pub const ISSUER_SECRET_KEY_LEN: usize = 2 * SCALAR_LEN;
/// Length of a serialized group public key `X ‖ Y`.
pub const GROUP_PUBLIC_KEY_LEN: usize = 2 * G2_LEN;

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

/// The group public key (X, Y) = (`[x]P2`, `[y]P2`). Carries no proof: decoding applies the G2
/// checks (on the twist, in the order-r subgroup) only.
#[derive(Clone)]
pub struct GroupPublicKey {
    pub(crate) x: ECP2,
    pub(crate) y: ECP2,
}

impl fmt::Debug for GroupPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupPublicKey")
            .field("bytes", &crate::hex(&self.to_bytes()))
            .finish()
    }
}

impl PartialEq for GroupPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}
impl Eq for GroupPublicKey {}

impl GroupPublicKey {
    /// Decodes `X ‖ Y` (258 bytes) with full G2 validation.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes, GROUP_PUBLIC_KEY_LEN)?;
        let (xb, yb) = bytes.split_at(G2_LEN);
        Ok(GroupPublicKey {
            x: decode_g2(xb)?,
            y: decode_g2(yb)?,
        })
    }

    /// `X ‖ Y`, 258 bytes.
    pub fn to_bytes(&self) -> [u8; GROUP_PUBLIC_KEY_LEN] {
        let mut out = [0u8; GROUP_PUBLIC_KEY_LEN];
        let (xo, yo) = out.split_at_mut(G2_LEN);
        xo.copy_from_slice(&encode_g2(&self.x));
        yo.copy_from_slice(&encode_g2(&self.y));
        out
    }
}

/// The issuer's secret key (x, y). Zeroized on drop; `Debug` does not print it.
#[derive(Clone)]
pub struct IssuerSecretKey {
    pub(crate) x: Scalar,
    pub(crate) y: Scalar,
}

impl fmt::Debug for IssuerSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuerSecretKey(<redacted>)")
    }
}

impl IssuerSecretKey {
    /// Decodes `x ‖ y` (64 bytes); both must be non-zero and below r.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes, ISSUER_SECRET_KEY_LEN)?;
        let (xb, yb) = bytes.split_at(SCALAR_LEN);
        let x = Scalar::from_bytes(xb)?;
        let y = Scalar::from_bytes(yb)?;
        if x.is_zero() || y.is_zero() {
            return Err(Error::ZeroScalar);
        }
        Ok(IssuerSecretKey { x, y })
    }

    /// `x ‖ y`, 64 bytes. The caller owns (and should zeroize) the copy.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; ISSUER_SECRET_KEY_LEN]> {
        let mut out = zeroize::Zeroizing::new([0u8; ISSUER_SECRET_KEY_LEN]);
        let (xo, yo) = out.split_at_mut(SCALAR_LEN);
        xo.copy_from_slice(&self.x.to_bytes());
        yo.copy_from_slice(&self.y.to_bytes());
        out
    }

    /// The matching group public key (`[x]P2`, `[y]P2`), computed in constant time.
    pub fn group_public_key(&self) -> GroupPublicKey {
        let g = p2();
        GroupPublicKey {
            x: ct_mul_g2(&g, &self.x),
            y: ct_mul_g2(&g, &self.y),
        }
    }
}

/// The issuer public key: the group public key plus a Schnorr proof of knowledge of x and y.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerPublicKey {
    gpk: GroupPublicKey,
    c: [u8; SCALAR_LEN],
    sx: [u8; SCALAR_LEN],
    sy: [u8; SCALAR_LEN],
}

impl fmt::Debug for IssuerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerPublicKey")
            .field("gpk", &self.gpk)
            .finish_non_exhaustive()
    }
}

/// `c = Hr(ser2(Ux) ‖ ser2(Uy) ‖ ser2(P2) ‖ ser2(X) ‖ ser2(Y))`.
fn issuer_challenge(ux: &ECP2, uy: &ECP2, gpk: &GroupPublicKey) -> [u8; SCALAR_LEN] {
    let c = hash_to_scalar(&[
        &encode_g2(ux),
        &encode_g2(uy),
        &encode_g2(&p2()),
        &encode_g2(&gpk.x),
        &encode_g2(&gpk.y),
    ]);
    big_to_bytes(&c)
}

impl IssuerPublicKey {
    /// Decodes the 354-byte issuer public key and verifies its proof.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes, ISSUER_PUBLIC_KEY_LEN)?;
        let (gb, rest) = bytes.split_at(GROUP_PUBLIC_KEY_LEN);
        let gpk = GroupPublicKey::from_bytes(gb)?;
        let mut fields = [[0u8; SCALAR_LEN]; 3];
        for (f, chunk) in fields.iter_mut().zip(rest.chunks_exact(SCALAR_LEN)) {
            f.copy_from_slice(chunk);
        }
        let [c, sx, sy] = fields;
        let ipk = IssuerPublicKey { gpk, c, sx, sy };
        ipk.verify_proof()?;
        Ok(ipk)
    }

    /// `X ‖ Y ‖ c ‖ sx ‖ sy`, 354 bytes.
    pub fn to_bytes(&self) -> [u8; ISSUER_PUBLIC_KEY_LEN] {
        let mut out = [0u8; ISSUER_PUBLIC_KEY_LEN];
        let (g, rest) = out.split_at_mut(GROUP_PUBLIC_KEY_LEN);
        g.copy_from_slice(&self.gpk.to_bytes());
        for (chunk, v) in rest
            .chunks_exact_mut(SCALAR_LEN)
            .zip([&self.c, &self.sx, &self.sy])
        {
            chunk.copy_from_slice(v);
        }
        out
    }

    /// The group public key (the "extract gpk" step; the proof was checked on decoding).
    pub fn group_public_key(&self) -> &GroupPublicKey {
        &self.gpk
    }

    /// Recomputes `Ux' = [sx]P2 − [c]X`, `Uy' = [sy]P2 − [c]Y` and compares the challenge.
    /// c, sx, sy are used as read (public values: variable-time arithmetic).
    fn verify_proof(&self) -> Result<(), Error> {
        let c = read_big(&self.c)?;
        let sx = read_big(&self.sx)?;
        let sy = read_big(&self.sy)?;
        let g = p2();
        let mut ux = pair::g2mul(&g, &sx);
        ux.sub(&pair::g2mul(&self.gpk.x, &c));
        let mut uy = pair::g2mul(&g, &sy);
        uy.sub(&pair::g2mul(&self.gpk.y, &c));
        if issuer_challenge(&ux, &uy, &self.gpk) == self.c {
            Ok(())
        } else {
            Err(Error::InvalidIssuerProof)
        }
    }
}

/// An issuer: secret key plus public key.
#[derive(Clone)]
pub struct Issuer {
    pub(crate) sk: IssuerSecretKey,
    pub(crate) pk: IssuerPublicKey,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("pk", &self.pk)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Generates a fresh issuer: draws x, y, then the proof randomness rx, ry (C's order).
    pub fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        let x = Scalar::random(rng);
        let y = Scalar::random(rng);
        let sk = IssuerSecretKey { x, y };
        let gpk = sk.group_public_key();
        let rx = Scalar::random(rng);
        let ry = Scalar::random(rng);
        let g = p2();
        let ux = ct_mul_g2(&g, &rx);
        let uy = ct_mul_g2(&g, &ry);
        let c = issuer_challenge(&ux, &uy, &gpk);
        let cb = miracl_core::fp256bn::big::BIG::frombytes(&c);
        let sx = Scalar::schnorr_response(&rx, &cb, &sk.x).to_bytes();
        let sy = Scalar::schnorr_response(&ry, &cb, &sk.y).to_bytes();
        Issuer {
            sk,
            pk: IssuerPublicKey { gpk, c, sx, sy },
        }
    }

    /// Rebuilds an issuer from its serialized keys, checking the public key's proof and that
    /// the public key belongs to the secret key.
    pub fn from_keys(secret: &[u8], public: &[u8]) -> Result<Self, Error> {
        let sk = IssuerSecretKey::from_bytes(secret)?;
        let pk = IssuerPublicKey::from_bytes(public)?;
        if sk.group_public_key() != pk.gpk {
            return Err(Error::InvalidIssuerProof);
        }
        Ok(Issuer { sk, pk })
    }

    /// The issuer public key (354-byte form via [`IssuerPublicKey::to_bytes`]).
    pub fn public_key(&self) -> &IssuerPublicKey {
        &self.pk
    }

    /// The issuer secret key.
    pub fn secret_key(&self) -> &IssuerSecretKey {
        &self.sk
    }

    /// The group public key.
    pub fn group_public_key(&self) -> &GroupPublicKey {
        &self.pk.gpk
    }
}
