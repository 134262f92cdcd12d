//! SenML packs in JSON (RFC 8428): what devices report to their Controller.
//!
//! [`Pack::resolve`] applies the base fields (§4.5) and checks what §4.5.1 and §4.6 require: a
//! non-empty name from the allowed characters, exactly one value (or a sum), finite numbers,
//! including the sums of base and record values and times.
//!
//! Base fields are copied into every record they apply to, so a short pack can resolve into
//! much more than it carries (a long `bn` and a thousand records). The resolved names and units
//! are therefore bounded, each and in total: a reading stored by a Controller costs at most a
//! small multiple of the request that brought it.

use serde::{Deserialize, Serialize};

/// Media type (RFC 8428 §12.3).
pub const MEDIA_TYPE: &str = "application/senml+json";

/// Most records accepted in one pack.
pub const MAX_RECORDS: usize = 1000;

/// Longest resolved name (base name and name), in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Longest unit, in bytes (registered SenML units are a few characters).
pub const MAX_UNIT_LEN: usize = 64;

/// Most bytes of resolved names and units in one pack, all records together.
pub const MAX_RESOLVED_LEN: usize = 64 * 1024;

/// Relative times are those below 2^28 seconds (RFC 8428 §4.5.3).
const RELATIVE_LIMIT: f64 = 268_435_456.0;

/// One SenML record as it appears on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Base name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn: Option<String>,
    /// Base time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bt: Option<f64>,
    /// Base unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bu: Option<String>,
    /// Base value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bv: Option<f64>,
    /// Base version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bver: Option<u32>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<String>,
    /// Numeric value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<f64>,
    /// String value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs: Option<String>,
    /// Boolean value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vb: Option<bool>,
    /// Data value (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vd: Option<String>,
    /// Sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<f64>,
    /// Time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<f64>,
    /// Update time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ut: Option<f64>,
}

/// A SenML pack: a JSON array of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pack(pub Vec<Record>);

/// A record with base fields applied and times made absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Full name (base name + name).
    pub name: String,
    /// Unit, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The value.
    pub value: Value,
    /// Absolute time, seconds since the Unix epoch.
    pub time: f64,
}

/// A resolved value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    /// Number (`v`, plus base value).
    Number(f64),
    /// String (`vs`).
    String(String),
    /// Boolean (`vb`).
    Bool(bool),
    /// Data (`vd`, base64url text).
    Data(String),
    /// Sum (`s`).
    Sum(f64),
}

/// Why a pack is not valid SenML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenmlError {
    /// Not a JSON array of records.
    #[error("not a SenML JSON pack: {0}")]
    Json(String),
    /// Empty, or more than [`MAX_RECORDS`].
    #[error("a pack must hold 1 to {MAX_RECORDS} records")]
    Count,
    /// Record `0` has no or a badly formed name.
    #[error("record {0}: name is empty or holds characters outside A-Za-z0-9-:./_")]
    Name(usize),
    /// Record has no value or more than one.
    #[error("record {0}: needs exactly one of v, vs, vb, vd (or a sum s)")]
    Value(usize),
    /// NaN or infinite number.
    #[error("record {0}: numbers must be finite")]
    NotFinite(usize),
    /// Unsupported version (`bver` > 10).
    #[error("record {0}: unsupported SenML version")]
    Version(usize),
    /// A resolved name longer than [`MAX_NAME_LEN`] or a unit longer than [`MAX_UNIT_LEN`].
    #[error(
        "record {0}: name longer than {MAX_NAME_LEN} or unit longer than {MAX_UNIT_LEN} bytes"
    )]
    TooLong(usize),
    /// Names and units that resolve to more than [`MAX_RESOLVED_LEN`] bytes in all.
    #[error("the pack's names and units resolve to more than {MAX_RESOLVED_LEN} bytes")]
    TooLarge,
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '-' | ':' | '.' | '/' | '_'))
}

/// Two finite numbers can add up to infinity (which JSON cannot carry).
fn finite(x: f64, record: usize) -> Result<f64, SenmlError> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(SenmlError::NotFinite(record))
    }
}

impl Pack {
    /// Parses JSON.
    pub fn from_json(b: &[u8]) -> Result<Self, SenmlError> {
        serde_json::from_slice(b).map_err(|e| SenmlError::Json(e.to_string()))
    }

    /// JSON text.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Resolves base fields; relative times count from `now` (seconds since the epoch).
    pub fn resolve(&self, now: f64) -> Result<Vec<Reading>, SenmlError> {
        if self.0.is_empty() || self.0.len() > MAX_RECORDS {
            return Err(SenmlError::Count);
        }
        let (mut bn, mut bt, mut bu, mut bv) = (String::new(), 0.0, None::<String>, 0.0);
        let mut out = Vec::with_capacity(self.0.len());
        let mut resolved_len = 0usize;
        for (i, r) in self.0.iter().enumerate() {
            if r.bver.is_some_and(|v| v > 10) {
                return Err(SenmlError::Version(i));
            }
            if let Some(x) = &r.bn {
                bn.clone_from(x);
            }
            if let Some(x) = r.bt {
                bt = x;
            }
            if let Some(x) = &r.bu {
                bu = Some(x.clone());
            }
            if let Some(x) = r.bv {
                bv = x;
            }
            let nums = [Some(bt), Some(bv), r.v, r.s, r.t, r.ut];
            if nums.iter().flatten().any(|x| !x.is_finite()) {
                return Err(SenmlError::NotFinite(i));
            }
            let name_len = bn.len() + r.n.as_deref().map_or(0, str::len);
            let unit = r.u.as_ref().or(bu.as_ref());
            let unit_len = unit.map_or(0, String::len);
            if name_len > MAX_NAME_LEN || unit_len > MAX_UNIT_LEN {
                return Err(SenmlError::TooLong(i));
            }
            resolved_len += name_len + unit_len;
            if resolved_len > MAX_RESOLVED_LEN {
                return Err(SenmlError::TooLarge);
            }
            let name = format!("{bn}{}", r.n.as_deref().unwrap_or(""));
            if !valid_name(&name) {
                return Err(SenmlError::Name(i));
            }
            let value = match (r.v, &r.vs, r.vb, &r.vd, r.s) {
                (Some(v), None, None, None, _) => Value::Number(finite(bv + v, i)?),
                (None, Some(s), None, None, _) => Value::String(s.clone()),
                (None, None, Some(b), None, _) => Value::Bool(b),
                (None, None, None, Some(d), _) => Value::Data(d.clone()),
                (None, None, None, None, Some(s)) => Value::Sum(s),
                _ => return Err(SenmlError::Value(i)),
            };
            let t = finite(bt + r.t.unwrap_or(0.0), i)?;
            let time = if t.abs() < RELATIVE_LIMIT {
                finite(now + t, i)?
            } else {
                t
            };
            out.push(Reading {
                name,
                unit: unit.cloned(),
                value,
                time,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8428_example_resolves() {
        // RFC 8428 §5.1.2 style: base name, base time, two records.
        let j = br#"[{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.320067464e+09,"bu":"%RH","v":20},
                     {"u":"lon","v":24.30621},{"n":"temp","u":"Cel","t":60,"v":23.1}]"#;
        let r = Pack::from_json(j).unwrap().resolve(0.0).unwrap();
        assert_eq!(r[0].name, "urn:dev:ow:10e2073a01080063:");
        assert_eq!(r[0].unit.as_deref(), Some("%RH"));
        assert_eq!(r[2].name, "urn:dev:ow:10e2073a01080063:temp");
        assert_eq!(r[2].time, 1.320067524e9);
        assert_eq!(r[2].value, Value::Number(23.1));
    }

    #[test]
    fn relative_time_and_errors() {
        let p = Pack(vec![Record {
            n: Some("t".into()),
            v: Some(1.0),
            t: Some(-5.0),
            ..Default::default()
        }]);
        assert_eq!(p.resolve(1000.0).unwrap()[0].time, 995.0);
        let two = Pack(vec![Record {
            n: Some("t".into()),
            v: Some(1.0),
            vb: Some(true),
            ..Default::default()
        }]);
        assert_eq!(two.resolve(0.0), Err(SenmlError::Value(0)));
        let noname = Pack(vec![Record {
            v: Some(1.0),
            ..Default::default()
        }]);
        assert_eq!(noname.resolve(0.0), Err(SenmlError::Name(0)));
        let bad = Pack(vec![Record {
            n: Some("-x".into()),
            v: Some(1.0),
            ..Default::default()
        }]);
        assert_eq!(bad.resolve(0.0), Err(SenmlError::Name(0)));
        assert_eq!(Pack(vec![]).resolve(0.0), Err(SenmlError::Count));
        assert!(matches!(Pack::from_json(b"{}"), Err(SenmlError::Json(_))));
    }

    #[test]
    fn sums_that_overflow_are_refused() {
        let j = br#"[{"bn":"x","bv":1e308,"v":1e308}]"#;
        let p = Pack::from_json(j).unwrap();
        assert_eq!(p.resolve(0.0), Err(SenmlError::NotFinite(0)));
        let j = br#"[{"bn":"x","bt":1.7e308,"t":1.7e308,"v":1}]"#;
        let p = Pack::from_json(j).unwrap();
        assert_eq!(p.resolve(0.0), Err(SenmlError::NotFinite(0)));
    }

    #[test]
    fn base_fields_cannot_blow_a_small_pack_up() {
        let record = |n: Option<&str>, u: Option<&str>| Record {
            n: n.map(Into::into),
            u: u.map(Into::into),
            v: Some(1.0),
            ..Default::default()
        };
        let at_limit = "a".repeat(MAX_NAME_LEN);
        assert!(Pack(vec![record(Some(&at_limit), None)])
            .resolve(0.0)
            .is_ok());
        let long = "a".repeat(MAX_NAME_LEN - 1);
        let mut p = Pack(vec![Record {
            bn: Some(long),
            ..record(Some("bc"), None)
        }]);
        assert_eq!(p.resolve(0.0), Err(SenmlError::TooLong(0)));
        let unit = "u".repeat(MAX_UNIT_LEN + 1);
        p = Pack(vec![record(Some("a"), Some(&unit))]);
        assert_eq!(p.resolve(0.0), Err(SenmlError::TooLong(0)));
        // Each record within its limits, the pack not: a 200-byte base name over 400 records.
        let mut records = vec![Record {
            bn: Some("b".repeat(200)),
            ..record(None, None)
        }];
        records.extend((1..400).map(|_| record(None, None)));
        assert_eq!(Pack(records).resolve(0.0), Err(SenmlError::TooLarge));
    }
}
