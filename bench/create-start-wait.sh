#!/usr/bin/env bash
# Median time of create + start + wait of /bin/true through the boxd API, with
# `"network": "none"` (api-none) and with `"network": "bridge"` (api-bridge: a CNI
# attach and detach on the default network), next to the same program run raw in fresh
# namespaces with `unshare -pfmuin --mount-proc=R/proc chroot R /bin/true` and, when
# podman can run here, `podman run --rm --network none|bridge`, measured interleaved in
# the same run by the timing loop in boxctl/examples/create_start_wait.rs. Prints the
# medians, the ratio api-none / raw and the difference bridge - none.
# Goal: api-none <= 2.5x raw. See bench/README.md.
#
# Usage (as root, from anywhere): bench/create-start-wait.sh [N]
#   N          iterations of each (default 30, env N works too)
#   BOXD       daemon binary (default: target/release/boxd, else target/debug/boxd)
#   DRIVER     timing loop (default: target/release/examples/create_start_wait)
#   FIXTURES   test images (default: target/fixtures)
#   PODMAN     0: leave podman out even when it is installed
#
# The bench's networks are its own: the daemon's default network is the bridge
# bxbench0 on 10.199.0.0/24 (user networks bxbench<N> from 10.199.128.0/17, none made
# here), podman's is the bridge bxbench-pod on 10.199.1.0/24. The cleanup deletes those
# bridges and every iptables rule naming them or 10.199.*: two runs cannot share the
# machine, and a run refuses to start while bxbench0 exists.
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

bridge=bxbench0
pod_bridge=bxbench-pod
pod_net=bxbench-pod
pod_image=localhost/bxbench-busybox
# Rules naming the bench's bridges or addresses (iptables-save's words are delimited by
# spaces and quotes).
net_re='(^|[ "])(bxbench[-a-z0-9]*|10\.199\.[0-9./]+)([ "]|$)'

die() { echo "create-start-wait: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -x "$BOXD" ] || die "no daemon at $BOXD: run cargo build --release --workspace"
[ -x "$driver" ] || die "no timing loop at $driver: run cargo build --release --workspace --bins --examples"
[ -f "$tarball" ] || die "no $tarball: run tests/images/build-test-images.sh target/fixtures"
for tool in curl unshare chroot ip iptables iptables-save iptables-restore; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
for b in "$bridge" "$pod_bridge"; do
    ! ip link show "$b" >/dev/null 2>&1 ||
        die "$b exists: another run of this bench is going on, or one was killed (ip link del $b)"
done

# Short: <state>/containers/<64-hex id>/control.sock must fit in a socket address.
tmp=$(mktemp -d /tmp/bxb.XXXXXX)
sock=$tmp/boxd.sock
parent=boxd-bench-$$
boxd_pid=""
driver_pid=""
podman_ok=""
# Host dirs podman and its tools make on first use (CNI's result cache, named netns,
# runc's state): removed again unless they were there before.
host_dirs=()
for d in /var/lib/cni /run/netns /run/runc; do
    [ -e "$d" ] || host_dirs+=("$d")
done
# podman bind-mounts /run/netns on itself (shared) when it is not a mount point yet.
netns_mounted=""
mountpoint -q /run/netns 2>/dev/null && netns_mounted=1

# Deletes the rules naming the bench's bridges or subnets from every table, then the
# per-container CNI chains (CNI-<hash>, CNI-DN-<hash>) they were in or led to, once
# nothing jumps to them.
clean_iptables() {
    local table rule chain target chains
    for table in filter nat mangle raw; do
        chains=()
        while IFS= read -r rule; do
            read -r _ chain _ <<<"$rule"
            target=""
            [[ $rule =~ \ -j\ ([^ ]+) ]] && target=${BASH_REMATCH[1]}
            for c in "$chain" "$target"; do
                [[ $c =~ ^CNI-(DN-)?[0-9a-f]+$ ]] && chains+=("$c")
            done
            printf '*%s\n-D %s\nCOMMIT\n' "$table" "${rule#-A }" |
                iptables-restore -w --noflush 2>/dev/null
        done < <(iptables-save -t "$table" 2>/dev/null | grep -E -- "^-A .*$net_re")
        for chain in $(printf '%s\n' "${chains[@]}" | sort -u); do
            iptables-save -t "$table" | grep -qE -- "-j $chain( |$)" && continue
            iptables -w -t "$table" -F "$chain" 2>/dev/null
            iptables -w -t "$table" -X "$chain" 2>/dev/null
        done
    done
}

cleanup() {
    set +e +f
    trap '' INT TERM
    if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
        kill -TERM "$driver_pid"
        wait "$driver_pid" 2>/dev/null
    fi
    if [ -n "$boxd_pid" ] && kill -0 "$boxd_pid" 2>/dev/null; then
        curl -sS --unix-socket "$sock" -X DELETE "http://boxd/v1/containers/bench?force=true" -o /dev/null
        kill -TERM "$boxd_pid"
        wait "$boxd_pid" 2>/dev/null
    fi
    if [ -n "$podman_ok" ]; then
        podman rm -a -f >/dev/null 2>&1
        podman rmi -f "$pod_image" >/dev/null 2>&1
    fi
    # Whatever is still running from this run: shims, then container processes (boxd's
    # and podman's, which are all under the cgroup parent).
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
    mounts=$tmp
    [[ " ${host_dirs[*]} " == *" /run/netns "* ]] && mounts="$tmp|/run/netns"
    grep -E " ($mounts)[/ ]" /proc/self/mountinfo | awk '{print $5}' | sort -r |
        while read -r m; do
            umount -l "$m"
        done
    if [ -z "$netns_mounted" ] && mountpoint -q /run/netns 2>/dev/null &&
        ! grep -q " /run/netns/" /proc/self/mountinfo; then
        umount /run/netns
    fi
    clean_iptables
    for b in "$bridge" "$pod_bridge"; do
        ip link show "$b" >/dev/null 2>&1 && ip link del "$b"
    done
    for d in "${host_dirs[@]}"; do
        [ -e "$d" ] && rm -rf "$d"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$tmp/boxd.toml" <<EOF
default_network_mode = "bridge"
default_bridge = "$bridge"
bridge_prefix = "bxbench"
default_subnet = "10.199.0.0/24"
network_pool = "10.199.128.0/17"
EOF

echo "daemon: $BOXD"
"$BOXD" --config "$tmp/boxd.toml" --socket "$sock" --root "$tmp/r" --state-dir "$tmp/s" \
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

# podman, on its own store, config and network in $tmp (nothing of the host's podman
# set-up is read or written): the same busybox rootfs imported as an image, containers
# under the bench's cgroup parent.
podman_args=()
podman_why=""
if [ "${PODMAN:-1}" = 0 ]; then
    podman_why="left out (PODMAN=0)"
elif ! command -v podman >/dev/null; then
    podman_why="podman is not installed (apt-get install podman)"
else
    p=$tmp/podman
    mkdir -p "$p/net"
    cat >"$p/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$p/root"
runroot = "$p/run"
EOF
    # runc: crun refuses a cgroup v1 hierarchy beside a v2 one that has controllers.
    cat >"$p/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$p/tmp"
static_dir = "$p/root/libpod"
volume_path = "$p/root/volumes"
$(command -v runc >/dev/null && echo 'runtime = "runc"')
[network]
network_backend = "cni"
network_config_dir = "$p/net"
EOF
    # The same plugins as podman's own bridge networks, with the addresses in $tmp.
    cat >"$p/net/$pod_net.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$pod_net",
  "plugins": [
    {
      "type": "bridge", "bridge": "$pod_bridge", "isGateway": true, "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "10.199.1.0/24", "gateway": "10.199.1.1" }]],
        "dataDir": "$p/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "firewall", "backend": "iptables" },
    { "type": "tuning" }
  ]
}
EOF
    export CONTAINERS_CONF=$p/containers.conf CONTAINERS_STORAGE_CONF=$p/storage.conf
    # Limits at or below this shell's: podman raises nofile and nproc by default,
    # which needs CAP_SYS_RESOURCE.
    podman_args=(--cgroup-parent "/$parent/podman"
        --ulimit "nofile=1024:1024" --ulimit "nproc=1024:1024")
    podman_ok=1
    if ! out=$(podman import -q "$tarball" "$pod_image" 2>&1); then
        podman_why="podman import failed: $(tail -n 1 <<<"$out")"
    elif ! out=$(podman run --rm --network none "${podman_args[@]}" "$pod_image" /bin/true 2>&1); then
        podman_why="podman run failed: $(tail -n 1 <<<"$out")"
    elif ! out=$(podman run --rm --network "$pod_net" "${podman_args[@]}" "$pod_image" /bin/true 2>&1); then
        podman_why="podman run on a bridge failed: $(tail -n 1 <<<"$out")"
    fi
fi
driver_args=(--socket "$sock" --rootfs "$rootfs" --runs "$n" --warmup "$warmup")
if [ -z "$podman_why" ]; then
    driver_args+=(--podman-image "$pod_image" --podman-network "$pod_net")
    for a in "${podman_args[@]}"; do
        driver_args+=("--podman-arg=$a")
    done
    echo "podman: $(podman --version), $(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null)"
fi

echo "measuring: $n runs each, $warmup warm-up, interleaved"
"$driver" "${driver_args[@]}" >"$tmp/result" &
driver_pid=$!
wait "$driver_pid" || die "the timing loop failed"
driver_pid=""
read -r none_ms bridge_ms raw_ms pod_none_ms pod_bridge_ms < <(tail -n 1 "$tmp/result")
[ -n "$raw_ms" ] || die "the timing loop printed no result"

calc() { awk "BEGIN {printf \"%.2f\", $1}"; }
printf '\ncreate+start+wait /bin/true, median of %d:\n' "$n"
printf '  api-none    boxd API, "network": "none"        %8.2f ms\n' "$none_ms"
printf '  api-bridge  boxd API, "network": "bridge"      %8.2f ms\n' "$bridge_ms"
printf '  raw         unshare -pfmuin + chroot           %8.2f ms\n' "$raw_ms"
printf '  ratio       api-none / raw                     %8.2f x   (goal <= 2.5 x)\n' \
    "$(calc "$none_ms / $raw_ms")"
printf '  bridge - none  (CNI attach + detach)           %8.2f ms\n' \
    "$(calc "$bridge_ms - $none_ms")"
if [ -n "$pod_bridge_ms" ]; then
    printf '  podman-none    podman run --rm --network none  %8.2f ms\n' "$pod_none_ms"
    printf '  podman-bridge  podman run --rm, bridge         %8.2f ms\n' "$pod_bridge_ms"
    printf '  podman bridge - none                           %8.2f ms\n' \
        "$(calc "$pod_bridge_ms - $pod_none_ms")"
else
    printf '  podman: not measured: %s\n' "$podman_why"
fi
