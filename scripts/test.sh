#!/usr/bin/env bash
# Sets everything up, then runs every check and test of the workspace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
# shellcheck source=toolchain.sh
source scripts/toolchain.sh

step() { printf '\n== test: %s\n' "$*"; }

step "formatting"
cargo fmt --all -- --check

step "clippy, warnings denied"
cargo clippy --workspace --all-targets -- -D warnings

step "hash_seed vectors regenerate identically from the independent Python implementation"
python3 trace-core/tests/data/hash_seed_vectors.py | diff -u trace-core/tests/data/hash_seed_vectors.txt -

step "unit, integration, property and benchmark-smoke tests"
cargo test --workspace --all-targets

step "documentation tests"
cargo test --workspace --doc
