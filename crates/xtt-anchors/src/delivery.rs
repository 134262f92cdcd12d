//! Update delivery over an XTT session: the small pull protocol carried in `queue_protocol`
//! record payloads, sans IO. The server side ([`Offering`]) answers requests from the update it
//! currently serves; the device side ([`Download`]) says what to ask for next and checks every
//! answer. Drivers (xtt-server's `UpdateServer` application and `fetch_update`) only move the
//! bytes; trust decisions stay with [`crate::update`].
//!
//! # Messages
//!
//! Every message is one record payload; integers are big-endian.
//!
//! ```text
//! device → server
//!   0x01 OfferRequest                                    "what is your current update?"
//!   0x02 ChunkRequest  id[32] part:u8 offset:u64 len:u32  "send me these bytes"
//! server → device
//!   0x81 Offer         id[32] envelope_len:u32 image_len:u64
//!   0x82 Chunk         id[32] part:u8 offset:u64 bytes…
//!   0x83 NoUpdate                                        nothing to offer
//!   0x84 Refused       reason:u8                         1 unknown id (replaced), 2 malformed
//! ```
//!
//! `id` is SHA-256 of the signed envelope, so the device checks the envelope it assembled
//! against the id before parsing it, and chunk requests name the exact update (a server that
//! switched to a newer one answers Refused/unknown id, which ends that download; the next fetch
//! starts over with the new offer). `part` 0 is
//! the envelope, 1 the image. The device pulls one chunk at a time and asks again on timeout:
//! the server keeps no per-device state and sends nothing unasked, so record loss (UDP) or a
//! full per-connection queue (TCP) costs a retry, never a corrupt image. Chunks are at most
//! [`MAX_CHUNK`] bytes, well inside the record layer's payload limit.
//!
//! The device checks the envelope (signature against its update anchors, target, sequence
//! number) before it downloads the image, and the full update after.

use sha2::{Digest, Sha256};

/// Largest chunk a server sends (and a device may ask for).
pub const MAX_CHUNK: u32 = 16 * 1024;
/// Largest envelope a device accepts (a SUIT envelope of this subset is a few hundred bytes).
pub const MAX_ENVELOPE: u32 = 64 * 1024;
/// Largest image the tools sign, verify or serve: every copy of it is held in memory whole.
/// Devices choose their own, usually lower, limit when they fetch.
pub const MAX_IMAGE: u64 = 512 * 1024 * 1024;

const OFFER_REQUEST: u8 = 0x01;
const CHUNK_REQUEST: u8 = 0x02;
const OFFER: u8 = 0x81;
const CHUNK: u8 = 0x82;
const NO_UPDATE: u8 = 0x83;
const REFUSED: u8 = 0x84;

/// An update's id: SHA-256 of its envelope.
pub type UpdateId = [u8; 32];

/// Which object a chunk belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The signed SUIT envelope.
    Envelope,
    /// The image it describes.
    Image,
}

impl Part {
    fn byte(self) -> u8 {
        match self {
            Part::Envelope => 0,
            Part::Image => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Part::Envelope),
            1 => Some(Part::Image),
            _ => None,
        }
    }
}

/// Why a server refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// The request names an update the server no longer (or never) served.
    UnknownUpdate,
    /// The request did not parse or asked for bytes outside the object.
    Malformed,
}

impl core::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RefusalReason::UnknownUpdate => {
                "it no longer serves that update (a newer one was published meanwhile)"
            }
            RefusalReason::Malformed => "it could not parse the request or the range is outside",
        })
    }
}

/// A message from the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceMessage {
    /// What is the current update?
    OfferRequest,
    /// Send `len` bytes of `part` of update `id` from `offset`.
    ChunkRequest {
        /// The update.
        id: UpdateId,
        /// Which object.
        part: Part,
        /// Where.
        offset: u64,
        /// How many bytes at most.
        len: u32,
    },
}

/// A message from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// The current update.
    Offer {
        /// Its id (SHA-256 of the envelope).
        id: UpdateId,
        /// Envelope length.
        envelope_len: u32,
        /// Image length.
        image_len: u64,
    },
    /// Requested bytes.
    Chunk {
        /// The update.
        id: UpdateId,
        /// Which object.
        part: Part,
        /// Where they start.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The server has no update to offer.
    NoUpdate,
    /// The server refused the request.
    Refused(RefusalReason),
}

/// A message that does not parse, or a device-side protocol violation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The bytes are not a message of this protocol.
    #[error("malformed update-delivery message: {0}")]
    Malformed(&'static str),
    /// The offer exceeds what this device accepts.
    #[error("offered {what} of {offered} bytes exceeds this device's limit of {limit} bytes")]
    TooLarge {
        /// "envelope" or "image".
        what: &'static str,
        /// Offered size.
        offered: u64,
        /// Limit.
        limit: u64,
    },
    /// The assembled envelope's SHA-256 is not the offered id.
    #[error("the received envelope does not match the offered update id (corrupted in transit or a lying server)")]
    EnvelopeIdMismatch,
    /// The server refused a request.
    #[error("the server refused the request: {0}")]
    Refused(RefusalReason),
    /// The server has nothing to offer.
    #[error("the server has no update to offer")]
    NoUpdate,
    /// The offer's image length is not the one the signed manifest gives.
    #[error("the server offers an image of {offered} bytes; the signed manifest says {signed}")]
    ImageLenMismatch {
        /// Length in the (unsigned) offer.
        offered: u64,
        /// Length in the signed manifest.
        signed: u64,
    },
}

fn take<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], DeliveryError> {
    b.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(DeliveryError::Malformed("message too short"))
}

impl DeviceMessage {
    /// The payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            DeviceMessage::OfferRequest => vec![OFFER_REQUEST],
            DeviceMessage::ChunkRequest {
                id,
                part,
                offset,
                len,
            } => {
                let mut m = Vec::with_capacity(46);
                m.push(CHUNK_REQUEST);
                m.extend_from_slice(id);
                m.push(part.byte());
                m.extend_from_slice(&offset.to_be_bytes());
                m.extend_from_slice(&len.to_be_bytes());
                m
            }
        }
    }

    /// Parses a payload (exact length required).
    pub fn decode(b: &[u8]) -> Result<Self, DeliveryError> {
        match b.first() {
            Some(&OFFER_REQUEST) if b.len() == 1 => Ok(DeviceMessage::OfferRequest),
            Some(&CHUNK_REQUEST) if b.len() == 46 => Ok(DeviceMessage::ChunkRequest {
                id: take::<32>(b, 1)?,
                part: Part::from_byte(take::<1>(b, 33)?[0])
                    .ok_or(DeliveryError::Malformed("unknown part"))?,
                offset: u64::from_be_bytes(take::<8>(b, 34)?),
                len: u32::from_be_bytes(take::<4>(b, 42)?),
            }),
            Some(&OFFER_REQUEST | &CHUNK_REQUEST) => Err(DeliveryError::Malformed("wrong length")),
            _ => Err(DeliveryError::Malformed("unknown device message type")),
        }
    }
}

impl ServerMessage {
    /// The payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerMessage::Offer {
                id,
                envelope_len,
                image_len,
            } => {
                let mut m = Vec::with_capacity(45);
                m.push(OFFER);
                m.extend_from_slice(id);
                m.extend_from_slice(&envelope_len.to_be_bytes());
                m.extend_from_slice(&image_len.to_be_bytes());
                m
            }
            ServerMessage::Chunk {
                id,
                part,
                offset,
                data,
            } => {
                let mut m = Vec::with_capacity(42 + data.len());
                m.push(CHUNK);
                m.extend_from_slice(id);
                m.push(part.byte());
                m.extend_from_slice(&offset.to_be_bytes());
                m.extend_from_slice(data);
                m
            }
            ServerMessage::NoUpdate => vec![NO_UPDATE],
            ServerMessage::Refused(r) => vec![
                REFUSED,
                match r {
                    RefusalReason::UnknownUpdate => 1,
                    RefusalReason::Malformed => 2,
                },
            ],
        }
    }

    /// Parses a payload.
    pub fn decode(b: &[u8]) -> Result<Self, DeliveryError> {
        match b.first() {
            Some(&OFFER) if b.len() == 45 => Ok(ServerMessage::Offer {
                id: take::<32>(b, 1)?,
                envelope_len: u32::from_be_bytes(take::<4>(b, 33)?),
                image_len: u64::from_be_bytes(take::<8>(b, 37)?),
            }),
            Some(&CHUNK) if b.len() > 42 => Ok(ServerMessage::Chunk {
                id: take::<32>(b, 1)?,
                part: Part::from_byte(take::<1>(b, 33)?[0])
                    .ok_or(DeliveryError::Malformed("unknown part"))?,
                offset: u64::from_be_bytes(take::<8>(b, 34)?),
                data: b.get(42..).unwrap_or_default().to_vec(),
            }),
            Some(&NO_UPDATE) if b.len() == 1 => Ok(ServerMessage::NoUpdate),
            Some(&REFUSED) if b.len() == 2 => match take::<1>(b, 1)?[0] {
                1 => Ok(ServerMessage::Refused(RefusalReason::UnknownUpdate)),
                2 => Ok(ServerMessage::Refused(RefusalReason::Malformed)),
                _ => Err(DeliveryError::Malformed("unknown refusal reason")),
            },
            Some(&(OFFER | CHUNK | NO_UPDATE | REFUSED)) => {
                Err(DeliveryError::Malformed("wrong length"))
            }
            _ => Err(DeliveryError::Malformed("unknown server message type")),
        }
    }
}

/// Server side: the update being served, answering requests statelessly.
#[derive(Clone, Debug)]
pub struct Offering {
    id: UpdateId,
    envelope: Vec<u8>,
    image: Vec<u8>,
}

impl Offering {
    /// Serves `envelope` with `image`. The server does not judge them (devices do); an
    /// envelope over [`MAX_ENVELOPE`] bytes would be refused by every device.
    pub fn new(envelope: Vec<u8>, image: Vec<u8>) -> Self {
        Offering {
            id: Sha256::digest(&envelope).into(),
            envelope,
            image,
        }
    }

    /// Its id.
    pub fn id(&self) -> UpdateId {
        self.id
    }

    /// The answer to one request payload; `None` when there is nothing to serve.
    pub fn answer(offering: Option<&Offering>, request: &[u8]) -> ServerMessage {
        let Ok(request) = DeviceMessage::decode(request) else {
            return ServerMessage::Refused(RefusalReason::Malformed);
        };
        let Some(o) = offering else {
            return ServerMessage::NoUpdate;
        };
        match request {
            DeviceMessage::OfferRequest => ServerMessage::Offer {
                id: o.id,
                envelope_len: u32::try_from(o.envelope.len()).unwrap_or(u32::MAX),
                image_len: o.image.len() as u64,
            },
            DeviceMessage::ChunkRequest {
                id,
                part,
                offset,
                len,
            } => {
                if id != o.id {
                    return ServerMessage::Refused(RefusalReason::UnknownUpdate);
                }
                let object = match part {
                    Part::Envelope => &o.envelope,
                    Part::Image => &o.image,
                };
                let start = usize::try_from(offset).ok().filter(|s| *s < object.len());
                let Some(start) = start else {
                    return ServerMessage::Refused(RefusalReason::Malformed);
                };
                let n = len.clamp(1, MAX_CHUNK) as usize;
                let end = start.saturating_add(n).min(object.len());
                ServerMessage::Chunk {
                    id,
                    part,
                    offset,
                    data: object.get(start..end).unwrap_or_default().to_vec(),
                }
            }
        }
    }
}

/// What [`Download::accept`] made of a server message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Bytes were added.
    Advanced,
    /// A duplicate or stale answer (e.g. to a retried request): ignored.
    Ignored,
}

/// Device side: one update's download, one chunk at a time, envelope first.
#[derive(Debug)]
pub struct Download {
    id: UpdateId,
    envelope_len: usize,
    image_len: usize,
    chunk: u32,
    envelope: Vec<u8>,
    image: Vec<u8>,
}

impl Download {
    /// Starts downloading the offered update, asking for `chunk` bytes at a time (capped at
    /// [`MAX_CHUNK`]); an image over `max_image` bytes is refused before anything is fetched.
    pub fn new(offer: &ServerMessage, chunk: u32, max_image: u64) -> Result<Self, DeliveryError> {
        let (id, envelope_len, image_len) = match offer {
            ServerMessage::Offer {
                id,
                envelope_len,
                image_len,
            } => (*id, *envelope_len, *image_len),
            ServerMessage::NoUpdate => return Err(DeliveryError::NoUpdate),
            ServerMessage::Refused(r) => return Err(DeliveryError::Refused(*r)),
            ServerMessage::Chunk { .. } => {
                return Err(DeliveryError::Malformed("expected an offer, got a chunk"))
            }
        };
        if envelope_len == 0 || envelope_len > MAX_ENVELOPE {
            return Err(DeliveryError::TooLarge {
                what: "envelope",
                offered: envelope_len.into(),
                limit: MAX_ENVELOPE.into(),
            });
        }
        let too_large = DeliveryError::TooLarge {
            what: "image",
            offered: image_len,
            limit: max_image,
        };
        if image_len > max_image {
            return Err(too_large);
        }
        Ok(Download {
            id,
            envelope_len: envelope_len as usize,
            image_len: usize::try_from(image_len).map_err(|_| too_large)?,
            chunk: chunk.clamp(1, MAX_CHUNK),
            envelope: Vec::new(),
            image: Vec::new(),
        })
    }

    /// The update's id.
    pub fn id(&self) -> UpdateId {
        self.id
    }

    /// The whole envelope, once received and matching the id.
    pub fn envelope(&self) -> Result<Option<&[u8]>, DeliveryError> {
        if self.envelope.len() < self.envelope_len {
            return Ok(None);
        }
        let digest: UpdateId = Sha256::digest(&self.envelope).into();
        if digest != self.id {
            return Err(DeliveryError::EnvelopeIdMismatch);
        }
        Ok(Some(&self.envelope))
    }

    /// Refuses the image the offer announced unless its length is `signed`, the image size of
    /// the checked envelope's manifest. The offer is not signed: without this a server replaying
    /// a genuine envelope could announce any image length up to the device's limit and have
    /// the device fetch and hold all of it before the final check refuses it.
    pub fn check_signed_image_len(&self, signed: u64) -> Result<(), DeliveryError> {
        let offered = self.image_len as u64;
        if offered != signed {
            return Err(DeliveryError::ImageLenMismatch { offered, signed });
        }
        Ok(())
    }

    /// (bytes received, bytes in all) over envelope and image.
    pub fn progress(&self) -> (u64, u64) {
        (
            (self.envelope.len() + self.image.len()) as u64,
            (self.envelope_len + self.image_len) as u64,
        )
    }

    /// The next request: envelope chunks first, then image chunks; `None` when both are
    /// complete.
    pub fn next_request(&self) -> Option<DeviceMessage> {
        let (part, have, want) = if self.envelope.len() < self.envelope_len {
            (Part::Envelope, self.envelope.len(), self.envelope_len)
        } else if self.image.len() < self.image_len {
            (Part::Image, self.image.len(), self.image_len)
        } else {
            return None;
        };
        let len = u32::try_from(want - have).map_or(self.chunk, |rest| rest.min(self.chunk));
        Some(DeviceMessage::ChunkRequest {
            id: self.id,
            part,
            offset: have as u64,
            len,
        })
    }

    /// Takes one server message. Answers to other requests (duplicates, stale retries) are
    /// ignored; a refusal, or a chunk of another length than asked for, is an error. The server
    /// always has the bytes asked for (requests never reach past the offered lengths), so a
    /// shorter chunk is a server dribbling: each answer would restart the answer timeout
    /// and a download of n bytes could take n round trips.
    pub fn accept(&mut self, message: ServerMessage) -> Result<Progress, DeliveryError> {
        let ServerMessage::Chunk {
            id,
            part,
            offset,
            data,
        } = message
        else {
            return match message {
                ServerMessage::Refused(r) => Err(DeliveryError::Refused(r)),
                ServerMessage::NoUpdate => Err(DeliveryError::NoUpdate),
                // A repeated offer (answer to a retried OfferRequest).
                _ => Ok(Progress::Ignored),
            };
        };
        let Some(DeviceMessage::ChunkRequest {
            part: want_part,
            offset: want_offset,
            len,
            ..
        }) = self.next_request()
        else {
            return Ok(Progress::Ignored);
        };
        if id != self.id || part != want_part || offset != want_offset {
            return Ok(Progress::Ignored);
        }
        if data.len() != len as usize {
            return Err(DeliveryError::Malformed(
                "chunk is not of the length requested",
            ));
        }
        match part {
            Part::Envelope => self.envelope.extend_from_slice(&data),
            Part::Image => self.image.extend_from_slice(&data),
        }
        Ok(Progress::Advanced)
    }

    /// The envelope and image, once complete (the envelope checked against the id).
    pub fn finish(self) -> Result<(Vec<u8>, Vec<u8>), DeliveryError> {
        if self.envelope()?.is_none() || self.image.len() < self.image_len {
            return Err(DeliveryError::Malformed("download incomplete"));
        }
        Ok((self.envelope, self.image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(offering: &Offering, chunk: u32) -> (Vec<u8>, Vec<u8>) {
        let offer = Offering::answer(Some(offering), &DeviceMessage::OfferRequest.encode());
        let offer = ServerMessage::decode(&offer.encode()).unwrap();
        let mut d = Download::new(&offer, chunk, 1 << 20).unwrap();
        while let Some(req) = d.next_request() {
            let answer = Offering::answer(Some(offering), &req.encode());
            let answer = ServerMessage::decode(&answer.encode()).unwrap();
            // Every answer twice: the duplicate is ignored.
            assert_eq!(d.accept(answer.clone()).unwrap(), Progress::Advanced);
            assert_eq!(d.accept(answer).unwrap(), Progress::Ignored);
        }
        d.finish().unwrap()
    }

    #[test]
    fn download_reassembles_envelope_and_image() {
        let image: Vec<u8> = (0..10_000u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let o = Offering::new(vec![7; 300], image.clone());
        for chunk in [1, 999, MAX_CHUNK, u32::MAX] {
            let (e, i) = run(&o, chunk);
            assert_eq!(e, vec![7; 300]);
            assert_eq!(i, image);
        }
    }

    #[test]
    fn an_envelope_that_does_not_match_the_id_is_refused() {
        let o = Offering::new(vec![1; 10], vec![2; 10]);
        let mut d = Download::new(
            &Offering::answer(Some(&o), &DeviceMessage::OfferRequest.encode()),
            64,
            100,
        )
        .unwrap();
        let forged = ServerMessage::Chunk {
            id: o.id(),
            part: Part::Envelope,
            offset: 0,
            data: vec![9; 10],
        };
        assert_eq!(d.accept(forged).unwrap(), Progress::Advanced);
        assert_eq!(d.envelope(), Err(DeliveryError::EnvelopeIdMismatch));
    }

    #[test]
    fn oversized_offers_and_overlong_chunks_are_refused() {
        let o = Offering::new(vec![1; 10], vec![2; 1000]);
        let offer = Offering::answer(Some(&o), &DeviceMessage::OfferRequest.encode());
        assert!(matches!(
            Download::new(&offer, 64, 999),
            Err(DeliveryError::TooLarge { what: "image", .. })
        ));
        let mut d = Download::new(&offer, 4, 1000).unwrap();
        let long = ServerMessage::Chunk {
            id: o.id(),
            part: Part::Envelope,
            offset: 0,
            data: vec![1; 5],
        };
        assert!(d.accept(long).is_err());
    }

    #[test]
    fn a_chunk_shorter_than_asked_for_is_refused() {
        // A server that has the bytes but sends one at a time would restart the device's
        // answer timeout with every byte.
        let o = Offering::new(vec![1; 10], vec![2; 1000]);
        let offer = Offering::answer(Some(&o), &DeviceMessage::OfferRequest.encode());
        let mut d = Download::new(&offer, 4, 1000).unwrap();
        let short = ServerMessage::Chunk {
            id: o.id(),
            part: Part::Envelope,
            offset: 0,
            data: vec![1; 1],
        };
        assert_eq!(
            d.accept(short),
            Err(DeliveryError::Malformed(
                "chunk is not of the length requested"
            ))
        );
        // The last chunk of a part is as long as what is left, and accepted.
        let mut d = Download::new(&offer, 4, 1000).unwrap();
        for (offset, len) in [(0u64, 4usize), (4, 4), (8, 2)] {
            let answer = Offering::answer(Some(&o), &d.next_request().unwrap().encode());
            assert!(
                matches!(&answer, ServerMessage::Chunk { offset: at, data, .. } if *at == offset && data.len() == len)
            );
            assert_eq!(d.accept(answer).unwrap(), Progress::Advanced);
        }
    }

    #[test]
    fn an_offer_must_announce_the_signed_image_size() {
        let o = Offering::new(vec![1; 10], vec![2; 1000]);
        let offer = Offering::answer(Some(&o), &DeviceMessage::OfferRequest.encode());
        let d = Download::new(&offer, 64, 1 << 20).unwrap();
        assert_eq!(d.check_signed_image_len(1000), Ok(()));
        assert_eq!(
            d.check_signed_image_len(14),
            Err(DeliveryError::ImageLenMismatch {
                offered: 1000,
                signed: 14
            })
        );
    }

    #[test]
    fn server_refuses_unknown_ids_and_out_of_range_offsets() {
        let o = Offering::new(vec![1; 10], vec![2; 10]);
        let req = |id, offset| {
            DeviceMessage::ChunkRequest {
                id,
                part: Part::Image,
                offset,
                len: 4,
            }
            .encode()
        };
        assert_eq!(
            Offering::answer(Some(&o), &req([0; 32], 0)),
            ServerMessage::Refused(RefusalReason::UnknownUpdate)
        );
        assert_eq!(
            Offering::answer(Some(&o), &req(o.id(), 10)),
            ServerMessage::Refused(RefusalReason::Malformed)
        );
        assert_eq!(
            Offering::answer(Some(&o), b"\x02short"),
            ServerMessage::Refused(RefusalReason::Malformed)
        );
        assert_eq!(
            Offering::answer(None, &DeviceMessage::OfferRequest.encode()),
            ServerMessage::NoUpdate
        );
    }

    #[test]
    fn every_message_round_trips() {
        let id = [5; 32];
        for m in [
            ServerMessage::Offer {
                id,
                envelope_len: 3,
                image_len: 4,
            },
            ServerMessage::Chunk {
                id,
                part: Part::Image,
                offset: 9,
                data: vec![1, 2],
            },
            ServerMessage::NoUpdate,
            ServerMessage::Refused(RefusalReason::UnknownUpdate),
        ] {
            assert_eq!(ServerMessage::decode(&m.encode()).unwrap(), m);
        }
        let r = DeviceMessage::ChunkRequest {
            id,
            part: Part::Envelope,
            offset: 1,
            len: 2,
        };
        assert_eq!(DeviceMessage::decode(&r.encode()).unwrap(), r);
        assert!(ServerMessage::decode(&[]).is_err());
        assert!(DeviceMessage::decode(&[0x77]).is_err());
    }
}
