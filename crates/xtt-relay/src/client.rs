//! Client library: the relay API over HTTP (one method per endpoint) and the Sender/Receiver
//! flows on top of it (share, receive, the three-message confirm flow).
//!
//! The secret never leaves this process: requests go to [`ShareUrl::api_url`], which has no
//! fragment and no query. Every state-changing request carries a fresh `Mailbox-Request-ID`,
//! reused on a retry after a transport failure so the relay can deduplicate it.

use crate::proto::confirm::{
    ConfirmError, Confirmation, ReceiverConfirm, SenderConfirm, CONFIRM_KEY,
};
use crate::proto::secret::{CryptoError, ProvisioningInfo, Secret};
use crate::proto::share_url::{ShareUrl, ShareUrlError, Vertical};
use crate::proto::wire::{
    format_timestamp, AccessRights, CreateMailboxRequest, CreateMailboxResponse,
    DisplayInformation, ErrorBody, MailboxConfiguration, NotificationToken, PayloadType,
    ReadMailboxRequest, ReadSecureContentResponse, UpdateMailboxRequest, UpdateMailboxResponse,
    HEADER_DEVICE_ATTESTATION, HEADER_DEVICE_CLAIM, HEADER_REQUEST_ID,
};
use rand_core::OsRng;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;
use uuid::Uuid;
use xtt_tls::body::BodyError;
use zeroize::Zeroizing;

/// Client-side failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The whole chain of causes is in the message (logs print only the message), so none is
    /// the `source()`: `{:#}` would print them again.
    /// An `http://` URL to a TLS port (or the reverse) says which scheme to use instead.
    #[error("cannot reach the relay: {}", xtt_tls::error_chain(.0))]
    Transport(reqwest::Error),
    #[error("the relay answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the relay's answer is malformed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    ShareUrl(#[from] ShareUrlError),
    #[error("confirmation failed: {0}")]
    Confirm(#[from] ConfirmError),
    #[error("the relay URL {0} cannot be used as a base")]
    RelayUrl(String),
    #[error("the relay at {host} cannot be trusted: {reason}")]
    Certificate { host: String, reason: String },
    #[error(transparent)]
    Tls(#[from] xtt_tls::TlsError),
    #[error("timed out after {0:?} waiting for the other device")]
    Timeout(Duration),
}

impl ClientError {
    /// The HTTP status, for relay refusals.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Whether the relay executed a state-changing request or recognised it as a repeat (201).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Executed,
    Duplicate,
}

/// HTTP access to relays.
#[derive(Debug, Clone)]
pub struct RelayClient {
    http: reqwest::Client,
}

impl RelayClient {
    /// A client with a 30 s timeout that follows no redirects (a redirect could send the
    /// device claim to another host), trusting the platform's certificate authorities.
    pub fn new() -> Result<Self, ClientError> {
        Self::with_roots(&xtt_tls::TrustRoots::platform())
    }

    /// The same, trusting `roots` (the platform's plus any extra, e.g. from `--ca-file` or the
    /// anchor store) for `https://` relays.
    pub fn with_roots(roots: &xtt_tls::TrustRoots) -> Result<Self, ClientError> {
        let http = roots
            .client_builder()?
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError::Transport)?;
        Ok(RelayClient { http })
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        claim: Uuid,
        request_id: Option<&str>,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        // One retry on a transport failure, with the same request id: the relay answers 201
        // if the first attempt did land.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header(HEADER_DEVICE_CLAIM, claim.hyphenated().to_string());
            if let Some(id) = request_id {
                req = req.header(HEADER_REQUEST_ID, id);
            }
            match build(req).send().await {
                Ok(resp) => {
                    if let Some(id) = request_id {
                        let echoed = resp
                            .headers()
                            .get(HEADER_REQUEST_ID)
                            .and_then(|v| v.to_str().ok());
                        if echoed != Some(id) {
                            return Err(ClientError::Malformed(
                                "Mailbox-Request-ID was not echoed".into(),
                            ));
                        }
                    }
                    return Ok(resp);
                }
                // A refused certificate is not worth a retry, and deserves its own words.
                Err(e) if xtt_tls::certificate_problem(&e).is_some() => {
                    return Err(ClientError::Certificate {
                        host: url.host_str().unwrap_or("").to_owned(),
                        reason: xtt_tls::certificate_problem(&e).unwrap_or_default(),
                    })
                }
                Err(e)
                    if attempt < 2
                        && request_id.is_some()
                        && (e.is_connect() || e.is_timeout()) =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(ClientError::Transport(e.without_url())),
            }
        }
    }

    /// CreateMailbox at the relay whose base URL is `relay` (e.g. `https://relay.example`).
    pub async fn create(
        &self,
        relay: &Url,
        claim: Uuid,
        request_id: &str,
        body: &CreateMailboxRequest,
        attestation: Option<&str>,
    ) -> Result<(Written, CreateMailboxResponse), ClientError> {
        let url = create_url(relay)?;
        let resp = self
            .send(Method::POST, &url, claim, Some(request_id), |r| {
                let r = r.json(body);
                match attestation {
                    Some(a) => r.header(HEADER_DEVICE_ATTESTATION, a),
                    None => r,
                }
            })
            .await?;
        let written = written(&resp);
        Ok((written, json_reply(resp).await?))
    }

    /// ReadSecureContentFromMailbox (binds the mailbox to `claim` if it is the first Recipient).
    pub async fn read(
        &self,
        mailbox: &Url,
        claim: Uuid,
        token: Option<NotificationToken>,
    ) -> Result<ReadSecureContentResponse, ClientError> {
        let body = ReadMailboxRequest {
            notification_token: token,
        };
        let resp = self
            .send(Method::POST, mailbox, claim, None, |r| r.json(&body))
            .await?;
        json_reply(resp).await
    }

    /// UpdateMailbox.
    pub async fn update(
        &self,
        mailbox: &Url,
        claim: Uuid,
        request_id: &str,
        body: &UpdateMailboxRequest,
    ) -> Result<(Written, UpdateMailboxResponse), ClientError> {
        let resp = self
            .send(Method::PUT, mailbox, claim, Some(request_id), |r| {
                r.json(body)
            })
            .await?;
        let written = written(&resp);
        Ok((written, json_reply(resp).await?))
    }

    /// RelinquishMailbox.
    pub async fn relinquish(
        &self,
        mailbox: &Url,
        claim: Uuid,
        request_id: &str,
    ) -> Result<Written, ClientError> {
        let resp = self
            .send(Method::PATCH, mailbox, claim, Some(request_id), |r| r)
            .await?;
        empty_reply(resp).await
    }

    /// DeleteMailbox.
    pub async fn delete(
        &self,
        mailbox: &Url,
        claim: Uuid,
        request_id: &str,
    ) -> Result<Written, ClientError> {
        let resp = self
            .send(Method::DELETE, mailbox, claim, Some(request_id), |r| r)
            .await?;
        empty_reply(resp).await
    }
}

fn create_url(relay: &Url) -> Result<Url, ClientError> {
    let mut base = relay.clone();
    if base.cannot_be_a_base() {
        return Err(ClientError::RelayUrl(relay.to_string()));
    }
    base.set_query(None);
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join("v1/m")
        .map_err(|_| ClientError::RelayUrl(relay.to_string()))
}

fn written(resp: &reqwest::Response) -> Written {
    if resp.status() == StatusCode::CREATED {
        Written::Duplicate
    } else {
        Written::Executed
    }
}

/// Largest answer read from a relay: 16 times the relay's default request limit (an answer
/// carries at most what one request stored, plus its JSON).
const MAX_REPLY_LEN: usize = 1024 * 1024;

async fn refusal(resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let message = match xtt_tls::body::read_limited(resp, xtt_tls::body::MAX_ERROR_TEXT).await {
        Ok(body) => serde_json::from_slice::<ErrorBody>(&body)
            .map_or_else(|_| "no details".into(), |b| b.error),
        Err(_) => "no details".into(),
    };
    ClientError::Status { status, message }
}

async fn json_reply<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let body = xtt_tls::body::read_limited(resp, MAX_REPLY_LEN)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { .. } => ClientError::Malformed(e.to_string()),
            BodyError::Transport(e) => ClientError::Transport(e.without_url()),
        })?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Malformed(e.to_string()))
}

async fn empty_reply(resp: reqwest::Response) -> Result<Written, ClientError> {
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    Ok(written(&resp))
}

/// A fresh request id.
pub fn request_id() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

/// What the Sender puts in a mailbox. Its `Debug` form shows the plaintext's length only.
#[derive(Clone)]
pub struct ShareRequest {
    /// Plaintext to seal (serialised Provisioning Information).
    pub plaintext: Zeroizing<Vec<u8>>,
    pub display: DisplayInformation,
    pub vertical: Option<Vertical>,
    pub cipher: PayloadType,
    pub rights: AccessRights,
    /// Unix seconds.
    pub expires_at: i64,
    pub notification_token: Option<NotificationToken>,
    pub attestation: Option<String>,
}

impl std::fmt::Debug for ShareRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareRequest")
            .field("plaintext", &Length(self.plaintext.len()))
            .field("display", &self.display)
            .field("vertical", &self.vertical)
            .field("cipher", &self.cipher)
            .field("rights", &self.rights)
            .field("expires_at", &self.expires_at)
            .field("notification_token", &self.notification_token.is_some())
            .field("attestation", &self.attestation.is_some())
            .finish()
    }
}

/// A secret shown as its length only.
struct Length(usize);

impl std::fmt::Debug for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes, redacted>", self.0)
    }
}

/// A created mailbox, from the Sender's side. Its `Debug` form hides the claim (a bearer
/// credential for the mailbox); the link's secret is hidden by [`ShareUrl`]'s.
#[derive(Clone)]
pub struct Shared {
    /// The link for the Recipient (secret in its fragment).
    pub link: ShareUrl,
    /// The Sender's device claim: needed to read, update or delete later.
    pub claim: Uuid,
    pub push_supported: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("link", &self.link)
            .field("claim", &format_args!("<redacted>"))
            .field("push_supported", &self.push_supported)
            .finish()
    }
}

/// Seals the plaintext under a fresh secret and creates the mailbox.
pub async fn share(
    client: &RelayClient,
    relay: &Url,
    request: &ShareRequest,
) -> Result<Shared, ClientError> {
    let secret = Secret::generate(request.cipher, &mut OsRng);
    let sealed = secret.seal(&request.plaintext, &mut OsRng)?;
    let body = CreateMailboxRequest {
        payload: sealed.to_wire(),
        display_information: request.display.clone(),
        notification_token: request.notification_token.clone(),
        mailbox_configuration: Some(MailboxConfiguration {
            access_rights: Some(request.rights.to_string()),
            expiration: format_timestamp(request.expires_at),
        }),
    };
    let claim = Uuid::new_v4();
    let (_, reply) = client
        .create(
            relay,
            claim,
            &request_id(),
            &body,
            request.attestation.as_deref(),
        )
        .await?;
    let link = ShareUrl::new(&reply.url_link, request.vertical, Some(secret))?;
    Ok(Shared {
        link,
        claim,
        push_supported: reply.is_push_notification_supported,
    })
}

/// What the Recipient got. Its `Debug` form shows the format and key names of the
/// provisioning information, never its values (which are wiped on drop), and of a
/// confirmation only that there is one.
pub struct Received {
    pub info: ProvisioningInfo,
    pub display: DisplayInformation,
    /// RFC 3339.
    pub expiration: String,
    /// Set when the Sender asked for the confirm flow and it completed.
    pub confirmation: Option<Confirmation>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("info", &self.info)
            .field("display", &self.display)
            .field("expiration", &self.expiration)
            .field("confirmed", &self.confirmation.is_some())
            .finish()
    }
}

/// Polling parameters for the confirm flow.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub poll: Duration,
    pub timeout: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Patience {
            poll: Duration::from_millis(500),
            timeout: Duration::from_secs(600),
        }
    }
}

async fn read_plain(
    client: &RelayClient,
    link: &ShareUrl,
    claim: Uuid,
) -> Result<(Zeroizing<Vec<u8>>, ReadSecureContentResponse), ClientError> {
    let secret = link.require_secret()?;
    let reply = client.read(link.api_url(), claim, None).await?;
    let sealed = reply
        .payload
        .decode(usize::MAX)
        .map_err(|e| ClientError::Malformed(e.to_string()))?;
    Ok((secret.open(&sealed)?, reply))
}

async fn write_plain(
    client: &RelayClient,
    link: &ShareUrl,
    claim: Uuid,
    plaintext: &[u8],
) -> Result<(), ClientError> {
    let sealed = link.require_secret()?.seal(plaintext, &mut OsRng)?;
    let body = UpdateMailboxRequest {
        payload: sealed.to_wire(),
        notification_token: None,
    };
    client
        .update(link.api_url(), claim, &request_id(), &body)
        .await?;
    Ok(())
}

/// Claims, reads and decrypts; when the Sender asked for confirmation, runs the Receiver's
/// side of the three-message flow and deletes the mailbox at the end.
pub async fn receive(
    client: &RelayClient,
    link: &ShareUrl,
    claim: Uuid,
    patience: Patience,
) -> Result<Received, ClientError> {
    let (plaintext, reply) = read_plain(client, link, claim).await?;
    let mut info = ProvisioningInfo::from_bytes(&plaintext)?;
    let confirmation = match ReceiverConfirm::start(&plaintext, &mut OsRng)? {
        None => None,
        Some((mut state, txinfo)) => {
            write_plain(client, link, claim, &txinfo).await?;
            let deadline = tokio::time::Instant::now() + patience.timeout;
            let done = loop {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ClientError::Timeout(patience.timeout));
                }
                tokio::time::sleep(patience.poll).await;
                let (current, _) = read_plain(client, link, claim).await?;
                match state.on_message(&current)? {
                    Ok(done) => break done,
                    Err(waiting) => state = waiting,
                }
            };
            client.delete(link.api_url(), claim, &request_id()).await?;
            info.extra.remove(CONFIRM_KEY);
            Some(done)
        }
    };
    Ok(Received {
        info,
        display: reply.display_information,
        expiration: reply.expiration,
        confirmation,
    })
}

/// The Sender's side of the confirm flow after [`share`]: waits for the Receiver's TxInfo,
/// signs it, writes the signature, and returns once the Receiver has deleted the mailbox
/// (or, if the relay denies the Sender reads, right after writing).
pub async fn confirm_as_sender(
    client: &RelayClient,
    shared: &Shared,
    state: &SenderConfirm,
    patience: Patience,
) -> Result<(), ClientError> {
    let deadline = tokio::time::Instant::now() + patience.timeout;
    let mut signed = false;
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Timeout(patience.timeout));
        }
        tokio::time::sleep(patience.poll).await;
        let plaintext = match read_plain(client, &shared.link, shared.claim).await {
            Ok((plaintext, _)) => plaintext,
            // Deleted by the Receiver after verifying: done.
            Err(ClientError::Status { status: 404, .. }) if signed => return Ok(()),
            Err(e) => return Err(e),
        };
        if signed {
            continue;
        }
        if let Some(message3) = state.on_message(&plaintext)? {
            write_plain(client, &shared.link, shared.claim, &message3).await?;
            signed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "MARKER-CREDENTIAL-7f3a";

    fn info() -> ProvisioningInfo {
        let mut content = serde_json::Map::new();
        content.insert("authorizationToken".into(), serde_json::json!(MARKER));
        ProvisioningInfo::new("digitalwallet.generic.authorizationToken", content)
    }

    fn display() -> DisplayInformation {
        DisplayInformation {
            title: "Hotel Pass".into(),
            description: "Room 1207".into(),
            image_url: "https://example.com/p.png".into(),
        }
    }

    fn shown<T: std::fmt::Debug>(value: &T) -> [String; 2] {
        [format!("{value:?}"), format!("{value:#?}")]
    }

    /// The public return types print no credential, claim or secret, so `?value` in a log
    /// line leaks none of them.
    #[test]
    fn debug_forms_carry_no_secrets() {
        let request = ShareRequest {
            plaintext: info().to_bytes(),
            display: display(),
            vertical: None,
            cipher: PayloadType::Aes128Gcm,
            rights: AccessRights::ALL,
            expires_at: 0,
            notification_token: Some(NotificationToken {
                kind: "apns".into(),
                token_data: MARKER.into(),
            }),
            attestation: Some(MARKER.into()),
        };
        // The plaintext's bytes as `Vec<u8>`'s Debug would print them.
        let bytes = format!("{:?}", &request.plaintext[..8]);
        let bytes = bytes.trim_end_matches(']');
        for text in shown(&request) {
            assert!(!text.contains(MARKER) && !text.contains(bytes), "{text}");
            assert!(text.contains("Hotel Pass"), "{text}");
        }

        let secret = Secret::generate(PayloadType::Aes128Gcm, &mut OsRng);
        let encoded = secret.encode().to_string();
        let claim = Uuid::new_v4();
        let shared = Shared {
            link: ShareUrl::new(
                &format!("https://relay.example.com/v1/m/{}", Uuid::new_v4()),
                None,
                Some(secret),
            )
            .unwrap(),
            claim,
            push_supported: false,
        };
        for text in shown(&shared) {
            assert!(!text.contains(&claim.to_string()), "{text}");
            assert!(!text.contains(&claim.simple().to_string()), "{text}");
            assert!(!text.contains(&encoded), "{text}");
            assert!(text.contains("relay.example.com"), "{text}");
        }

        let received = Received {
            info: info(),
            display: display(),
            expiration: "2030-01-01T00:00:00Z".into(),
            confirmation: None,
        };
        for text in shown(&received) {
            assert!(!text.contains(MARKER), "{text}");
            assert!(text.contains("authorizationToken"), "{text}");
        }
    }
}
