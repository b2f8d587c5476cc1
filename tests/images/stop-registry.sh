#!/usr/bin/env bash
# tests/images/stop-registry.sh DATADIR
#
# Stops the docker-registry that start-registry.sh started for DATADIR: the
# PID in DATADIR/registry.pid, and only if that PID still is
# "/usr/bin/docker-registry serve DATADIR/config.yml" (a reused PID is never
# signalled). SIGTERM, then SIGKILL after 10 s. Removes the PID file.
# Idempotent: exits 0 when nothing is running.
set -Eeuo pipefail
trap 'echo "[stop-registry] ERROR: unexpected failure at line $LINENO: $BASH_COMMAND" >&2' ERR

if [ $# -ne 1 ] || [ -z "$1" ]; then echo "usage: $0 DATADIR" >&2; exit 2; fi
log() { printf '[stop-registry] %s\n' "$*" >&2; }

if [ ! -d "$1" ]; then
    log "no such directory: $1 (nothing to stop)"
    exit 0
fi
DATADIR="$(cd "$1" && pwd -P)"
PIDFILE="$DATADIR/registry.pid"
CONFIG="$DATADIR/config.yml"

if [ ! -f "$PIDFILE" ]; then
    log "no $PIDFILE (nothing to stop)"
    exit 0
fi
pid="$(cat "$PIDFILE" 2>/dev/null || true)"

# Alive (not a zombie) and running this DATADIR's registry?
is_our_registry() {
    local state cmd
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [ "$state" != Z ] && [ "$state" != X ] || return 1
    cmd="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [ "$(printf '%s\n' "$cmd" | sed -n 1p)" = /usr/bin/docker-registry ] &&
    [ "$(printf '%s\n' "$cmd" | sed -n 2p)" = serve ] &&
    [ "$(printf '%s\n' "$cmd" | sed -n 3p)" = "$CONFIG" ]
}

if ! is_our_registry; then
    log "pid '$pid' from $PIDFILE is not running this registry (already stopped); removing the PID file"
    rm -f "$PIDFILE"
    exit 0
fi

kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    is_our_registry || break
    sleep 0.1
done
if is_our_registry; then
    log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        is_our_registry || break
        sleep 0.1
    done
fi
if is_our_registry; then
    log "ERROR: pid $pid is still running"
    exit 1
fi
rm -f "$PIDFILE"
log "stopped docker-registry pid $pid"
