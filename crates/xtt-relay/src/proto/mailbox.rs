//! The mailbox and its access rules, without I/O: who may read, update, relinquish and delete,
//! and how the first Recipient binds. The server loads a [`Mailbox`] inside a storage
//! transaction, applies one of these methods, and persists the result before replying.
//!
//! Choices where the draft is silent:
//! - Access rights apply to both parties alike ("access rights to the mailbox for Initiator and
//!   Recipient devices"); a missing right answers 401 like a wrong claim (the draft lists no 403).
//! - The Initiator may read its own mailbox (needed by the stateful flow) without binding it.
//! - Relinquish needs no right beyond being the bound Recipient.
//! - At most `max_receivers` distinct Recipient bindings over a mailbox's life (requirement
//!   "Retrievals"); relinquishing does not give a binding back.
//! - Claims are stored as SHA-256 digests and compared in constant time: a leaked database
//!   does not hand out working claims.

use crate::proto::wire::{AccessRights, DisplayInformation, NotificationToken, SealedPayload};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

/// SHA-256 of a device claim's canonical (lower-case hyphenated) UUID text.
#[derive(Clone, Copy)]
pub struct ClaimDigest(pub [u8; 32]);

impl ClaimDigest {
    /// Digest of a claim.
    pub fn of(claim: &Uuid) -> Self {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = claim.hyphenated().encode_lower(&mut text);
        ClaimDigest(Sha256::digest(text.as_bytes()).into())
    }
}

impl PartialEq for ClaimDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for ClaimDigest {}

impl std::fmt::Debug for ClaimDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimDigest(..)")
    }
}

/// Which side of the mailbox a claim belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Recipient,
}

/// Why an operation on an existing mailbox was refused.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    #[error("no such mailbox")]
    NotFound,
    #[error("this device claim is not bound to the mailbox")]
    UnknownClaim,
    #[error("another recipient has claimed this mailbox")]
    AlreadyClaimed,
    #[error("the mailbox has reached its maximum number of recipients")]
    ReceiversExhausted,
    #[error("the mailbox's access rights do not allow this operation")]
    Forbidden,
    #[error("only the bound recipient can relinquish the mailbox")]
    NotRecipient,
}

/// What an operation did to the stored mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing to write.
    Unchanged,
    /// Write the mailbox back.
    Updated,
    /// Remove the mailbox.
    Deleted,
}

/// A live mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub id: Uuid,
    pub initiator: ClaimDigest,
    pub recipient: Option<ClaimDigest>,
    pub rights: AccessRights,
    /// Unix seconds; the mailbox is gone from this instant on.
    pub expires_at: i64,
    pub payload: SealedPayload,
    pub display: DisplayInformation,
    pub initiator_token: Option<NotificationToken>,
    pub recipient_token: Option<NotificationToken>,
    pub attestation: Option<String>,
    /// Recipient bindings so far (never decreases).
    pub receivers_bound: u32,
}

impl Mailbox {
    /// Whether the mailbox is expired at `now` (it is 404 from its expiration instant on).
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// The caller's role, if its claim is bound.
    pub fn role_of(&self, claim: &ClaimDigest) -> Option<Role> {
        if self.initiator == *claim {
            Some(Role::Initiator)
        } else if self.recipient.as_ref() == Some(claim) {
            Some(Role::Recipient)
        } else {
            None
        }
    }

    /// ReadSecureContentFromMailbox: binds the first Recipient; others get 401.
    pub fn read(
        &mut self,
        claim: &ClaimDigest,
        token: Option<NotificationToken>,
        max_receivers: u32,
    ) -> Result<(Role, Change), AccessError> {
        if !self.rights.read {
            return Err(AccessError::Forbidden);
        }
        let role = match self.role_of(claim) {
            Some(role) => role,
            None if self.recipient.is_some() => return Err(AccessError::AlreadyClaimed),
            None if self.receivers_bound >= max_receivers => {
                return Err(AccessError::ReceiversExhausted)
            }
            None => {
                self.recipient = Some(*claim);
                self.receivers_bound = self.receivers_bound.saturating_add(1);
                self.recipient_token = token;
                return Ok((Role::Recipient, Change::Updated));
            }
        };
        match token {
            Some(token) => {
                *self.token_slot(role) = Some(token);
                Ok((role, Change::Updated))
            }
            None => Ok((role, Change::Unchanged)),
        }
    }

    /// UpdateMailbox: overwrites the payload. Returns the other side's push token to notify.
    pub fn update(
        &mut self,
        claim: &ClaimDigest,
        payload: SealedPayload,
        token: Option<NotificationToken>,
    ) -> Result<Option<NotificationToken>, AccessError> {
        let role = self.role_of(claim).ok_or(AccessError::UnknownClaim)?;
        if !self.rights.write {
            return Err(AccessError::Forbidden);
        }
        self.payload = payload;
        if let Some(token) = token {
            *self.token_slot(role) = Some(token);
        }
        Ok(match role {
            Role::Initiator => self.recipient_token.clone(),
            Role::Recipient => self.initiator_token.clone(),
        })
    }

    /// RelinquishMailbox: the bound Recipient lets go; a new Recipient may claim.
    pub fn relinquish(&mut self, claim: &ClaimDigest) -> Result<(), AccessError> {
        match self.role_of(claim) {
            Some(Role::Recipient) => {
                self.recipient = None;
                self.recipient_token = None;
                Ok(())
            }
            Some(Role::Initiator) => Err(AccessError::NotRecipient),
            None => Err(AccessError::UnknownClaim),
        }
    }

    /// DeleteMailbox: Initiator or bound Recipient, with the D right.
    pub fn authorize_delete(&self, claim: &ClaimDigest) -> Result<Role, AccessError> {
        let role = self.role_of(claim).ok_or(AccessError::UnknownClaim)?;
        if !self.rights.delete {
            return Err(AccessError::Forbidden);
        }
        Ok(role)
    }

    fn token_slot(&mut self, role: Role) -> &mut Option<NotificationToken> {
        match role {
            Role::Initiator => &mut self.initiator_token,
            Role::Recipient => &mut self.recipient_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::PayloadType;

    fn claim(n: u128) -> ClaimDigest {
        ClaimDigest::of(&Uuid::from_u128(n))
    }

    fn mailbox(rights: &str) -> Mailbox {
        Mailbox {
            id: Uuid::from_u128(99),
            initiator: claim(1),
            recipient: None,
            rights: AccessRights::parse(rights).unwrap(),
            expires_at: 100,
            payload: SealedPayload {
                kind: PayloadType::Aes128Gcm,
                bytes: vec![0; 30],
            },
            display: DisplayInformation {
                title: "t".into(),
                description: "d".into(),
                image_url: "https://x".into(),
            },
            initiator_token: None,
            recipient_token: None,
            attestation: None,
            receivers_bound: 0,
        }
    }

    fn token(s: &str) -> NotificationToken {
        NotificationToken {
            kind: "webhook".into(),
            token_data: s.into(),
        }
    }

    #[test]
    fn first_reader_binds_others_are_refused_until_relinquish() {
        let mut m = mailbox("RD");
        assert_eq!(
            m.read(&claim(2), None, 2),
            Ok((Role::Recipient, Change::Updated))
        );
        assert_eq!(
            m.read(&claim(2), None, 2),
            Ok((Role::Recipient, Change::Unchanged))
        );
        assert_eq!(m.read(&claim(3), None, 2), Err(AccessError::AlreadyClaimed));
        assert_eq!(m.relinquish(&claim(3)), Err(AccessError::UnknownClaim));
        assert_eq!(m.relinquish(&claim(1)), Err(AccessError::NotRecipient));
        assert_eq!(m.relinquish(&claim(2)), Ok(()));
        assert_eq!(
            m.read(&claim(3), None, 2),
            Ok((Role::Recipient, Change::Updated))
        );
        m.relinquish(&claim(3)).unwrap();
        // Two bindings used: the limit holds even for the earlier device.
        assert_eq!(
            m.read(&claim(2), None, 2),
            Err(AccessError::ReceiversExhausted)
        );
    }

    #[test]
    fn initiator_reads_without_binding() {
        let mut m = mailbox("RD");
        assert_eq!(
            m.read(&claim(1), None, 1),
            Ok((Role::Initiator, Change::Unchanged))
        );
        assert_eq!(m.recipient, None);
        assert_eq!(m.receivers_bound, 0);
    }

    #[test]
    fn rights_are_enforced_for_both_sides() {
        let mut m = mailbox("D");
        assert_eq!(m.read(&claim(2), None, 5), Err(AccessError::Forbidden));
        let mut m = mailbox("RD");
        m.read(&claim(2), None, 5).unwrap();
        let p = m.payload.clone();
        assert_eq!(
            m.update(&claim(1), p.clone(), None),
            Err(AccessError::Forbidden)
        );
        assert_eq!(
            m.update(&claim(2), p.clone(), None),
            Err(AccessError::Forbidden)
        );
        assert_eq!(m.authorize_delete(&claim(2)), Ok(Role::Recipient));
        assert_eq!(
            m.authorize_delete(&claim(7)),
            Err(AccessError::UnknownClaim)
        );
        let mut m = mailbox("RW");
        m.read(&claim(2), None, 5).unwrap();
        assert_eq!(m.authorize_delete(&claim(1)), Err(AccessError::Forbidden));
        assert_eq!(m.update(&claim(7), p, None), Err(AccessError::UnknownClaim));
    }

    #[test]
    fn update_notifies_the_other_side() {
        let mut m = mailbox("RWD");
        m.initiator_token = Some(token("init"));
        m.read(&claim(2), Some(token("recv")), 5).unwrap();
        let p = m.payload.clone();
        assert_eq!(
            m.update(&claim(2), p.clone(), None),
            Ok(Some(token("init")))
        );
        assert_eq!(m.update(&claim(1), p, None), Ok(Some(token("recv"))));
    }

    #[test]
    fn expiry_instant_is_exclusive() {
        let m = mailbox("RD");
        assert!(!m.is_expired(99));
        assert!(m.is_expired(100));
    }
}
