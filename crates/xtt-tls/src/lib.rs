//! TLS for the project's HTTP programs, in one place so that every client trusts the same way
//! and says the same thing when a certificate is refused.
//!
//! * [`TrustRoots`]: which certificate authorities a client trusts. Always the platform's store
//!   (on Linux the system's CA bundle, read by `rustls-platform-verifier`), plus the extra roots
//!   a command is given: a PEM file (`--ca-file`), or DER certificates from the trust-anchor
//!   store (`--anchors`, kind `tls-root`). [`TrustRoots::client_builder`] turns them into a
//!   `reqwest` builder.
//! * [`certificate_problem`]: finds the rustls certificate error inside a `reqwest` error, so
//!   that "the relay's certificate is not signed by a trusted CA" reaches the user instead of
//!   "error sending request".
//! * `test_pki` and `test_http` (feature `test-pki`, for tests): a throwaway CA and server
//!   certificates; a raw HTTP server that answers with bodies of a chosen size and framing.
//! * [`body`]: reading an HTTP answer's body with a bound on its length, for every client.
//! * [`server`]: a TLS listener for axum (handshakes run concurrently, each with a deadline,
//!   capped per client address) and a server configuration from PEM files.
//! * [`serve`]: serving an axum router over TCP or TLS with a request-head deadline, caps on
//!   open connections (overall and per address) and a bounded graceful shutdown; every HTTP
//!   service of the project goes through it.
//!
//! # Crypto provider
//!
//! The workspace enables reqwest's `rustls-no-provider` and rustls's `ring` feature only:
//! reqwest's default `rustls` feature brings aws-lc-rs, a long C build, while ring is already
//! in the tree for the XTT server. [`install_ring_provider`] makes ring the process's rustls
//! provider; everything here calls it before building a client or server configuration, so
//! callers never have to.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod body;
pub mod serve;
pub mod server;
#[cfg(feature = "test-pki")]
pub mod test_http;
#[cfg(feature = "test-pki")]
pub mod test_pki;

use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// Largest PEM file of CA certificates read (a system bundle is about 200 KiB).
pub const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

/// Why trust roots or a TLS configuration could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read. The cause is in the message and is not the `source()`, so
    /// that `{:#}` does not print it twice.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A PEM file held no usable certificate, or a malformed one.
    #[error("{source_name}: {reason}")]
    Pem {
        /// Where the PEM came from (a path, or a description).
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A DER certificate (e.g. from the anchor store) is not one.
    #[error("{source_name}: not a DER X.509 certificate ({reason})")]
    Der {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The private key file of a server is unusable.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration (e.g. key and certificate do not match).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// reqwest could not build the client (e.g. no root certificates at all).
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
}

/// Makes ring the process's rustls crypto provider, once. Later calls (and a provider some
/// other part of the process installed first) are left alone.
pub fn install_ring_provider() {
    // `install_default` fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificate authorities an HTTPS client trusts: the platform's, plus extra roots.
#[derive(Clone, Default)]
pub struct TrustRoots {
    extra: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustRoots")
            .field("platform", &true)
            .field("extra", &self.extra.len())
            .finish()
    }
}

impl TrustRoots {
    /// The platform's roots only.
    pub fn platform() -> Self {
        Self::default()
    }

    /// How many extra roots were added.
    pub fn extra_len(&self) -> usize {
        self.extra.len()
    }

    /// Adds every certificate of a PEM file (one CA or a bundle). Returns how many.
    pub fn add_pem_file(&mut self, path: &Path) -> Result<usize, TlsError> {
        let bytes = read_limited(path)?;
        self.add_pem(&bytes, &path.display().to_string())
    }

    /// Adds every `CERTIFICATE` block of `pem`; `source_name` names it in errors.
    pub fn add_pem(&mut self, pem: &[u8], source_name: &str) -> Result<usize, TlsError> {
        let certs = parse_pem_certificates(pem, source_name)?;
        let n = certs.len();
        self.extra.extend(certs);
        Ok(n)
    }

    /// Adds one DER certificate (as the anchor store keeps `tls-root` anchors).
    pub fn add_der(&mut self, der: &[u8], source_name: &str) -> Result<(), TlsError> {
        check_der_certificate(der, source_name)?;
        self.extra.push(CertificateDer::from(der.to_vec()));
        Ok(())
    }

    /// The extra roots, DER.
    pub fn extra(&self) -> &[CertificateDer<'static>] {
        &self.extra
    }

    /// A reqwest client builder using ring and these roots. HTTPS servers are verified against
    /// the platform's store plus the extra roots (hostname included); plain HTTP still works.
    ///
    /// Redirects are not followed: a 3xx comes back to the caller as a status like any other.
    /// reqwest would otherwise resend a 307/308 request's body to wherever `Location` points,
    /// over plain HTTP or to another host, and the bodies these clients send carry secrets (a
    /// manufacturer's OTP and TaSecret, a box's OTP master, DevSecrets, relay contents).
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        install_ring_provider();
        let mut certs = Vec::with_capacity(self.extra.len());
        for der in &self.extra {
            // Checked when added; a failure here would be a reqwest limitation, say which.
            let c = reqwest::Certificate::from_der(der)
                .map_err(|e| TlsError::Client(format!("extra root rejected: {e}")))?;
            certs.push(c);
        }
        Ok(reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_merge(certs)
            .redirect(reqwest::redirect::Policy::none()))
    }

    /// A client with these roots and a request timeout.
    pub fn client(&self, timeout: std::time::Duration) -> Result<reqwest::Client, TlsError> {
        self.client_builder()?
            .timeout(timeout)
            .build()
            .map_err(|e| TlsError::Client(error_chain(&e)))
    }
}

/// Every `CERTIFICATE` block of a PEM text; an error if there is none or one is malformed.
pub fn parse_pem_certificates(
    pem: &[u8],
    source_name: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::Pem {
        source_name: source_name.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let der = item.map_err(|e| bad(format!("malformed PEM: {e}")))?;
        check_der_certificate(&der, source_name)?;
        out.push(der);
    }
    if out.is_empty() {
        return Err(bad(
            "no \"-----BEGIN CERTIFICATE-----\" block (expected a PEM CA certificate)".into(),
        ));
    }
    Ok(out)
}

/// A cheap structural check that `der` is an X.509 certificate rustls can use as a root.
fn check_der_certificate(der: &[u8], source_name: &str) -> Result<(), TlsError> {
    let mut store = rustls::RootCertStore::empty();
    store
        .add(CertificateDer::from(der))
        .map_err(|e| TlsError::Der {
            source_name: source_name.to_owned(),
            reason: e.to_string(),
        })
}

fn read_limited(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let io = |error| TlsError::Io {
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::Pem {
            source_name: path.display().to_string(),
            reason: format!("larger than {MAX_PEM_FILE} bytes"),
        });
    }
    Ok(bytes)
}

/// If `err` failed because the server's certificate was refused, says why in words
/// ("not signed by a trusted certificate authority", "not valid for 127.0.0.1", ...).
pub fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    causes(err)
        .find_map(|e| e.downcast_ref::<rustls::Error>())
        .and_then(describe_rustls)
}

/// If `err` failed because the URL's scheme does not match what the server speaks (an
/// `https://` URL to a plain HTTP port, or `http://` to a TLS port), says so and which scheme
/// to use instead.
pub fn scheme_mismatch(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    for e in causes(err) {
        if let Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) =
            e.downcast_ref::<rustls::Error>()
        {
            return Some(
                "the server does not speak TLS on that port \
                 (if it serves plain HTTP, use an http:// URL)",
            );
        }
        // hyper's error for a reply that does not start "HTTP/1.x", e.g. a TLS alert.
        if e.to_string().contains("invalid HTTP version parsed") {
            return Some(
                "the server did not answer in plain HTTP on that port \
                 (if it serves HTTPS, use an https:// URL)",
            );
        }
    }
    None
}

/// `err` and its causes, outermost first.
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| {
        // io::Error's `source()` skips the error it wraps (and hyper nests io::Errors), so
        // step into the wrapped error itself.
        match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

fn describe_rustls(e: &rustls::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(describe_certificate_error(c))
}

/// A refused certificate in plain words, never in Rust's Debug format: the text is shown to
/// people ("the relay at HOST cannot be trusted: ...").
#[allow(deprecated)] // `UnsupportedSignatureAlgorithm` is still produced by older verifiers.
fn describe_certificate_error(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => "its certificate is not signed by a trusted certificate authority \
                             (give the CA with --ca-file, or import it into the anchor store)"
            .to_owned(),
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<String> = presented.iter().map(|n| plain_name(n)).collect();
            let expected = expected.to_str();
            match names.as_slice() {
                [] => format!(
                    "its certificate names no host (it has no subject alternative name), \
                     so it is not valid for {expected}"
                ),
                _ => format!(
                    "its certificate is for {}, not {expected} (connect with a name the \
                     certificate holds, or issue one that holds {expected})",
                    one_of(&names)
                ),
            }
        }
        C::NotValidForName => "its certificate is not valid for this host name".to_owned(),
        C::Expired | C::ExpiredContext { .. } => {
            "its certificate has expired (or this machine's clock is wrong)".to_owned()
        }
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "its certificate is not valid yet (or this machine's clock is wrong)".to_owned()
        }
        C::Revoked => "its certificate has been revoked".to_owned(),
        C::BadSignature => "its certificate's signature does not verify".to_owned(),
        C::BadEncoding => "its certificate is malformed".to_owned(),
        C::UnhandledCriticalExtension => {
            "its certificate has a critical extension this program does not understand".to_owned()
        }
        C::UnknownRevocationStatus
        | C::ExpiredRevocationList
        | C::ExpiredRevocationListContext { .. } => {
            "its certificate's revocation status cannot be determined".to_owned()
        }
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "its certificate is signed with an algorithm this program does not support".to_owned()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "its certificate is not meant for a TLS server (extended key usage)".to_owned()
        }
        C::InvalidOcspResponse => {
            "its certificate's revocation (OCSP) answer is invalid".to_owned()
        }
        C::Other(inner) => {
            let text = inner.to_string();
            if is_plain_words(&text) {
                format!("its certificate was refused: {text}")
            } else {
                "its certificate was refused".to_owned()
            }
        }
        _ => "its certificate was refused".to_owned(),
    }
}

/// A name as webpki reports it (`DnsName("a.example")`, `IpAddress(192.0.2.1)`, ...) in plain
/// words: the name itself, or what kind of name it is.
fn plain_name(presented: &str) -> String {
    let inner = |prefix: &str| {
        presented
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .map(|s| s.trim_matches('"').to_owned())
    };
    if let Some(n) = inner("DnsName(").or_else(|| inner("IpAddress(")) {
        return n;
    }
    if let Some(uri) = inner("UniformResourceIdentifier(") {
        return format!("the URI {uri}");
    }
    if presented == "DirectoryName" {
        return "a directory name".to_owned();
    }
    if presented.starts_with("Unsupported(") {
        return "a name of a kind this program does not read".to_owned();
    }
    if is_plain_words(presented) {
        presented.to_owned()
    } else {
        "a name this program cannot show".to_owned()
    }
}

/// "a", "a or b", "a, b or c".
fn one_of(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Whether `text` reads as words rather than a Rust Debug rendering of a value.
fn is_plain_words(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || " .,:;'-/_*".contains(c))
}

/// The error and its causes on one line ("a: b: c"), for messages; or, when the URL's scheme
/// does not match what the server speaks, that in words ([`scheme_mismatch`]: rustls and hyper
/// would say "received corrupt message of type InvalidContentType" and "invalid HTTP version
/// parsed"), so every HTTP client of the project gives the hint.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(hint) = scheme_mismatch(err) {
        return hint.to_owned();
    }
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn pem_bundles_add_every_certificate() {
        let mut roots = TrustRoots::platform();
        let bundle = format!("{}\n{}", ca_pem(), ca_pem());
        assert_eq!(roots.add_pem(bundle.as_bytes(), "bundle").unwrap(), 2);
        assert_eq!(roots.extra_len(), 2);
        roots.client_builder().unwrap().build().unwrap();
    }

    #[test]
    fn files_without_certificates_are_refused_with_their_name() {
        let e = TrustRoots::platform()
            .add_pem(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "k.pem",
            )
            .unwrap_err();
        assert!(e.to_string().starts_with("k.pem: no "), "{e}");
        let e = TrustRoots::platform()
            .add_der(b"\x30\x03\x02\x01\x01", "anchor 1234")
            .unwrap_err();
        assert!(e.to_string().contains("anchor 1234"), "{e}");
        let e = TrustRoots::platform()
            .add_pem_file(Path::new("/nonexistent/ca.pem"))
            .unwrap_err();
        assert!(matches!(e, TlsError::Io { .. }), "{e}");
    }

    #[test]
    fn certificate_errors_are_found_behind_io_errors() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let text = certificate_problem(&io).unwrap();
        assert!(text.contains("not signed by a trusted"), "{text}");
        let other = std::io::Error::other("connection reset");
        assert!(certificate_problem(&other).is_none());
    }

    fn debug_free(text: &str) {
        for bad in [
            "{",
            "}",
            "DnsName(",
            "IpAddress(",
            "Context",
            "\"",
            "[",
            "]",
        ] {
            assert!(!text.contains(bad), "{bad:?} in {text:?}");
        }
    }

    #[test]
    fn a_name_mismatch_names_both_names_in_words() {
        use rustls::pki_types::ServerName;
        let e =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("localhost").unwrap().to_owned(),
                presented: vec!["IpAddress(127.0.0.1)".into()],
            });
        let text = certificate_problem(&std::io::Error::other(e)).unwrap();
        debug_free(&text);
        assert!(
            text.contains("its certificate is for 127.0.0.1, not localhost"),
            "{text}"
        );

        let e = rustls::CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("10.0.0.1").unwrap().to_owned(),
            presented: vec![
                "DnsName(\"relay.example\")".into(),
                "DnsName(\"*.relay.example\")".into(),
                "IpAddress(2001:db8::1)".into(),
            ],
        };
        let text = describe_certificate_error(&e);
        debug_free(&text);
        assert!(
            text.contains("for relay.example, *.relay.example or 2001:db8::1, not 10.0.0.1"),
            "{text}"
        );

        let e = rustls::CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("relay.example").unwrap().to_owned(),
            presented: vec![],
        };
        let text = describe_certificate_error(&e);
        debug_free(&text);
        assert!(text.contains("relay.example"), "{text}");
    }

    #[test]
    #[allow(deprecated)]
    fn no_certificate_error_is_shown_in_debug_format() {
        use rustls::pki_types::UnixTime;
        use rustls::CertificateError as C;
        let t = |s| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        let all = [
            C::BadEncoding,
            C::Expired,
            C::ExpiredContext {
                time: t(2),
                not_after: t(1),
            },
            C::NotValidYet,
            C::NotValidYetContext {
                time: t(1),
                not_before: t(2),
            },
            C::Revoked,
            C::UnhandledCriticalExtension,
            C::UnknownIssuer,
            C::UnknownRevocationStatus,
            C::ExpiredRevocationList,
            C::ExpiredRevocationListContext {
                time: t(2),
                next_update: t(1),
            },
            C::BadSignature,
            C::UnsupportedSignatureAlgorithm,
            C::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: vec![1, 2, 3],
                supported_algorithms: vec![],
            },
            C::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: vec![1, 2, 3],
                public_key_algorithm_id: vec![4, 5],
            },
            C::NotValidForName,
            C::InvalidPurpose,
            C::InvalidPurposeContext {
                required: rustls::ExtendedKeyPurpose::ServerAuth,
                presented: vec![rustls::ExtendedKeyPurpose::ClientAuth],
            },
            C::InvalidOcspResponse,
            C::ApplicationVerificationFailure,
            C::Other(rustls::OtherError(std::sync::Arc::new(
                std::io::Error::other("Some { inner: Debug }"),
            ))),
            C::Other(rustls::OtherError(std::sync::Arc::new(
                std::io::Error::other("the certificate is pinned to another key"),
            ))),
        ];
        for c in all {
            let text = describe_rustls(&rustls::Error::InvalidCertificate(c.clone())).unwrap();
            debug_free(&text);
            assert!(text.starts_with("its certificate"), "{text}");
        }
    }

    #[test]
    fn server_certificate_and_key_mistakes_are_named() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let key = key.serialize_pem();
        server::config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();

        let e = server::config_from_pem(key.as_bytes(), key.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds a private key, not the server's certificate chain"),
            "{e}"
        );
        assert!(
            e.contains("swapped") && !e.contains("CA certificate"),
            "{e}"
        );
        let e = server::config_from_pem(b"not PEM at all", key.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expected the server's PEM certificate chain"),
            "{e}"
        );
        assert!(!e.contains("CA certificate"), "{e}");
        let e = server::config_from_pem(cert.as_bytes(), cert.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds a certificate, not the server's private key"),
            "{e}"
        );
        assert!(e.contains("swapped"), "{e}");
        let e = server::config_from_pem(cert.as_bytes(), b"junk")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected the server's PEM private key"), "{e}");
        assert!(!e.contains("no items found"), "{e}");

        // A missing file: named, and its cause said once even with every cause printed.
        let dir = tempfile::tempdir().unwrap();
        let chain = dir.path().join("relay.crt");
        std::fs::write(&chain, &cert).unwrap();
        let e = server::config_from_files(&chain, &dir.path().join("nothere.pem")).unwrap_err();
        let text = error_chain(&e);
        assert!(text.contains("nothere.pem"), "{text}");
        assert_eq!(text.matches("(os error").count(), 1, "{text}");
        assert!(std::error::Error::source(&e).is_none(), "{e:?}");
    }

    #[test]
    fn a_scheme_mismatch_says_which_scheme_to_use() {
        let tls_to_http = std::io::Error::other(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        let hint = scheme_mismatch(&tls_to_http).unwrap();
        assert!(hint.contains("http://"), "{hint}");
        let http_to_tls = std::io::Error::other("invalid HTTP version parsed");
        let hint = scheme_mismatch(&http_to_tls).unwrap();
        assert!(hint.contains("https://"), "{hint}");
        assert!(scheme_mismatch(&std::io::Error::other("connection reset")).is_none());
        // Every client's error text goes through error_chain, which gives the hint too.
        assert_eq!(
            error_chain(&tls_to_http),
            scheme_mismatch(&tls_to_http).unwrap()
        );
        assert_eq!(
            error_chain(&std::io::Error::other("connection reset")),
            "connection reset"
        );
    }
}
