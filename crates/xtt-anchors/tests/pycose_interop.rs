//! The COSE_Sign1 inside our SUIT envelopes verifies with pycose (Python), an independent COSE
//! implementation. Needs python3 with pycose (scripts/test.sh installs it); fails without.

mod common;

use std::io::Read as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use xtt_anchors::suit::{Envelope, Manifest};
use xtt_anchors::update::UpdateSigningKey;

/// How long pycose may take for one verification before the test kills it and fails.
const PEER_LIMIT: Duration = Duration::from_secs(60);

/// What pycose made of one COSE_Sign1.
struct Pycose {
    /// The script's exit code: 0 verified, 1 not verified, 3 pycose raised.
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` like `Command::output`, but kills it and fails the test when it has not
/// finished within `limit`. An error starting it (e.g. not installed) is returned.
fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read in threads, so that a full pipe cannot block the child past the limit.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{:?} did not finish within {limit:?} and was killed",
                cmd.get_program()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

fn pycose(dir: &std::path::Path, cose: &[u8], payload: &[u8], key: &[u8]) -> Pycose {
    let files = [
        ("sign1.cbor", cose),
        ("payload.cbor", payload),
        ("key.sec1", key),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pycose_verify.py");
    let out = output_within(
        Command::new("python3")
            .arg(script)
            .args(files.map(|(n, _)| dir.join(n))),
        PEER_LIMIT,
    )
    .expect("python3 must be installed (scripts/test.sh installs the test peers)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "pycose is missing: pip install pycose (scripts/test.sh does)\n{stderr}"
    );
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1 | 3)),
        "pycose script failed ({}): {stdout}{stderr}",
        out.status
    );
    Pycose {
        code: code.unwrap(),
        stdout,
        stderr,
    }
}

#[test]
fn our_cose_sign1_verifies_with_pycose_and_a_tampered_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let key = UpdateSigningKey::generate(&mut common::rng(7));
    for seq in [1u64, 1 << 40] {
        let m = Manifest::for_image(
            b"interop image",
            seq,
            [3; 16],
            [4; 16],
            vec![b"fw".to_vec()],
        );
        let env = Envelope::decode(&key.sign(&m).unwrap()).unwrap();
        let (cose, payload) = env.cose_sign1().unwrap();
        let p = pycose(dir.path(), &cose, &payload, &key.public_sec1());
        assert_eq!(
            (p.code, p.stdout.as_str(), p.stderr.as_str()),
            (0, "alg ES256\nverified\n", ""),
            "pycose refused our COSE_Sign1 (sequence {seq})"
        );

        // The same signature over a different manifest digest must not verify there either:
        // pycose checks it and finds it wrong (an exception inside pycose, exit 3 with
        // "verification error", would not show that).
        let mut other = payload.clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        let p = pycose(dir.path(), &cose, &other, &key.public_sec1());
        assert_eq!(
            (p.code, p.stdout.as_str(), p.stderr.as_str()),
            (1, "alg ES256\nNOT verified\n", ""),
            "pycose did not plainly refuse a changed payload (sequence {seq})"
        );
    }
}
