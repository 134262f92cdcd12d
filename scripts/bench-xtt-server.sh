#!/usr/bin/env bash
# Identity handshakes per second (BENCHMARKS.md, issue 3): the C reference server, then ours with
# the plain and the batched DAA verifier, one after the other with the same load generator
# (crates/xtt-server/examples/loadgen.rs, release build) on 127.0.0.1.
#   CREF=/work/cref    C reference tree (prefix/bin/xtt, src/xtt/data, files/)
#   N=3000 DEVICES=64  handshakes and concurrent devices for our server; the C server gets N_C
#   N_C=300 DEVICES_C=4
set -euo pipefail
cd "$(dirname "$0")/.."
CREF=${CREF:-/work/cref}
N=${N:-3000}; DEVICES=${DEVICES:-64}; N_C=${N_C:-300}; DEVICES_C=${DEVICES_C:-4}
OUT=${OUT:-target/bench-xtt-server}
mkdir -p "$OUT"
cargo build --release -j2 -p xtt-server --example loadgen
LOADGEN=target/release/examples/loadgen
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

echo "== machine: $(nproc) cores; $(uptime)"
if [ -x "$CREF/prefix/bin/xtt" ]; then
    mkdir -p "$W/server" "$W/client"
    cp "$CREF"/src/xtt/data/server/* "$CREF/files/server_cert.bin" "$CREF/files/server_keys.asn1.bin" "$W/server/"
    cp "$CREF"/src/xtt/data/client/* "$CREF/files/root_cert.bin" "$W/client/"
    echo "== C reference server (single thread), $DEVICES_C devices, $N_C handshakes"
    # The C server binds every interface: it runs in a network namespace of its own with only
    # loopback up, and the load generator runs beside it in that namespace.
    export CREF W LOADGEN DEVICES_C N_C OUT
    unshare -n bash -c '
        set -euo pipefail
        ip link set lo up
        (cd "$W/server" && exec "$CREF/prefix/bin/xtt" runserver -p 4450 >/dev/null 2>&1) &
        cpid=$!
        trap "kill $cpid 2>/dev/null || true" EXIT
        sleep 0.5
        "$LOADGEN" --target 127.0.0.1:4450 --client-dir "$W/client" --devices "$DEVICES_C" \
            --handshakes "$N_C" --svg "$OUT/c-server.svg" 2>/dev/null | tee "$OUT/c-server.txt"
        echo "C server CPU: $(awk "{print (\$14+\$15)/100}" /proc/$cpid/stat) s for $N_C handshakes (plus one TCP probe)"
    '
else
    echo "== C reference not found at $CREF: skipped"
fi
echo "== ours, plain DAA verification, $DEVICES devices, $N handshakes"
"$LOADGEN" --devices "$DEVICES" --handshakes "$N" --svg "$OUT/plain.svg" 2>/dev/null | tee "$OUT/plain.txt"
echo "== ours, batched DAA verification, $DEVICES devices, $N handshakes"
"$LOADGEN" --batch --devices "$DEVICES" --handshakes "$N" --svg "$OUT/batched.svg" 2>/dev/null | tee "$OUT/batched.txt"
