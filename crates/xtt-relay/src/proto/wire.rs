//! JSON bodies and HTTP header names of the relay API (draft-vinokurov-tigress-http-00 §5–§6),
//! and their validation into typed values.
//!
//! Field names follow the draft exactly (`displayInformation`, `imageURL`, `tokenData`,
//! `mailboxConfiguration`, `accessRights`, `urlLink`, `isPushNotificationSupported`). Unknown
//! fields are ignored so that newer clients keep working.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// API version segment of every path.
pub const API_VERSION: &str = "v1";
/// Idempotency key and request/response correlation (draft §5.1).
pub const HEADER_REQUEST_ID: &str = "mailbox-request-id";
/// The caller's device claim, a client-chosen UUID (draft §5.2).
pub const HEADER_DEVICE_CLAIM: &str = "mailbox-device-claim";
/// Opaque OEM attestation, stored with the mailbox (draft §5.3).
pub const HEADER_DEVICE_ATTESTATION: &str = "mailbox-device-attestation";

/// Largest accepted `Mailbox-Request-ID` (the draft says "SHOULD be a UUID"; we accept any
/// short visible-ASCII token).
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Largest stored attestation header.
pub const MAX_ATTESTATION_LEN: usize = 8 * 1024;
const MAX_TITLE_LEN: usize = 256;
const MAX_DESCRIPTION_LEN: usize = 2048;
const MAX_URL_LEN: usize = 2048;
const MAX_TOKEN_FIELD_LEN: usize = 4096;
/// AES-GCM IV (96 bits) and tag (128 bits): the smallest well-formed sealed payload.
pub const MIN_SEALED_LEN: usize = 12 + 16;

/// Standard base64 (draft: "BASE64-encoded"), padding optional on input, emitted on output.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a request was rejected as malformed (HTTP 400, or 413 for [`WireError::TooLarge`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("request body is not valid JSON for this endpoint: {0}")]
    Json(String),
    #[error("header {0} is required")]
    MissingHeader(&'static str),
    #[error("header {0} is malformed: {1}")]
    BadHeader(&'static str, &'static str),
    #[error("payload.data is not valid base64")]
    PayloadEncoding,
    #[error("payload.data is too short to hold an AES-GCM IV and tag")]
    PayloadTooShort,
    #[error("payload.data is larger than the relay accepts ({max} bytes)")]
    TooLarge { max: usize },
    #[error("field {field} is invalid: {why}")]
    Field {
        field: &'static str,
        why: &'static str,
    },
    #[error("accessRights must be a non-empty combination of R, W and D, each at most once")]
    AccessRights,
    #[error("expiration must be an RFC 3339 date-time such as 2030-01-01T00:00:00Z")]
    ExpirationFormat,
    #[error("expiration is not in the future")]
    ExpirationPast,
}

/// AEAD algorithm of a sealed payload (draft §7.2: both mandatory to implement).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    #[serde(rename = "AEAD_AES_128_GCM")]
    Aes128Gcm,
    #[serde(rename = "AEAD_AES_256_GCM")]
    Aes256Gcm,
}

impl PayloadType {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            PayloadType::Aes128Gcm => 16,
            PayloadType::Aes256Gcm => 32,
        }
    }

    /// The draft's name, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadType::Aes128Gcm => "AEAD_AES_128_GCM",
            PayloadType::Aes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Inverse of [`PayloadType::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AEAD_AES_128_GCM" => Some(PayloadType::Aes128Gcm),
            "AEAD_AES_256_GCM" => Some(PayloadType::Aes256Gcm),
            _ => None,
        }
    }
}

/// `payload` as it travels: `{type, data: base64(iv ‖ ciphertext ‖ tag)}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    #[serde(rename = "type")]
    pub kind: PayloadType,
    pub data: String,
}

/// A payload with its bytes decoded: what the relay stores and the client decrypts.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPayload {
    pub kind: PayloadType,
    /// `iv ‖ ciphertext ‖ tag`.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for SealedPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedPayload")
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl SealedPayload {
    /// The JSON form.
    pub fn to_wire(&self) -> Payload {
        Payload {
            kind: self.kind,
            data: B64.encode(&self.bytes),
        }
    }
}

impl Payload {
    /// Decodes and checks the size bounds (`max` is the relay's limit on decoded bytes).
    pub fn decode(&self, max: usize) -> Result<SealedPayload, WireError> {
        // Cheap bound before decoding: base64 expands by 4/3.
        if self.data.len() > max.saturating_mul(4) / 3 + 4 {
            return Err(WireError::TooLarge { max });
        }
        let bytes = B64
            .decode(self.data.as_bytes())
            .map_err(|_| WireError::PayloadEncoding)?;
        if bytes.len() > max {
            return Err(WireError::TooLarge { max });
        }
        if bytes.len() < MIN_SEALED_LEN {
            return Err(WireError::PayloadTooShort);
        }
        Ok(SealedPayload {
            kind: self.kind,
            bytes,
        })
    }
}

/// Public preview of the credential (draft §6.1); never encrypted, shown in link previews.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DisplayInformation {
    pub title: String,
    pub description: String,
    #[serde(rename = "imageURL")]
    pub image_url: String,
}

impl DisplayInformation {
    /// Bounds every field and requires an absolute http(s) image URL (it ends up in an HTML
    /// attribute and in messaging apps' previews).
    pub fn validate(&self) -> Result<(), WireError> {
        bounded("displayInformation.title", &self.title, MAX_TITLE_LEN)?;
        bounded(
            "displayInformation.description",
            &self.description,
            MAX_DESCRIPTION_LEN,
        )?;
        bounded("displayInformation.imageURL", &self.image_url, MAX_URL_LEN)?;
        let parsed = url::Url::parse(&self.image_url).map_err(|_| WireError::Field {
            field: "displayInformation.imageURL",
            why: "not an absolute URL",
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(WireError::Field {
                field: "displayInformation.imageURL",
                why: "scheme must be https or http",
            });
        }
        Ok(())
    }
}

/// Push token of one side (draft §6.1 `notificationToken`).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct NotificationToken {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "tokenData")]
    pub token_data: String,
}

impl fmt::Debug for NotificationToken {
    // Tokens address a device: keep them out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationToken")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl NotificationToken {
    fn validate(&self) -> Result<(), WireError> {
        bounded("notificationToken.type", &self.kind, MAX_TOKEN_FIELD_LEN)?;
        bounded(
            "notificationToken.tokenData",
            &self.token_data,
            MAX_TOKEN_FIELD_LEN,
        )
    }
}

/// `mailboxConfiguration`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MailboxConfiguration {
    #[serde(
        rename = "accessRights",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub access_rights: Option<String>,
    pub expiration: String,
}

/// Which operations both parties may perform (draft: "combination of R, W, D", default "RD").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccessRights {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
}

impl AccessRights {
    /// The draft's default.
    pub const DEFAULT: AccessRights = AccessRights {
        read: true,
        write: false,
        delete: true,
    };
    /// What the three-message confirm flow needs.
    pub const ALL: AccessRights = AccessRights {
        read: true,
        write: true,
        delete: true,
    };

    /// Parses "R", "RD", "RWD", ... in any order; each letter at most once.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let mut rights = AccessRights {
            read: false,
            write: false,
            delete: false,
        };
        if text.is_empty() {
            return Err(WireError::AccessRights);
        }
        for c in text.chars() {
            let slot = match c {
                'R' => &mut rights.read,
                'W' => &mut rights.write,
                'D' => &mut rights.delete,
                _ => return Err(WireError::AccessRights),
            };
            if *slot {
                return Err(WireError::AccessRights);
            }
            *slot = true;
        }
        Ok(rights)
    }
}

impl fmt::Display for AccessRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [(self.read, "R"), (self.write, "W"), (self.delete, "D")] {
            if on {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// `POST /v1/m` body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateMailboxRequest {
    pub payload: Payload,
    #[serde(rename = "displayInformation")]
    pub display_information: DisplayInformation,
    #[serde(
        rename = "notificationToken",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub notification_token: Option<NotificationToken>,
    #[serde(
        rename = "mailboxConfiguration",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub mailbox_configuration: Option<MailboxConfiguration>,
}

/// `POST /v1/m` reply (200, and 201 for a duplicate request, which carries the same link).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateMailboxResponse {
    #[serde(rename = "urlLink")]
    pub url_link: String,
    #[serde(rename = "isPushNotificationSupported")]
    pub is_push_notification_supported: bool,
}

/// `PUT /v1/m/{id}` body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpdateMailboxRequest {
    pub payload: Payload,
    #[serde(
        rename = "notificationToken",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub notification_token: Option<NotificationToken>,
}

/// `PUT /v1/m/{id}` reply.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpdateMailboxResponse {
    #[serde(rename = "isPushNotificationSupported")]
    pub is_push_notification_supported: bool,
}

/// Optional `POST /v1/m/{id}` body: the reader may leave its push token (draft §4.3).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ReadMailboxRequest {
    #[serde(
        rename = "notificationToken",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub notification_token: Option<NotificationToken>,
}

/// `POST /v1/m/{id}` reply.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReadSecureContentResponse {
    pub payload: Payload,
    #[serde(rename = "displayInformation")]
    pub display_information: DisplayInformation,
    pub expiration: String,
}

/// Body of every error reply (the draft defines status codes only; this shape is ours).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
}

/// Server-side bounds applied while validating a create request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateLimits {
    /// Largest decoded payload.
    pub max_payload: usize,
    /// Lifetime used when the request has no `mailboxConfiguration`.
    pub default_lifetime_secs: i64,
    /// Expirations further out are capped to `now + max_lifetime_secs`.
    pub max_lifetime_secs: i64,
}

/// A create request after validation, in the units the core works with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedCreate {
    pub payload: SealedPayload,
    pub display: DisplayInformation,
    pub token: Option<NotificationToken>,
    pub rights: AccessRights,
    /// Unix seconds, already capped.
    pub expires_at: i64,
}

impl CreateMailboxRequest {
    /// Checks every field against `limits` at time `now` (Unix seconds).
    pub fn validate(&self, now: i64, limits: &CreateLimits) -> Result<ValidatedCreate, WireError> {
        let payload = self.payload.decode(limits.max_payload)?;
        self.display_information.validate()?;
        if let Some(token) = &self.notification_token {
            token.validate()?;
        }
        let (rights, expires_at) = match &self.mailbox_configuration {
            None => (
                AccessRights::DEFAULT,
                now.saturating_add(limits.default_lifetime_secs),
            ),
            Some(config) => {
                let rights = match &config.access_rights {
                    None => AccessRights::DEFAULT,
                    Some(text) => AccessRights::parse(text)?,
                };
                let at = parse_timestamp(&config.expiration)?;
                if at <= now {
                    return Err(WireError::ExpirationPast);
                }
                (rights, at.min(now.saturating_add(limits.max_lifetime_secs)))
            }
        };
        Ok(ValidatedCreate {
            payload,
            display: self.display_information.clone(),
            token: self.notification_token.clone(),
            rights,
            expires_at,
        })
    }
}

impl UpdateMailboxRequest {
    /// Decodes the payload and checks the token.
    pub fn validate(
        &self,
        max_payload: usize,
    ) -> Result<(SealedPayload, Option<NotificationToken>), WireError> {
        let payload = self.payload.decode(max_payload)?;
        if let Some(token) = &self.notification_token {
            token.validate()?;
        }
        Ok((payload, self.notification_token.clone()))
    }
}

impl ReadMailboxRequest {
    /// Checks the token, if any.
    pub fn validate(&self) -> Result<Option<NotificationToken>, WireError> {
        if let Some(token) = &self.notification_token {
            token.validate()?;
        }
        Ok(self.notification_token.clone())
    }
}

/// RFC 3339 to Unix seconds; any offset is accepted and normalised to UTC.
pub fn parse_timestamp(text: &str) -> Result<i64, WireError> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| WireError::ExpirationFormat)
}

/// Unix seconds to the draft's `YYYY-MM-DDThh:mm:ssZ`.
pub fn format_timestamp(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => {
            let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
            let (h, mi, s) = (t.hour(), t.minute(), t.second());
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        }
        // Out of time's range: only reachable with absurd stored values; clamp visibly.
        Err(_) => "9999-12-31T23:59:59Z".to_owned(),
    }
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), WireError> {
    if value.is_empty() {
        return Err(WireError::Field {
            field,
            why: "must not be empty",
        });
    }
    if value.len() > max {
        return Err(WireError::Field {
            field,
            why: "too long",
        });
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(WireError::Field {
            field,
            why: "must not contain control characters",
        });
    }
    Ok(())
}

/// Checks a `Mailbox-Request-ID` value.
pub fn validate_request_id(value: &str) -> Result<(), WireError> {
    if value.is_empty() || value.len() > MAX_REQUEST_ID_LEN {
        return Err(WireError::BadHeader(
            "Mailbox-Request-ID",
            "must be 1 to 128 characters",
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WireError::BadHeader(
            "Mailbox-Request-ID",
            "must be visible ASCII",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: CreateLimits = CreateLimits {
        max_payload: 1024,
        default_lifetime_secs: 3600,
        max_lifetime_secs: 86_400,
    };

    fn request(config: Option<MailboxConfiguration>) -> CreateMailboxRequest {
        CreateMailboxRequest {
            payload: Payload {
                kind: PayloadType::Aes128Gcm,
                data: B64.encode([7u8; 40]),
            },
            display_information: DisplayInformation {
                title: "Hotel Pass".into(),
                description: "Some Hotel Pass".into(),
                image_url: "https://example.com/sharingImage".into(),
            },
            notification_token: None,
            mailbox_configuration: config,
        }
    }

    #[test]
    fn draft_example_parses_with_exact_field_names() {
        let text = r#"{
            "displayInformation": {"title": "Hotel Pass", "description": "Some Hotel Pass",
                                   "imageURL": "https://example.com/sharingImage"},
            "payload": {"type": "AEAD_AES_128_GCM", "data": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
            "notificationToken": {"type": "com.apple.apns", "tokenData": "APNS1234"},
            "mailboxConfiguration": {"accessRights": "RWD", "expiration": "2022-02-08T14:57:22Z"}
        }"#;
        let req: CreateMailboxRequest = serde_json::from_str(text).unwrap();
        let now = parse_timestamp("2022-02-08T14:00:00Z").unwrap();
        let v = req.validate(now, &LIMITS).unwrap();
        assert_eq!(v.rights, AccessRights::ALL);
        assert_eq!(format_timestamp(v.expires_at), "2022-02-08T14:57:22Z");
        assert_eq!(v.token.unwrap().kind, "com.apple.apns");
    }

    #[test]
    fn access_rights_grammar() {
        assert_eq!(AccessRights::parse("RD").unwrap(), AccessRights::DEFAULT);
        assert_eq!(AccessRights::parse("DWR").unwrap().to_string(), "RWD");
        for bad in ["", "RR", "X", "rd", "R D"] {
            assert_eq!(
                AccessRights::parse(bad),
                Err(WireError::AccessRights),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expiration_is_required_future_and_capped() {
        let now = 1_700_000_000;
        let cfg = |e: &str| {
            Some(MailboxConfiguration {
                access_rights: None,
                expiration: e.into(),
            })
        };
        assert_eq!(
            request(cfg("yesterday")).validate(now, &LIMITS),
            Err(WireError::ExpirationFormat)
        );
        assert_eq!(
            request(cfg(&format_timestamp(now))).validate(now, &LIMITS),
            Err(WireError::ExpirationPast)
        );
        let far = request(cfg("2100-01-01T00:00:00Z"))
            .validate(now, &LIMITS)
            .unwrap();
        assert_eq!(far.expires_at, now + LIMITS.max_lifetime_secs);
        let default = request(None).validate(now, &LIMITS).unwrap();
        assert_eq!(default.expires_at, now + LIMITS.default_lifetime_secs);
        assert_eq!(default.rights, AccessRights::DEFAULT);
        // The object without expiration is malformed JSON for this endpoint.
        let text = r#"{"payload":{"type":"AEAD_AES_128_GCM","data":""},
            "displayInformation":{"title":"t","description":"d","imageURL":"https://x"},
            "mailboxConfiguration":{"accessRights":"RD"}}"#;
        assert!(serde_json::from_str::<CreateMailboxRequest>(text).is_err());
    }

    #[test]
    fn payload_bounds() {
        let mut req = request(None);
        req.payload.data = B64.encode([0u8; 27]);
        assert_eq!(req.validate(0, &LIMITS), Err(WireError::PayloadTooShort));
        req.payload.data = B64.encode([0u8; 1025]);
        assert_eq!(
            req.validate(0, &LIMITS),
            Err(WireError::TooLarge { max: 1024 })
        );
        req.payload.data = "not base64!".into();
        assert_eq!(req.validate(0, &LIMITS), Err(WireError::PayloadEncoding));
    }

    #[test]
    fn display_information_is_checked() {
        let mut req = request(None);
        req.display_information.image_url = "javascript:alert(1)".into();
        assert!(matches!(
            req.validate(0, &LIMITS),
            Err(WireError::Field { .. })
        ));
        req.display_information.image_url = "https://ok.example/x.png".into();
        req.display_information.title = "a\u{0}b".into();
        assert!(matches!(
            req.validate(0, &LIMITS),
            Err(WireError::Field { .. })
        ));
    }

    #[test]
    fn request_ids() {
        assert!(validate_request_id("6f1c4f5e-0000-4000-8000-000000000000").is_ok());
        assert!(validate_request_id("").is_err());
        assert!(validate_request_id("a b").is_err());
        assert!(validate_request_id(&"x".repeat(129)).is_err());
    }
}
