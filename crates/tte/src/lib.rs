//! Transitive Trust Enrollment (TTE), the protocol core: no sockets, files, clocks or global
//! randomness (randomness and `now` are passed in).
//!
//! Source: C. Jennings, "Transitive Trust Enrollment for Constrained Devices",
//! draft-jennings-core-transitive-trust-enrollment-01 (IETF, October 2012),
//! <https://datatracker.ietf.org/doc/html/draft-jennings-core-transitive-trust-enrollment-01>.
//! The draft is a sketch; this crate and `tte-server` make it concrete. Every place where we chose
//! is listed under *Decisions* below.
//!
//! # The protocol in one picture
//!
//! ```text
//!  Manufacturer ──POST /.well-known/tte1/d/{DevURN} (OTP, TaSecret)──▶ Transfer Agent (TA)
//!       │ prints QR: https://TA/.well-known/tte1/{DevURN}/s?otp=OTP#DevSecret
//!       ▼
//!  Introducer (phone browser) ──GET …/{DevURN}/s?otp=…──▶ TA: setup page
//!       ├─GET  ContURL/.well-known/tte1/alive ─────────▶ Controller   (CORS: *)
//!       ├─PUT  TA/.well-known/tte1/d/{DevURN}/c {otp, conturl}   (OTP single use)
//!       └─PUT  ContURL/.well-known/tte1/c/{DevURN}/k {devSecret, label}
//!  Device ──GET TA/.well-known/tte1/{DevURN}/c ──▶ JWE(TaSecret, kid=DevURN){ContURL}
//!  Device ──PUT ContURL/.well-known/tte1/s/{DevURN}/v  JWE(DevSecret, kid=DevURN, seq){SenML}
//! ```
//!
//! # Modules
//!
//! - [`urn`]: DevURN validation. [`secret`]: 256-bit keys and 128-bit OTPs (zeroized,
//!   constant-time equality, base64url).
//! - [`jwe`]: compact JWE, `dir` + `A256GCM`, DevURN as `kid` in the protected header (so in the AAD).
//! - [`otp`]: how the TA stores OTPs (HMAC-SHA256 under a server key).
//! - [`setup_url`]: the QR code's URL, built and parsed. [`conturl`]: Controller URLs including
//!   the `xtt://host:port` hand-over.
//! - [`bulk`]: §8.2 box labels (HKDF-derived per-device OTPs and DevSecrets).
//! - [`led`]: §8.1 LED frames and their NRZI line code.
//! - [`senml`]: RFC 8428 packs. [`api`]: the JSON bodies of every HTTP call.
//!
//! # Decisions (where the draft leaves a TODO or is obsolete)
//!
//! 1. **Encryption**: the draft's SHA224-CFB is replaced by JOSE JWE (RFC 7516/7518) with
//!    `alg: dir`, `enc: A256GCM`, so devices can use any JOSE library and our output is checked
//!    by an independent implementation (Python `jwcrypto`) in the tests.
//! 2. **Associated data**: the DevURN goes in the protected header as `kid`; RFC 7516 makes the
//!    encoded protected header the AAD. A JWE for one device never decrypts as another's.
//! 3. **Replay protection** for sensor updates: an unsigned 64-bit counter `seq` in the protected
//!    header, strictly increasing per device; the Controller stores the last accepted value in
//!    the same transaction as the readings. Our device client uses microseconds since the epoch,
//!    so a device needs no persistent counter as long as its clock never runs backwards; a
//!    device without a clock keeps a counter in flash. Counter rather than a timestamp window,
//!    because a window would need synchronized clocks and still admit replays inside it.
//! 4. **OTP storage**: HMAC-SHA256 under a TA key kept outside the database (see [`otp`] for why
//!    not Argon2id). The OTP is single-use: binding is a conditional update inside one SQLite
//!    transaction, so of any number of concurrent binds exactly one wins.
//! 5. **Sizes**: OTP 128 bits, TaSecret and DevSecret 256 bits (the AES-256 key), all from the
//!    OS CSPRNG, carried as unpadded base64url.
//! 6. **ContURL schemes**: http, https, coap, coaps and `xtt://host:port`. The Controller's
//!    well-known resources live at the ContURL's origin root (RFC 8615).
//! 7. **Bulk** and **LED** formats: see [`bulk`] and [`led`].
//! 8. **SenML**: JSON packs (RFC 8428 §4) are the JWE plaintext, `cty: application/senml+json`.

pub mod api;
pub mod bulk;
pub mod conturl;
pub mod jwe;
pub mod led;
pub mod otp;
pub mod secret;
pub mod senml;
pub mod setup_url;
pub mod urn;

pub use conturl::{ContUrl, Scheme};
pub use secret::{Key256, Otp};
pub use setup_url::SetupUrl;
pub use urn::DevUrn;
