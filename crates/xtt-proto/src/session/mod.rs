//! The session handshake and the record layer (XTT-SESSION.md), which no other implementation
//! ships: a provisioned device (ClientID + long-term key) authenticates in one round trip
//! (optionally pushing its first record with it) and then exchanges records that are bound to a
//! session id, not to a connection.
//!
//! ```text
//! client                                                  server (stateless until 3rd message)
//! ClientInit (0x01, 70) ───────────────────────────────▶ Server::handle_client_init
//!            ◀─────────────────────────────── ServerInitAndAttest (0x02, 417)
//! Session_ClientAttest (0x21, 248)  or
//! Session_ClientAttest (0x22, 248) ‖ Record (41 + n) ──▶ Server::handle_session_client_attest
//!            ◀─────────────────────────────── Session_ServerFinished (0x23, 54)
//! records (0x31) ◀──────────────────────────────────────▶ SessionTable::open / seal_to_client
//! ```
//!
//! - Client: [`SessionClientHandshake`] → [`ExpectSessionServerAttest`] →
//!   [`ExpectSessionServerFinished`] → [`ClientSession`] (seal / open).
//! - Server: [`crate::server::Server::handle_session_client_attest`] with a [`ClientRegistry`]
//!   (ClientID → long-term key, from identity provisioning) → [`AcceptedSession`]; store its
//!   [`ServerSession`] in a [`crate::session_table::SessionTable`], then send the finished bytes.
//! - Records: [`crate::record`]; replay protection: [`crate::replay_window`].
//!
//! # Decisions where XTT-SESSION.md is silent or leaves room
//!
//! 1. **0x21 must carry a zero session id, 0x22 a non-zero one.** The spec's layout says "all zero:
//!    server assigns" for 0x21 and requires a proposal for 0x22. Anything else is
//!    [`crate::error::PeerMisbehaved::BadSessionIdProposal`]. The server assigns 16 random bytes
//!    (never zero) for 0x21 and echoes the proposal for 0x22; a proposal that collides with a live
//!    session is refused by the table ([`crate::error::Refused::SessionIdInUse`]), never replaces
//!    it. The client accepts any non-zero id for 0x21 and only its proposal for 0x22.
//! 2. **The early-data record is part of the handshake.** Its session id must be the proposal and
//!    its sequence number 0; if it does not authenticate, the whole handshake fails (nothing is
//!    stored, the cookie is not burnt). An authentic early record with an unknown payload type is
//!    dropped and counted, the session is established (as for any record, §1.4).
//! 3. **Sequence numbers.** Each direction starts at 0 (the early record is client number 0, so
//!    the client's next record is 1). A sender never uses 2³² − 1: when it would, sealing fails
//!    with [`crate::record::RecordError::RekeyRequired`] (the session is finished). The server
//!    table then removes the session, so the client's next record gets an Error and the client
//!    re-handshakes.
//! 4. **The sliding window for every transport, and exact order within one TCP connection.**
//!    §3 asks TCP receivers to take exactly the next number. But a session outlives its
//!    connections (§6, the issue's IP mobility): records in flight on a connection that breaks
//!    are lost, so a per-session "exactly next" would refuse every later record of a session
//!    that is otherwise fine. The session's window accepts each number at most once and refuses
//!    numbers more than 64 behind, whatever the transport; on top of it, both xtt-server's TCP
//!    driver and its session client take, after a session's first record on a connection,
//!    exactly the next number on that connection and close it otherwise (nothing can be taken
//!    out of a stream, or reordered in it, unseen; the device reconnects and its first record
//!    there starts the count again). The server drops records for a connection whose queue is
//!    full (records are datagrams): on TCP that gap also ends the connection at the client,
//!    which then reconnects as after any broken connection.
//! 5. **Which records move a session.** The peer token and the idle timer change only on an
//!    authentic, fresh record (also one of unknown payload type — it proves the client is there),
//!    never on a forged, duplicated or stale one, so a spoofed source address cannot redirect a
//!    session. Sending does not reset the idle timer: a client that stopped talking is idle.
//!    "Last delivered" is read as "numbered above every record accepted" (as QUIC, RFC 9000
//!    §9.3): an authentic record that arrives late, still inside the window, is delivered but
//!    moves nothing, so neither reordering during a move nor an attacker replaying a record it
//!    withheld turns the answers back to an old address. A session a server node takes over
//!    from another has no path until its first record opens there.
//! 6. **Replay and retransmission of the third message.** The cookie of a session ClientAttest
//!    goes through the same replay guard as identity provisioning, recorded only after every
//!    check passed. For §5's "answer an identical retransmitted ClientAttest with the same
//!    ServerFinished", [`crate::server::Server::with_finished_cache`] keeps the finished bytes per
//!    accepted flight (keyed by a hash of the exact bytes, bounded, for the cookie lifetime) and
//!    [`crate::server::Server::retransmitted_session_finished`] returns them; the driver asks it
//!    first. The driver files them with [`crate::server::Server::remember_finished`] only once
//!    the session is stored: a flight whose session could not be stored (table full, shared
//!    store down) was answered with an Error, and its retransmission must not get a
//!    ServerFinished for a session that does not exist. The cache entry lives at most a cookie
//!    lifetime after the flight was accepted (the server no longer knows the cookie's issue time
//!    then; the difference only lengthens the window, never answers a different flight). The
//!    same for identity provisioning's ServerFinished is left to the identity driver, which
//!    produces it after its own DAA and registration steps.
//! 7. **Integrity-only suites (5, 6).** Exactly §4: handshake messages use ChaCha20-Poly1305 as
//!    suites 1 and 2 (so identity provisioning also works in 5 and 6); records carry
//!    `payload_type ‖ payload` in clear and `prf(session_send_key, nonce ‖ header ‖ payload_type ‖
//!    payload, 16)`, with the 32-byte session key as prf key and the same nonce as AEAD suites.
//! 8. **Unknown ClientID vs wrong key.** Both end the handshake with the same opaque Error on the
//!    wire; locally they are [`crate::error::Refused::UnknownClient`] and
//!    [`crate::error::PeerMisbehaved::BadLongtermSignature`].
//!
//! # Server cost per handshake
//!
//! The stateless server redoes, at ClientAttest, the two X25519 multiplications and the ECDSA
//! signature it did for ServerInitAndAttest (see [`crate::cookie`]); with no DAA verification in
//! a session handshake that is a large share of the server's work. An opt-in, bounded
//! [`crate::handshake_cache`] ([`crate::server::Server::with_handshake_cache`]) keeps that work
//! while the cookie is live and falls back to the stateless path when full. BENCHMARKS.md
//! (issue 4) compares both with the crypto floor.
//!
//! # Memory per idle session (server), speed per busy session
//!
//! The table stores raw 32-byte keys and 12-byte IVs (88 bytes for both directions, boxed).
//! Records are sealed and opened in place with ring (module `record_cipher`); an expanded key
//! (AES round keys and GHASH table, ~0.5 KiB per direction) is kept only by the most recently
//! used sessions of each table shard ([`crate::session_table::SessionTableConfig::hot_sessions_per_shard`])
//! and evicted least-recently-used, so idle sessions stay within the 512-byte budget and busy
//! ones pay no key setup per record. A client ([`ClientSession`]) keeps its one session's
//! expanded keys. See [`crate::session_table`] for the layout and the `session_memory` test for
//! the measured figure.

mod client;
mod keys;
mod messages;
mod server;

pub use client::{
    ClientSession, ExpectSessionServerAttest, ExpectSessionServerFinished, SessionClientConfig,
    SessionClientHandshake,
};
pub use keys::AWARENESS_PROOF_LEN;
pub use messages::{
    AttestFlight, SessionAttestPlaintext, SessionFinishedPlaintext, SESSION_ATTEST_PLAINTEXT_LEN,
    SESSION_FINISHED_PLAINTEXT_LEN,
};
pub use server::{
    AcceptedSession, ClientRegistry, FinishedReceipt, OpenedSessionAttest, ServerSession,
    SESSION_KEYS_LEN,
};
