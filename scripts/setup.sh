#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine lacks, then builds the wasm32 and eBPF targets.
# Idempotent: each step checks first and does nothing when its result is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=toolchain.sh
source scripts/toolchain.sh

log() { printf '\n== setup: %s\n' "$*"; }

apt_packages=(
    # wasm tools: optimise and validate the filter.
    binaryen wabt
    # eBPF: bpf-linker's LLVM, and bpftool/iproute2 to inspect and attach programs.
    llvm-22-dev clang-22 lld-22 bpftool iproute2
    # Pingora's zlib-ng builds with cmake.
    cmake
    # Benchmark peers and load; valgrind counts instructions per request.
    nginx-light wrk curl valgrind
)
if [ "$THREADLINE_TOOLCHAIN" = debian ]; then
    apt_packages+=(rustc-web cargo-web rust-web-src rust-web-llvm rust-web-clippy rustfmt-web
        libstd-rust-web-dev-bpf)
fi

missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi

if [ "$THREADLINE_TOOLCHAIN" = debian ]; then
    mkdir -p target/toolchain/bin
    for tool in cargo rustc rustdoc cargo-clippy clippy-driver cargo-fmt rustfmt; do
        ln -sf "/usr/bin/$tool" "target/toolchain/bin/$tool"
    done
fi
log "toolchain: $THREADLINE_TOOLCHAIN ($(rustc --version))"

if ! command -v bpf-linker >/dev/null 2>&1; then
    log "installing bpf-linker 0.13.0 against LLVM 22"
    LLVM_PREFIX=/usr/lib/llvm-22 cargo install --locked bpf-linker --version 0.13.0 \
        --no-default-features --features llvm-22
fi

log "building trace-core and wasm-filter for wasm32-unknown-unknown"
"${WASM_CARGO[@]}" build --profile wasm -p trace-core -p wasm-filter -p empty-filter "${WASM_BUILD_ARGS[@]}"
mkdir -p artifacts
# threadline-filter.wasm is what Envoy loads; empty-filter.wasm is the benchmark's baseline.
for filter in wasm_filter:threadline-filter empty_filter:empty-filter; do
    # Features come from the module's own target_features section: `-all` would let wasm-opt
    # use features that Envoy's V8 (and wasmtime) may not load.
    wasm-opt -Oz --strip-debug --strip-producers \
        "target/wasm32-unknown-unknown/wasm/${filter%%:*}.wasm" -o "artifacts/${filter##*:}.wasm"
    wasm-validate "artifacts/${filter##*:}.wasm"
done
log "published artifacts/threadline-filter.wasm ($(stat -c %s artifacts/threadline-filter.wasm) bytes)"

log "building node-probe-ebpf for bpfel-unknown-none"
"${BPF_CARGO[@]}" build --release -p node-probe-ebpf "${BPF_BUILD_ARGS[@]}"

log "building the microVM guest (Debian kernel, virtio modules, busybox, the workload)"
scripts/microvm.sh

log "installing the mesh-config tests' schema validators (a venv under target/)"
mesh-config/tests/setup.sh

log "done"
