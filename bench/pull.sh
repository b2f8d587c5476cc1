#!/usr/bin/env bash
# Median time of pulling + unpacking the test images from the local registry through
# boxd (`POST /v1/images/pull`, curl on the Unix socket), next to
# `skopeo copy docker://127.0.0.1:PORT/... oci:DIR` followed by `umoci unpack`, measured
# interleaved in the same run. Prints both medians and the ratio. See bench/README.md.
#
# Usage (as root, from anywhere): bench/pull.sh [N]
#   N          iterations of each (default 10, env N works too)
#   PORT       port of the local registry (default 5073)
#   IMAGES     repositories to pull, space-separated (default "test/busybox test/layered")
#   BOXD       daemon binary (default: target/release/boxd, else target/debug/boxd)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-${N:-10}}
port=${PORT:-5073}
images=${IMAGES:-test/busybox test/layered}
images=$repo/tests/images  # the repository's registry scripts
if [ -z "${BOXD:-}" ]; then
    BOXD=$repo/target/release/boxd
    [ -x "$BOXD" ] || BOXD=$repo/target/debug/boxd
fi

die() { echo "pull: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -x "$BOXD" ] || die "no daemon at $BOXD: run cargo build --release --workspace"
[ -x "$images/start-registry.sh" ] || die "no $images/start-registry.sh"
for tool in curl skopeo umoci; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install $tool)"
done

# Short: <state>/containers/<64-hex id>/control.sock must fit in a socket address.
tmp=$(mktemp -d /tmp/bxp.XXXXXX)
sock=$tmp/boxd.sock
parent=boxd-bench-$$
boxd_pid=""
registry_started=""

cleanup() {
    set +e
    if [ -n "$boxd_pid" ] && kill -0 "$boxd_pid" 2>/dev/null; then
        kill -TERM "$boxd_pid"
        wait "$boxd_pid" 2>/dev/null
    fi
    [ -z "$registry_started" ] || "$images/stop-registry.sh" "$tmp/registry" >/dev/null 2>&1
    for g in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
        [ -d "$g" ] && find "$g" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    grep -F " $tmp" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
        umount -l "$m"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "starting the local registry on 127.0.0.1:$port"
registry_started=1
"$images/start-registry.sh" "$tmp/registry" "$port" >"$tmp/registry.out" 2>&1 ||
    { cat "$tmp/registry.out" >&2; die "start-registry.sh failed"; }

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

now_ns() { date +%s%N; }

# One boxd round: every image pulled (and unpacked into the layer store) from scratch.
boxd_round() {
    local img out
    for img in $images; do
        out=$tmp/pull.out
        curl -sS --fail-with-body --unix-socket "$sock" -H 'Content-Type: application/json' \
            -d "{\"reference\":\"127.0.0.1:$port/$img:latest\"}" \
            http://boxd/v1/images/pull -o "$out" || { cat "$out" >&2; die "pull of $img failed"; }
        tail -n 1 "$out" | grep -q '"status":"done"' || { tail -n 3 "$out" >&2; die "pull of $img failed"; }
    done
}
boxd_reset() { # untimed: nothing stored for the next round
    curl -sS --fail-with-body --unix-socket "$sock" -X POST \
        "http://boxd/v1/images/prune?all=true" -o /dev/null || die "prune failed"
    [ -z "$(ls -A "$tmp/r/images/layers")" ] || die "prune left layers behind"
}

# One skopeo + umoci round: the same images copied into an OCI layout, then unpacked.
skopeo_round() {
    local img name
    for img in $images; do
        name=${img##*/}
        skopeo --insecure-policy copy -q --src-tls-verify=false \
            "docker://127.0.0.1:$port/$img:latest" "oci:$tmp/oci:$name" >/dev/null ||
            die "skopeo copy of $img failed"
        umoci unpack --image "$tmp/oci:$name" "$tmp/bundle-$name" >/dev/null ||
            die "umoci unpack of $img failed"
    done
}
skopeo_reset() { rm -rf "$tmp/oci" "$tmp"/bundle-*; }

median_ms() { # reads ns values, prints the median in ms
    sort -n | awk '{v[NR]=$1} END {
        m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.1f", m / 1e6 }'
}

# Warm-up (not timed): page cache, registry, first connections.
boxd_round; boxd_reset
skopeo_round; skopeo_reset

: >"$tmp/boxd.ns"
: >"$tmp/skopeo.ns"
echo "images: $images; $n rounds each, interleaved"
for i in $(seq "$n"); do
    t0=$(now_ns); boxd_round; t1=$(now_ns)
    echo $((t1 - t0)) >>"$tmp/boxd.ns"
    boxd_reset
    t0=$(now_ns); skopeo_round; t1=$(now_ns)
    echo $((t1 - t0)) >>"$tmp/skopeo.ns"
    skopeo_reset
    [ ! -t 1 ] || printf '\r%d/%d' "$i" "$n"
done
[ ! -t 1 ] || echo

boxd_ms=$(median_ms <"$tmp/boxd.ns")
skopeo_ms=$(median_ms <"$tmp/skopeo.ns")
printf 'boxd pull (+unpack)        median %8.1f ms\n' "$boxd_ms"
printf 'skopeo copy + umoci unpack median %8.1f ms\n' "$skopeo_ms"
awk -v a="$boxd_ms" -v b="$skopeo_ms" 'BEGIN { printf "ratio boxd/skopeo+umoci: %.2fx\n", a / b }'
