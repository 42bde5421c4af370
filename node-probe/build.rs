//! Embeds the TC programs' object, built for bpfel by `scripts/setup.sh`
//! (`cargo build --release -p node-probe-ebpf --target bpfel-unknown-none`).
//!
//! Not aya_build: it runs its own cargo for the bpf target, which needs a rustup nightly, and
//! the Debian toolchain route builds the object with the stable compiler instead. So the object
//! is copied from where that build leaves it, or from `NODE_PROBE_EBPF_OBJECT`. Without one, an
//! empty object is embedded and a warning printed: the agent and its host tests still build
//! and lint on a machine without bpf-linker, and the probe refuses to start, saying why.

use std::env;
use std::fs;
use std::path::PathBuf;

const OVERRIDE: &str = "NODE_PROBE_EBPF_OBJECT";

fn main() {
    println!("cargo:rerun-if-env-changed={OVERRIDE}");
    let object = match env::var_os(OVERRIDE) {
        Some(path) => PathBuf::from(path),
        None => {
            let manifest = env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
            manifest
                .unwrap_or_default()
                .join("../target/bpfel-unknown-none/release/node-probe-ebpf")
        }
    };
    // Also when the object does not exist yet: cargo then reruns this script on every build,
    // so the object is picked up as soon as it is built.
    println!("cargo:rerun-if-changed={}", object.display());

    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo:warning=OUT_DIR is not set; cannot embed the eBPF object");
        return;
    };
    let embedded = out_dir.join("node-probe-ebpf.o");
    if let Err(error) = fs::copy(&object, &embedded) {
        println!(
            "cargo:warning=node-probe is built without the eBPF object ({}: {error}); \
             run scripts/setup.sh to build it, or set {OVERRIDE}",
            object.display()
        );
        if let Err(error) = fs::write(&embedded, []) {
            println!("cargo:warning=cannot write {}: {error}", embedded.display());
        }
    }
}
