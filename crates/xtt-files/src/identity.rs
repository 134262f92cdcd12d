//! The three files a provisioning writes — the long-term key pair, its X.509 certificate and the
//! ClientID — replaced as one.
//!
//! Each file on its own is written crash-safely, but a re-provisioning replaces all three, and
//! a crash between two of them would leave a new key beside the old ClientID: the old identity
//! lost (its key overwritten) and the new one unusable (its id never written). So the new files
//! are first written beside the old ones (`NAME.new`), then a small journal (`KEYFILE.commit`)
//! names the renames still to do, and only then are they done. Until the journal is durable
//! the old identity is untouched; once it is, [`finish_interrupted`] — which every reader of
//! the identity calls first — completes the renames after a crash. The journal names absolute
//! paths (a reader may run from another directory), and writers and readers take an exclusive
//! lock on the key's directory, so a reader never mistakes a replacement in progress for a
//! crash's leftovers.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rand_core::CryptoRngCore;
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::ClientId;

use crate::error::{Error, ErrorKind, Result};
use crate::fsio::{sync_dir, write_atomic, Access, Overwrite};
use crate::{client_id, keypair, x509};

/// Where a device's identity lives (each path can be moved by a flag of the C client).
#[derive(Clone, Copy, Debug)]
pub struct IdentityPaths<'a> {
    /// `longterm_priv.bin` (0600).
    pub key: &'a Path,
    /// `longterm_cert.bin`.
    pub cert: &'a Path,
    /// `client_id.txt`.
    pub client_id: &'a Path,
}

/// A journal names three renames; anything longer is not one of ours.
const MAX_JOURNAL: usize = 3 * 2 * 4096;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn staged(path: &Path) -> PathBuf {
    with_suffix(path, ".new")
}

fn journal(key: &Path) -> PathBuf {
    with_suffix(key, ".commit")
}

fn write_error(path: &Path, e: io::Error) -> Error {
    Error::new(path, ErrorKind::Write(e))
}

/// The journal's own paths are absolute, so a reader started elsewhere finds the same files.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::new(path, ErrorKind::Read(e)))
}

/// Serialises writers and roll-forwards of the identity whose key is `key`: an exclusive lock
/// on the key's directory, held until the returned file is dropped. Without it a reader could
/// take a writer's staged key for a crash's leftover and remove it mid-replacement.
fn lock(key: &Path) -> Result<std::fs::File> {
    let dir = xtt_fsio::parent_dir(key);
    xtt_fsio::lock_dir(dir).map_err(|e| Error::new(dir, ErrorKind::Read(e)))
}

/// Writes a provisioning's results: the key (0600), then its certificate and the ClientID, all
/// replaced together (see the module doc). Returns the certificate's DER.
pub fn write(
    paths: IdentityPaths<'_>,
    key: &LongtermKeyPair,
    id: &ClientId,
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<u8>> {
    let certificate = x509::build(key, id, rng).map_err(|reason| {
        Error::new(
            paths.cert,
            ErrorKind::Inconsistent(format!("cannot build the certificate: {reason}")),
        )
    })?;
    let key_path = absolute(paths.key)?;
    let _locked = lock(&key_path)?;
    // A replacement interrupted earlier goes through first: its renames must not land on
    // top of this one's.
    roll_forward(&key_path)?;
    let renames = [
        (staged(&key_path), key_path.clone()),
        (staged(&absolute(paths.cert)?), absolute(paths.cert)?),
        (
            staged(&absolute(paths.client_id)?),
            absolute(paths.client_id)?,
        ),
    ];
    keypair::write(&renames[0].0, key, Overwrite::Allow)?;
    x509::write(&renames[1].0, &certificate, Overwrite::Allow)?;
    client_id::write(&renames[2].0, id, Overwrite::Allow)?;
    let mut record = Vec::new();
    for (from, to) in &renames {
        for p in [from, to] {
            record.extend_from_slice(p.as_os_str().as_bytes());
            record.push(0);
        }
    }
    // The commit point: from here on the new identity is the one that counts.
    write_atomic(
        &journal(&key_path),
        &record,
        Access::Secret,
        Overwrite::Allow,
    )?;
    roll_forward(&key_path)?;
    Ok(certificate)
}

/// Completes a replacement that a crash interrupted after its commit point, and removes a
/// staged key left by one interrupted before it (the old identity stands then). Every reader
/// of the identity calls this first; it waits for a replacement in progress to end.
pub fn finish_interrupted(key: &Path) -> Result<()> {
    let key = absolute(key)?;
    let _locked = lock(&key)?;
    roll_forward(&key)
}

/// [`finish_interrupted`]'s work, under the lock; `key` is absolute.
fn roll_forward(key: &Path) -> Result<()> {
    let journal = journal(key);
    let record = match std::fs::symlink_metadata(&journal) {
        Ok(_) => crate::fsio::read_limited(&journal, "a provisioning journal", MAX_JOURNAL)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // No journal, and no writer (we hold the lock): a staged key is a crash's leftover.
            return remove_leftover(&staged(key));
        }
        Err(e) => return Err(Error::new(&journal, ErrorKind::Read(e))),
    };
    let fields: Vec<&[u8]> = record.split(|b| *b == 0).collect();
    // Three (from, to) pairs, each path NUL-terminated: seven fields, the last one empty.
    let bad = || Error::malformed(&journal, "a provisioning journal", "not three renames");
    if fields.len() != 7 || fields.last().is_some_and(|f| !f.is_empty()) {
        return Err(bad());
    }
    let pairs: Vec<(&Path, &Path)> = fields[..6]
        .chunks_exact(2)
        .map(|p| {
            (
                Path::new(OsStr::from_bytes(p[0])),
                Path::new(OsStr::from_bytes(p[1])),
            )
        })
        .collect();
    // Only renames of a file onto itself from its `.new` sibling, the first of them this key's:
    // a journal cannot move anything else.
    let own = pairs.first().is_some_and(|(_, to)| *to == key);
    if !own
        || pairs
            .iter()
            .any(|(from, to)| !to.is_absolute() || *from != staged(to))
    {
        return Err(bad());
    }
    for (from, to) in pairs {
        match std::fs::rename(from, to) {
            Ok(()) => sync_dir(xtt_fsio::parent_dir(to)).map_err(|e| write_error(to, e))?,
            // Renamed before the crash.
            Err(e) if e.kind() == io::ErrorKind::NotFound && to.exists() => {}
            Err(e) => return Err(write_error(from, e)),
        }
    }
    remove_leftover(&journal)?;
    sync_dir(xtt_fsio::parent_dir(&journal)).map_err(|e| write_error(&journal, e))
}

fn remove_leftover(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_error(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    struct Dir {
        _tmp: tempfile::TempDir,
        key: PathBuf,
        cert: PathBuf,
        id: PathBuf,
    }

    impl Dir {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let p = |n: &str| tmp.path().join(n);
            Self {
                key: p("longterm_priv.bin"),
                cert: p("longterm_cert.bin"),
                id: p("client_id.txt"),
                _tmp: tmp,
            }
        }

        fn paths(&self) -> IdentityPaths<'_> {
            IdentityPaths {
                key: &self.key,
                cert: &self.cert,
                client_id: &self.id,
            }
        }

        fn read(&self) -> (ClientId, LongtermKeyPair, x509::LongtermCertificate) {
            finish_interrupted(&self.key).unwrap();
            (
                client_id::read(&self.id).unwrap(),
                keypair::read(&self.key).unwrap(),
                x509::read(&self.cert).unwrap(),
            )
        }

        fn leftovers(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self._tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".new") || n.ends_with(".commit"))
                .collect();
            names.sort();
            names
        }
    }

    fn provision(d: &Dir, id: u8) -> LongtermKeyPair {
        let key = LongtermKeyPair::generate(&mut OsRng);
        write(d.paths(), &key, &ClientId([id; 16]), &mut OsRng).unwrap();
        key
    }

    #[test]
    fn a_replacement_leaves_the_new_identity_and_nothing_else() {
        let d = Dir::new();
        provision(&d, 1);
        let key = provision(&d, 2);
        let (id, read_key, cert) = d.read();
        assert_eq!(id, ClientId([2; 16]));
        assert_eq!(read_key.public_key(), key.public_key());
        assert_eq!((cert.client_id, &cert.public_key), (id, key.public_key()));
        assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
    }

    /// Stops a replacement after `renamed` of its three renames, as a crash would.
    fn interrupted_after(d: &Dir, renamed: usize) -> LongtermKeyPair {
        let finals = [&d.key, &d.cert, &d.id];
        let old: Vec<Vec<u8>> = finals.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let key = LongtermKeyPair::generate(&mut OsRng);
        write(d.paths(), &key, &ClientId([9; 16]), &mut OsRng).unwrap();
        // Put the journal, the not-yet-renamed files and the old files they would have
        // replaced back as they were at that moment.
        let mut record = Vec::new();
        for f in finals {
            for p in [staged(f), f.to_path_buf()] {
                record.extend_from_slice(p.as_os_str().as_bytes());
                record.push(0);
            }
        }
        for (f, old) in finals.iter().zip(&old).skip(renamed) {
            std::fs::rename(f, staged(f)).unwrap();
            std::fs::write(f, old).unwrap();
        }
        std::fs::write(journal(&d.key), record).unwrap();
        key
    }

    #[test]
    fn a_crash_after_the_commit_point_is_completed_by_the_next_reader() {
        for renamed in 0..3 {
            let d = Dir::new();
            provision(&d, 1);
            // The old files still where the crash left them (a mix once some renames ran).
            let key = interrupted_after(&d, renamed);
            let (id, read_key, cert) = d.read();
            assert_eq!(id, ClientId([9; 16]), "after {renamed} renames");
            assert_eq!(read_key.public_key(), key.public_key());
            assert_eq!(cert.public_key, *key.public_key());
            assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
        }
    }

    #[test]
    fn a_crash_before_the_commit_point_keeps_the_old_identity_whole() {
        let d = Dir::new();
        let old = provision(&d, 1);
        // New files staged, no journal yet.
        let new = LongtermKeyPair::generate(&mut OsRng);
        keypair::write(&staged(&d.key), &new, Overwrite::Allow).unwrap();
        client_id::write(&staged(&d.id), &ClientId([2; 16]), Overwrite::Allow).unwrap();
        let (id, key, cert) = d.read();
        assert_eq!(id, ClientId([1; 16]));
        assert_eq!(key.public_key(), old.public_key());
        assert_eq!(cert.public_key, *old.public_key());
        // The staged secret key does not linger.
        assert!(!staged(&d.key).exists());
    }

    /// A reader rolling forward while re-provisionings run (another process, e.g. `xtt client
    /// connect`) never breaks one: it waits for the writer instead of taking its staged key
    /// for a leftover.
    #[test]
    fn readers_during_replacements_leave_every_identity_whole() {
        let d = Dir::new();
        provision(&d, 0);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (key, done) = (d.key.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    finish_interrupted(&key).unwrap();
                }
            })
        };
        for i in 1..=20 {
            let key = provision(&d, i);
            let (id, read_key, cert) = d.read();
            assert_eq!(id, ClientId([i; 16]), "replacement {i}");
            assert_eq!(read_key.public_key(), key.public_key(), "replacement {i}");
            assert_eq!(cert.public_key, *key.public_key(), "replacement {i}");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
        assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
    }

    #[test]
    fn a_journal_with_relative_paths_is_refused() {
        let d = Dir::new();
        provision(&d, 1);
        let mut record = Vec::new();
        for name in ["longterm_priv.bin", "longterm_cert.bin", "client_id.txt"] {
            for p in [format!("{name}.new"), name.to_string()] {
                record.extend_from_slice(p.as_bytes());
                record.push(0);
            }
        }
        std::fs::write(journal(&d.key), &record).unwrap();
        let err = finish_interrupted(&d.key).unwrap_err();
        assert!(err.to_string().contains("not three renames"), "{err}");
    }

    #[test]
    fn a_journal_that_names_other_files_is_refused_and_moves_nothing() {
        let d = Dir::new();
        provision(&d, 1);
        let elsewhere = d._tmp.path().join("elsewhere");
        std::fs::write(&elsewhere, b"keep").unwrap();
        let mut record = Vec::new();
        for (from, to) in [
            (elsewhere.clone(), d.key.clone()),
            (staged(&d.cert), d.cert.clone()),
            (staged(&d.id), d.id.clone()),
        ] {
            for p in [from, to] {
                record.extend_from_slice(p.as_os_str().as_bytes());
                record.push(0);
            }
        }
        std::fs::write(journal(&d.key), &record).unwrap();
        let err = finish_interrupted(&d.key).unwrap_err();
        assert!(err.to_string().contains("not three renames"), "{err}");
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep");
        std::fs::write(journal(&d.key), b"garbage").unwrap();
        assert!(finish_interrupted(&d.key).is_err());
    }
}
