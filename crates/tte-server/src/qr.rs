//! QR code rendering at error-correction level H (30% of the code may be damaged or covered).

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit any QR version at level H.
    #[error("text does not fit a QR code at error-correction level H: {0}")]
    Encode(#[from] qrcode::types::QrError),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Png(#[from] image::ImageError),
}

fn code(text: &str) -> Result<QrCode, QrError> {
    Ok(QrCode::with_error_correction_level(
        text.as_bytes(),
        EcLevel::H,
    )?)
}

/// A PNG of the code, at least 8 pixels per module, with the standard 4-module quiet zone.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let img = code(text)?
        .render::<image::Luma<u8>>()
        .module_dimensions(8, 8)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// An SVG of the code.
pub fn svg(text: &str) -> Result<String, QrError> {
    Ok(code(text)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build())
}

/// The code drawn with Unicode half blocks, for a terminal.
pub fn terminal(text: &str) -> Result<String, QrError> {
    Ok(code(text)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .build())
}
