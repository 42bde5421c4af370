#!/usr/bin/env bash
# Sets everything up, then runs every check and test of the workspace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
# shellcheck source=toolchain.sh
source scripts/toolchain.sh

step() { printf '\n== test: %s\n' "$*"; }

# The kernel and microVM tests fail, rather than skip, when they cannot run (no root, no
# guest image): setup above installed everything they need. THREADLINE_REQUIRE_MICROVM=0 lets
# them skip with the reason printed, on a machine without root.
export THREADLINE_REQUIRE_MICROVM="${THREADLINE_REQUIRE_MICROVM:-1}"

step "formatting"
cargo fmt --all -- --check

step "clippy, warnings denied"
cargo clippy --workspace --all-targets -- -D warnings

step "hash_seed vectors regenerate identically from the independent Python implementation"
python3 trace-core/tests/data/hash_seed_vectors.py | diff -u trace-core/tests/data/hash_seed_vectors.txt -

step "proportional-sampling threshold vectors regenerate identically from the independent Python implementation"
python3 trace-core/tests/data/threshold_vectors.py | diff -u trace-core/tests/data/threshold_vectors.txt -

step "unit, integration, property and benchmark-smoke tests"
cargo test --workspace --all-targets

step "documentation tests"
cargo test --workspace --doc

step "the inspect tool runs on its demo requests (the edge proxy's embedded default is an edge-proxy test)"
main_job_output=$(cargo run --quiet --release -p trace-core --example inspect)
for expected in "uppercase trace ID" "ignored:   traceparent trace-id is invalid" \
    "b3: 80f198ee56343ba864fe8b2a57d3eff7-" "sigv4:     signed in the Header" "decoded by opentelemetry-proto"; do
    grep -qF -- "$expected" <<<"$main_job_output" || {
        echo "main job output lacks: $expected" >&2
        exit 1
    }
done
echo "inspect output checked"
