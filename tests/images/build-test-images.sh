#!/usr/bin/env bash
# tests/images/build-test-images.sh OUTDIR
#
# The test images of boxd's tests (target/fixtures in the README's test command).
# Builds small, deterministic container-image fixtures for boxd from Debian's
# busybox-static package (statically linked /bin/busybox), with Debian's umoci
# (OCI layouts, image configs) and skopeo (docker-archive conversion).
#
# Produces in OUTDIR (see tests/images/README.md for details):
#   busybox-rootfs.tar.gz        plain rootfs tarball (what `docker import` takes)
#   busybox-oci/                 OCI image layout, tag "latest", 1 layer
#   busybox-docker-archive.tar   `docker save` format, RepoTags docker.io/test/busybox:latest
#   layered-oci/                 OCI image layout, tag "latest", 2 layers (whiteouts)
#   layered-docker-archive.tar   `docker save` format, RepoTags docker.io/test/layered:latest
#   layered-top-layer.tar        the 2nd layer of "layered" alone, uncompressed
#   multiarch-oci/               OCI layout whose tag "latest" is an image INDEX
#                                (linux/amd64 = busybox, linux/arm64 = FAKE)
#   evil-rootfs.tar              hostile tarball (path traversal, symlink escape)
#   evil-oci/                    OCI layout whose only layer is evil-rootfs.tar
#   digests.json                 every digest/size above, for tests to assert on
#
# Idempotent: every run rebuilds into a scratch directory inside OUTDIR and then
# replaces exactly the outputs listed above (nothing else in OUTDIR is touched;
# OUTDIR/.build.lock serialises concurrent runs on the same OUTDIR).
# With the same Debian package versions the output is byte-for-byte identical
# (fixed timestamps; override with SOURCE_DATE_EPOCH).
set -Eeuo pipefail
trap 'echo "[build-test-images] ERROR: unexpected failure at line $LINENO: $BASH_COMMAND" >&2' ERR

usage() { echo "usage: $0 OUTDIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
[ -n "$1" ] || usage

log() { printf '[build-test-images] %s\n' "$*" >&2; }
die() { printf '[build-test-images] ERROR: %s\n' "$*" >&2; exit 1; }

# Fixed timestamp for every file, layer and config: 2024-01-01T00:00:00Z.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1704067200}"
case "$SOURCE_DATE_EPOCH" in ''|*[!0-9]*) die "SOURCE_DATE_EPOCH must be an integer";; esac
export SOURCE_DATE_EPOCH
CREATED="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
export LC_ALL=C TZ=UTC
umask 022

# --------------------------------------------------------------------------
# Tools (Debian packages), installed quietly and only when missing.
# --------------------------------------------------------------------------
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing packages: $* (run as root, or apt-get install them first)"
    local aptlog opts
    aptlog="$(mktemp)"
    opts=(-y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
    log "apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" >"$aptlog" 2>&1; then
        # Package lists may be missing or stale: refresh once and retry.
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout=600 &&
               DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@"; } >>"$aptlog" 2>&1; then
            tail -n 30 "$aptlog" >&2
            rm -f "$aptlog"
            die "apt-get install $* failed"
        fi
    fi
    rm -f "$aptlog"
}

pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
pkg_installed busybox-static || missing+=(busybox-static)
command -v umoci   >/dev/null 2>&1 || missing+=(umoci)
command -v skopeo  >/dev/null 2>&1 || missing+=(skopeo)
[ -x /usr/bin/python3 ]           || missing+=(python3)
command -v gzip    >/dev/null 2>&1 || missing+=(gzip)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
PY=/usr/bin/python3   # Debian's python3 (not whatever python3 is first on PATH)

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found after installing busybox-static"
BUSYBOX_VERSION="$(dpkg-query -W -f='${Version}' busybox-static)"
UMOCI_VERSION="$(dpkg-query -W -f='${Version}' umoci 2>/dev/null || umoci --version)"
SKOPEO_VERSION="$(dpkg-query -W -f='${Version}' skopeo 2>/dev/null || skopeo --version)"

# The image must not need a dynamic loader: refuse a non-static busybox.
"$PY" - "$BUSYBOX" <<'PY' || die "$BUSYBOX is not a statically linked ELF (is the 'busybox' package installed instead of 'busybox-static'?)"
import struct, sys
with open(sys.argv[1], 'rb') as f:
    data = f.read()
if data[:4] != b'\x7fELF':
    sys.exit(1)
end = '<' if data[5] == 1 else '>'
if data[4] == 2:                                   # ELF64
    phoff, = struct.unpack_from(end + 'Q', data, 0x20)
    phentsize, phnum = struct.unpack_from(end + 'HH', data, 0x36)
else:                                              # ELF32
    phoff, = struct.unpack_from(end + 'I', data, 0x1C)
    phentsize, phnum = struct.unpack_from(end + 'HH', data, 0x2A)
for i in range(phnum):
    p_type, = struct.unpack_from(end + 'I', data, phoff + i * phentsize)
    if p_type == 3:                                # PT_INTERP => dynamically linked
        sys.exit(1)
PY

# Debian architecture name -> OCI/Go architecture name.
case "$(dpkg --print-architecture)" in
    i386) ARCH=386 ;;
    armhf|armel) ARCH=arm ;;
    ppc64el) ARCH=ppc64le ;;
    *) ARCH="$(dpkg --print-architecture)" ;;
esac
# The multi-arch index pairs the real image with a fake one for "the other" arch.
if [ "$ARCH" = arm64 ]; then FAKE_ARCH=amd64; else FAKE_ARCH=arm64; fi

# --------------------------------------------------------------------------
# Scratch space inside OUTDIR (same filesystem => cheap final renames).
# --------------------------------------------------------------------------
OUTDIR="$1"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd -P)"
# One build per OUTDIR at a time (parallel test runners may call this).
exec 9>"$OUTDIR/.build.lock"
flock 9
WORK="$(mktemp -d "$OUTDIR/.build.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
STAGE="$WORK/out"
mkdir -p "$STAGE"

umoci_() { umoci --log=error "$@"; }
skopeo_() { skopeo --insecure-policy "$@"; }

# --------------------------------------------------------------------------
# 1. The busybox rootfs (staged as a real directory, then tarred).
# --------------------------------------------------------------------------
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{bin,dev,etc,proc,root,sys,tmp}
chmod 0700 "$ROOTFS/root"
chmod 1777 "$ROOTFS/tmp"
install -m 0755 "$BUSYBOX" "$ROOTFS/bin/busybox"

applets="$("$BUSYBOX" --list | LC_ALL=C sort -u)"
for a in $applets; do
    case "$a" in busybox|*/*|'') continue ;; esac
    ln -s busybox "$ROOTFS/bin/$a"
done
for a in sh ls cat sleep echo true false id ps mount dd head env kill mkdir rm touch; do
    [ -L "$ROOTFS/bin/$a" ] || die "busybox $BUSYBOX_VERSION lacks the required applet '$a'"
done
for a in wget nc; do
    [ -L "$ROOTFS/bin/$a" ] || log "note: busybox has no '$a' applet; image will not have it"
done

cat >"$ROOTFS/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOTFS/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
# Fixture files that the 2nd layer of "layered" deletes (see layer 2 below).
printf 'boxd busybox test image\n' >"$ROOTFS/etc/motd"
mkdir -p "$ROOTFS/etc/fixture.d"
printf 'a=1\n' >"$ROOTFS/etc/fixture.d/a.conf"
printf 'b=2\n' >"$ROOTFS/etc/fixture.d/b.conf"

# Deterministic tar writer: sorted entries (parents first), numeric owner 0:0
# (unless a spec says otherwise), fixed mtime, no user/group names, no pax
# headers for short names.  Entries have no leading "./" (like layers that
# docker/buildkit produce).  Also used for the 2nd layer and the evil tarball.
cat >"$WORK/mktar.py" <<'PY'
import io, json, os, stat, sys, tarfile

MTIME = int(os.environ["SOURCE_DATE_EPOCH"])
DIR_MODES = {"tmp/": 0o1777, "root/": 0o700}

def norm(ti, uid=0, gid=0):
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.mtime = MTIME
    ti.pax_headers = {}
    return ti

def from_dir(root, out):
    paths = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            paths.append(os.path.relpath(os.path.join(d, n), root))
    paths.sort(key=lambda p: p.split(os.sep))
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in paths:
            full = os.path.join(root, p)
            ti = norm(tf.gettarinfo(full, arcname=p.replace(os.sep, "/")))
            # Modes are set here, not taken from the staging dir (umask, setgid
            # parents or default ACLs there must not change the digests).
            if ti.isdir():
                ti.name = ti.name.rstrip("/") + "/"
                ti.mode = DIR_MODES.get(ti.name, 0o755)
            elif ti.isreg():
                ti.mode = 0o755 if ti.mode & 0o100 else 0o644
            elif ti.issym():
                ti.mode = 0o777
            if ti.isreg():
                with open(full, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)

def from_spec(spec, out):
    """spec: list of dicts {name, type: file|dir|symlink|hardlink, mode, data, target, uid, gid}"""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for e in spec:
            ti = tarfile.TarInfo(e["name"])
            norm(ti, e.get("uid", 0), e.get("gid", 0))
            t = e["type"]
            if t == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, e.get("mode", 0o755)
                tf.addfile(ti)
            elif t == "symlink":
                ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o777, e["target"]
                tf.addfile(ti)
            elif t == "hardlink":
                ti.type, ti.mode, ti.linkname = tarfile.LNKTYPE, e.get("mode", 0o644), e["target"]
                tf.addfile(ti)
            else:
                data = e.get("data", "").encode()
                ti.type, ti.mode, ti.size = tarfile.REGTYPE, e.get("mode", 0o644), len(data)
                tf.addfile(ti, io.BytesIO(data))

if __name__ == "__main__":
    if sys.argv[1] == "dir":
        from_dir(sys.argv[2], sys.argv[3])
    else:
        with open(sys.argv[2]) as f:
            from_spec(json.load(f), sys.argv[3])
PY

"$PY" "$WORK/mktar.py" dir "$ROOTFS" "$WORK/busybox-rootfs.tar"
gzip -n -9 -c "$WORK/busybox-rootfs.tar" >"$STAGE/busybox-rootfs.tar.gz"

# --------------------------------------------------------------------------
# 2. busybox-oci: umoci builds manifest + config; the layer is the tar above.
# --------------------------------------------------------------------------
PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
hist=(--history.created "$CREATED" --history.author "boxd test fixtures")

BB="$STAGE/busybox-oci"
umoci_ init --layout "$BB"
umoci_ new --image "$BB:latest"
umoci_ raw add-layer --image "$BB:latest" "${hist[@]}" \
    --history.created_by "busybox-static $BUSYBOX_VERSION rootfs (build-test-images.sh)" \
    "$WORK/busybox-rootfs.tar"
umoci_ config --image "$BB:latest" --no-history \
    --created "$CREATED" --author "boxd test fixtures" \
    --os linux --architecture "$ARCH" \
    --config.env "$PATH_ENV" \
    --config.cmd /bin/sh \
    --config.workingdir / \
    --config.label "org.opencontainers.image.title=boxd-test-busybox" \
    --config.label "org.opencontainers.image.description=busybox-static rootfs for boxd tests" \
    --config.label "org.boxd.test.busybox-version=$BUSYBOX_VERSION" \
    --manifest.annotation "org.opencontainers.image.title=boxd-test-busybox"
umoci_ gc --layout "$BB"

# --------------------------------------------------------------------------
# 3. layered-oci: busybox layer + a 2nd layer with an added file and whiteouts.
# --------------------------------------------------------------------------
cat >"$WORK/layer2.json" <<'EOF'
[
  {"name": "etc/",                       "type": "dir",  "mode": 493},
  {"name": "etc/.wh.motd",               "type": "file", "mode": 420, "data": ""},
  {"name": "etc/fixture.d/",             "type": "dir",  "mode": 493},
  {"name": "etc/fixture.d/.wh..wh..opq", "type": "file", "mode": 420, "data": ""},
  {"name": "etc/fixture.d/c.conf",       "type": "file", "mode": 420, "data": "c=3\n"},
  {"name": "hello.txt",                  "type": "file", "mode": 420, "data": "hello from layer 2\n"}
]
EOF
"$PY" "$WORK/mktar.py" spec "$WORK/layer2.json" "$STAGE/layered-top-layer.tar"

LY="$STAGE/layered-oci"
cp -a "$BB" "$LY"
umoci_ raw add-layer --image "$LY:latest" "${hist[@]}" \
    --history.created_by "add /hello.txt, etc/fixture.d/c.conf; whiteout /etc/motd; opaque /etc/fixture.d" \
    "$STAGE/layered-top-layer.tar"
umoci_ config --image "$LY:latest" --no-history \
    --created "$CREATED" \
    --config.env "GREETING=hello-from-layered" \
    --config.entrypoint /bin/cat \
    --config.cmd /hello.txt \
    --config.label "org.opencontainers.image.title=boxd-test-layered" \
    --config.label "org.opencontainers.image.description=busybox + layer adding /hello.txt with whiteouts" \
    --manifest.annotation "org.opencontainers.image.title=boxd-test-layered"
umoci_ gc --layout "$LY"

# --------------------------------------------------------------------------
# 4. docker-archive forms (what `docker save` writes), converted by skopeo.
# --------------------------------------------------------------------------
skopeo_ copy -q "oci:$BB:latest" "docker-archive:$STAGE/busybox-docker-archive.tar:test/busybox:latest"
skopeo_ copy -q "oci:$LY:latest" "docker-archive:$STAGE/layered-docker-archive.tar:test/layered:latest"

# --------------------------------------------------------------------------
# 5. multiarch-oci: tag "latest" -> OCI image index with two platforms.
#    The FAKE_ARCH entry reuses the same (native) busybox layer with a config
#    that claims FAKE_ARCH: it is only for platform-selection tests and will
#    not run on a real FAKE_ARCH machine.  umoci/skopeo cannot create an index,
#    so only the index blob itself is written here (digests computed, not typed).
# --------------------------------------------------------------------------
MA="$STAGE/multiarch-oci"
cp -a "$BB" "$MA"
umoci_ tag --image "$MA:latest" "$ARCH"
umoci_ config --image "$MA:latest" --tag "$FAKE_ARCH" --no-history \
    --architecture "$FAKE_ARCH" \
    --config.label "org.boxd.test.fake-platform=linux/$FAKE_ARCH (binaries are $ARCH)"
umoci_ rm --image "$MA:latest"
umoci_ gc --layout "$MA"
"$PY" - "$MA" "$ARCH" "$FAKE_ARCH" <<'PY'
import hashlib, json, os, sys
layout, native, fake = sys.argv[1:4]
def blob(d):
    return os.path.join(layout, "blobs", d.replace(":", "/", 1))
idx = json.load(open(os.path.join(layout, "index.json")))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
manifests = []
for tag in (native, fake):
    d = by_tag[tag]
    cfgdesc = json.load(open(blob(d["digest"])))["config"]
    cfg = json.load(open(blob(cfgdesc["digest"])))
    plat = {"architecture": cfg["architecture"], "os": cfg["os"]}
    manifests.append({"mediaType": d["mediaType"], "digest": d["digest"],
                      "size": d["size"], "platform": plat})
index = {"schemaVersion": 2,
         "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": manifests,
         "annotations": {"org.opencontainers.image.title": "boxd-test-multiarch"}}
raw = json.dumps(index, separators=(",", ":"), sort_keys=True).encode()
dg = "sha256:" + hashlib.sha256(raw).hexdigest()
with open(blob(dg), "wb") as f:
    f.write(raw)
top = {"schemaVersion": 2,
       "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                      "digest": dg, "size": len(raw),
                      "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump(top, f, separators=(",", ":"))
PY
# Sanity: skopeo must be able to read the index and pick the native image.
skopeo_ inspect --raw "oci:$MA:latest" | grep -q 'application/vnd.oci.image.index.v1+json' \
    || die "multiarch-oci: skopeo does not see an index"
skopeo_ inspect "oci:$MA:latest" >/dev/null || die "multiarch-oci: skopeo cannot resolve the native image"

# --------------------------------------------------------------------------
# 6. evil-rootfs.tar: entries that a safe importer must refuse or contain.
#    Every payload aims at /tmp only, so a broken importer does no real harm.
# --------------------------------------------------------------------------
cat >"$WORK/evil.json" <<'EOF'
[
  {"name": "ok.txt",                          "type": "file",     "data": "benign entry\n"},
  {"name": "../../tmp/pwned",                 "type": "file",     "data": "pwned: ../../tmp/pwned (relative path traversal)\n"},
  {"name": "/abs/path",                       "type": "file",     "data": "pwned: /abs/path (absolute path)\n"},
  {"name": "escape",                          "type": "symlink",  "target": "/"},
  {"name": "escape/tmp/pwned-via-symlink",    "type": "file",     "data": "pwned: written through symlink escape -> /\n"},
  {"name": "relescape",                       "type": "symlink",  "target": "../../../../../../../../.."},
  {"name": "relescape/tmp/pwned-via-relsymlink", "type": "file",  "data": "pwned: written through symlink relescape -> ../../..\n"},
  {"name": "hardlink-escape",                 "type": "hardlink", "target": "/tmp/boxd-evil-hardlink-target"}
]
EOF
"$PY" "$WORK/mktar.py" spec "$WORK/evil.json" "$STAGE/evil-rootfs.tar"

# The same hostile tarball as the only layer of an OCI image, so that the
# pull path (registry -> layer apply) can be tested against it as well.
EV="$STAGE/evil-oci"
umoci_ init --layout "$EV"
umoci_ new --image "$EV:latest"
umoci_ raw add-layer --image "$EV:latest" "${hist[@]}" \
    --history.created_by "evil-rootfs.tar (path traversal, symlink escape)" \
    "$STAGE/evil-rootfs.tar"
umoci_ config --image "$EV:latest" --no-history \
    --created "$CREATED" --author "boxd test fixtures" \
    --os linux --architecture "$ARCH" \
    --config.env "$PATH_ENV" \
    --config.cmd /bin/sh \
    --config.label "org.opencontainers.image.title=boxd-test-evil" \
    --config.label "org.opencontainers.image.description=hostile layer: a safe importer must refuse or contain it"
umoci_ gc --layout "$EV"

# --------------------------------------------------------------------------
# 7. digests.json: what tests can assert on.
# --------------------------------------------------------------------------
"$PY" - "$STAGE" "$BUSYBOX_VERSION" "$UMOCI_VERSION" "$SKOPEO_VERSION" "$CREATED" <<'PY'
import gzip, hashlib, json, os, sys, tarfile
stage, bbv, umv, skv, created = sys.argv[1:6]
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
def layout_info(name):
    root = os.path.join(stage, name)
    blob = lambda d: os.path.join(root, "blobs", d.replace(":", "/", 1))
    out = {}
    for ref in json.load(open(os.path.join(root, "index.json")))["manifests"]:
        tag = ref["annotations"]["org.opencontainers.image.ref.name"]
        def image(desc):
            m = json.load(open(blob(desc["digest"])))
            cfg = json.load(open(blob(m["config"]["digest"])))
            return {"manifest": desc["digest"], "manifest_size": desc["size"],
                    "manifest_media_type": desc["mediaType"],
                    "config": m["config"]["digest"], "config_size": m["config"]["size"],
                    "platform": cfg["os"] + "/" + cfg["architecture"],
                    "layers": [{"digest": l["digest"], "size": l["size"], "media_type": l["mediaType"]}
                               for l in m["layers"]],
                    "diff_ids": cfg["rootfs"]["diff_ids"]}
        if ref["mediaType"].endswith("index.v1+json"):
            ix = json.load(open(blob(ref["digest"])))
            out[tag] = {"index": ref["digest"], "index_size": ref["size"],
                        "index_media_type": ref["mediaType"],
                        "images": [dict(image(d), platform_in_index=d["platform"]) for d in ix["manifests"]]}
        else:
            out[tag] = image(ref)
    return out
def archive_info(name):
    p = os.path.join(stage, name)
    with tarfile.open(p) as tf:
        mf = json.load(tf.extractfile("manifest.json"))
    return {"sha256": sha(p), "size": os.path.getsize(p), "manifest.json": mf}
rootfs = os.path.join(stage, "busybox-rootfs.tar.gz")
with gzip.open(rootfs) as g:
    h = hashlib.sha256()
    for chunk in iter(lambda: g.read(1 << 20), b""):
        h.update(chunk)
info = {
    "generated_with": {"busybox-static": bbv, "umoci": umv, "skopeo": skv, "created": created},
    "busybox-rootfs.tar.gz": {"sha256": sha(rootfs), "size": os.path.getsize(rootfs),
                              "uncompressed_sha256": "sha256:" + h.hexdigest()},
    "busybox-oci": layout_info("busybox-oci"),
    "layered-oci": layout_info("layered-oci"),
    "multiarch-oci": layout_info("multiarch-oci"),
    "evil-oci": layout_info("evil-oci"),
    "busybox-docker-archive.tar": archive_info("busybox-docker-archive.tar"),
    "layered-docker-archive.tar": archive_info("layered-docker-archive.tar"),
    "layered-top-layer.tar": {"sha256": sha(os.path.join(stage, "layered-top-layer.tar"))},
    "evil-rootfs.tar": {"sha256": sha(os.path.join(stage, "evil-rootfs.tar"))},
}
with open(os.path.join(stage, "digests.json"), "w") as f:
    json.dump(info, f, indent=2, sort_keys=True)
    f.write("\n")
PY

# --------------------------------------------------------------------------
# 8. Replace the outputs in OUTDIR (only these names are ever touched).
# --------------------------------------------------------------------------
OUTPUTS=(busybox-rootfs.tar.gz busybox-oci busybox-docker-archive.tar
         layered-oci layered-docker-archive.tar layered-top-layer.tar
         multiarch-oci evil-rootfs.tar evil-oci digests.json)
for o in "${OUTPUTS[@]}"; do
    rm -rf "${OUTDIR:?}/$o"
    mv -T "$STAGE/$o" "$OUTDIR/$o"
done

log "done: $OUTDIR"
"$PY" - "$OUTDIR/digests.json" <<'PY' >&2
import json, sys
d = json.load(open(sys.argv[1]))
print("  busybox-oci:latest    manifest", d["busybox-oci"]["latest"]["manifest"])
print("  layered-oci:latest    manifest", d["layered-oci"]["latest"]["manifest"])
print("  multiarch-oci:latest  index   ", d["multiarch-oci"]["latest"]["index"])
print("  busybox-rootfs.tar.gz         ", d["busybox-rootfs.tar.gz"]["sha256"])
PY
