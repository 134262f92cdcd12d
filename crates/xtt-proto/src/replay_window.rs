//! The receiver's sliding replay window (XTT-SESSION §3): each sequence number is accepted at most
//! once, numbers older than the window are dropped.
//!
//! The bitmap is a ring of `WORDS` 64-bit words indexed by `seq / 64` (the layout of RFC 6479):
//! advancing the window clears whole words instead of shifting bits, so both checking and
//! advancing cost O(1) whatever the jump. With `WORDS` words the window is `(WORDS − 1) · 64`
//! numbers wide: the newest word may be partly filled, the older ones are always complete.
//!
//! Checking and recording are separate steps: a record is checked before its tag is verified and
//! recorded only after, so a forged record can neither advance the window nor burn a number.

/// Why a sequence number is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayReject {
    /// Already accepted once.
    #[error("duplicate sequence number")]
    Duplicate,
    /// Older than the window: it may or may not have been seen; refused either way.
    #[error("sequence number older than the replay window")]
    TooOld,
}

/// A sliding window of `(WORDS − 1) · 64` sequence numbers; the default (2 words, 24 bytes)
/// is the spec's minimum of 64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow<const WORDS: usize = 2> {
    /// Highest accepted number + 1; 0 while nothing was accepted.
    next: u64,
    bits: [u64; WORDS],
}

impl<const WORDS: usize> Default for ReplayWindow<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> ReplayWindow<WORDS> {
    /// How many numbers below the highest accepted one are still accepted (the highest counts).
    pub const SIZE: u64 = (WORDS as u64).saturating_sub(1) * 64;

    /// An empty window: every number is acceptable.
    pub const fn new() -> Self {
        Self {
            next: 0,
            bits: [0; WORDS],
        }
    }

    /// The window as `(highest accepted + 1, ring bitmap)`, for handing it to another process
    /// ([`Self::from_parts`] restores it exactly).
    pub fn to_parts(&self) -> (u64, [u64; WORDS]) {
        (self.next, self.bits)
    }

    /// The window [`Self::to_parts`] returned. Any value is safe to restore in the sense that a
    /// bit set wrongly only refuses more; the caller must pass back what it was given.
    pub fn from_parts(next: u64, bits: [u64; WORDS]) -> Self {
        Self { next, bits }
    }

    /// A window that refuses every number below `floor` and accepts every number from it on
    /// (a receiver taking over from one that crashed, knowing only a bound on what it accepted).
    pub fn refusing_below(floor: u64) -> Self {
        let Some(last) = floor.checked_sub(1) else {
            return Self::new();
        };
        let mut bits = [u64::MAX; WORDS];
        // The word holding `last` also holds numbers above it, which must read as unseen.
        let (word, bit) = Self::slot(last);
        if let Some(w) = bits.get_mut(word) {
            *w = bit | (bit - 1);
        }
        Self { next: floor, bits }
    }

    /// The highest number accepted so far.
    pub fn highest(&self) -> Option<u32> {
        self.next.checked_sub(1).and_then(|h| u32::try_from(h).ok())
    }

    fn slot(seq: u64) -> (usize, u64) {
        // `WORDS` is a small constant, so the remainder fits any usize.
        let word = usize::try_from((seq >> 6) % (WORDS.max(1) as u64)).unwrap_or(0);
        (word, 1u64 << (seq & 63))
    }

    /// Whether `seq` would be accepted now. Does not change the window.
    pub fn check(&self, seq: u32) -> Result<(), ReplayReject> {
        let s = u64::from(seq);
        if s >= self.next {
            return Ok(());
        }
        if s + Self::SIZE < self.next {
            return Err(ReplayReject::TooOld);
        }
        let (word, bit) = Self::slot(s);
        match self.bits.get(word) {
            Some(w) if w & bit == 0 => Ok(()),
            _ => Err(ReplayReject::Duplicate),
        }
    }

    /// Records `seq` as accepted (call only after [`Self::check`] passed and the record
    /// authenticated). Refuses, and changes nothing, if `seq` is not acceptable.
    pub fn record(&mut self, seq: u32) -> Result<(), ReplayReject> {
        self.check(seq)?;
        let s = u64::from(seq);
        if s >= self.next {
            if self.next > 0 {
                let current = (self.next - 1) >> 6;
                let target = s >> 6;
                // Clear the words the window slides over (at most all of them).
                let steps = (target - current).min(WORDS as u64);
                for i in 1..=steps {
                    let (word, _) = Self::slot((current + i) << 6);
                    if let Some(w) = self.bits.get_mut(word) {
                        *w = 0;
                    }
                }
            }
            self.next = s + 1;
        }
        let (word, bit) = Self::slot(s);
        if let Some(w) = self.bits.get_mut(word) {
            *w |= bit;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_number_once_in_any_order_within_the_window() {
        let mut w = ReplayWindow::<2>::new();
        for s in [5u32, 3, 4, 0, 1, 2, 70, 69, 7] {
            assert_eq!(w.record(s), Ok(()), "{s}");
            assert_eq!(w.record(s), Err(ReplayReject::Duplicate), "{s}");
        }
        assert_eq!(w.highest(), Some(70));
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::<2>::new();
        assert_eq!(ReplayWindow::<2>::SIZE, 64);
        w.record(100).unwrap();
        // 100 − 63 is the oldest number still inside a 64-wide window; 100 − 64 is outside.
        assert_eq!(w.check(37), Ok(()));
        assert_eq!(w.check(36), Err(ReplayReject::TooOld));
        w.record(37).unwrap();
        assert_eq!(w.check(37), Err(ReplayReject::Duplicate));
    }

    #[test]
    fn a_large_jump_clears_stale_bits() {
        let mut w = ReplayWindow::<2>::new();
        for s in 0..64 {
            w.record(s).unwrap();
        }
        // 128 shares ring slots with 0..64; they must read as unseen, not as duplicates.
        w.record(1000).unwrap();
        for s in 937..1000 {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
        assert_eq!(w.check(936), Err(ReplayReject::TooOld));
        assert_eq!(w.check(1000), Err(ReplayReject::Duplicate));
    }

    #[test]
    fn wider_windows_remember_more() {
        let mut w = ReplayWindow::<4>::new();
        w.record(1000).unwrap();
        assert_eq!(w.check(1000 - 191), Ok(()));
        assert_eq!(w.check(1000 - 192), Err(ReplayReject::TooOld));
    }

    #[test]
    fn parts_round_trip_and_a_floor_refuses_exactly_below_it() {
        let mut w = ReplayWindow::<2>::new();
        for s in [3u32, 9, 70, 66] {
            w.record(s).unwrap();
        }
        let (next, bits) = w.to_parts();
        assert_eq!(ReplayWindow::<2>::from_parts(next, bits), w);

        for floor in [0u64, 1, 5, 63, 64, 65, 127, 128, 1000] {
            let f = ReplayWindow::<2>::refusing_below(floor);
            for s in floor.saturating_sub(70)..floor + 70 {
                let s32 = u32::try_from(s).unwrap();
                assert_eq!(f.check(s32).is_ok(), s >= floor, "floor {floor}, seq {s}");
            }
            // Accepting above the floor keeps the numbers between floor and it acceptable.
            let mut g = f.clone();
            let jump = u32::try_from(floor + 5).unwrap();
            g.record(jump).unwrap();
            for s in floor..floor + 5 {
                assert_eq!(
                    g.check(u32::try_from(s).unwrap()),
                    Ok(()),
                    "floor {floor}, {s}"
                );
            }
        }
    }

    #[test]
    fn the_largest_number_is_tracked() {
        let mut w = ReplayWindow::<2>::new();
        w.record(u32::MAX).unwrap();
        assert_eq!(w.record(u32::MAX), Err(ReplayReject::Duplicate));
        assert_eq!(w.highest(), Some(u32::MAX));
    }
}
