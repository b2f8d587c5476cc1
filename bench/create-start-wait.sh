#!/usr/bin/env bash
# Median time of create + start + wait of /bin/true through the boxd API, next to the
# same program run raw in fresh namespaces with
# `unshare -pfmuin --mount-proc=R/proc chroot R /bin/true`, measured interleaved in the
# same run by the timing loop in boxctl/examples/create_start_wait.rs. Prints both
# medians and the ratio. Goal: API <= 2.5x raw. See bench/README.md.
#
# Usage (as root, from anywhere): bench/create-start-wait.sh [N]
#   N          iterations of each (default 30, env N works too)
#   BOXD       daemon binary (default: target/release/boxd, else target/debug/boxd)
#   DRIVER     timing loop (default: target/release/examples/create_start_wait)
#   FIXTURES   test images (default: target/fixtures)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-${N:-30}}
warmup=3
if [ -z "${BOXD:-}" ]; then
    BOXD=$repo/target/release/boxd
    [ -x "$BOXD" ] || BOXD=$repo/target/debug/boxd
fi
fixtures=${FIXTURES:-$repo/target/fixtures}
driver=${DRIVER:-$repo/target/release/examples/create_start_wait}
tarball=$fixtures/busybox-rootfs.tar.gz

die() { echo "create-start-wait: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -x "$BOXD" ] || die "no daemon at $BOXD: run cargo build --release --workspace"
[ -x "$driver" ] || die "no timing loop at $driver: run cargo build --release --workspace --bins --examples"
[ -f "$tarball" ] || die "no $tarball: run ../shared/images/build-test-images.sh target/fixtures"
for tool in curl unshare chroot; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# Short: <state>/containers/<64-hex id>/control.sock must fit in a socket address.
tmp=$(mktemp -d /tmp/bxb.XXXXXX)
sock=$tmp/boxd.sock
parent=boxd-bench-$$
boxd_pid=""

cleanup() {
    set +e +f
    if [ -n "$boxd_pid" ] && kill -0 "$boxd_pid" 2>/dev/null; then
        curl -sS --unix-socket "$sock" -X DELETE "http://boxd/v1/containers/bench?force=true" -o /dev/null
        kill -TERM "$boxd_pid"
        wait "$boxd_pid" 2>/dev/null
    fi
    # Whatever is still running from this run: shims, then container processes.
    for f in "$tmp"/s/containers/*/shim.pid "$tmp"/s/containers/*/container.pid; do
        [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    for g in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
        [ -d "$g" ] || continue
        for procs in $(find "$g" -name cgroup.procs); do
            while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$procs"
        done
        sleep 0.1
        find "$g" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    grep -F " $tmp" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
        umount -l "$m"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "daemon: $BOXD"
"$BOXD" --socket "$sock" --root "$tmp/r" --state-dir "$tmp/s" \
    --cgroup-parent "$parent" --log-level warn 2>"$tmp/boxd.log" &
boxd_pid=$!
for _ in $(seq 100); do
    curl -sf --unix-socket "$sock" http://boxd/v1/version -o /dev/null && break
    kill -0 "$boxd_pid" 2>/dev/null || { cat "$tmp/boxd.log" >&2; die "boxd exited"; }
    sleep 0.1
done
curl -sf --unix-socket "$sock" http://boxd/v1/version -o /dev/null || die "boxd not ready after 10 s"
curl -sS --fail-with-body --unix-socket "$sock" --data-binary "@$tarball" \
    -H 'Content-Type: application/octet-stream' \
    "http://boxd/v1/images/import?name=busybox" -o /dev/null || die "import failed"

rootfs=$tmp/rootfs
mkdir "$rootfs"
tar -xzf "$tarball" -C "$rootfs"

echo "measuring: $n runs each, $warmup warm-up, interleaved"
read -r api_ms raw_ms < <("$driver" --socket "$sock" --rootfs "$rootfs" --runs "$n" --warmup "$warmup" | tail -n 1) ||
    die "the timing loop failed"
[ -n "$raw_ms" ] || die "the timing loop printed no result"

ratio=$(awk -v a="$api_ms" -v r="$raw_ms" 'BEGIN {printf "%.2f", a / r}')
printf '\ncreate+start+wait /bin/true, median of %d:\n' "$n"
printf '  boxd API (create, start, wait)    %8.2f ms\n' "$api_ms"
printf '  raw unshare -pfmuin + chroot      %8.2f ms\n' "$raw_ms"
printf '  ratio                             %8.2f x   (goal <= 2.5 x)\n' "$ratio"
