//! How the deployed C implementation deviates from the XTT draft, and what each deviation means
//! for security. This crate reproduces all of them on the wire, because that is what deployed
//! peers do (XTT-WIRE §17).
//!
//! # Truncated client signature hashes
//!
//! C computes the client's long-term and DAA signature hashes with a size bug: the cookie counts
//! as one byte, the certificate overwrites the rest of it, and the hash stops after the first 16
//! (long-term) or 80 (DAA) bytes of Identity_ClientAttest:
//!
//! ```text
//! ClientLongtermSigHash = H(u16(314) ‖ inner ‖ cookie[0] ‖ certificate ‖ signature_s ‖ IDCA[0..16))
//! ClientDAASigHash      = H(u16(378) ‖ inner ‖ cookie[0] ‖ certificate ‖ signature_s ‖ IDCA[0..80))
//! ```
//!
//! **Consequence:** neither signature covers the client's long-term public key, its group id or
//! its requested ClientID. Those are bound to the handshake only by the AEAD under the handshake
//! keys (which an active attacker without the client's X25519 key cannot forge, but which the
//! signatures themselves do not vouch for). In particular the DAA signature does not prove that
//! the group member chose this long-term key; a party able to run the handshake with a member's
//! DAA signature could bind another key. The cookie is covered only through `cookie[0]`,
//! `IDCA[6..80)` and, fully, through the key schedule (HKH).
//!
//! # No length prefix in prf
//!
//! The draft's `prf_ext<N>(K, M) = prf<N>(K, u16(N) ‖ M)`; C calls plain `prf` everywhere. The
//! output length still enters BLAKE2b as its digest-length parameter, but with HMAC-SHA-512 the
//! 12-byte IVs are prefixes of the values the same input would give for any other length.
//! **Consequence:** none known in practice (each label is distinct), but domain separation by
//! output length is lost for suites 1/3.
//!
//! # Message codes
//!
//! C numbers the messages 0x01 ClientInit, 0x02 ServerInitAndAttest, 0x11 Identity_ClientAttest,
//! 0x13 Identity_ServerFinished, 0x41 Error (the drafts differ). C also accepts 0x21/0x22 as an
//! identity ClientAttest; this crate does not, because 0x21/0x22 are the session handshake.
//!
//! # ECDSA
//!
//! Long-term and server signatures are ECDSA P-256 over SHA-256 of the 64-byte XTT hash (the
//! transcript is hashed twice). `s` is not normalised; high-S signatures must be accepted.
//! **Consequence:** signatures are malleable (`(r, n−s)` also verifies); nothing in XTT depends on
//! signature uniqueness. This crate's client signs with RFC 6979 k hedged with 32 random bytes, its
//! server with plain RFC 6979 (so the stateless server can recompute its signature). A client
//! that prepared its handshake (`PreparedClientInit`) signs with a k made before the message:
//! RFC 6979's generator over its fresh long-term key, its ClientInit nonce in the message's place
//! and 32 random bytes; that key signs nothing else during the handshake.
//!
//! # Group id
//!
//! The `xtt` tool derives `gid = SHA-256(gpk ‖ basename)`. The library treats it as opaque.
//! **Consequence:** none for the protocol; a server must recognise this derivation to serve C
//! clients.
//!
//! # ServerFinished under the handshake key
//!
//! Identity_ServerFinished is sealed with the server handshake key and IV at sequence number 1
//! (the draft says session keys; C derives none). **Consequence:** the final message is bound to
//! the same keys as ServerInitAndAttest; there is no key separation between handshake and
//! provisioning result, which is harmless because nothing else is ever sent under those keys.
//!
//! # The server cookie
//!
//! C sends 130 random bytes and keeps state per connection. This crate's server is stateless
//! instead: see [`crate::cookie`] for the layout (key id, nonce, sealed ClientInit fields and
//! issue time), the key rotation, the lifetime and the replay cache. Clients treat the cookie as
//! opaque, so C clients interoperate. **Cost:** at Identity_ClientAttest the server re-opens the
//! cookie, re-derives its X25519 key pair (one base-point multiplication) and recomputes its
//! ECDSA signature (one P-256 signature); the benches report this (`cookie_overhead`).
