#!/usr/bin/env bash
# Sets everything up, then runs the main job on its embedded default.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
# shellcheck source=toolchain.sh
source scripts/toolchain.sh
exec cargo run --quiet --release -p trace-core --example inspect -- "$@"
