#!/usr/bin/env bash
# Many servers, one deployment (BENCHMARKS.md, issue 9): identity and session handshakes/s for
#   1 node on SQLite, 1 node on PostgreSQL, 3 nodes on PostgreSQL
# where every node is an `xtt server` (release) in its own process, with shared sessions (the
# nodes share the database, the session key file and the cookie key file, as a deployment
# does), loaded by `xtt bench --server ADDR ...` (devices spread round-robin over the nodes).
# For each run: handshakes/s, and the CPU seconds the xtt processes and the PostgreSQL server
# processes spent per handshake (from /proc: on a shared machine the wall-clock rate includes
# waiting for a core, the CPU per handshake does not).
# Then database round trips per handshake, counted on the wire: each PostgreSQL configuration
# runs again, shorter, with the nodes connected through scripts/pg-round-trips.py (a relay
# counting the server's ReadyForQuery messages, one per round trip).
# PostgreSQL: a throwaway cluster as scripts/test.sh starts one (unix socket only), stopped and
# deleted at the end.
# Knobs: DEVICES=16 concurrent devices, IDS=400 identity handshakes, SESS=2000 session
# handshakes per run; COUNT_IDS=100, COUNT_SESS=400 for the counting runs (4 devices);
# XTT=path of an already built release `xtt` (skips the build).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${DEVICES:-16}; IDS=${IDS:-400}; SESS=${SESS:-2000}
COUNT_IDS=${COUNT_IDS:-100}; COUNT_SESS=${COUNT_SESS:-400}
OUT=${OUT:-target/bench-nodes}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -z "${XTT:-}" ]; then
    cargo build --release -j2 -p xtt-cli
    XTT=$PWD/target/release/xtt
fi
RELAY=$PWD/scripts/pg-round-trips.py
W=$(mktemp -d /tmp/xtt-bench-nodes.XXXXXX)
NODE_PIDS=()
RELAY_PID=

# --- PostgreSQL (scripts/lib/pg-cluster.sh, as the tests get it, socket only) ---------------
# shellcheck source=scripts/lib/pg-cluster.sh
. scripts/lib/pg-cluster.sh  # the working directory is the repository root (see the cd above)
# shellcheck source=scripts/lib/xtt-server.sh
. scripts/lib/xtt-server.sh
pg_cluster_prepare /tmp/xtt-bench-pg.XXXXXX
stop_nodes() {
    local p
    for p in ${NODE_PIDS[@]+"${NODE_PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
    for p in ${NODE_PIDS[@]+"${NODE_PIDS[@]}"}; do wait "$p" 2>/dev/null || true; done
    NODE_PIDS=()
}
cleanup() {
    stop_nodes
    if [ -n "$RELAY_PID" ]; then kill "$RELAY_PID" 2>/dev/null || true; fi
    pg_cluster_stop
    rm -rf "$W"
}
trap cleanup EXIT
pg_cluster_initdb
pg_cluster_start "-c listen_addresses=''"
PG_VERSION=$("$pg_bin/postgres" --version)
psql_admin() { "$pg_bin/psql" -X -q -h "$pg_dir" -p "$pg_port" -U "$pg_user" -d postgres "$@"; }
fresh_db() { # prints a new database's name (called in $(...): no counter survives it)
    local name
    name="xtt_bench_$(date +%s%N)"
    psql_admin -c "CREATE DATABASE $name" >/dev/null
    echo "$name"
}
pg_url() { echo "postgresql:///$1?host=$pg_dir&port=$pg_port&user=$pg_user"; }

# --- the deployment: root, server certificate, group, session key, cookie key ------------------
(
    cd "$W"
    "$XTT" cert root --generate-key >/dev/null
    "$XTT" cert server --generate-key >/dev/null
    "$XTT" group create acme >/dev/null
    "$XTT" server --new-session-key sessions.key >/dev/null
    umask 077
    printf '1 %s\n' "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >cookie.keys
    printf '[cookies]\nkey_file = "%s/cookie.keys"\n' "$W" >node.toml
)

# start_nodes N STORAGE_URL|sqlite: N nodes, their addresses in NODES (space-separated).
NODES=
start_nodes() {
    local n=$1 storage=$2 i out run
    NODES=
    run=$((${run_n:-0} + 1)); run_n=$run
    for i in $(seq "$n"); do
        out="$W/node-$run-$i.out"
        local args=(--config node.toml -l 127.0.0.1:0 --no-metrics --data-dir "data-$run-$i"
            --group acme --sessions echo --session-key sessions.key --node-lease-ms 60000)
        [ "$storage" = sqlite ] || args+=(--storage "$storage")
        xtt_server_start "$W" "$out" sessions "${args[@]}"
        NODE_PIDS+=("$xtt_pid")
        NODES="$NODES $xtt_addr"
    done
}

# CPU seconds (user + system) of the given processes so far.
cpu_of() {
    local p t=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        t=$(awk -v t="$t" '{ sub(/^.*\) /, ""); print t + ($12 + $13) / 100 }' "/proc/$p/stat")
    done
    echo "$t"
}
pg_pids() {
    local pm
    pm=$(head -n 1 "$pg_dir/data/postmaster.pid")
    echo "$pm" $(pgrep -P "$pm" || true)
}

# bench LABEL MODE COUNT DEVICES: one `xtt bench` over NODES; writes $OUT/LABEL-MODE.json and
# prints "rate xtt_cpu_us_per_hs pg_cpu_us_per_hs".
bench() {
    local label=$1 mode=$2 count=$3 devices=$4 servers=() a x0 p0 x1 p1 json
    for a in $NODES; do servers+=(--server "$a"); done
    json="$OUT/$label-$mode.json"
    x0=$(cpu_of "${NODE_PIDS[@]}"); p0=$(cpu_of $(pg_pids))
    (cd "$W" && "$XTT" bench "${servers[@]}" --group acme --rcert root_cert.bin --mode "$mode" \
        --devices "$devices" --handshakes "$count" --json "$json" >"$OUT/$label-$mode.txt" 2>/dev/null)
    x1=$(cpu_of "${NODE_PIDS[@]}"); p1=$(cpu_of $(pg_pids))
    python3 - "$json" "$x0" "$x1" "$p0" "$p1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
x0, x1, p0, p1 = map(float, sys.argv[2:6])
ok = r["handshakes_ok"]
per = "/".join(str(t["handshakes_ok"]) for t in r["per_target"])
failed = r["handshakes_failed"]
print(f'{r["handshakes_per_sec"]:.0f} {(x1 - x0) * 1e6 / ok:.0f} {(p1 - p0) * 1e6 / ok:.0f} {per} {failed}')
PY
}

# --- throughput runs ------------------------------------------------------------------------
echo "== machine: $(nproc) cores; $PG_VERSION; $(uptime)"
ROWS=()
run_config() { # LABEL NODES STORAGE
    local label=$1 n=$2 storage=$3 id ss load
    start_nodes "$n" "$storage"
    id=$(bench "$label" identity "$IDS" "$DEVICES")
    ss=$(bench "$label" session-handshakes "$SESS" "$DEVICES")
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    stop_nodes
    echo "-- $label: identity [rate xttCPU pgCPU per-node failed] $id; session $ss; load $load"
    ROWS+=("$label|$id|$ss|$load")
}
run_config "1 node, SQLite" 1 sqlite
run_config "1 node, PostgreSQL" 1 "$(pg_url "$(fresh_db)")"
run_config "3 nodes, PostgreSQL" 3 "$(pg_url "$(fresh_db)")"

# --- round trips per handshake, counted on the wire -------------------------------------------
"$RELAY" "$pg_dir/.s.PGSQL.$pg_port" >"$W/relay.out" &
RELAY_PID=$!
for _ in $(seq 100); do grep -q "^count" "$W/relay.out" 2>/dev/null && break; sleep 0.05; done
relay_port=$(sed -n 's/^relay //p' "$W/relay.out")
count_port=$(sed -n 's/^count //p' "$W/relay.out")
trips() { python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',int(sys.argv[1]))); print(s.makefile().readline().strip())" "$count_port"; }
TRIPS=()
count_config() { # LABEL NODES
    local label=$1 n=$2 db t0 t1 t2 r1 r2
    db=$(fresh_db)
    start_nodes "$n" "postgresql://$pg_user@127.0.0.1:$relay_port/$db?sslmode=disable"
    sleep 0.5
    t0=$(trips)
    r1=$(bench "count-$label" identity "$COUNT_IDS" 4)
    t1=$(trips)
    r2=$(bench "count-$label" session-handshakes "$COUNT_SESS" 4)
    t2=$(trips)
    stop_nodes
    TRIPS+=("$label|$((t1 - t0))|$COUNT_IDS|$((t2 - t1))|$COUNT_SESS")
    echo "-- $label through the counting relay: identity $((t1 - t0)) round trips / $COUNT_IDS ($r1); session $((t2 - t1)) / $COUNT_SESS + 4 setup provisionings ($r2)"
}
count_config "1 node" 1
count_config "3 nodes" 3

echo
echo "| configuration | identity handshakes/s | xtt CPU µs / identity hs | PostgreSQL CPU µs / identity hs | session handshakes/s | xtt CPU µs / session hs | PostgreSQL CPU µs / session hs | load average (1, 5, 15 min) at the end |"
echo "|---|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label id ss load <<<"$row"
    read -r ir ix ip iper _ <<<"$id"
    read -r sr sx sp sper _ <<<"$ss"
    echo "| $label | $ir (per node $iper) | $ix | $ip | $sr (per node $sper) | $sx | $sp | $load |"
done
echo
echo "| PostgreSQL | round trips per identity handshake | round trips per session handshake (incl. 4 setup provisionings) |"
echo "|---|---|---|"
for row in "${TRIPS[@]}"; do
    IFS='|' read -r label it in st sn <<<"$row"
    awk -v l="$label" -v it="$it" -v in_="$in" -v st="$st" -v sn="$sn" \
        'BEGIN { printf "| %s | %.2f (%d / %d) | %.2f (%d / %d) |\n", l, it / in_, it, in_, st / sn, st, sn }'
done
echo "== end: $(uptime)"
