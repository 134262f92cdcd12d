//! DAA group directories: creation, enrollment through the join protocol, consistency checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand_core::OsRng;
use xtt_ecdaa::GroupVerifier;
use xtt_files::client_dir::ClientDir;
use xtt_files::daa::{self, MemberFileNames};
use xtt_files::group::{GroupDir, ISK};

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_enroll_sign_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("acme");
    let group = GroupDir::create(&path, b"acme-sensors", &mut OsRng).unwrap();
    assert_eq!(mode(&path.join(ISK)), 0o600);
    assert_eq!(mode(&path.join("ipk.bin")), 0o644);

    let calls = AtomicUsize::new(0);
    let members = group
        .enroll(5, 2, &|_| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 5);
    assert_eq!(
        members.iter().map(|m| m.index).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );

    // A second batch continues the numbering.
    let more = group.enroll(2, 1, &|_| {}).unwrap();
    assert_eq!(more.iter().map(|m| m.index).collect::<Vec<_>>(), [6, 7]);

    let reopened = GroupDir::open(&path).unwrap();
    assert_eq!(reopened.group_id().0, group.group_id().0);
    assert_eq!(reopened.members().unwrap().len(), 7);

    let verifier = GroupVerifier::new(group.group_public_key().clone(), group.basename()).unwrap();
    let mut pseudonyms = Vec::new();
    for m in reopened.members().unwrap() {
        assert_eq!(mode(&m.dir), 0o700);
        assert_eq!(mode(&m.dir.join(MemberFileNames::SECRET_KEY)), 0o600);
        let member = daa::read_member(&m.dir).unwrap();
        assert_eq!(member.group_id().0, group.group_id().0);
        let sig = member.sign(b"hello", &mut OsRng).unwrap();
        pseudonyms.push(verifier.verify(b"hello", &sig, &mut OsRng).unwrap());
        // A member directory is a ready C client directory apart from the root.
        assert!(ClientDir::new(&m.dir).member().is_ok());
    }
    pseudonyms.sort_unstable();
    pseudonyms.dedup();
    assert_eq!(pseudonyms.len(), 7, "every member has its own pseudonym");
    // No staging directories left behind.
    let names: Vec<_> = fs::read_dir(path.join("members"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
}

#[test]
fn inconsistent_group_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    GroupDir::create(&a, b"A", &mut OsRng).unwrap();
    GroupDir::create(&b, b"B", &mut OsRng).unwrap();

    // A group id that does not match gpk ‖ basename.
    fs::write(a.join("basename.bin"), b"other").unwrap();
    let err = GroupDir::open(&a).unwrap_err().to_string();
    assert!(
        err.contains("gid.bin: group id") && err.contains("is not SHA-256(gpk ‖ basename)"),
        "{err}"
    );
    fs::write(a.join("basename.bin"), b"A").unwrap();
    GroupDir::open(&a).unwrap();

    // Another issuer's secret key.
    fs::copy(b.join(ISK), a.join(ISK)).unwrap();
    let err = GroupDir::open(&a).unwrap_err().to_string();
    assert!(
        err.contains("isk.bin: this issuer secret key does not belong to"),
        "{err}"
    );

    // Creating over a non-empty directory is refused.
    let err = GroupDir::create(&b, b"B", &mut OsRng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("directory is not empty"), "{err}");

    // A credential from another group does not load.
    let ga = GroupDir::open(&b).unwrap();
    let m = ga.enroll(1, 1, &|_| {}).unwrap().remove(0);
    fs::copy(a.join("daa_gpk.bin"), m.dir.join("daa_gpk.bin")).unwrap();
    let err = daa::read_member(&m.dir).unwrap_err().to_string();
    assert!(
        err.contains("daa_cred.bin: this credential does not belong"),
        "{err}"
    );
}

/// New groups keep to the C library's basename limit (64 bytes), so C clients and servers can
/// use them; an empty basename is refused as well.
#[test]
fn a_new_group_takes_basenames_of_1_to_64_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    GroupDir::create(&tmp.path().join("max"), &[b'b'; 64], &mut OsRng).unwrap();
    for (name, basename) in [("long", vec![b'b'; 65]), ("empty", vec![])] {
        let err = GroupDir::create(&tmp.path().join(name), &basename, &mut OsRng).unwrap_err();
        assert!(err.to_string().contains("1 to 64 bytes"), "{err}");
    }
}
