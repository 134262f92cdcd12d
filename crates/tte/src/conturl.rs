//! Controller URLs (ContURL): where a device is told to go.
//!
//! Allowed schemes: `http`, `https`, `coap`, `coaps` (the draft's), and `xtt://host:port` for
//! this project's XTT server, which hands the device over to XTT identity provisioning (see
//! [`ContUrl::xtt_endpoint`] and the `tte-server` crate's `device::XttHandover`). User info,
//! fragments and over-long URLs are refused: the ContURL is stored, encrypted to devices and
//! shown to people, so it must not carry credentials or surprises.

use std::fmt;

/// Longest ContURL accepted, in bytes.
pub const MAX_CONTURL_LEN: usize = 512;

/// URL scheme of a ContURL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http` (tests and closed networks only).
    Http,
    /// `https`.
    Https,
    /// `coap` (RFC 7252).
    Coap,
    /// `coaps`.
    Coaps,
    /// `xtt://host:port`: this project's XTT provisioning server.
    Xtt,
}

/// A validated ContURL.
#[derive(Clone, PartialEq, Eq)]
pub struct ContUrl {
    url: url::Url,
    scheme: Scheme,
}

/// Why a string is not an acceptable ContURL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContUrlError {
    /// Longer than [`MAX_CONTURL_LEN`].
    #[error("controller URL is longer than {MAX_CONTURL_LEN} bytes")]
    TooLong,
    /// Not a URL.
    #[error("controller URL is not a valid URL: {0}")]
    Parse(String),
    /// Scheme not allowed.
    #[error("controller URL scheme {0:?} is not one of http, https, coap, coaps, xtt")]
    Scheme(String),
    /// Missing host, or carries user info or a fragment, or `xtt:` with a path/query/no port.
    #[error("controller URL {0}")]
    Shape(&'static str),
}

impl ContUrl {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<Self, ContUrlError> {
        let s = s.trim();
        if s.len() > MAX_CONTURL_LEN {
            return Err(ContUrlError::TooLong);
        }
        let url = url::Url::parse(s).map_err(|e| ContUrlError::Parse(e.to_string()))?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "coap" => Scheme::Coap,
            "coaps" => Scheme::Coaps,
            "xtt" => Scheme::Xtt,
            other => return Err(ContUrlError::Scheme(other.into())),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ContUrlError::Shape("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ContUrlError::Shape(
                "must not carry a user name or password",
            ));
        }
        if url.fragment().is_some() {
            return Err(ContUrlError::Shape("must not have a fragment"));
        }
        if scheme == Scheme::Xtt {
            if url.port().is_none() {
                return Err(ContUrlError::Shape(
                    "xtt: must name a port (xtt://host:port)",
                ));
            }
            if !matches!(url.path(), "" | "/") || url.query().is_some() {
                return Err(ContUrlError::Shape("xtt: must be exactly xtt://host:port"));
            }
        }
        Ok(Self { url, scheme })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The URL text as stored and sent to devices.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// `(host, port)` when this is an `xtt://host:port` hand-over to XTT provisioning.
    pub fn xtt_endpoint(&self) -> Option<(String, u16)> {
        if self.scheme != Scheme::Xtt {
            return None;
        }
        Some((self.url.host_str()?.to_owned(), self.url.port()?))
    }

    /// For HTTP(S) controllers, the URL of one of its well-known TTE resources, e.g.
    /// `well_known("alive")`. Well-known resources live at the origin's root (RFC 8615), so any
    /// path in the ContURL is ignored here. `None` for CoAP and XTT.
    pub fn well_known(&self, rest: &str) -> Option<String> {
        match self.scheme {
            Scheme::Http | Scheme::Https => Some(format!(
                "{}/.well-known/tte1/{rest}",
                self.url.origin().ascii_serialization()
            )),
            _ => None,
        }
    }
}

impl fmt::Display for ContUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ContUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContUrl({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        for ok in [
            "http://127.0.0.1:8080",
            "https://c.example/x",
            "coap://[::1]",
            "coaps://c",
            "xtt://c.example:4443",
        ] {
            ContUrl::parse(ok).unwrap();
        }
        let x = ContUrl::parse("xtt://c.example:4443").unwrap();
        assert_eq!(x.xtt_endpoint(), Some(("c.example".into(), 4443)));
        assert_eq!(x.well_known("alive"), None);
        let h = ContUrl::parse("https://c.example/tenant").unwrap();
        assert_eq!(
            h.well_known("alive").unwrap(),
            "https://c.example/.well-known/tte1/alive"
        );
        assert!(matches!(
            ContUrl::parse("ftp://x"),
            Err(ContUrlError::Scheme(_))
        ));
        assert!(matches!(
            ContUrl::parse("javascript:alert(1)"),
            Err(ContUrlError::Scheme(_))
        ));
        assert!(matches!(
            ContUrl::parse("xtt://c.example"),
            Err(ContUrlError::Shape(_))
        ));
        assert!(matches!(
            ContUrl::parse("xtt://c:1/p"),
            Err(ContUrlError::Shape(_))
        ));
        assert!(matches!(
            ContUrl::parse("https://u:p@c"),
            Err(ContUrlError::Shape(_))
        ));
        assert!(matches!(
            ContUrl::parse("https://c/#f"),
            Err(ContUrlError::Shape(_))
        ));
        assert!(matches!(
            ContUrl::parse("not a url"),
            Err(ContUrlError::Parse(_))
        ));
    }
}
