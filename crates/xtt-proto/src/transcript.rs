//! Transcript hashes (XTT-WIRE §7, §8), including C's truncated client signature hashes.

use crate::crypto::HASH_LEN;
use crate::msgs::{
    CLIENT_INIT_LEN, COOKIE_LEN, SERVER_INIT_AND_ATTEST_AD_LEN, SERVER_INIT_PRE_COOKIE_LEN,
};
use crate::suite::SuiteSpec;

/// Bytes of Identity_ClientAttest that enter ClientLongtermSigHash (C quirk).
pub const LONGTERM_SIG_IDCA_PREFIX: usize = 16;
/// Bytes of Identity_ClientAttest that enter ClientDAASigHash (C quirk).
pub const DAA_SIG_IDCA_PREFIX: usize = 80;
/// The length prefix C writes for ClientLongtermSigHash (not the real input length).
const LONGTERM_SIG_PREFIX: u16 = 314;
/// The length prefix C writes for ClientDAASigHash.
const DAA_SIG_PREFIX: u16 = 378;

fn u16_len(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
}

/// `inner = H(u16(108) ‖ ClientInit ‖ SIA[0..38))`.
pub fn inner_hash(
    suite: SuiteSpec,
    client_init: &[u8; CLIENT_INIT_LEN],
    sia_pre_cookie: &[u8; SERVER_INIT_PRE_COOKIE_LEN],
) -> [u8; HASH_LEN] {
    suite.hash(&[
        &u16_len(CLIENT_INIT_LEN + SERVER_INIT_PRE_COOKIE_LEN),
        client_init,
        sia_pre_cookie,
    ])
}

/// `HKH = H(u16(194) ‖ inner ‖ cookie)`.
pub fn handshake_key_hash(
    suite: SuiteSpec,
    inner: &[u8; HASH_LEN],
    cookie: &[u8; COOKIE_LEN],
) -> [u8; HASH_LEN] {
    suite.hash(&[&u16_len(HASH_LEN + COOKIE_LEN), inner, cookie])
}

/// `ServerSigHash = H(u16(407) ‖ ClientInit ‖ SIA[0..168) ‖ certificate)`.
pub fn server_sig_hash(
    suite: SuiteSpec,
    client_init: &[u8; CLIENT_INIT_LEN],
    sia_cleartext: &[u8; SERVER_INIT_AND_ATTEST_AD_LEN],
    certificate: &[u8; crate::cert::SERVER_CERTIFICATE_LEN],
) -> [u8; HASH_LEN] {
    suite.hash(&[
        &u16_len(CLIENT_INIT_LEN + SERVER_INIT_AND_ATTEST_AD_LEN + certificate.len()),
        client_init,
        sia_cleartext,
        certificate,
    ])
}

fn truncated_client_hash(
    suite: SuiteSpec,
    prefix: u16,
    inner: &[u8; HASH_LEN],
    cookie: &[u8; COOKIE_LEN],
    certificate: &[u8; crate::cert::SERVER_CERTIFICATE_LEN],
    server_signature: &[u8; 64],
    idca_prefix: &[u8],
) -> [u8; HASH_LEN] {
    suite.hash(&[
        &prefix.to_be_bytes(),
        inner,
        &cookie[..1],
        certificate,
        server_signature,
        idca_prefix,
    ])
}

/// The 136-byte Identity_ClientAttest cleartext the hashes below read a prefix of:
/// `11 02ee 01 suite cookie`.
fn idca_cleartext_prefix(suite: SuiteSpec, cookie: &[u8; COOKIE_LEN], n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + COOKIE_LEN);
    v.extend_from_slice(&[0x11, 0x02, 0xee, crate::codec::VERSION]);
    v.extend_from_slice(&suite.to_u16().to_be_bytes());
    v.extend_from_slice(cookie);
    v.truncate(n);
    v
}

/// ClientLongtermSigHash as C computes it:
/// `H(u16(314) ‖ inner ‖ cookie[0] ‖ certificate ‖ signature_s ‖ IDCA[0..16))`.
pub fn client_longterm_sig_hash(
    suite: SuiteSpec,
    inner: &[u8; HASH_LEN],
    cookie: &[u8; COOKIE_LEN],
    certificate: &[u8; crate::cert::SERVER_CERTIFICATE_LEN],
    server_signature: &[u8; 64],
) -> [u8; HASH_LEN] {
    truncated_client_hash(
        suite,
        LONGTERM_SIG_PREFIX,
        inner,
        cookie,
        certificate,
        server_signature,
        &idca_cleartext_prefix(suite, cookie, LONGTERM_SIG_IDCA_PREFIX),
    )
}

/// ClientDAASigHash as C computes it:
/// `H(u16(378) ‖ inner ‖ cookie[0] ‖ certificate ‖ signature_s ‖ IDCA[0..80))`.
pub fn client_daa_sig_hash(
    suite: SuiteSpec,
    inner: &[u8; HASH_LEN],
    cookie: &[u8; COOKIE_LEN],
    certificate: &[u8; crate::cert::SERVER_CERTIFICATE_LEN],
    server_signature: &[u8; 64],
) -> [u8; HASH_LEN] {
    truncated_client_hash(
        suite,
        DAA_SIG_PREFIX,
        inner,
        cookie,
        certificate,
        server_signature,
        &idca_cleartext_prefix(suite, cookie, DAA_SIG_IDCA_PREFIX),
    )
}
