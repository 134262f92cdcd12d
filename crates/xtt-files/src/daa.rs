//! DAA (ECDAA on FP256BN) files, raw serializations as xaptum/ecdaa writes them and as the xtt
//! tools read them:
//!
//! | file (xtt / ecdaa tool name) | bytes | content |
//! |---|---|---|
//! | `daa_gpk.bin` / `gpk.bin` | 258 | group public key `X ‖ Y` (G2 points) |
//! | `basename.bin` | 1–1024 | basename (the C client reads at most 1024 bytes) |
//! | `gid.bin` | 32 | group id = SHA-256(gpk ‖ basename) |
//! | `daa_cred.bin` / `cred.bin` | 260 | credential `A ‖ B ‖ C ‖ D` (G1 points) |
//! | `daa_secretkey.bin` / `sk.bin` | 32 | member secret key (0600) |
//! | `ipk.bin` | 354 | issuer public key `X ‖ Y ‖ c ‖ sx ‖ sy` |
//! | `isk.bin` | 64 | issuer secret key `x ‖ y` (0600) |
//! | `pk.bin` | 161 | member public key (join request) `Q ‖ c ‖ s ‖ n` |
//! | `cred_sig.bin` | 64 | issuer's proof on a credential `c ‖ s` |

use std::path::Path;

use xtt_ecdaa::issuer::{GROUP_PUBLIC_KEY_LEN, ISSUER_PUBLIC_KEY_LEN, ISSUER_SECRET_KEY_LEN};
use xtt_ecdaa::join::{CREDENTIAL_LEN, MEMBER_SECRET_KEY_LEN};
use xtt_ecdaa::{Credential, GroupPublicKey, Issuer, Member, MemberSecretKey};
use xtt_proto::daa::{GroupId, GROUP_ID_LEN};
use zeroize::Zeroizing;

use crate::certs::hex;
use crate::error::{Error, ErrorKind, Result};
use crate::fsio::{self, Access, Overwrite};

/// The largest basename the C client reads.
pub const MAX_BASENAME_LEN: usize = 1024;

/// The largest basename the C library accepts when it sets up a DAA context (XTT-WIRE §10): a
/// group created with a longer one would not work with C clients or servers.
pub const C_MAX_BASENAME_LEN: usize = 64;

fn ecdaa_err(path: &Path, what: &'static str, e: xtt_ecdaa::Error) -> Error {
    Error::malformed(path, what, e)
}

/// Reads and validates a group public key (points on the curve, in the subgroup).
pub fn read_gpk(path: &Path) -> Result<GroupPublicKey> {
    const WHAT: &str = "DAA group public key";
    let bytes = fsio::read_exact::<GROUP_PUBLIC_KEY_LEN>(path, WHAT)?;
    GroupPublicKey::from_bytes(&bytes).map_err(|e| ecdaa_err(path, WHAT, e))
}

/// Writes a group public key (0644).
pub fn write_gpk(path: &Path, gpk: &GroupPublicKey, overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, &gpk.to_bytes(), Access::Public, overwrite)
}

/// Reads a basename (1 to 1024 bytes).
pub fn read_basename(path: &Path) -> Result<Vec<u8>> {
    const WHAT: &str = "DAA basename";
    let bytes = fsio::read_limited(path, WHAT, MAX_BASENAME_LEN)?;
    if bytes.is_empty() {
        return Err(Error::malformed(
            path,
            WHAT,
            "it is empty (XTT signs with a basename)",
        ));
    }
    Ok(bytes)
}

/// Writes a basename (0644).
pub fn write_basename(path: &Path, basename: &[u8], overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, basename, Access::Public, overwrite)
}

/// Reads a 32-byte group id.
pub fn read_group_id(path: &Path) -> Result<GroupId> {
    fsio::read_exact::<GROUP_ID_LEN>(path, "DAA group id").map(GroupId)
}

/// Writes a group id (0644).
pub fn write_group_id(path: &Path, gid: &GroupId, overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, &gid.0, Access::Public, overwrite)
}

/// Checks that a group id file agrees with SHA-256(gpk ‖ basename).
pub fn check_group_id(
    path: &Path,
    stored: &GroupId,
    gpk: &GroupPublicKey,
    basename: &[u8],
) -> Result<()> {
    let derived = xtt_ecdaa::group_id(gpk, basename);
    if derived.0 != stored.0 {
        return Err(Error::new(
            path,
            ErrorKind::Inconsistent(format!(
                "group id {} is not SHA-256(gpk ‖ basename) = {}",
                hex(&stored.0),
                hex(&derived.0)
            )),
        ));
    }
    Ok(())
}

/// Reads a credential (points validated; pairings are checked when it is paired with a key).
pub fn read_credential(path: &Path) -> Result<Credential> {
    const WHAT: &str = "DAA credential";
    let bytes = fsio::read_exact::<CREDENTIAL_LEN>(path, WHAT)?;
    Credential::from_bytes(&bytes).map_err(|e| ecdaa_err(path, WHAT, e))
}

/// Writes a credential (0644; it is useless without the secret key).
pub fn write_credential(path: &Path, cred: &Credential, overwrite: Overwrite) -> Result<()> {
    fsio::write_atomic(path, &cred.to_bytes(), Access::Public, overwrite)
}

const MEMBER_SECRET_KEY: &str = "DAA member secret key";

/// Reads a member secret key (with a warning if others may read it, see
/// [`fsio::warn_if_exposed`]).
pub fn read_member_secret_key(path: &Path) -> Result<MemberSecretKey> {
    let bytes = Zeroizing::new(fsio::read_secret_exact::<MEMBER_SECRET_KEY_LEN>(
        path,
        MEMBER_SECRET_KEY,
    )?);
    decode_member_secret_key(path, bytes.as_slice())
}

/// Decodes the bytes of the member secret key file `path`.
pub(crate) fn decode_member_secret_key(path: &Path, bytes: &[u8]) -> Result<MemberSecretKey> {
    if bytes.len() != MEMBER_SECRET_KEY_LEN {
        return Err(Error::wrong_length(
            path,
            MEMBER_SECRET_KEY,
            MEMBER_SECRET_KEY_LEN,
            bytes.len(),
        ));
    }
    MemberSecretKey::from_bytes(bytes).map_err(|e| ecdaa_err(path, MEMBER_SECRET_KEY, e))
}

/// Writes a member secret key (0600).
pub fn write_member_secret_key(
    path: &Path,
    sk: &MemberSecretKey,
    overwrite: Overwrite,
) -> Result<()> {
    fsio::write_atomic(path, sk.to_bytes().as_slice(), Access::Secret, overwrite)
}

/// Reads an issuer key pair (`ipk.bin`, `isk.bin`); the public key's proof is checked and the
/// two must belong together.
pub fn read_issuer(ipk_path: &Path, isk_path: &Path) -> Result<Issuer> {
    let ipk = fsio::read_exact::<ISSUER_PUBLIC_KEY_LEN>(ipk_path, "DAA issuer public key")?;
    let isk = Zeroizing::new(fsio::read_secret_exact::<ISSUER_SECRET_KEY_LEN>(
        isk_path,
        "DAA issuer secret key",
    )?);
    // Decode each alone first so that the error names the broken file.
    xtt_ecdaa::IssuerPublicKey::from_bytes(&ipk)
        .map_err(|e| ecdaa_err(ipk_path, "DAA issuer public key", e))?;
    xtt_ecdaa::IssuerSecretKey::from_bytes(isk.as_slice())
        .map_err(|e| ecdaa_err(isk_path, "DAA issuer secret key", e))?;
    Issuer::from_keys(isk.as_slice(), &ipk).map_err(|e| {
        Error::new(
            isk_path,
            ErrorKind::Inconsistent(format!(
                "this issuer secret key does not belong to {} ({e})",
                ipk_path.display()
            )),
        )
    })
}

/// Writes an issuer key pair: public 0644, secret 0600.
pub fn write_issuer(
    ipk_path: &Path,
    isk_path: &Path,
    issuer: &Issuer,
    overwrite: Overwrite,
) -> Result<()> {
    fsio::write_atomic(
        isk_path,
        issuer.secret_key().to_bytes().as_slice(),
        Access::Secret,
        overwrite,
    )?;
    fsio::write_atomic(
        ipk_path,
        &issuer.public_key().to_bytes(),
        Access::Public,
        overwrite,
    )
}

/// The C client's DAA inputs, by the file names it uses by default.
#[derive(Debug, Clone)]
pub struct MemberFileNames;

impl MemberFileNames {
    /// Group public key.
    pub const GPK: &'static str = "daa_gpk.bin";
    /// Basename.
    pub const BASENAME: &'static str = "basename.bin";
    /// Group id (written for people and servers; the C client derives it).
    pub const GID: &'static str = "gid.bin";
    /// Credential.
    pub const CREDENTIAL: &'static str = "daa_cred.bin";
    /// Member secret key.
    pub const SECRET_KEY: &'static str = "daa_secretkey.bin";
}

/// Loads a member from a directory holding the C client's DAA files and checks that they fit
/// together (the credential is for this key and verifies under the group public key).
pub fn read_member(dir: &Path) -> Result<Member> {
    let gpk = read_gpk(&dir.join(MemberFileNames::GPK))?;
    let basename = read_basename(&dir.join(MemberFileNames::BASENAME))?;
    let cred_path = dir.join(MemberFileNames::CREDENTIAL);
    let cred = read_credential(&cred_path)?;
    let sk = read_member_secret_key(&dir.join(MemberFileNames::SECRET_KEY))?;
    Member::new(sk, cred, &gpk, &basename).map_err(|e| {
        Error::new(
            &cred_path,
            ErrorKind::Inconsistent(format!(
                "this credential does not belong to the secret key and group public key beside \
                 it ({e})"
            )),
        )
    })
}
