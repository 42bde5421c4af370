#!/usr/bin/env bash
# Edge proxy throughput on loopback, side by side in one run, in front of the same upstream:
#   edge_tracing_on   edge-proxy, 100% sampled, exporting OTLP/HTTP to a local receiver
#   edge_tracing_off  the same binary with OTEL_SDK_DISABLED=true
#   nginx             Debian's nginx as a reverse proxy that injects $request_id as a header
#   pingora_floor     Pingora's proxy with none of Threadline's code (examples/pingora_floor.rs),
#                     which shows how much of the gap to nginx is Pingora's own
# Each proxy gets 2 workers; access logs are off everywhere. Rounds alternate between the
# four, and the medians are reported. Then RSS is read with 1,000 connections open.
# Usage: edge-proxy/bench/wrk.sh [seconds per run, default 10] [rounds, default 3]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-10}
rounds=${2:-3}
# shellcheck source=../../scripts/toolchain.sh
source scripts/toolchain.sh
cargo build --quiet --release -p edge-proxy --bin edge-proxy --example pingora_floor
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
target/release/examples/pingora_floor "$pingora_floor" "$upstream" 2 >/dev/null 2>"$work/floor.log" &
pids+=($!)
floor_pid=$!
for address in "$upstream" "$nginx_proxy" "$edge_on" "$edge_off" "$pingora_floor"; do
    for _ in $(seq 100); do curl -sf "http://$address/" >/dev/null && break; sleep 0.1; done
    curl -sf "http://$address/" >/dev/null || { echo "nothing answers on $address" >&2; exit 1; }
done

# CPU time (user + system, clock ticks) used so far by the processes given, threads included.
# An nginx is counted by its worker processes, the children of its master.
ticks_of() { for pid; do cat "/proc/$pid/stat"; done | awk '{t += $14 + $15} END {print t + 0}'; }
nginx_workers() { pgrep -P "$1" | tr '\n' ' '; }
backends_pid=${pids[0]}
peer_pid=${pids[1]}
hz=$(getconf CLK_TCK)
us_per_request() { # ticks requests
    awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}'
}

# RPS varies ±15 % from run to run on these machines; CPU time per request, read from /proc
# around each run, is the steadier measure of what each proxy spends on a request. The
# upstream-and-receiver nginx is measured too: with tracing on it also receives the spans.
declare -A rps p99 cpu backend_cpu
run() { # name address pids...
    local name=$1 address=$2 out before after backend_before backend_after requests
    shift 2
    before=$(ticks_of "$@")
    backend_before=$(ticks_of $(nginx_workers "$backends_pid"))
    out=$(wrk -t2 -c64 -d"${seconds}s" --latency "http://$address/")
    after=$(ticks_of "$@")
    backend_after=$(ticks_of $(nginx_workers "$backends_pid"))
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps[$name]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
    p99[$name]+="$(awk '$1 == "99%" {print $2}' <<<"$out") "
    cpu[$name]+="$(us_per_request $((after - before)) "$requests") "
    backend_cpu[$name]+="$(us_per_request $((backend_after - backend_before)) "$requests") "
}
for round in $(seq "$rounds"); do
    for name in edge_tracing_on edge_tracing_off nginx pingora_floor; do
        case $name in
        edge_tracing_on) run "$name" "$edge_on" "$edge_on_pid" ;;
        edge_tracing_off) run "$name" "$edge_off" "$edge_off_pid" ;;
        nginx) run "$name" "$nginx_proxy" $(nginx_workers "$peer_pid") ;;
        pingora_floor) run "$name" "$pingora_floor" "$floor_pid" ;;
        esac
    done
    echo "round $round done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { sed -E 's/([0-9.]+)us$/\1 0.001/; s/([0-9.]+)ms$/\1 1/; s/([0-9.]+)s$/\1 1000/' | awk '{printf "%.3f\n", $1*$2}'; }
echo
echo "command: edge-proxy/bench/wrk.sh $seconds $rounds   (wrk -t2 -c64 -d${seconds}s, $rounds rounds, medians)"
printf '%-18s %12s %12s %16s %20s\n' setup "RPS median" "p99 median" "proxy CPU/req" "upstream+receiver"
for name in edge_tracing_on edge_tracing_off nginx pingora_floor; do
    r=$(median <<<"${rps[$name]}")
    p=$(tr ' ' '\n' <<<"${p99[$name]}" | grep -v '^$' | to_ms | median)
    c=$(median <<<"${cpu[$name]}")
    b=$(median <<<"${backend_cpu[$name]}")
    printf '%-18s %12s %10s ms %13s us %17s us\n' "$name" "$r" "$p" "$c" "$b"
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
off_floor=$(paired edge_tracing_off pingora_floor)
floor_nginx=$(paired pingora_floor nginx)
echo "per round, tracing on / tracing off:    $on_off(median $(median <<<"$on_off"))"
echo "per round, tracing on / nginx:          $on_nginx(median $(median <<<"$on_nginx"))"
echo "per round, tracing off / pingora floor: $off_floor(median $(median <<<"$off_floor"))"
echo "per round, pingora floor / nginx:       $floor_nginx(median $(median <<<"$floor_nginx"))"

# RSS with 1,000 connections open (wrk keeps them busy for 5 s; read half way).
wrk -t2 -c1000 -d5s "http://$edge_on/" >/dev/null &
sleep 2.5
rss=$(awk '/VmRSS/ {print $2}' "/proc/$edge_on_pid/status")
wait $!
echo "edge-proxy (tracing on) RSS with 1000 connections: $((rss / 1024)) MiB"
rss_off=$(awk '/VmRSS/ {print $2}' "/proc/$edge_off_pid/status")
echo "edge-proxy (tracing off, idle) RSS: $((rss_off / 1024)) MiB"
