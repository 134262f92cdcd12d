//! Shared helpers for the integration tests: the C-produced vectors (read at run time, never
//! copied into source), a replay of their recorded RNG stream, and test fixtures.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;

use chacha20::cipher::{KeyIvInit, StreamCipher};
use serde_json::Value;
use xtt_proto::cert::{RootCertificate, ServerCertificate};
use xtt_proto::client::ClientConfig;
use xtt_proto::cookie::{CookieKey, CookieKeyring, InMemoryReplayGuard};
use xtt_proto::longterm::LongtermKeyPair;
use xtt_proto::server::{Server, ServerConfig};
use xtt_proto::SuiteSpec;

/// The vector files that must exist.
pub const EXPECTED_VECTORS: [&str; 5] = [
    "xtt_id_handshake_suite1.json",
    "xtt_id_handshake_suite1_requested_id.json",
    "xtt_id_handshake_suite2.json",
    "xtt_id_handshake_suite3.json",
    "xtt_id_handshake_suite4.json",
];

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors"
    ))
}

/// One handshake vector file.
pub struct Vector {
    pub name: String,
    pub json: Value,
}

impl Vector {
    /// Hex field at a JSON pointer such as `/key_schedule/inner_hash`.
    pub fn hex(&self, pointer: &str) -> Vec<u8> {
        let s = self
            .json
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: missing {pointer}", self.name));
        hex::decode(s).unwrap_or_else(|e| panic!("{}: {pointer}: {e}", self.name))
    }

    pub fn arr<const N: usize>(&self, pointer: &str) -> [u8; N] {
        let v = self.hex(pointer);
        v.as_slice()
            .try_into()
            .unwrap_or_else(|_| panic!("{}: {pointer} has {} bytes, not {N}", self.name, v.len()))
    }

    pub fn suite(&self) -> SuiteSpec {
        let n = u16::try_from(self.json["suite_spec"].as_u64().expect("suite_spec")).expect("u16");
        SuiteSpec::from_u16(n).expect("known suite")
    }

    /// Wire bytes of message `i` (0 ClientInit, 1 ServerInitAndAttest, 2 ClientAttest,
    /// 3 ServerFinished).
    pub fn message(&self, i: usize) -> Vec<u8> {
        self.hex(&format!("/messages/{i}/bytes"))
    }

    /// The recorded draw with this label.
    pub fn draw(&self, label: &str) -> Vec<u8> {
        let draws = self.json["rng"]["draws"].as_array().expect("draws");
        let d = draws
            .iter()
            .find(|d| d["label"] == label)
            .unwrap_or_else(|| panic!("{}: no draw {label}", self.name));
        hex::decode(d["bytes"].as_str().expect("bytes")).expect("hex")
    }

    /// Sum of the lengths of the draws before the one labelled `label`.
    pub fn offset_of_draw(&self, label: &str) -> usize {
        let draws = self.json["rng"]["draws"].as_array().expect("draws");
        let mut off = 0;
        for d in draws {
            if d["label"] == label {
                return off;
            }
            off += usize::try_from(d["len"].as_u64().expect("len")).expect("usize");
        }
        panic!("{}: no draw {label}", self.name)
    }

    pub fn rng(&self) -> RecordedRng {
        RecordedRng::new(&self.arr::<32>("/rng/seed"))
    }

    pub fn root(&self) -> RootCertificate {
        RootCertificate::decode(&self.hex("/root/root_certificate")).expect("root certificate")
    }

    pub fn member(&self) -> xtt_ecdaa::Member {
        xtt_ecdaa::Member::from_bytes(
            &self.hex("/daa/member_secret_key"),
            &self.hex("/daa/credential"),
            &self.hex("/daa/group_public_key"),
            &self.hex("/daa/basename"),
        )
        .expect("member")
    }

    pub fn verifier(&self) -> xtt_ecdaa::GroupVerifier {
        let gpk =
            xtt_ecdaa::GroupPublicKey::from_bytes(&self.hex("/daa/group_public_key")).expect("gpk");
        xtt_ecdaa::GroupVerifier::new(gpk, &self.hex("/daa/basename")).expect("verifier")
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            roots: Arc::new(self.root()),
            daa: Arc::new(self.member()),
            longterm_key: None,
        }
    }

    pub fn server_key(&self) -> LongtermKeyPair {
        LongtermKeyPair::from_private_bytes(&self.arr("/server_longterm/private_key"))
            .expect("server key")
    }

    pub fn server_certificate(&self) -> ServerCertificate {
        ServerCertificate::decode(&self.hex("/server_longterm/certificate")).expect("cert")
    }

    /// A stateless server with the vector's certificate and key.
    pub fn server(&self, guard: Arc<InMemoryReplayGuard>) -> Server {
        Server::new(ServerConfig {
            certificate: self.server_certificate(),
            signing_key: self.server_key(),
            cookie_keys: CookieKeyring::new(CookieKey::from_secret(1, &[0x5a; 32])),
            cookie_lifetime_secs: 20,
            replay_guard: guard,
        })
    }
}

/// Every `xtt_id_handshake_*.json`; fails if an expected file is missing.
pub fn load_vectors() -> Vec<Vector> {
    let dir = vectors_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with("xtt_id_handshake_") && name.ends_with(".json") {
            let text = std::fs::read_to_string(&path).expect("read vector");
            let json = serde_json::from_str(&text).expect("parse vector");
            out.push(Vector { name, json });
        }
    }
    for expected in EXPECTED_VECTORS {
        assert!(
            out.iter().any(|v| v.name == expected),
            "missing vector file {expected} in {}",
            dir.display()
        );
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The vectors' randomness: ChaCha20 (IETF) keystream keyed by the seed, zero nonce, counter 0.
pub struct RecordedRng {
    cipher: chacha20::ChaCha20,
    pub consumed: usize,
}

impl RecordedRng {
    pub fn new(seed: &[u8; 32]) -> Self {
        Self {
            cipher: chacha20::ChaCha20::new(seed.into(), &[0u8; 12].into()),
            consumed: 0,
        }
    }

    /// Discards `n` bytes (draws made by code we do not run, e.g. C's server).
    pub fn skip(&mut self, n: usize) {
        let mut buf = vec![0u8; n];
        rand_core::RngCore::fill_bytes(self, &mut buf);
    }

    /// Positions the stream at byte `offset`.
    pub fn skip_to(&mut self, offset: usize) {
        assert!(offset >= self.consumed, "stream already past {offset}");
        self.skip(offset - self.consumed);
    }
}

impl rand_core::RngCore for RecordedRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
        self.cipher.apply_keystream(dest);
        self.consumed += dest.len();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core::CryptoRng for RecordedRng {}

/// Assigns ids like the C tool: null request → a fresh id (here: a counter), else echo.
pub struct TestAuthority {
    pub next: std::sync::atomic::AtomicU8,
    pub refuse_specific: bool,
}

impl TestAuthority {
    pub fn new() -> Self {
        Self {
            next: std::sync::atomic::AtomicU8::new(1),
            refuse_specific: false,
        }
    }
}

impl xtt_proto::server::IdentityAuthority for TestAuthority {
    fn assign(
        &self,
        request: &xtt_proto::server::IdentityRequest,
    ) -> Result<xtt_proto::ClientId, xtt_proto::error::Refused> {
        if request.requested_id.is_null() {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut id = [0xa5u8; 16];
            id[15] = n;
            Ok(xtt_proto::ClientId(id))
        } else if self.refuse_specific {
            Err(xtt_proto::error::Refused::IdentityRefused)
        } else {
            Ok(request.requested_id)
        }
    }
}

/// A seeded RNG for tests that do not replay C.
pub fn test_rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_core::SeedableRng::seed_from_u64(seed)
}

/// Runs our client against `server` up to (and including) Identity_ClientAttest.
pub fn client_until_attest(
    v: &Vector,
    server: &Server,
    requested: xtt_proto::ClientId,
    now: xtt_proto::UnixTime,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> (xtt_proto::client::ExpectServerFinished, Vec<u8>) {
    let (state, ci) =
        xtt_proto::client::ClientHandshake::start(v.client_config(), v.suite(), requested, rng);
    let sia = server
        .handle_client_init(&ci, now, rng)
        .expect("ServerInitAndAttest");
    state.handle_server_attest(&sia, rng).expect("ClientAttest")
}
