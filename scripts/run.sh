#!/usr/bin/env bash
# Sets everything up, then runs the main job on its embedded default: the edge proxy on
# 127.0.0.1:8080 in front of a built-in demo upstream, printing each finished span.
# Try it from another terminal:  curl -i http://127.0.0.1:8080/users/42
# Arguments are passed to edge-proxy (e.g. --config edge.toml, --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
# shellcheck source=toolchain.sh
source scripts/toolchain.sh
cargo build --quiet --release -p edge-proxy
exec target/release/edge-proxy "$@"
