//! The record-open path of an established session, both sides. The input is a little program:
//! the client seals records, and the server table (and the client, for server records) receive
//! sealed records verbatim, mutated at fuzzer-chosen bytes, truncated, or as raw bytes, from
//! fuzzer-chosen peers. Invariants:
//! - nothing panics;
//! - an accepted record is byte-for-byte one that was sealed, and each is accepted at most once;
//! - the session's peer changes only when a record is accepted, and then only if it is numbered
//!   above every record accepted before (a late record is delivered but moves nothing).
//!
//! The session keys come from a hash of the whole input. With fixed keys the fuzzer found an
//! "unsealed" record that was accepted. It was an authentic record, sealed under the same keys
//! in an earlier execution: libFuzzer keeps the bytes it sees compared and replays them. Keys
//! bound to the input make a record learned that way useless in any other input, so "sealed in
//! this execution" is again the only way to be authentic.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha512};
use xtt_proto::cert::ServerCertificate;
use xtt_proto::msgs::RecordRegular;
use xtt_proto::record::{PayloadType, SessionId};
use xtt_proto::session::ServerSession;
use xtt_proto::session_table::{SessionTable, SessionTableConfig};
use xtt_proto::{ClientId, SuiteSpec, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);

fn next(p: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = p.split_first()?;
    *p = rest;
    Some(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&suite_byte, mut prog)) = data.split_first() else {
        return;
    };
    let suite = SuiteSpec::ALL[usize::from(suite_byte) % SuiteSpec::ALL.len()];
    let id = SessionId([0x5e; 16]);
    let client_id = ClientId([0xc1; 16]);
    let seed: [u8; 64] = Sha512::digest(data).into();
    let table: SessionTable<u8> = SessionTable::new(SessionTableConfig {
        shards: 2,
        ..SessionTableConfig::default()
    });
    let _ = table.insert(
        ServerSession::new_for_testing_only(id, client_id, suite, &seed),
        0,
        NOW,
    );
    let mut client = ServerSession::client_for_testing_only(
        id,
        client_id,
        suite,
        &seed,
        ServerCertificate::from_bytes([0; 169]),
    );
    let mut to_server: Vec<Vec<u8>> = Vec::new();
    let mut to_client: Vec<Vec<u8>> = Vec::new();
    let mut accepted_by_server = HashSet::new();
    let mut accepted_by_client = HashSet::new();
    let mut highest_accepted: Option<u32> = None;
    while let Some(op) = next(&mut prog) {
        let arg = next(&mut prog).unwrap_or(0);
        match op % 6 {
            // Client seals a record of `arg` bytes (payload type from the top bit).
            0 => {
                let pt = if arg & 0x80 == 0 {
                    PayloadType::QueueProtocol
                } else {
                    PayloadType::Ipv6
                };
                if let Ok(r) = client.seal(pt, &vec![arg; usize::from(arg & 0x3f)]) {
                    to_server.push(r);
                }
            }
            // Server seals one to the client.
            1 => {
                if let Ok((_, r)) =
                    table.seal_to_client(&client_id, PayloadType::Ipv6, &[arg; 3], NOW)
                {
                    to_client.push(r);
                }
            }
            // Deliver a sealed record to the server, possibly mutated / truncated.
            2 | 3 => {
                if to_server.is_empty() {
                    continue;
                }
                let k = usize::from(arg) % to_server.len();
                let mut r = to_server[k].clone();
                if op % 6 == 3 {
                    let pos = usize::from(next(&mut prog).unwrap_or(0));
                    let x = next(&mut prog).unwrap_or(0);
                    match r.get_mut(pos) {
                        Some(b) => *b ^= x,
                        None => r.truncate(pos % (r.len() + 1)),
                    }
                }
                let peer = next(&mut prog).unwrap_or(0);
                let before = table.peer_of(&id);
                match table.open(&r, peer, NOW) {
                    Ok(d) => {
                        assert!(to_server.contains(&r), "accepted a record nobody sealed");
                        let seq = RecordRegular::decode(&r)
                            .expect("an accepted record decodes")
                            .seq_num;
                        assert!(accepted_by_server.insert(r), "accepted a record twice");
                        assert_eq!(d.client_id, client_id);
                        if highest_accepted.is_none_or(|h| seq > h) {
                            highest_accepted = Some(seq);
                            assert_eq!(table.peer_of(&id), Some(peer));
                        } else {
                            assert_eq!(table.peer_of(&id), before, "a late record moved the peer");
                        }
                    }
                    Err(_) => {
                        // An authentic record of unknown payload type may also move the peer;
                        // the client here only seals known types, so nothing else may.
                        assert_eq!(
                            table.peer_of(&id),
                            before,
                            "a refused record moved the peer"
                        );
                    }
                }
            }
            // Deliver a server record to the client, possibly mutated.
            4 => {
                if to_client.is_empty() {
                    continue;
                }
                let k = usize::from(arg) % to_client.len();
                let mut r = to_client[k].clone();
                let pos = usize::from(next(&mut prog).unwrap_or(0));
                let x = next(&mut prog).unwrap_or(0);
                if let Some(b) = r.get_mut(pos) {
                    *b ^= x;
                }
                if client.open(&r).is_ok() {
                    assert!(
                        to_client.contains(&r),
                        "client accepted a record nobody sealed"
                    );
                    assert!(
                        accepted_by_client.insert(r),
                        "client accepted a record twice"
                    );
                }
            }
            // Raw bytes to both.
            _ => {
                let n = usize::from(arg).min(prog.len());
                let (raw, rest) = prog.split_at(n);
                prog = rest;
                let before = table.peer_of(&id);
                match table.open(raw, 0xff, NOW) {
                    Ok(_) => {
                        assert!(to_server.iter().any(|r| r == raw), "accepted raw bytes");
                        assert!(accepted_by_server.insert(raw.to_vec()), "accepted twice");
                    }
                    Err(_) => assert_eq!(table.peer_of(&id), before),
                }
                if client.open(raw).is_ok() {
                    assert!(
                        to_client.iter().any(|r| r == raw),
                        "client accepted raw bytes"
                    );
                    assert!(
                        accepted_by_client.insert(raw.to_vec()),
                        "client accepted twice"
                    );
                }
            }
        }
    }
});
