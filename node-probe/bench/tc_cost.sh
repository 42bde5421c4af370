#!/usr/bin/env bash
# The TC programs' cost per packet beside the empty program tc_pass, and the events lost under
# load (issue 11; results in BENCHMARKS.md, "node-probe (issue 11): TC program cost").
#
#   1. BPF_PROG_TEST_RUN of tap_ingress and tc_pass on fixed frames (tc_cost test-run).
#   2. Real traffic with kernel.bpf_stats_enabled=1: the probe on one veth, tc_pass on another,
#      the same bounded keep-alive load through each in alternating rounds; run_time_ns/run_cnt
#      per program, failed ring reservations, channel drops, requests/s (tc_cost traffic).
#
# Everything runs in two network namespaces this script creates and always deletes: "host"
# (the client, the probe and the host-side veth ends, where a tap device would be) and "vm"
# (the workload server). kernel.bpf_stats_enabled is restored on exit.
#
# Needs root, iproute2 and the built eBPF object (scripts/setup.sh). Environment:
#   ROUNDS (7), CALLS (200000), REPEAT (1000000)   for the test runs;
#   REQUESTS (20000, per round and interface), CONNECTIONS ("1 4 8", one traffic run each),
#   TRAFFIC_ROUNDS (5)   for the traffic;
#   RESULTS (target/tc_cost-results.md)   where the tables are written as well as shown.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=../../scripts/toolchain.sh
source scripts/toolchain.sh
cargo build --release -p node-probe --example tc_cost
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/tc_cost"
results="${RESULTS:-${CARGO_TARGET_DIR:-$root/target}/tc_cost-results.md}"

tag=$$
host="tcch-$tag"
vm="tccv-$tag"
x=$((tag % 250 + 1))
server_pid=
stats_old=

cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "$stats_old" ]; then sysctl -qw "kernel.bpf_stats_enabled=$stats_old" || true; fi
    ip netns del "$host" 2>/dev/null || true
    ip netns del "$vm" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$host"
ip netns add "$vm"
ip -n "$host" link set lo up
ip -n "$vm" link set lo up
# Two veth pairs: the probe's (tapP, 10.214.x.0/24) and tc_pass's (tapB, 10.215.x.0/24).
for pair in "P 214 eth0" "B 215 eth1"; do
    read -r end net inner <<<"$pair"
    ip -n "$host" link add "tap$end" type veth peer name "$inner" netns "$vm"
    ip -n "$host" addr add "10.$net.$x.1/24" dev "tap$end"
    ip -n "$vm" addr add "10.$net.$x.2/24" dev "$inner"
    ip -n "$host" link set "tap$end" up
    ip -n "$vm" link set "$inner" up
done

ip netns exec "$vm" "$bin" serve 0.0.0.0:8080 &
server_pid=$!
for _ in $(seq 100); do
    if ip netns exec "$host" bash -c "exec 3<>/dev/tcp/10.214.$x.2/8080" 2>/dev/null; then break; fi
    sleep 0.05
done

{
    echo "## BPF_PROG_TEST_RUN"
    echo
    ip netns exec "$host" "$bin" test-run \
        --rounds "${ROUNDS:-7}" --calls "${CALLS:-200000}" --repeat "${REPEAT:-1000000}"
    echo
} | tee "$results"

stats_old=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
for connections in ${CONNECTIONS:-1 4 8}; do
    {
        echo "## Real traffic, $connections connections"
        echo
        ip netns exec "$host" "$bin" traffic \
            --probe-if tapP --probe-addr "10.214.$x.2:8080" \
            --pass-if tapB --pass-addr "10.215.$x.2:8080" \
            --requests "${REQUESTS:-20000}" --connections "$connections" \
            --rounds "${TRAFFIC_ROUNDS:-5}"
        echo
    } | tee -a "$results"
done
