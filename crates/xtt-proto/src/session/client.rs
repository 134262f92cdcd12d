//! The client side of the session handshake, as consuming states:
//!
//! ```text
//! SessionClientHandshake::start ──ClientInit──▶ ExpectSessionServerAttest
//!   .handle_server_attest(ServerInitAndAttest, early data?) ──ClientAttest [+ record]──▶
//!                                                             ExpectSessionServerFinished
//!   .handle_server_finished(Session_ServerFinished) ──▶ ClientSession
//! ```
//!
//! Each step consumes the state; an error drops it (and its secrets).

use core::fmt;
use std::sync::Arc;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::cert::{RootStore, ServerCertificate};
use crate::client::verify_server_attest;
use crate::crypto;
use crate::error::{CryptoError, Error, InvalidMessage, PeerMisbehaved, Refused};
use crate::identity::ClientId;
use crate::key_schedule::DirectionKeys;
use crate::longterm::LongtermKeyPair;
use crate::msgs::{
    is_error_message, ClientInit, RecordRegular, SessionClientAttest, SessionServerFinished,
    CLIENT_INIT_LEN,
};
use crate::record::{
    DropCounters, Keep, OpenedInPlace, OpenedRecord, PayloadType, RecordError, RecordInPlace,
    RecordLayer, SessionId, MAX_PAYLOAD_LEN,
};
use crate::suite::SuiteSpec;

use super::keys::{SessionSchedule, SessionTranscript};
use super::messages::{attest_ad, finished_ad, SessionAttestPlaintext, SessionFinishedPlaintext};

/// What a session client needs: the roots to check the server, and the identity from
/// provisioning.
#[derive(Clone)]
pub struct SessionClientConfig {
    /// Trusted roots, looked up by the root id the server certificate names.
    pub roots: Arc<dyn RootStore + Send + Sync>,
    /// The ClientID assigned at provisioning.
    pub client_id: ClientId,
    /// The long-term key registered for `client_id`.
    pub longterm_key: LongtermKeyPair,
}

impl fmt::Debug for SessionClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionClientConfig")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Entry point of the session client state machine.
#[derive(Debug)]
pub struct SessionClientHandshake(());

impl SessionClientHandshake {
    /// Draws the X25519 private key (32 bytes) and the signing nonce (32 bytes) and returns the
    /// state waiting for ServerInitAndAttest with the 70 ClientInit bytes to send (the same
    /// message as in identity provisioning).
    pub fn start(
        config: SessionClientConfig,
        suite: SuiteSpec,
        rng: &mut dyn CryptoRngCore,
    ) -> (ExpectSessionServerAttest, Vec<u8>) {
        let mut x25519_private = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *x25519_private);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let bytes = ClientInit {
            suite,
            nonce,
            key_share: crypto::x25519_public(&x25519_private),
        }
        .encode();
        let mut client_init = [0u8; CLIENT_INIT_LEN];
        client_init.copy_from_slice(&bytes);
        (
            ExpectSessionServerAttest {
                config,
                suite,
                x25519_private,
                client_init,
            },
            bytes,
        )
    }
}

/// Sent ClientInit, waiting for ServerInitAndAttest.
pub struct ExpectSessionServerAttest {
    config: SessionClientConfig,
    suite: SuiteSpec,
    x25519_private: Zeroizing<[u8; 32]>,
    client_init: [u8; CLIENT_INIT_LEN],
}

impl fmt::Debug for ExpectSessionServerAttest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpectSessionServerAttest")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl ExpectSessionServerAttest {
    /// Verifies ServerInitAndAttest exactly as identity provisioning does, then signs and seals
    /// Session_ClientAttest.
    ///
    /// Without `early_data` this is 0x21 (248 bytes, session id zero: the server assigns one).
    /// With it, 0x22: the client draws a 16-byte session id (non-zero) and the returned bytes are
    /// the attest immediately followed by one record (client sequence 0) carrying the payload;
    /// send them in one write / one datagram. RNG draws: session id (0x22 only), then 32 bytes
    /// hedging the RFC 6979 signature.
    pub fn handle_server_attest(
        self,
        bytes: &[u8],
        early_data: Option<(PayloadType, &[u8])>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(ExpectSessionServerFinished, Vec<u8>), Error> {
        self.attest(bytes, early_data, None, rng)
    }

    /// As [`Self::handle_server_attest`], but proposes `session_id` whatever the message type
    /// (tests of the server's checks on proposals the spec forbids).
    #[doc(hidden)]
    pub fn handle_server_attest_proposing_for_testing_only(
        self,
        bytes: &[u8],
        early_data: Option<(PayloadType, &[u8])>,
        session_id: SessionId,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(ExpectSessionServerFinished, Vec<u8>), Error> {
        self.attest(bytes, early_data, Some(session_id), rng)
    }

    /// As [`Self::handle_server_attest`], but keeps the state, so that a ServerInitAndAttest
    /// that fails verification leaves it ready for the next one: over UDP the client answers
    /// only the first one it accepts (XTT-SESSION §5), and a forged or damaged datagram must
    /// not end the handshake. Use the first success only (each one signs a new flight).
    pub fn try_server_attest(
        &self,
        bytes: &[u8],
        early_data: Option<(PayloadType, &[u8])>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(ExpectSessionServerFinished, Vec<u8>), Error> {
        self.attest(bytes, early_data, None, rng)
    }

    fn attest(
        &self,
        bytes: &[u8],
        early_data: Option<(PayloadType, &[u8])>,
        forced_proposal: Option<SessionId>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(ExpectSessionServerFinished, Vec<u8>), Error> {
        let suite = self.suite;
        if early_data.is_some_and(|(_, p)| p.len() > MAX_PAYLOAD_LEN) {
            return Err(Refused::EarlyDataTooLarge.into());
        }
        let v = verify_server_attest(
            suite,
            &self.x25519_private,
            &self.client_init,
            self.config.roots.as_ref(),
            bytes,
        )?;
        let proposed = if let Some(forced) = forced_proposal {
            forced
        } else if early_data.is_some() {
            let mut id = SessionId::NULL;
            while id.is_null() {
                rng.fill_bytes(&mut id.0);
            }
            id
        } else {
            SessionId::NULL
        };
        let mut msg = SessionClientAttest {
            with_payload: early_data.is_some(),
            suite,
            cookie: v.sia.cookie,
            ciphertext: [0u8; 112],
        };
        let attest_ad = attest_ad(&msg);
        let transcript = SessionTranscript {
            suite,
            inner: &v.inner,
            cookie: &v.sia.cookie,
            certificate: &v.attest.certificate,
            server_signature: &v.attest.signature,
            attest_ad: &attest_ad,
        };
        let sig_hash = transcript.client_sig_hash(&proposed, &self.config.client_id);
        let mut entropy = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *entropy);
        let signature = self
            .config
            .longterm_key
            .sign_rfc6979(&sig_hash, &*entropy)?;
        let plaintext = SessionAttestPlaintext {
            session_id: proposed,
            client_id: self.config.client_id,
            signature,
        }
        .encode();
        let ct = v
            .keys
            .client_send()
            .seal(suite, 0, &attest_ad, &plaintext)?;
        if ct.len() != msg.ciphertext.len() {
            return Err(CryptoError::Primitive.into());
        }
        msg.ciphertext.copy_from_slice(&ct);
        let schedule =
            SessionSchedule::new(suite, v.keys.secret(), transcript.session_hash(&plaintext));
        let mut layer = RecordLayer::new(suite, schedule.client_keys());
        let mut out = msg.encode();
        if let Some((payload_type, payload)) = early_data {
            let record = layer
                .seal(&proposed, payload_type, payload, Keep::Yes(0))
                .map_err(|_| CryptoError::Primitive)?;
            out.extend_from_slice(&record);
        }
        Ok((
            ExpectSessionServerFinished {
                client_id: self.config.client_id,
                proposed,
                schedule,
                server_handshake_keys: v.keys.server_send().clone(),
                layer,
                server_certificate: v.certificate,
            },
            out,
        ))
    }
}

/// Sent Session_ClientAttest, waiting for Session_ServerFinished.
pub struct ExpectSessionServerFinished {
    client_id: ClientId,
    proposed: SessionId,
    schedule: SessionSchedule,
    server_handshake_keys: DirectionKeys,
    layer: RecordLayer,
    server_certificate: ServerCertificate,
}

impl fmt::Debug for ExpectSessionServerFinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpectSessionServerFinished")
            .field("suite", &self.schedule.suite)
            .field("proposed", &self.proposed)
            .finish_non_exhaustive()
    }
}

impl ExpectSessionServerFinished {
    /// The session id this client proposed (zero: it asked the server to assign one).
    pub fn proposed_session_id(&self) -> SessionId {
        self.proposed
    }

    /// Processes Session_ServerFinished (server handshake key, sequence 1): the session id must
    /// be the proposed one if the client proposed one (0x22), and non-zero; the awareness proof
    /// is compared in constant time.
    pub fn handle_server_finished(self, bytes: &[u8]) -> Result<ClientSession, Error> {
        let session_id = self.verify_finished(bytes)?;
        Ok(ClientSession {
            session_id,
            client_id: self.client_id,
            layer: self.layer,
            server_certificate: self.server_certificate,
        })
    }

    /// The checks of [`Self::handle_server_finished`] without taking the state: a
    /// Session_ServerFinished that fails them leaves it ready for the next one (over UDP a
    /// forged or damaged datagram must not end the handshake, XTT-SESSION §5).
    pub fn verify_server_finished(&self, bytes: &[u8]) -> Result<(), Error> {
        self.verify_finished(bytes).map(|_| ())
    }

    fn verify_finished(&self, bytes: &[u8]) -> Result<SessionId, Error> {
        if is_error_message(bytes) {
            return Err(Error::ReceivedErrorMessage);
        }
        let suite = self.schedule.suite;
        let msg = SessionServerFinished::decode(bytes)?;
        if msg.suite != suite {
            return Err(InvalidMessage::ParameterMismatch.into());
        }
        let pt = self
            .server_handshake_keys
            .open(suite, 1, &finished_ad(&msg), &msg.ciphertext)?;
        let fin = SessionFinishedPlaintext::decode(&pt)?;
        if fin.session_id.is_null() || (!self.proposed.is_null() && fin.session_id != self.proposed)
        {
            return Err(PeerMisbehaved::WrongSessionId.into());
        }
        let expected = self.schedule.awareness_proof(&fin.session_id);
        if !bool::from(expected.ct_eq(&fin.awareness_proof)) {
            return Err(PeerMisbehaved::BadAwarenessProof.into());
        }
        Ok(fin.session_id)
    }
}

/// An established session, client side. It is not tied to a connection: after a reconnect or an
/// address change keep calling [`Self::seal`] and send the bytes on the new path.
#[derive(Debug)]
pub struct ClientSession {
    session_id: SessionId,
    client_id: ClientId,
    layer: RecordLayer,
    server_certificate: ServerCertificate,
}

impl ClientSession {
    pub(crate) fn new(
        session_id: SessionId,
        client_id: ClientId,
        layer: RecordLayer,
        server_certificate: ServerCertificate,
    ) -> Self {
        Self {
            session_id,
            client_id,
            layer,
            server_certificate,
        }
    }

    /// The session id.
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }
    /// This client's id.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }
    /// The suite.
    pub fn suite(&self) -> SuiteSpec {
        self.layer.suite
    }
    /// The verified server certificate.
    pub fn server_certificate(&self) -> &ServerCertificate {
        &self.server_certificate
    }
    /// The sequence number the next sealed record will carry.
    pub fn next_send_seq(&self) -> u32 {
        self.layer.next_send_seq()
    }
    /// Records from the server dropped so far, by reason.
    pub fn drops(&self) -> DropCounters {
        self.layer.drops()
    }

    /// Seals one record to the server. [`RecordError::RekeyRequired`] once the sequence numbers
    /// are used up: run a new session handshake.
    pub fn seal(
        &mut self,
        payload_type: PayloadType,
        payload: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        self.layer
            .seal(&self.session_id, payload_type, payload, Keep::Yes(0))
    }

    /// [`Self::seal`], appending the record to `out` (a buffer the caller reuses).
    pub fn seal_into(
        &mut self,
        payload_type: PayloadType,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        self.layer
            .seal_append(&self.session_id, payload_type, payload, Keep::Yes(0), out)
    }

    /// Opens one record from the server. Failures drop the record and leave the session intact.
    pub fn open(&mut self, bytes: &[u8]) -> Result<OpenedRecord, RecordError> {
        let record = RecordRegular::decode(bytes)?;
        if record.session_id != self.session_id.0 {
            return Err(RecordError::UnknownSession);
        }
        // A client holds one session: it keeps its expanded keys for the session's lifetime.
        self.layer.open(&record, Keep::Yes(0))
    }

    /// [`Self::open`], decrypting the record where it lies in `bytes` (no copy, no allocation):
    /// the payload is a slice of `bytes`, which then holds plaintext; zeroize it once done.
    pub fn open_in_place<'a>(
        &mut self,
        bytes: &'a mut [u8],
    ) -> Result<OpenedInPlace<'a>, RecordError> {
        let record = RecordInPlace::decode(bytes)?;
        if record.session_id != self.session_id.0 {
            return Err(RecordError::UnknownSession);
        }
        self.layer.open_in_place(record, Keep::Yes(0))
    }

    /// Moves the send counter (tests of sequence exhaustion).
    #[doc(hidden)]
    pub fn set_next_send_seq_for_testing_only(&mut self, seq: u32) {
        self.layer.set_next_send_seq(seq);
    }
}
