//! Record_Regular (XTT-SESSION §1.4, §3, §4): sealing and opening records of an established
//! session, per-direction sequence numbers and the receiver's replay window.
//!
//! A record is `header(24) ‖ protected(payload_type ‖ payload) ‖ tag(16)`; the header
//! (type, length, version, session id, sequence number) is the additional data. Suites 1–4 encrypt
//! with their AEAD; suites 5 and 6 send the payload in clear with
//! `tag = prf(key, nonce ‖ header ‖ payload_type ‖ payload, 16)`.
//!
//! Failures here never end the session: a record that does not authenticate, repeats a number or
//! falls behind the window is dropped and counted ([`DropCounters`]), and the next good record is
//! accepted as if nothing had happened. Only the sender's sequence-number exhaustion ends a
//! session ([`RecordError::RekeyRequired`]).

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::{MsgType, ERROR_MESSAGE, VERSION};
use crate::crypto::{self, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};
use crate::error::InvalidMessage;
use crate::identity::ClientId;
use crate::key_schedule::nonce;
use crate::msgs::{RecordRegular, RECORD_HEADER_LEN, RECORD_OVERHEAD};
use crate::replay_window::{ReplayReject, ReplayWindow};
use crate::suite::{RecordProtection, SuiteSpec};

/// Size of a session id.
pub const SESSION_ID_LEN: usize = 16;
/// Largest payload of one record: its length field (41 + n) must fit in a u16.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - RECORD_OVERHEAD;

/// Identifies a session, independently of connections and addresses (XTT-SESSION §6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; SESSION_ID_LEN]);

impl SessionId {
    /// The all-zero id: in Session_ClientAttest_NoPayload it asks the server to assign one; it is
    /// never the id of a session.
    pub const NULL: SessionId = SessionId([0; SESSION_ID_LEN]);

    /// Whether this is the all-zero id.
    pub fn is_null(&self) -> bool {
        self.0 == [0; SESSION_ID_LEN]
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// What a record carries (the first byte of its protected part).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// 0x01: a queue-protocol message (e.g. MQTT-SN-like application traffic).
    QueueProtocol,
    /// 0x02: an IPv6 packet.
    Ipv6,
}

impl PayloadType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            PayloadType::QueueProtocol => 0x01,
            PayloadType::Ipv6 => 0x02,
        }
    }

    /// Parses the wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0x01 => Some(PayloadType::QueueProtocol),
            0x02 => Some(PayloadType::Ipv6),
            _ => None,
        }
    }
}

/// Why a record was not accepted (or could not be sent). None of these end the session except
/// [`RecordError::RekeyRequired`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not a well-formed Record_Regular.
    #[error("malformed record: {0}")]
    Malformed(#[from] InvalidMessage),
    /// No (live) session has this id. The driver answers with an Error message
    /// ([`RecordError::alert_bytes`]); the client takes it only as a hint to re-handshake.
    #[error("unknown session")]
    UnknownSession,
    /// The sequence number was already accepted.
    #[error("duplicate record")]
    Duplicate,
    /// The sequence number is older than the replay window.
    #[error("record older than the replay window")]
    TooOld,
    /// The tag does not verify (forged, corrupted or truncated).
    #[error("record failed authentication")]
    Forged,
    /// Authentic, but the payload type is neither queue_protocol nor ipv6; dropped and counted.
    #[error("unknown payload type {0:#04x}")]
    UnknownPayloadType(u8),
    /// The payload does not fit in one record.
    #[error("payload of {0} bytes exceeds the record maximum")]
    PayloadTooLarge(usize),
    /// This direction used its last sequence number: a new session handshake is needed.
    #[error("sequence numbers exhausted: a new session handshake is required")]
    RekeyRequired,
    /// The local primitive failed (bad key material).
    #[error("local crypto failure")]
    Crypto,
    /// Authentic and fresh, but at or beyond this server node's receive reservation (a session
    /// shared between nodes, see [`Reservation`]): nothing was recorded; the driver raises the
    /// reservation durably and opens the record again.
    #[error("record {0} is beyond this node's receive reservation")]
    BeyondReservation(u32),
    /// This server node used every send sequence number it reserved (a session shared between
    /// nodes, see [`Reservation`]): the driver raises the reservation durably and seals again.
    #[error("this node's send reservation is used up")]
    SendReservationExhausted,
}

impl RecordError {
    /// The bytes to send back, if any: only a record for an unknown session is answered (with
    /// the 4-byte Error message); dropped records are never answered (XTT-SESSION §3, §6).
    pub fn alert_bytes(&self) -> Option<[u8; 4]> {
        match self {
            RecordError::UnknownSession => Some(ERROR_MESSAGE),
            _ => None,
        }
    }
}

impl From<ReplayReject> for RecordError {
    fn from(r: ReplayReject) -> Self {
        match r {
            ReplayReject::Duplicate => RecordError::Duplicate,
            ReplayReject::TooOld => RecordError::TooOld,
        }
    }
}

/// Records dropped by a receiver, by reason (saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Sequence number already accepted.
    pub duplicate: u32,
    /// Older than the replay window.
    pub too_old: u32,
    /// Failed authentication.
    pub forged: u32,
    /// Authentic with an unknown payload type.
    pub unknown_payload_type: u32,
}

impl DropCounters {
    fn count(&mut self, e: &RecordError) {
        let c = match e {
            RecordError::Duplicate => &mut self.duplicate,
            RecordError::TooOld => &mut self.too_old,
            RecordError::Forged => &mut self.forged,
            RecordError::UnknownPayloadType(_) => &mut self.unknown_payload_type,
            _ => return,
        };
        *c = c.saturating_add(1);
    }

    /// Adds another receiver's counts.
    pub fn add(&mut self, o: &DropCounters) {
        self.duplicate = self.duplicate.saturating_add(o.duplicate);
        self.too_old = self.too_old.saturating_add(o.too_old);
        self.forged = self.forged.saturating_add(o.forged);
        self.unknown_payload_type = self
            .unknown_payload_type
            .saturating_add(o.unknown_payload_type);
    }
}

/// One direction's session key and IV (raw: 44 bytes; AEAD key schedules are expanded per use,
/// which keeps an idle session small, see the `session` module docs).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RecordKeys {
    pub(crate) key: [u8; AEAD_KEY_LEN],
    pub(crate) iv: [u8; AEAD_NONCE_LEN],
}

impl fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordKeys").finish_non_exhaustive()
    }
}

/// The 24-byte cleartext header of a record of `total` bytes.
fn record_header(
    session_id: &SessionId,
    seq: u32,
    total: usize,
) -> Result<[u8; RECORD_HEADER_LEN], InvalidMessage> {
    let length = u16::try_from(total).map_err(|_| InvalidMessage::LengthOutOfRange(u16::MAX))?;
    let mut out = [0u8; RECORD_HEADER_LEN];
    let mut w = out.iter_mut();
    let parts: [&[u8]; 5] = [
        &[MsgType::RECORD_REGULAR.0],
        &length.to_be_bytes(),
        &[VERSION],
        &session_id.0,
        &seq.to_be_bytes(),
    ];
    for (d, s) in (&mut w).zip(parts.iter().flat_map(|p| p.iter())) {
        *d = *s;
    }
    Ok(out)
}

fn integrity_tag(
    suite: SuiteSpec,
    key: &[u8; AEAD_KEY_LEN],
    nonce: &[u8; AEAD_NONCE_LEN],
    header: &[u8],
    plain: &[u8],
) -> [u8; AEAD_TAG_LEN] {
    let mut tag = [0u8; AEAD_TAG_LEN];
    suite.prf(key, &[nonce, header, plain], &mut tag);
    tag
}

impl RecordKeys {
    /// Seals one record: `header ‖ protected(payload_type ‖ payload) ‖ tag`.
    pub(crate) fn seal(
        &self,
        suite: SuiteSpec,
        session_id: &SessionId,
        seq: u32,
        payload_type: PayloadType,
        payload: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(RecordError::PayloadTooLarge(payload.len()));
        }
        let total = RECORD_OVERHEAD + payload.len();
        let header = record_header(session_id, seq, total)?;
        let n = nonce(&self.iv, seq);
        let mut plain = Zeroizing::new(Vec::with_capacity(1 + payload.len()));
        plain.push(payload_type.to_u8());
        plain.extend_from_slice(payload);
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&header);
        match suite.record_protection() {
            RecordProtection::Aead(alg) => {
                let ct = crypto::aead_seal(alg, &self.key, &n, &header, &plain)
                    .map_err(|_| RecordError::Crypto)?;
                out.extend_from_slice(&ct);
            }
            RecordProtection::IntegrityOnly => {
                out.extend_from_slice(&plain);
                out.extend_from_slice(&integrity_tag(suite, &self.key, &n, &header, &plain));
            }
        }
        if out.len() != total {
            return Err(RecordError::Crypto);
        }
        Ok(out)
    }

    /// Authenticates (and decrypts) a decoded record; returns `payload_type ‖ payload`.
    pub(crate) fn open(
        &self,
        suite: SuiteSpec,
        record: &RecordRegular<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, RecordError> {
        let header = record.header()?;
        let n = nonce(&self.iv, record.seq_num);
        match suite.record_protection() {
            RecordProtection::Aead(alg) => {
                crypto::aead_open(alg, &self.key, &n, &header, record.ciphertext)
                    .map_err(|_| RecordError::Forged)
            }
            RecordProtection::IntegrityOnly => {
                let split = record
                    .ciphertext
                    .len()
                    .checked_sub(AEAD_TAG_LEN)
                    .ok_or(RecordError::Forged)?;
                let (plain, tag) = record.ciphertext.split_at(split);
                let expected = integrity_tag(suite, &self.key, &n, &header, plain);
                if bool::from(expected.ct_eq(tag)) {
                    Ok(Zeroizing::new(plain.to_vec()))
                } else {
                    Err(RecordError::Forged)
                }
            }
        }
    }
}

/// An accepted record.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedRecord {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Its sequence number (stream drivers may additionally insist on strict order).
    pub seq: u32,
    /// What the payload is.
    pub payload_type: PayloadType,
    /// The payload (zeroized when dropped).
    pub payload: Zeroizing<Vec<u8>>,
}

/// An accepted record delivered by the server's [`crate::session_table::SessionTable`], with the
/// authenticated sender.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The client that sent it (authenticated by the session handshake).
    pub client_id: ClientId,
    /// The record.
    pub record: OpenedRecord,
}

/// Sequence-number limits of a session shared between server nodes: the node accepts client
/// numbers below `recv_limit` and sends numbers below `send_limit`, and raises either only after
/// the new limit is durable in the shared store. Ranges handed to different owners never
/// overlap, so no number is accepted twice and no nonce is used twice across nodes, even when
/// an owner crashes. A session on one node has no limits ([`Reservation::NONE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Client sequence numbers below this may be accepted.
    pub recv_limit: u32,
    /// Server sequence numbers below this may be used.
    pub send_limit: u32,
}

impl Reservation {
    /// No limit (a session that lives on one node only).
    pub const NONE: Reservation = Reservation {
        recv_limit: u32::MAX,
        send_limit: u32::MAX,
    };
}

/// Where a session's record layer stands, for handing it exactly from one server node to
/// another: the receive window (as [`ReplayWindow::to_parts`]) and the next number to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordState {
    /// Highest accepted client number + 1 (0: none accepted yet).
    pub recv_next: u64,
    /// The window's bitmap (ring layout, see [`crate::replay_window`]).
    pub recv_bits: [u64; 2],
    /// The next server sequence number.
    pub send_next: u32,
}

impl RecordState {
    /// The state a node starts from when the previous owner could not hand over (it crashed):
    /// every client number below `recv_floor` is refused, sending resumes at `send_next`.
    pub fn after_crash(recv_floor: u32, send_next: u32) -> Self {
        let (recv_next, recv_bits) =
            ReplayWindow::<2>::refusing_below(u64::from(recv_floor)).to_parts();
        Self {
            recv_next,
            recv_bits,
            send_next,
        }
    }

    /// Highest accepted client number + 1, as u32 (saturating).
    pub fn recv_next_u32(&self) -> u32 {
        u32::try_from(self.recv_next).unwrap_or(u32::MAX)
    }
}

/// Both directions' keys of one session, kept behind one allocation: a hash table that grows
/// moves its entries, and keys that live in the table would leave unzeroized copies behind.
#[derive(Debug, Zeroize, ZeroizeOnDrop)]
pub(crate) struct DuplexKeys {
    pub(crate) send: RecordKeys,
    pub(crate) recv: RecordKeys,
}

/// The record layer of one established session, either side: keys, the next sequence number to
/// send, the replay window and drop counters. ~56 bytes inline plus one 88-byte allocation.
#[derive(Debug)]
pub(crate) struct RecordLayer {
    pub(crate) suite: SuiteSpec,
    keys: Box<DuplexKeys>,
    next_send: u32,
    window: ReplayWindow,
    drops: DropCounters,
    limits: Reservation,
}

impl RecordLayer {
    pub(crate) fn new(suite: SuiteSpec, keys: DuplexKeys) -> Self {
        Self {
            suite,
            keys: Box::new(keys),
            next_send: 0,
            window: ReplayWindow::new(),
            drops: DropCounters::default(),
            limits: Reservation::NONE,
        }
    }

    /// A layer continuing from `state` within `limits` (a session taken over from another node).
    pub(crate) fn restore(
        suite: SuiteSpec,
        keys: DuplexKeys,
        state: &RecordState,
        limits: Reservation,
    ) -> Self {
        Self {
            suite,
            keys: Box::new(keys),
            next_send: state.send_next,
            window: ReplayWindow::from_parts(state.recv_next, state.recv_bits),
            drops: DropCounters::default(),
            limits,
        }
    }

    /// Where this layer stands.
    pub(crate) fn state(&self) -> RecordState {
        let (recv_next, recv_bits) = self.window.to_parts();
        RecordState {
            recv_next,
            recv_bits,
            send_next: self.next_send,
        }
    }

    /// Sets the limits (a fresh session, before anything was sent or received).
    pub(crate) fn set_limits(&mut self, to: Reservation) {
        self.limits = to;
    }

    /// Raises the limits (never lowers them).
    pub(crate) fn raise_limits(&mut self, to: Reservation) {
        self.limits.recv_limit = self.limits.recv_limit.max(to.recv_limit);
        self.limits.send_limit = self.limits.send_limit.max(to.send_limit);
    }

    pub(crate) fn keys(&self) -> &DuplexKeys {
        &self.keys
    }

    /// Seals the next record. The last number, 2³² − 1, is never used: once the sender reaches it
    /// every call fails with [`RecordError::RekeyRequired`] (XTT-SESSION §3).
    pub(crate) fn seal(
        &mut self,
        session_id: &SessionId,
        payload_type: PayloadType,
        payload: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        if self.next_send == u32::MAX {
            return Err(RecordError::RekeyRequired);
        }
        if self.next_send >= self.limits.send_limit {
            return Err(RecordError::SendReservationExhausted);
        }
        let out = self.keys.send.seal(
            self.suite,
            session_id,
            self.next_send,
            payload_type,
            payload,
        )?;
        self.next_send += 1;
        Ok(out)
    }

    /// Window check, authentication, then window update; counts drops.
    pub(crate) fn open(&mut self, record: &RecordRegular<'_>) -> Result<OpenedRecord, RecordError> {
        let r = self.open_uncounted(record);
        if let Err(e) = &r {
            self.drops.count(e);
        }
        r
    }

    fn open_uncounted(&mut self, record: &RecordRegular<'_>) -> Result<OpenedRecord, RecordError> {
        self.window.check(record.seq_num)?;
        let plain = self.keys.recv.open(self.suite, record)?;
        // Checked after authentication, so a forged number can never make a node reserve.
        if record.seq_num >= self.limits.recv_limit {
            return Err(RecordError::BeyondReservation(record.seq_num));
        }
        // Authentic: the number is used up even if the payload type turns out unknown.
        self.window.record(record.seq_num)?;
        let (&pt, payload) = plain.split_first().ok_or(RecordError::Forged)?;
        let payload_type = PayloadType::from_u8(pt).ok_or(RecordError::UnknownPayloadType(pt))?;
        Ok(OpenedRecord {
            session_id: SessionId(record.session_id),
            seq: record.seq_num,
            payload_type,
            payload: Zeroizing::new(payload.to_vec()),
        })
    }

    pub(crate) fn drops(&self) -> DropCounters {
        self.drops
    }

    pub(crate) fn next_send_seq(&self) -> u32 {
        self.next_send
    }

    pub(crate) fn set_next_send_seq(&mut self, seq: u32) {
        self.next_send = seq;
    }

    /// Heap bytes owned (the boxed keys), for memory accounting.
    pub(crate) const HEAP_BYTES: usize = core::mem::size_of::<DuplexKeys>();
}
