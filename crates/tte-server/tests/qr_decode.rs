//! The QR PNG decodes, with a real decoder (`zbarimg` from Debian's zbar-tools), to exactly the
//! setup URL. Fails, not skips, when zbarimg is missing.

use std::process::Command;

use rand_core::OsRng;
use tte::{DevUrn, Key256, Otp, SetupUrl};

#[test]
fn png_decodes_to_exactly_the_url() {
    let dir = tempfile::tempdir().unwrap();
    for (i, authority) in ["ta.example.com", "127.0.0.1:45678"].iter().enumerate() {
        let url = SetupUrl {
            scheme: "https".into(),
            authority: (*authority).into(),
            urn: DevUrn::parse("urn:dev:mac:90a2da001a0c").unwrap(),
            otp: Otp::generate(&mut OsRng),
            dev_secret: Key256::generate(&mut OsRng),
        }
        .to_url();
        let path = dir.path().join(format!("qr{i}.png"));
        std::fs::write(&path, tte_server::qr::png(&url).unwrap()).unwrap();
        let out = Command::new("zbarimg")
            .args(["--raw", "-q"])
            .arg(&path)
            .output()
            .expect("zbarimg is not installed (Debian package `zbar-tools`; scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "zbarimg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim_end_matches('\n'), url);
    }
}

#[test]
fn error_correction_level_is_h() {
    let code = qrcode::QrCode::with_error_correction_level(b"x", qrcode::EcLevel::H).unwrap();
    assert_eq!(code.error_correction_level(), qrcode::EcLevel::H);
    // Our renderer's SVG and terminal forms come from the same level-H code.
    assert!(tte_server::qr::svg("https://ta.example/x")
        .unwrap()
        .starts_with("<?xml"));
    assert!(!tte_server::qr::terminal("https://ta.example/x")
        .unwrap()
        .is_empty());
}
