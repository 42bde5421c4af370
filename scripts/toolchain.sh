# shellcheck shell=bash
# Chooses the Rust toolchain for every build script; source it, do not run it.
#
# Two routes, detected in this order (THREADLINE_TOOLCHAIN=rustup|debian forces one):
#   rustup: the active rustup toolchain already has the wasm32-unknown-unknown target, and a
#           nightly with rust-src exists for the BPF build (`rustup target add …` on a normal
#           developer machine).
#   debian: Debian's rust-web packages (rustc 1.96 with std sources for wasm32 build-std and a
#           prebuilt core for bpfel). Their binaries are exposed through target/toolchain/bin so
#           that nothing else on PATH (python, for one) is shadowed.
# Sets: THREADLINE_TOOLCHAIN and PATH (exported), and the cargo commands for the two cross
# targets: WASM_CARGO/WASM_BUILD_ARGS and BPF_CARGO/BPF_BUILD_ARGS.

threadline_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

rustup_has_targets() {
    command -v rustup >/dev/null 2>&1 &&
        rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown &&
        rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'
}

if [ -z "${THREADLINE_TOOLCHAIN:-}" ]; then
    if rustup_has_targets; then THREADLINE_TOOLCHAIN=rustup; else THREADLINE_TOOLCHAIN=debian; fi
fi
export THREADLINE_TOOLCHAIN

case "$THREADLINE_TOOLCHAIN" in
rustup)
    WASM_CARGO=(cargo)
    WASM_BUILD_ARGS=(--target wasm32-unknown-unknown)
    BPF_CARGO=(cargo +nightly)
    BPF_BUILD_ARGS=(--target bpfel-unknown-none -Z build-std=core)
    ;;
debian)
    toolchain_bin="$threadline_root/target/toolchain/bin"
    export PATH="$toolchain_bin:$PATH"
    # wasm32 std is built from Debian's rust-web-src and bpfel's core ships prebuilt; both
    # need unstable flags, which RUSTC_BOOTSTRAP allows on this stable compiler. Building std
    # also lets panics abort without their formatting code, which keeps the filter fast
    # (opt-level 3) and under its 250 KB budget; it has no panic paths left to report.
    WASM_CARGO=(env RUSTC_BOOTSTRAP=1 "RUSTFLAGS=-Zunstable-options -Cpanic=immediate-abort" cargo)
    WASM_BUILD_ARGS=(--target wasm32-unknown-unknown -Zbuild-std=std,panic_abort)
    BPF_CARGO=(env RUSTC_BOOTSTRAP=1 cargo)
    BPF_BUILD_ARGS=(--target bpfel-unknown-none)
    ;;
*)
    echo "THREADLINE_TOOLCHAIN must be rustup or debian, got '$THREADLINE_TOOLCHAIN'" >&2
    return 1
    ;;
esac

# cargo-installed tools (bpf-linker) live here on both routes.
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
