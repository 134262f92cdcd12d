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

    /// The suite-1 vector's assigned ClientID and the C tool's text form of it, read from
    /// `../shared/vectors` (never copied into source).
    fn c_assigned_id() -> (ClientId, String) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vectors/xtt_id_handshake_suite1.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let json: serde_json::Value = serde_json::from_str(&text).expect("vector JSON");
        let field = |name: &str| {
            json["result"][name]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: missing result.{name}"))
                .to_owned()
        };
        let bytes = hex::decode(field("assigned_client_id")).expect("hex ClientID");
        let id = ClientId(bytes.try_into().expect("16-byte ClientID"));
        (id, field("assigned_client_id_string"))
    }

    #[test]
    fn formats_as_upper_case_groups() {
        let (id, c_text) = c_assigned_id();
        assert_eq!(id.to_string(), c_text);
        assert_eq!(c_text.parse(), Ok(id));
        // Lower-case digits parse too, also mixed with upper-case groups.
        let lower = c_text.to_lowercase();
        assert_eq!(lower.parse(), Ok(id));
        let mixed = c_text
            .split(':')
            .enumerate()
            .map(|(i, g)| {
                if i % 2 == 1 {
                    g.to_lowercase()
                } else {
                    g.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(":");
        assert!(mixed != c_text && mixed != lower, "{mixed}: not mixed case");
        assert_eq!(mixed.parse(), Ok(id));
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
