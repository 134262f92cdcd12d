//! The QR PNG decodes, with a real decoder (`zbarimg` from Debian's zbar-tools), to exactly the
//! setup URL. Fails, not skips, when zbarimg is missing.

mod common;

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
        let out = common::output_within(
            Command::new("zbarimg").args(["--raw", "-q"]).arg(&path),
            None,
            common::PEER_LIMIT,
        )
        .expect(
            "zbarimg is not installed (Debian package `zbar-tools`; scripts/test.sh installs it)",
        );
        assert!(
            out.status.success(),
            "zbarimg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim_end_matches('\n'), url);
    }
}

/// The number of modules across a QR code drawn in `png` (quiet zone not counted), measured
/// from the image itself: on the diagonal, the first dark pixel is the top-left finder
/// pattern's corner, which starts after the quiet zone and is 7 modules wide.
fn modules_across(png: &[u8]) -> u32 {
    let img = image::load_from_memory(png).unwrap().to_luma8();
    let dark = |x: u32, y: u32| img.get_pixel(x, y).0[0] < 128;
    let start = (0..img.width()).find(|&i| dark(i, i)).unwrap();
    let run = (start..img.width()).take_while(|&x| dark(x, start)).count();
    let module = u32::try_from(run).unwrap() / 7;
    assert_eq!(start % module, 0);
    assert_eq!(start / module, 4, "quiet zone of 4 modules");
    img.width() / module - 8
}

/// The codes the renderers make are level H: each rendering has the size of the level-H code
/// for its text, which for this URL differs from every lower level's.
#[test]
fn error_correction_level_is_h() {
    use qrcode::{EcLevel, QrCode};
    let url = SetupUrl {
        scheme: "https".into(),
        authority: "ta.example.com".into(),
        urn: DevUrn::parse("urn:dev:mac:90a2da001a0c").unwrap(),
        otp: Otp::generate(&mut OsRng),
        dev_secret: Key256::generate(&mut OsRng),
    }
    .to_url();
    let width = |level| {
        let code = QrCode::with_error_correction_level(url.as_bytes(), level).unwrap();
        u32::try_from(code.width()).unwrap()
    };
    let h = width(EcLevel::H);
    for lower in [EcLevel::L, EcLevel::M, EcLevel::Q] {
        assert_ne!(
            width(lower),
            h,
            "{lower:?}: this URL cannot tell the levels apart"
        );
    }

    assert_eq!(modules_across(&tte_server::qr::png(&url).unwrap()), h);
    // The terminal form: one character per module across, with the 4-module quiet zone.
    let terminal = tte_server::qr::terminal(&url).unwrap();
    let first = terminal.lines().next().unwrap();
    assert_eq!(u32::try_from(first.chars().count()).unwrap(), h + 8);
    // The SVG: the same code as the level-H one, drawn the same way.
    let expected = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::H)
        .unwrap()
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build();
    assert_eq!(tte_server::qr::svg(&url).unwrap(), expected);
}
