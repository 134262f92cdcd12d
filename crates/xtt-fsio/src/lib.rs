//! Crash-safe file output, in one place for every crate that writes keys, secrets, certificates
//! or state files.
//!
//! [`write_atomic`] writes a temporary file in the target's directory, fsyncs it, renames it over
//! the target (or links it, refusing an existing target) and fsyncs the directory. A reader —
//! or the same program after a crash or power cut — sees the old file or the new one, never a
//! torn one. The temporary file is created 0600 by `tempfile` and only then given its final
//! mode, so a secret is never readable by others, not even for an instant, and a failed write
//! leaves no temporary file behind (`tempfile` removes it on drop).
//!
//! [`read_capped`] and [`read_limited`] are the matching input side: a small file read whole,
//! with a size cap and only from a regular file, so a wrong path (a FIFO, `/dev/zero`) neither
//! hangs nor fills memory. [`secret_text`] reads a secret the command line names: inline, from a
//! file or pipe, or from standard input, capped and wiped after use.
//!
//! Errors are plain [`std::io::Error`]s; callers add the path and what they were writing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// Owner read/write only: private keys, secrets, state with secrets in it.
pub const SECRET: u32 = 0o600;
/// World-readable: certificates, public keys, QR images.
pub const PUBLIC: u32 = 0o644;

/// Whether an existing file may be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace an existing file, atomically.
    Allow,
    /// Fail with [`io::ErrorKind::AlreadyExists`] if the target exists, even when two writers
    /// race for it (exactly one wins).
    Deny,
}

/// Writes `bytes` to `path` crash-safely with permission bits `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, overwrite: Overwrite) -> io::Result<()> {
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no file name",
        ));
    }
    if overwrite == Overwrite::Deny && path.symlink_metadata().is_ok() {
        return Err(already_exists());
    }
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".xtt-tmp-")
        .tempfile_in(dir)
        .map_err(|e| in_dir_error(dir, &e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    // Through the `File`: `NamedTempFile`'s own `Write` names the temporary file in its errors.
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match overwrite {
        Overwrite::Allow => {
            tmp.persist(path).map_err(|e| e.error)?;
        }
        Overwrite::Deny => {
            // A hard link refuses an existing target, so of two racing writers only one wins.
            tmp.persist_noclobber(path).map_err(|e| e.error)?;
        }
    }
    sync_dir(dir)
}

/// What [`read_capped`] found at a path.
#[derive(Debug)]
pub enum Capped {
    /// A regular file of at most the cap: its bytes.
    Whole(Vec<u8>),
    /// A regular file larger than the cap (at most cap + 1 bytes were read): its size.
    TooLarge {
        /// The size of what was opened, never less than what was read.
        actual: u64,
    },
    /// A FIFO, device, directory or socket, refused before opening (a FIFO would block the open
    /// or the read forever, and a device has no size).
    NotRegular,
}

/// Reads the regular file `path` whole if it has at most `max` bytes, reading at most `max + 1`
/// bytes of anything larger; the I/O errors are those of `stat`, `open` and `read`.
pub fn read_capped(path: &Path, max: usize) -> io::Result<Capped> {
    if !fs::metadata(path)?.is_file() {
        return Ok(Capped::NotRegular);
    }
    let file = File::open(path)?;
    // Again on what was opened: the path may have been replaced in between.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Capped::NotRegular);
    }
    // One byte past the limit tells "exactly max" from "more than max".
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    // Room for the whole read from the start: callers wrap key files in Zeroizing, and a
    // buffer that grew would have left unwiped copies of the key in the blocks it freed.
    let expected = usize::try_from(meta.len().min(limit)).unwrap_or(max);
    let mut buf = Vec::with_capacity(expected.saturating_add(1));
    file.take(limit).read_to_end(&mut buf)?;
    if buf.len() > max {
        // Never less than what was read, should the file have grown since the stat.
        let actual = u64::try_from(buf.len()).unwrap_or(u64::MAX).max(meta.len());
        return Ok(Capped::TooLarge { actual });
    }
    Ok(Capped::Whole(buf))
}

/// [`read_capped`] as a plain result: a FIFO, device or directory fails with
/// [`io::ErrorKind::InvalidInput`] ("is not a regular file"), a larger file with
/// [`io::ErrorKind::FileTooLarge`].
pub fn read_limited(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    match read_capped(path, max)? {
        Capped::Whole(buf) => Ok(buf),
        Capped::TooLarge { actual } => Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("is {actual} bytes, more than the {max} accepted"),
        )),
        Capped::NotRegular => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a regular file",
        )),
    }
}

/// An exclusive advisory lock (`flock`) on the directory `dir`, held until the returned file is
/// dropped (or the process dies: the kernel releases it, so a crash never leaves it held). For
/// read-check-write sequences on files in `dir` that must not interleave between processes.
pub fn lock_dir(dir: &Path) -> io::Result<File> {
    let f = File::open(dir)?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(f)
}

/// A secret given on a command line either inline or as a path: a regular file, a pipe (`<(pass
/// show …)` in a shell, a named pipe a secret manager writes) or `-` for standard input. Reads at
/// most `max` bytes of UTF-8 and returns them trimmed; `None` when neither was given. Pipes are
/// accepted here, unlike in [`read_capped`], because keeping a secret off the command line is the
/// point, and a pipe is how a secret gets there without ever touching a disk. Devices,
/// directories and sockets are refused before opening. Every buffer that held the secret is
/// wiped, and no error message quotes it; errors name `what` (for example "share link") and the
/// path.
pub fn secret_text(
    inline: Option<&str>,
    path: Option<&Path>,
    what: &str,
    max: usize,
) -> io::Result<Option<Zeroizing<String>>> {
    secret(inline, path, what, max, Trim::Whitespace)
}

/// [`secret_text`] for secrets in which every character counts (bearer tokens): text read from
/// a file, a pipe or standard input loses one trailing line ending (`\n` or `\r\n`, as `echo`
/// and editors leave one) and nothing else; inline text is taken as given.
pub fn secret_line(
    inline: Option<&str>,
    path: Option<&Path>,
    what: &str,
    max: usize,
) -> io::Result<Option<Zeroizing<String>>> {
    secret(inline, path, what, max, Trim::OneLineEnding)
}

/// What a secret loses around it.
#[derive(Clone, Copy)]
enum Trim {
    Whitespace,
    OneLineEnding,
}

fn secret(
    inline: Option<&str>,
    path: Option<&Path>,
    what: &str,
    max: usize,
    trim: Trim,
) -> io::Result<Option<Zeroizing<String>>> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    let (bytes, source) = match (inline, path) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "give the {what} inline or in a file, not both"
            )))
        }
        (Some(text), None) => (Zeroizing::new(text.as_bytes().to_vec()), None),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let bytes = read_secret_bytes(io::stdin().lock(), max).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot read the {what} from standard input: {e}"),
                )
            })?;
            (bytes, Some("standard input".to_owned()))
        }
        (None, Some(path)) => {
            let shown = path.display().to_string();
            let context =
                |e: io::Error| io::Error::new(e.kind(), format!("cannot read {shown}: {e}"));
            let file_type = fs::metadata(path).map_err(context)?.file_type();
            if !(file_type.is_file() || file_type.is_fifo()) {
                return Err(invalid(format!(
                    "cannot read {shown}: the {what} must come from a file or a pipe"
                )));
            }
            let file = File::open(path).map_err(context)?;
            (read_secret_bytes(file, max).map_err(context)?, Some(shown))
        }
    };
    let from = source
        .as_ref()
        .map(|s| format!(" in {s}"))
        .unwrap_or_default();
    if bytes.len() > max {
        return Err(invalid(format!(
            "the {what}{from} is longer than {max} bytes"
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| invalid(format!("the {what}{from} is not UTF-8 text")))?;
    let text = match (trim, &source) {
        (Trim::Whitespace, _) => text.trim(),
        (Trim::OneLineEnding, Some(_)) => text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text),
        (Trim::OneLineEnding, None) => text,
    };
    if text.is_empty() {
        return Err(invalid(format!("the {what}{from} is empty")));
    }
    Ok(Some(Zeroizing::new(text.to_owned())))
}

/// At most `max + 1` bytes, so a longer input is seen without reading all of it; the buffer has
/// room for them from the start, so no reallocation leaves a copy of the secret behind.
fn read_secret_bytes(reader: impl Read, max: usize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(max.saturating_add(1)));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Checks, without writing anything, that [`write_atomic`] could write `path` now: its directory
/// exists, is a directory and lets us create a file, and `path` itself is not a directory. For
/// callers that must not start something irreversible (a handshake that registers an identity,
/// a key that replaces the old one) only to find the output cannot be written. A temporary file
/// is created and removed again: permission bits, ACLs, read-only mounts and full inode tables
/// all answer truthfully that way, where `access(2)` would not.
pub fn check_writable(path: &Path) -> io::Result<()> {
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no file name",
        ));
    }
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("directory {}: {e}", dir.display()),
            ))
        }
    }
    if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    // Dropped at once, which removes it.
    tempfile::Builder::new()
        .prefix(".xtt-tmp-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| in_dir_error(dir, &e))
}

/// [`write_atomic`] of a secret (0600), replacing any previous file.
pub fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, bytes, SECRET, Overwrite::Allow)
}

/// [`write_atomic`] of a public file (0644), replacing any previous file.
pub fn write_public(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, bytes, PUBLIC, Overwrite::Allow)
}

/// Creates a new file (never replacing one) with `mode`, writes it and fsyncs it, without a
/// rename: for files inside a staging directory that is itself renamed into place (the caller
/// then syncs the directory once), which saves a directory sync per file.
pub fn write_new_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // The umask may have narrowed the mode; a public file must still be readable.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes a rename or a new directory entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    OpenOptions::new().read(true).open(dir)?.sync_all()
}

/// Creates a directory (and its parents) that only the owner can enter (0700), for directories
/// that hold secrets.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// What [`create_private_file_if_missing`] (and the functions built on it) found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateFile {
    /// Nothing was there: the file was created, empty, with mode 0600.
    Created,
    /// A regular file was already there.
    Existing,
}

/// Creates `path` empty with mode 0600 if nothing is there, and says whether it did; an
/// existing regular file is left exactly as it is (its mode too), for a caller that narrows it
/// only once it knows the file is its own. Anything but a regular file is refused before it is
/// opened (SQLite would block on a FIFO or write to a device): a directory with
/// [`io::ErrorKind::IsADirectory`], the rest with [`io::ErrorKind::InvalidInput`] ("is not a
/// regular file"). So is a dangling symlink (the file is created with `O_EXCL`, never through a
/// link).
pub fn create_private_file_if_missing(path: &Path) -> io::Result<PrivateFile> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => return Ok(PrivateFile::Existing),
        // What opening it would have said ("Is a directory (os error 21)").
        Ok(m) if m.is_dir() => return Err(io::Error::from(rustix::io::Errno::ISDIR)),
        Ok(_) => return Err(not_a_regular_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET)
        .open(path)
    {
        // The umask can only have narrowed 0600; set it exactly all the same.
        Ok(f) => f
            .set_permissions(fs::Permissions::from_mode(SECRET))
            .map(|()| PrivateFile::Created),
        // Another process created it first: fine if it is a regular file (a dangling symlink
        // also lands here, and is refused).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(PrivateFile::Existing),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Refuses `file` unless it is a regular file, and narrows it to 0600 if `narrow`: through the
/// open descriptor, so the file narrowed is the one that was checked (and the umask or the
/// file's old mode do not matter).
fn narrow_existing(file: &File, narrow: bool) -> io::Result<()> {
    if !file.metadata()?.is_file() {
        return Err(not_a_regular_file());
    }
    if narrow {
        file.set_permissions(fs::Permissions::from_mode(SECRET))?;
    }
    Ok(())
}

/// [`create_private_file_if_missing`], then narrows an existing file to 0600, for a database
/// that SQLite then opens: it creates the file with the umask's mode (often 0644), and gives
/// its `-wal` and `-shm` files the database file's mode. Only a regular file is accepted.
pub fn make_private_file(path: &Path) -> io::Result<PrivateFile> {
    let found = create_private_file_if_missing(path)?;
    if found == PrivateFile::Existing {
        narrow_existing(&File::open(path)?, true)?;
    }
    Ok(found)
}

/// [`make_private_file`] for an SQLite database: an existing file is narrowed only if it is
/// empty or starts with SQLite's header, so a wrong path (a certificate, say) then fails as "not
/// a database" with its mode untouched.
pub fn make_private_sqlite_file(path: &Path) -> io::Result<PrivateFile> {
    const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
    let found = create_private_file_if_missing(path)?;
    if found == PrivateFile::Existing {
        let file = File::open(path)?;
        let mut head = Vec::with_capacity(SQLITE_HEADER.len());
        (&file)
            .take(SQLITE_HEADER.len() as u64)
            .read_to_end(&mut head)?;
        narrow_existing(&file, head.is_empty() || head == SQLITE_HEADER)?;
    }
    Ok(found)
}

/// Creates a directory (and missing parents) with mode 0700 if it does not exist; an existing
/// one is left as it is (it may be the operator's, shared with other things).
pub fn create_dir_private_if_missing(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// The directory `path` is in: its parent, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The error of creating the temporary file, naming `dir` instead of the temporary name:
/// `tempfile` appends ` at path ".xtt-tmp-…"`, a random name that never existed and means
/// nothing to whoever reads the message. The kind is kept, so callers can still match on it.
fn in_dir_error(dir: &Path, e: &io::Error) -> io::Error {
    let text = e.to_string();
    let reason = text
        .rsplit_once(" at path ")
        .map_or(text.as_str(), |(reason, _)| reason);
    io::Error::new(
        e.kind(),
        format!("cannot create a file in {}: {reason}", dir.display()),
    )
}

fn not_a_regular_file() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "is not a regular file")
}

fn already_exists() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "refusing to overwrite an existing file",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn modes_are_exact_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("secret");
        let p = dir.path().join("public");
        write_secret(&s, b"k").unwrap();
        write_public(&p, b"c").unwrap();
        assert_eq!((mode_of(&s), mode_of(&p)), (0o600, 0o644));
        assert_eq!(fs::read(&s).unwrap(), b"k");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn deny_refuses_an_existing_target_and_allow_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", PUBLIC, Overwrite::Deny).unwrap();
        let err = write_atomic(&p, b"two", PUBLIC, Overwrite::Deny).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", SECRET, Overwrite::Allow).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn racing_deny_writers_have_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("race");
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let p = &p;
                    s.spawn(move || write_atomic(p, &[i], SECRET, Overwrite::Deny).is_ok())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_debris() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_secret(&p, b"old").unwrap();
        // A directory where the file should be makes the rename fail after the temp file exists.
        let blocked = dir.path().join("sub");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_secret(&blocked, b"new").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_missing_directory_is_named_and_no_temporary_name_is() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir");
        let err = write_secret(&missing.join("key.bin"), b"k").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(!text.contains(".xtt-tmp-"), "{text}");
    }

    #[test]
    fn check_writable_refuses_what_write_atomic_would_fail_on() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("file"), b"x").unwrap();
        fs::create_dir(d.join("sub")).unwrap();
        check_writable(&d.join("new")).unwrap();
        check_writable(&d.join("file")).unwrap();
        let cases = [
            (
                d.join("missing/key.bin"),
                io::ErrorKind::NotFound,
                "missing",
            ),
            (d.join("file/key.bin"), io::ErrorKind::NotADirectory, "file"),
            (d.join("sub"), io::ErrorKind::IsADirectory, "is a directory"),
        ];
        for (path, kind, names) in cases {
            let err = check_writable(&path).unwrap_err();
            assert_eq!(err.kind(), kind, "{}: {err}", path.display());
            assert!(err.to_string().contains(names), "{err}");
            assert!(write_secret(&path, b"k").is_err());
        }
        // The probe leaves nothing behind.
        let mut names: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["file", "sub"]);
    }

    #[test]
    fn read_limited_caps_the_size_and_refuses_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, [1u8; 10]).unwrap();
        assert_eq!(read_limited(&p, 10).unwrap(), [1u8; 10]);
        // Read into one allocation of the right size: a buffer that grew would have freed
        // blocks holding a copy of what was read (a key file's secret, unwiped).
        fs::write(&p, [7u8; 121]).unwrap();
        let buf = read_limited(&p, 4096).unwrap();
        assert_eq!((buf.len(), buf.capacity()), (121, 122));
        fs::write(&p, [1u8; 10]).unwrap();
        let err = read_limited(&p, 9).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(err.to_string(), "is 10 bytes, more than the 9 accepted");
        for special in [Path::new("/dev/zero"), dir.path()] {
            let err = read_limited(special, 9).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{special:?}");
            assert_eq!(err.to_string(), "is not a regular file");
        }
    }

    #[test]
    fn secret_lines_lose_one_line_ending_from_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let read = |inline: Option<&str>, path: Option<&Path>| {
            secret_line(inline, path, "token", 32).map(|s| s.map(|s| s.to_string()))
        };
        for (written, read_back) in [
            ("tok\n", " tok"),
            ("tok\r\n", " tok"),
            ("tok", " tok"),
            ("tok\n\n", " tok\n"),
            ("tok \t\n", " tok \t"),
        ] {
            fs::write(&p, format!(" {written}")).unwrap();
            assert_eq!(
                read(None, Some(&p)).unwrap().unwrap(),
                read_back,
                "{written:?}"
            );
        }
        assert_eq!(read(Some(" tok\n"), None).unwrap().unwrap(), " tok\n");
        assert_eq!(read(None, None).unwrap(), None);
        fs::write(&p, "\r\n").unwrap();
        let err = read(None, Some(&p)).unwrap_err();
        assert!(
            err.to_string().contains("the token in") && err.to_string().contains("is empty"),
            "{err}"
        );
        // The checks of secret_text hold: size cap, devices refused, never both.
        fs::write(&p, [b'x'; 33]).unwrap();
        assert!(read(None, Some(&p))
            .unwrap_err()
            .to_string()
            .contains("longer than 32 bytes"));
        assert!(read(None, Some(Path::new("/dev/zero"))).is_err());
        assert!(read(Some("a"), Some(&p)).is_err());
    }

    #[test]
    fn secrets_come_inline_from_files_or_pipes_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let read = |inline: Option<&str>, path: Option<&Path>| {
            secret_text(inline, path, "share link", 16).map(|s| s.map(|s| s.to_string()))
        };
        assert_eq!(read(None, None).unwrap(), None);
        assert_eq!(read(Some(" abc\n"), None).unwrap().unwrap(), "abc");

        let file = dir.path().join("link.txt");
        fs::write(&file, "  SECRET-1 \n").unwrap();
        assert_eq!(read(None, Some(&file)).unwrap().unwrap(), "SECRET-1");

        // A pipe, as `<(…)` gives one: the writer is another thread.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::write(fifo, "SECRET-2\n").unwrap())
        };
        assert_eq!(read(None, Some(&fifo)).unwrap().unwrap(), "SECRET-2");
        writer.join().unwrap();

        let refused = |inline: Option<&str>, path: Option<&Path>| {
            let e = read(inline, path).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
            e.to_string()
        };
        assert_eq!(
            refused(Some("x"), Some(&file)),
            "give the share link inline or in a file, not both"
        );
        fs::write(&file, "SECRET-SECRET-SECRET").unwrap();
        assert!(refused(None, Some(&file)).ends_with("link.txt is longer than 16 bytes"));
        fs::write(&file, b"SECRET\xff").unwrap();
        assert!(refused(None, Some(&file)).ends_with("link.txt is not UTF-8 text"));
        fs::write(&file, " \n").unwrap();
        assert!(refused(None, Some(&file)).ends_with("link.txt is empty"));
        for special in [Path::new("/dev/zero"), dir.path()] {
            let e = refused(None, Some(special));
            assert!(e.ends_with("must come from a file or a pipe"), "{e}");
        }
        let missing = dir.path().join("missing.txt");
        let e = read(None, Some(&missing)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("missing.txt"), "{e}");
    }

    #[test]
    fn a_locked_directory_is_locked_until_the_holder_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let try_lock = || {
            let f = File::open(dir.path()).unwrap();
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        };
        let held = lock_dir(dir.path()).unwrap();
        // Another open file description (as another process has) cannot take it...
        assert_eq!(try_lock(), Err(rustix::io::Errno::WOULDBLOCK));
        drop(held);
        // ...until the holder lets go.
        assert_eq!(try_lock(), Ok(()));
        assert!(lock_dir(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn write_new_synced_never_replaces_and_private_dirs_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_private_dir(&d).unwrap();
        assert_eq!(mode_of(&d), 0o700);
        let f = d.join("n");
        write_new_synced(&f, b"1", PUBLIC).unwrap();
        assert_eq!(mode_of(&f), 0o644);
        let err = write_new_synced(&f, b"2", PUBLIC).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(write_atomic(Path::new("/"), b"", SECRET, Overwrite::Allow).is_err());
    }

    #[test]
    fn a_private_file_keeps_its_content_and_a_private_dir_is_made_only_if_missing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("db");
        assert_eq!(make_private_file(&f).unwrap(), PrivateFile::Created);
        assert_eq!((mode_of(&f), fs::read(&f).unwrap().len()), (0o600, 0));
        fs::write(&f, b"rows").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(make_private_file(&f).unwrap(), PrivateFile::Existing);
        assert_eq!(
            (mode_of(&f), fs::read(&f).unwrap()),
            (0o600, b"rows".to_vec())
        );
        assert!(
            make_private_file(dir.path()).is_err(),
            "a directory is refused"
        );

        // The SQLite variant narrows a database (or an empty file), and nothing else.
        let cert = dir.path().join("cert.bin");
        fs::write(&cert, [7u8; 169]).unwrap();
        fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            make_private_sqlite_file(&cert).unwrap(),
            PrivateFile::Existing
        );
        assert_eq!(mode_of(&cert), 0o644);
        let db = dir.path().join("x.db");
        fs::write(&db, b"SQLite format 3\0rest of the page").unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            make_private_sqlite_file(&db).unwrap(),
            PrivateFile::Existing
        );
        assert_eq!(mode_of(&db), 0o600);
        let new = dir.path().join("new.db");
        assert_eq!(
            make_private_sqlite_file(&new).unwrap(),
            PrivateFile::Created
        );
        assert_eq!(mode_of(&new), 0o600);

        // The bare creation leaves an existing file's mode alone, and refuses what is not a
        // regular file (without opening it: a FIFO would block) or a dangling symlink.
        let kept = dir.path().join("kept.db");
        fs::write(&kept, b"SQLite format 3\0").unwrap();
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            create_private_file_if_missing(&kept).unwrap(),
            PrivateFile::Existing
        );
        assert_eq!(mode_of(&kept), 0o644);
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for bad in [fifo.as_path(), dir.path(), dangling.as_path()] {
            assert!(create_private_file_if_missing(bad).is_err(), "{bad:?}");
            assert!(make_private_sqlite_file(bad).is_err(), "{bad:?}");
        }
        assert!(!dir.path().join("nowhere").exists());

        let made = dir.path().join("a/b");
        create_dir_private_if_missing(&made).unwrap();
        assert_eq!(mode_of(&made), 0o700);
        let existing = dir.path().join("shared");
        fs::create_dir(&existing).unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
        create_dir_private_if_missing(&existing).unwrap();
        assert_eq!(
            mode_of(&existing),
            0o755,
            "an existing directory is left as it is"
        );
    }
}
