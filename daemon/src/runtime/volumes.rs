//! Named volumes, as Docker's `local` driver: create, list, remove, prune, and their use
//! by containers (resolution at create, copy-up and mounting at start).
//!
//! A volume is a row in `volumes` plus `<root>/volumes/<name>/_data`:
//!
//! - plain: `_data` is a directory;
//! - sized (`size` option): `_data` is the mount point of `disk.img` beside it, an ext4
//!   image made by [`disk::ensure_image`] and loop-mounted on the host by the daemon
//!   (`mount -o loop`, which sets `LO_FLAGS_AUTOCLEAR`, so unmounting frees the loop
//!   device; loop(4)). Unlike a container's disk limit it is shared between containers,
//!   so it cannot live in one container's mount namespace;
//! - bind-style (`type=none,o=bind,device=/path`): the host directory is used in place
//!   of `_data` and boxd never removes what is in it.
//!
//! Crash safety (kill -9 at any line): the row is inserted before anything is made, and
//! the start-up reconcile (`Runtime::reconcile_volumes`) makes whatever a row lacks
//! (directory, image, mount) and removes volume directories no row owns, unmounting
//! first. Removal unmounts, then deletes the row, then the directory, so a crash leaves
//! either a complete volume or an unowned directory. Copy-up records "under way" in the
//! row before it copies, so a crash during it repeats it at the next start rather than
//! leaving half of the image's files for good.
//!
//! Every change to the set of volumes, and the container creates that name them, run
//! under one lock (`Inner::volumes_lock`), so a volume cannot be removed between the
//! in-use check and the insert of a container row that uses it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::Rng;

use super::disk::{self, DiskError};
use super::spec::{Container, ContainerConfig, IdMapping, Mount, MountKind, UsernsConfig};
use super::{Runtime, RuntimeError};

/// The only driver.
pub const LOCAL_DRIVER: &str = "local";
/// The data directory inside a volume's directory (Docker's name).
pub const DATA_DIR: &str = "_data";

/// Whether a volume's image content was copied in (the `populated` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Populated {
    /// Never mounted: the first mount copies the image's content in if it is empty.
    Fresh,
    /// A copy-up started and did not finish (a crash): the next start repeats it.
    Copying,
    /// Mounted before: never copied into again, even when empty (Docker's rule).
    Done,
}

impl Populated {
    /// The column value.
    pub fn as_i64(self) -> i64 {
        match self {
            Populated::Fresh => 0,
            Populated::Copying => 1,
            Populated::Done => 2,
        }
    }

    /// From the column value (unknown values read as done: never copy twice).
    pub fn from_i64(v: i64) -> Self {
        match v {
            0 => Populated::Fresh,
            1 => Populated::Copying,
            _ => Populated::Done,
        }
    }
}

/// A volume as the engine knows it (the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Unique name.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// The driver options as given.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Made without a name for one container.
    pub anonymous: bool,
    /// Size of its ext4 image (`None`: a plain directory).
    pub size_bytes: Option<u64>,
    /// A host directory used in place of `_data`.
    pub device: Option<String>,
    /// Copy-up state.
    pub populated: Populated,
}

/// What to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Name; a random 64-hex one when absent (anonymous).
    pub name: Option<String>,
    /// Driver (`local` when absent).
    pub driver: Option<String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A volume with what is known about it beyond its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// The row.
    pub volume: Volume,
    /// Where its data is on the host.
    pub mountpoint: PathBuf,
    /// Ids of the containers (any state) configured with it.
    pub containers: Vec<String>,
}

/// The answer of a prune.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Names of the volumes removed.
    pub deleted: Vec<String>,
    /// Bytes freed on disk.
    pub space_reclaimed: u64,
}

/// `GET /v1/volumes` filters (all given must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFilter {
    /// `true`: only volumes no container uses; `false`: only used ones.
    pub dangling: Option<bool>,
    /// Substrings of the name (any matches, as Docker's `name` filter).
    pub names: Vec<String>,
    /// `key` or `key=value` (every one must match).
    pub labels: Vec<String>,
}

impl VolumeFilter {
    /// Whether `v`, used by `in_use` containers or not, passes.
    pub fn matches(&self, v: &Volume, in_use: bool) -> bool {
        if self.dangling.is_some_and(|d| d == in_use) {
            return false;
        }
        if !self.names.is_empty() && !self.names.iter().any(|n| v.name.contains(n.as_str())) {
            return false;
        }
        self.labels.iter().all(|l| match l.split_once('=') {
            Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
            None => v.labels.contains_key(l),
        })
    }
}

/// Failures of making, mounting, filling or removing a volume's files.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The volume's directory could not be made.
    #[error("failed to create volume directory {path}")]
    CreateDir {
        /// The dir.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Its ext4 image could not be made.
    #[error("failed to make the image of volume {name}")]
    Disk {
        /// The volume.
        name: String,
        /// Why.
        #[source]
        source: DiskError,
    },
    /// `mount` could not be run.
    #[error("failed to run mount for {path}")]
    RunMount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `mount` ran and failed.
    #[error("failed to mount volume image on {path}: {stderr}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What it said.
        stderr: String,
    },
    /// Unmounting failed.
    #[error("failed to unmount {path}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// Copying the image's content in failed.
    #[error("failed to copy the image's {target} into volume {name}")]
    CopyUp {
        /// The volume.
        name: String,
        /// The path in the image.
        target: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

// ----- pure rules -----------------------------------------------------------------

/// Docker's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two
/// characters). The reason is for a 400.
pub fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.len() < 2 || !first_ok || !rest_ok {
        return Err(format!(
            "{name:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two characters or more)"
        ));
    }
    Ok(())
}

/// A new anonymous volume's name: 32 random bytes in hex, as Docker's.
pub fn generate_name() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Parses a size as Docker's `--opt size=`: a number with an optional unit `b`, `k`,
/// `m`, `g`, `t` (powers of 1024, any case, with or without a trailing `b`/`ib`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size {s:?} is not a number with an optional unit (100m, 1g)"))?;
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("size {s:?} has an unknown unit (b, k, m, g or t)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// What a volume's options ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// A loop-mounted image of this size.
    pub size_bytes: Option<u64>,
    /// A host directory bound in place of `_data`.
    pub device: Option<String>,
}

/// Checks the driver and its options; the error names the field for a 400.
pub fn plan(driver: &str, options: &BTreeMap<String, String>) -> Result<Plan, RuntimeError> {
    if driver != LOCAL_DRIVER {
        return Err(RuntimeError::invalid(
            "driver",
            format!("{driver:?} is not supported; only \"local\""),
        ));
    }
    let mut plan = Plan::default();
    for key in options.keys() {
        if !matches!(key.as_str(), "size" | "type" | "o" | "device") {
            return Err(RuntimeError::invalid(
                "driver_opts",
                format!("option {key:?} is not supported (size, or type=none,o=bind,device=PATH)"),
            ));
        }
    }
    if let Some(size) = options.get("size") {
        let bytes = parse_size(size).map_err(|r| RuntimeError::invalid("driver_opts", r))?;
        disk::check_limit(bytes).map_err(|_| {
            RuntimeError::invalid(
                "driver_opts",
                format!(
                    "size {size:?} is below the minimum of {} (16m)",
                    disk::MIN_DISK_BYTES
                ),
            )
        })?;
        plan.size_bytes = Some(bytes);
    }
    let (typ, o, device) = (options.get("type"), options.get("o"), options.get("device"));
    if typ.is_some() || o.is_some() || device.is_some() {
        if plan.size_bytes.is_some() {
            return Err(RuntimeError::invalid(
                "driver_opts",
                "option \"size\" cannot be combined with type, o or device",
            ));
        }
        if typ.map(String::as_str) != Some("none") {
            return Err(RuntimeError::invalid(
                "driver_opts",
                format!("option \"type\" {typ:?} is not supported; only type=none with o=bind"),
            ));
        }
        let binds = o.is_some_and(|o| o.split(',').any(|w| w == "bind" || w == "rbind"));
        if !binds || o.is_some_and(|o| o.split(',').any(|w| w != "bind" && w != "rbind")) {
            return Err(RuntimeError::invalid(
                "driver_opts",
                format!("option \"o\" {o:?} is not supported; only o=bind with type=none"),
            ));
        }
        let Some(device) = device else {
            return Err(RuntimeError::invalid(
                "driver_opts",
                "option \"device\" is needed with type=none,o=bind",
            ));
        };
        let p = Path::new(device);
        if !p.is_absolute() || !p.is_dir() {
            return Err(RuntimeError::invalid(
                "driver_opts",
                format!("option \"device\" {device:?} must be an existing absolute host directory"),
            ));
        }
        plan.device = Some(device.clone());
    }
    Ok(plan)
}

/// Whether `path` is a mount point according to a mountinfo text (proc(5): the fifth
/// field, with spaces and the like escaped as octal).
pub fn mounted_in(mountinfo: &str, path: &Path) -> bool {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .any(|m| Path::new(&unescape_octal(m)) == path)
}

/// Mount points at or below `dir` according to a mountinfo text, deepest first.
pub fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| PathBuf::from(unescape_octal(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    out
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn self_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

// ----- files ----------------------------------------------------------------------

/// Where volumes live: `<root>/volumes`.
#[derive(Debug, Clone)]
pub struct VolumePaths {
    /// `<root>/volumes`.
    pub root: PathBuf,
}

impl VolumePaths {
    /// `<root>/volumes/<name>`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Where a volume's data is on the host: the operator's directory, or `_data`.
    pub fn data(&self, v: &Volume) -> PathBuf {
        match &v.device {
            Some(d) => PathBuf::from(d),
            None => self.dir(&v.name).join(DATA_DIR),
        }
    }
}

/// Makes what the row says and the disk lacks: the dir, and for a sized volume its image
/// and its mount. Idempotent (create, start and reconcile all call it).
async fn materialise(paths: &VolumePaths, v: &Volume) -> Result<(), VolumeError> {
    if v.device.is_some() {
        return Ok(());
    }
    let dir = paths.dir(&v.name);
    let data = dir.join(DATA_DIR);
    std::fs::create_dir_all(&data).map_err(|source| VolumeError::CreateDir {
        path: data.clone(),
        source,
    })?;
    let Some(bytes) = v.size_bytes else {
        return Ok(());
    };
    let image = disk::ensure_image(&dir, bytes)
        .await
        .map_err(|source| VolumeError::Disk {
            name: v.name.clone(),
            source,
        })?;
    if !mounted_in(&self_mountinfo(), &data) {
        mount_image(&image, &data).await?;
    }
    // mkfs.ext4 makes lost+found; a fresh volume is empty, as a plain one (and so gets
    // the copy-up). e2fsck makes it again if it ever needs it. Not only right after the
    // mount: a crash may have come between the two.
    if v.populated == Populated::Fresh {
        let _ = std::fs::remove_dir(data.join("lost+found"));
    }
    Ok(())
}

/// `mount -t ext4 -o loop IMAGE DATA`: util-linux sets up an auto-clearing loop device,
/// so the last unmount frees it (the daemon forbids `unsafe`, so no loop ioctls here).
async fn mount_image(image: &Path, data: &Path) -> Result<(), VolumeError> {
    // util-linux's own place first: a daemon's PATH may be bare (as for mkfs.ext4 in `disk`).
    let mount = ["/usr/bin/mount", "/bin/mount"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map_or_else(|| PathBuf::from("mount"), Path::to_path_buf);
    let out = tokio::process::Command::new(mount)
        .args(["-t", "ext4", "-o", "loop"])
        .arg(image)
        .arg(data)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| VolumeError::RunMount {
            path: data.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(VolumeError::Mount {
            path: data.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Unmounts whatever is mounted at or below `dir` (deepest first). A mount that will
/// not come off is an error: the caller must not remove what is under it.
fn unmount_below(dir: &Path) -> Result<(), VolumeError> {
    for m in mounts_below(&self_mountinfo(), dir) {
        nix::mount::umount2(&m, nix::mount::MntFlags::empty()).or_else(|e| {
            // Busy (a process of the host has a file open in it): detach it lazily;
            // the loop device goes with the last user (autoclear).
            if e == nix::errno::Errno::EBUSY {
                nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH)
            } else {
                Err(e)
            }
            .map_err(|source| VolumeError::Unmount {
                path: m.clone(),
                source,
            })
        })?;
    }
    Ok(())
}

/// Bytes a volume's dir takes on disk (its image for a sized one; mounts below are not
/// crossed).
fn disk_usage(dir: &Path) -> u64 {
    fn walk(p: &Path, dev: u64) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if meta.dev() != dev {
            return 0;
        }
        let mut n = meta.blocks() * 512;
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    n += walk(&e.path(), dev);
                }
            }
        }
        n
    }
    std::fs::symlink_metadata(dir).map_or(0, |m| walk(dir, m.dev()))
}

fn dir_is_empty(dir: &Path) -> io::Result<bool> {
    Ok(std::fs::read_dir(dir)?.next().is_none())
}

// ----- copy-up --------------------------------------------------------------------

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    xattr::get(path, "trusted.overlay.opaque")
        .ok()
        .flatten()
        .is_some_and(|v| v == b"y")
}

fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        remove_any(&e?.path())?;
    }
    Ok(())
}

/// How the image's owners become the volume's: as they are, or (a container with a user
/// namespace) shifted to the host ids its maps give them, so that the container sees
/// the image's owners in the volume as it does in its (idmapped) image layers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owners<'a>(pub Option<&'a UsernsConfig>);

impl Owners<'_> {
    /// The host ids for the image's `uid`, `gid` (an id the maps do not cover stays).
    pub fn host(&self, uid: u32, gid: u32) -> (u32, u32) {
        let shift = |map: &[IdMapping], id: u32| {
            map.iter()
                .find(|m| id >= m.container_id && id - m.container_id < m.size)
                .map_or(id, |m| m.host_id.saturating_add(id - m.container_id))
        };
        match self.0 {
            None => (uid, gid),
            Some(c) => (shift(&c.uid_map, uid), shift(&c.gid_map, gid)),
        }
    }
}

/// Owner, mode and modification time of `meta` onto `path` (not followed if a link).
fn copy_meta(path: &Path, meta: &std::fs::Metadata, owners: Owners) -> io::Result<()> {
    let (uid, gid) = owners.host(meta.uid(), meta.gid());
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    // After chown, which clears setuid and setgid bits.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    // Times only of files and dirs: opening a fifo would block, a device open it.
    let ft = meta.file_type();
    if !(ft.is_file() || ft.is_dir()) {
        return Ok(());
    }
    if let Ok(mtime) = meta.modified() {
        let f = std::fs::File::open(path)?;
        f.set_times(std::fs::FileTimes::new().set_modified(mtime))?;
    }
    Ok(())
}

/// Copies one layer's directory `src` onto `dst`, applying its overlayfs whiteouts and
/// opaque markers to what lower layers put there.
fn merge_dir(src: &Path, dst: &Path, owners: Owners) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&s)?;
        let ft = meta.file_type();
        if is_whiteout(&meta) {
            remove_any(&d)?;
        } else if ft.is_dir() {
            let existing = std::fs::symlink_metadata(&d).ok();
            if existing.as_ref().is_some_and(|m| !m.is_dir()) || is_opaque(&s) {
                remove_any(&d)?;
            }
            if std::fs::symlink_metadata(&d).is_err() {
                std::fs::create_dir(&d)?;
            }
            merge_dir(&s, &d, owners)?;
            copy_meta(&d, &meta, owners)?;
        } else if ft.is_symlink() {
            remove_any(&d)?;
            std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
            copy_meta(&d, &meta, owners)?;
        } else if ft.is_file() {
            remove_any(&d)?;
            std::fs::copy(&s, &d)?;
            copy_meta(&d, &meta, owners)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            use nix::sys::stat::{Mode, SFlag};
            remove_any(&d)?;
            let kind = if ft.is_fifo() {
                SFlag::S_IFIFO
            } else if ft.is_char_device() {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(
                &d,
                kind,
                Mode::from_bits_truncate(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(io::Error::from)?;
            copy_meta(&d, &meta, owners)?;
        }
        // Sockets are not copied (nothing listens on them in a volume).
    }
    Ok(())
}

/// Copies what the image (its layer dirs, topmost first as overlayfs takes them) has
/// at the absolute path `target` into `dest`, merging the layers as overlayfs would
/// (whiteouts, opaque dirs). `dest` gets the owner and mode of the image's directory.
/// Returns whether the image has a directory there. Symbolic links on the way to
/// `target` are not followed (nothing is copied through them).
pub fn copy_up(lowers: &[PathBuf], target: &str, dest: &Path, owners: Owners) -> io::Result<bool> {
    let comps: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, parents)) = comps.split_last() else {
        return Ok(false);
    };
    let mut top: Option<std::fs::Metadata> = None;
    for layer in lowers.iter().rev() {
        let mut p = layer.clone();
        let mut reachable = true;
        for c in parents {
            p.push(c);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    if is_opaque(&p) {
                        // Lower layers' content under here is hidden.
                        clear_dir(dest)?;
                        top = None;
                    }
                }
                Ok(_) => {
                    // A whiteout, file or link here hides the lower layers' paths below
                    // (overlayfs does not merge through it), and is not followed.
                    clear_dir(dest)?;
                    top = None;
                    reachable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    reachable = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !reachable {
            continue;
        }
        p.push(last);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                if is_opaque(&p) {
                    clear_dir(dest)?;
                }
                merge_dir(&p, dest, owners)?;
                top = Some(m);
            }
            Ok(_) => {
                clear_dir(dest)?;
                top = None;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match top {
        Some(m) => {
            copy_meta(dest, &m, owners)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

// ----- the engine's operations ------------------------------------------------------

impl Runtime {
    fn volume_paths(&self) -> &VolumePaths {
        &self.inner.paths.volumes
    }

    /// Which containers (ids and names) are configured with each volume.
    async fn volume_users(&self) -> Result<HashMap<String, Vec<(String, String)>>, RuntimeError> {
        let mut users: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in self.inner.store.list_containers(true).await? {
            let c = r.container;
            for m in c
                .config
                .mounts
                .iter()
                .filter(|m| m.kind == MountKind::Volume)
            {
                let list = users.entry(m.source.clone()).or_default();
                if !list.iter().any(|(id, _)| *id == c.id) {
                    list.push((c.id.clone(), c.name.clone()));
                }
            }
        }
        Ok(users)
    }

    fn volume_info(&self, v: Volume, users: &HashMap<String, Vec<(String, String)>>) -> VolumeInfo {
        let containers = users
            .get(&v.name)
            .map(|l| l.iter().map(|(id, _)| id.clone()).collect())
            .unwrap_or_default();
        VolumeInfo {
            mountpoint: self.volume_paths().data(&v),
            containers,
            volume: v,
        }
    }

    /// `POST /v1/volumes`: creates a volume, or returns the existing one of that name
    /// when its driver is the same (Docker's create is idempotent). The flag says
    /// whether it was made now.
    pub async fn create_volume(
        &self,
        spec: VolumeSpec,
    ) -> Result<(VolumeInfo, bool), RuntimeError> {
        let rt = self.clone();
        // Runs to its end even if the caller goes away.
        tokio::spawn(async move {
            let _guard = rt.inner.volumes_lock.lock().await;
            let (v, made) = rt.create_volume_locked(spec, false).await?;
            let users = rt.volume_users().await?;
            Ok((rt.volume_info(v, &users), made))
        })
        .await
        .expect("volume create panicked")
    }

    /// Creates a volume (the caller holds `volumes_lock`).
    pub(super) async fn create_volume_locked(
        &self,
        spec: VolumeSpec,
        anonymous_default: bool,
    ) -> Result<(Volume, bool), RuntimeError> {
        let driver = spec
            .driver
            .clone()
            .unwrap_or_else(|| LOCAL_DRIVER.to_owned());
        let (name, anonymous) = match &spec.name {
            Some(n) => {
                validate_name(n).map_err(|r| RuntimeError::invalid("name", r))?;
                (n.clone(), anonymous_default)
            }
            None => (generate_name(), true),
        };
        if let Some(v) = self.inner.store.volume(&name).await? {
            if v.driver != driver {
                return Err(RuntimeError::VolumeExists {
                    name,
                    driver: v.driver,
                });
            }
            return Ok((v, false));
        }
        let plan = plan(&driver, &spec.options)?;
        let v = Volume {
            name: name.clone(),
            driver,
            options: spec.options,
            labels: spec.labels,
            created_at: Utc::now(),
            anonymous,
            size_bytes: plan.size_bytes,
            device: plan.device,
            populated: Populated::Fresh,
        };
        // A dir of that name without a row is what a failed removal left: it must not
        // give its old data to the new volume.
        let dir = self.volume_paths().dir(&name);
        if v.device.is_none() && std::fs::symlink_metadata(&dir).is_ok() {
            unmount_below(&dir)?;
            super::remove_dir_blocking(dir).await?;
        }
        self.inner.store.insert_volume(&v).await?;
        crate::fault::crash_point("volume.after_insert");
        if let Err(e) = materialise(self.volume_paths(), &v).await {
            // Undo: no row and no directory stay.
            let dir = self.volume_paths().dir(&name);
            if unmount_below(&dir).is_ok() {
                let _ = super::remove_dir_blocking(dir).await;
            }
            self.inner.store.delete_volume(&name).await?;
            return Err(e.into());
        }
        self.inner
            .events
            .emit("volume", "create", &name, &[("driver", v.driver.clone())])
            .await;
        Ok((v, true))
    }

    /// `GET /v1/volumes`.
    pub async fn volumes(&self, filter: &VolumeFilter) -> Result<Vec<VolumeInfo>, RuntimeError> {
        let users = self.volume_users().await?;
        Ok(self
            .inner
            .store
            .volumes()
            .await?
            .into_iter()
            .filter(|v| filter.matches(v, users.contains_key(&v.name)))
            .map(|v| self.volume_info(v, &users))
            .collect())
    }

    /// `GET /v1/volumes/{name}`.
    pub async fn volume(&self, name: &str) -> Result<VolumeInfo, RuntimeError> {
        let v = self.volume_row(name).await?;
        let users = self.volume_users().await?;
        Ok(self.volume_info(v, &users))
    }

    async fn volume_row(&self, name: &str) -> Result<Volume, RuntimeError> {
        self.inner
            .store
            .volume(name)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "volume",
                reference: name.to_owned(),
            })
    }

    /// `DELETE /v1/volumes/{name}`: 409 while any container (in any state) is configured
    /// with it; `force` only makes a missing volume not an error (Docker's `rm -f`).
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        let rt = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let _guard = rt.inner.volumes_lock.lock().await;
            let users = rt.volume_users().await?;
            match rt.remove_volume_locked(&name, &users).await {
                Err(RuntimeError::NotFound { .. }) if force => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await
        .expect("volume remove panicked")
    }

    /// Removes an unused volume (the caller holds `volumes_lock`); returns the bytes it
    /// took.
    async fn remove_volume_locked(
        &self,
        name: &str,
        users: &HashMap<String, Vec<(String, String)>>,
    ) -> Result<u64, RuntimeError> {
        let v = self.volume_row(name).await?;
        if let Some(list) = users.get(name) {
            return Err(RuntimeError::VolumeInUse {
                name: name.to_owned(),
                containers: list.iter().map(|(_, n)| n.clone()).collect(),
            });
        }
        let dir = self.volume_paths().dir(name);
        let size = disk_usage(&dir);
        // Unmounted first: a failure here changes nothing; a crash after it leaves a
        // row whose mount the reconcile makes again.
        unmount_below(&dir)?;
        self.inner.store.delete_volume(name).await?;
        crate::fault::crash_point("volume.after_row_delete");
        // A bind-style volume's directory is the operator's: only boxd's dir goes.
        if let Err(e) = super::remove_dir_blocking(dir).await {
            tracing::warn!(volume = name, error = %crate::error_chain(&e), "failed to remove a volume's directory; the next start removes it");
        }
        self.inner
            .events
            .emit("volume", "destroy", name, &[("driver", v.driver.clone())])
            .await;
        Ok(size)
    }

    /// `POST /v1/volumes/prune`: removes every volume no container is configured with.
    pub async fn prune_volumes(&self) -> Result<PruneReport, RuntimeError> {
        let rt = self.clone();
        tokio::spawn(async move {
            let _guard = rt.inner.volumes_lock.lock().await;
            let users = rt.volume_users().await?;
            let mut report = PruneReport::default();
            for v in rt.inner.store.volumes().await? {
                if users.contains_key(&v.name) {
                    continue;
                }
                report.space_reclaimed += rt.remove_volume_locked(&v.name, &users).await?;
                report.deleted.push(v.name);
            }
            Ok(report)
        })
        .await
        .expect("volume prune panicked")
    }

    /// At container create (the caller holds `volumes_lock`): gives every volume mount
    /// a volume, making the missing ones (an empty source: a new anonymous volume).
    /// Returns the names of the volumes made, for the caller to remove if the create
    /// fails after all.
    pub(super) async fn resolve_volume_mounts(
        &self,
        mounts: &mut [Mount],
    ) -> Result<Vec<String>, RuntimeError> {
        let mut made = Vec::new();
        for m in mounts.iter_mut().filter(|m| m.kind == MountKind::Volume) {
            let spec = VolumeSpec {
                name: (!m.source.is_empty()).then(|| m.source.clone()),
                ..Default::default()
            };
            let existing = match &spec.name {
                Some(n) => self.inner.store.volume(n).await?,
                None => None,
            };
            match existing {
                Some(v) => m.source = v.name,
                None => match self.create_volume_locked(spec, false).await {
                    Ok((v, _)) => {
                        m.source = v.name.clone();
                        made.push(v.name);
                    }
                    Err(e) => {
                        self.remove_volumes_made(&made).await;
                        return Err(e);
                    }
                },
            }
        }
        Ok(made)
    }

    /// Removes volumes a failed container create made (the caller holds the lock),
    /// but not one another container has named since.
    pub(super) async fn remove_volumes_made(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let users = match self.volume_users().await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "failed to read volume users; volumes made for a failed create stay");
                return;
            }
        };
        for n in names.iter().filter(|n| !users.contains_key(*n)) {
            if let Err(e) = self.remove_volume_locked(n, &users).await {
                tracing::warn!(volume = n, error = %crate::error_chain(&e), "failed to remove a volume made for a failed create");
            }
        }
    }

    /// `DELETE /v1/containers/{id}?v=true`: after the container is gone, its anonymous
    /// volumes go too, unless another container uses them (Docker's `rm -v`).
    pub(super) async fn remove_anonymous_volumes(&self, mounts: &[Mount]) {
        let _guard = self.inner.volumes_lock.lock().await;
        let users = match self.volume_users().await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "failed to read volume users");
                return;
            }
        };
        for m in mounts.iter().filter(|m| m.kind == MountKind::Volume) {
            match self.inner.store.volume(&m.source).await {
                Ok(Some(v)) if v.anonymous && !users.contains_key(&v.name) => {
                    if let Err(e) = self.remove_volume_locked(&v.name, &users).await {
                        tracing::warn!(volume = v.name, error = %crate::error_chain(&e), "failed to remove an anonymous volume");
                    }
                }
                _ => {}
            }
        }
    }

    /// At start: the container's config with every volume mount turned into a bind of
    /// the volume's data (mounted and filled first: copy-up from the image on a
    /// volume's first mount, as Docker). `lowers`: the image's layer dirs.
    pub(super) async fn config_for_run(
        &self,
        c: &Container,
        lowers: &[PathBuf],
    ) -> Result<ContainerConfig, RuntimeError> {
        let mut config = c.config.clone();
        if !config.mounts.iter().any(|m| m.kind == MountKind::Volume) {
            return Ok(config);
        }
        // Two containers' first starts must not both copy into one fresh volume.
        let _guard = self.inner.volumes_lock.lock().await;
        for m in config
            .mounts
            .iter_mut()
            .filter(|m| m.kind == MountKind::Volume)
        {
            let v = self.volume_row(&m.source).await?;
            materialise(self.volume_paths(), &v).await?;
            let data = self.volume_paths().data(&v);
            let copy = match v.populated {
                Populated::Done => false,
                Populated::Copying => true,
                Populated::Fresh => dir_is_empty(&data).map_err(RuntimeError::io("read", &data))?,
            };
            if copy {
                self.inner
                    .store
                    .set_volume_populated(&v.name, Populated::Copying)
                    .await?;
                crate::fault::crash_point("volume.during_copy_up");
                let (layers, target, dest) = (lowers.to_vec(), m.target.clone(), data.clone());
                let userns = c.config.userns.clone();
                let copied = tokio::task::spawn_blocking(move || {
                    copy_up(&layers, &target, &dest, Owners(userns.as_ref()))
                })
                .await
                .expect("copy-up panicked")
                .map_err(|source| VolumeError::CopyUp {
                    name: v.name.clone(),
                    target: m.target.clone(),
                    source,
                })?;
                // Nothing in the image there: a fresh volume of a user-namespaced
                // container is its root's, as its upper dir is (Docker's userns-remap
                // does the same). An operator's directory keeps its owner.
                if !copied && v.device.is_none() {
                    super::userns::chown_upper(&data, c.config.userns.as_ref())?;
                }
            }
            if v.populated != Populated::Done {
                self.inner
                    .store
                    .set_volume_populated(&v.name, Populated::Done)
                    .await?;
            }
            self.inner
                .events
                .emit(
                    "volume",
                    "mount",
                    &v.name,
                    &[
                        ("container", c.id.clone()),
                        ("destination", m.target.clone()),
                        ("read_only", m.read_only.to_string()),
                    ],
                )
                .await;
            m.kind = MountKind::Bind;
            m.source = data.to_string_lossy().into_owned();
        }
        Ok(config)
    }

    /// After a run ended: Docker's `unmount` event for each of its volumes.
    pub(super) async fn volumes_unmounted(&self, c: &Container) {
        for m in c
            .config
            .mounts
            .iter()
            .filter(|m| m.kind == MountKind::Volume)
        {
            self.inner
                .events
                .emit(
                    "volume",
                    "unmount",
                    &m.source,
                    &[("container", c.id.clone())],
                )
                .await;
        }
    }

    /// What `GET /v1/system/check` finds wrong with volumes: a row without its data
    /// (or, sized, without its mount), and a volume dir no row owns.
    pub(super) async fn volume_problems(&self) -> Result<Vec<String>, RuntimeError> {
        let paths = self.volume_paths();
        let rows = self.inner.store.volumes().await?;
        let info = self_mountinfo();
        let mut problems = Vec::new();
        for v in &rows {
            let data = paths.data(v);
            if !data.is_dir() {
                problems.push(format!(
                    "volume {} has no data dir {}",
                    v.name,
                    data.display()
                ));
            } else if v.size_bytes.is_some() && !mounted_in(&info, &data) {
                problems.push(format!(
                    "volume {} is not mounted on {}",
                    v.name,
                    data.display()
                ));
            }
        }
        if let Ok(rd) = std::fs::read_dir(&paths.root) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !rows.iter().any(|v| v.name == name) {
                    problems.push(format!("volume dir {name} belongs to no volume"));
                }
            }
        }
        Ok(problems)
    }

    /// Start-up: finishes every volume a crash left half-made (dir, image, mount; also
    /// re-mounts sized volumes after a reboot), and removes volume dirs no row owns,
    /// unmounting what is mounted in them first.
    pub(super) async fn reconcile_volumes(&self) -> Result<(), RuntimeError> {
        let paths = self.volume_paths().clone();
        std::fs::create_dir_all(&paths.root).map_err(RuntimeError::io("create", &paths.root))?;
        let rows = self.inner.store.volumes().await?;
        for v in &rows {
            let data = paths.data(v);
            let was = v.device.is_some()
                || (data.is_dir()
                    && (v.size_bytes.is_none() || mounted_in(&self_mountinfo(), &data)));
            if let Err(e) = materialise(&paths, v).await {
                tracing::warn!(volume = v.name, error = %crate::error_chain(&e), "failed to set a volume up");
                self.note(format!(
                    "failed to set up volume {}: {}",
                    v.name,
                    crate::error_chain(&e)
                ));
            } else if !was {
                self.note(format!(
                    "set up volume {} (its create or mount was interrupted, or the host restarted)",
                    v.name
                ));
            }
        }
        let owned: std::collections::HashSet<&str> = rows.iter().map(|v| v.name.as_str()).collect();
        let entries: Vec<String> = std::fs::read_dir(&paths.root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        for name in entries.into_iter().filter(|n| !owned.contains(n.as_str())) {
            let dir = paths.dir(&name);
            match unmount_below(&dir) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "removing a volume dir no record owns");
                    self.note(format!(
                        "removed volume dir {}, which no record owns",
                        dir.display()
                    ));
                    if let Err(e) = super::remove_dir_blocking(dir).await {
                        tracing::warn!(error = %crate::error_chain(&e), "failed to remove a stray volume dir");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "a stray volume dir stays mounted; left in place");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["ab", "data", "my-vol_1.2", "0x", "A.b"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-ab", ".ab", "_ab", "a b", "a/b", "ä1", "ab:c"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let n = generate_name();
        assert_eq!(n.len(), 64);
        assert!(validate_name(&n).is_ok());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("100m").unwrap(), 100 << 20);
        assert_eq!(parse_size("100M").unwrap(), 100 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2k").unwrap(), 2048);
        for bad in ["", "m", "1.5g", "10x", "-1m", "99999999999999999999t"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_are_checked_and_named_when_refused() {
        assert_eq!(plan("local", &opts(&[])).unwrap(), Plan::default());
        assert_eq!(
            plan("local", &opts(&[("size", "100m")]))
                .unwrap()
                .size_bytes,
            Some(100 << 20)
        );
        let err = plan("nfs", &opts(&[])).unwrap_err().to_string();
        assert!(err.contains("driver"), "{err}");
        let err = plan("local", &opts(&[("size", "1m")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("minimum"), "{err}");
        let err = plan("local", &opts(&[("uid", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"uid\""), "{err}");
        let err = plan("local", &opts(&[("type", "tmpfs"), ("device", "tmpfs")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"type\""), "{err}");
        let err = plan(
            "local",
            &opts(&[("type", "none"), ("o", "bind,uid=1"), ("device", "/tmp")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"o\""), "{err}");
        let err = plan("local", &opts(&[("type", "none"), ("o", "bind")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"device\""), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().to_str().unwrap();
        let p = plan(
            "local",
            &opts(&[("type", "none"), ("o", "bind"), ("device", dev)]),
        )
        .unwrap();
        assert_eq!(p.device.as_deref(), Some(dev));
        assert!(plan(
            "local",
            &opts(&[("type", "none"), ("o", "bind"), ("device", "rel")])
        )
        .is_err());
    }

    fn vol(name: &str, labels: &[(&str, &str)]) -> Volume {
        Volume {
            name: name.to_owned(),
            driver: "local".into(),
            options: BTreeMap::new(),
            labels: opts(labels),
            created_at: Utc::now(),
            anonymous: false,
            size_bytes: None,
            device: None,
            populated: Populated::Fresh,
        }
    }

    #[test]
    fn filters_match_dangling_names_and_labels() {
        let v = vol("webdata", &[("app", "web"), ("tier", "")]);
        let all = VolumeFilter::default();
        assert!(all.matches(&v, true) && all.matches(&v, false));
        let dangling = VolumeFilter {
            dangling: Some(true),
            ..Default::default()
        };
        assert!(dangling.matches(&v, false) && !dangling.matches(&v, true));
        let used = VolumeFilter {
            dangling: Some(false),
            ..Default::default()
        };
        assert!(used.matches(&v, true) && !used.matches(&v, false));
        let by_name = |n: &[&str]| VolumeFilter {
            names: n.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        assert!(by_name(&["web"]).matches(&v, false));
        assert!(by_name(&["nope", "data"]).matches(&v, false));
        assert!(!by_name(&["nope"]).matches(&v, false));
        let by_label = |l: &[&str]| VolumeFilter {
            labels: l.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        assert!(by_label(&["app"]).matches(&v, false));
        assert!(by_label(&["app=web", "tier"]).matches(&v, false));
        assert!(!by_label(&["app=db"]).matches(&v, false));
        assert!(!by_label(&["app", "other"]).matches(&v, false));
    }

    #[test]
    fn mountinfo_is_read_with_escapes() {
        let info = "36 35 98:0 / /mnt/a\\040b rw - ext4 /dev/loop0 rw\n\
                    37 35 98:0 / /v/x/_data rw - ext4 /dev/loop1 rw\n\
                    38 37 98:0 / /v/x/_data/in rw - ext4 /dev/loop2 rw\n";
        assert!(mounted_in(info, Path::new("/mnt/a b")));
        assert!(mounted_in(info, Path::new("/v/x/_data")));
        assert!(!mounted_in(info, Path::new("/v/x")));
        assert_eq!(
            mounts_below(info, Path::new("/v/x")),
            vec![PathBuf::from("/v/x/_data/in"), PathBuf::from("/v/x/_data")]
        );
    }

    #[test]
    fn copy_up_merges_layers_with_whiteouts_and_keeps_modes_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let (bottom, top, dest) = (
            tmp.path().join("l0"),
            tmp.path().join("l1"),
            tmp.path().join("d"),
        );
        std::fs::create_dir_all(bottom.join("etc/app/sub")).unwrap();
        std::fs::write(bottom.join("etc/app/a.conf"), "a0").unwrap();
        std::fs::write(bottom.join("etc/app/gone"), "x").unwrap();
        std::fs::write(bottom.join("etc/app/sub/deep"), "d").unwrap();
        std::fs::create_dir_all(top.join("etc/app")).unwrap();
        std::fs::write(top.join("etc/app/a.conf"), "a1").unwrap();
        std::fs::set_permissions(top.join("etc/app/a.conf"), PermissionsExt::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::symlink("a.conf", top.join("etc/app/link")).unwrap();
        std::fs::set_permissions(top.join("etc/app"), PermissionsExt::from_mode(0o750)).unwrap();
        std::fs::create_dir(&dest).unwrap();
        // A whiteout needs mknod of 0:0, which needs CAP_MKNOD: only as root.
        let root = nix::unistd::geteuid().is_root();
        if root {
            nix::sys::stat::mknod(
                &top.join("etc/app/gone"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .unwrap();
        }
        // Topmost first, as overlayfs's lowerdir.
        let lowers = vec![top.clone(), bottom.clone()];
        assert!(copy_up(&lowers, "/etc/app", &dest, Owners::default()).unwrap());
        assert_eq!(std::fs::read_to_string(dest.join("a.conf")).unwrap(), "a1");
        assert_eq!(std::fs::read_to_string(dest.join("sub/deep")).unwrap(), "d");
        assert_eq!(
            std::fs::symlink_metadata(dest.join("a.conf"))
                .unwrap()
                .mode()
                & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            PathBuf::from("a.conf")
        );
        assert_eq!(std::fs::metadata(&dest).unwrap().mode() & 0o777, 0o750);
        assert_eq!(dest.join("gone").exists(), !root);
        // Nothing at the path: nothing copied.
        let empty = tmp.path().join("e");
        std::fs::create_dir(&empty).unwrap();
        assert!(!copy_up(&lowers, "/nothing/here", &empty, Owners::default()).unwrap());
        assert!(dir_is_empty(&empty).unwrap());

        // For a user-namespaced container the owners are shifted by its maps.
        if root {
            let map = |host_id| {
                vec![IdMapping {
                    container_id: 0,
                    host_id,
                    size: 65536,
                }]
            };
            let config = UsernsConfig {
                mode: "auto".into(),
                uid_map: map(200_000),
                gid_map: map(300_000),
            };
            let shifted = tmp.path().join("s");
            std::fs::create_dir(&shifted).unwrap();
            std::os::unix::fs::lchown(top.join("etc/app/link"), Some(5), Some(6)).unwrap();
            assert!(copy_up(&lowers, "/etc/app", &shifted, Owners(Some(&config))).unwrap());
            let owner = |p: &Path| {
                let m = std::fs::symlink_metadata(p).unwrap();
                (m.uid(), m.gid())
            };
            assert_eq!(owner(&shifted), (200_000, 300_000));
            assert_eq!(owner(&shifted.join("a.conf")), (200_000, 300_000));
            assert_eq!(owner(&shifted.join("link")), (200_005, 300_006));
        }
    }

    #[test]
    fn owners_shift_only_what_the_maps_cover() {
        let config = UsernsConfig {
            mode: "explicit".into(),
            uid_map: vec![IdMapping {
                container_id: 0,
                host_id: 100_000,
                size: 1000,
            }],
            gid_map: vec![IdMapping {
                container_id: 10,
                host_id: 50,
                size: 5,
            }],
        };
        let o = Owners(Some(&config));
        assert_eq!(o.host(0, 10), (100_000, 50));
        assert_eq!(o.host(999, 14), (100_999, 54));
        assert_eq!(o.host(1000, 15), (1000, 15));
        assert_eq!(Owners::default().host(7, 8), (7, 8));
    }
}
