//! Device URNs (`DevURN`), e.g. `urn:dev:mac:90a2da001a0c` (RFC 9039 `urn:dev`).
//!
//! A DevURN travels in URL paths, JWE protected headers, file names and LED frames, so we accept
//! only a conservative subset of RFC 8141: `urn:` (any case), then a namespace identifier and a
//! namespace-specific string of ASCII letters, digits and `:-._~`, at most 128 bytes in all. No
//! percent-escapes, no `/`, `?` or `#`: the string is then identical in every one of those places
//! and needs no escaping anywhere.

use std::fmt;
use std::str::FromStr;

/// Longest DevURN we accept, in bytes; the LED frame's one-byte length limits it to 255 anyway.
pub const MAX_URN_LEN: usize = 128;

/// A validated device URN.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevUrn(String);

/// Why a string is not a DevURN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrnError {
    /// Longer than [`MAX_URN_LEN`].
    #[error("device URN is {0} bytes long; at most {MAX_URN_LEN} are allowed")]
    TooLong(usize),
    /// Does not start with `urn:NID:`.
    #[error("device URN must look like `urn:<namespace>:<id>` (e.g. urn:dev:mac:90a2da001a0c)")]
    Shape,
    /// Holds a byte outside `A-Za-z0-9:-._~`.
    #[error("device URN holds the character {0:?}; only letters, digits and `:-._~` are allowed")]
    BadChar(char),
}

impl DevUrn {
    /// Validates `s` as a DevURN.
    pub fn parse(s: &str) -> Result<Self, UrnError> {
        if s.len() > MAX_URN_LEN {
            return Err(UrnError::TooLong(s.len()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '.' | '_' | '~')))
        {
            return Err(UrnError::BadChar(c));
        }
        let mut parts = s.splitn(3, ':');
        let scheme = parts.next().unwrap_or_default();
        let nid = parts.next().unwrap_or_default();
        let nss = parts.next().unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("urn")
            || nid.is_empty()
            || nid.len() > 32
            || !nid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || nss.is_empty()
        {
            return Err(UrnError::Shape);
        }
        Ok(Self(s.to_owned()))
    }

    /// The URN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name safe to use as a file name stem (`:` becomes `_`).
    pub fn file_stem(&self) -> String {
        self.0.replace(':', "_")
    }
}

impl FromStr for DevUrn {
    type Err = UrnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DevUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DevUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevUrn({})", self.0)
    }
}

impl serde::Serialize for DevUrn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DevUrn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_mac_urn() {
        let u = DevUrn::parse("urn:dev:mac:90a2da001a0c").unwrap();
        assert_eq!(u.as_str(), "urn:dev:mac:90a2da001a0c");
        assert_eq!(u.file_stem(), "urn_dev_mac_90a2da001a0c");
    }

    #[test]
    fn rejects_bad_shapes() {
        for s in [
            "",
            "urn:",
            "urn:dev",
            "urn:dev:",
            "dev:mac:1",
            "urn::x",
            "url:dev:x",
        ] {
            assert_eq!(DevUrn::parse(s), Err(UrnError::Shape), "{s}");
        }
        assert_eq!(DevUrn::parse("urn:dev:a/b"), Err(UrnError::BadChar('/')));
        assert_eq!(DevUrn::parse("urn:dev:a%2f"), Err(UrnError::BadChar('%')));
        assert_eq!(DevUrn::parse("urn:dev:a#b"), Err(UrnError::BadChar('#')));
        let long = format!("urn:dev:{}", "a".repeat(MAX_URN_LEN));
        assert!(matches!(DevUrn::parse(&long), Err(UrnError::TooLong(_))));
    }
}
