#!/usr/bin/env bash
# The Docker Engine API face next to podman's, driven by the same docker CLI in the same
# run: `docker run --rm` of /bin/true, `docker ps -a` with 100 containers, and
# `docker logs` of a 200 MB log (time, and the daemon's memory while it serves it).
# Prints the medians and the ratios podman / boxd. Goal: boxd >= 3x faster on each.
# See bench/README.md.
#
# Usage (as root, from anywhere): bench/docker-api.sh [N]
#   N          iterations of each timed command (default 20, env N works too; the
#              200 MB logs are read max(3, N/5) times)
#   BOXD       daemon binary (default: target/release/boxd, else target/debug/boxd)
#   FIXTURES   test images (default: target/fixtures)
#   DOCKER     the docker CLI (default: docker in PATH)
#   LOG_MB     size of the big log in MB (default 200)
#
# Both daemons run on their own temp dirs with no networking (`--network none` and
# boxd's default network mode `none`), containers under the bench's cgroup parent.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-${N:-20}}
log_mb=${LOG_MB:-200}
if [ -z "${BOXD:-}" ]; then
    BOXD=$repo/target/release/boxd
    [ -x "$BOXD" ] || BOXD=$repo/target/debug/boxd
fi
fixtures=${FIXTURES:-$repo/target/fixtures}
docker=${DOCKER:-$(command -v docker || true)}
archive=$fixtures/busybox-docker-archive.tar

die() { echo "docker-api: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -x "$BOXD" ] || die "no daemon at $BOXD: run cargo build --release --workspace"
[ -n "$docker" ] || die "no docker CLI (set DOCKER=)"
[ -f "$archive" ] || die "no $archive: build the test images into $fixtures"
command -v podman >/dev/null || die "podman is not installed (apt-get install podman)"

tmp=$(mktemp -d /tmp/bxd-api.XXXXXX)
parent=boxd-bench-api-$$
boxd_pid=""
pod_pid=""
floor_pid=""
export DOCKER_CONFIG=$tmp/docker-config
mkdir -p "$DOCKER_CONFIG"

cleanup() {
    set +e
    trap '' INT TERM
    [ -n "$floor_pid" ] && kill "$floor_pid" 2>/dev/null
    [ -n "$pod_pid" ] && DOCKER_HOST=unix://$tmp/podman.sock "$docker" rm -f $(
        DOCKER_HOST=unix://$tmp/podman.sock "$docker" ps -aq) >/dev/null 2>&1
    [ -n "$pod_pid" ] && kill -TERM "$pod_pid" 2>/dev/null && wait "$pod_pid" 2>/dev/null
    podman rm -a -f >/dev/null 2>&1
    if [ -n "$boxd_pid" ]; then
        DOCKER_HOST=unix://$tmp/boxd.sock "$docker" rm -f $(
            DOCKER_HOST=unix://$tmp/boxd.sock "$docker" ps -aq) >/dev/null 2>&1
        kill -TERM "$boxd_pid" 2>/dev/null && wait "$boxd_pid" 2>/dev/null
    fi
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
    grep -E " $tmp[/ ]" /proc/self/mountinfo | awk '{print $5}' | sort -r |
        while read -r m; do umount -l "$m"; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_socket() { # socket, pid, log
    for _ in $(seq 150); do
        DOCKER_HOST=unix://$1 "$docker" version >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "the daemon of $1 exited"; }
        sleep 0.1
    done
    die "no answer on $1 after 15 s"
}

# boxd, on its own dirs.
"$BOXD" --socket "$tmp/boxd.sock" --root "$tmp/r" --state-dir "$tmp/s" \
    --cgroup-parent "$parent" --log-max-bytes 0 --log-level warn 2>"$tmp/boxd.log" &
boxd_pid=$!
wait_socket "$tmp/boxd.sock" "$boxd_pid" "$tmp/boxd.log"

# podman's API service, on its own store and configuration (nothing of the host's
# podman set-up is read or written); runc where installed (crun refuses a cgroup v1
# hierarchy beside a v2 one that has controllers, as on the test machines).
p=$tmp/podman
mkdir -p "$p"
cat >"$p/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$p/root"
runroot = "$p/run"
EOF
cat >"$p/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$p/tmp"
static_dir = "$p/root/libpod"
volume_path = "$p/root/volumes"
$(command -v runc >/dev/null && echo 'runtime = "runc"')
EOF
export CONTAINERS_CONF=$p/containers.conf CONTAINERS_STORAGE_CONF=$p/storage.conf
podman system service --time=0 "unix://$tmp/podman.sock" 2>"$tmp/podman.log" &
pod_pid=$!
wait_socket "$tmp/podman.sock" "$pod_pid" "$tmp/podman.log"

on() { # daemon (boxd, podman, or floor: bench/docker-floor.py), docker args...
    local d=$1
    shift
    DOCKER_HOST=unix://$tmp/$d.sock "$docker" "$@"
}
declare -A cgroup_args=(
    [boxd]=""
    [podman]="--cgroup-parent=/$parent/podman"
)
for d in boxd podman; do
    on "$d" load -q -i "$archive" >/dev/null
    on "$d" tag test/busybox:latest bxbench-busybox >/dev/null
    # shellcheck disable=SC2086
    on "$d" run --rm --network none ${cgroup_args[$d]} bxbench-busybox /bin/true ||
        die "$d cannot run a container"
done

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk "BEGIN {printf \"%.1f\", ($1) / 1e6}"; }

# Times `on DAEMON ARGS` (output discarded) into $tmp/<label>.<daemon>.
time_on() { # label daemon args...
    local label=$1 d=$2 t0 t1
    shift 2
    t0=$(now_ns)
    on "$d" "$@" >/dev/null
    t1=$(now_ns)
    echo $((t1 - t0)) >>"$tmp/$label.$d"
}

echo "measuring with $($docker --version): $n runs each, interleaved"
for _ in $(seq "$n"); do
    for d in boxd podman; do
        # shellcheck disable=SC2086
        time_on run "$d" run --rm --network none ${cgroup_args[$d]} bxbench-busybox /bin/true
    done
done

for d in boxd podman; do
    for i in $(seq 100); do
        # shellcheck disable=SC2086
        on "$d" create --network none ${cgroup_args[$d]} --name "c$i" bxbench-busybox /bin/true >/dev/null
    done
done
# The client's own cost: the same command against a server that answers at once.
python3 "$repo/bench/docker-floor.py" "$tmp/floor.sock" 2>"$tmp/floor.log" &
floor_pid=$!
for _ in $(seq 50); do
    [ -S "$tmp/floor.sock" ] && break
    sleep 0.1
done
for _ in $(seq "$n"); do
    for d in boxd podman floor; do
        time_on ps "$d" ps -a
    done
done
kill "$floor_pid"
wait "$floor_pid" 2>/dev/null || true

# The big log: one container writes it and exits; it is then read whole.
lines=$((log_mb * 1000000 / 100))
for d in boxd podman; do
    # Detached, then waited for: podman's attach of a `run` can miss the exit and hang.
    # shellcheck disable=SC2086
    on "$d" run -d --network none ${cgroup_args[$d]} --name biglog bxbench-busybox \
        sh -c "yes 012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678 | head -n $lines" >/dev/null
    on "$d" wait biglog >/dev/null
done
# The daemon's resident memory: sampled while `docker logs` runs, the peak above the
# level before it.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
log_runs=$((n / 5 > 3 ? n / 5 : 3))
for _ in $(seq "$log_runs"); do
    for d in boxd podman; do
        pid=$boxd_pid
        [ "$d" = podman ] && pid=$pod_pid
        base=$(rss_kb "$pid")
        peak=$base
        t0=$(now_ns)
        on "$d" logs biglog >/dev/null 2>&1 &
        reader=$!
        while kill -0 "$reader" 2>/dev/null; do
            r=$(rss_kb "$pid")
            [ "$r" -gt "$peak" ] && peak=$r
            sleep 0.05
        done
        wait "$reader" || die "docker logs on $d failed"
        t1=$(now_ns)
        echo $((t1 - t0)) >>"$tmp/logs.$d"
        echo $((peak - base)) >>"$tmp/logsrss.$d"
    done
done
bytes=$(on boxd logs biglog 2>/dev/null | wc -c)

printf '\nmedians (boxd %s, podman %s):\n' "$BOXD" "$(podman --version | awk '{print $3}')"
printf '  %-34s %10s %10s %8s\n' "" boxd podman "podman/boxd"
for label in run ps logs; do
    b=$(median <"$tmp/$label.boxd")
    p=$(median <"$tmp/$label.podman")
    case $label in
        run) what="docker run --rm /bin/true" ;;
        ps) what="docker ps -a, 100 containers" ;;
        logs) what="docker logs, $((bytes / 1000000)) MB" ;;
    esac
    printf '  %-34s %8s ms %8s ms %7.1fx\n' "$what" "$(ms "$b")" "$(ms "$p")" \
        "$(awk "BEGIN {print $p / $b}")"
done
f=$(median <"$tmp/ps.floor")
printf '  %-34s %8s ms   (the CLI itself: the same ps against a server that answers at once)\n' \
    "docker ps -a, no daemon work" "$(ms "$f")"
b=$(median <"$tmp/ps.boxd")
p=$(median <"$tmp/ps.podman")
printf '  %-34s %8s ms %8s ms %7.1fx\n' "  ps minus the CLI's own time" \
    "$(ms "$b - $f")" "$(ms "$p - $f")" "$(awk "BEGIN {print ($p - $f) / ($b - $f)}")"
printf '  %-34s %7s MiB %7s MiB\n' "daemon RSS growth during logs" \
    "$(awk "BEGIN {printf \"%.1f\", $(median <"$tmp/logsrss.boxd") / 1024}")" \
    "$(awk "BEGIN {printf \"%.1f\", $(median <"$tmp/logsrss.podman") / 1024}")"
echo "goal: podman/boxd >= 3x on each row"
