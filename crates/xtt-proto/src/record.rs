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
use core::ops::Deref;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::{MsgType, ERROR_MESSAGE, VERSION};
use crate::crypto::{AeadAlg, AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN};
use crate::error::InvalidMessage;
use crate::identity::ClientId;
use crate::key_schedule::nonce;
use crate::msgs::{RecordRegular, RECORD_HEADER_LEN, RECORD_OVERHEAD};
use crate::record_cipher::RecordCipher;
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
    /// reservation durably and opens the record again. Only the copying open can do that: the
    /// in-place open has decrypted the buffer by then (the check follows authentication, so a
    /// forged record never makes the driver write), so sessions with a reservation are opened
    /// with the copying open.
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

/// One direction's session key and IV (raw: 44 bytes). An idle session keeps only these; the
/// AEAD key schedule is expanded per record, or kept in [`HotKeys`] while the session is busy
/// (see the `session` module docs).
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

/// A direction's cipher for one operation: the kept one, or one expanded for this record only.
// Lives on the stack for one record; boxing the expanded variant would allocate per record.
#[allow(clippy::large_enum_variant)]
enum CipherRef<'a> {
    Kept(&'a RecordCipher),
    Once(RecordCipher),
}

impl CipherRef<'_> {
    /// The cipher if it was expanded for this operation (the caller may keep it).
    fn fresh(self) -> Option<RecordCipher> {
        match self {
            CipherRef::Kept(_) => None,
            CipherRef::Once(c) => Some(c),
        }
    }
}

impl Deref for CipherRef<'_> {
    type Target = RecordCipher;
    fn deref(&self) -> &RecordCipher {
        match self {
            CipherRef::Kept(c) => c,
            CipherRef::Once(c) => c,
        }
    }
}

impl RecordKeys {
    /// `kept` if the session holds this direction's expanded key, else a fresh expansion.
    fn cipher<'a>(
        &self,
        alg: AeadAlg,
        kept: Option<&'a RecordCipher>,
    ) -> Result<CipherRef<'a>, RecordError> {
        Ok(match kept {
            Some(c) => CipherRef::Kept(c),
            None => {
                CipherRef::Once(RecordCipher::new(alg, &self.key).map_err(|_| RecordError::Crypto)?)
            }
        })
    }

    /// Appends one record to `out`: `header ‖ protected(payload_type ‖ payload) ‖ tag`, sealed in
    /// place (the payload is copied once, into `out`). Returns the cipher if it was expanded
    /// for this record (so the caller may keep it). On failure `out` is as it was.
    pub(crate) fn seal_append(
        &self,
        suite: SuiteSpec,
        kept: Option<&RecordCipher>,
        (session_id, seq): (&SessionId, u32),
        payload_type: PayloadType,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<RecordCipher>, RecordError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(RecordError::PayloadTooLarge(payload.len()));
        }
        let total = RECORD_OVERHEAD + payload.len();
        let header = record_header(session_id, seq, total)?;
        let n = nonce(&self.iv, seq);
        let start = out.len();
        out.reserve(total);
        out.extend_from_slice(&header);
        out.push(payload_type.to_u8());
        out.extend_from_slice(payload);
        let body_at = start + RECORD_HEADER_LEN;
        let sealed = match (suite.record_protection(), out.get_mut(body_at..)) {
            (_, None) => Err(RecordError::Crypto),
            (RecordProtection::Aead(alg), Some(body)) => self.cipher(alg, kept).and_then(|c| {
                let tag = c
                    .seal_in_place(&n, &header, body)
                    .map_err(|_| RecordError::Crypto)?;
                Ok((tag, c.fresh()))
            }),
            (RecordProtection::IntegrityOnly, Some(body)) => {
                Ok((integrity_tag(suite, &self.key, &n, &header, body), None))
            }
        };
        match sealed {
            Ok((tag, fresh)) => {
                out.extend_from_slice(&tag);
                Ok(fresh)
            }
            Err(e) => {
                // The plaintext copied in must not linger in the buffer's spare capacity.
                if let Some(tail) = out.get_mut(start..) {
                    tail.zeroize();
                }
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Seals one record into a new buffer of exactly its size.
    #[cfg(test)]
    pub(crate) fn seal(
        &self,
        suite: SuiteSpec,
        session_id: &SessionId,
        seq: u32,
        payload_type: PayloadType,
        payload: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(RECORD_OVERHEAD + payload.len());
        self.seal_append(
            suite,
            None,
            (session_id, seq),
            payload_type,
            payload,
            &mut out,
        )?;
        Ok(out)
    }

    /// Authenticates (and decrypts) a decoded record into a new buffer: `payload_type ‖ payload`
    /// (one copy of the protected part, decrypted in place). Returns the cipher if it was
    /// expanded for this record and the record was authentic.
    pub(crate) fn open(
        &self,
        suite: SuiteSpec,
        kept: Option<&RecordCipher>,
        record: &RecordRegular<'_>,
    ) -> Result<(Zeroizing<Vec<u8>>, Option<RecordCipher>), RecordError> {
        let header = record.header()?;
        let n = nonce(&self.iv, record.seq_num);
        match suite.record_protection() {
            RecordProtection::Aead(alg) => {
                let c = self.cipher(alg, kept)?;
                let mut buf = Zeroizing::new(record.ciphertext.to_vec());
                let len = c
                    .open_in_place(&n, &header, &mut buf)
                    .map_err(|_| RecordError::Forged)?
                    .len();
                buf.truncate(len);
                Ok((buf, c.fresh()))
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
                    Ok((Zeroizing::new(plain.to_vec()), None))
                } else {
                    Err(RecordError::Forged)
                }
            }
        }
    }
}

impl RecordKeys {
    /// Authenticates (and decrypts) `body` (`protected ‖ tag`) where it lies; returns the
    /// plaintext `payload_type ‖ payload` as the front of `body`, and the cipher if it was
    /// expanded for this record and the record was authentic. On failure ring has already
    /// overwritten the would-be plaintext with zeros (AEAD suites); the integrity-only suites
    /// never encrypt.
    fn open_in_place<'a>(
        &self,
        suite: SuiteSpec,
        kept: Option<&RecordCipher>,
        (header, seq): (&[u8; RECORD_HEADER_LEN], u32),
        body: &'a mut [u8],
    ) -> Result<(&'a [u8], Option<RecordCipher>), RecordError> {
        let n = nonce(&self.iv, seq);
        match suite.record_protection() {
            RecordProtection::Aead(alg) => {
                let c = self.cipher(alg, kept)?;
                let plain = c
                    .open_in_place(&n, header, body)
                    .map_err(|_| RecordError::Forged)?;
                Ok((&*plain, c.fresh()))
            }
            RecordProtection::IntegrityOnly => {
                let split = body
                    .len()
                    .checked_sub(AEAD_TAG_LEN)
                    .ok_or(RecordError::Forged)?;
                let (plain, tag) = body.split_at(split);
                let expected = integrity_tag(suite, &self.key, &n, header, plain);
                if bool::from(expected.ct_eq(tag)) {
                    Ok((plain, None))
                } else {
                    Err(RecordError::Forged)
                }
            }
        }
    }
}

/// A Record_Regular in a mutable buffer, to be opened where it lies
/// ([`crate::session_table::SessionTable::open_in_place`],
/// [`crate::session::ClientSession::open_in_place`]): its header fields, and the protected part.
#[derive(Debug)]
pub(crate) struct RecordInPlace<'a> {
    pub(crate) session_id: [u8; SESSION_ID_LEN],
    pub(crate) seq: u32,
    header: [u8; RECORD_HEADER_LEN],
    body: &'a mut [u8],
}

impl<'a> RecordInPlace<'a> {
    /// Decodes exactly one record (the checks of [`RecordRegular::decode`]).
    pub(crate) fn decode(bytes: &'a mut [u8]) -> Result<Self, RecordError> {
        let (session_id, seq, header) = {
            let r = RecordRegular::decode(bytes)?;
            (r.session_id, r.seq_num, r.header()?)
        };
        let body = bytes
            .get_mut(RECORD_HEADER_LEN..)
            .ok_or(InvalidMessage::LengthOutOfRange(0))?;
        Ok(Self {
            session_id,
            seq,
            header,
            body,
        })
    }
}

/// An accepted record opened in the caller's buffer: the payload is a slice of it. That buffer
/// now holds plaintext: the caller zeroizes it once done with the payload.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedInPlace<'a> {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Its sequence number.
    pub seq: u32,
    /// What the payload is.
    pub payload_type: PayloadType,
    /// The payload, in the buffer the record arrived in.
    pub payload: &'a [u8],
}

/// The expanded ciphers of a busy session (either direction filled when first used), and when
/// it was last used (a tick of whoever keeps them, for least-recently-used eviction).
#[derive(Debug, Default)]
pub(crate) struct HotKeys {
    send: Option<RecordCipher>,
    recv: Option<RecordCipher>,
    last_used: u64,
}

/// Whether an operation on a [`RecordLayer`] keeps the cipher it expands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Expand for this record only (unless the layer already holds expanded keys).
    No,
    /// Keep expanded keys from now on, stamped with this tick.
    Yes(u64),
}

/// The payload of an accepted record: the buffer it was decrypted in, past its payload-type
/// byte (no copy). Zeroized when dropped; dereferences to the payload bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordPayload {
    /// `payload_type ‖ payload`.
    buf: Vec<u8>,
}

impl RecordPayload {
    /// A payload from its bytes (copied).
    pub fn from_slice(payload: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(1 + payload.len());
        buf.push(0);
        buf.extend_from_slice(payload);
        Self { buf }
    }
}

impl Drop for RecordPayload {
    fn drop(&mut self) {
        // zeroize's slice impls fill in bulk behind an optimization barrier; its `Vec` impl (and
        // so `Zeroizing<Vec<u8>>`) goes byte by byte with volatile writes, which costs several
        // microseconds for a 16 KiB payload.
        self.buf.as_mut_slice().zeroize();
        self.buf.spare_capacity_mut().zeroize();
    }
}

impl Deref for RecordPayload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.get(1..).unwrap_or_default()
    }
}

impl AsRef<[u8]> for RecordPayload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for RecordPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordPayload({} bytes)", self.len())
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
    pub payload: RecordPayload,
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
/// send, the replay window and drop counters. ~64 bytes inline plus one 88-byte allocation; a
/// busy session also holds its expanded ciphers ([`HotKeys`], boxed, ~1 KiB for AES-256-GCM)
/// until its keeper evicts them ([`Self::cool`]).
#[derive(Debug)]
pub(crate) struct RecordLayer {
    pub(crate) suite: SuiteSpec,
    keys: Box<DuplexKeys>,
    hot: Option<Box<HotKeys>>,
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
            hot: None,
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
            hot: None,
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

    /// When the expanded keys were last used (`None`: the layer holds none).
    pub(crate) fn hot_since(&self) -> Option<u64> {
        self.hot.as_ref().map(|h| h.last_used)
    }

    /// Drops the expanded keys (the raw keys stay; see [`crate::record_cipher`] on zeroization).
    pub(crate) fn cool(&mut self) {
        self.hot = None;
    }

    /// Takes note of an operation's cipher under `keep`: stamps the kept keys, or starts keeping
    /// `fresh` (expanded for this operation) in the direction `slot` picks.
    fn kept(
        &mut self,
        keep: Keep,
        fresh: Option<RecordCipher>,
        slot: fn(&mut HotKeys) -> &mut Option<RecordCipher>,
    ) {
        let Keep::Yes(tick) = keep else { return };
        match (&mut self.hot, fresh) {
            (Some(h), fresh) => {
                h.last_used = tick;
                if let Some(c) = fresh {
                    *slot(h) = Some(c);
                }
            }
            (None, Some(c)) => {
                let mut h = Box::new(HotKeys {
                    last_used: tick,
                    ..HotKeys::default()
                });
                *slot(&mut h) = Some(c);
                self.hot = Some(h);
            }
            (None, None) => {}
        }
    }

    /// Seals the next record into a new buffer; see [`Self::seal_append`].
    pub(crate) fn seal(
        &mut self,
        session_id: &SessionId,
        payload_type: PayloadType,
        payload: &[u8],
        keep: Keep,
    ) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(RECORD_OVERHEAD + payload.len());
        self.seal_append(session_id, payload_type, payload, keep, &mut out)?;
        Ok(out)
    }

    /// Seals the next record and appends it to `out`. The last number, 2³² − 1, is never used:
    /// once the sender reaches it every call fails with [`RecordError::RekeyRequired`]
    /// (XTT-SESSION §3).
    pub(crate) fn seal_append(
        &mut self,
        session_id: &SessionId,
        payload_type: PayloadType,
        payload: &[u8],
        keep: Keep,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        if self.next_send == u32::MAX {
            return Err(RecordError::RekeyRequired);
        }
        if self.next_send >= self.limits.send_limit {
            return Err(RecordError::SendReservationExhausted);
        }
        let kept = self.hot.as_ref().and_then(|h| h.send.as_ref());
        let fresh = self.keys.send.seal_append(
            self.suite,
            kept,
            (session_id, self.next_send),
            payload_type,
            payload,
            out,
        )?;
        self.next_send += 1;
        self.kept(keep, fresh, |h| &mut h.send);
        Ok(())
    }

    /// Window check, authentication, then window update; counts drops. Only an authentic
    /// record can make the layer keep expanded keys (a forged one costs one expansion).
    pub(crate) fn open(
        &mut self,
        record: &RecordRegular<'_>,
        keep: Keep,
    ) -> Result<OpenedRecord, RecordError> {
        let r = self.open_uncounted(record, keep);
        if let Err(e) = &r {
            self.drops.count(e);
        }
        r
    }

    fn open_uncounted(
        &mut self,
        record: &RecordRegular<'_>,
        keep: Keep,
    ) -> Result<OpenedRecord, RecordError> {
        self.window.check(record.seq_num)?;
        let kept = self.hot.as_ref().and_then(|h| h.recv.as_ref());
        let (mut plain, fresh) = self.keys.recv.open(self.suite, kept, record)?;
        self.kept(keep, fresh, |h| &mut h.recv);
        // Checked after authentication, so a forged number can never make a node reserve.
        if record.seq_num >= self.limits.recv_limit {
            return Err(RecordError::BeyondReservation(record.seq_num));
        }
        // Authentic: the number is used up even if the payload type turns out unknown.
        self.window.record(record.seq_num)?;
        let pt = *plain.first().ok_or(RecordError::Forged)?;
        let payload_type = PayloadType::from_u8(pt).ok_or(RecordError::UnknownPayloadType(pt))?;
        Ok(OpenedRecord {
            session_id: SessionId(record.session_id),
            seq: record.seq_num,
            payload_type,
            payload: RecordPayload {
                buf: core::mem::take(&mut *plain),
            },
        })
    }

    /// [`Self::open`] of a record in a mutable buffer, decrypted where it lies (no copy, no
    /// allocation): the same checks in the same order.
    pub(crate) fn open_in_place<'a>(
        &mut self,
        record: RecordInPlace<'a>,
        keep: Keep,
    ) -> Result<OpenedInPlace<'a>, RecordError> {
        let r = self.open_in_place_uncounted(record, keep);
        if let Err(e) = &r {
            self.drops.count(e);
        }
        r
    }

    fn open_in_place_uncounted<'a>(
        &mut self,
        record: RecordInPlace<'a>,
        keep: Keep,
    ) -> Result<OpenedInPlace<'a>, RecordError> {
        let RecordInPlace {
            session_id,
            seq,
            header,
            body,
        } = record;
        self.window.check(seq)?;
        let kept = self.hot.as_ref().and_then(|h| h.recv.as_ref());
        let (plain, fresh) =
            self.keys
                .recv
                .open_in_place(self.suite, kept, (&header, seq), body)?;
        self.kept(keep, fresh, |h| &mut h.recv);
        if seq >= self.limits.recv_limit {
            return Err(RecordError::BeyondReservation(seq));
        }
        self.window.record(seq)?;
        let (&pt, payload) = plain.split_first().ok_or(RecordError::Forged)?;
        let payload_type = PayloadType::from_u8(pt).ok_or(RecordError::UnknownPayloadType(pt))?;
        Ok(OpenedInPlace {
            session_id: SessionId(session_id),
            seq,
            payload_type,
            payload,
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

    /// Heap bytes owned by an idle layer (the boxed keys), for memory accounting.
    pub(crate) const HEAP_BYTES: usize = core::mem::size_of::<DuplexKeys>();

    /// Heap bytes of the expanded keys of a busy layer (both directions).
    pub(crate) const HOT_HEAP_BYTES: usize = core::mem::size_of::<HotKeys>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto;

    const SIZES: [usize; 6] = [0, 1, 63, 1024, 16 * 1024, MAX_PAYLOAD_LEN];

    fn keys(fill: u8) -> RecordKeys {
        RecordKeys {
            key: core::array::from_fn(|i| fill ^ i.to_le_bytes()[0]),
            iv: core::array::from_fn(|i| fill.wrapping_add(i.to_le_bytes()[0])),
        }
    }

    /// The record as the previous implementation built it: RustCrypto's AEAD (the handshake's,
    /// in `crypto`) over a separately assembled plaintext.
    fn reference_record(
        suite: SuiteSpec,
        k: &RecordKeys,
        id: &SessionId,
        seq: u32,
        pt: PayloadType,
        payload: &[u8],
    ) -> Vec<u8> {
        let total = RECORD_OVERHEAD + payload.len();
        let header = record_header(id, seq, total).unwrap();
        let n = nonce(&k.iv, seq);
        let mut plain = vec![pt.to_u8()];
        plain.extend_from_slice(payload);
        let mut out = header.to_vec();
        match suite.record_protection() {
            RecordProtection::Aead(alg) => {
                out.extend(crypto::aead_seal(alg, &k.key, &n, &header, &plain).unwrap())
            }
            RecordProtection::IntegrityOnly => {
                let mut tag = [0u8; AEAD_TAG_LEN];
                suite.prf(&k.key, &[&n, &header, &plain], &mut tag);
                out.extend_from_slice(&plain);
                out.extend_from_slice(&tag);
            }
        }
        out
    }

    #[test]
    fn ring_records_equal_the_rustcrypto_records_in_every_suite() {
        let id = SessionId([0xa5; 16]);
        for suite in SuiteSpec::ALL {
            let k = keys(suite.to_u16().to_le_bytes()[0]);
            let kept = match suite.record_protection() {
                RecordProtection::Aead(alg) => Some(RecordCipher::new(alg, &k.key).unwrap()),
                RecordProtection::IntegrityOnly => None,
            };
            for (i, &len) in SIZES.iter().enumerate() {
                let payload: Vec<u8> = (0..len).map(|j| (j * 7 + i).to_le_bytes()[0]).collect();
                let seq = [0, 1, 0xfffe, 0x0102_0304, u32::MAX - 1, 77][i];
                let pt = if i % 2 == 0 {
                    PayloadType::QueueProtocol
                } else {
                    PayloadType::Ipv6
                };
                let expected = reference_record(suite, &k, &id, seq, pt, &payload);
                // Expanded per record, and with a kept cipher, appended after other bytes.
                assert_eq!(k.seal(suite, &id, seq, pt, &payload).unwrap(), expected);
                let mut out = b"prefix".to_vec();
                k.seal_append(suite, kept.as_ref(), (&id, seq), pt, &payload, &mut out)
                    .unwrap();
                assert_eq!(&out[6..], &expected[..], "{suite:?} {len}");
                // ring opens what RustCrypto sealed, both ways of holding the key.
                let record = RecordRegular::decode(&expected).unwrap();
                for c in [None, kept.as_ref()] {
                    let (plain, _) = k.open(suite, c, &record).unwrap();
                    assert_eq!(plain[0], pt.to_u8());
                    assert_eq!(&plain[1..], &payload[..]);
                }
                // RustCrypto opens what ring sealed.
                if let RecordProtection::Aead(alg) = suite.record_protection() {
                    let header = record.header().unwrap();
                    let n = nonce(&k.iv, seq);
                    let plain =
                        crypto::aead_open(alg, &k.key, &n, &header, &out[6 + 24..]).unwrap();
                    assert_eq!(&plain[1..], &payload[..]);
                }
            }
        }
    }

    #[test]
    fn opening_in_place_accepts_and_refuses_exactly_what_opening_a_copy_does() {
        let id = SessionId([7; 16]);
        for suite in SuiteSpec::ALL {
            let sender = keys(5);
            let layer = |recv: RecordKeys| {
                RecordLayer::new(
                    suite,
                    DuplexKeys {
                        send: keys(6),
                        recv,
                    },
                )
            };
            let (mut copying, mut in_place) = (layer(sender.clone()), layer(sender.clone()));
            for (seq, &len) in SIZES.iter().enumerate() {
                let seq = u32::try_from(seq).unwrap();
                let payload: Vec<u8> = (0..len).map(|j| (j * 3).to_le_bytes()[0]).collect();
                let mut bytes = sender
                    .seal(suite, &id, seq, PayloadType::Ipv6, &payload)
                    .unwrap();
                let copied = copying
                    .open(&RecordRegular::decode(&bytes).unwrap(), Keep::Yes(1))
                    .unwrap();
                let mut again = bytes.clone();
                let opened = in_place
                    .open_in_place(RecordInPlace::decode(&mut bytes).unwrap(), Keep::Yes(1))
                    .unwrap();
                assert_eq!(
                    (opened.session_id, opened.seq, opened.payload_type),
                    (copied.session_id, copied.seq, copied.payload_type)
                );
                assert_eq!(opened.payload, &copied.payload[..], "{suite:?} {len}");
                // A replay is refused before anything is decrypted.
                assert_eq!(
                    in_place.open_in_place(RecordInPlace::decode(&mut again).unwrap(), Keep::No),
                    Err(RecordError::Duplicate)
                );
            }
            // Forged: refused, counted, and (AEAD suites) no plaintext left in the buffer.
            let payload = [0x42u8; 100];
            let mut bytes = sender
                .seal(suite, &id, 100, PayloadType::Ipv6, &payload)
                .unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            assert_eq!(
                in_place.open_in_place(RecordInPlace::decode(&mut bytes).unwrap(), Keep::No),
                Err(RecordError::Forged)
            );
            assert_eq!(in_place.drops().forged, 1);
            if !suite.is_integrity_only() {
                assert!(
                    !bytes.windows(8).any(|w| w == [0x42; 8]),
                    "{suite:?}: plaintext left behind by a forged record"
                );
            }
        }
    }

    #[test]
    fn a_forged_record_releases_nothing_and_keeps_no_key() {
        let id = SessionId([1; 16]);
        for suite in SuiteSpec::ALL {
            let server = keys(9);
            let mut layer = RecordLayer::new(
                suite,
                DuplexKeys {
                    send: keys(3),
                    recv: server.clone(),
                },
            );
            let mut bytes = server
                .seal(suite, &id, 0, PayloadType::QueueProtocol, b"hello")
                .unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            let record = RecordRegular::decode(&bytes).unwrap();
            assert_eq!(layer.open(&record, Keep::Yes(1)), Err(RecordError::Forged));
            assert_eq!(
                layer.hot_since(),
                None,
                "{suite:?}: a forged record warmed the keys"
            );
            bytes[last] ^= 1;
            let record = RecordRegular::decode(&bytes).unwrap();
            assert_eq!(
                &layer.open(&record, Keep::Yes(2)).unwrap().payload[..],
                b"hello"
            );
            let expected = if suite.is_integrity_only() {
                None
            } else {
                Some(2)
            };
            assert_eq!(layer.hot_since(), expected, "{suite:?}");
            // Sealing with kept keys gives the bytes a cold layer gives.
            let warm = layer
                .seal(&id, PayloadType::Ipv6, b"x", Keep::Yes(3))
                .unwrap();
            assert_eq!(
                warm,
                keys(3)
                    .seal(suite, &id, 0, PayloadType::Ipv6, b"x")
                    .unwrap()
            );
            layer.cool();
            assert_eq!(layer.hot_since(), None);
            let cold = layer.seal(&id, PayloadType::Ipv6, b"x", Keep::No).unwrap();
            assert_eq!(
                cold,
                keys(3)
                    .seal(suite, &id, 1, PayloadType::Ipv6, b"x")
                    .unwrap()
            );
            assert_eq!(layer.hot_since(), None, "Keep::No keeps nothing");
        }
    }
}
