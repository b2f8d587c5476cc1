#!/usr/bin/env bash
# scripts/install-deps.sh [--tests | --check]
#
# Step 1 of the README: checks that this machine can build boxd, then installs the
# Debian packages it needs to build and run (libseccomp-dev and pkg-config: the shim's
# seccomp filter is compiled with libseccomp; e2fsprogs: per-container disk limits).
#   --tests  also the packages the tests drive (the same list .ci/run installs)
#   --check  only the checks, installs nothing
#
# Works as root (a minimal Debian has no sudo) and as a user with sudo: sudo is used
# only for apt-get, and only when not root. What it does not install, it checks first
# and names: a C compiler (rustc links through `cc`, and libseccomp-sys's build needs
# it) and a Rust toolchain at least as new as `rust-version` in Cargo.toml (Debian 12's
# own rustc is older). CC and RUSTC are honoured, as cc-rs and cargo honour them.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf 'install-deps: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: $0 [--tests | --check]" >&2; exit 2; }

tests=
check_only=
case "${1:-}" in
    '') ;;
    --tests) tests=1 ;;
    --check) check_only=1 ;;
    *) usage ;;
esac
[ $# -le 1 ] || usage

# Root runs apt-get itself; anyone else through sudo (and says so when there is none).
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
    root_hint=""
else
    command -v sudo >/dev/null || die "not root and no sudo: run this as root"
    as_root=(sudo)
    root_hint="sudo "
fi

# --- What this script does not install: checked first, each with what to install.
problems=()
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null; then
    problems+=("no C compiler ('$cc' not found): install one with: ${root_hint}apt-get install -y gcc libc6-dev")
fi
msrv=$(sed -n 's/^rust-version = "\([0-9.]*\)"$/\1/p' "$repo/Cargo.toml")
[ -n "$msrv" ] || die "no rust-version in $repo/Cargo.toml"
rust_hint="install Rust $msrv or newer: with rustup (https://rustup.rs; its installer needs curl), or on Debian 12 with ${root_hint}apt-get install -y rustc-web cargo-web"
rustc=${RUSTC:-rustc}
if ! command -v cargo >/dev/null || ! command -v "$rustc" >/dev/null; then
    problems+=("no Rust toolchain (cargo and $rustc must be on PATH): $rust_hint")
else
    # (A rustc that fails to answer is reported below, not a silent exit under set -e.)
    have=$({ "$rustc" --version 2>/dev/null || true; } | sed -n 's/^rustc \([0-9][0-9.]*\).*/\1/p')
    # sort -V puts the older version first: the toolchain is too old unless that is msrv.
    if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$msrv" "$have" | sort -V | head -n 1)" != "$msrv" ]; then
        problems+=("$rustc is ${have:-of unknown version}, boxd needs $msrv or newer: $rust_hint")
    fi
fi
if [ "${#problems[@]}" -gt 0 ]; then
    printf 'install-deps: %s\n' "${problems[@]}" >&2
    exit 1
fi
[ -z "$check_only" ] || { echo "install-deps: C compiler and Rust $msrv+ found"; exit 0; }

# --- Debian packages (only the missing ones; apt-get update only when needed).
command -v apt-get >/dev/null || die "no apt-get: install by hand (Debian names): libseccomp-dev pkg-config e2fsprogs"
packages=(libseccomp-dev pkg-config e2fsprogs)
if [ -n "$tests" ]; then
    # What the integration tests drive: busybox-static, umoci, skopeo, python3, gzip for
    # the test images (tests/images installs them too, as root); systemd's
    # systemd-analyze for the shipped units; containernetworking-plugins + iptables, the
    # CNI plugins boxd runs for networks; python3-docker (docker-py) and docker-compose
    # (Debian's 1.29), clients the Docker API face is tested with; prometheus for
    # promtool, which checks /metrics; python3-pip for testcontainers (PyPI, .ci/run).
    packages+=(busybox-static umoci skopeo python3 gzip systemd iproute2 curl
        containernetworking-plugins iptables python3-docker python3-pip docker-compose prometheus)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all installed (${packages[*]})"
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
# Without package lists (a fresh minimal image) the install fails: update once, retry.
if ! "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"; then
    "${apt[@]}" update -qq
    "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"
fi
