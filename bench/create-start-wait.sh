#!/usr/bin/env bash
# Median time of create + start + wait of /bin/true through the boxd API (curl on the
# Unix socket), next to the same program run raw in fresh namespaces with
# `unshare -pfmuin --mount-proc=R/proc chroot R /bin/true`, measured in the same run.
# Prints both medians and the ratio. Goal: API <= 2.5x raw. See bench/README.md.
#
# Usage (as root, from anywhere): bench/create-start-wait.sh [N]
#   N          iterations of each (default 30, env N works too)
#   BOXD       daemon binary (default: target/release/boxd, else target/debug/boxd)
#   FIXTURES   test images (default: target/fixtures)
#   HYPERFINE  0 to use the timing loop even when hyperfine is installed
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-${N:-30}}
warmup=3
if [ -z "${BOXD:-}" ]; then
    BOXD=$repo/target/release/boxd
    [ -x "$BOXD" ] || BOXD=$repo/target/debug/boxd
fi
fixtures=${FIXTURES:-$repo/target/fixtures}
tarball=$fixtures/busybox-rootfs.tar.gz

die() { echo "create-start-wait: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -x "$BOXD" ] || die "no daemon at $BOXD: run cargo build --release --workspace"
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

echo '{"image":"busybox","name":"bench","cmd":["/bin/true"]}' >"$tmp/create.json"
# One curl process per iteration: create, start and wait on one connection each, by name.
api_cmd="curl -sS --unix-socket $sock -H Content-Type:application/json -d @$tmp/create.json -o /dev/null http://boxd/v1/containers \
--next -sS --unix-socket $sock -X POST -o /dev/null http://boxd/v1/containers/bench/start \
--next -sS --unix-socket $sock -X POST -o $tmp/wait.json http://boxd/v1/containers/bench/wait"
# Untimed, before every run: remove the previous run's container.
prepare_cmd="curl -sS --unix-socket $sock -X DELETE -o /dev/null http://boxd/v1/containers/bench?force=true"
raw_cmd="unshare -pfmuin --mount-proc=$rootfs/proc chroot $rootfs /bin/true"

check_api_run() {
    grep -Eq '"exit_code": *0[,} ]' "$tmp/wait.json" || die "API run did not exit 0: $(cat "$tmp/wait.json")"
}

median_ms() { sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.2f", m}'; }

if [ "${HYPERFINE:-1}" != 0 ] && command -v hyperfine >/dev/null; then
    echo "measuring with hyperfine: $n runs each, $warmup warm-up"
    hyperfine -N --style basic --warmup "$warmup" --runs "$n" --prepare "$prepare_cmd" \
        --export-json "$tmp/h.json" -n api "$api_cmd" -n raw "$raw_cmd" >&2
    check_api_run
    read -r api_ms raw_ms < <(python3 - "$tmp/h.json" <<'EOF'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print(f'{r["api"]:.2f} {r["raw"]:.2f}')
EOF
)
else
    echo "measuring with a timing loop: $n runs each, $warmup warm-up"
    time_one() { # prints ms
        local t0 t1
        t0=$(date +%s%N)
        $1 >/dev/null || die "failed: $1"
        t1=$(date +%s%N)
        awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.3f\n", ns / 1e6}'
    }
    : >"$tmp/api.ms"
    : >"$tmp/raw.ms"
    set -f # the commands are split on spaces, never globbed (the URLs hold '?')
    # Interleaved, so drift in the machine's load hits both alike.
    for i in $(seq $((warmup + n))); do
        $prepare_cmd
        a=$(time_one "$api_cmd")
        check_api_run
        r=$(time_one "$raw_cmd")
        if [ "$i" -gt "$warmup" ]; then
            echo "$a" >>"$tmp/api.ms"
            echo "$r" >>"$tmp/raw.ms"
        fi
    done
    api_ms=$(median_ms <"$tmp/api.ms")
    raw_ms=$(median_ms <"$tmp/raw.ms")
fi

ratio=$(awk -v a="$api_ms" -v r="$raw_ms" 'BEGIN {printf "%.2f", a / r}')
printf '\ncreate+start+wait /bin/true, median of %d:\n' "$n"
printf '  boxd API (curl --unix-socket)     %8.2f ms\n' "$api_ms"
printf '  raw unshare -pfmuin + chroot      %8.2f ms\n' "$raw_ms"
printf '  ratio                             %8.2f x   (goal <= 2.5 x)\n' "$ratio"
