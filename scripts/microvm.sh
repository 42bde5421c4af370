#!/usr/bin/env bash
# Builds the microVM guest the tests boot with QEMU, into target/microvm/:
#   vmlinuz    Debian's kernel, from the package linux-image-amd64 depends on (downloaded and
#              unpacked, never installed on the host);
#   initrd.gz  busybox-static, the kernel's virtio network modules, the project's workload
#              built as a static binary, and microvm/init as /init.
# Idempotent: the kernel package is fetched and unpacked once per version, cargo rebuilds the
# workload only when its sources change, and the initramfs is packed again only when the hash
# of its contents changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=toolchain.sh
source scripts/toolchain.sh

out=target/microvm
log() { printf '\n== microvm: %s\n' "$*"; }

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# The virtio network driver, dependencies first (the order /init loads them in).
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
    failover net_failover virtio_net)

packages=(qemu-system-x86 busybox-static cpio)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    # Without recommends QEMU stays a few packages, not a desktop's worth.
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
fi

kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}'
}
package=$(kernel_package)
if [ -z "$package" ]; then
    "${sudo_cmd[@]}" apt-get update -qq
    package=$(kernel_package)
fi
[ -n "$package" ] || {
    echo "microvm: apt knows no linux-image package that linux-image-amd64 depends on" >&2
    exit 1
}

mkdir -p "$out/kernel"
deb=$(find "$out/kernel" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
if [ -z "$deb" ]; then
    log "downloading $package"
    (cd "$out/kernel" && apt-get download -qq "$package")
    deb=$(find "$out/kernel" -maxdepth 1 -name "${package}_*.deb" | head -n 1)
fi
unpacked="$out/kernel/unpacked"
if [ "$(cat "$out/kernel/unpacked.from" 2>/dev/null)" != "$deb" ]; then
    log "unpacking $(basename "$deb")"
    rm -rf "$unpacked"
    dpkg-deb -x "$deb" "$unpacked"
    echo "$deb" >"$out/kernel/unpacked.from"
fi
vmlinuz=$(find "$unpacked/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || {
    echo "microvm: $deb has no boot/vmlinuz-*" >&2
    exit 1
}
cmp -s "$vmlinuz" "$out/vmlinuz" || cp "$vmlinuz" "$out/vmlinuz"

log "building the static workload"
# Its own target directory: the static RUSTFLAGS would otherwise invalidate the workspace's
# cache. With --target they apply to the workload only, not to build scripts.
CARGO_TARGET_DIR="$root/$out/build" RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --quiet --release --locked -p workload --target x86_64-unknown-linux-gnu
workload="$out/build/x86_64-unknown-linux-gnu/release/workload"

# The initramfs tree is laid out afresh each time (a few MB), so nothing stale survives in it.
tree="$out/initramfs"
rm -rf "$tree"
mkdir -p "$tree"/{bin,dev,proc,sys,lib/modules}
# busybox-static's binary, which needs no libc in the guest.
busybox=/bin/busybox
cp "$busybox" "$tree/bin/busybox"
for applet in $("$tree/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$tree/bin/$applet"
done
for module in "${modules[@]}"; do
    found=$(find "$unpacked"/lib/modules/*/kernel -name "$module.ko*" | head -n 1)
    [ -n "$found" ] || {
        echo "microvm: $package has no module $module" >&2
        exit 1
    }
    # busybox insmod loads plain .ko files only.
    case "$found" in
    *.ko) cp "$found" "$tree/lib/modules/$module.ko" ;;
    *.ko.xz) xz -dc "$found" >"$tree/lib/modules/$module.ko" ;;
    *.ko.zst) zstd -qdc "$found" >"$tree/lib/modules/$module.ko" ;;
    *.ko.gz) gzip -dc "$found" >"$tree/lib/modules/$module.ko" ;;
    *)
        echo "microvm: cannot unpack $found" >&2
        exit 1
        ;;
    esac
done
cp "$workload" "$tree/bin/workload"
install -m 0755 microvm/init "$tree/init"

contents=$(cd "$tree" && {
    find . -printf '%p %y %l %m\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/initrd.contents" 2>/dev/null)" != "$contents" ] || [ ! -f "$out/initrd.gz" ]; then
    log "packing initrd.gz"
    (cd "$tree" && find . -print0 | LC_ALL=C sort -z |
        cpio --quiet --null -o -H newc --owner=0:0 | gzip -1) >"$out/initrd.gz.tmp"
    mv "$out/initrd.gz.tmp" "$out/initrd.gz"
    echo "$contents" >"$out/initrd.contents"
fi
log "guest ready: $out/vmlinuz ($package), $out/initrd.gz ($(stat -c %s "$out/initrd.gz") bytes)"
