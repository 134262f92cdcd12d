# Starting one `xtt server` process for a benchmark script and waiting until it serves. Sourced by
# scripts/bench-xtt-server.sh, bench-sessions.sh and bench-nodes.sh; expects XTT (the binary).

# xtt_server_start DIR OUT READY ARGS...: runs `$XTT server ARGS...` in DIR, stdout to OUT and
# stderr to OUT.err, and waits (at most 10 s) for a line of OUT that starts with READY — "xtt
# server listening on " for identity only, "sessions" once the session transports are up too.
# Sets xtt_pid and xtt_addr (the TCP address the server printed); exits with the server's stderr
# when it did not come up.
xtt_server_start() {
    local dir=$1 out=$2 ready=$3
    shift 3
    (cd "$dir" && exec "$XTT" server "$@" >"$out" 2>"$out.err") &
    xtt_pid=$!
    for _ in $(seq 200); do
        grep -q "^$ready" "$out" 2>/dev/null && break
        kill -0 "$xtt_pid" 2>/dev/null || break
        sleep 0.05
    done
    xtt_addr=$(sed -n 's/^xtt server listening on //p' "$out")
    if [ -z "$xtt_addr" ] || ! grep -q "^$ready" "$out"; then
        kill "$xtt_pid" 2>/dev/null || true
        echo "error: xtt server did not come up (waited for \"$ready\"):" >&2
        cat "$out.err" >&2
        exit 1
    fi
}
