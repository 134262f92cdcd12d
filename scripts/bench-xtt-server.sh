#!/usr/bin/env bash
# Identity handshakes per second (BENCHMARKS.md, issue 3): the C reference server, then ours with
# the plain and the batched DAA verifier, one after the other with the same load generator
# (crates/xtt-server/examples/loadgen.rs, release build) on 127.0.0.1.
#   CREF=/work/cref    C reference tree (prefix/bin/xtt, src/xtt/data, files/)
#   N=3000 DEVICES=250 handshakes and concurrent devices for our server (250 keep both cores busy
#                      with prepared devices; 64 left them partly idle); the C server gets N_C
#   N_C=300 DEVICES_C=4
#   N_CC=300 CLIENTS_C=4  the C server driven by its own client (`xtt runclient`, one process per
#                         handshake, CLIENTS_C at a time): the setup behind the issue's "~20/s"
# Then ours as an operator runs it: `xtt server` (plain, then --batch) in its own process, loaded
# by `xtt bench` in another; CPU per handshake of each from /proc and getrusage. The batched runs
# are repeated with prepared devices (`--prepare`: each simulated device does the part of its
# handshakes that needs nothing from the server before the timed phase, as a device can while
# idle; the server's work is the same, the load generator's on the shared cores halves). Ends with the
# ratios against the C server of the same run (the issue's targets are against its own clients)
# and, as a secondary view, the capacity ratio: each server alone, from its CPU per handshake.
set -euo pipefail
cd "$(dirname "$0")/.."
CREF=${CREF:-/work/cref}
N=${N:-3000}; DEVICES=${DEVICES:-250}; N_C=${N_C:-300}; DEVICES_C=${DEVICES_C:-4}
N_CC=${N_CC:-300}; CLIENTS_C=${CLIENTS_C:-4}
OUT=${OUT:-target/bench-xtt-server}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # the runs below change directory
# The summary at the end reads these: none may be left from an earlier run.
rm -f "$OUT"/c-server.txt "$OUT"/c-server-prepared.txt "$OUT"/c-server-c-clients.txt "$OUT"/plain.txt "$OUT"/batched.txt \
    "$OUT"/batched-prepared.txt "$OUT"/cli-plain.summary "$OUT"/cli-batched.summary \
    "$OUT"/cli-batched-prepared.summary
cargo build --release -j2 -p xtt-server --example loadgen
cargo build --release -j2 -p xtt-cli
LOADGEN=target/release/examples/loadgen
XTT=$PWD/target/release/xtt
# shellcheck source=scripts/lib/xtt-server.sh
. scripts/lib/xtt-server.sh
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
        echo "C server CPU: $(awk "{print (\$14+\$15)/100}" /proc/$cpid/stat) s for $N_C handshakes (plus one TCP probe)" \
            | tee -a "$OUT/c-server.txt"
        # The same generator with prepared devices: the baseline of our prepared rows.
        echo "== C reference server, $DEVICES_C prepared devices, $N_C handshakes"
        "$LOADGEN" --target 127.0.0.1:4450 --client-dir "$W/client" --devices "$DEVICES_C" --prepare \
            --handshakes "$N_C" --svg "$OUT/c-server-prepared.svg" 2>/dev/null | tee "$OUT/c-server-prepared.txt"
    '
    echo "== C reference server driven by its own client: $CLIENTS_C client processes at a time, $N_CC handshakes"
    for i in $(seq 0 "$CLIENTS_C"); do
        mkdir -p "$W/cc$i"
        cp "$CREF"/src/xtt/data/client/* "$CREF/files/root_cert.bin" "$W/cc$i/"
    done
    export N_CC CLIENTS_C
    unshare -n bash -c '
        set -euo pipefail
        ip link set lo up
        (cd "$W/server" && exec "$CREF/prefix/bin/xtt" runserver -p 4451 >/dev/null 2>&1) &
        cpid=$!
        trap "kill $cpid 2>/dev/null || true" EXIT
        for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4451) 2>/dev/null && break; sleep 0.1; done
        # One warm-up handshake, not counted.
        (cd "$W/cc0" && timeout 10 "$CREF/prefix/bin/xtt" runclient -p 4451 -a 127.0.0.1 >/dev/null 2>&1) \
            || echo "warm-up handshake failed" >&2
        c0=$(awk "{print \$14+\$15}" /proc/$cpid/stat); t0=$(date +%s.%N)
        pids=""
        for w in $(seq "$CLIENTS_C"); do
            ( n=$(( N_CC / CLIENTS_C + (w <= N_CC % CLIENTS_C ? 1 : 0) )); ok=0
              for _ in $(seq "$n"); do
                  (cd "$W/cc$w" && timeout 10 "$CREF/prefix/bin/xtt" runclient -p 4451 -a 127.0.0.1 >/dev/null 2>&1) && ok=$((ok + 1))
              done
              echo "$ok" >"$W/cc$w/ok" ) &
            pids="$pids $!"
        done
        wait $pids
        t1=$(date +%s.%N); c1=$(awk "{print \$14+\$15}" /proc/$cpid/stat)
        ok=$(cat "$W"/cc*/ok | awk "{s += \$1} END {print s + 0}")
        awk -v ok="$ok" -v n="$N_CC" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" "BEGIN {
            printf \"handshakes ok: %d of %d\nhandshakes/s: %.1f\nserver CPU per handshake: %.2f ms\n\",
                ok, n, ok / (t1 - t0), (c1 - c0) * 10 / ok }" | tee "$OUT/c-server-c-clients.txt"
    '
else
    echo "== C reference not found at $CREF: skipped"
fi
echo "== ours, plain DAA verification, $DEVICES devices, $N handshakes"
"$LOADGEN" --devices "$DEVICES" --handshakes "$N" --svg "$OUT/plain.svg" 2>/dev/null | tee "$OUT/plain.txt"
echo "== ours, batched DAA verification, $DEVICES devices, $N handshakes"
"$LOADGEN" --batch --devices "$DEVICES" --handshakes "$N" --svg "$OUT/batched.svg" 2>/dev/null | tee "$OUT/batched.txt"
echo "== ours, batched DAA verification, $DEVICES prepared devices, $N handshakes"
"$LOADGEN" --batch --prepare --devices "$DEVICES" --handshakes "$N" --svg "$OUT/batched-prepared.svg" \
    2>/dev/null | tee "$OUT/batched-prepared.txt"

# --- ours as an operator runs it: `xtt server` and `xtt bench`, two processes ------------------
mkdir -p "$W/ours"
(
    cd "$W/ours"
    "$XTT" cert root --generate-key >/dev/null
    "$XTT" cert server --generate-key >/dev/null
    "$XTT" group create acme >/dev/null
)
# cli_run LABEL [server flags]: one `xtt server` process, one `xtt bench` process (with the flags
# in BENCH_FLAGS).
cli_run() {
    local label=$1 out spid addr s0 s1
    shift
    out="$W/ours/$label.out"
    xtt_server_start "$W/ours" "$out" "xtt server listening on " -l 127.0.0.1:0 --no-metrics \
        --data-dir "data-$label" --group acme "$@"
    spid=$xtt_pid addr=$xtt_addr
    s0=$(awk '{ sub(/^.*\) /, ""); print ($12 + $13) / 100 }' "/proc/$spid/stat")
    (cd "$W/ours" && python3 -c '
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:]).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"bench CPU: {r.ru_utime + r.ru_stime:.2f} s", file=sys.stderr)
sys.exit(rc)' "$XTT" bench --server "$addr" --group acme --rcert root_cert.bin \
        --devices "$DEVICES" --handshakes "$N" ${BENCH_FLAGS:-} --json "$OUT/cli-$label.json" \
        >"$OUT/cli-$label.txt" 2>"$OUT/cli-$label.err")
    s1=$(awk '{ sub(/^.*\) /, ""); print ($12 + $13) / 100 }' "/proc/$spid/stat")
    kill -TERM "$spid"
    wait "$spid" || true
    python3 - "$OUT/cli-$label.json" "$s0" "$s1" "$OUT/cli-$label.err" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
s0, s1 = float(sys.argv[2]), float(sys.argv[3])
ok = r["handshakes_ok"]
bench = float(re.search(r"bench CPU: ([0-9.]+)", open(sys.argv[4]).read()).group(1))
print(f'handshakes/s: {r["handshakes_per_sec"]:.1f} ({ok} ok, {r["handshakes_failed"]} failed)')
run = r.get("load_generator_cpu_secs")
in_run = f'{run * 1e3 / ok:.2f} ms in the run, ' if run is not None else ''
print(f'server CPU per handshake: {(s1 - s0) * 1e3 / ok:.2f} ms; xtt bench CPU per handshake: '
      f'{in_run}{bench * 1e3 / ok:.2f} ms with its setup (enrolling the devices, and preparing them with --prepare)')
PY
}
echo "== ours, \`xtt server\` (plain DAA) loaded by \`xtt bench\`, $DEVICES devices, $N handshakes"
cli_run plain | tee "$OUT/cli-plain.summary"
echo "== ours, \`xtt server --batch\` loaded by \`xtt bench\`, $DEVICES devices, $N handshakes"
cli_run batched --batch | tee "$OUT/cli-batched.summary"
echo "== ours, \`xtt server --batch\` loaded by \`xtt bench --prepare\`, $DEVICES devices, $N handshakes"
BENCH_FLAGS=--prepare cli_run batched-prepared --batch | tee "$OUT/cli-batched-prepared.summary"

echo "== same-run ratios (issue 3: plain >= 20x, batched >= 50x the C server's handshakes/s)"
python3 - "$OUT" <<'PY'
import os, re, sys
out = sys.argv[1]
def grab(name, pattern):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    m = re.search(pattern, open(path).read())
    return float(m.group(1)) if m else None
c_own = grab("c-server-c-clients.txt", r"handshakes/s: ([0-9.]+)")
c_own_ms = grab("c-server-c-clients.txt", r"server CPU per handshake: ([0-9.]+) ms")
c_gen = grab("c-server.txt", r"throughput\s+([0-9.]+) handshakes/s")
c_gen_prepared = grab("c-server-prepared.txt", r"throughput\s+([0-9.]+) handshakes/s")
if c_own is None:
    print("the C server was not measured in this run: no ratios")
    sys.exit(0)
ours = {
    "plain, in-process": ("plain.txt", r"throughput\s+([0-9.]+)", r"server ([0-9.]+) ms"),
    "plain, xtt server": ("cli-plain.summary", r"handshakes/s: ([0-9.]+)", r"server CPU per handshake: ([0-9.]+) ms"),
    "batched, in-process": ("batched.txt", r"throughput\s+([0-9.]+)", r"server ([0-9.]+) ms"),
    "batched, xtt server": ("cli-batched.summary", r"handshakes/s: ([0-9.]+)", r"server CPU per handshake: ([0-9.]+) ms"),
    "batched, in-process, prepared devices": ("batched-prepared.txt", r"throughput\s+([0-9.]+)", r"server ([0-9.]+) ms"),
    "batched, xtt server, prepared devices": ("cli-batched-prepared.summary", r"handshakes/s: ([0-9.]+)", r"server CPU per handshake: ([0-9.]+) ms"),
}
print(f"C server: {c_own:.1f}/s with its own clients ({c_own_ms:.2f} ms of server CPU per handshake)"
      + (f", {c_gen:.1f}/s with our load generator" if c_gen else "")
      + (f", {c_gen_prepared:.1f}/s with it and prepared devices" if c_gen_prepared else ""))
for label, (name, rate_re, ms_re) in ours.items():
    rate, ms = grab(name, rate_re), grab(name, ms_re)
    if rate is None or ms is None:
        print(f"{label}: no figures")
        continue
    target = 20 if label.startswith("plain") else 50
    line = f"{label}: {rate:.0f}/s = {rate / c_own:.1f}x C with its own clients (target {target}x)"
    # Prepared rows against C under the same prepared generator, the others unprepared.
    gen, how = ((c_gen_prepared, "C with our load generator, prepared devices")
                if "prepared" in label else (c_gen, "C with our load generator"))
    if gen:
        line += f", {rate / gen:.1f}x {how}"
    # Capacity: each server alone on the machine, from its CPU per handshake (ours on both
    # cores, C's single thread on one). A secondary view: the target is the same-run rate.
    line += f"; capacity view {2 * c_own_ms / ms:.1f}x"
    print(line)
PY
