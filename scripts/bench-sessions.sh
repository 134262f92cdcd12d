#!/usr/bin/env bash
# XTT sessions (BENCHMARKS.md, issue 4), every figure of the section's driver tables in one run:
#   1. the crypto floor of one handshake side (crates/xtt-proto/examples/crypto_floor.rs);
#   2. session handshakes/s through the network driver: `xtt server` (release, its own process)
#      loaded by `xtt bench --mode session-handshakes`, the server's CPU time per handshake read
#      from /proc, and the ratio floor / server CPU per handshake (issue target >= 70 %);
#   3. record throughput through `xtt bench --mode records` (TCP and UDP);
#   4. XTT vs TLS 1.3 (rustls) in the same process and run: records/s, MB/s, handshake bytes
#      (crates/xtt-server/examples/session_vs_tls.rs), AES-256-GCM and ChaCha20-Poly1305, with
#      1 client (latency-bound) and VS_CLIENTS=4 clients (CPU-bound).
# Knobs: HS=3000 handshakes, CLIENTS=16, RECORDS=20000 per client, ROUNDS=15 (the
# XTT-vs-TLS rounds: one client's 16 KiB rounds vary ± 20 %, so a median of a few is noise).
# BIN=DIR runs prebuilt binaries (DIR/xtt, DIR/crypto_floor, DIR/session_vs_tls) instead of
# building: e.g. a copy of an earlier build, for before/after runs alternated on one machine.
set -euo pipefail
cd "$(dirname "$0")/.."
HS=${HS:-3000}; CLIENTS=${CLIENTS:-16}; RECORDS=${RECORDS:-20000}; ROUNDS=${ROUNDS:-15}
OUT=${OUT:-target/bench-sessions}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "${BIN:-}" ]; then
    BIN=$(cd "$BIN" && pwd)
    XTT=$BIN/xtt; FLOOR=$BIN/crypto_floor; VS_TLS=$BIN/session_vs_tls
else
    cargo build --release -j2 -p xtt-cli
    cargo build --release -j2 -p xtt-proto --example crypto_floor
    cargo build --release -j2 -p xtt-server --example session_vs_tls
    XTT=$PWD/target/release/xtt
    FLOOR=$PWD/target/release/examples/crypto_floor
    VS_TLS=$PWD/target/release/examples/session_vs_tls
fi
# shellcheck source=scripts/lib/xtt-server.sh
. scripts/lib/xtt-server.sh
W=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$W"
}
trap cleanup EXIT

echo "== machine: $(nproc) cores; $(uptime)"
echo "== 1. crypto floor (one side of a session handshake, one thread)"
"$FLOOR" | tee "$OUT/floor.txt"
# The CPU-time figure: on a shared machine the wall-clock one includes waiting for a core.
FLOOR_CHACHA=$(sed -n 's/.*CHACHA20POLY1305_SHA512: .*, \([0-9.]*\) us CPU.*/\1/p' "$OUT/floor.txt")

echo "== 2./3. xtt server (its own process) and xtt bench"
(
    cd "$W"
    "$XTT" cert root --generate-key >/dev/null
    "$XTT" cert server --generate-key >/dev/null
    "$XTT" group create acme >/dev/null
)
# Registry durability "normal": the bench provisions its devices first; not measured. All the
# load comes from one address, as from devices behind one NAT address: the per-address bound on
# UDP ClientInit answers is raised to let it through.
printf '[registry]\ndurability = "normal"\n[sessions]\nudp_client_inits_per_ip = 1000000\nudp_client_attests_per_ip = 1000000\n' \
    >"$W/server.toml"
xtt_server_start "$W" "$W/server.out" sessions --config server.toml -l 127.0.0.1:0 --no-metrics \
    --data-dir data --group acme
SERVER_PID=$xtt_pid ADDR=$xtt_addr
bench() {
    (cd "$W" && "$XTT" bench -t "$ADDR" --group acme --server-pid "$SERVER_PID" "$@" 2>/dev/null)
}
for t in tcp udp; do
    echo "-- session handshakes, $t, $CLIENTS clients, $HS handshakes"
    bench --mode session-handshakes --transport "$t" --devices "$CLIENTS" --handshakes "$HS" \
        --json "$OUT/handshakes-$t.json" --svg "$OUT/handshakes-$t.svg" | tee "$OUT/handshakes-$t.txt"
    PER=$(sed -n 's/.*"server_cpu_us_per_op": \([0-9.]*\).*/\1/p' "$OUT/handshakes-$t.json")
    awk -v f="$FLOOR_CHACHA" -v p="$PER" 'BEGIN {
        printf "crypto floor %.0f us / server CPU %.0f us per handshake = %.0f %% of the floor (target >= 70 %%)\n", f, p, 100 * f / p
        printf "  i.e. with 2 cores for the server alone: %.0f handshakes/s vs the floor'"'"'s %.0f\n", 2e6 / p, 2e6 / f }' \
        | tee -a "$OUT/handshakes-$t.txt"
done
for t in tcp udp; do
    for size in 64 1024 16384; do
        win=32; n=$RECORDS
        # UDP: 32 × 16 KiB in flight overflows the default socket buffers; records are not
        # retransmitted, so keep fewer in flight.
        if [ "$t" = udp ] && [ "$size" = 16384 ]; then win=4; n=$((RECORDS / 4)); fi
        echo "-- records, $t, 4 clients × $n, window $win, $size B"
        bench --mode records --transport "$t" --devices 4 --records "$n" --window "$win" \
            --record-size "$size" --json "$OUT/records-$t-$size.json" | tee "$OUT/records-$t-$size.txt"
    done
done
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

echo "== 4. XTT vs TLS 1.3 (rustls), same process, same run"
# One client keeps a window of records in flight and waits for their echoes: the round trip of
# each burst bounds it (about one core busy of two). VS_CLIENTS clients (default 4) keep both
# cores busy: throughput bound by CPU.
for clients in 1 "${VS_CLIENTS:-4}"; do
    for aead in aes chacha; do
        for size in 1024 16384; do
            n=$RECORDS; [ "$size" = 16384 ] && n=$((RECORDS / 4))
            "$VS_TLS" --aead "$aead" --record-size "$size" --clients "$clients" \
                --records "$n" --rounds "$ROUNDS" 2>/dev/null \
                | tee "$OUT/vs-tls-$aead-$size-c$clients.md"
        done
    done
done
echo "== end: $(uptime)"
