//! How a handshake ended: the label set of the metrics and the field of the log line.

use xtt_proto::error::{PeerMisbehaved, Refused};
use xtt_proto::Error;

/// The end of one server-side handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Identity_ServerFinished sent.
    Ok,
    /// Turned away before any protocol work.
    Refused(RefusedReason),
    /// The handshake failed.
    Failed(FailureReason),
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedReason {
    /// The concurrent-handshake cap was reached.
    Busy,
    /// The client (IPv4 address, IPv6 /64) holds its share of that cap already.
    ClientBusy,
    /// The server is shutting down.
    ShuttingDown,
}

/// Why a handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// A read, write or the whole handshake took too long.
    Timeout,
    /// The peer closed the connection (possibly mid-message).
    Closed,
    /// Another socket error.
    Io,
    /// Bytes that are not the expected message (random data, wrong type or length, ...).
    InvalidMessage,
    /// The peer sent an XTT Error message.
    PeerError,
    /// The cookie is not ours.
    InvalidCookie,
    /// The cookie is too old.
    ExpiredCookie,
    /// The cookie was used before.
    ReplayedCookie,
    /// AEAD failure.
    DecryptionFailed,
    /// The client's long-term signature did not verify.
    BadLongtermSignature,
    /// The DAA signature did not verify (or the signer is revoked).
    BadDaaSignature,
    /// The group is not registered.
    UnknownGroup,
    /// The registry refused the requested ClientID.
    IdentityRefused,
    /// The replay cache is full.
    ReplayCacheFull,
    /// The registry failed (storage error).
    Registry,
    /// The CPU pool or a queue is saturated or gone.
    Overloaded,
    /// Anything else (local crypto failure, ...).
    Other,
}

impl Outcome {
    /// `ok`, `refused` or `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
        }
    }

    /// A short snake_case reason (`none` for success).
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Ok => "none",
            Outcome::Refused(RefusedReason::Busy) => "busy",
            Outcome::Refused(RefusedReason::ClientBusy) => "client_busy",
            Outcome::Refused(RefusedReason::ShuttingDown) => "shutting_down",
            Outcome::Failed(f) => f.as_str(),
        }
    }
}

impl FailureReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Closed => "closed",
            FailureReason::Io => "io",
            FailureReason::InvalidMessage => "invalid_message",
            FailureReason::PeerError => "peer_error",
            FailureReason::InvalidCookie => "invalid_cookie",
            FailureReason::ExpiredCookie => "expired_cookie",
            FailureReason::ReplayedCookie => "replayed_cookie",
            FailureReason::DecryptionFailed => "decryption_failed",
            FailureReason::BadLongtermSignature => "bad_longterm_signature",
            FailureReason::BadDaaSignature => "bad_daa_signature",
            FailureReason::UnknownGroup => "unknown_group",
            FailureReason::IdentityRefused => "identity_refused",
            FailureReason::ReplayCacheFull => "replay_cache_full",
            FailureReason::Registry => "registry",
            FailureReason::Overloaded => "overloaded",
            FailureReason::Other => "other",
        }
    }

    /// Classifies a protocol error.
    pub fn of(e: &Error) -> Self {
        match e {
            Error::InvalidMessage(_) => FailureReason::InvalidMessage,
            Error::ReceivedErrorMessage => FailureReason::PeerError,
            Error::PeerMisbehaved(p) => match p {
                PeerMisbehaved::InvalidCookie => FailureReason::InvalidCookie,
                PeerMisbehaved::ExpiredCookie => FailureReason::ExpiredCookie,
                PeerMisbehaved::ReplayedCookie => FailureReason::ReplayedCookie,
                PeerMisbehaved::DecryptionFailed => FailureReason::DecryptionFailed,
                PeerMisbehaved::BadLongtermSignature => FailureReason::BadLongtermSignature,
                PeerMisbehaved::BadDaaSignature(_) => FailureReason::BadDaaSignature,
                _ => FailureReason::Other,
            },
            Error::Refused(r) => match r {
                Refused::UnknownGroup => FailureReason::UnknownGroup,
                Refused::IdentityRefused | Refused::AssignedIdMismatch => {
                    FailureReason::IdentityRefused
                }
                Refused::ReplayCacheFull => FailureReason::ReplayCacheFull,
                _ => FailureReason::Other,
            },
            _ => FailureReason::Other,
        }
    }
}
