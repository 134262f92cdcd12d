//! Share URLs: `https://{host}/v1/m/{uuid}?v={a|h|c}#{secret}` (draft-vinokurov-tigress-http-00
//! §7.3). The fragment carries the Secret and is removed before any request to the relay.

use crate::proto::secret::{CryptoError, Secret};
use crate::proto::wire::API_VERSION;
use std::fmt;
use url::Url;
use uuid::Uuid;

/// Credential vertical query parameter `v` (draft §7.3.1), used to route the link to an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vertical {
    /// `a` (or absent): general access.
    GeneralAccess,
    /// `h`: home key.
    HomeKey,
    /// `c`: car key.
    CarKey,
}

impl Vertical {
    /// The query value.
    pub fn code(self) -> &'static str {
        match self {
            Vertical::GeneralAccess => "a",
            Vertical::HomeKey => "h",
            Vertical::CarKey => "c",
        }
    }

    /// Parses `a`, `h` or `c`.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "a" => Some(Vertical::GeneralAccess),
            "h" => Some(Vertical::HomeKey),
            "c" => Some(Vertical::CarKey),
            _ => None,
        }
    }
}

/// Why a share URL was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareUrlError {
    #[error("not a URL: {0}")]
    Syntax(String),
    #[error("the relay must be reached over https or http, not {0}")]
    Scheme(String),
    #[error("the path must end in /{API_VERSION}/m/<mailbox UUID>")]
    Path,
    #[error("unknown credential vertical v={0} (expected a, h or c)")]
    Vertical(String),
    #[error("the secret in the URL fragment is invalid: {0}")]
    Secret(CryptoError),
    #[error("the URL has no secret in its fragment; pass it separately")]
    NoSecret,
}

/// A parsed share URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareUrl {
    mailbox: Url,
    id: Uuid,
    vertical: Option<Vertical>,
    secret: Option<Secret>,
}

impl fmt::Debug for ShareUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareUrl")
            .field("mailbox", &self.mailbox.as_str())
            .field("vertical", &self.vertical)
            .field("secret", &self.secret)
            .finish()
    }
}

impl ShareUrl {
    /// From the relay's `urlLink` (which must be a mailbox URL) plus what the sender adds.
    pub fn new(
        url_link: &str,
        vertical: Option<Vertical>,
        secret: Option<Secret>,
    ) -> Result<Self, ShareUrlError> {
        let mut parsed = ShareUrl::parse(url_link)?;
        parsed.vertical = vertical;
        parsed.secret = secret;
        Ok(parsed)
    }

    /// Parses a share URL, taking the secret (if any) out of the fragment.
    pub fn parse(text: &str) -> Result<Self, ShareUrlError> {
        let mut url = Url::parse(text.trim()).map_err(|e| ShareUrlError::Syntax(e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ShareUrlError::Scheme(url.scheme().to_owned()));
        }
        let secret = match url.fragment() {
            None | Some("") => None,
            Some(fragment) => Some(Secret::decode(fragment).map_err(ShareUrlError::Secret)?),
        };
        url.set_fragment(None);
        let mut vertical = None;
        for (key, value) in url.query_pairs() {
            if key == "v" {
                vertical = Some(
                    Vertical::from_code(&value)
                        .ok_or_else(|| ShareUrlError::Vertical(value.into_owned()))?,
                );
            }
        }
        url.set_query(None);
        let segments: Vec<&str> = url.path_segments().ok_or(ShareUrlError::Path)?.collect();
        let id = match segments.as_slice() {
            [.., version, "m", id] if *version == API_VERSION => {
                Uuid::try_parse(id).map_err(|_| ShareUrlError::Path)?
            }
            _ => return Err(ShareUrlError::Path),
        };
        Ok(ShareUrl {
            mailbox: url,
            id,
            vertical,
            secret,
        })
    }

    /// The mailbox identifier.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The vertical, if the link named one.
    pub fn vertical(&self) -> Option<Vertical> {
        self.vertical
    }

    /// The secret from the fragment, if any.
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// The secret or [`ShareUrlError::NoSecret`].
    pub fn require_secret(&self) -> Result<&Secret, ShareUrlError> {
        self.secret.as_ref().ok_or(ShareUrlError::NoSecret)
    }

    /// What the client sends requests to: no query, no fragment.
    pub fn api_url(&self) -> &Url {
        &self.mailbox
    }

    /// The full link, secret included: hand this to the Recipient only.
    pub fn to_link(&self) -> zeroize::Zeroizing<String> {
        let mut url = self.mailbox.clone();
        if let Some(v) = self.vertical {
            url.set_query(Some(&format!("v={}", v.code())));
        }
        if let Some(secret) = &self.secret {
            url.set_fragment(Some(&secret.encode()));
        }
        zeroize::Zeroizing::new(url.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_example_car_key() {
        let link = "https://relayserver.example.com/v1/m/2bba630e-519b-11ec-bf63-0242ac130002?v=c#hXlr6aRC7KgJpOLTNZaLsw==";
        let s = ShareUrl::parse(link).unwrap();
        assert_eq!(s.vertical(), Some(Vertical::CarKey));
        assert_eq!(
            s.api_url().as_str(),
            "https://relayserver.example.com/v1/m/2bba630e-519b-11ec-bf63-0242ac130002"
        );
        assert_eq!(s.id().to_string(), "2bba630e-519b-11ec-bf63-0242ac130002");
        assert_eq!(
            s.to_link().as_str(),
            "https://relayserver.example.com/v1/m/2bba630e-519b-11ec-bf63-0242ac130002?v=c#hXlr6aRC7KgJpOLTNZaLsw"
        );
        assert_eq!(ShareUrl::parse(&s.to_link()).unwrap(), s);
    }

    #[test]
    fn prefix_paths_and_no_secret() {
        let s =
            ShareUrl::parse("http://127.0.0.1:9/relay/v1/m/2bba630e-519b-11ec-bf63-0242ac130002")
                .unwrap();
        assert_eq!(s.vertical(), None);
        assert_eq!(s.require_secret(), Err(ShareUrlError::NoSecret));
    }

    #[test]
    fn rejects() {
        for (bad, want) in [
            (
                "ftp://h/v1/m/2bba630e-519b-11ec-bf63-0242ac130002",
                "Scheme",
            ),
            (
                "https://h/v2/m/2bba630e-519b-11ec-bf63-0242ac130002",
                "Path",
            ),
            ("https://h/v1/m/not-a-uuid", "Path"),
            (
                "https://h/v1/m/2bba630e-519b-11ec-bf63-0242ac130002?v=x",
                "Vertical",
            ),
            (
                "https://h/v1/m/2bba630e-519b-11ec-bf63-0242ac130002#AAAA",
                "Secret",
            ),
            ("not a url", "Syntax"),
        ] {
            let err = ShareUrl::parse(bad).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{bad}: {err:?}");
        }
    }
}
