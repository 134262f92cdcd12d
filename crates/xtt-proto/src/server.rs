//! The server side of identity provisioning.
//!
//! [`Server`] is shared (`Sync`) and keeps **no per-client state** between ServerInitAndAttest and
//! Identity_ClientAttest: everything it needs comes back in the stateless cookie
//! ([`crate::cookie`]). After the cookie checks out, the per-client flow is a chain of consuming
//! states:
//!
//! ```text
//! Server::handle_client_init(ClientInit) ──▶ ServerInitAndAttest bytes     (no state kept)
//! Server::handle_client_attest(Identity_ClientAttest) ──▶ AttestedClient   (no DAA work yet)
//!   .verify_group(&dyn DaaVerifier) ──▶ VerifiedClient                     (DAA verified)
//!   .finish(client_id) ──▶ (Identity_ServerFinished bytes, ProvisionedClient)
//! ```
//!
//! An async driver can look the group up by [`AttestedClient::group_id`], verify (or batch-verify
//! [`AttestedClient::daa_message`] / [`AttestedClient::daa_signature`] and use
//! [`AttestedClient::with_verified_pseudonym`]), choose and durably register the ClientID, and only
//! then call [`VerifiedClient::finish`].

use core::fmt;
use std::sync::{Arc, RwLock};

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::cert::ServerCertificate;
use crate::cookie::{self, CookieContents, CookieKey, CookieKeyring, ReplayGuard, ReplayVerdict};
use crate::crypto;
use crate::daa::{DaaSignature, DaaVerifier, GroupId, Pseudonym};
use crate::error::{CryptoError, Error, InvalidMessage, PeerMisbehaved, Refused};
use crate::handshake_cache::{self, FinishedCache, HandshakeCache};
use crate::identity::ClientId;
use crate::key_schedule::{DirectionKeys, HandshakeKeys};
use crate::longterm::{LongtermKeyPair, LongtermPublicKey};
use crate::msgs::{
    is_error_message, ClientAttestPlaintext, ClientInit, IdentityClientAttest,
    IdentityServerFinished, ServerAttestPlaintext, ServerFinishedPlaintext, ServerInitAndAttest,
    CLIENT_INIT_LEN, COOKIE_LEN, SERVER_INIT_AND_ATTEST_AD_LEN, SERVER_INIT_PRE_COOKIE_LEN,
};
use crate::suite::SuiteSpec;
use crate::transcript;
use crate::UnixTime;

/// Server configuration.
pub struct ServerConfig {
    /// The 169-byte certificate sent to clients.
    pub certificate: ServerCertificate,
    /// The private key matching the certificate's public key.
    pub signing_key: LongtermKeyPair,
    /// Cookie keys (current + previous).
    pub cookie_keys: CookieKeyring,
    /// Seconds a cookie stays acceptable after it was issued.
    pub cookie_lifetime_secs: u64,
    /// Remembers accepted cookies; see [`crate::cookie::InMemoryReplayGuard`].
    pub replay_guard: Arc<dyn ReplayGuard>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("certificate", &self.certificate)
            .field("cookie_lifetime_secs", &self.cookie_lifetime_secs)
            .finish_non_exhaustive()
    }
}

/// A stateless identity-provisioning server; share it between connections.
pub struct Server {
    certificate: ServerCertificate,
    signing_key: LongtermKeyPair,
    cookie_keys: RwLock<CookieKeyring>,
    cookie_lifetime_secs: u64,
    replay_guard: Arc<dyn ReplayGuard>,
    handshake_cache: Option<HandshakeCache>,
    pub(crate) finished_cache: Option<FinishedCache>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// Everything the server derives from ClientInit + cookie, in both steps.
pub(crate) struct Rebuilt {
    pub(crate) suite: SuiteSpec,
    pub(crate) sia_ad: [u8; SERVER_INIT_AND_ATTEST_AD_LEN],
    pub(crate) inner: [u8; 64],
    pub(crate) keys: HandshakeKeys,
    pub(crate) server_signature: [u8; 64],
}

impl Server {
    /// A server from its configuration.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            certificate: config.certificate,
            signing_key: config.signing_key,
            cookie_keys: RwLock::new(config.cookie_keys),
            cookie_lifetime_secs: config.cookie_lifetime_secs,
            replay_guard: config.replay_guard,
            handshake_cache: None,
            finished_cache: None,
        }
    }

    /// Keeps the per-handshake work of ServerInitAndAttest (X25519, `signature_s`, keys) for up
    /// to `capacity` handshakes in flight, so the ClientAttest step does not redo it; when full,
    /// handshakes fall back to the stateless rebuild. See [`crate::handshake_cache`].
    pub fn with_handshake_cache(mut self, capacity: usize) -> Self {
        self.handshake_cache = Some(HandshakeCache::new(capacity));
        self
    }

    /// Remembers, for the cookie lifetime, the Session_ServerFinished sent for each accepted
    /// session flight (at most `capacity`), so [`Self::retransmitted_session_finished`] can answer
    /// an identical retransmission (XTT-SESSION §5; lossy transports such as UDP need it).
    pub fn with_finished_cache(mut self, capacity: usize) -> Self {
        self.finished_cache = Some(FinishedCache::new(capacity));
        self
    }

    /// Handshakes currently held by the handshake cache (0 without one).
    pub fn handshake_cache_len(&self) -> usize {
        self.handshake_cache.as_ref().map_or(0, HandshakeCache::len)
    }

    /// Replaces both cookie keys at once (e.g. from a key file several servers share).
    pub fn set_cookie_keys(&self, keys: CookieKeyring) {
        match self.cookie_keys.write() {
            Ok(mut g) => *g = keys,
            Err(p) => *p.into_inner() = keys,
        }
    }

    /// Makes `next` the current cookie key; the current one stays acceptable until the next
    /// rotation.
    pub fn rotate_cookie_key(&self, next: CookieKey) {
        match self.cookie_keys.write() {
            Ok(mut g) => g.rotate(next),
            Err(p) => p.into_inner().rotate(next),
        }
    }

    fn keyring(&self) -> std::sync::RwLockReadGuard<'_, CookieKeyring> {
        match self.cookie_keys.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Rebuilds ClientInit, the server key share, the key schedule and the deterministic server
    /// signature from the cookie contents and the server's ephemeral private key.
    fn rebuild(
        &self,
        ci: &ClientInit,
        cookie: &[u8; COOKIE_LEN],
        server_private: &[u8; 32],
    ) -> Result<Rebuilt, Error> {
        let suite = ci.suite;
        let mut client_init = [0u8; CLIENT_INIT_LEN];
        client_init.copy_from_slice(&ci.encode());
        let server_public = crypto::x25519_public(server_private);
        let shared = crypto::x25519_shared(server_private, &ci.key_share)
            .map_err(|_| PeerMisbehaved::NonContributoryKeyShare)?;
        let sia = ServerInitAndAttest {
            suite,
            key_share: server_public,
            cookie: *cookie,
            ciphertext: [0u8; 249],
        };
        let mut sia_ad = [0u8; SERVER_INIT_AND_ATTEST_AD_LEN];
        sia_ad.copy_from_slice(&sia.cleartext());
        let mut pre_cookie = [0u8; SERVER_INIT_PRE_COOKIE_LEN];
        pre_cookie.copy_from_slice(&sia_ad[..SERVER_INIT_PRE_COOKIE_LEN]);
        let inner = transcript::inner_hash(suite, &client_init, &pre_cookie);
        let hkh = transcript::handshake_key_hash(suite, &inner, cookie);
        let keys = HandshakeKeys::derive(suite, &shared, &hkh);
        let sig_hash =
            transcript::server_sig_hash(suite, &client_init, &sia_ad, self.certificate.as_bytes());
        // RFC 6979 without added entropy: the same inputs give the same signature, so it can be
        // recomputed at ClientAttest time instead of stored.
        let server_signature = self.signing_key.sign_rfc6979(&sig_hash, &[])?;
        Ok(Rebuilt {
            suite,
            sia_ad,
            inner,
            keys,
            server_signature,
        })
    }

    /// Opens an echoed cookie (authentic, unexpired, same suite as the message carrying it) and
    /// rebuilds the handshake state from it. Shared by both handshakes' third message.
    pub(crate) fn reopen(
        &self,
        suite: SuiteSpec,
        cookie: &[u8; COOKIE_LEN],
        now: UnixTime,
    ) -> Result<(cookie::OpenedCookie, Box<Rebuilt>), Error> {
        let opened = cookie::open(&self.keyring(), cookie, now, self.cookie_lifetime_secs)?;
        if opened.contents.suite != suite {
            return Err(InvalidMessage::ParameterMismatch.into());
        }
        let ci = ClientInit {
            suite: opened.contents.suite,
            nonce: opened.contents.client_nonce,
            key_share: opened.contents.client_key_share,
        };
        let cached = self
            .handshake_cache
            .as_ref()
            .and_then(|c| c.take(&opened.id, now));
        // Kept boxed: moving the entry out of its box would free the heap copy of the
        // handshake keys without zeroizing it.
        let r = match cached {
            Some(r) => r,
            None => Box::new(self.rebuild(&ci, cookie, &opened.server_x25519_private)?),
        };
        Ok((opened, r))
    }

    /// Records an accepted cookie so it is accepted at most once.
    pub(crate) fn record_cookie(
        &self,
        opened: &cookie::OpenedCookie,
        now: UnixTime,
    ) -> Result<(), Error> {
        let expires_at = UnixTime(
            opened
                .contents
                .issued_at
                .0
                .saturating_add(self.cookie_lifetime_secs),
        );
        match self
            .replay_guard
            .check_and_insert(&opened.id, expires_at, now)
        {
            ReplayVerdict::Fresh => Ok(()),
            ReplayVerdict::Replayed => Err(PeerMisbehaved::ReplayedCookie.into()),
            ReplayVerdict::Full => Err(Refused::ReplayCacheFull.into()),
            ReplayVerdict::Expired => Err(PeerMisbehaved::ExpiredCookie.into()),
        }
    }

    pub(crate) fn cookie_lifetime_secs(&self) -> u64 {
        self.cookie_lifetime_secs
    }

    /// The server certificate (it enters the session transcript).
    pub(crate) fn certificate(&self) -> &ServerCertificate {
        &self.certificate
    }

    /// Answers a ClientInit with ServerInitAndAttest (417 bytes). Draws 12 bytes (the cookie
    /// nonce/seed) from `rng`. Keeps no state.
    pub fn handle_client_init(
        &self,
        bytes: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        if is_error_message(bytes) {
            return Err(Error::ReceivedErrorMessage);
        }
        let ci = ClientInit::decode(bytes)?;
        let sealed = cookie::seal(
            &self.keyring(),
            &CookieContents {
                suite: ci.suite,
                client_nonce: ci.nonce,
                client_key_share: ci.key_share,
                issued_at: now,
            },
            rng,
        )?;
        let r = self.rebuild(&ci, &sealed.bytes, &sealed.server_x25519_private)?;
        let plaintext = Zeroizing::new(
            ServerAttestPlaintext {
                certificate: *self.certificate.as_bytes(),
                signature: r.server_signature,
            }
            .encode(),
        );
        let ct = r
            .keys
            .server_send()
            .seal(r.suite, 0, &r.sia_ad, &plaintext)?;
        let mut out = r.sia_ad.to_vec();
        out.extend_from_slice(&ct);
        if let Some(cache) = &self.handshake_cache {
            let expires_at = UnixTime(now.0.saturating_add(self.cookie_lifetime_secs));
            cache.insert(
                handshake_cache::cookie_id(&sealed.bytes),
                r,
                expires_at,
                now,
            );
        }
        Ok(out)
    }

    /// Processes Identity_ClientAttest: type 0x11 only, length, version, suite equal to the
    /// cookie's; cookie authentic (current or previous key) and unexpired; decrypts and verifies
    /// the client's long-term signature over C's truncated hash; finally records the cookie in the
    /// replay guard (a cookie is accepted at most once; failed attempts are not recorded). No DAA
    /// work happens here.
    pub fn handle_client_attest(
        &self,
        bytes: &[u8],
        now: UnixTime,
    ) -> Result<AttestedClient, Error> {
        if is_error_message(bytes) {
            return Err(Error::ReceivedErrorMessage);
        }
        let msg = IdentityClientAttest::decode(bytes)?;
        let (opened, r) = self.reopen(msg.suite, &msg.cookie, now)?;
        let pt = r
            .keys
            .client_send()
            .open(r.suite, 0, &msg.cleartext(), &msg.ciphertext)?;
        let attest = ClientAttestPlaintext::decode(&pt)?;
        let longterm_key = LongtermPublicKey::from_bytes(&attest.longterm_key)
            .map_err(|_| InvalidMessage::InvalidPublicKey)?;
        let lt_hash = transcript::client_longterm_sig_hash(
            r.suite,
            &r.inner,
            &msg.cookie,
            self.certificate.as_bytes(),
            &r.server_signature,
        );
        if !longterm_key.verify(&lt_hash, &attest.longterm_signature) {
            return Err(PeerMisbehaved::BadLongtermSignature.into());
        }
        self.record_cookie(&opened, now)?;
        let cookie_expires_at = UnixTime(
            opened
                .contents
                .issued_at
                .0
                .saturating_add(self.cookie_lifetime_secs),
        );
        let daa_message = transcript::client_daa_sig_hash(
            r.suite,
            &r.inner,
            &msg.cookie,
            self.certificate.as_bytes(),
            &r.server_signature,
        );
        Ok(AttestedClient {
            suite: r.suite,
            server_keys: r.keys.server_send().clone(),
            group_id: attest.group_id,
            requested_id: attest.requested_id,
            longterm_key,
            daa_message,
            daa_signature: attest.daa_signature,
            cookie_id: opened.id,
            cookie_expires_at,
        })
    }
}

/// A client whose cookie, AEAD and long-term signature checked out; its DAA signature is not yet
/// verified.
pub struct AttestedClient {
    suite: SuiteSpec,
    server_keys: DirectionKeys,
    group_id: GroupId,
    requested_id: ClientId,
    longterm_key: LongtermPublicKey,
    daa_message: [u8; 64],
    daa_signature: DaaSignature,
    cookie_id: cookie::CookieId,
    cookie_expires_at: UnixTime,
}

impl fmt::Debug for AttestedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestedClient")
            .field("suite", &self.suite)
            .field("group_id", &self.group_id)
            .field("requested_id", &self.requested_id)
            .finish_non_exhaustive()
    }
}

impl AttestedClient {
    /// The suite.
    pub fn suite(&self) -> SuiteSpec {
        self.suite
    }
    /// The DAA group the client claims; look up its verifier by this.
    pub fn group_id(&self) -> &GroupId {
        &self.group_id
    }
    /// The requested ClientID (null: server chooses).
    pub fn requested_id(&self) -> &ClientId {
        &self.requested_id
    }
    /// The client's long-term public key (validated point).
    pub fn longterm_public_key(&self) -> &LongtermPublicKey {
        &self.longterm_key
    }
    /// The 64-byte message the DAA signature signs (C's truncated ClientDAASigHash).
    pub fn daa_message(&self) -> &[u8; 64] {
        &self.daa_message
    }
    /// The DAA signature (unverified).
    pub fn daa_signature(&self) -> &DaaSignature {
        &self.daa_signature
    }
    /// The handshake's cookie (`key_id ‖ nonce`). This server's replay guard has recorded it;
    /// servers sharing cookie keys record it in shared storage too, so that it is accepted once
    /// deployment-wide.
    pub fn cookie_id(&self) -> &cookie::CookieId {
        &self.cookie_id
    }
    /// When the cookie expires (issue time + lifetime).
    pub fn cookie_expires_at(&self) -> UnixTime {
        self.cookie_expires_at
    }

    /// Verifies the DAA signature with the group's verifier.
    pub fn verify_group(
        self,
        verifier: &dyn DaaVerifier,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<VerifiedClient, Error> {
        let pseudonym = verifier
            .verify(&self.daa_message, &self.daa_signature, rng)
            .map_err(PeerMisbehaved::BadDaaSignature)?;
        self.with_verified_pseudonym(pseudonym)
    }

    /// For drivers that verified [`Self::daa_signature`] over [`Self::daa_message`] themselves
    /// (e.g. in a batch): continues with the pseudonym that verification returned. The caller
    /// vouches for the verification; the pseudonym must be the signature's.
    pub fn with_verified_pseudonym(self, pseudonym: Pseudonym) -> Result<VerifiedClient, Error> {
        if !bool::from(
            pseudonym
                .0
                .ct_eq(&self.daa_signature.pseudonym_unverified().0),
        ) {
            return Err(
                PeerMisbehaved::BadDaaSignature(crate::daa::DaaError::InvalidSignature).into(),
            );
        }
        Ok(VerifiedClient {
            suite: self.suite,
            server_keys: self.server_keys,
            request: IdentityRequest {
                group_id: self.group_id,
                pseudonym,
                requested_id: self.requested_id,
                longterm_key: self.longterm_key,
            },
        })
    }
}

/// What the application decides an identity from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRequest {
    /// The verified group.
    pub group_id: GroupId,
    /// The verified pseudonym (stable per member and basename).
    pub pseudonym: Pseudonym,
    /// Requested ClientID (null: the application picks a unique one).
    pub requested_id: ClientId,
    /// The long-term key to bind to the assigned id.
    pub longterm_key: LongtermPublicKey,
}

/// Assigns ClientIDs (and registers long-term keys). Implemented by the application.
pub trait IdentityAuthority {
    /// Null request: return a unique id. Specific request: return it, or refuse.
    fn assign(&self, request: &IdentityRequest) -> Result<ClientId, Refused>;
}

/// A client that proved group membership; waiting for the application's ClientID.
pub struct VerifiedClient {
    suite: SuiteSpec,
    server_keys: DirectionKeys,
    request: IdentityRequest,
}

impl fmt::Debug for VerifiedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedClient")
            .field("suite", &self.suite)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl VerifiedClient {
    /// Everything the application needs to assign an id.
    pub fn request(&self) -> &IdentityRequest {
        &self.request
    }
    /// The verified pseudonym.
    pub fn pseudonym(&self) -> &Pseudonym {
        &self.request.pseudonym
    }
    /// The group id.
    pub fn group_id(&self) -> &GroupId {
        &self.request.group_id
    }
    /// The requested ClientID.
    pub fn requested_id(&self) -> &ClientId {
        &self.request.requested_id
    }
    /// The long-term public key.
    pub fn longterm_public_key(&self) -> &LongtermPublicKey {
        &self.request.longterm_key
    }

    /// Asks `authority` for an id, then finishes. Async drivers that must commit the registration
    /// durably first call [`Self::finish`] themselves after committing.
    pub fn assign_and_finish(
        self,
        authority: &dyn IdentityAuthority,
    ) -> Result<(Vec<u8>, ProvisionedClient), Error> {
        let id = authority.assign(&self.request)?;
        self.finish(id)
    }

    /// Builds Identity_ServerFinished for `client_id` (server handshake key, sequence 1). A
    /// specific request must be granted unchanged (a C client would reject anything else).
    pub fn finish(self, client_id: ClientId) -> Result<(Vec<u8>, ProvisionedClient), Error> {
        if !self.request.requested_id.is_null() && client_id != self.request.requested_id {
            return Err(Refused::AssignedIdMismatch.into());
        }
        let bytes = build_server_finished(
            self.suite,
            &self.server_keys,
            client_id,
            self.request.longterm_key.as_bytes(),
        )?;
        Ok((
            bytes,
            ProvisionedClient {
                client_id,
                group_id: self.request.group_id,
                pseudonym: self.request.pseudonym,
                longterm_key: self.request.longterm_key,
                suite: self.suite,
            },
        ))
    }
}

/// Encodes and seals Identity_ServerFinished with the server's send keys, sequence 1.
pub fn build_server_finished(
    suite: SuiteSpec,
    server_keys: &DirectionKeys,
    client_id: ClientId,
    longterm_key: &[u8; 65],
) -> Result<Vec<u8>, Error> {
    let pt = ServerFinishedPlaintext {
        client_id,
        longterm_key: *longterm_key,
    }
    .encode();
    let mut msg = IdentityServerFinished {
        suite,
        ciphertext: [0u8; 97],
    };
    let ad = msg.cleartext();
    let ct = server_keys.seal(suite, 1, &ad, &pt)?;
    if ct.len() != msg.ciphertext.len() {
        return Err(CryptoError::Primitive.into());
    }
    msg.ciphertext.copy_from_slice(&ct);
    Ok(msg.encode())
}

/// The result of a successful server handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionedClient {
    /// The assigned ClientID.
    pub client_id: ClientId,
    /// The client's group.
    pub group_id: GroupId,
    /// The client's pseudonym.
    pub pseudonym: Pseudonym,
    /// The long-term key bound to `client_id`.
    pub longterm_key: LongtermPublicKey,
    /// The suite used.
    pub suite: SuiteSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn server_can_be_shared_between_connections() {
        assert_send_sync::<Server>();
        assert_send_sync::<AttestedClient>();
        assert_send_sync::<VerifiedClient>();
    }
}
