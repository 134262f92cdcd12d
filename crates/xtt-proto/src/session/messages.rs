//! Plaintexts of the session handshake messages, and splitting the client's attest flight.
//! The outer messages (cleartext headers, ciphertext) are in [`crate::msgs`].

use crate::codec::Reader;
use crate::error::InvalidMessage;
use crate::identity::ClientId;
use crate::msgs::{
    RecordRegular, SessionClientAttest, SessionServerFinished, LONGTERM_SIGNATURE_LEN,
    SESSION_CLIENT_ATTEST_LEN,
};
use crate::record::SessionId;

use super::keys::{ATTEST_AD_LEN, AWARENESS_PROOF_LEN};

/// Plaintext of Session_ClientAttest: `session_id ‖ client_id ‖ signature_c`.
pub const SESSION_ATTEST_PLAINTEXT_LEN: usize = 96;
/// Plaintext of Session_ServerFinished: `session_id ‖ awareness_proof`.
pub const SESSION_FINISHED_PLAINTEXT_LEN: usize = 32;

/// Decrypted Session_ClientAttest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionAttestPlaintext {
    /// Proposed session id (zero in 0x21: the server assigns).
    pub session_id: SessionId,
    /// The ClientID from identity provisioning.
    pub client_id: ClientId,
    /// ECDSA-P256 by the client's long-term key over `session_client_sig_hash`.
    pub signature: [u8; LONGTERM_SIGNATURE_LEN],
}

impl SessionAttestPlaintext {
    /// Decodes the 96-byte plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let session_id = SessionId(r.array()?);
        let client_id = ClientId(r.array()?);
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            session_id,
            client_id,
            signature,
        })
    }

    /// Encodes the 96-byte plaintext.
    pub fn encode(&self) -> [u8; SESSION_ATTEST_PLAINTEXT_LEN] {
        let mut out = [0u8; SESSION_ATTEST_PLAINTEXT_LEN];
        let (sid, rest) = out.split_at_mut(16);
        let (cid, sig) = rest.split_at_mut(16);
        sid.copy_from_slice(&self.session_id.0);
        cid.copy_from_slice(&self.client_id.0);
        sig.copy_from_slice(&self.signature);
        out
    }
}

/// Decrypted Session_ServerFinished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFinishedPlaintext {
    /// The session id (assigned, or the client's proposal echoed).
    pub session_id: SessionId,
    /// Proof that the server derived the same session keys, bound to `session_id`.
    pub awareness_proof: [u8; AWARENESS_PROOF_LEN],
}

impl SessionFinishedPlaintext {
    /// Decodes the 32-byte plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let session_id = SessionId(r.array()?);
        let awareness_proof = r.array()?;
        r.finish()?;
        Ok(Self {
            session_id,
            awareness_proof,
        })
    }

    /// Encodes the 32-byte plaintext.
    pub fn encode(&self) -> [u8; SESSION_FINISHED_PLAINTEXT_LEN] {
        let mut out = [0u8; SESSION_FINISHED_PLAINTEXT_LEN];
        let (sid, proof) = out.split_at_mut(16);
        sid.copy_from_slice(&self.session_id.0);
        proof.copy_from_slice(&self.awareness_proof);
        out
    }
}

/// The 136-byte cleartext of Session_ClientAttest as sent (the AEAD additional data).
pub(crate) fn attest_ad(msg: &SessionClientAttest) -> [u8; ATTEST_AD_LEN] {
    let mut out = [0u8; ATTEST_AD_LEN];
    for (d, s) in out.iter_mut().zip(msg.encode()) {
        *d = s;
    }
    out
}

/// The 6-byte cleartext of Session_ServerFinished.
pub(crate) fn finished_ad(msg: &SessionServerFinished) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (d, s) in out.iter_mut().zip(msg.encode()) {
        *d = s;
    }
    out
}

/// The client's third flight: Session_ClientAttest, plus the early-data record for 0x22.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestFlight<'a> {
    /// The 248-byte attest message.
    pub attest: SessionClientAttest,
    /// The Record_Regular that follows a 0x22 (None for 0x21).
    pub early_record: Option<RecordRegular<'a>>,
}

impl<'a> AttestFlight<'a> {
    /// Splits and decodes a flight: exactly 248 bytes for 0x21; 248 bytes and exactly one record
    /// for 0x22.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, InvalidMessage> {
        let split = SESSION_CLIENT_ATTEST_LEN.min(bytes.len());
        let (head, rest) = bytes.split_at(split);
        let attest = SessionClientAttest::decode(head)?;
        let early_record = if attest.with_payload {
            Some(RecordRegular::decode(rest)?)
        } else if rest.is_empty() {
            None
        } else {
            return Err(InvalidMessage::TrailingData);
        };
        Ok(Self {
            attest,
            early_record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintexts_round_trip_and_reject_wrong_sizes() {
        let p = SessionAttestPlaintext {
            session_id: SessionId([1; 16]),
            client_id: ClientId([2; 16]),
            signature: [3; 64],
        };
        let b = p.encode();
        assert_eq!(SessionAttestPlaintext::decode(&b), Ok(p));
        assert!(SessionAttestPlaintext::decode(&b[..95]).is_err());
        let f = SessionFinishedPlaintext {
            session_id: SessionId([4; 16]),
            awareness_proof: [5; 16],
        };
        let b = f.encode();
        assert_eq!(SessionFinishedPlaintext::decode(&b), Ok(f));
        let mut long = b.to_vec();
        long.push(0);
        assert_eq!(
            SessionFinishedPlaintext::decode(&long),
            Err(InvalidMessage::TrailingData)
        );
    }

    #[test]
    fn flight_without_payload_takes_no_trailing_bytes() {
        let mut b = vec![0u8; SESSION_CLIENT_ATTEST_LEN];
        b[..6].copy_from_slice(&[0x21, 0x00, 248, 0x01, 0x00, 0x01]);
        assert!(AttestFlight::decode(&b).unwrap().early_record.is_none());
        b.push(0);
        assert_eq!(AttestFlight::decode(&b), Err(InvalidMessage::TrailingData));
        b.pop();
        b[0] = 0x22;
        assert_eq!(AttestFlight::decode(&b), Err(InvalidMessage::Truncated));
    }
}
