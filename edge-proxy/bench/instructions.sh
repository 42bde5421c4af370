#!/usr/bin/env bash
# Instructions per proxied request, tracing on against tracing off, counted by callgrind.
# Unlike throughput, the count does not move with the machine's noise, so it shows what each
# change to the request path costs. Both setups run one worker thread in front of the same
# nginx upstream; tracing on samples everything and exports OTLP/HTTP to a local receiver.
# The count covers every thread of the proxy (the exporter's encoding and sending included),
# not the kernel.
# Usage: edge-proxy/bench/instructions.sh [requests, default 3000]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
requests=${1:-3000}
# shellcheck source=../../scripts/toolchain.sh
source scripts/toolchain.sh
command -v valgrind >/dev/null || { echo "valgrind is missing: run ./scripts/setup.sh" >&2; exit 1; }
cargo build --quiet --release -p edge-proxy

# shellcheck source=peers.sh
source edge-proxy/bench/peers.sh
for address in "$upstream" "$receiver"; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://$address/" && break; sleep 0.1; done
done

# curl's URL range sends the requests one after another over one kept-alive connection.
send() { curl -sf -o /dev/null "http://$1/?[1-$2]"; }

declare -A per_request
for mode in on off; do
    address=$edge_on
    [ "$mode" = off ] && address=$edge_off
    edge_config "$mode" "$address" 1 >"$work/$mode.toml"
    disabled=false
    [ "$mode" = off ] && disabled=true
    # Spans are exported within the flush interval, so waiting a second past the last request
    # puts the export of every counted request inside the counted window.
    OTEL_SDK_DISABLED=$disabled OTEL_BSP_SCHEDULE_DELAY=200 valgrind --tool=callgrind --callgrind-out-file="$work/$mode.out" \
        target/release/edge-proxy --config "$work/$mode.toml" >/dev/null 2>"$work/$mode.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 600); do curl -s -o /dev/null "http://$address/" && break; sleep 0.1; done
    send "$address" 300 # warm up: connections pooled, buffers grown
    sleep 1
    callgrind_control -z "$pid" >/dev/null 2>&1
    send "$address" "$requests"
    sleep 1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    dump=$(find "$work" -name "$mode.out.*" -size +0 | sort | head -1)
    total=$(awk '/^summary:/ {print $2}' "$dump")
    per_request[$mode]=$((total / requests))
done

echo
echo "command: edge-proxy/bench/instructions.sh $requests   (callgrind, 1 worker thread, $requests requests)"
printf 'tracing off: %7d instructions per request\n' "${per_request[off]}"
printf 'tracing on:  %7d instructions per request\n' "${per_request[on]}"
awk -v on="${per_request[on]}" -v off="${per_request[off]}" \
    'BEGIN { printf "added by tracing: %d (%.1f %%)\n", on - off, (on - off) * 100 / off }'
