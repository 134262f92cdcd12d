//! The setup page the introducer's phone opens from the QR code.
//!
//! The HTML is static apart from two attributes the server fills in: the DevURN (validated to
//! `A-Za-z0-9:-._~`, so it needs no escaping) and the OTP state (a fixed word). The script is a
//! separate file so the Content-Security-Policy can forbid inline script entirely.
//!
//! Headers worth their weight here:
//! - `Referrer-Policy: no-referrer`: the page URL holds the OTP; without this, the page's
//!   requests to the Controller would carry it in `Referer`.
//! - `Cache-Control: no-store`: the page is per-device and per-state.
//! - CSP `connect-src *`: the page must reach whichever Controller the user names.
//!
//! In production the page must be served over HTTPS (the OTP travels in its URL, and the page
//! handles the DevSecret): run the Transfer Agent behind a TLS terminator, print `https://` QR
//! codes (the `manufacture` default), and the page's requests to an `https://` Controller are
//! then same-security. Tests serve it over `http://127.0.0.1`, which browsers treat as a secure
//! context too, so the same code paths run.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tte::DevUrn;

const HTML: &str = include_str!("../assets/setup.html");
const JS: &str = include_str!("../assets/setup.js");
const CSS: &str = include_str!("../assets/setup.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src *; \
                   img-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// What the page tells the user before they type anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// OTP valid and unused: show the form.
    Ready,
    /// OTP already used: a Controller is bound.
    Used,
    /// OTP missing or wrong.
    BadOtp,
    /// The link names no valid DevURN. (A valid but unregistered one is shown as `BadOtp`, so
    /// the page does not tell which DevURNs are registered.)
    Unknown,
}

impl PageState {
    fn word(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Used => "used",
            Self::BadOtp => "bad-otp",
            Self::Unknown => "unknown",
        }
    }
}

/// The page for `urn` in `state`.
pub fn render(status: StatusCode, urn: Option<&DevUrn>, state: PageState) -> Response {
    let html = HTML
        .replace("{{URN}}", urn.map_or("", DevUrn::as_str))
        .replace("{{STATE}}", state.word());
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        html,
    )
        .into_response()
}

fn asset(ct: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /.well-known/tte1/setup.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// `GET /.well-known/tte1/setup.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", CSS)
}
