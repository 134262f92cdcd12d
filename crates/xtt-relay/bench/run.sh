#!/usr/bin/env bash
# Load figures for the relay (BENCHMARKS.md, issue 6): CreateMailbox and
# ReadSecureContentFromMailbox with wrk against a relay on 127.0.0.1 and a real SQLite file
# (WAL, synchronous=FULL: every create is fsynced before its reply).
# Usage: crates/xtt-relay/bench/run.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs=${1:-20} conns=${2:-16}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
cargo build -j2 --profile test -p xtt-relay --example relay
bin=target/debug/examples/relay
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
RUST_LOG=warn $bin serve --listen 127.0.0.1:18480 --db "$work/relay.db" \
    --rate-per-client 1000000 --burst-per-client 1000000 --rate-global 1000000 --burst-global 1000000 \
    --max-mailboxes-per-client 100000000 &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18480/v1/m/x && break; sleep 0.1; done
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== create (POST /v1/m), ${secs}s, $conns connections, 2 threads"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s crates/xtt-relay/bench/create.lua http://127.0.0.1:18480
# Mailboxes to read: the ids the relay handed out.
claim=5b0f4c36-8d1e-4c2a-9f57-0c1d2e3f4a5b
for i in $(seq 200); do
  curl -s -X POST http://127.0.0.1:18480/v1/m -H 'Content-Type: application/json' \
    -H "Mailbox-Device-Claim: $(cat /proc/sys/kernel/random/uuid)" \
    -H "Mailbox-Request-ID: $(cat /proc/sys/kernel/random/uuid)" \
    -d '{"payload":{"type":"AEAD_AES_128_GCM","data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"displayInformation":{"title":"B","description":"B","imageURL":"https://example.com/i.png"}}' \
    | sed -E 's#.*"urlLink":"https?://[^/]+(/v1/m/[0-9a-f-]+)".*#\1#'
  echo
done > "$work/ids"
while read -r path; do
  curl -s -o /dev/null -X POST "http://127.0.0.1:18480$path" -H "Mailbox-Device-Claim: $claim"
done < "$work/ids"
echo "== read (POST /v1/m/{id}, bound recipient), ${secs}s, $conns connections, 2 threads"
IDS_FILE="$work/ids" wrk -t2 -c"$conns" -d"${secs}s" --latency -s crates/xtt-relay/bench/read.lua http://127.0.0.1:18480
curl -s -o /dev/null -w "== check: a read answers %{http_code}\n" -X POST "http://127.0.0.1:18480$(head -1 "$work/ids")" -H "Mailbox-Device-Claim: $claim"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
