//! ClientID: 16 opaque bytes; all zero is the null identity ("server, choose").

use core::fmt;
use core::str::FromStr;

use subtle::ConstantTimeEq;

/// Size of a ClientID.
pub const CLIENT_ID_LEN: usize = 16;

/// A client identity. Text form (the `xtt` tool's): 8 groups of 4 upper-case hex digits separated
/// by `:`, e.g. `9755:EFB9:F36A:589D:8143:4869:98FE:01A7`.
// Equality is plain byte equality, only computed in constant time, so it agrees with the
// derived Hash.
#[allow(clippy::derived_hash_with_manual_eq)]
#[derive(Clone, Copy, Hash)]
pub struct ClientId(pub [u8; CLIENT_ID_LEN]);

impl ClientId {
    /// The null identity (16 zero bytes).
    pub const NULL: ClientId = ClientId([0; CLIENT_ID_LEN]);

    /// Whether this is the null identity.
    pub fn is_null(&self) -> bool {
        bool::from(self.0.ct_eq(&[0u8; CLIENT_ID_LEN]))
    }
}

impl PartialEq for ClientId {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}
impl Eq for ClientId {}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            for b in pair {
                write!(f, "{b:02X}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({self})")
    }
}

/// The text form did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid ClientID text (expected XXXX:XXXX:XXXX:XXXX:XXXX:XXXX:XXXX:XXXX)")]
pub struct ParseClientIdError;

impl FromStr for ClientId {
    type Err = ParseClientIdError;

    /// Accepts upper- or lower-case hex; exactly 8 groups of 4 digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; CLIENT_ID_LEN];
        let mut groups = 0usize;
        for (i, group) in s.split(':').enumerate() {
            let g = group.as_bytes();
            if g.len() != 4 || i >= 8 {
                return Err(ParseClientIdError);
            }
            let v = u16::from_str_radix(group, 16).map_err(|_| ParseClientIdError)?;
            if !g.iter().all(u8::is_ascii_hexdigit) {
                return Err(ParseClientIdError);
            }
            let [hi, lo] = v.to_be_bytes();
            if let Some(dst) = out.get_mut(2 * i..2 * i + 2) {
                dst.copy_from_slice(&[hi, lo]);
            }
            groups += 1;
        }
        if groups != 8 {
            return Err(ParseClientIdError);
        }
        Ok(ClientId(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_upper_case_groups() {
        let id = ClientId([
            0x97, 0x55, 0xef, 0xb9, 0xf3, 0x6a, 0x58, 0x9d, 0x81, 0x43, 0x48, 0x69, 0x98, 0xfe,
            0x01, 0xa7,
        ]);
        assert_eq!(id.to_string(), "9755:EFB9:F36A:589D:8143:4869:98FE:01A7");
        assert_eq!("9755:efb9:F36A:589D:8143:4869:98FE:01A7".parse(), Ok(id));
    }

    #[test]
    fn rejects_malformed_text() {
        for s in [
            "",
            "9755:EFB9:F36A:589D:8143:4869:98FE",
            "9755:EFB9:F36A:589D:8143:4869:98FE:01A7:0000",
            "9755:EFB9:F36A:589D:8143:4869:98FE:01A",
            "+755:EFB9:F36A:589D:8143:4869:98FE:01A7",
            "9755EFB9F36A589D8143486998FE01A7",
        ] {
            assert_eq!(s.parse::<ClientId>(), Err(ParseClientIdError), "{s}");
        }
    }

    #[test]
    fn null_identity_is_all_zero() {
        assert!(ClientId::NULL.is_null());
        assert!(!ClientId([1; 16]).is_null());
    }
}
