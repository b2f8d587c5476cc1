#!/usr/bin/env bash
# tests/images/start-registry.sh DATADIR PORT [IMAGEDIR]
#
# The local registry of boxd's pull tests (tests/lib.rs, `Registry`).
#
# Builds the test images (build-test-images.sh, next to this script) into
# IMAGEDIR (default DATADIR/images); starts Debian's docker-registry (CNCF
# distribution v2) on 127.0.0.1:PORT, plain HTTP, storage under DATADIR/storage,
# in the background; writes its PID to DATADIR/registry.pid; waits until
# GET /v2/ answers; pushes the images with skopeo:
#
#   test/busybox:latest    OCI image manifest          (busybox-oci)
#   test/busybox:v2s2      Docker v2 schema 2 manifest  (busybox-oci, --format v2s2)
#   test/layered:latest    OCI image manifest, 2 layers with whiteouts
#   test/layered:v2s2      Docker v2 schema 2 manifest of the same
#   test/multiarch:latest  OCI image index (linux/amd64 + FAKE linux/arm64)
#   test/multiarch:v2s2    Docker manifest list of the same
#   test/evil:latest       OCI image whose layer is evil-rootfs.tar
#
# then checks every manifest and blob with curl, and writes:
#   DATADIR/registry.pid      PID of docker-registry (stop-registry.sh DATADIR)
#   DATADIR/registry.log      registry log (access log included)
#   DATADIR/config.yml        registry configuration
#   DATADIR/pushed.json       per reference: media type, digest, blobs
#   DATADIR/push.log          skopeo output
# Progress goes to stderr. Stop it with: stop-registry.sh DATADIR
#
# Idempotent: if the registry of this DATADIR is already running with the same
# configuration it is reused (a changed PORT restarts it); pushes are repeated
# and are no-ops for blobs that are already there.
set -Eeuo pipefail
trap 'echo "[start-registry] ERROR: unexpected failure at line $LINENO: $BASH_COMMAND" >&2' ERR

usage() { echo "usage: $0 DATADIR PORT [IMAGEDIR]" >&2; exit 2; }
[ $# -eq 2 ] || [ $# -eq 3 ] || usage
[ -n "$1" ] || usage

log() { printf '[start-registry] %s\n' "$*" >&2; }
die() { printf '[start-registry] ERROR: %s\n' "$*" >&2; exit 1; }

PORT="$2"
case "$PORT" in ''|*[!0-9]*) die "PORT must be a number, got '$PORT'";; esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then die "PORT out of range: $PORT"; fi
export LC_ALL=C

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
T0=$(date +%s.%N)

# --------------------------------------------------------------------------
# Tools (Debian packages), installed quietly and only when missing.
# docker-registry's maintainer script would start the packaged service on
# :5000; a temporary policy-rc.d (only if none exists) prevents that.
# --------------------------------------------------------------------------
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing packages: $* (run as root, or apt-get install them first)"
    local aptlog opts rc=0 made_policy=
    aptlog="$(mktemp)"
    opts=(-y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    log "apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" >"$aptlog" 2>&1; then
        { DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout=600 &&
          DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@"; } >>"$aptlog" 2>&1 || rc=$?
    fi
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
    if [ "$rc" != 0 ]; then
        tail -n 30 "$aptlog" >&2
        rm -f "$aptlog"
        die "apt-get install $* failed"
    fi
    rm -f "$aptlog"
}
missing=()
[ -x /usr/bin/docker-registry ]    || missing+=(docker-registry)
command -v skopeo  >/dev/null 2>&1 || missing+=(skopeo)
command -v curl    >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/python3 ]           || missing+=(python3)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
PY=/usr/bin/python3   # Debian's python3 (not whatever python3 is first on PATH)
T_INST=$(date +%s.%N)
REGISTRY_BIN=/usr/bin/docker-registry
REGISTRY_VERSION="$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null || echo unknown)"

# --------------------------------------------------------------------------
# DATADIR, images
# --------------------------------------------------------------------------
mkdir -p "$1"
DATADIR="$(cd "$1" && pwd -P)"
# (The path is quoted in config.yml and matched against /proc/PID/cmdline.)
# shellcheck disable=SC1003  # '\' is a backslash, not an escaped quote
case "$DATADIR" in *'"'*|*'\'*|*$'\n'*) die "DATADIR must not contain quotes, backslashes or newlines";; esac
IMAGEDIR="${3:-$DATADIR/images}"
# One start-registry.sh per DATADIR at a time.
exec 9>"$DATADIR/.start.lock"
flock 9
PIDFILE="$DATADIR/registry.pid"
CONFIG="$DATADIR/config.yml"
LOGFILE="$DATADIR/registry.log"
BASE="http://127.0.0.1:$PORT"
REG="127.0.0.1:$PORT"

# --------------------------------------------------------------------------
# Registry configuration (the packaged /etc/docker/registry/config.yml is not
# used: it listens on :5000 on all interfaces and enables htpasswd auth).
# --------------------------------------------------------------------------
NEWCONFIG="$(cat <<EOF
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: boxd-test-registry
storage:
  filesystem:
    rootdirectory: "$DATADIR/storage"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PORT
  secret: boxd-test-registry-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
)"

# Is PID the docker-registry serving this DATADIR's config (and not a zombie)?
is_our_registry() {
    local pid="$1" state cmd
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/stat" ] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [ "$state" != Z ] && [ "$state" != X ] || return 1
    cmd="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [ "$(printf '%s\n' "$cmd" | sed -n 1p)" = "$REGISTRY_BIN" ] &&
    [ "$(printf '%s\n' "$cmd" | sed -n 2p)" = serve ] &&
    [ "$(printf '%s\n' "$cmd" | sed -n 3p)" = "$CONFIG" ]
}

alive() { # PID exists and is not a zombie
    local state
    [ -r "/proc/$1/stat" ] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ "$state" != Z ] && [ "$state" != X ]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running=
if [ -f "$PIDFILE" ]; then
    oldpid="$(cat "$PIDFILE" 2>/dev/null || true)"
    if is_our_registry "$oldpid"; then
        if [ -f "$CONFIG" ] && [ "$(cat "$CONFIG")" = "$NEWCONFIG" ]; then
            running="$oldpid"
            log "registry already running (pid $oldpid) with the same configuration; reusing it"
        else
            log "registry of $DATADIR runs with another configuration (pid $oldpid); restarting it"
            "$SCRIPT_DIR/stop-registry.sh" "$DATADIR"
        fi
    else
        log "removing stale $PIDFILE"
        rm -f "$PIDFILE"
    fi
fi

# Fail early (before building anything) when the port is taken by someone else.
if [ -z "$running" ] && port_busy; then
    die "127.0.0.1:$PORT is already in use by another process"
fi

mkdir -p "$IMAGEDIR"
IMAGEDIR="$(cd "$IMAGEDIR" && pwd -P)"
"$SCRIPT_DIR/build-test-images.sh" "$IMAGEDIR"
T_BUILD=$(date +%s.%N)

if [ -z "$running" ]; then
    port_busy && die "127.0.0.1:$PORT is already in use by another process"
    printf '%s\n' "$NEWCONFIG" >"$CONFIG"
    mkdir -p "$DATADIR/storage"
    printf '\n==== %s start-registry.sh: starting on 127.0.0.1:%s\n' "$(date -u +%FT%TZ)" "$PORT" >>"$LOGFILE"
    # In the background subshell: close every inherited fd above 2 (our lock, a
    # caller's pipes: a caller reading our output must not wait for the registry),
    # then exec: setsid (own session: the caller's terminal and process-group
    # signals do not reach it), env -i (REGISTRY_* variables of the caller cannot
    # override the config). Nothing forks after the subshell, so $! is the
    # registry's own PID.
    (
        for fd in /proc/self/fd/*; do
            fd="${fd##*/}"
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
        done
        exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/ \
            setsid "$REGISTRY_BIN" serve "$CONFIG"
    ) </dev/null >>"$LOGFILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    log "started docker-registry $REGISTRY_VERSION, pid $pid, 127.0.0.1:$PORT"
    running="$pid"
fi

# Wait for GET /v2/ (at most 30 s).
for _ in $(seq 1 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v2/" 2>/dev/null)" = 200 ]; then
        break
    fi
    if ! alive "$running"; then   # (its cmdline may still be env/setsid right after the start)
        tail -n 20 "$LOGFILE" >&2
        rm -f "$PIDFILE"
        die "docker-registry exited during startup (log: $LOGFILE)"
    fi
    sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v2/")" = 200 ] || die "no answer from $BASE/v2/ after 30 s"
is_our_registry "$running" || die "pid $running in $PIDFILE is not '$REGISTRY_BIN serve $CONFIG'"
T_UP=$(date +%s.%N)
log "GET $BASE/v2/ -> 200"

# --------------------------------------------------------------------------
# Push with skopeo (plain HTTP: --dest-tls-verify=false).
# --------------------------------------------------------------------------
PUSHLOG="$DATADIR/push.log"
: >"$PUSHLOG"
push() { # SRC DEST [skopeo copy options...]
    local src="$1" dst="$2"; shift 2
    if ! skopeo --insecure-policy copy --dest-tls-verify=false "$@" "$src" "docker://$REG/$dst" >>"$PUSHLOG" 2>&1; then
        tail -n 20 "$PUSHLOG" >&2
        die "skopeo copy $* $src -> $dst failed"
    fi
    log "pushed $dst"
}
push "oci:$IMAGEDIR/busybox-oci:latest"   test/busybox:latest   --preserve-digests
push "oci:$IMAGEDIR/busybox-oci:latest"   test/busybox:v2s2     --format v2s2
push "oci:$IMAGEDIR/layered-oci:latest"   test/layered:latest   --preserve-digests
push "oci:$IMAGEDIR/layered-oci:latest"   test/layered:v2s2     --format v2s2
push "oci:$IMAGEDIR/multiarch-oci:latest" test/multiarch:latest --all --preserve-digests
push "oci:$IMAGEDIR/multiarch-oci:latest" test/multiarch:v2s2   --all --format v2s2
push "oci:$IMAGEDIR/evil-oci:latest"      test/evil:latest      --preserve-digests
T_PUSH=$(date +%s.%N)

# --------------------------------------------------------------------------
# Verify with curl: manifests (Accept headers), config and layer blobs.
# --------------------------------------------------------------------------
OCI_INDEX=application/vnd.oci.image.index.v1+json
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json
DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
ACCEPT_ALL="$OCI_INDEX, $OCI_MANIFEST, $DOCKER_LIST, $DOCKER_MANIFEST"

V="$(mktemp -d "$DATADIR/.verify.XXXXXX")"
trap 'rm -rf "$V"' EXIT
RESULTS="$V/results.tsv"
: >"$RESULTS"

hdr() { { grep -i "^$1:" "$2" || true; } | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# get_manifest REPO REF ACCEPT -> sets M_CODE M_TYPE M_DIGEST M_BODY
get_manifest() {
    M_BODY="$V/body.$RANDOM"
    local h="$V/hdr.$RANDOM"
    local args=(-s -o "$M_BODY" -D "$h" -w '%{http_code}')
    [ -z "$3" ] || args+=(-H "Accept: $3")
    M_CODE="$(curl "${args[@]}" "$BASE/v2/$1/manifests/$2")"
    M_TYPE="$(hdr Content-Type "$h")"
    M_DIGEST="$(hdr Docker-Content-Digest "$h")"
}

declare -A BLOB_SEEN=()
check_blob() { # REPO DIGEST WHAT
    local f="$V/blob" code ct
    if [ -n "${BLOB_SEEN[$1@$2]:-}" ]; then   # fetched already: only record the reference
        printf '%s\t%s\t%s\t%s\t%s\n' blob "$1" "$2" "$3" "${BLOB_SEEN[$1@$2]}" >>"$RESULTS"
        return 0
    fi
    code="$(curl -s -o "$f" -D "$V/blobhdr" -w '%{http_code}' "$BASE/v2/$1/blobs/$2")"
    [ "$code" = 200 ] || die "GET /v2/$1/blobs/$2 ($3) -> $code"
    [ "$(sha "$f")" = "$2" ] || die "GET /v2/$1/blobs/$2 ($3): content does not match digest"
    [ "$(hdr Docker-Content-Digest "$V/blobhdr")" = "$2" ] || die "blob $2: Docker-Content-Digest header mismatch"
    ct="$(hdr Content-Type "$V/blobhdr")"
    BLOB_SEEN[$1@$2]="$(stat -c %s "$f") $ct"
    printf '%s\t%s\t%s\t%s\t%s\n' blob "$1" "$2" "$3" "${BLOB_SEEN[$1@$2]}" >>"$RESULTS"
}

# manifest_refs FILE -> lines "kind digest mediaType"
manifest_refs() {
    "$PY" - "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
if "manifests" in m:
    for d in m["manifests"]:
        print("manifest", d["digest"], d.get("mediaType", ""))
else:
    print("config", m["config"]["digest"], m["config"].get("mediaType", ""))
    for l in m["layers"]:
        print("layer", l["digest"], l.get("mediaType", ""))
PY
}

verify_ref() { # REPO REF EXPECTED_MEDIA_TYPE [EXPECTED_DIGEST]
    local repo="$1" ref="$2" want="$3" wantdg="${4:-}" body kind dg mt
    get_manifest "$repo" "$ref" "$ACCEPT_ALL"
    [ "$M_CODE" = 200 ] || die "GET /v2/$repo/manifests/$ref (Accept: all four types) -> $M_CODE: $(head -c 300 "$M_BODY")"
    [ "$M_TYPE" = "$want" ] || die "$repo:$ref: Content-Type $M_TYPE, expected $want"
    [ "$(sha "$M_BODY")" = "$M_DIGEST" ] || die "$repo:$ref: body does not match Docker-Content-Digest $M_DIGEST"
    [ -z "$wantdg" ] || [ "$M_DIGEST" = "$wantdg" ] || die "$repo:$ref: digest $M_DIGEST, expected $wantdg"
    body="$M_BODY"; dg="$M_DIGEST"
    # The same manifest with only its own media type accepted, and by digest (HEAD).
    get_manifest "$repo" "$ref" "$want"
    if [ "$M_CODE" != 200 ] || [ "$M_DIGEST" != "$dg" ]; then
        die "$repo:$ref with 'Accept: $want' -> $M_CODE"
    fi
    [ "$(curl -s -o /dev/null -w '%{http_code}' -I -H "Accept: $want" "$BASE/v2/$repo/manifests/$dg")" = 200 ] \
        || die "HEAD /v2/$repo/manifests/$dg failed"
    printf '%s\t%s\t%s\t%s\t%s\n' manifest "$repo" "$ref" "$dg" "$want" >>"$RESULTS"
    while read -r kind d mt; do
        case "$kind" in
            manifest) verify_ref "$repo" "$d" "$mt" "$d" ;;
            *) check_blob "$repo" "$d" "$kind $mt" ;;
        esac
    done < <(manifest_refs "$body")
}

DG="$IMAGEDIR/digests.json"
jget() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: d=d[k]
print(d)' "$DG" "$@"; }

verify_ref test/busybox   latest "$OCI_MANIFEST"    "$(jget busybox-oci latest manifest)"
verify_ref test/busybox   v2s2   "$DOCKER_MANIFEST"
verify_ref test/layered   latest "$OCI_MANIFEST"    "$(jget layered-oci latest manifest)"
verify_ref test/layered   v2s2   "$DOCKER_MANIFEST"
verify_ref test/multiarch latest "$OCI_INDEX"       "$(jget multiarch-oci latest index)"
verify_ref test/multiarch v2s2   "$DOCKER_LIST"
verify_ref test/evil      latest "$OCI_MANIFEST"    "$(jget evil-oci latest manifest)"
log "verified all manifests and blobs with curl"

"$PY" - "$RESULTS" "$DATADIR/pushed.json" "$REG" "$REGISTRY_VERSION" <<'PY'
import json, sys
res, out, reg, ver = sys.argv[1:5]
refs, manifests, blobs = {}, {}, {}
for line in open(res):
    kind, repo, a, b, c = line.rstrip("\n").split("\t")
    if kind == "manifest":
        manifests.setdefault(repo, {})[b] = c
        if not a.startswith("sha256:"):
            refs[f"{repo}:{a}"] = {"digest": b, "media_type": c}
    else:
        size, _, ct = c.partition(" ")
        e = blobs.setdefault(repo, {}).setdefault(a, {"size": int(size), "content_type": ct,
                                                      "referenced_as": []})
        if b not in e["referenced_as"]:
            e["referenced_as"] = sorted(e["referenced_as"] + [b])
json.dump({"registry": reg, "docker_registry_version": ver, "references": refs,
           "manifests": manifests, "blobs": blobs},
          open(out, "w"), indent=2, sort_keys=True)
open(out, "a").write("\n")
PY
T_END=$(date +%s.%N)

timing() { "$PY" -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
log "registry: $BASE  pid $(cat "$PIDFILE")  (stop with: $SCRIPT_DIR/stop-registry.sh $DATADIR)"
"$PY" - "$DATADIR/pushed.json" <<'PY' >&2
import json, sys
d = json.load(open(sys.argv[1]))
for ref, v in sorted(d["references"].items()):
    print(f"  {ref:24} {v['media_type']:56} {v['digest']}")
PY
log "timing: installs $(timing "$T0" "$T_INST")s, build $(timing "$T_INST" "$T_BUILD")s, registry up $(timing "$T_BUILD" "$T_UP")s, push $(timing "$T_UP" "$T_PUSH")s, verify $(timing "$T_PUSH" "$T_END")s, total $(timing "$T0" "$T_END")s"
