//! Secure credential transfer relay: expiring, claim-bound mailboxes through which a Sender
//! device hands a digital credential (car, home, hotel key) to a Receiver device.
//!
//! # Sources
//!
//! - *Secure Credential Transfer*, draft-secure-credential-transfer (Vinokurov et al., 2021;
//!   revisions 00–05, github.com/dimmyvi/secure-credential-transfer): mailboxes, device claims,
//!   share URLs, and the **stateful workflow** (ProvInfo1 → ProvInfo2 → ProvInfo3).
//! - *Transfer Digital Credentials Securely*, draft-vinokurov-tigress-http-00 (January 2024,
//!   github.com/dimmyvi/tigress): the HTTP API implemented here — `POST /v1/m` (CreateMailbox),
//!   `PUT` (UpdateMailbox), `POST` (ReadSecureContentFromMailbox), `PATCH` (RelinquishMailbox),
//!   `DELETE` (DeleteMailbox), `GET` (ReadDisplayInformationFromMailbox, OpenGraph HTML) on
//!   `/v1/m/{id}`; headers `Mailbox-Request-ID`, `Mailbox-Device-Claim`,
//!   `Mailbox-Device-Attestation`; payload `{type: AEAD_AES_128_GCM | AEAD_AES_256_GCM,
//!   data: base64(IV ‖ ciphertext ‖ tag)}`; Provisioning Information `{format, content}`;
//!   share URL `https://{host}/v1/m/{id}?v={a|h|c}#{secret}` where `v` is the credential
//!   vertical (a = general access, h = home key, c = car key).
//!
//! # Layout
//!
//! - [`proto`] — sans-IO core: [`proto::wire`] (JSON bodies, headers, validation),
//!   [`proto::mailbox`] (access rules and Recipient binding), [`proto::secret`] (AES-GCM
//!   sealing under the Secret), [`proto::share_url`], [`proto::confirm`] (three-message flow).
//! - [`server`] — axum driver: [`server::store::Store`] trait with the SQLite implementation
//!   [`server::sqlite::SqliteStore`], [`server::clock::Clock`] (injectable time), rate limits,
//!   body limit, sweeper, push webhook, OpenGraph preview.
//! - [`client`] — HTTP client and the Sender/Receiver flows.
//! - [`cli`] — `xtt relay serve|share|receive|relinquish|delete`.
//!
//! # Choices where the drafts are silent or loose
//!
//! - **Idempotency.** The relay keeps the last successful `Mailbox-Request-ID` per device claim
//!   (as the draft suggests) and answers a repeat with 201 without executing it. A repeated
//!   create's 201 carries the *same* `urlLink`, so a Sender whose first answer was lost still
//!   learns its link. Reads are not deduplicated (a read retry must return the content).
//!   Rows are deleted with their mailbox, so a repeated DELETE answers 404 (the draft allows it).
//! - **Access rights** (`R`, `W`, `D`, default `RD`) bind both parties alike; the Initiator may
//!   read its own mailbox without binding it; a missing right is 401 (the draft has no 403).
//!   Relinquish needs only the Recipient binding.
//! - **Retrievals.** At most `max_receivers` (default 3) Recipient bindings per mailbox over its
//!   life; relinquishing does not give one back.
//! - **Expiration.** `mailboxConfiguration` is optional as in the draft (server default
//!   lifetime, default 24 h); when present its `expiration` is required, must be in the future,
//!   may carry any RFC 3339 offset, and is capped at the server maximum (default 7 d). A mailbox
//!   is 404 from its expiration second on, before the sweeper deletes its row.
//! - **Claims** must be UUIDs (the draft's "SHALL be a UUID"); they are stored only as SHA-256
//!   digests and compared in constant time. No identities are stored; a mailbox created
//!   through [`server::store::Store::create`] records its creator's IPv4 address or IPv6
//!   /64 for the per-creator quota, deleted with the mailbox; rate-limit state is in memory
//!   only; logs carry method, route template, status and latency only.
//! - **Errors** are `{"error": "..."}` JSON with the draft's status codes; 413 for bodies or
//!   payloads over the limit, 429 with `Retry-After` when rate limited.
//! - **Payload encryption** has no associated data (the draft names none); the IV is random
//!   per message. The secret in the fragment is emitted as base64url without padding; standard
//!   base64 with padding (the draft's example) is accepted too.
//! - **Push.** With a webhook configured, an update by one side POSTs
//!   `{"event":"mailboxUpdated","notificationToken":{...}}` for the other side's token after the
//!   commit; `isPushNotificationSupported` says whether a webhook is configured.
//! - **Confirm flow** message formats: see [`proto::confirm`].
//! - **Transport.** The server speaks plain HTTP behind a TLS proxy (`--public-url`), or HTTPS
//!   itself (`relay serve --tls-cert --tls-key`, rustls). The client speaks both; for
//!   `https://` it trusts the platform's certificate authorities plus the extra roots it is
//!   given ([`client::RelayClient::with_roots`]; on the command line `--ca-file PEM` and
//!   `--anchors STORE`, whose `tls-root` anchors with the transport role are added). A refused
//!   certificate is [`client::ClientError::Certificate`], saying why, never retried.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod proto;
pub mod server;
