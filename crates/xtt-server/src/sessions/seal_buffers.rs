//! Buffers the server seals its records into, recycled between the senders
//! ([`super::Outbox::send`]) and the paths that put the records on the wire (a TCP connection's
//! task once a write took them, a UDP send once it returns), so a busy session sends
//! without an allocation (and, for large records, without the page faults of a fresh one) per
//! record.
//!
//! One free list for the whole server rather than one per connection: connections are many and
//! most are idle, so per-connection lists would each keep buffers that nobody uses; one list
//! bounded by [`KEEP`] buffers of at most [`MAX_KEPT`] bytes holds at most ≈ 4 MiB in all.
//!
//! The buffers are not zeroized when given back: a sealed record is ciphertext, exactly the
//! bytes any observer of the link sees (the payload is sealed in place, so the plaintext never
//! stays in the buffer; a failed seal wipes what it copied in, see
//! `xtt_proto::session_table::SessionTable::seal_to_session_into`). The integrity-only suites 5
//! and 6 carry the payload in clear on the wire by definition, so the same holds for them.

use std::sync::Mutex;

/// Buffers kept for reuse at most (enough for a connection's whole write batch plus the records
/// being sealed meanwhile on the other reactor thread).
const KEEP: usize = 64;

/// Larger buffers are freed, not kept: a whole record of the largest size fits.
const MAX_KEPT: usize = u16::MAX as usize + 1;

/// The server's free list of record buffers.
#[derive(Debug, Default)]
pub(crate) struct SealBuffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl SealBuffers {
    /// An empty buffer, with room for `len` bytes if it had to be allocated (a recycled one grows
    /// while the record is sealed if it is too small, and is kept larger afterwards).
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let recycled = self.free.lock().ok().and_then(|mut f| f.pop());
        recycled.unwrap_or_else(|| Vec::with_capacity(len))
    }

    /// Keeps `buf` for a later [`Self::take`] (or frees it if the list is full or it is larger
    /// than any record).
    pub(crate) fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() > MAX_KEPT {
            return;
        }
        buf.clear();
        if let Ok(mut free) = self.free.lock() {
            if free.len() < KEEP {
                free.push(buf);
            }
        }
    }

    /// Gives back every buffer of `bufs`.
    pub(crate) fn give_back_all(&self, bufs: impl IntoIterator<Item = Vec<u8>>) {
        for buf in bufs {
            self.give_back(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_emptied_and_bounded() {
        let bufs = SealBuffers::default();
        let mut a = bufs.take(100);
        assert!(a.capacity() >= 100);
        a.extend_from_slice(&[7u8; 100]);
        let at = a.as_ptr();
        bufs.give_back(a);
        let b = bufs.take(10);
        assert!(b.is_empty(), "a recycled buffer comes back empty");
        assert_eq!(
            b.as_ptr(),
            at,
            "the buffer given back is the one taken next"
        );
        bufs.give_back(b);

        bufs.give_back(Vec::with_capacity(MAX_KEPT + 1));
        assert_eq!(
            bufs.free.lock().map(|f| f.len()).unwrap_or(0),
            1,
            "oversized buffers are freed"
        );

        let many: Vec<Vec<u8>> = (0..KEEP * 2).map(|_| Vec::with_capacity(8)).collect();
        bufs.give_back_all(many);
        assert_eq!(
            bufs.free.lock().map(|f| f.len()).unwrap_or(0),
            KEEP,
            "at most KEEP are kept"
        );
    }
}
