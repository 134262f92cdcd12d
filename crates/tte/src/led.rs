//! The LED variant (draft §8.1): a device without a printed QR code blinks its enrollment data,
//! and a phone camera reads it.
//!
//! Frame (all lengths one byte, so each field is at most 255 bytes):
//!
//! ```text
//! 0x00 0x01 | len TaURN | len DevURN | len OTP | len DevSecret | checksum
//! ```
//!
//! The start word is `0x0001`; the checksum is the 8-bit two's complement of the sum of every
//! byte after the start word, so those bytes plus the checksum sum to 0 mod 256. Bytes are sent
//! most significant bit first.
//!
//! Line code: NRZI. The LED is off while idle; a `1` bit toggles the LED at the start of its bit
//! period, a `0` leaves it as it is. A receiver therefore needs only to notice *changes*, which
//! survives a camera's unknown exposure and white balance; it decodes `bit = level != previous`.
//! At the draft's 15 bit/s, one bit lasts 1/15 s (66.7 ms), well above a 30 fps camera's frame
//! time. The start word's fifteen zeros (one second without a change) followed by a toggle make
//! the frame start easy to find in a looped transmission.

/// The start word.
pub const START: [u8; 2] = [0x00, 0x01];

/// The draft's bit rate.
pub const DEFAULT_BPS: u32 = 15;

/// The fields a frame carries. The TaURN names the Transfer Agent (e.g. `urn:tte:ta.example`).
#[derive(Clone, PartialEq, Eq)]
pub struct LedFrame {
    /// Names the Transfer Agent.
    pub ta_urn: Vec<u8>,
    /// The device URN.
    pub dev_urn: Vec<u8>,
    /// The OTP (raw bytes).
    pub otp: Vec<u8>,
    /// The DevSecret (raw bytes).
    pub dev_secret: Vec<u8>,
}

impl std::fmt::Debug for LedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedFrame")
            .field("ta_urn", &String::from_utf8_lossy(&self.ta_urn))
            .field("dev_urn", &String::from_utf8_lossy(&self.dev_urn))
            .finish_non_exhaustive()
    }
}

impl Drop for LedFrame {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.otp);
        zeroize::Zeroize::zeroize(&mut self.dev_secret);
    }
}

/// Why bytes or levels are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedError {
    /// A field exceeds 255 bytes.
    #[error("LED frame field {0} is longer than 255 bytes")]
    FieldTooLong(&'static str),
    /// Does not start with `0x0001`.
    #[error("LED frame does not start with 0x0001")]
    Start,
    /// Ends before all fields and the checksum.
    #[error("LED frame is truncated")]
    Truncated,
    /// Checksum mismatch.
    #[error("LED frame checksum mismatch")]
    Checksum,
    /// Bytes left after the checksum.
    #[error("LED frame has {0} trailing bytes")]
    Trailing(usize),
    /// No valid frame anywhere in a bit stream.
    #[error("no valid LED frame found in the bit stream")]
    NotFound,
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

impl LedFrame {
    /// The frame's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, LedError> {
        let mut out = START.to_vec();
        for (name, f) in [
            ("TaURN", &self.ta_urn),
            ("DevURN", &self.dev_urn),
            ("OTP", &self.otp),
            ("DevSecret", &self.dev_secret),
        ] {
            let len = u8::try_from(f.len()).map_err(|_| LedError::FieldTooLong(name))?;
            out.push(len);
            out.extend_from_slice(f);
        }
        out.push(checksum(&out[2..]));
        Ok(out)
    }

    /// Parses exactly one frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, LedError> {
        let (frame, used) = Self::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(LedError::Trailing(bytes.len() - used));
        }
        Ok(frame)
    }

    /// Parses one frame at the start of `bytes`, returning it and the bytes it used.
    fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize), LedError> {
        let rest = bytes.strip_prefix(&START[..]).ok_or(LedError::Start)?;
        let mut pos = 0usize;
        let mut field = || -> Result<Vec<u8>, LedError> {
            let len = usize::from(*rest.get(pos).ok_or(LedError::Truncated)?);
            let f = rest
                .get(pos + 1..pos + 1 + len)
                .ok_or(LedError::Truncated)?
                .to_vec();
            pos += 1 + len;
            Ok(f)
        };
        let frame = LedFrame {
            ta_urn: field()?,
            dev_urn: field()?,
            otp: field()?,
            dev_secret: field()?,
        };
        let sum = *rest.get(pos).ok_or(LedError::Truncated)?;
        if checksum(&rest[..pos]) != sum {
            return Err(LedError::Checksum);
        }
        Ok((frame, 2 + pos + 1))
    }
}

/// Bytes to bits, most significant bit first.
pub fn to_bits(bytes: &[u8]) -> Vec<bool> {
    bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
        .collect()
}

/// NRZI: LED levels (true = on), one per bit period, starting from an idle (off) LED.
pub fn nrzi_encode(bits: &[bool]) -> Vec<bool> {
    let mut level = false;
    bits.iter()
        .map(|&b| {
            level ^= b;
            level
        })
        .collect()
}

/// NRZI decoding: a change of level is a 1. `idle` is the level before the first sample.
pub fn nrzi_decode(levels: &[bool], idle: bool) -> Vec<bool> {
    let mut prev = idle;
    levels
        .iter()
        .map(|&l| {
            let bit = l != prev;
            prev = l;
            bit
        })
        .collect()
}

/// Finds and decodes the first valid frame in a bit stream at any bit offset (a receiver may
/// start watching mid-transmission of a looped frame).
pub fn find_frame(bits: &[bool]) -> Result<LedFrame, LedError> {
    for off in 0..bits.len().saturating_sub(16) {
        let bytes: Vec<u8> = bits[off..]
            .chunks_exact(8)
            .map(|c| c.iter().fold(0u8, |a, &b| a << 1 | u8::from(b)))
            .collect();
        if bytes.starts_with(&START) {
            if let Ok((f, _)) = LedFrame::decode_prefix(&bytes) {
                return Ok(f);
            }
        }
    }
    Err(LedError::NotFound)
}

/// Duration of one bit period in microseconds at `bps` bits per second.
pub fn bit_period_us(bps: u32) -> u64 {
    1_000_000 / u64::from(bps.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> LedFrame {
        LedFrame {
            ta_urn: b"urn:tte:ta.example".to_vec(),
            dev_urn: b"urn:dev:mac:90a2da001a0c".to_vec(),
            otp: vec![0xa5; 16],
            dev_secret: vec![0x3c; 32],
        }
    }

    #[test]
    fn bytes_round_trip_and_checksum() {
        let b = frame().encode().unwrap();
        assert_eq!(&b[..3], &[0x00, 0x01, 18]);
        assert_eq!(b[2..].iter().fold(0u8, |a, x| a.wrapping_add(*x)), 0);
        assert_eq!(LedFrame::decode(&b).unwrap(), frame());
        let mut bad = b.clone();
        bad[5] ^= 1;
        assert_eq!(LedFrame::decode(&bad), Err(LedError::Checksum));
        assert_eq!(
            LedFrame::decode(&b[..b.len() - 1]),
            Err(LedError::Truncated)
        );
        assert_eq!(LedFrame::decode(&b[1..]), Err(LedError::Start));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(LedFrame::decode(&long), Err(LedError::Trailing(1)));
        let mut f = frame();
        f.otp = vec![0; 256];
        assert_eq!(f.encode(), Err(LedError::FieldTooLong("OTP")));
    }

    #[test]
    fn nrzi_known_bits() {
        // 1 toggles, 0 holds, from idle off.
        let bits = [true, false, true, true, false, false, true];
        let levels = nrzi_encode(&bits);
        assert_eq!(levels, [true, true, false, true, true, true, false]);
        assert_eq!(nrzi_decode(&levels, false), bits);
    }

    #[test]
    fn found_mid_stream_after_noise() {
        let bytes = frame().encode().unwrap();
        // Receiver joins in the middle of the previous loop, at a bit offset.
        let mut bits = to_bits(&bytes)[37..].to_vec();
        bits.extend(std::iter::repeat_n(false, 3));
        bits.extend(to_bits(&bytes));
        let levels = nrzi_encode(&bits);
        let decoded = nrzi_decode(&levels, false);
        assert_eq!(find_frame(&decoded).unwrap(), frame());
        assert_eq!(find_frame(&decoded[..100]), Err(LedError::NotFound));
        assert_eq!(bit_period_us(15), 66_666);
    }
}
