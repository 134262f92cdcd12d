//! The session transcript hashes and key schedule (XTT-SESSION §1.1, §2).

use zeroize::Zeroizing;

use crate::cert::SERVER_CERTIFICATE_LEN;
use crate::crypto::{PrfKey, AEAD_KEY_LEN, AEAD_NONCE_LEN, HASH_LEN};
use crate::identity::ClientId;
use crate::msgs::{COOKIE_LEN, IDENTITY_CLIENT_ATTEST_AD_LEN};
use crate::record::{DuplexKeys, RecordKeys, SessionId};
use crate::suite::SuiteSpec;

use super::messages::SESSION_ATTEST_PLAINTEXT_LEN;

const CLIENT_KEY_LABEL: &[u8] = b"XTT session client key";
const CLIENT_IV_LABEL: &[u8] = b"XTT session client iv";
const SERVER_KEY_LABEL: &[u8] = b"XTT session server key";
const SERVER_IV_LABEL: &[u8] = b"XTT session server iv";
const AWARENESS_LABEL: &[u8] = b"XTT session awareness";

/// Size of the awareness proof.
pub const AWARENESS_PROOF_LEN: usize = 16;

/// Cleartext part of Session_ClientAttest (type 0x21/0x22 as sent).
pub(crate) const ATTEST_AD_LEN: usize = IDENTITY_CLIENT_ATTEST_AD_LEN;

/// Everything both sides hash after `u16(L)`, up to the client's attest: the transcript prefix
/// shared by `session_client_sig_hash` and `session_hash`.
pub(crate) struct SessionTranscript<'a> {
    pub(crate) suite: SuiteSpec,
    pub(crate) inner: &'a [u8; HASH_LEN],
    pub(crate) cookie: &'a [u8; COOKIE_LEN],
    pub(crate) certificate: &'a [u8; SERVER_CERTIFICATE_LEN],
    pub(crate) server_signature: &'a [u8; 64],
    pub(crate) attest_ad: &'a [u8; ATTEST_AD_LEN],
}

fn u16_len(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
}

impl SessionTranscript<'_> {
    fn prefix_len(&self) -> usize {
        HASH_LEN + COOKIE_LEN + SERVER_CERTIFICATE_LEN + 64 + ATTEST_AD_LEN
    }

    /// `hash(u16(595) ‖ inner ‖ cookie ‖ certificate ‖ signature_s ‖ attest_ad ‖ session_id ‖
    /// client_id)`; the client signs its SHA-256 with ECDSA.
    pub(crate) fn client_sig_hash(
        &self,
        session_id: &SessionId,
        client_id: &ClientId,
    ) -> [u8; HASH_LEN] {
        self.suite.hash(&[
            &u16_len(self.prefix_len() + 32),
            self.inner,
            self.cookie,
            self.certificate,
            self.server_signature,
            self.attest_ad,
            &session_id.0,
            &client_id.0,
        ])
    }

    /// `hash(u16(659) ‖ inner ‖ cookie ‖ certificate ‖ signature_s ‖ attest_ad ‖
    /// attest_plaintext)`.
    pub(crate) fn session_hash(
        &self,
        attest_plaintext: &[u8; SESSION_ATTEST_PLAINTEXT_LEN],
    ) -> [u8; HASH_LEN] {
        self.suite.hash(&[
            &u16_len(self.prefix_len() + SESSION_ATTEST_PLAINTEXT_LEN),
            self.inner,
            self.cookie,
            self.certificate,
            self.server_signature,
            self.attest_ad,
            attest_plaintext,
        ])
    }
}

/// The session secrets: both directions' record keys, and what the awareness proof needs.
pub(crate) struct SessionSchedule {
    pub(crate) suite: SuiteSpec,
    handshake_secret: Zeroizing<[u8; HASH_LEN]>,
    session_hash: [u8; HASH_LEN],
}

impl core::fmt::Debug for SessionSchedule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionSchedule")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl SessionSchedule {
    pub(crate) fn new(
        suite: SuiteSpec,
        handshake_secret: &[u8; HASH_LEN],
        session_hash: [u8; HASH_LEN],
    ) -> Self {
        Self {
            suite,
            handshake_secret: Zeroizing::new(*handshake_secret),
            session_hash,
        }
    }

    /// (client → server, server → client) record keys: four prf outputs under one key set-up.
    fn directions(&self) -> (RecordKeys, RecordKeys) {
        let prf = PrfKey::new(self.suite.hash_alg(), &*self.handshake_secret);
        let direction = |key_label: &[u8], iv_label: &[u8]| {
            let mut k = RecordKeys {
                key: [0; AEAD_KEY_LEN],
                iv: [0; AEAD_NONCE_LEN],
            };
            prf.prf(&[&self.session_hash, key_label], &mut k.key);
            prf.prf(&[&self.session_hash, iv_label], &mut k.iv);
            k
        };
        (
            direction(CLIENT_KEY_LABEL, CLIENT_IV_LABEL),
            direction(SERVER_KEY_LABEL, SERVER_IV_LABEL),
        )
    }

    /// The client's view: send with the client keys, receive with the server's.
    pub(crate) fn client_keys(&self) -> DuplexKeys {
        let (client, server) = self.directions();
        DuplexKeys {
            send: client,
            recv: server,
        }
    }

    /// The server's view.
    pub(crate) fn server_keys(&self) -> DuplexKeys {
        let (client, server) = self.directions();
        DuplexKeys {
            send: server,
            recv: client,
        }
    }

    /// `prf(handshake_secret, session_hash ‖ session_id ‖ "XTT session awareness", 16)`.
    pub(crate) fn awareness_proof(&self, session_id: &SessionId) -> [u8; AWARENESS_PROOF_LEN] {
        let mut out = [0u8; AWARENESS_PROOF_LEN];
        self.suite.prf(
            &*self.handshake_secret,
            &[&self.session_hash, &session_id.0, AWARENESS_LABEL],
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XTT-SESSION §2, written out per output: `prf(HS, session_hash ‖ label, n)`.
    fn by_definition(
        suite: SuiteSpec,
        hs: &[u8; 64],
        sh: &[u8; 64],
        label: &[u8],
        n: usize,
    ) -> Vec<u8> {
        let mut out = vec![0u8; n];
        crate::crypto::prf(suite.hash_alg(), hs, &[sh, label], &mut out);
        out
    }

    #[test]
    fn each_direction_gets_its_own_labels_keys() {
        let (hs, sh) = ([0x11u8; 64], [0x22u8; 64]);
        for suite in [
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Sha512,
            SuiteSpec::X25519LrswEcdsaP256ChaCha20Poly1305Blake2b,
        ] {
            let schedule = SessionSchedule::new(suite, &hs, sh);
            let want = |l: &[u8], n| by_definition(suite, &hs, &sh, l, n);
            let (server, client) = (schedule.server_keys(), schedule.client_keys());
            // The server sends with the server labels' outputs and receives with the client's.
            for (got, label) in [
                (&server.send.key[..], SERVER_KEY_LABEL),
                (&server.send.iv[..], SERVER_IV_LABEL),
                (&server.recv.key[..], CLIENT_KEY_LABEL),
                (&server.recv.iv[..], CLIENT_IV_LABEL),
            ] {
                assert_eq!(got.to_vec(), want(label, got.len()));
            }
            assert_eq!(client.send.key, server.recv.key);
            assert_eq!(client.send.iv, server.recv.iv);
            assert_eq!(client.recv.key, server.send.key);
            assert_eq!(client.recv.iv, server.send.iv);
        }
    }
}
