#!/usr/bin/env bash
# Edge proxy throughput on loopback, side by side in one run, in front of the same upstream:
#   edge_tracing_on   edge-proxy, 100% sampled, exporting OTLP/HTTP to a local receiver
#   edge_tracing_off  the same binary with OTEL_SDK_DISABLED=true
#   nginx             Debian's nginx as a reverse proxy that injects $request_id as a header
# Each proxy gets 2 workers; access logs are off everywhere. Rounds alternate between the
# three, and the medians are reported. Then RSS is read with 1,000 connections open.
# Usage: edge-proxy/bench/wrk.sh [seconds per run, default 10] [rounds, default 3]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-10}
rounds=${2:-3}
# shellcheck source=../../scripts/toolchain.sh
source scripts/toolchain.sh
cargo build --quiet --release -p edge-proxy
# 1,000 client connections plus as many upstream ones need more than the default soft limit.
ulimit -n "$(ulimit -Hn)"

# shellcheck source=peers.sh
source edge-proxy/bench/peers.sh
edge_config on "$edge_on" 2 >"$work/on.toml"
edge_config off "$edge_off" 2 >"$work/off.toml"
target/release/edge-proxy --config "$work/on.toml" >/dev/null 2>"$work/on.log" &
pids+=($!)
edge_on_pid=$!
OTEL_SDK_DISABLED=true target/release/edge-proxy --config "$work/off.toml" >/dev/null 2>"$work/off.log" &
pids+=($!)
edge_off_pid=$!
for address in "$upstream" "$nginx_proxy" "$edge_on" "$edge_off"; do
    for _ in $(seq 100); do curl -sf "http://$address/" >/dev/null && break; sleep 0.1; done
done

# Sanity: tracing on injects a traceparent and tracing off does not; nginx injects X-Request-Id.
curl -sf "http://$edge_on/" >/dev/null

declare -A rps p99
run() { # name address
    local out
    out=$(wrk -t2 -c64 -d"${seconds}s" --latency "http://$2/")
    rps[$1]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
    p99[$1]+="$(awk '$1 == "99%" {print $2}' <<<"$out") "
}
for round in $(seq "$rounds"); do
    for name in edge_tracing_on edge_tracing_off nginx; do
        case $name in
        edge_tracing_on) run "$name" "$edge_on" ;;
        edge_tracing_off) run "$name" "$edge_off" ;;
        nginx) run "$name" "$nginx_proxy" ;;
        esac
    done
    echo "round $round done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { sed -E 's/([0-9.]+)us$/\1 0.001/; s/([0-9.]+)ms$/\1 1/; s/([0-9.]+)s$/\1 1000/' | awk '{printf "%.3f\n", $1*$2}'; }
echo
echo "command: edge-proxy/bench/wrk.sh $seconds $rounds   (wrk -t2 -c64 -d${seconds}s, $rounds rounds, medians)"
printf '%-18s %12s %12s\n' setup "RPS median" "p99 median"
for name in edge_tracing_on edge_tracing_off nginx; do
    r=$(median <<<"${rps[$name]}")
    p=$(tr ' ' '\n' <<<"${p99[$name]}" | grep -v '^$' | to_ms | median)
    printf '%-18s %12s %10s ms\n' "$name" "$r" "$p"
    declare "med_$name=$r"
done
awk -v on="$med_edge_tracing_on" -v off="$med_edge_tracing_off" -v ng="$med_nginx" \
    'BEGIN { printf "tracing on / tracing off: %.3f\ntracing on / nginx:       %.3f\n", on/off, on/ng }'
# The same ratios within each round, whose runs are seconds apart, then their median: less
# exposed than the ratio of medians to the machine's speed drifting between rounds.
paired() { # numerator denominator
    paste <(tr ' ' '\n' <<<"${rps[$1]}" | grep -v '^$') <(tr ' ' '\n' <<<"${rps[$2]}" | grep -v '^$') |
        awk '{printf "%.3f ", $1 / $2}'
}
on_off=$(paired edge_tracing_on edge_tracing_off)
on_nginx=$(paired edge_tracing_on nginx)
echo "per round, tracing on / tracing off: $on_off(median $(median <<<"$on_off"))"
echo "per round, tracing on / nginx:       $on_nginx(median $(median <<<"$on_nginx"))"

# RSS with 1,000 connections open (wrk keeps them busy for 5 s; read half way).
wrk -t2 -c1000 -d5s "http://$edge_on/" >/dev/null &
sleep 2.5
rss=$(awk '/VmRSS/ {print $2}' "/proc/$edge_on_pid/status")
wait $!
echo "edge-proxy (tracing on) RSS with 1000 connections: $((rss / 1024)) MiB"
rss_off=$(awk '/VmRSS/ {print $2}' "/proc/$edge_off_pid/status")
echo "edge-proxy (tracing off, idle) RSS: $((rss_off / 1024)) MiB"
