//! The stateful three-message flow of the 2021 draft (draft-secure-credential-transfer-03,
//! "Stateful workflow"): ProvInfo1 from the Sender, ProvInfo2 from the Receiver, ProvInfo3 from
//! the Sender, each sealed under the same Secret and written with UpdateMailbox.
//!
//! The draft leaves the content of messages 2 and 3 to the verticals. This crate fixes them
//! (format names in the `xtt.relay.confirm.*` namespace):
//!
//! 1. Sender → Receiver: the Provisioning Information with an extra top-level key
//!    `xttConfirm: {senderKey}` (the Sender's ECDSA P-256 public key, SEC1 compressed,
//!    base64url). Formats may add top-level keys (tigress-http §7).
//! 2. Receiver → Sender: TxInfo, `{format: "xtt.relay.confirm.txInfo", content: {receiverKey,
//!    nonce, provInfoHash}}`: a fresh P-256 key of the Receiver (the key being endorsed), 16
//!    random bytes, and SHA-256 of message 1's exact plaintext, all base64url.
//! 3. Sender → Receiver: `{format: "xtt.relay.confirm.signature", content: {signature}}`, an
//!    ECDSA P-256/SHA-256 signature (64-byte r‖s, base64url) over
//!    `"xtt-relay-confirm-v1\0" ‖ message 2's exact plaintext bytes`.
//!
//! Signing the exact bytes avoids any JSON canonicalisation; the context prefix keeps the
//! signature from being valid for anything else the Sender's key signs.

use crate::proto::secret::{CryptoError, ProvisioningInfo};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Format name of message 2.
pub const TXINFO_FORMAT: &str = "xtt.relay.confirm.txInfo";
/// Format name of message 3.
pub const SIGNATURE_FORMAT: &str = "xtt.relay.confirm.signature";
/// Top-level key of message 1 carrying the Sender's public key.
pub const CONFIRM_KEY: &str = "xttConfirm";
const SIGNING_CONTEXT: &[u8] = b"xtt-relay-confirm-v1\0";

/// A serialised message, wiped on drop.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// Errors of the confirm flow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfirmError {
    #[error("message is not provisioning information: {0}")]
    Message(#[from] CryptoError),
    #[error("field {0} is missing or malformed")]
    Field(&'static str),
    #[error("the TxInfo answers a different message 1 (provInfoHash mismatch)")]
    WrongTranscript,
    #[error("the Sender's signature over TxInfo does not verify")]
    BadSignature,
    #[error("unexpected message format {0:?} at this step")]
    UnexpectedFormat(String),
}

fn b64_field(content: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, ConfirmError> {
    let text = content
        .get(name)
        .and_then(Value::as_str)
        .ok_or(ConfirmError::Field(name))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ConfirmError::Field(name))
}

fn key_b64(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_encoded_point(true).as_bytes())
}

/// SHA-256 of a key's compressed SEC1 form, shown to users to compare keys out of band.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.to_encoded_point(true).as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The Sender's side.
#[derive(Debug)]
pub struct SenderConfirm {
    key: SigningKey,
    message1_hash: [u8; 32],
}

impl SenderConfirm {
    /// Builds message 1 from the Provisioning Information to share.
    pub fn start(info: &ProvisioningInfo, key: SigningKey) -> (Self, Zeroizing<Vec<u8>>) {
        let mut message = info.clone();
        message.extra.insert(
            CONFIRM_KEY.to_owned(),
            json!({ "senderKey": key_b64(key.verifying_key()) }),
        );
        let bytes = message.to_bytes();
        let message1_hash = Sha256::digest(&bytes[..]).into();
        (SenderConfirm { key, message1_hash }, bytes)
    }

    /// Feeds the mailbox's current plaintext. `Ok(None)` while it still holds message 1;
    /// `Ok(Some(message3))` once the Receiver's TxInfo is there and answers our message 1.
    pub fn on_message(&self, plaintext: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, ConfirmError> {
        if Sha256::digest(plaintext).ct_eq(&self.message1_hash).into() {
            return Ok(None);
        }
        let info = ProvisioningInfo::from_bytes(plaintext)?;
        match info.format.as_str() {
            TXINFO_FORMAT => {}
            SIGNATURE_FORMAT => return Ok(None), // our own message 3, read back
            other => return Err(ConfirmError::UnexpectedFormat(other.to_owned())),
        }
        let hash = b64_field(&info.content, "provInfoHash")?;
        if !bool::from(hash.ct_eq(&self.message1_hash)) {
            return Err(ConfirmError::WrongTranscript);
        }
        // Validate the receiver key before endorsing it.
        VerifyingKey::from_sec1_bytes(&b64_field(&info.content, "receiverKey")?)
            .map_err(|_| ConfirmError::Field("receiverKey"))?;
        let signature: Signature = self.key.sign(&[SIGNING_CONTEXT, plaintext].concat());
        let mut content = Map::new();
        content.insert(
            "signature".into(),
            Value::String(URL_SAFE_NO_PAD.encode(signature.to_bytes())),
        );
        Ok(Some(
            ProvisioningInfo::new(SIGNATURE_FORMAT, content).to_bytes(),
        ))
    }
}

/// What the Receiver ends with.
#[derive(Debug)]
pub struct Confirmation {
    /// The Sender's key that signed.
    pub sender_key: VerifyingKey,
    /// The Receiver's key the Sender endorsed, and its private half.
    pub receiver_key: SigningKey,
    /// Message 2 exactly as signed.
    pub txinfo: Zeroizing<Vec<u8>>,
    /// The signature (64-byte r‖s).
    pub signature: Vec<u8>,
}

/// The Receiver's side.
#[derive(Debug)]
pub struct ReceiverConfirm {
    sender_key: VerifyingKey,
    receiver_key: SigningKey,
    txinfo: Zeroizing<Vec<u8>>,
}

impl ReceiverConfirm {
    /// Inspects message 1. `Ok(None)` when the Sender did not ask for confirmation; otherwise
    /// the state and message 2 to write back.
    pub fn start<R: RngCore + CryptoRng>(
        message1: &[u8],
        rng: &mut R,
    ) -> Result<Option<(Self, Plaintext)>, ConfirmError> {
        let info = ProvisioningInfo::from_bytes(message1)?;
        let Some(confirm) = info.extra.get(CONFIRM_KEY) else {
            return Ok(None);
        };
        let confirm = confirm
            .as_object()
            .ok_or(ConfirmError::Field(CONFIRM_KEY))?;
        let sender_key = VerifyingKey::from_sec1_bytes(&b64_field(confirm, "senderKey")?)
            .map_err(|_| ConfirmError::Field("senderKey"))?;
        let receiver_key = SigningKey::random(rng);
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let mut content = Map::new();
        content.insert(
            "receiverKey".into(),
            Value::String(key_b64(receiver_key.verifying_key())),
        );
        content.insert("nonce".into(), Value::String(URL_SAFE_NO_PAD.encode(nonce)));
        content.insert(
            "provInfoHash".into(),
            Value::String(URL_SAFE_NO_PAD.encode(Sha256::digest(message1))),
        );
        let txinfo = ProvisioningInfo::new(TXINFO_FORMAT, content).to_bytes();
        Ok(Some((
            ReceiverConfirm {
                sender_key,
                receiver_key,
                txinfo: txinfo.clone(),
            },
            txinfo,
        )))
    }

    /// The Sender's key from message 1.
    pub fn sender_key(&self) -> &VerifyingKey {
        &self.sender_key
    }

    /// Feeds the mailbox's current plaintext. `Ok(None)` while it still holds our TxInfo.
    pub fn on_message(self, plaintext: &[u8]) -> Result<Result<Confirmation, Self>, ConfirmError> {
        if plaintext == &self.txinfo[..] {
            return Ok(Err(self));
        }
        let info = ProvisioningInfo::from_bytes(plaintext)?;
        if info.format != SIGNATURE_FORMAT {
            return Err(ConfirmError::UnexpectedFormat(info.format.clone()));
        }
        let raw = b64_field(&info.content, "signature")?;
        let signature =
            Signature::from_slice(&raw).map_err(|_| ConfirmError::Field("signature"))?;
        self.sender_key
            .verify(&[SIGNING_CONTEXT, &self.txinfo[..]].concat(), &signature)
            .map_err(|_| ConfirmError::BadSignature)?;
        Ok(Ok(Confirmation {
            sender_key: self.sender_key,
            receiver_key: self.receiver_key,
            txinfo: self.txinfo,
            signature: raw,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn info() -> ProvisioningInfo {
        let mut content = Map::new();
        content.insert("token".into(), json!("t0k3n"));
        ProvisioningInfo::new("digitalwallet.generic.authorizationToken", content)
    }

    #[test]
    fn three_messages() {
        let (sender, m1) = SenderConfirm::start(&info(), SigningKey::random(&mut OsRng));
        assert_eq!(sender.on_message(&m1), Ok(None));
        let (receiver, m2) = ReceiverConfirm::start(&m1, &mut OsRng).unwrap().unwrap();
        let receiver = receiver.on_message(&m2).unwrap().unwrap_err();
        let m3 = sender.on_message(&m2).unwrap().unwrap();
        assert_eq!(sender.on_message(&m3), Ok(None));
        let done = receiver.on_message(&m3).unwrap().unwrap();
        assert_eq!(done.signature.len(), 64);
    }

    #[test]
    fn plain_share_needs_no_confirmation() {
        assert!(ReceiverConfirm::start(&info().to_bytes(), &mut OsRng)
            .unwrap()
            .is_none());
    }

    #[test]
    fn wrong_signer_and_wrong_transcript_fail() {
        let (_sender, m1) = SenderConfirm::start(&info(), SigningKey::random(&mut OsRng));
        let (impostor, _) = SenderConfirm::start(&info(), SigningKey::random(&mut OsRng));
        let (receiver, m2) = ReceiverConfirm::start(&m1, &mut OsRng).unwrap().unwrap();
        // The impostor never sent m1, so its transcript hash differs.
        assert_eq!(impostor.on_message(&m2), Err(ConfirmError::WrongTranscript));
        // A signature by another key over the right TxInfo does not verify.
        let mut content = Map::new();
        let sig: Signature =
            SigningKey::random(&mut OsRng).sign(&[SIGNING_CONTEXT, &m2[..]].concat());
        content.insert(
            "signature".into(),
            json!(URL_SAFE_NO_PAD.encode(sig.to_bytes())),
        );
        let forged = ProvisioningInfo::new(SIGNATURE_FORMAT, content).to_bytes();
        assert_eq!(
            receiver.on_message(&forged).err(),
            Some(ConfirmError::BadSignature)
        );
    }
}
