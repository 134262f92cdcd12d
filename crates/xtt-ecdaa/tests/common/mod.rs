//! Shared test helpers: vector loading (fails if a file is missing) and deterministic RNGs.
#![allow(dead_code)]

use std::path::PathBuf;

use rand_core::{CryptoRng, RngCore};
use serde_json::Value;

pub(crate) fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors"
    ))
}

pub(crate) fn read_file(rel: &str) -> Vec<u8> {
    let p = vectors_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("vector file {} missing: {e}", p.display()))
}

pub(crate) fn load_json(name: &str) -> Value {
    serde_json::from_slice(&read_file(name)).expect("vector JSON parses")
}

pub(crate) fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

/// Replays a fixed byte stream; panics if asked for more than was recorded.
pub(crate) struct ReplayRng {
    bytes: Vec<u8>,
    pos: usize,
}

impl ReplayRng {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        ReplayRng { bytes, pos: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.pos + dest.len();
        dest.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for ReplayRng {}

/// The vectors' RNG: ChaCha20 (IETF) keystream, key = seed, zero nonce, counter 0.
pub(crate) fn chacha_stream(seed: &[u8], len: usize) -> Vec<u8> {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    let mut c = chacha20::ChaCha20::new(seed.into(), &[0u8; 12].into());
    let mut out = vec![0u8; len];
    c.apply_keystream(&mut out);
    out
}

pub(crate) fn test_rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}
