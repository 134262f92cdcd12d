//! Errors. One public [`Error`] wraps narrower enums; every failed step maps to the 4-byte XTT
//! Error message in one place ([`Error::alert_bytes`]).
//!
//! Decryption and signature failures are deliberately coarse: the peer learns only that the
//! handshake failed (the Error message carries no code), the local logs learn which check failed.

use crate::codec::ERROR_MESSAGE;
use crate::daa::DaaError;

/// Anything that ends a handshake.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes received do not have the shape of the expected message.
    #[error("invalid message: {0}")]
    InvalidMessage(#[from] InvalidMessage),
    /// The message is well formed but fails a check (signature, cookie, echoed value, ...).
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// The peer sent an XTT Error message; the handshake ends without a reply.
    #[error("peer sent an Error message")]
    ReceivedErrorMessage,
    /// The local application (root store, group lookup, identity authority, replay cache) said no.
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    /// A local cryptographic operation failed (e.g. the DAA signer, or bad local key material).
    #[error("local crypto failure: {0}")]
    Crypto(#[from] CryptoError),
}

impl Error {
    /// The bytes to send to the peer for this error, if any: the 4-byte XTT Error message for every
    /// failure except a received Error (which just ends the handshake).
    pub fn alert_bytes(&self) -> Option<[u8; 4]> {
        match self {
            Error::ReceivedErrorMessage => None,
            _ => Some(ERROR_MESSAGE),
        }
    }
}

/// Malformed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// Fewer bytes than the layout (or the length field) needs.
    #[error("message truncated")]
    Truncated,
    /// More bytes than the length field or the layout allows.
    #[error("trailing data after message")]
    TrailingData,
    /// The type byte is not an XTT message type.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// A known type, but not the one expected in this state.
    #[error("unexpected message type {got:#04x}, expected {expected:#04x}")]
    UnexpectedType {
        /// What this step accepts.
        expected: u8,
        /// What arrived.
        got: u8,
    },
    /// The length field is wrong for the message type.
    #[error("length field {got}, expected {expected}")]
    WrongLength {
        /// The fixed size of the message.
        expected: u16,
        /// The length field received.
        got: u16,
    },
    /// The length field is below the header size or above the caller's maximum.
    #[error("length field {0} out of range")]
    LengthOutOfRange(u16),
    /// Version byte other than 1.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Suite number other than 1–6 (5 and 6: the integrity-only suites of the session handshake).
    #[error("unknown suite spec {0:#06x}")]
    UnknownSuite(u16),
    /// Version or suite differ from what this handshake negotiated.
    #[error("version or suite differ from the negotiated ones")]
    ParameterMismatch,
    /// A public key field does not decode (not an uncompressed P-256 point on the curve).
    #[error("invalid public key encoding")]
    InvalidPublicKey,
    /// A signature field does not decode (r or s zero or not below the group order).
    #[error("invalid signature encoding")]
    InvalidSignatureEncoding,
}

/// Well-formed messages that fail a protocol check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// AEAD authentication failed.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The peer's X25519 key share gives an all-zero (non-contributory) shared secret.
    #[error("non-contributory key share")]
    NonContributoryKeyShare,
    /// The root the application returned has a different root id than the certificate names.
    #[error("root id mismatch")]
    RootIdMismatch,
    /// The root's signature on the server certificate does not verify.
    #[error("bad root signature on server certificate")]
    BadRootSignature,
    /// The server's signature over ServerSigHash does not verify.
    #[error("bad server signature")]
    BadServerSignature,
    /// The client's long-term signature does not verify.
    #[error("bad client long-term signature")]
    BadLongtermSignature,
    /// The client's DAA signature does not verify (or its signer is revoked).
    #[error("bad DAA signature: {0}")]
    BadDaaSignature(DaaError),
    /// The echoed cookie is not one of ours (wrong key id, bad tag, bad padding, wrong suite).
    #[error("invalid cookie")]
    InvalidCookie,
    /// The cookie is ours but too old (or from the future).
    #[error("expired cookie")]
    ExpiredCookie,
    /// The cookie was already used for a ClientAttest.
    #[error("replayed cookie")]
    ReplayedCookie,
    /// ServerFinished assigns another id than the one the client asked for.
    #[error("server assigned a different ClientID than requested")]
    WrongClientId,
    /// ServerFinished does not echo the client's long-term key.
    #[error("server echoed a different long-term key")]
    WrongLongtermKeyEcho,
    /// Session_ServerFinished's awareness proof does not match.
    #[error("bad session awareness proof")]
    BadAwarenessProof,
    /// A session id differs from the one proposed (Session_ServerFinished, early-data record).
    #[error("unexpected session id")]
    WrongSessionId,
    /// The early-data record of Session_ClientAttest_Payload names another session id, has a
    /// sequence number other than 0, or does not authenticate.
    #[error("bad early-data record")]
    BadEarlyRecord,
    /// Session_ClientAttest proposes a session id its type does not allow (0x21 must send zero,
    /// 0x22 must not).
    #[error("session id proposal not allowed for this message type")]
    BadSessionIdProposal,
}

/// The local application declined to continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// No root certificate is known for the certificate's root id.
    #[error("unknown root id")]
    UnknownRoot,
    /// No DAA group is known for the client's group id.
    #[error("unknown group id")]
    UnknownGroup,
    /// The identity authority refused to assign an identity.
    #[error("identity refused")]
    IdentityRefused,
    /// The application chose a ClientID different from the specific one the client requested.
    #[error("assigned id differs from the requested id")]
    AssignedIdMismatch,
    /// The replay cache is full of live cookies; new handshakes are shed until entries expire.
    #[error("replay cache full")]
    ReplayCacheFull,
    /// No long-term key is registered for the ClientID of a session handshake.
    #[error("unknown client id")]
    UnknownClient,
    /// A live session already has the proposed session id.
    #[error("session id in use")]
    SessionIdInUse,
    /// The early-data payload does not fit in one record.
    #[error("early data too large for one record")]
    EarlyDataTooLarge,
    /// The session table holds its maximum number of sessions.
    #[error("session table full")]
    SessionTableFull,
    /// The client already holds the most live sessions one client may have.
    #[error("too many sessions for this client")]
    TooManySessions,
    /// The session could not be stored where other server nodes find it (sessions shared
    /// between nodes); the client may retry.
    #[error("session store unavailable")]
    SessionStoreUnavailable,
}

/// Local cryptographic failures (not caused by the peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The DAA signer failed.
    #[error("DAA signing failed: {0}")]
    DaaSigning(DaaError),
    /// ECDSA signing or AEAD sealing failed (bad local key material).
    #[error("local primitive failed")]
    Primitive,
    /// Invalid key bytes supplied by the application.
    #[error("invalid key material")]
    InvalidKey,
}
