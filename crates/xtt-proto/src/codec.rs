//! Byte-level helpers: a bounds-checked reader, the 4-byte common header and message types.

use crate::error::{Error, InvalidMessage};

/// The only XTT version.
pub const VERSION: u8 = 1;
/// Size of the common header `type ‖ length(u16) ‖ version`.
pub const HEADER_LEN: usize = 4;
/// Largest identity-provisioning message (Identity_ClientAttest); C's I/O buffer bound.
pub const MAX_HANDSHAKE_LEN: usize = 750;
/// The 4-byte Error message as this crate sends it.
pub const ERROR_MESSAGE: [u8; 4] = [MsgType::ERROR.0, 0x00, 0x04, VERSION];

/// A message type byte. Unknown values are kept (and rejected where a message is decoded).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgType(pub u8);

impl MsgType {
    /// ClientInit.
    pub const CLIENT_INIT: Self = Self(0x01);
    /// ServerInitAndAttest.
    pub const SERVER_INIT_AND_ATTEST: Self = Self(0x02);
    /// Identity_ClientAttest.
    pub const IDENTITY_CLIENT_ATTEST: Self = Self(0x11);
    /// Identity_ServerFinished.
    pub const IDENTITY_SERVER_FINISHED: Self = Self(0x13);
    /// Session_ClientAttest_NoPayload.
    pub const SESSION_CLIENT_ATTEST_NO_PAYLOAD: Self = Self(0x21);
    /// Session_ClientAttest_Payload.
    pub const SESSION_CLIENT_ATTEST_PAYLOAD: Self = Self(0x22);
    /// Session_ServerFinished.
    pub const SESSION_SERVER_FINISHED: Self = Self(0x23);
    /// Record_Regular.
    pub const RECORD_REGULAR: Self = Self(0x31);
    /// Error.
    pub const ERROR: Self = Self(0x41);

    /// Whether this is one of the types XTT defines.
    pub fn is_known(self) -> bool {
        matches!(
            self.0,
            0x01 | 0x02 | 0x11 | 0x13 | 0x21 | 0x22 | 0x23 | 0x31 | 0x41
        )
    }
}

impl core::fmt::Debug for MsgType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.0 {
            0x01 => "ClientInit",
            0x02 => "ServerInitAndAttest",
            0x11 => "Identity_ClientAttest",
            0x13 => "Identity_ServerFinished",
            0x21 => "Session_ClientAttest_NoPayload",
            0x22 => "Session_ClientAttest_Payload",
            0x23 => "Session_ServerFinished",
            0x31 => "Record_Regular",
            0x41 => "Error",
            _ => return write!(f, "MsgType({:#04x})", self.0),
        };
        f.write_str(name)
    }
}

/// The common header of every XTT message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: MsgType,
    /// Total message length, header included.
    pub length: u16,
    /// Version byte (not validated here; Error messages may carry anything).
    pub version: u8,
}

impl Header {
    /// How many bytes follow the header.
    pub fn body_len(&self) -> usize {
        usize::from(self.length).saturating_sub(HEADER_LEN)
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [hi, lo] = self.length.to_be_bytes();
        [self.msg_type.0, hi, lo, self.version]
    }
}

/// Decodes the 4-byte header at the start of `bytes` so a stream driver knows how many more bytes
/// to read. `max_len` bounds the length field (750 for identity provisioning, up to 65535 for the
/// record layer). A received Error message yields [`Error::ReceivedErrorMessage`].
pub fn decode_header(bytes: &[u8], max_len: usize) -> Result<Header, Error> {
    let mut r = Reader::new(bytes);
    let msg_type = MsgType(r.u8()?);
    let length = r.u16()?;
    let version = r.u8()?;
    if msg_type == MsgType::ERROR {
        return Err(Error::ReceivedErrorMessage);
    }
    if !msg_type.is_known() {
        return Err(InvalidMessage::UnknownType(msg_type.0).into());
    }
    if usize::from(length) < HEADER_LEN || usize::from(length) > max_len {
        return Err(InvalidMessage::LengthOutOfRange(length).into());
    }
    Ok(Header {
        msg_type,
        length,
        version,
    })
}

/// A cursor over received bytes; every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], InvalidMessage> {
        if self.buf.len() < n {
            return Err(InvalidMessage::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], InvalidMessage> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, InvalidMessage> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, InvalidMessage> {
        Ok(u16::from_be_bytes(self.array::<2>()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, InvalidMessage> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), InvalidMessage> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(InvalidMessage::TrailingData)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_reports_body_length() {
        let h = decode_header(&[0x02, 0x01, 0xa1, 0x01], MAX_HANDSHAKE_LEN).unwrap();
        assert_eq!(h.msg_type, MsgType::SERVER_INIT_AND_ATTEST);
        assert_eq!(h.body_len(), 413);
        assert_eq!(h.encode(), [0x02, 0x01, 0xa1, 0x01]);
    }

    #[test]
    fn rejects_truncated_header() {
        for n in 0..4 {
            assert_eq!(
                decode_header(&[0x01, 0x00, 0x46, 0x01][..n], 750),
                Err(InvalidMessage::Truncated.into())
            );
        }
    }

    #[test]
    fn rejects_unknown_type() {
        assert_eq!(
            decode_header(&[0x03, 0x00, 0x46, 0x01], 750),
            Err(InvalidMessage::UnknownType(3).into())
        );
    }

    #[test]
    fn rejects_length_above_caller_maximum() {
        assert_eq!(
            decode_header(&[0x11, 0x02, 0xef, 0x01], 750),
            Err(InvalidMessage::LengthOutOfRange(751).into())
        );
        assert!(decode_header(&[0x31, 0xff, 0xff, 0x01], 65535).is_ok());
    }

    #[test]
    fn rejects_length_below_header() {
        assert_eq!(
            decode_header(&[0x01, 0x00, 0x03, 0x01], 750),
            Err(InvalidMessage::LengthOutOfRange(3).into())
        );
    }

    #[test]
    fn error_message_ends_handshake_whatever_its_version() {
        assert_eq!(
            decode_header(&[0x41, 0x00, 0x04, 0x77], 750),
            Err(Error::ReceivedErrorMessage)
        );
    }

    #[test]
    fn reader_rejects_trailing_data() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(r.finish(), Err(InvalidMessage::TrailingData));
    }
}
