#!/usr/bin/env bash
# The agent's user-space CPU per 1,000 spans and its RSS (issue 11; results in BENCHMARKS.md,
# "node-probe (issue 11): TC program cost", "Agent CPU per 1,000 spans and RSS").
#
# Two network namespaces this script creates and always deletes: "host" (the agent, the
# load client, a loopback OTLP collector, and the host-side veth end tapA, where a tap device
# would be) and "vm" (the project's workload server). Each run starts the release agent on
# tapA exporting to the collector, drives a bounded keep-alive load through the veth, waits
# until the collector holds a SERVER span per request, and reads the agent's utime + stime
# and VmRSS/VmHWM (agent_load). The medians of the runs close the output.
#
# Needs root, iproute2 and the built eBPF object (scripts/setup.sh). Environment:
#   RUNS (3), REQUESTS (20000), CONNECTIONS (4), DEADLINE_SECS (60), WAIT_SECS (30).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=../../scripts/toolchain.sh
source scripts/toolchain.sh
cargo build --release -p node-probe --bin node-probe --example agent_load
cargo build --release -p workload --bin workload
out="${CARGO_TARGET_DIR:-$root/target}/release"

tag=$$
host="acch-$tag"
vm="accv-$tag"
x=$((tag % 250 + 1))
server_pid=
dir=$(mktemp -d)

cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    ip netns del "$host" 2>/dev/null || true
    ip netns del "$vm" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "$host"
ip netns add "$vm"
ip -n "$host" link set lo up
ip -n "$vm" link set lo up
ip -n "$host" link add tapA type veth peer name eth0 netns "$vm"
ip -n "$host" addr add "10.216.$x.1/24" dev tapA
ip -n "$vm" addr add "10.216.$x.2/24" dev eth0
ip -n "$host" link set tapA up
ip -n "$vm" link set eth0 up

ip netns exec "$vm" "$out/workload" --listen 0.0.0.0:8080 >/dev/null &
server_pid=$!
for _ in $(seq 100); do
    if ip netns exec "$host" bash -c "exec 3<>/dev/tcp/10.216.$x.2/8080" 2>/dev/null; then break; fi
    sleep 0.05
done

runs="${RUNS:-3}"
for run in $(seq "$runs"); do
    echo "run $run:"
    ip netns exec "$host" "$out/examples/agent_load" \
        --agent "$out/node-probe" --interface tapA --server "10.216.$x.2:8080" \
        --requests "${REQUESTS:-20000}" --connections "${CONNECTIONS:-4}" \
        --deadline-secs "${DEADLINE_SECS:-60}" --wait-secs "${WAIT_SECS:-30}" \
        --clk-tck "$(getconf CLK_TCK)" --config "$dir/node-probe.toml" | tee "$dir/run-$run"
done

median() {
    grep -ho "^requests=.*" "$dir"/run-* | tr ' ' '\n' | sed -n "s/^$1=//p" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
echo
echo "medians of $runs runs:"
for key in requests spans cpu_ms ms_per_1000_spans vmrss_kib vmhwm_kib load_s; do
    echo "  $key $(median "$key")"
done
