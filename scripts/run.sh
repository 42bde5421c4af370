#!/usr/bin/env bash
# Sets everything up, then runs the main job on its embedded default: the demo of the whole
# path. The edge proxy, a sidecar running the built filter in a real proxy-wasm host, the
# workload in a real microVM (QEMU, its own kernel, on a tap device in a namespace of its own),
# node-probe on that tap and a collector stand-in; a mix of requests (a signed one and a
# failing one among them), each trace printed as a waterfall. Needs root (namespaces, the tap,
# eBPF); says what is missing otherwise.
#
# With arguments it runs the edge proxy alone instead, with those arguments (--help,
# --config edge.toml, or none of its own: `scripts/run.sh --` for its embedded default on
# 127.0.0.1:8080 in front of a built-in demo upstream).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
# shellcheck source=toolchain.sh
source scripts/toolchain.sh
if [ "$#" -eq 0 ]; then
    cargo build --quiet -p edge-proxy -p node-probe -p threadline-tests --bins
    exec target/debug/threadline-demo
fi
[ "$1" = "--" ] && shift
cargo build --quiet --release -p edge-proxy
exec target/release/edge-proxy "$@"
