//! A DAA group directory: what an issuer (a device maker) keeps, and one sub-directory per
//! enrolled member holding exactly the files the C client reads.
//!
//! ```text
//! GROUP/
//!   ipk.bin          issuer public key (354)       0644
//!   isk.bin          issuer secret key (64)        0600
//!   daa_gpk.bin      group public key (258)        0644   <- give to XTT servers
//!   basename.bin     basename                      0644   <- give to XTT servers
//!   gid.bin          SHA-256(gpk ‖ basename) (32)  0644
//!   members/         0700
//!     000001/        0700   one enrolled device: daa_gpk.bin, basename.bin, gid.bin,
//!                           daa_cred.bin (0644), daa_secretkey.bin (0600)
//! ```
//!
//! A member directory is written under a temporary name and renamed into place when complete,
//! so a crash never leaves a half-enrolled member under a numbered name, and two enrollments
//! running at once never share a number.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rand_core::{CryptoRngCore, OsRng};
use xtt_ecdaa::{generate_member_key, GroupPublicKey, Issuer, Member};
use xtt_proto::daa::GroupId;

use crate::daa::{self, MemberFileNames};
use crate::error::{Error, ErrorKind, Result};
use crate::fsio::{self, Access, Overwrite};

/// Issuer public key file name (the ecdaa tool's).
pub const IPK: &str = "ipk.bin";
/// Issuer secret key file name (the ecdaa tool's).
pub const ISK: &str = "isk.bin";
/// Sub-directory of enrolled members.
pub const MEMBERS: &str = "members";

/// An open, checked group directory.
#[derive(Debug)]
pub struct GroupDir {
    path: PathBuf,
    issuer: Issuer,
    basename: Vec<u8>,
    group_id: GroupId,
}

/// One member written by [`GroupDir::enroll`].
#[derive(Debug, Clone)]
pub struct EnrolledMember {
    /// Its number in `members/`.
    pub index: usize,
    /// Its directory.
    pub dir: PathBuf,
}

impl GroupDir {
    /// Creates a new group at `path` (which must not exist, or be an empty directory) with a
    /// fresh issuer key pair.
    pub fn create(path: &Path, basename: &[u8], rng: &mut dyn CryptoRngCore) -> Result<Self> {
        if basename.is_empty() || basename.len() > daa::C_MAX_BASENAME_LEN {
            return Err(Error::malformed(
                path,
                "DAA group",
                format!(
                    "the basename must be 1 to {} bytes (the C library refuses longer ones), not {}",
                    daa::C_MAX_BASENAME_LEN,
                    basename.len()
                ),
            ));
        }
        if let Ok(mut entries) = fs::read_dir(path) {
            if entries.next().is_some() {
                return Err(Error::new(
                    path,
                    ErrorKind::Inconsistent(
                        "directory is not empty; a group needs a directory of its own".into(),
                    ),
                ));
            }
        }
        fsio::create_private_dir(path)?;
        let issuer = Issuer::generate(rng);
        let gpk = issuer.group_public_key().clone();
        let group_id = xtt_ecdaa::group_id(&gpk, basename);
        daa::write_issuer(&path.join(IPK), &path.join(ISK), &issuer, Overwrite::Deny)?;
        daa::write_gpk(&path.join(MemberFileNames::GPK), &gpk, Overwrite::Deny)?;
        daa::write_basename(
            &path.join(MemberFileNames::BASENAME),
            basename,
            Overwrite::Deny,
        )?;
        daa::write_group_id(&path.join(MemberFileNames::GID), &group_id, Overwrite::Deny)?;
        fsio::create_private_dir(&path.join(MEMBERS))?;
        Ok(Self {
            path: path.to_path_buf(),
            issuer,
            basename: basename.to_vec(),
            group_id,
        })
    }

    /// Opens a group directory and checks that its files agree with each other.
    pub fn open(path: &Path) -> Result<Self> {
        let issuer = daa::read_issuer(&path.join(IPK), &path.join(ISK))?;
        let gpk_path = path.join(MemberFileNames::GPK);
        let gpk = daa::read_gpk(&gpk_path)?;
        if &gpk != issuer.group_public_key() {
            return Err(Error::new(
                &gpk_path,
                ErrorKind::Inconsistent(format!(
                    "this group public key is not the one of the issuer key in {IPK}"
                )),
            ));
        }
        let basename = daa::read_basename(&path.join(MemberFileNames::BASENAME))?;
        let gid_path = path.join(MemberFileNames::GID);
        let group_id = daa::read_group_id(&gid_path)?;
        daa::check_group_id(&gid_path, &group_id, &gpk, &basename)?;
        Ok(Self {
            path: path.to_path_buf(),
            issuer,
            basename,
            group_id,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The group public key.
    pub fn group_public_key(&self) -> &GroupPublicKey {
        self.issuer.group_public_key()
    }

    /// The basename.
    pub fn basename(&self) -> &[u8] {
        &self.basename
    }

    /// SHA-256(gpk ‖ basename).
    pub fn group_id(&self) -> GroupId {
        GroupId(self.group_id.0)
    }

    /// The issuer (secret key included).
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The directories of all enrolled members, in number order.
    pub fn members(&self) -> Result<Vec<EnrolledMember>> {
        let dir = self.path.join(MEMBERS);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::new(&dir, ErrorKind::Read(e)))? {
            let entry = entry.map_err(|e| Error::new(&dir, ErrorKind::Read(e)))?;
            if let Some(index) = member_index(&entry.file_name().to_string_lossy()) {
                out.push(EnrolledMember {
                    index,
                    dir: entry.path(),
                });
            }
        }
        out.sort_by_key(|m| m.index);
        Ok(out)
    }

    /// Enrolls `count` new members by running the join protocol for each (issuer nonce, member
    /// key and proof, credential and its proof, checked by the member), spread over
    /// `threads` threads (0: four per CPU, since much of the time is spent waiting for fsync).
    /// `progress` is called once per finished member.
    /// Randomness comes from the operating system.
    pub fn enroll(
        &self,
        count: usize,
        threads: usize,
        progress: &(dyn Fn(&EnrolledMember) + Sync),
    ) -> Result<Vec<EnrolledMember>> {
        let members_dir = self.path.join(MEMBERS);
        fsio::create_private_dir(&members_dir)?;
        let next = AtomicUsize::new(self.members()?.last().map_or(1, |m| m.index + 1));
        let remaining = AtomicUsize::new(count);
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(4, |n| 4 * n.get())
        } else {
            threads
        }
        .min(count.max(1));
        let done = Mutex::new(Vec::with_capacity(count));
        let first_error = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let claimed = remaining
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1));
                    if claimed.is_err() || lock(&first_error).is_some() {
                        return;
                    }
                    match self.enroll_one(&members_dir, &next, &mut OsRng) {
                        Ok(member) => {
                            progress(&member);
                            lock(&done).push(member);
                        }
                        Err(e) => {
                            lock(&first_error).get_or_insert(e);
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = lock(&first_error).take() {
            return Err(e);
        }
        let mut done = std::mem::take(&mut *lock(&done));
        done.sort_by_key(|m| m.index);
        Ok(done)
    }

    fn enroll_one(
        &self,
        members_dir: &Path,
        next: &AtomicUsize,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<EnrolledMember> {
        let gpk = self.issuer.group_public_key();
        // The join protocol, issuer and member side by side.
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let (sk, request) = generate_member_key(&nonce, rng);
        let join_err = |e: xtt_ecdaa::Error| {
            Error::new(
                &self.path,
                ErrorKind::Inconsistent(format!("join protocol failed: {e}")),
            )
        };
        let (cred, cred_proof) = self
            .issuer
            .issue_credential(&request, &nonce, rng)
            .map_err(join_err)?;
        cred.validate(&cred_proof, &request, gpk)
            .map_err(join_err)?;

        let staging = tempfile::Builder::new()
            .prefix(".enrolling-")
            .tempdir_in(members_dir)
            .map_err(|e| Error::new(members_dir, ErrorKind::Write(e)))?;
        let s = staging.path();
        fs::set_permissions(s, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::new(s, ErrorKind::Write(e)))?;
        // The staging directory is the unit of atomicity: each file is synced, the directory
        // once, then it is renamed into place.
        let put = |name: &str, bytes: &[u8], access: Access| {
            fsio::write_new_synced(&s.join(name), bytes, access)
        };
        put(
            MemberFileNames::SECRET_KEY,
            sk.to_bytes().as_slice(),
            Access::Secret,
        )?;
        put(MemberFileNames::GPK, &gpk.to_bytes(), Access::Public)?;
        put(MemberFileNames::BASENAME, &self.basename, Access::Public)?;
        put(MemberFileNames::GID, &self.group_id.0, Access::Public)?;
        put(
            MemberFileNames::CREDENTIAL,
            &cred.to_bytes(),
            Access::Public,
        )?;
        // Last check, as a device would load it: the credential signs under this basename.
        Member::new(sk, cred, gpk, &self.basename).map_err(join_err)?;
        self.publish(staging, members_dir, next)
    }

    fn publish(
        &self,
        staging: tempfile::TempDir,
        members_dir: &Path,
        next: &AtomicUsize,
    ) -> Result<EnrolledMember> {
        let werr = |p: &Path, e: io::Error| Error::new(p, ErrorKind::Write(e));
        let staged = staging.keep();
        fsio::sync_dir(&staged).map_err(|e| werr(&staged, e))?;
        loop {
            let index = next.fetch_add(1, Ordering::SeqCst);
            let dir = members_dir.join(format!("{index:06}"));
            // rename(2) refuses a non-empty target, so a number taken by another process is
            // skipped, never overwritten.
            match fs::rename(&staged, &dir) {
                Ok(()) => {
                    fsio::sync_dir(members_dir).map_err(|e| werr(members_dir, e))?;
                    return Ok(EnrolledMember { index, dir });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                    ) => {}
                Err(e) => {
                    let _ = fs::remove_dir_all(&staged);
                    return Err(werr(&dir, e));
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn member_index(name: &str) -> Option<usize> {
    (name.len() >= 6 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}
