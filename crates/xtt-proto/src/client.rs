//! The client side of identity provisioning, as consuming states:
//!
//! ```text
//! ClientHandshake::start ──ClientInit──▶ ExpectServerAttest
//!   .handle_server_attest(ServerInitAndAttest) ──Identity_ClientAttest──▶ ExpectServerFinished
//!   .handle_server_finished(Identity_ServerFinished) ──▶ ProvisionedIdentity
//! ```
//!
//! Each step consumes the state; an error drops it (and its secrets) and carries the Error
//! message to send ([`Error::alert_bytes`]).

use core::fmt;
use std::sync::Arc;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::cert::{RootStore, ServerCertificate};
use crate::crypto;
use crate::daa::{DaaSigner, GroupId, Pseudonym};
use crate::error::{CryptoError, Error, InvalidMessage, PeerMisbehaved};
use crate::identity::ClientId;
use crate::key_schedule::{DirectionKeys, HandshakeKeys};
use crate::longterm::LongtermKeyPair;
use crate::msgs::{
    is_error_message, ClientAttestPlaintext, ClientInit, IdentityClientAttest,
    IdentityServerFinished, ServerAttestPlaintext, ServerFinishedPlaintext, ServerInitAndAttest,
    CLIENT_INIT_LEN, SERVER_INIT_AND_ATTEST_AD_LEN, SERVER_INIT_PRE_COOKIE_LEN,
};
use crate::suite::SuiteSpec;
use crate::transcript;

/// What a client needs besides per-handshake parameters.
#[derive(Clone)]
pub struct ClientConfig {
    /// Trusted roots, looked up by the root id the server certificate names.
    pub roots: Arc<dyn RootStore + Send + Sync>,
    /// The DAA group member.
    pub daa: Arc<dyn DaaSigner + Send + Sync>,
    /// The long-term key to register. `None`: a fresh key pair per handshake, as C does (32 bytes
    /// drawn between the X25519 key and the nonce). With `Some`, nothing is drawn for it, so a
    /// recorded C RNG stream no longer lines up.
    pub longterm_key: Option<LongtermKeyPair>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("group_id", &self.daa.group_id())
            .finish_non_exhaustive()
    }
}

/// Entry point of the client state machine.
#[derive(Debug)]
pub struct ClientHandshake(());

impl ClientHandshake {
    /// Draws the X25519 private key (32 bytes), the long-term private key (32 bytes, unless the
    /// config provides one) and the signing nonce (32 bytes) in C's order, and returns the state
    /// waiting for ServerInitAndAttest together with the 70 ClientInit bytes to send.
    pub fn start(
        config: ClientConfig,
        suite: SuiteSpec,
        requested_id: ClientId,
        rng: &mut dyn CryptoRngCore,
    ) -> (ExpectServerAttest, Vec<u8>) {
        let prepared = PreparedClientInit::draw(config.longterm_key.as_ref(), rng);
        Self::begin(config, suite, requested_id, prepared)
    }

    /// [`ClientHandshake::start`] with its draws and key generation done beforehand
    /// ([`PreparedClientInit::generate`]). A long-term key in `config` takes precedence over the
    /// prepared one.
    pub fn start_prepared(
        config: ClientConfig,
        suite: SuiteSpec,
        requested_id: ClientId,
        mut prepared: PreparedClientInit,
    ) -> (ExpectServerAttest, Vec<u8>) {
        if let Some(k) = &config.longterm_key {
            prepared.longterm = k.clone();
            // Prepared for the key that is not used.
            prepared.longterm_nonce = None;
        }
        Self::begin(config, suite, requested_id, prepared)
    }

    fn begin(
        config: ClientConfig,
        suite: SuiteSpec,
        requested_id: ClientId,
        prepared: PreparedClientInit,
    ) -> (ExpectServerAttest, Vec<u8>) {
        let PreparedClientInit {
            x25519_private,
            key_share,
            longterm,
            longterm_nonce,
            nonce,
        } = prepared;
        let ci = ClientInit {
            suite,
            nonce,
            key_share,
        };
        let bytes = ci.encode();
        let mut client_init = [0u8; CLIENT_INIT_LEN];
        client_init.copy_from_slice(&bytes);
        (
            ExpectServerAttest {
                config,
                suite,
                requested_id,
                x25519_private,
                longterm,
                longterm_nonce,
                client_init,
            },
            bytes,
        )
    }
}

/// What the client's side of a handshake needs that does not depend on the server: the X25519
/// key pair, a fresh long-term key pair, the nonce, and the nonce of the long-term key's one
/// signature. A device can make it while idle, so that connecting costs one X25519 computation
/// less, no key generation and most of a signature. Used once: not `Clone`, and the private
/// keys and the signature nonce are wiped on drop.
pub struct PreparedClientInit {
    x25519_private: Zeroizing<[u8; 32]>,
    key_share: [u8; 32],
    longterm: LongtermKeyPair,
    /// For the single signature of `longterm`, the fresh key registered by this handshake.
    longterm_nonce: Option<crypto::EcdsaNonce>,
    nonce: [u8; 32],
}

impl PreparedClientInit {
    /// Draws the X25519 private key, the long-term private key and the nonce (C's order) and
    /// computes both public keys; then draws 32 bytes more for the long-term signature's nonce
    /// (RFC 6979 over the new key, the ClientInit nonce in the message's place, and those
    /// bytes: the nonce is ready before the message it signs).
    pub fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        let mut prepared = Self::draw(None, rng);
        let mut entropy = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *entropy);
        // Failure has probability about 2^-256; the handshake then signs the usual way.
        prepared.longterm_nonce = prepared
            .longterm
            .prepare_nonce(&prepared.nonce, &*entropy)
            .ok();
        prepared
    }

    /// Draws nothing for the long-term key when one is given.
    fn draw(longterm: Option<&LongtermKeyPair>, rng: &mut dyn CryptoRngCore) -> Self {
        let mut x25519_private = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *x25519_private);
        let longterm = match longterm {
            Some(k) => k.clone(),
            None => LongtermKeyPair::generate(rng),
        };
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        Self {
            key_share: crypto::x25519_public(&x25519_private),
            x25519_private,
            longterm,
            longterm_nonce: None,
            nonce,
        }
    }
}

impl fmt::Debug for PreparedClientInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedClientInit").finish_non_exhaustive()
    }
}

/// Sent ClientInit, waiting for ServerInitAndAttest.
pub struct ExpectServerAttest {
    config: ClientConfig,
    suite: SuiteSpec,
    requested_id: ClientId,
    x25519_private: Zeroizing<[u8; 32]>,
    longterm: LongtermKeyPair,
    longterm_nonce: Option<crypto::EcdsaNonce>,
    client_init: [u8; CLIENT_INIT_LEN],
}

impl fmt::Debug for ExpectServerAttest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpectServerAttest")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl ExpectServerAttest {
    /// Processes ServerInitAndAttest: X25519 (non-contributory rejected), key schedule, decrypt,
    /// root lookup, root signature, server signature; then signs (long-term ECDSA hedged with 32
    /// drawn bytes, then DAA) and returns Identity_ClientAttest to send.
    pub fn handle_server_attest(
        self,
        bytes: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(ExpectServerFinished, Vec<u8>), Error> {
        let v = verify_server_attest(
            self.suite,
            &self.x25519_private,
            &self.client_init,
            self.config.roots.as_ref(),
            bytes,
        )?;
        let suite = self.suite;
        let (inner, sia, attest, keys, certificate) =
            (v.inner, v.sia, v.attest, v.keys, v.certificate);

        let lt_hash = transcript::client_longterm_sig_hash(
            suite,
            &inner,
            &sia.cookie,
            &attest.certificate,
            &attest.signature,
        );
        // Drawn even when a prepared nonce signs, so the DAA draws that follow stay where C
        // has them.
        let mut entropy = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *entropy);
        let longterm_signature = match self.longterm_nonce {
            Some(nonce) => self.longterm.sign_with_nonce(nonce, &lt_hash)?,
            None => self.longterm.sign_rfc6979(&lt_hash, &*entropy)?,
        };
        let daa_hash = transcript::client_daa_sig_hash(
            suite,
            &inner,
            &sia.cookie,
            &attest.certificate,
            &attest.signature,
        );
        let daa_signature = self
            .config
            .daa
            .sign(&daa_hash, rng)
            .map_err(CryptoError::DaaSigning)?;
        let pseudonym = daa_signature.pseudonym_unverified();
        let plaintext = Zeroizing::new(
            ClientAttestPlaintext {
                longterm_key: *self.longterm.public_key().as_bytes(),
                group_id: self.config.daa.group_id(),
                requested_id: self.requested_id,
                longterm_signature,
                daa_signature,
            }
            .encode(),
        );
        let mut msg = IdentityClientAttest {
            suite,
            cookie: sia.cookie,
            ciphertext: [0u8; 614],
        };
        let ad = msg.cleartext();
        let ct = keys.client_send().seal(suite, 0, &ad, &plaintext)?;
        if ct.len() != msg.ciphertext.len() {
            return Err(CryptoError::Primitive.into());
        }
        msg.ciphertext.copy_from_slice(&ct);
        Ok((
            ExpectServerFinished {
                suite,
                requested_id: self.requested_id,
                longterm: self.longterm,
                group_id: self.config.daa.group_id(),
                pseudonym,
                server_keys: keys.server_send().clone(),
                server_certificate: certificate,
            },
            msg.encode(),
        ))
    }
}

/// ServerInitAndAttest after every client-side check: shared by identity provisioning and the
/// session handshake, whose first two messages are identical (XTT-SESSION §1).
pub(crate) struct VerifiedServerAttest {
    pub(crate) sia: ServerInitAndAttest,
    pub(crate) inner: [u8; 64],
    pub(crate) keys: HandshakeKeys,
    pub(crate) attest: ServerAttestPlaintext,
    pub(crate) certificate: ServerCertificate,
}

/// X25519 (non-contributory rejected), key schedule, decrypt, root lookup, root signature, server
/// signature.
pub(crate) fn verify_server_attest(
    suite: SuiteSpec,
    x25519_private: &[u8; 32],
    client_init: &[u8; CLIENT_INIT_LEN],
    roots: &dyn RootStore,
    bytes: &[u8],
) -> Result<VerifiedServerAttest, Error> {
    if is_error_message(bytes) {
        return Err(Error::ReceivedErrorMessage);
    }
    let sia = ServerInitAndAttest::decode(bytes)?;
    if sia.suite != suite {
        return Err(InvalidMessage::ParameterMismatch.into());
    }
    let shared = crypto::x25519_shared(x25519_private, &sia.key_share)
        .map_err(|_| PeerMisbehaved::NonContributoryKeyShare)?;
    let cleartext = sia.cleartext();
    let mut sia_ad = [0u8; SERVER_INIT_AND_ATTEST_AD_LEN];
    sia_ad.copy_from_slice(&cleartext);
    let mut pre_cookie = [0u8; SERVER_INIT_PRE_COOKIE_LEN];
    pre_cookie.copy_from_slice(&sia_ad[..SERVER_INIT_PRE_COOKIE_LEN]);
    let inner = transcript::inner_hash(suite, client_init, &pre_cookie);
    let hkh = transcript::handshake_key_hash(suite, &inner, &sia.cookie);
    let keys = HandshakeKeys::derive(suite, &shared, &hkh);
    let pt = keys
        .server_send()
        .open(suite, 0, &sia_ad, &sia.ciphertext)?;
    let attest = ServerAttestPlaintext::decode(&pt)?;
    let certificate = ServerCertificate::from_bytes(attest.certificate);
    let server_key = roots.verify_certificate(&certificate)?;
    let server_sig_hash =
        transcript::server_sig_hash(suite, client_init, &sia_ad, &attest.certificate);
    if !server_key.verify(&server_sig_hash, &attest.signature) {
        return Err(PeerMisbehaved::BadServerSignature.into());
    }
    Ok(VerifiedServerAttest {
        sia,
        inner,
        keys,
        attest,
        certificate,
    })
}

/// Sent Identity_ClientAttest, waiting for Identity_ServerFinished.
pub struct ExpectServerFinished {
    suite: SuiteSpec,
    requested_id: ClientId,
    longterm: LongtermKeyPair,
    group_id: GroupId,
    pseudonym: Pseudonym,
    server_keys: DirectionKeys,
    server_certificate: ServerCertificate,
}

impl fmt::Debug for ExpectServerFinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpectServerFinished")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl ExpectServerFinished {
    /// Processes Identity_ServerFinished (server handshake key, sequence 1): a null request
    /// accepts any id (as C), a specific request must come back unchanged; the echoed long-term
    /// key must be ours.
    pub fn handle_server_finished(self, bytes: &[u8]) -> Result<ProvisionedIdentity, Error> {
        if is_error_message(bytes) {
            return Err(Error::ReceivedErrorMessage);
        }
        let msg = IdentityServerFinished::decode(bytes)?;
        if msg.suite != self.suite {
            return Err(InvalidMessage::ParameterMismatch.into());
        }
        let pt = self
            .server_keys
            .open(self.suite, 1, &msg.cleartext(), &msg.ciphertext)?;
        let fin = ServerFinishedPlaintext::decode(&pt)?;
        if !self.requested_id.is_null() && fin.client_id != self.requested_id {
            return Err(PeerMisbehaved::WrongClientId.into());
        }
        if !bool::from(
            fin.longterm_key
                .ct_eq(self.longterm.public_key().as_bytes()),
        ) {
            return Err(PeerMisbehaved::WrongLongtermKeyEcho.into());
        }
        Ok(ProvisionedIdentity {
            client_id: fin.client_id,
            longterm_key: self.longterm,
            group_id: self.group_id,
            pseudonym: Some(self.pseudonym),
            suite: self.suite,
            server_certificate: self.server_certificate,
        })
    }
}

/// The result of a successful client handshake.
#[derive(Debug)]
#[non_exhaustive]
pub struct ProvisionedIdentity {
    /// The ClientID the server assigned.
    pub client_id: ClientId,
    /// The long-term key pair now bound to `client_id`.
    pub longterm_key: LongtermKeyPair,
    /// The group the client proved membership of.
    pub group_id: GroupId,
    /// The client's pseudonym for the configured basename.
    pub pseudonym: Option<Pseudonym>,
    /// The suite used.
    pub suite: SuiteSpec,
    /// The (verified) server certificate.
    pub server_certificate: ServerCertificate,
}
