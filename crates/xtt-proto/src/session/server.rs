//! The server side of the session handshake.
//!
//! The first two messages are identity provisioning's, so [`Server::handle_client_init`] answers
//! both handshakes and keeps no state; the third message's type tells them apart. A session
//! handshake costs the server no DAA work:
//!
//! ```text
//! Server::handle_client_init(ClientInit) ──▶ ServerInitAndAttest bytes          (no state kept)
//! Server::handle_session_client_attest(ClientAttest [+ record], registry)
//!     ──▶ AcceptedSession { finished bytes, ServerSession, early data }
//! SessionTable::insert(ServerSession, peer, now)                               (then send)
//! ```

use core::fmt;

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::crypto::{AEAD_KEY_LEN, AEAD_NONCE_LEN};
use crate::error::{CryptoError, Error, PeerMisbehaved, Refused};
use crate::identity::ClientId;
use crate::longterm::LongtermPublicKey;
use crate::msgs::{is_error_message, SessionServerFinished};
use crate::record::{
    DuplexKeys, Keep, OpenedRecord, RecordError, RecordKeys, RecordLayer, RecordState, Reservation,
    SessionId,
};
use crate::server::Server;
use crate::suite::SuiteSpec;
use crate::UnixTime;

use super::keys::{SessionSchedule, SessionTranscript};
use super::messages::{
    attest_ad, finished_ad, AttestFlight, SessionAttestPlaintext, SessionFinishedPlaintext,
};

/// Finds the long-term public key registered for a ClientID at identity provisioning.
/// Implemented by the application (database, cache, ...).
pub trait ClientRegistry {
    /// The key bound to `client_id`, or `None` if the id is unknown (or revoked).
    fn longterm_key(&self, client_id: &ClientId) -> Option<LongtermPublicKey>;
}

impl ClientRegistry for std::collections::HashMap<ClientId, LongtermPublicKey> {
    fn longterm_key(&self, client_id: &ClientId) -> Option<LongtermPublicKey> {
        self.get(client_id).cloned()
    }
}

/// A session handshake the server accepted.
#[derive(Debug)]
#[non_exhaustive]
pub struct AcceptedSession {
    /// Session_ServerFinished (54 bytes) to send once the session is stored.
    pub finished: Vec<u8>,
    /// The established session; store it in a [`crate::session_table::SessionTable`] before
    /// sending `finished`.
    pub session: ServerSession,
    /// The payload of the early-data record of a 0x22 flight (None for 0x21, or if the record was
    /// authentic but of an unknown payload type: dropped and counted).
    pub early_data: Option<OpenedRecord>,
    /// For a server with a finished cache and a flight from a datagram transport: hand it to
    /// [`Server::remember_finished`] once the session is stored, so a retransmission of the
    /// flight is answered with `finished`. Not before: a session that failed to be stored must
    /// not be answered as established.
    pub retransmission: Option<FinishedReceipt>,
    /// The cookie the flight carried. This server's replay guard has recorded it; a server
    /// whose cookie keys other nodes share must also claim it where they all see it (xtt-server:
    /// its session store or registry) before sending `finished`, or the same flight replayed to
    /// another node would make a second session with the same keys.
    pub cookie_id: crate::cookie::CookieId,
    /// When that cookie expires (issue time + lifetime): how long a claim must be kept.
    pub cookie_expires_at: UnixTime,
}

/// Names an accepted flight and how long its Session_ServerFinished may be resent; see
/// [`AcceptedSession::retransmission`].
#[derive(Debug)]
pub struct FinishedReceipt {
    flight_key: [u8; 32],
    expires_at: UnixTime,
}

/// An established session, server side, not yet stored.
#[derive(Debug)]
pub struct ServerSession {
    pub(crate) id: SessionId,
    pub(crate) client_id: ClientId,
    pub(crate) layer: RecordLayer,
}

impl ServerSession {
    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }
    /// The authenticated client.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }
    /// The suite.
    pub fn suite(&self) -> SuiteSpec {
        self.layer.suite
    }
}

impl Server {
    /// If `bytes` are exactly a session flight this server already accepted (within the cookie
    /// lifetime, with [`Server::with_finished_cache`]), the Session_ServerFinished it sent then:
    /// resend it and do nothing else. Drivers on lossy transports call this before
    /// [`Self::handle_session_client_attest`]; a `None` means "process normally" (a replay the
    /// cache does not know is then refused by the replay guard).
    pub fn retransmitted_session_finished(&self, bytes: &[u8], now: UnixTime) -> Option<Vec<u8>> {
        self.finished_cache.as_ref()?.get(bytes, now)
    }

    /// Keeps `finished` for [`Self::retransmitted_session_finished`]: call it once the session
    /// of the [`AcceptedSession`] that carried `receipt` is stored (in its session table, and in
    /// a shared store if there is one).
    pub fn remember_finished(&self, receipt: FinishedReceipt, finished: &[u8], now: UnixTime) {
        if let Some(cache) = self.finished_cache.as_ref() {
            cache.insert_keyed(receipt.flight_key, finished, receipt.expires_at, now);
        }
    }

    /// Processes the client's third flight of a session handshake: Session_ClientAttest_NoPayload
    /// (0x21, exactly 248 bytes) or Session_ClientAttest_Payload (0x22, 248 bytes followed by
    /// exactly one record).
    ///
    /// Checks, in order: layout; cookie authentic, unexpired, same suite; AEAD; session-id
    /// proposal allowed for the type (0x21: zero, 0x22: non-zero); ClientID known to `registry`;
    /// the client's ECDSA signature over the full transcript; for 0x22 the early record (same
    /// session id, sequence 0, authentic). Only then is the cookie recorded in the replay guard
    /// (a failed attempt leaves nothing behind) and a session id assigned: the proposal for
    /// 0x22, 16 bytes from `rng` for 0x21.
    ///
    /// The same as [`Self::open_session_client_attest`], a lookup of
    /// [`OpenedSessionAttest::client_id`], then [`Self::finish_session_client_attest`]: drivers
    /// whose key lookup may block (a database) split the step there.
    pub fn handle_session_client_attest(
        &self,
        bytes: &[u8],
        now: UnixTime,
        registry: &dyn ClientRegistry,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<AcceptedSession, Error> {
        let opened = self.open_session_client_attest(bytes, now)?;
        let key = registry.longterm_key(&opened.client_id());
        self.finish_session_client_attest(opened, key.as_ref(), now, rng)
    }

    /// The first half of [`Self::handle_session_client_attest`]: layout, cookie, AEAD and the
    /// session-id proposal. Records nothing; what it returns names the client whose long-term
    /// key [`Self::finish_session_client_attest`] needs.
    pub fn open_session_client_attest<'a>(
        &self,
        bytes: &'a [u8],
        now: UnixTime,
    ) -> Result<OpenedSessionAttest<'a>, Error> {
        if is_error_message(bytes) {
            return Err(Error::ReceivedErrorMessage);
        }
        let flight = AttestFlight::decode(bytes)?;
        let msg = &flight.attest;
        let (cookie, rebuilt) = self.reopen(msg.suite, &msg.cookie, now)?;
        let ad = attest_ad(msg);
        let pt = rebuilt
            .keys
            .client_send()
            .open(rebuilt.suite, 0, &ad, &msg.ciphertext)?;
        let attest = SessionAttestPlaintext::decode(&pt)?;
        if attest.session_id.is_null() == msg.with_payload {
            return Err(PeerMisbehaved::BadSessionIdProposal.into());
        }
        Ok(OpenedSessionAttest {
            bytes,
            flight,
            cookie,
            rebuilt,
            ad,
            attest,
            remember_finished: true,
        })
    }

    /// The second half of [`Self::handle_session_client_attest`], with the long-term key
    /// registered for [`OpenedSessionAttest::client_id`] (`None`: unknown client, refused).
    pub fn finish_session_client_attest(
        &self,
        opened: OpenedSessionAttest<'_>,
        longterm_key: Option<&LongtermPublicKey>,
        now: UnixTime,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<AcceptedSession, Error> {
        let OpenedSessionAttest {
            bytes,
            flight,
            cookie,
            rebuilt: r,
            ad,
            attest,
            remember_finished,
        } = opened;
        let msg = &flight.attest;
        let suite = r.suite;
        let longterm_key = longterm_key.ok_or(Refused::UnknownClient)?;
        let transcript = SessionTranscript {
            suite,
            inner: &r.inner,
            cookie: &msg.cookie,
            certificate: self.certificate().as_bytes(),
            server_signature: &r.server_signature,
            attest_ad: &ad,
        };
        let sig_hash = transcript.client_sig_hash(&attest.session_id, &attest.client_id);
        if !longterm_key.verify(&sig_hash, &attest.signature) {
            return Err(PeerMisbehaved::BadLongtermSignature.into());
        }
        let schedule = SessionSchedule::new(
            suite,
            r.keys.secret(),
            transcript.session_hash(&attest.encode()),
        );
        let mut layer = RecordLayer::new(suite, schedule.server_keys());
        let early_data = match &flight.early_record {
            None => None,
            Some(record) => {
                if record.session_id != attest.session_id.0 || record.seq_num != 0 {
                    return Err(PeerMisbehaved::BadEarlyRecord.into());
                }
                match layer.open(record, Keep::No) {
                    Ok(opened) => Some(opened),
                    Err(RecordError::UnknownPayloadType(_)) => None,
                    Err(_) => return Err(PeerMisbehaved::BadEarlyRecord.into()),
                }
            }
        };
        self.record_cookie(&cookie, now)?;
        let session_id = if attest.session_id.is_null() {
            let mut id = SessionId::NULL;
            while id.is_null() {
                rng.fill_bytes(&mut id.0);
            }
            id
        } else {
            attest.session_id
        };
        let plaintext = SessionFinishedPlaintext {
            session_id,
            awareness_proof: schedule.awareness_proof(&session_id),
        }
        .encode();
        let mut fin = SessionServerFinished {
            suite,
            ciphertext: [0u8; 48],
        };
        let ct = r
            .keys
            .server_send()
            .seal(suite, 1, &finished_ad(&fin), &plaintext)?;
        if ct.len() != fin.ciphertext.len() {
            return Err(CryptoError::Primitive.into());
        }
        fin.ciphertext.copy_from_slice(&ct);
        let finished = fin.encode();
        let retransmission =
            (remember_finished && self.finished_cache.is_some()).then(|| FinishedReceipt {
                flight_key: crate::handshake_cache::FinishedCache::key(bytes),
                expires_at: UnixTime(now.0.saturating_add(self.cookie_lifetime_secs())),
            });
        Ok(AcceptedSession {
            finished,
            session: ServerSession {
                id: session_id,
                client_id: attest.client_id,
                layer,
            },
            early_data,
            retransmission,
            cookie_id: cookie.id,
            cookie_expires_at: UnixTime(
                cookie
                    .contents
                    .issued_at
                    .0
                    .saturating_add(self.cookie_lifetime_secs()),
            ),
        })
    }
}

/// A session flight half processed by [`Server::open_session_client_attest`]: its cookie and
/// AEAD checked out and its plaintext names a client, but nothing is recorded and the client's
/// signature is not checked yet. Holds handshake keys (zeroized on drop, like the cache entry
/// they came from); dropping it abandons the handshake.
pub struct OpenedSessionAttest<'a> {
    bytes: &'a [u8],
    flight: AttestFlight<'a>,
    cookie: crate::cookie::OpenedCookie,
    rebuilt: Box<crate::server::Rebuilt>,
    ad: [u8; super::keys::ATTEST_AD_LEN],
    attest: SessionAttestPlaintext,
    remember_finished: bool,
}

impl OpenedSessionAttest<'_> {
    /// The flight came over a reliable stream (TCP), which never retransmits it: its
    /// Session_ServerFinished is not kept in the finished cache (whose room is for datagram
    /// transports, see [`Server::with_finished_cache`]).
    pub fn from_reliable_stream(mut self) -> Self {
        self.remember_finished = false;
        self
    }

    /// The ClientID the flight claims (not authenticated until its signature is verified by
    /// [`Server::finish_session_client_attest`]): look its long-term key up with it.
    pub fn client_id(&self) -> ClientId {
        self.attest.client_id
    }
}

impl fmt::Debug for OpenedSessionAttest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedSessionAttest")
            .field("client_id", &self.attest.client_id)
            .finish_non_exhaustive()
    }
}

/// Length of [`ServerSession::export_keys`]: the server's send key and IV, then its receive key
/// and IV (32 + 12 + 32 + 12).
pub const SESSION_KEYS_LEN: usize = 2 * (AEAD_KEY_LEN + AEAD_NONCE_LEN);

impl ServerSession {
    /// Both directions' raw record keys, for a session store shared between server nodes. These
    /// are the session's secrets: seal them before they leave the process (xtt-server seals them
    /// under the deployment's storage key) and let the buffer zeroize itself.
    pub fn export_keys(&self) -> Zeroizing<[u8; SESSION_KEYS_LEN]> {
        let k = self.layer.keys();
        let mut out = Zeroizing::new([0u8; SESSION_KEYS_LEN]);
        let parts: [&[u8]; 4] = [&k.send.key, &k.send.iv, &k.recv.key, &k.recv.iv];
        for (d, s) in out.iter_mut().zip(parts.iter().flat_map(|p| p.iter())) {
            *d = *s;
        }
        out
    }

    /// The session [`Self::export_keys`] came from, continuing at `state` within `limits` (a
    /// session another server node established or held before).
    pub fn restore(
        id: SessionId,
        client_id: ClientId,
        suite: SuiteSpec,
        keys: &[u8; SESSION_KEYS_LEN],
        state: &RecordState,
        limits: Reservation,
    ) -> Self {
        let mut d = DuplexKeys {
            send: RecordKeys {
                key: [0; AEAD_KEY_LEN],
                iv: [0; AEAD_NONCE_LEN],
            },
            recv: RecordKeys {
                key: [0; AEAD_KEY_LEN],
                iv: [0; AEAD_NONCE_LEN],
            },
        };
        {
            let dst: [&mut [u8]; 4] = [
                &mut d.send.key,
                &mut d.send.iv,
                &mut d.recv.key,
                &mut d.recv.iv,
            ];
            let mut src = keys.iter();
            for part in dst {
                for (b, s) in part.iter_mut().zip(&mut src) {
                    *b = *s;
                }
            }
        }
        Self {
            id,
            client_id,
            layer: RecordLayer::restore(suite, d, state, limits),
        }
    }

    /// Sets the limits of a freshly accepted session before it is stored (a session shared
    /// between server nodes starts with a durable reservation).
    pub fn with_reservation(mut self, limits: Reservation) -> Self {
        self.layer.set_limits(limits);
        self
    }

    /// A session with keys derived from `seed` instead of a handshake, for memory and fuzz
    /// fixtures. Never use it in production: anyone knowing the seed has the keys.
    #[doc(hidden)]
    pub fn new_for_testing_only(
        id: SessionId,
        client_id: ClientId,
        suite: SuiteSpec,
        seed: &[u8; 64],
    ) -> Self {
        let schedule = SessionSchedule::new(suite, seed, *seed);
        Self {
            id,
            client_id,
            layer: RecordLayer::new(suite, schedule.server_keys()),
        }
    }

    /// The client half matching [`Self::new_for_testing_only`] with the same seed.
    #[doc(hidden)]
    pub fn client_for_testing_only(
        id: SessionId,
        client_id: ClientId,
        suite: SuiteSpec,
        seed: &[u8; 64],
        server_certificate: crate::cert::ServerCertificate,
    ) -> super::ClientSession {
        let schedule = SessionSchedule::new(suite, seed, *seed);
        super::client::ClientSession::new(
            id,
            client_id,
            RecordLayer::new(suite, schedule.client_keys()),
            server_certificate,
        )
    }
}

impl fmt::Display for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {:?} of {}", self.id, self.client_id)
    }
}
