//! One type per XTT message, with fixed layouts (XTT-WIRE §5, XTT-SESSION §1).
//!
//! Decoding checks type, length field, version, suite and the exact byte count; it never checks
//! cryptography (that is the state machines' job). Encrypted parts are carried as opaque
//! `ciphertext ‖ tag`; their plaintext layouts have their own types.

use crate::codec::{Header, MsgType, Reader, HEADER_LEN, VERSION};
use crate::crypto::AEAD_TAG_LEN;
use crate::daa::{DaaSignature, GroupId, GROUP_ID_LEN, SIGNATURE_LEN};
use crate::error::InvalidMessage;
use crate::identity::ClientId;
use crate::suite::SuiteSpec;

/// Size of the SigningNonce.
pub const SIGNING_NONCE_LEN: usize = 32;
/// Size of an X25519 key share.
pub const KEY_SHARE_LEN: usize = 32;
/// Size of the server cookie.
pub const COOKIE_LEN: usize = 130;
/// Size of an ECDSA P-256 public key on the wire.
pub const LONGTERM_KEY_LEN: usize = 65;
/// Size of an ECDSA P-256 signature on the wire (`r ‖ s`).
pub const LONGTERM_SIGNATURE_LEN: usize = 64;

/// ClientInit total size.
pub const CLIENT_INIT_LEN: usize = 70;
/// ServerInitAndAttest total size.
pub const SERVER_INIT_AND_ATTEST_LEN: usize = 417;
/// Cleartext (= AEAD additional data) part of ServerInitAndAttest.
pub const SERVER_INIT_AND_ATTEST_AD_LEN: usize = 168;
/// The part of ServerInitAndAttest before the cookie (enters the inner hash).
pub const SERVER_INIT_PRE_COOKIE_LEN: usize = 38;
/// Plaintext of ServerInitAndAttest: certificate ‖ signature.
pub const SERVER_ATTEST_PLAINTEXT_LEN: usize = 233;
/// Identity_ClientAttest total size.
pub const IDENTITY_CLIENT_ATTEST_LEN: usize = 750;
/// Cleartext part of Identity_ClientAttest.
pub const IDENTITY_CLIENT_ATTEST_AD_LEN: usize = 136;
/// Plaintext of Identity_ClientAttest.
pub const CLIENT_ATTEST_PLAINTEXT_LEN: usize = 598;
/// Identity_ServerFinished total size.
pub const IDENTITY_SERVER_FINISHED_LEN: usize = 103;
/// Cleartext part of Identity_ServerFinished.
pub const IDENTITY_SERVER_FINISHED_AD_LEN: usize = 6;
/// Plaintext of Identity_ServerFinished.
pub const SERVER_FINISHED_PLAINTEXT_LEN: usize = 81;
/// Session_ClientAttest (0x21/0x22) total size.
pub const SESSION_CLIENT_ATTEST_LEN: usize = 248;
/// Session_ServerFinished total size.
pub const SESSION_SERVER_FINISHED_LEN: usize = 54;
/// Record_Regular fixed part: 24-byte header, payload type, tag.
pub const RECORD_OVERHEAD: usize = 41;
/// Record_Regular cleartext header size.
pub const RECORD_HEADER_LEN: usize = 24;

const SIA_CT_LEN: usize = SERVER_ATTEST_PLAINTEXT_LEN + AEAD_TAG_LEN;
const IDCA_CT_LEN: usize = CLIENT_ATTEST_PLAINTEXT_LEN + AEAD_TAG_LEN;
const IDSF_CT_LEN: usize = SERVER_FINISHED_PLAINTEXT_LEN + AEAD_TAG_LEN;
const SCA_CT_LEN: usize = SESSION_CLIENT_ATTEST_LEN - IDENTITY_CLIENT_ATTEST_AD_LEN;
const SSF_CT_LEN: usize = SESSION_SERVER_FINISHED_LEN - IDENTITY_SERVER_FINISHED_AD_LEN;

fn len_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Reads and checks `type ‖ length ‖ version ‖ suite` of a fixed-size message whose full byte
/// count is `total`. `bytes` must be exactly `total` long.
fn read_fixed_header<'a>(
    bytes: &'a [u8],
    expected: MsgType,
    total: usize,
) -> Result<(Reader<'a>, SuiteSpec), InvalidMessage> {
    let mut r = Reader::new(bytes);
    let t = MsgType(r.u8()?);
    if t != expected {
        return Err(if t.is_known() {
            InvalidMessage::UnexpectedType {
                expected: expected.0,
                got: t.0,
            }
        } else {
            InvalidMessage::UnknownType(t.0)
        });
    }
    let length = r.u16()?;
    if usize::from(length) != total {
        return Err(InvalidMessage::WrongLength {
            expected: len_u16(total),
            got: length,
        });
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(InvalidMessage::UnsupportedVersion(version));
    }
    let suite = SuiteSpec::from_u16(r.u16()?)?;
    if bytes.len() < total {
        return Err(InvalidMessage::Truncated);
    }
    if bytes.len() > total {
        return Err(InvalidMessage::TrailingData);
    }
    Ok((r, suite))
}

fn write_fixed_header(out: &mut Vec<u8>, t: MsgType, total: usize, suite: SuiteSpec) {
    out.extend_from_slice(
        &Header {
            msg_type: t,
            length: len_u16(total),
            version: VERSION,
        }
        .encode(),
    );
    out.extend_from_slice(&suite.to_u16().to_be_bytes());
}

/// ClientInit (0x01, 70 bytes, cleartext).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInit {
    /// Requested suite.
    pub suite: SuiteSpec,
    /// SigningNonce.
    pub nonce: [u8; SIGNING_NONCE_LEN],
    /// Client X25519 public key.
    pub key_share: [u8; KEY_SHARE_LEN],
}

impl ClientInit {
    /// Decodes exactly one ClientInit.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let (mut r, suite) = read_fixed_header(bytes, MsgType::CLIENT_INIT, CLIENT_INIT_LEN)?;
        let nonce = r.array()?;
        let key_share = r.array()?;
        r.finish()?;
        Ok(Self {
            suite,
            nonce,
            key_share,
        })
    }

    /// Encodes the 70 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CLIENT_INIT_LEN);
        write_fixed_header(&mut out, MsgType::CLIENT_INIT, CLIENT_INIT_LEN, self.suite);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.key_share);
        out
    }
}

/// ServerInitAndAttest (0x02, 417 bytes): cleartext key share and cookie, encrypted certificate and
/// signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInitAndAttest {
    /// Echo of the client's suite.
    pub suite: SuiteSpec,
    /// Server X25519 public key.
    pub key_share: [u8; KEY_SHARE_LEN],
    /// Server cookie (opaque to the client).
    pub cookie: [u8; COOKIE_LEN],
    /// `AEAD(certificate ‖ signature_s) ‖ tag`.
    pub ciphertext: [u8; SIA_CT_LEN],
}

impl ServerInitAndAttest {
    /// Decodes exactly one ServerInitAndAttest.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let (mut r, suite) = read_fixed_header(
            bytes,
            MsgType::SERVER_INIT_AND_ATTEST,
            SERVER_INIT_AND_ATTEST_LEN,
        )?;
        let key_share = r.array()?;
        let cookie = r.array()?;
        let ciphertext = r.array()?;
        r.finish()?;
        Ok(Self {
            suite,
            key_share,
            cookie,
            ciphertext,
        })
    }

    /// The 168-byte cleartext part (also the AEAD additional data).
    pub fn cleartext(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SERVER_INIT_AND_ATTEST_LEN);
        write_fixed_header(
            &mut out,
            MsgType::SERVER_INIT_AND_ATTEST,
            SERVER_INIT_AND_ATTEST_LEN,
            self.suite,
        );
        out.extend_from_slice(&self.key_share);
        out.extend_from_slice(&self.cookie);
        out
    }

    /// Encodes the 417 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.cleartext();
        out.extend_from_slice(&self.ciphertext);
        out
    }
}

/// Decrypted ServerInitAndAttest: certificate ‖ signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAttestPlaintext {
    /// The 169-byte server certificate.
    pub certificate: [u8; crate::cert::SERVER_CERTIFICATE_LEN],
    /// ECDSA by the certificate key over ServerSigHash.
    pub signature: [u8; LONGTERM_SIGNATURE_LEN],
}

impl ServerAttestPlaintext {
    /// Decodes the 233-byte plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let certificate = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            certificate,
            signature,
        })
    }

    /// Encodes the 233-byte plaintext.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SERVER_ATTEST_PLAINTEXT_LEN);
        out.extend_from_slice(&self.certificate);
        out.extend_from_slice(&self.signature);
        out
    }
}

/// Identity_ClientAttest (0x11, 750 bytes). Only type 0x11 is accepted (C also takes 0x21/0x22,
/// which here belong to the session handshake).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityClientAttest {
    /// Suite (must equal the negotiated one).
    pub suite: SuiteSpec,
    /// The echoed server cookie.
    pub cookie: [u8; COOKIE_LEN],
    /// `AEAD(ClientAttestPlaintext) ‖ tag`.
    pub ciphertext: [u8; IDCA_CT_LEN],
}

impl IdentityClientAttest {
    /// Decodes exactly one Identity_ClientAttest.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let (mut r, suite) = read_fixed_header(
            bytes,
            MsgType::IDENTITY_CLIENT_ATTEST,
            IDENTITY_CLIENT_ATTEST_LEN,
        )?;
        let cookie = r.array()?;
        let ciphertext = r.array()?;
        r.finish()?;
        Ok(Self {
            suite,
            cookie,
            ciphertext,
        })
    }

    /// The 136-byte cleartext part (also the AEAD additional data).
    pub fn cleartext(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IDENTITY_CLIENT_ATTEST_LEN);
        write_fixed_header(
            &mut out,
            MsgType::IDENTITY_CLIENT_ATTEST,
            IDENTITY_CLIENT_ATTEST_LEN,
            self.suite,
        );
        out.extend_from_slice(&self.cookie);
        out
    }

    /// Encodes the 750 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.cleartext();
        out.extend_from_slice(&self.ciphertext);
        out
    }
}

/// Decrypted Identity_ClientAttest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAttestPlaintext {
    /// Client long-term ECDSA public key (SEC1 uncompressed; not validated by the codec).
    pub longterm_key: [u8; LONGTERM_KEY_LEN],
    /// DAA group id.
    pub group_id: GroupId,
    /// Requested ClientID (null = server chooses).
    pub requested_id: ClientId,
    /// Long-term signature over the (truncated) ClientLongtermSigHash.
    pub longterm_signature: [u8; LONGTERM_SIGNATURE_LEN],
    /// DAA signature over the (truncated) ClientDAASigHash.
    pub daa_signature: DaaSignature,
}

impl ClientAttestPlaintext {
    /// Decodes the 598-byte plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let longterm_key = r.array()?;
        let group_id = GroupId(r.array::<GROUP_ID_LEN>()?);
        let requested_id = ClientId(r.array()?);
        let longterm_signature = r.array()?;
        let daa_signature = DaaSignature(r.array::<SIGNATURE_LEN>()?);
        r.finish()?;
        Ok(Self {
            longterm_key,
            group_id,
            requested_id,
            longterm_signature,
            daa_signature,
        })
    }

    /// Encodes the 598-byte plaintext.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CLIENT_ATTEST_PLAINTEXT_LEN);
        out.extend_from_slice(&self.longterm_key);
        out.extend_from_slice(&self.group_id.0);
        out.extend_from_slice(&self.requested_id.0);
        out.extend_from_slice(&self.longterm_signature);
        out.extend_from_slice(&self.daa_signature.0);
        out
    }
}

/// Identity_ServerFinished (0x13, 103 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityServerFinished {
    /// Suite.
    pub suite: SuiteSpec,
    /// `AEAD(ServerFinishedPlaintext) ‖ tag` under the server handshake key, sequence 1.
    pub ciphertext: [u8; IDSF_CT_LEN],
}

impl IdentityServerFinished {
    /// Decodes exactly one Identity_ServerFinished.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let (mut r, suite) = read_fixed_header(
            bytes,
            MsgType::IDENTITY_SERVER_FINISHED,
            IDENTITY_SERVER_FINISHED_LEN,
        )?;
        let ciphertext = r.array()?;
        r.finish()?;
        Ok(Self { suite, ciphertext })
    }

    /// The 6-byte cleartext part.
    pub fn cleartext(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IDENTITY_SERVER_FINISHED_LEN);
        write_fixed_header(
            &mut out,
            MsgType::IDENTITY_SERVER_FINISHED,
            IDENTITY_SERVER_FINISHED_LEN,
            self.suite,
        );
        out
    }

    /// Encodes the 103 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.cleartext();
        out.extend_from_slice(&self.ciphertext);
        out
    }
}

/// Decrypted Identity_ServerFinished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFinishedPlaintext {
    /// The provisioned ClientID.
    pub client_id: ClientId,
    /// Echo of the client's long-term public key.
    pub longterm_key: [u8; LONGTERM_KEY_LEN],
}

impl ServerFinishedPlaintext {
    /// Decodes the 81-byte plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let client_id = ClientId(r.array()?);
        let longterm_key = r.array()?;
        r.finish()?;
        Ok(Self {
            client_id,
            longterm_key,
        })
    }

    /// Encodes the 81-byte plaintext.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SERVER_FINISHED_PLAINTEXT_LEN);
        out.extend_from_slice(&self.client_id.0);
        out.extend_from_slice(&self.longterm_key);
        out
    }
}

/// Session_ClientAttest (0x21 without, 0x22 with a following record), 248 bytes. Only the
/// cleartext is interpreted here; the session handshake itself is a later issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClientAttest {
    /// True for 0x22 (a Record_Regular follows in the same flight).
    pub with_payload: bool,
    /// Suite.
    pub suite: SuiteSpec,
    /// Echoed server cookie.
    pub cookie: [u8; COOKIE_LEN],
    /// `AEAD(session_id ‖ client_id ‖ signature_c) ‖ tag`.
    pub ciphertext: [u8; SCA_CT_LEN],
}

impl SessionClientAttest {
    /// Decodes exactly one Session_ClientAttest (either type).
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let t = MsgType(*bytes.first().ok_or(InvalidMessage::Truncated)?);
        let with_payload = t == MsgType::SESSION_CLIENT_ATTEST_PAYLOAD;
        let expected = if with_payload {
            MsgType::SESSION_CLIENT_ATTEST_PAYLOAD
        } else {
            MsgType::SESSION_CLIENT_ATTEST_NO_PAYLOAD
        };
        let (mut r, suite) = read_fixed_header(bytes, expected, SESSION_CLIENT_ATTEST_LEN)?;
        let cookie = r.array()?;
        let ciphertext = r.array()?;
        r.finish()?;
        Ok(Self {
            with_payload,
            suite,
            cookie,
            ciphertext,
        })
    }

    /// Encodes the 248 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let t = if self.with_payload {
            MsgType::SESSION_CLIENT_ATTEST_PAYLOAD
        } else {
            MsgType::SESSION_CLIENT_ATTEST_NO_PAYLOAD
        };
        let mut out = Vec::with_capacity(SESSION_CLIENT_ATTEST_LEN);
        write_fixed_header(&mut out, t, SESSION_CLIENT_ATTEST_LEN, self.suite);
        out.extend_from_slice(&self.cookie);
        out.extend_from_slice(&self.ciphertext);
        out
    }
}

/// Session_ServerFinished (0x23, 54 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionServerFinished {
    /// Suite.
    pub suite: SuiteSpec,
    /// `AEAD(session_id ‖ awareness_proof) ‖ tag`.
    pub ciphertext: [u8; SSF_CT_LEN],
}

impl SessionServerFinished {
    /// Decodes exactly one Session_ServerFinished.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let (mut r, suite) = read_fixed_header(
            bytes,
            MsgType::SESSION_SERVER_FINISHED,
            SESSION_SERVER_FINISHED_LEN,
        )?;
        let ciphertext = r.array()?;
        r.finish()?;
        Ok(Self { suite, ciphertext })
    }

    /// Encodes the 54 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SESSION_SERVER_FINISHED_LEN);
        write_fixed_header(
            &mut out,
            MsgType::SESSION_SERVER_FINISHED,
            SESSION_SERVER_FINISHED_LEN,
            self.suite,
        );
        out.extend_from_slice(&self.ciphertext);
        out
    }
}

/// Record_Regular (0x31, 41 + n bytes), borrowed from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRegular<'a> {
    /// Session id.
    pub session_id: [u8; 16],
    /// Sequence number.
    pub seq_num: u32,
    /// `AEAD(payload_type ‖ payload) ‖ tag`, at least 17 bytes.
    pub ciphertext: &'a [u8],
}

impl<'a> RecordRegular<'a> {
    /// Decodes exactly one record (the length field must match `bytes.len()`).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let t = MsgType(r.u8()?);
        if t != MsgType::RECORD_REGULAR {
            return Err(if t.is_known() {
                InvalidMessage::UnexpectedType {
                    expected: MsgType::RECORD_REGULAR.0,
                    got: t.0,
                }
            } else {
                InvalidMessage::UnknownType(t.0)
            });
        }
        let length = r.u16()?;
        if usize::from(length) < RECORD_OVERHEAD {
            return Err(InvalidMessage::LengthOutOfRange(length));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(InvalidMessage::UnsupportedVersion(version));
        }
        let session_id = r.array()?;
        let seq_num = r.u32()?;
        let body = usize::from(length) - RECORD_HEADER_LEN;
        let ciphertext = r.take(body)?;
        r.finish()?;
        Ok(Self {
            session_id,
            seq_num,
            ciphertext,
        })
    }

    /// The 24-byte cleartext header (also the AEAD additional data).
    pub fn header(&self) -> Result<[u8; RECORD_HEADER_LEN], InvalidMessage> {
        let total = RECORD_HEADER_LEN + self.ciphertext.len();
        let length =
            u16::try_from(total).map_err(|_| InvalidMessage::LengthOutOfRange(u16::MAX))?;
        let mut out = [0u8; RECORD_HEADER_LEN];
        let h = Header {
            msg_type: MsgType::RECORD_REGULAR,
            length,
            version: VERSION,
        }
        .encode();
        out[..HEADER_LEN].copy_from_slice(&h);
        out[HEADER_LEN..20].copy_from_slice(&self.session_id);
        out[20..].copy_from_slice(&self.seq_num.to_be_bytes());
        Ok(out)
    }

    /// Encodes the record.
    pub fn encode(&self) -> Result<Vec<u8>, InvalidMessage> {
        let mut out = self.header()?.to_vec();
        out.extend_from_slice(self.ciphertext);
        Ok(out)
    }
}

/// Whether `bytes` start like an Error message (type 0x41). State machines check this first, so
/// a received Error ends the handshake cleanly whatever else the bytes hold.
pub fn is_error_message(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MsgType::ERROR.0)
}

/// The Error message (0x41, 4 bytes, no payload, no authentication).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorMessage;

impl ErrorMessage {
    /// Total size.
    pub const LEN: usize = 4;

    /// Decodes exactly 4 bytes `41 0004 vv`; the version byte is ignored, as C does.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let t = MsgType(r.u8()?);
        if t != MsgType::ERROR {
            return Err(InvalidMessage::UnexpectedType {
                expected: MsgType::ERROR.0,
                got: t.0,
            });
        }
        let length = r.u16()?;
        if usize::from(length) != Self::LEN {
            return Err(InvalidMessage::WrongLength {
                expected: len_u16(Self::LEN),
                got: length,
            });
        }
        let _version = r.u8()?;
        r.finish()?;
        Ok(Self)
    }

    /// `41 0004 01`.
    pub fn encode(&self) -> [u8; 4] {
        crate::codec::ERROR_MESSAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_init_bytes() -> Vec<u8> {
        ClientInit {
            suite: SuiteSpec::X25519LrswEcdsaP256Aes256GcmSha512,
            nonce: [7; 32],
            key_share: [9; 32],
        }
        .encode()
    }

    #[test]
    fn error_message_ignores_its_version_byte() {
        assert_eq!(ErrorMessage::decode(&[0x41, 0, 4, 0xee]), Ok(ErrorMessage));
        assert_eq!(ErrorMessage.encode(), [0x41, 0, 4, 1]);
        assert!(ErrorMessage::decode(&[0x41, 0, 5, 1]).is_err());
        assert!(ErrorMessage::decode(&[0x41, 0, 4, 1, 0]).is_err());
    }

    #[test]
    fn client_init_round_trips() {
        let b = client_init_bytes();
        assert_eq!(b.len(), CLIENT_INIT_LEN);
        assert_eq!(ClientInit::decode(&b).unwrap().encode(), b);
    }

    #[test]
    fn rejects_truncated_client_init() {
        let b = client_init_bytes();
        for n in 0..b.len() {
            assert!(ClientInit::decode(&b[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn rejects_client_init_with_trailing_byte() {
        let mut b = client_init_bytes();
        b.push(0);
        assert_eq!(ClientInit::decode(&b), Err(InvalidMessage::TrailingData));
    }

    #[test]
    fn rejects_client_init_with_wrong_version_or_suite_or_length() {
        let mut b = client_init_bytes();
        b[3] = 2;
        assert_eq!(
            ClientInit::decode(&b),
            Err(InvalidMessage::UnsupportedVersion(2))
        );
        let mut b = client_init_bytes();
        b[5] = 7;
        assert_eq!(ClientInit::decode(&b), Err(InvalidMessage::UnknownSuite(7)));
        let mut b = client_init_bytes();
        b[2] = 0x47;
        assert!(matches!(
            ClientInit::decode(&b),
            Err(InvalidMessage::WrongLength { .. })
        ));
    }

    #[test]
    fn identity_attest_decoder_refuses_session_attest_types() {
        let mut b = vec![0u8; IDENTITY_CLIENT_ATTEST_LEN];
        b[..6].copy_from_slice(&[0x21, 0x02, 0xee, 0x01, 0x00, 0x01]);
        assert_eq!(
            IdentityClientAttest::decode(&b),
            Err(InvalidMessage::UnexpectedType {
                expected: 0x11,
                got: 0x21
            })
        );
    }

    #[test]
    fn session_messages_round_trip() {
        let mut b = vec![0u8; SESSION_CLIENT_ATTEST_LEN];
        b[..6].copy_from_slice(&[0x22, 0x00, 248, 0x01, 0x00, 0x02]);
        let m = SessionClientAttest::decode(&b).unwrap();
        assert!(m.with_payload);
        assert_eq!(m.encode(), b);
        let mut b = vec![0u8; SESSION_SERVER_FINISHED_LEN];
        b[..6].copy_from_slice(&[0x23, 0x00, 54, 0x01, 0x00, 0x04]);
        assert_eq!(SessionServerFinished::decode(&b).unwrap().encode(), b);
    }

    #[test]
    fn record_round_trips_and_rejects_short_length() {
        let mut b = vec![0u8; RECORD_OVERHEAD + 3];
        b[..4].copy_from_slice(&[0x31, 0x00, 44, 0x01]);
        b[20..24].copy_from_slice(&7u32.to_be_bytes());
        let r = RecordRegular::decode(&b).unwrap();
        assert_eq!(r.seq_num, 7);
        assert_eq!(r.ciphertext.len(), 20);
        assert_eq!(r.encode().unwrap(), b);
        b[2] = 40;
        assert_eq!(
            RecordRegular::decode(&b),
            Err(InvalidMessage::LengthOutOfRange(40))
        );
    }
}
