//! TLS to PostgreSQL and the URL settings that choose it, with rustls on ring (no OpenSSL).
//!
//! The `postgres` crate parses `sslmode` only as `disable|prefer|require` and knows neither
//! `verify-ca`/`verify-full` nor `sslrootcert`, so [`parse_url`] takes those two parameters out of
//! the URL's query string before handing the rest to [`postgres::Config`], and builds the TLS
//! connector they ask for. The modes mean what they mean to libpq:
//!
//! | `sslmode`            | TLS | server certificate checked against `sslrootcert` | host name checked |
//! |----------------------|-----|--------------------------------------------------|-------------------|
//! | absent, `disable`, `allow`, `prefer` | no | –                                 | –                 |
//! | `require`            | yes | only if `sslrootcert` is given (then as `verify-ca`) | no            |
//! | `verify-ca`          | yes | yes (`sslrootcert` required)                     | no                |
//! | `verify-full`        | yes | yes (`sslrootcert` required)                     | yes               |
//!
//! `allow` and `prefer` do not attempt TLS here: opportunistic, unauthenticated TLS protects
//! against nothing an active attacker cannot strip, so the choice is made explicit. `require`
//! without a root certificate encrypts but cannot tell the real server from an impostor; it is
//! accepted because libpq accepts it, and [`parse_url`] reports it ([`TlsMode::is_unauthenticated`])
//! so the caller can warn; so does [`implicit_plaintext`] for clear text to another machine that
//! the URL did not ask for with `sslmode=disable`. Parameter names are matched percent-decoded,
//! as tokio-postgres reads them, and the `key=value` form may carry no TLS setting (it is not
//! parsed here). `sslrootcert` names a PEM file with one or more CA certificates
//! (`sslrootcert=system` is not supported: name the file). Client certificates (`sslcert`,
//! `sslkey`) are not supported and refused rather than ignored.
//!
//! TLS needs a TCP host: PostgreSQL never speaks TLS on a unix socket, and neither does the client.

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use postgres::config::SslMode;
use postgres::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::RegistryError;

/// What TLS a storage URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS (no `sslmode`, or `disable`, `allow`, `prefer`).
    Off,
    /// `require` without `sslrootcert`: encrypted, server not authenticated.
    EncryptOnly,
    /// `verify-ca`, or `require` with `sslrootcert`: the chain is checked, the name is not.
    VerifyCa,
    /// `verify-full`: chain and host name checked.
    VerifyFull,
}

impl TlsMode {
    /// Whether the connection is encrypted to a server whose identity is not checked.
    pub fn is_unauthenticated(self) -> bool {
        self == Self::EncryptOnly
    }
}

/// A parsed PostgreSQL URL: the client configuration, the TLS connector and the mode.
pub(crate) struct PgTarget {
    pub(crate) config: Config,
    pub(crate) tls: MakeRustlsConnect,
    pub(crate) mode: TlsMode,
    /// `sslmode=disable` was written: clear text is meant.
    pub(crate) plaintext_asked: bool,
}

fn url_err(m: impl Into<String>) -> RegistryError {
    RegistryError::StorageUrl(m.into())
}

/// Splits `sslmode` and `sslrootcert` off a `postgres://` URL and builds the matching connector.
/// Error messages never repeat the URL (it may hold a password).
pub(crate) fn parse_url(url: &str) -> Result<PgTarget, RegistryError> {
    refuse_tls_settings_outside_a_url(url)?;
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut sslmode: Option<String> = None;
    let mut rootcert: Option<String> = None;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (raw_key, v) = pair.split_once('=').unwrap_or((pair, ""));
        // The key as tokio-postgres will read it: it percent-decodes keys too, so matching the
        // raw text would let `ssl%6dode=require` past this check and then be overridden with
        // no TLS below.
        let k = percent_decode_str(raw_key)
            .decode_utf8()
            .map_err(|_| url_err("a URL parameter name is not UTF-8"))?;
        let k = k.as_ref();
        let decoded = || {
            percent_decode_str(v)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| url_err(format!("the value of {k} is not UTF-8")))
        };
        match k {
            "sslmode" => sslmode = Some(decoded()?),
            "sslrootcert" => rootcert = Some(decoded()?),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(url_err(format!(
                    "{k}: client certificates are not supported; authenticate with a password \
                     or a trusted socket"
                )))
            }
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: Config = rebuilt
        .parse()
        .map_err(|e| url_err(format!("not a valid PostgreSQL URL: {e}")))?;
    let mode = match (sslmode.as_deref(), rootcert.is_some()) {
        (None | Some("disable" | "allow" | "prefer"), _) => TlsMode::Off,
        (Some("require"), false) => TlsMode::EncryptOnly,
        (Some("require" | "verify-ca"), true) => TlsMode::VerifyCa,
        (Some("verify-full"), true) => TlsMode::VerifyFull,
        (Some(m @ ("verify-ca" | "verify-full")), false) => {
            return Err(url_err(format!(
                "sslmode={m} needs sslrootcert=PATH (a PEM file with the CA certificate that \
                 signed the database server's certificate)"
            )))
        }
        (Some(other), _) => {
            return Err(url_err(format!(
                "unknown sslmode {other:?}; use disable, require, verify-ca or verify-full"
            )))
        }
    };
    let hosts = config.get_hosts();
    let tcp_only = !hosts.is_empty()
        && hosts
            .iter()
            .all(|h| matches!(h, postgres::config::Host::Tcp(_)));
    if mode != TlsMode::Off && !tcp_only {
        return Err(url_err(
            "TLS needs a TCP host (PostgreSQL does not use TLS on unix sockets)",
        ));
    }
    config.ssl_mode(if mode == TlsMode::Off {
        SslMode::Disable
    } else {
        SslMode::Require
    });
    let tls = connector(mode, rootcert.as_deref())?;
    let plaintext_asked = sslmode.as_deref() == Some("disable");
    Ok(PgTarget {
        config,
        tls,
        mode,
        plaintext_asked,
    })
}

/// The `key=value` connection string form: TLS settings in it would be handed to
/// tokio-postgres unparsed here, and then overridden with no TLS. Only the URL form carries them.
fn refuse_tls_settings_outside_a_url(conninfo: &str) -> Result<(), RegistryError> {
    let is_url = conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://");
    let tls_key = conninfo
        .split_whitespace()
        .filter_map(|token| token.split_once('=').map(|(k, _)| k))
        .any(|k| k.starts_with("ssl"));
    if !is_url && tls_key {
        return Err(url_err(
            "TLS settings (sslmode, sslrootcert) are only read from a postgres:// URL; \
             write the connection as postgres://USER@HOST/DATABASE?sslmode=verify-full&sslrootcert=PATH",
        ));
    }
    Ok(())
}

/// Why a URL's connection is in clear text over the network, if it is without being asked to
/// be: TLS is off (no `sslmode`, or `allow`/`prefer`, which do not try TLS here) and a host is
/// reached over TCP and is not this machine. `sslmode=disable` says it is meant, and a unix
/// socket or loopback address never leaves the machine: `None` for those.
pub fn implicit_plaintext(url: &str) -> Option<String> {
    let target = parse_url(url).ok()?;
    if target.mode != TlsMode::Off || target.plaintext_asked {
        return None;
    }
    let remote = target.config.get_hosts().iter().find_map(|h| match h {
        postgres::config::Host::Tcp(name) if !is_loopback(name) => Some(name.clone()),
        _ => None,
    })?;
    Some(format!(
        "the connection to the database at {remote} is not encrypted (the storage URL turns no \
         TLS on: allow and prefer do not try it here): registrations and their pseudonyms cross the network in clear text; \
         add sslmode=verify-full&sslrootcert=PATH, or sslmode=disable if that is meant"
    ))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The TLS mode a `postgres://` URL asks for (to warn about [`TlsMode::EncryptOnly`] at start).
pub fn tls_mode(url: &str) -> Result<TlsMode, RegistryError> {
    parse_url(url).map(|t| t.mode)
}

/// The connector for a configuration built in code ([`crate::PostgresRegistry::from_config`]):
/// no TLS unless the configuration requires it, then libpq's `require` (encrypted, unverified).
pub(crate) fn connector_for(config: &mut Config) -> Result<MakeRustlsConnect, RegistryError> {
    match config.get_ssl_mode() {
        SslMode::Require => connector(TlsMode::EncryptOnly, None),
        _ => {
            config.ssl_mode(SslMode::Disable);
            connector(TlsMode::Off, None)
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(mode: TlsMode, rootcert: Option<&str>) -> Result<MakeRustlsConnect, RegistryError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Database(format!("TLS configuration: {e}")))?;
    let roots = match rootcert {
        Some(path) => Some(Arc::new(load_roots(path)?)),
        None => None,
    };
    let config = match (mode, roots) {
        (TlsMode::VerifyFull, Some(roots)) => {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (TlsMode::VerifyCa, Some(roots)) => {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| RegistryError::Database(format!("TLS configuration: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
        // Off: never used (sslmode=disable), but the pool has one connector type.
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

fn load_roots(path: &str) -> Result<RootCertStore, RegistryError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| url_err(format!("sslrootcert {path}: {e}")))?;
    for cert in certs {
        let cert = cert.map_err(|e| url_err(format!("sslrootcert {path}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| url_err(format!("sslrootcert {path}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(url_err(format!(
            "sslrootcert {path}: no PEM certificate in the file"
        )));
    }
    Ok(roots)
}

/// `verify-ca`: the full WebPKI chain check, except that a certificate issued for another name
/// is accepted (libpq's `verify-ca` does not compare names).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// libpq's `require` without a root certificate: any certificate is accepted (the handshake
/// signatures are still checked, so the session key is bound to the certificate presented).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The URL with its password (userinfo or `password=` parameter) replaced by `***`, for logs
/// and messages. `sqlite:PATH` is returned unchanged; anything that is neither (a mistyped
/// `postgres:/…`, a libpq `key=value` string) may hold a password where no rule can find it,
/// so only its scheme, if it has one, is kept.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_string();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.split_once(':') {
            Some((scheme, _)) if is_scheme(scheme) => format!("{scheme}:***"),
            _ => "***".to_string(),
        };
    };
    if !is_scheme(scheme) {
        return "***".to_string();
    }
    // A password may hold '/', '?', ':' or '@' unescaped, and so may what the driver takes for
    // the user (`user@server` logins, a stray '/'): tokio-postgres reads credentials up to the
    // first '@', a person may mean the last. Everything from the first ':' to the last '@' is
    // hidden, whatever comes before it: that covers every reading, at the price of hiding a
    // port when a later parameter holds an '@'.
    let rest = match (rest.split_once(':'), rest.rfind('@')) {
        (Some((user, _)), Some(at)) if user.len() < at => {
            format!("{user}:***{}", rest.get(at..).unwrap_or(""))
        }
        _ => rest.to_string(),
    };
    // `password=` parameters, wherever a '?' or '&' starts one (the '?' may be hidden above).
    let mut out = format!("{scheme}://");
    let mut params = rest.split('&');
    if let Some(first) = params.next() {
        match first.split_once('?') {
            Some((head, param)) => {
                out.push_str(head);
                out.push('?');
                out.push_str(&redact_param(param));
            }
            None => out.push_str(first),
        }
    }
    for param in params {
        out.push('&');
        out.push_str(&redact_param(param));
    }
    out
}

/// An RFC 3986 scheme: a letter, then letters, digits, '+', '-' or '.'.
pub(crate) fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn redact_param(param: &str) -> String {
    match param.split_once('=') {
        // The driver percent-decodes parameter names: `pass%77ord` is a password too.
        Some((k, _)) if percent_decoded(k).eq_ignore_ascii_case(b"password") => {
            format!("{k}=***")
        }
        _ => param.to_string(),
    }
}

fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match parse_url(url) {
            Err(RegistryError::StorageUrl(m)) => m,
            Err(other) => panic!("{url}: expected a URL error, got {other}"),
            Ok(_) => panic!("{url}: expected a URL error"),
        }
    }

    /// A TLS setting is never dropped silently: spelt with percent-escapes it is still read,
    /// and in the key=value form (which this module does not parse) it is refused.
    #[test]
    fn tls_settings_are_read_however_they_are_spelt_or_refused() {
        let t = parse_url("postgres://xtt@db.example/xtt?ssl%6dode=require").unwrap();
        assert_eq!(t.mode, TlsMode::EncryptOnly);
        assert!(err("postgres://xtt@db.example/xtt?ssl%6dode=verify-full").contains("sslrootcert"));
        assert!(err("host=db.example user=xtt sslmode=require").contains("postgres:// URL"));
        assert_eq!(
            parse_url("host=/run/postgresql user=xtt dbname=xtt")
                .unwrap()
                .mode,
            TlsMode::Off
        );
    }

    #[test]
    fn clear_text_to_another_machine_is_reported_unless_asked_for() {
        let warn = implicit_plaintext("postgres://xtt@db.example/xtt").unwrap();
        assert!(
            warn.contains("db.example") && warn.contains("not encrypted"),
            "{warn}"
        );
        assert!(implicit_plaintext("postgres://xtt@db.example/xtt?sslmode=prefer").is_some());
        for quiet in [
            "postgres://xtt@db.example/xtt?sslmode=disable",
            "postgres://xtt@db.example/xtt?ssl%6dode=disable",
            "postgres://xtt@127.0.0.1:5432/xtt",
            "postgres://xtt@localhost/xtt",
            "postgres://xtt@[::1]:5432/xtt",
            "postgresql:///xtt?host=/run/postgresql",
            "postgres://xtt@db.example/xtt?sslmode=require",
        ] {
            assert_eq!(implicit_plaintext(quiet), None, "{quiet}");
        }
    }

    #[test]
    fn a_password_with_slash_question_mark_or_colon_is_redacted_whole() {
        for password in ["Zm9v/YmFy", "a?b", "x:y", "p/q?r=s&password=t"] {
            let url = format!("postgres://xtt:{password}@db.example:5432/xtt?sslmode=require");
            let shown = redact_url(&url);
            assert_eq!(
                shown, "postgres://xtt:***@db.example:5432/xtt?sslmode=require",
                "{password}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://xtt:s3cr%40t@db.example:5432/xtt?sslmode=require"),
            "postgres://xtt:***@db.example:5432/xtt?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://xtt@db/xtt?password=hunter2&host=/run"),
            "postgresql://xtt@db/xtt?password=***&host=/run"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("sqlite:/var/lib/x.sqlite"),
            "sqlite:/var/lib/x.sqlite"
        );
        assert!(!redact_url("postgres://a:b@c").contains(":b@"));
        // No credentials: a host with a port and an '@' in the query stay readable.
        assert_eq!(
            redact_url("postgres://db/x?application_name=me@host&password=pw"),
            "postgres://db/x?application_name=me@host&password=***"
        );
        // Read as tokio-postgres would (credentials up to the first '@'), this one has the
        // password "5432/x?application_name=me": hidden, and so is the parameter after it.
        assert_eq!(
            redact_url("postgres://db:5432/x?application_name=me@host&password=pw"),
            "postgres://db:***@host&password=***"
        );
    }

    #[test]
    fn what_is_not_a_url_shows_no_more_than_its_scheme() {
        assert_eq!(
            redact_url("postgres:/xtt:hunter2@db.example/xtt"),
            "postgres:***"
        );
        assert_eq!(redact_url("postgresql//xtt:hunter2@db/xtt"), "***");
        assert_eq!(
            redact_url("host=db.example user=xtt password=hunter2"),
            "***"
        );
        assert_eq!(redact_url("user pw@x://db"), "***");
        for url in [
            "postgres://xtt/admin:hunter2@127.0.0.1:1/xtt",
            "postgres://alice@myserver:hunter2@db.example/xtt",
            "postgres://xtt?x:hunter2@db/xtt",
        ] {
            assert!(
                !redact_url(url).contains("hunter2"),
                "{url}: {}",
                redact_url(url)
            );
        }
        assert_eq!(
            redact_url("postgres://xtt@127.0.0.1:1/xtt?pass%77ord=hunter2&PASSWORD%3d=x"),
            "postgres://xtt@127.0.0.1:1/xtt?pass%77ord=***&PASSWORD%3d=x"
        );
        assert_eq!(
            redact_url("postgres://xtt@db/xtt?%70assword=a&%zz=b"),
            "postgres://xtt@db/xtt?%70assword=***&%zz=b"
        );
    }

    #[test]
    fn tls_modes_follow_libpq() {
        let mode = |u: &str| parse_url(u).map(|t| t.mode).map_err(|e| e.to_string());
        assert_eq!(mode("postgres://u@h/db"), Ok(TlsMode::Off));
        assert_eq!(mode("postgres://u@h/db?sslmode=prefer"), Ok(TlsMode::Off));
        assert_eq!(
            mode("postgres://u@h/db?sslmode=require&connect_timeout=3"),
            Ok(TlsMode::EncryptOnly)
        );
        let t = parse_url("postgres://u:pw@h:6543/db?sslmode=require&connect_timeout=3").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config.get_ports(), [6543]);
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert!(err("postgres://u@h/db?sslmode=verify-full").contains("needs sslrootcert"));
        assert!(err("postgres://u@h/db?sslmode=bogus").contains("unknown sslmode"));
        assert!(err("postgres://u@h/db?sslcert=/x").contains("not supported"));
        let m = err("postgres://u:secret@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem");
        assert!(
            m.contains("/nonexistent.pem") && !m.contains("secret"),
            "{m}"
        );
        assert!(err("postgresql:///db?host=/run/pg&sslmode=require").contains("TCP host"));
    }
}
