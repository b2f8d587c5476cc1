//! The container's filesystem view: the overlay root, the OCI `mounts`, the default
//! devices and links in `/dev`, masked and read-only paths, and the switch into the new
//! root with `pivot_root`.
//!
//! Everything here runs in the container's child process, inside its fresh mount
//! namespace, and goes through [`Sys`] so tests can check the order of the calls.
//! Invariants callers rely on: `/` is made rprivate before the first mount, so no
//! mount ever propagates to the host; every mount target is resolved inside the rootfs
//! without following a symlink out of it ([`resolve_in_root`]); after [`pivot_root`]
//! the host's filesystem is no longer reachable.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::protocol::{Overlay, StartReport};
use crate::sys::{FileKind, Sys};

/// A mount-related step that failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// An OCI mount option that this runtime cannot honour.
    #[error("unsupported mount option {0:?}")]
    ParseOption(String),
    #[error("failed to make / rprivate")]
    MakePrivate(#[source] Errno),
    #[error("failed to create rootfs dir {path}")]
    CreateRootfs {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to mount disk image {image} at {target}")]
    MountDisk {
        image: PathBuf,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to create {path} on the disk image")]
    CreateLayerDir {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("the overlay's {path} is not below the disk mount point")]
    LayerOutsideDisk { path: PathBuf },
    #[error("failed to make an idmapped mount of {path} at {target} (idmapped mounts need Linux 5.12 and a filesystem that supports them)")]
    Idmap {
        path: PathBuf,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to detach the staged layer at {path}")]
    Unstage {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to mount overlay at {target}")]
    MountOverlay {
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to resolve {path} inside the rootfs")]
    Resolve {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to mount {fstype} at {target}")]
    Mount {
        fstype: String,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to remount {target} with its flags")]
    Remount {
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to set propagation of {target}")]
    SetPropagation {
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to create device {path}")]
    CreateDevice {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to create link {path}")]
    CreateLink {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to mask {path}")]
    MaskPath {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to make {path} read-only")]
    ReadonlyPath {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to remount the root read-only")]
    RemountRootReadonly(#[source] Errno),
    #[error("failed to pivot_root into {path}")]
    PivotRoot {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to detach the old root")]
    DetachOldRoot(#[source] Errno),
}

impl MountError {
    /// The start-report stage this error belongs to.
    pub fn stage(&self) -> &'static str {
        match self {
            MountError::PivotRoot { .. } | MountError::DetachOldRoot(_) => "pivot_root",
            MountError::CreateDevice { .. } | MountError::CreateLink { .. } => "devices",
            MountError::Idmap { .. } => "userns",
            _ => "mount",
        }
    }
}

/// What an OCI mount's `options` mean for mount(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount call itself.
    pub flags: MsFlags,
    /// `Some(recursive)` for `bind` / `rbind`.
    pub bind: Option<bool>,
    /// Propagation changes, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options (`mode=`, `size=`, `newinstance`, ...), comma-joined.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            bind: None,
            propagation: Vec::new(),
            data: String::new(),
        }
    }
}

/// Flags that a bind mount only gets through a second, `MS_REMOUNT|MS_BIND` call: the
/// kernel ignores them on the first `MS_BIND` mount (mount(2), "Creating a bind mount").
const REMOUNT_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// Parse OCI mount options (the `mount(8)` vocabulary runc accepts). Unknown words
/// that look like filesystem data (`key=value`, or a bare word such as `newinstance`)
/// are passed on as data; only `remount` is refused, since it would modify a mount
/// that does not belong to this container.
pub fn parse_options(options: &[String]) -> Result<MountOptions, MountError> {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                out.bind = Some(out.bind.unwrap_or(false));
                continue;
            }
            "rbind" => {
                out.bind = Some(true);
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                let rec = if opt.starts_with('r') {
                    MsFlags::MS_REC
                } else {
                    MsFlags::empty()
                };
                out.propagation.push(base | rec);
                continue;
            }
            "remount" => return Err(MountError::ParseOption(opt.clone())),
            other => {
                if other.is_empty() || other.contains(',') {
                    return Err(MountError::ParseOption(opt.clone()));
                }
                data.push(other);
                continue;
            }
        };
        out.flags.insert(set);
        out.flags.remove(clear);
    }
    out.data = data.join(",");
    Ok(out)
}

/// One OCI mount, checked and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// Filesystem type (`proc`, `tmpfs`, ...; `bind` for bind mounts).
    pub fstype: String,
    /// Source: a host path for bind mounts, a label otherwise.
    pub source: PathBuf,
    /// Parsed options.
    pub options: MountOptions,
}

impl MountPlan {
    /// Build from an OCI mount; `bundle` anchors a relative bind source.
    pub fn from_oci(m: &oci_spec::runtime::Mount, bundle: &Path) -> Result<Self, MountError> {
        let options = parse_options(m.options().as_deref().unwrap_or(&[]))?;
        let mut fstype = m.typ().clone().unwrap_or_default();
        if fstype == "bind" || options.bind.is_some() || fstype.is_empty() {
            if options.bind.is_none() && fstype.is_empty() {
                return Err(MountError::ParseOption(format!(
                    "no type for mount at {}",
                    m.destination().display()
                )));
            }
            fstype = "bind".to_string();
        }
        let source = match m.source() {
            Some(s) if fstype == "bind" && s.is_relative() => bundle.join(s),
            Some(s) => s.clone(),
            None if fstype == "bind" => {
                return Err(MountError::ParseOption(format!(
                    "no source for bind mount at {}",
                    m.destination().display()
                )))
            }
            None => PathBuf::from(&fstype),
        };
        if !m.destination().is_absolute() {
            return Err(MountError::ParseOption(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            )));
        }
        Ok(MountPlan {
            destination: m.destination().clone(),
            fstype,
            source,
            options,
        })
    }

    fn is_bind(&self) -> bool {
        self.fstype == "bind"
    }
}

/// What to create when a path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create nothing: a missing path resolves to `None`.
    Nothing,
    /// Create missing directories, the last one included.
    Dir,
    /// Create missing parent directories and an empty file as the last component.
    File,
}

/// Most symlinks followed while resolving one path (the kernel's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Resolve `path` as the container will see it, with `root` as `/`, and return the
/// host path of the result; create what is missing as `create` says.
///
/// Each component is checked with lstat: a symlink is read and its target resolved
/// again from `root` (absolute targets) or from its directory (relative ones), and
/// `..` never climbs above `root` - the chroot semantics runc gets from
/// filepath-securejoin. The returned path contains no symlink, so the mount(2) that
/// follows cannot be redirected out of the rootfs. (openat2 with RESOLVE_IN_ROOT would
/// do the same in the kernel; walking with lstat keeps it testable through [`Sys`],
/// and nothing else changes the fresh rootfs while we set it up: the app has not
/// started yet and the upper dir is private to this container.)
pub fn resolve_in_root(
    sys: &dyn Sys,
    root: &Path,
    path: &Path,
    create: Create,
) -> Result<Option<PathBuf>, MountError> {
    let err = |source| MountError::Resolve {
        path: path.to_path_buf(),
        source,
    };
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_components(&mut pending, path, false);
    let mut links = 0;
    let host = |resolved: &[OsString]| {
        let mut p = root.to_path_buf();
        p.extend(resolved);
        p
    };
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = host(&resolved).join(&name);
        let last = pending.iter().all(|c| c == "..");
        match sys.lstat(&candidate).map_err(err)? {
            Some(FileKind::Symlink) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(err(Errno::ELOOP));
                }
                let target = sys.readlink(&candidate).map_err(err)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                push_components(&mut pending, &target, true);
            }
            Some(FileKind::Dir) => resolved.push(name),
            Some(_) if last => resolved.push(name),
            Some(_) => return Err(err(Errno::ENOTDIR)),
            None => match create {
                Create::Nothing => return Ok(None),
                Create::File if last && pending.is_empty() => {
                    sys.create_file(&candidate, 0o644).map_err(err)?;
                    resolved.push(name);
                }
                Create::Dir | Create::File => {
                    sys.mkdir(&candidate, 0o755).map_err(err)?;
                    resolved.push(name);
                }
            },
        }
    }
    Ok(Some(host(&resolved)))
}

/// Queue the normal and `..` components of `path` (at the front when `front`).
fn push_components(pending: &mut VecDeque<OsString>, path: &Path, front: bool) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    if front {
        for p in parts.into_iter().rev() {
            pending.push_front(p);
        }
    } else {
        pending.extend(parts);
    }
}

/// The root filesystem and everything mounted into it, before `pivot_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsPlan {
    /// Host path of the new root (`<bundle>/<root.path>`).
    pub rootfs: PathBuf,
    /// overlayfs mount data (`lowerdir=...,upperdir=...,workdir=...,index=off`).
    pub overlay_data: String,
    /// With a user namespace: each image layer and where its idmapped clone is
    /// attached for the overlay (whose `lowerdir` names the latter).
    pub idmapped_lowers: Vec<(PathBuf, PathBuf)>,
    /// OCI `mounts`, in order.
    pub mounts: Vec<MountPlan>,
    /// `root.readonly`.
    pub readonly: bool,
    /// `linux.maskedPaths`.
    pub masked_paths: Vec<PathBuf>,
    /// `linux.readonlyPaths`.
    pub readonly_paths: Vec<PathBuf>,
    /// The image holding the overlay's upper and work dirs, if the writable layer is
    /// size-limited.
    pub disk: Option<DiskPlan>,
}

/// Mounting a container's disk image ([`crate::protocol::DiskImage`]) before the
/// overlay.
///
/// Why a loop-mounted ext4 image per container: it is the one size limit for the
/// writable layer that works on any host filesystem (ext4 has project quotas only
/// when made with them, and overlayfs on XFS needs `pquota` at mount time, which is
/// what Docker and Podman rely on). The kernel enforces the size (ENOSPC inside), and
/// the image is a sparse file, so it takes host space only for what is written.
///
/// How: the shim, before it forks the container's process, attaches the image to a
/// loop device with `LO_FLAGS_AUTOCLEAR` and makes a *detached* mount of it
/// ([`open_disk`]; fsopen/fsmount). It has to be the shim: opening a block device is
/// checked against the caller's device cgroup, and the container's process is in a
/// cgroup that denies every block device by the time it sets up its mounts. The
/// child then moves that mount onto the mount point inside its own, private mount
/// namespace ([`setup_rootfs`]), and the shim closes its descriptor.
///
/// Why that leaks nothing: the host's mount table never holds the mount, and the
/// kernel detaches the loop device when its last user goes. That user is the mount,
/// which lives as long as the container's namespace (the overlay keeps a private
/// reference to its upper layer), which ends with the container's last process; if
/// the shim dies, the container dies with it (parent-death signal), and a detached
/// mount whose descriptor is closed before it was attached is freed at once. So no
/// crash of the shim or the daemon can leave a mount or a loop device on the host,
/// and there is nothing for reconcile to undo. The upper dir lives in the image, so
/// it persists across stop and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPlan {
    /// The image file.
    pub image: PathBuf,
    /// Where it is mounted (an empty dir on the host).
    pub mount_point: PathBuf,
    /// Dirs made on the image when missing (upper and work, at the first start).
    pub dirs: Vec<PathBuf>,
}

impl DiskPlan {
    /// The plan for `overlay`'s disk, if it has one. `upper` and `work` must lie below
    /// the mount point, or they would not be on the image.
    pub fn from_overlay(overlay: &Overlay) -> Result<Option<Self>, MountError> {
        let Some(disk) = &overlay.disk else {
            return Ok(None);
        };
        for dir in [&overlay.upper, &overlay.work] {
            let inside = dir.strip_prefix(&disk.mount_point).is_ok_and(|rest| {
                rest.components().next().is_some()
                    && rest.components().all(|c| matches!(c, Component::Normal(_)))
            });
            if !inside {
                return Err(MountError::LayerOutsideDisk { path: dir.clone() });
            }
        }
        Ok(Some(DiskPlan {
            image: disk.image.clone(),
            mount_point: disk.mount_point.clone(),
            dirs: vec![overlay.upper.clone(), overlay.work.clone()],
        }))
    }
}

/// In the shim, before the fork: the detached mount of the plan's disk image, if it
/// has one. Failures come as the start report the shim sends.
pub(crate) fn open_disk(plan: &RootfsPlan) -> Result<Option<OwnedFd>, StartReport> {
    let Some(disk) = &plan.disk else {
        return Ok(None);
    };
    crate::sys::detached_disk_mount(&disk.image)
        .map(Some)
        .map_err(|source| {
            let e = MountError::MountDisk {
                image: disk.image.clone(),
                target: disk.mount_point.clone(),
                source,
            };
            StartReport::Failed {
                stage: e.stage().to_owned(),
                message: crate::error_chain(&e),
            }
        })
}

/// Attach an idmapped clone of each image layer at its staging dir (made if missing),
/// inside this (private) mount namespace: overlayfs takes its layers by path, and the
/// kernel only idmaps a detached mount (mount_setattr(2)).
fn stage_idmapped_lowers(
    sys: &dyn Sys,
    lowers: &[(PathBuf, PathBuf)],
    userns: Option<BorrowedFd<'_>>,
) -> Result<(), MountError> {
    for (lower, staging) in lowers {
        let err = |source| MountError::Idmap {
            path: lower.clone(),
            target: staging.clone(),
            source,
        };
        let userns = userns.ok_or_else(|| err(Errno::EBADF))?;
        let mut missing = Vec::new();
        let mut dir = staging.as_path();
        while sys.lstat(dir).map_err(err)?.is_none() {
            missing.push(dir.to_path_buf());
            dir = dir.parent().ok_or_else(|| err(Errno::ENOENT))?;
        }
        for d in missing.iter().rev() {
            sys.mkdir(d, 0o700).map_err(err)?;
        }
        let tree = sys.idmapped_clone(lower, userns).map_err(err)?;
        use std::os::fd::AsFd;
        sys.move_mount(tree.as_fd(), staging).map_err(err)?;
    }
    Ok(())
}

/// Attach the disk's detached mount and make the layer dirs on it that are missing.
fn mount_disk(
    sys: &dyn Sys,
    disk: &DiskPlan,
    mount: Option<BorrowedFd<'_>>,
) -> Result<(), MountError> {
    let err = |source| MountError::MountDisk {
        image: disk.image.clone(),
        target: disk.mount_point.clone(),
        source,
    };
    let mount = mount.ok_or_else(|| err(Errno::EBADF))?;
    sys.move_mount(mount, &disk.mount_point).map_err(err)?;
    for dir in &disk.dirs {
        let err = |source| MountError::CreateLayerDir {
            path: dir.clone(),
            source,
        };
        match sys.lstat(dir).map_err(err)? {
            Some(FileKind::Dir) => {}
            Some(_) => return Err(err(Errno::ENOTDIR)),
            None => sys.mkdir(dir, 0o755).map_err(err)?,
        }
    }
    Ok(())
}

/// The OCI default devices (runtime-spec config-linux.md, "Default Devices").
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The links every runtime provides in /dev (runtime-spec runtime-linux.md, "/dev symbolic links").
const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Build the root filesystem at `plan.rootfs` (not yet pivoted into); `disk` is the
/// detached mount from [`open_disk`] when the plan has a disk, `userns` the container's
/// user namespace when the plan has idmapped layers.
pub fn setup_rootfs(
    sys: &dyn Sys,
    plan: &RootfsPlan,
    disk: Option<BorrowedFd<'_>>,
    userns: Option<BorrowedFd<'_>>,
) -> Result<(), MountError> {
    // Our mount namespace is a copy of the host's, with the host's shared peer groups:
    // without this, every mount below would appear on the host too.
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(MountError::MakePrivate)?;

    if sys
        .lstat(&plan.rootfs)
        .map_err(|source| MountError::CreateRootfs {
            path: plan.rootfs.clone(),
            source,
        })?
        .is_none()
    {
        sys.mkdir(&plan.rootfs, 0o755)
            .map_err(|source| MountError::CreateRootfs {
                path: plan.rootfs.clone(),
                source,
            })?;
    }
    // After `/` is private (so the mount stays in this namespace) and before the
    // overlay that uses it.
    if let Some(plan_disk) = &plan.disk {
        mount_disk(sys, plan_disk, disk)?;
    }
    stage_idmapped_lowers(sys, &plan.idmapped_lowers, userns)?;
    sys.mount(
        Some(Path::new("overlay")),
        &plan.rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(&plan.overlay_data),
    )
    .map_err(|source| MountError::MountOverlay {
        target: plan.rootfs.clone(),
        source,
    })?;
    // overlayfs took private clones of its layers at mount time; the staged mounts
    // are no longer needed, and a container's namespace keeps nothing it does not use.
    for (_, staging) in &plan.idmapped_lowers {
        sys.umount2(staging, MntFlags::MNT_DETACH)
            .map_err(|source| MountError::Unstage {
                path: staging.clone(),
                source,
            })?;
    }

    for m in &plan.mounts {
        mount_one(sys, &plan.rootfs, m)?;
    }
    create_devices(sys, &plan.rootfs)?;
    for p in &plan.masked_paths {
        mask_path(sys, &plan.rootfs, p)?;
    }
    for p in &plan.readonly_paths {
        readonly_path(sys, &plan.rootfs, p)?;
    }
    if plan.readonly {
        // Only the root mount itself turns read-only: /dev, /proc, tmpfs mounts keep
        // their own flags, as with runc.
        sys.mount(
            None,
            &plan.rootfs,
            None,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None,
        )
        .map_err(MountError::RemountRootReadonly)?;
    }
    Ok(())
}

fn mount_one(sys: &dyn Sys, rootfs: &Path, m: &MountPlan) -> Result<(), MountError> {
    let create = if m.is_bind() && !sys.is_dir(&m.source) {
        Create::File
    } else {
        Create::Dir
    };
    let target = resolve_in_root(sys, rootfs, &m.destination, create)?
        .expect("create mode always yields a path");
    let data = (!m.options.data.is_empty()).then_some(m.options.data.as_str());
    if m.is_bind() {
        let mut flags = MsFlags::MS_BIND;
        if m.options.bind == Some(true) {
            flags |= MsFlags::MS_REC;
        }
        sys.mount(Some(&m.source), &target, None, flags, data)
            .map_err(|source| MountError::Mount {
                fstype: m.fstype.clone(),
                target: target.clone(),
                source,
            })?;
        let extra = m.options.flags & REMOUNT_FLAGS;
        if !extra.is_empty() {
            sys.mount(
                None,
                &target,
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra,
                None,
            )
            .map_err(|source| MountError::Remount {
                target: target.clone(),
                source,
            })?;
        }
    } else {
        sys.mount(
            Some(&m.source),
            &target,
            Some(&m.fstype),
            m.options.flags,
            data,
        )
        .map_err(|source| MountError::Mount {
            fstype: m.fstype.clone(),
            target: target.clone(),
            source,
        })?;
    }
    for p in &m.options.propagation {
        sys.mount(None, &target, None, *p, None)
            .map_err(|source| MountError::SetPropagation {
                target: target.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Replace whatever non-directory sits at `path` (an image may ship its own /dev).
fn clear_entry(sys: &dyn Sys, path: &Path) -> nix::Result<()> {
    match sys.lstat(path)? {
        None => Ok(()),
        Some(FileKind::Dir) => Err(Errno::EISDIR),
        Some(_) => sys.unlink(path),
    }
}

fn create_devices(sys: &dyn Sys, rootfs: &Path) -> Result<(), MountError> {
    let dev = resolve_in_root(sys, rootfs, Path::new("/dev"), Create::Dir)?
        .expect("create mode always yields a path");
    for (name, major, minor) in DEFAULT_DEVICES {
        let path = dev.join(name);
        clear_entry(sys, &path)
            .and_then(|()| sys.mknod_char(&path, 0o666, major, minor))
            .map_err(|source| MountError::CreateDevice { path, source })?;
    }
    for (name, target) in DEV_LINKS {
        let path = dev.join(name);
        clear_entry(sys, &path)
            .and_then(|()| sys.symlink(Path::new(target), &path))
            .map_err(|source| MountError::CreateLink { path, source })?;
    }
    Ok(())
}

/// Hide `path`: /dev/null over a file, an empty read-only tmpfs over a directory. A
/// missing path is skipped, as runc does.
fn mask_path(sys: &dyn Sys, rootfs: &Path, path: &Path) -> Result<(), MountError> {
    let Some(target) = resolve_in_root(sys, rootfs, path, Create::Nothing)? else {
        return Ok(());
    };
    let err = |source| MountError::MaskPath {
        path: path.to_path_buf(),
        source,
    };
    match sys.lstat(&target).map_err(err)? {
        Some(FileKind::Dir) => sys.mount(
            Some(Path::new("tmpfs")),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        ),
        // The host's /dev/null: the container's is a node we made, but the host's is the
        // same device and always exists before pivot_root.
        _ => sys.mount(
            Some(Path::new("/dev/null")),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        ),
    }
    .map_err(err)
}

/// Make `path` read-only with a bind onto itself and a read-only remount; skipped if
/// missing.
fn readonly_path(sys: &dyn Sys, rootfs: &Path, path: &Path) -> Result<(), MountError> {
    let Some(target) = resolve_in_root(sys, rootfs, path, Create::Nothing)? else {
        return Ok(());
    };
    let err = |source| MountError::ReadonlyPath {
        path: path.to_path_buf(),
        source,
    };
    sys.mount(
        Some(&target),
        &target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(err)?;
    sys.mount(
        None,
        &target,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        None,
    )
    .map_err(err)
}

/// Switch into `rootfs` the way runc does (libcontainer/rootfs_linux.go, pivotRoot):
/// `pivot_root(".", ".")` stacks the old root on top of the new one at the same
/// place, so no directory for the old root is needed in the (possibly read-only)
/// rootfs. The old root is made rslave first, so the detach below cannot propagate an
/// unmount to the host, then detached lazily.
pub fn pivot_root(sys: &dyn Sys, rootfs: &Path) -> Result<(), MountError> {
    let pivot = |source| MountError::PivotRoot {
        path: rootfs.to_path_buf(),
        source,
    };
    sys.chdir(rootfs).map_err(pivot)?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(pivot)?;
    sys.mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .map_err(MountError::DetachOldRoot)?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(MountError::DetachOldRoot)?;
    sys.chdir(Path::new("/")).map_err(MountError::DetachOldRoot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sys::{Entry, FakeSys};
    use std::os::fd::AsFd;

    fn opts(list: &[&str]) -> MountOptions {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parse_options_splits_flags_data_and_propagation() {
        let o = opts(&[
            "nosuid",
            "noexec",
            "nodev",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert_eq!(o.bind, None);

        let o = opts(&["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert!(o.flags.is_empty());
    }

    #[test]
    fn parse_options_later_words_win_and_bind_kinds() {
        assert_eq!(opts(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(opts(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
        assert_eq!(opts(&["bind"]).bind, Some(false));
        assert_eq!(opts(&["rbind"]).bind, Some(true));
        assert_eq!(opts(&["rbind", "bind"]).bind, Some(true));
        assert_eq!(
            opts(&["slave", "unbindable"]).propagation,
            vec![MsFlags::MS_SLAVE, MsFlags::MS_UNBINDABLE]
        );
        assert!(parse_options(&["remount".to_string()]).is_err());
        assert!(parse_options(&["a,b".to_string()]).is_err());
    }

    #[test]
    fn resolve_keeps_symlinks_inside_the_root() {
        let fs = FakeSys::new();
        fs.add("/r", Entry::Dir);
        fs.add("/r/etc", Entry::Symlink("../../../../host".into()));
        fs.add("/r/host", Entry::Dir);
        fs.add("/r/abs", Entry::Symlink("/host/x".into()));
        let got =
            resolve_in_root(&fs, Path::new("/r"), Path::new("/etc"), Create::Nothing).unwrap();
        assert_eq!(got, Some(PathBuf::from("/r/host")));
        let got = resolve_in_root(&fs, Path::new("/r"), Path::new("/abs/y"), Create::Dir).unwrap();
        assert_eq!(got, Some(PathBuf::from("/r/host/x/y")));
        assert!(fs.calls().contains(&"mkdir /r/host/x".to_string()));
        assert!(fs.calls().contains(&"mkdir /r/host/x/y".to_string()));
    }

    #[test]
    fn resolve_stops_symlink_loops_and_files_in_the_middle() {
        let fs = FakeSys::new();
        fs.add("/r", Entry::Dir);
        fs.add("/r/a", Entry::Symlink("b".into()));
        fs.add("/r/b", Entry::Symlink("a".into()));
        fs.add("/r/f", Entry::File);
        let e = resolve_in_root(&fs, Path::new("/r"), Path::new("/a"), Create::Dir);
        assert!(matches!(
            e,
            Err(MountError::Resolve {
                source: Errno::ELOOP,
                ..
            })
        ));
        let e = resolve_in_root(&fs, Path::new("/r"), Path::new("/f/x"), Create::Dir);
        assert!(matches!(
            e,
            Err(MountError::Resolve {
                source: Errno::ENOTDIR,
                ..
            })
        ));
        let got =
            resolve_in_root(&fs, Path::new("/r"), Path::new("/new/file"), Create::File).unwrap();
        assert_eq!(got, Some(PathBuf::from("/r/new/file")));
        assert!(fs.calls().contains(&"create_file /r/new/file".to_string()));
    }

    #[test]
    fn resolve_with_real_fs_does_not_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let sys = crate::sys::LinuxSys;
        let got = resolve_in_root(&sys, &root, Path::new("/evil/proc"), Create::Dir)
            .unwrap()
            .unwrap();
        assert!(got.starts_with(&root), "{got:?}");
        assert!(got.is_dir());
        assert!(!outside.join("proc").exists());
    }

    fn plan() -> RootfsPlan {
        let mounts = [
            ("proc", "/proc", "proc", vec![]),
            ("tmpfs", "/dev", "tmpfs", vec!["nosuid", "mode=755"]),
            ("/host/data", "/data", "bind", vec!["rbind", "ro"]),
        ]
        .into_iter()
        .map(|(src, dst, ty, o)| MountPlan {
            destination: dst.into(),
            fstype: ty.into(),
            source: src.into(),
            options: opts(&o),
        })
        .collect();
        RootfsPlan {
            rootfs: "/b/rootfs".into(),
            overlay_data: "lowerdir=/l,upperdir=/u,workdir=/w,index=off".into(),
            idmapped_lowers: vec![],
            mounts,
            readonly: true,
            masked_paths: vec!["/proc/kcore".into(), "/missing".into()],
            readonly_paths: vec!["/proc/sys".into()],
            disk: None,
        }
    }

    fn position(calls: &[String], needle: &str) -> usize {
        calls
            .iter()
            .position(|c| c.starts_with(needle))
            .unwrap_or_else(|| panic!("no call {needle:?} in {calls:#?}"))
    }

    #[test]
    fn rootfs_set_up_runs_in_a_safe_order() {
        let fs = FakeSys::new();
        fs.add("/b", Entry::Dir);
        fs.add("/host/data", Entry::Dir);
        fs.add("/b/rootfs/proc/kcore", Entry::File);
        fs.add("/b/rootfs/proc/sys", Entry::Dir);
        setup_rootfs(&fs, &plan(), None, None).unwrap();
        pivot_root(&fs, Path::new("/b/rootfs")).unwrap();
        let calls = fs.calls();
        let private = position(&calls, "mount - / - REC|PRIVATE");
        let overlay = position(&calls, "mount overlay /b/rootfs overlay");
        let proc_ = position(&calls, "mount proc /b/rootfs/proc proc");
        let dev = position(&calls, "mount tmpfs /b/rootfs/dev tmpfs NOSUID mode=755");
        let bind = position(&calls, "mount /host/data /b/rootfs/data - BIND|REC");
        let bind_ro = position(&calls, "mount - /b/rootfs/data - RDONLY|REMOUNT|BIND");
        let null = position(&calls, "mknod /b/rootfs/dev/null 666 1:3");
        let ptmx = position(&calls, "symlink pts/ptmx /b/rootfs/dev/ptmx");
        let mask = position(&calls, "mount /dev/null /b/rootfs/proc/kcore - BIND");
        let ro_path = position(&calls, "mount - /b/rootfs/proc/sys - RDONLY|REMOUNT|BIND");
        let ro_root = position(&calls, "mount - /b/rootfs - RDONLY|REMOUNT|BIND");
        let pivot = position(&calls, "pivot_root . .");
        let slave = position(&calls, "mount - . - REC|SLAVE");
        let detach = position(&calls, "umount2 . DETACH");
        let order = [
            private, overlay, proc_, dev, bind, bind_ro, null, ptmx, mask, ro_path, ro_root, pivot,
            slave, detach,
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{calls:#?}");
        assert!(calls.contains(&"mkdir /b/rootfs".to_string()));
        assert!(calls.contains(&"chdir /b/rootfs".to_string()));
        assert_eq!(calls.last().unwrap(), "chdir /");
        assert!(!calls.iter().any(|c| c.contains("/missing")), "{calls:#?}");
    }

    fn overlay_on_disk(upper: &str, work: &str) -> Overlay {
        Overlay {
            lower: vec!["/l".into()],
            upper: upper.into(),
            work: work.into(),
            disk: Some(crate::protocol::DiskImage {
                image: "/c/disk.img".into(),
                mount_point: "/c/disk".into(),
            }),
        }
    }

    #[test]
    fn the_disk_is_mounted_privately_before_the_overlay_and_gets_its_layer_dirs() {
        let fs = FakeSys::new();
        fs.add("/b", Entry::Dir);
        fs.add("/host/data", Entry::Dir);
        fs.add("/c/disk", Entry::Dir);
        // A second start: upper is already on the image, work is not.
        fs.add("/c/disk/upper", Entry::Dir);
        let mut p = plan();
        p.disk = DiskPlan::from_overlay(&overlay_on_disk("/c/disk/upper", "/c/disk/work")).unwrap();
        let mount = std::fs::File::open("/dev/null").unwrap();
        setup_rootfs(&fs, &p, Some(mount.as_fd()), None).unwrap();
        let calls = fs.calls();
        let private = position(&calls, "mount - / - REC|PRIVATE");
        let disk = position(&calls, "move_mount /c/disk");
        let work = position(&calls, "mkdir /c/disk/work");
        let overlay = position(&calls, "mount overlay /b/rootfs overlay");
        assert!(
            private < disk && disk < work && work < overlay,
            "{calls:#?}"
        );
        assert!(!calls.contains(&"mkdir /c/disk/upper".to_string()));
    }

    #[test]
    fn layer_dirs_must_be_on_the_disk() {
        assert_eq!(
            DiskPlan::from_overlay(&Overlay {
                disk: None,
                ..overlay_on_disk("/u", "/w")
            })
            .unwrap(),
            None
        );
        for (upper, work) in [
            ("/c/upper", "/c/disk/work"),
            ("/c/disk/upper", "/c/disk"),
            ("/c/disk/../upper", "/c/disk/work"),
            ("/c/disk/upper", "/c/diskwork"),
        ] {
            assert!(
                matches!(
                    DiskPlan::from_overlay(&overlay_on_disk(upper, work)),
                    Err(MountError::LayerOutsideDisk { .. })
                ),
                "{upper} {work}"
            );
        }
    }

    #[test]
    fn a_failed_disk_mount_stops_before_the_overlay() {
        let fs = FakeSys::new();
        fs.add("/b/rootfs", Entry::Dir);
        fs.fail_on("move_mount", Errno::EINVAL);
        let mut p = plan();
        p.disk = DiskPlan::from_overlay(&overlay_on_disk("/c/disk/upper", "/c/disk/work")).unwrap();
        let mount = std::fs::File::open("/dev/null").unwrap();
        let e = setup_rootfs(&fs, &p, Some(mount.as_fd()), None).unwrap_err();
        assert!(matches!(e, MountError::MountDisk { .. }), "{e:?}");
        assert_eq!(e.stage(), "mount");
        assert!(!fs.calls().iter().any(|c| c.starts_with("mount overlay")));
        // A plan with a disk but no mount for it is refused, not mounted without.
        let e = setup_rootfs(&FakeSys::new(), &p, None, None).unwrap_err();
        assert!(
            matches!(
                e,
                MountError::MountDisk {
                    source: Errno::EBADF,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn idmapped_layers_are_staged_before_the_overlay_and_detached_after() {
        let fs = FakeSys::new();
        fs.add("/b", Entry::Dir);
        fs.add("/host/data", Entry::Dir);
        fs.add("/s", Entry::Dir);
        let mut p = plan();
        p.idmapped_lowers = vec![
            ("/img/l0".into(), "/s/idmapped/0".into()),
            ("/img/l1".into(), "/s/idmapped/1".into()),
        ];
        let userns = std::fs::File::open("/dev/null").unwrap();
        setup_rootfs(&fs, &p, None, Some(userns.as_fd())).unwrap();
        let calls = fs.calls();
        let private = position(&calls, "mount - / - REC|PRIVATE");
        let mkdir = position(&calls, "mkdir /s/idmapped/0");
        let clone0 = position(&calls, "idmapped_clone /img/l0");
        let stage0 = position(&calls, "move_mount /s/idmapped/0");
        let stage1 = position(&calls, "move_mount /s/idmapped/1");
        let overlay = position(&calls, "mount overlay /b/rootfs overlay");
        let detach = position(&calls, "umount2 /s/idmapped/1 DETACH");
        let order = [private, mkdir, clone0, stage0, stage1, overlay, detach];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{calls:#?}");

        // No user namespace to map through: refused, never mounted unmapped.
        let fs = FakeSys::new();
        fs.add("/b/rootfs", Entry::Dir);
        let e = setup_rootfs(&fs, &p, None, None).unwrap_err();
        assert!(matches!(e, MountError::Idmap { .. }), "{e:?}");
        assert_eq!(e.stage(), "userns");
        assert!(!fs.calls().iter().any(|c| c.starts_with("mount overlay")));
        // A kernel without idmapped mounts fails the same way.
        let fs = FakeSys::new();
        fs.add("/b/rootfs", Entry::Dir);
        fs.add("/s", Entry::Dir);
        fs.fail_on("idmapped_clone", Errno::ENOSYS);
        let e = setup_rootfs(&fs, &p, None, Some(userns.as_fd())).unwrap_err();
        assert!(
            matches!(
                e,
                MountError::Idmap {
                    source: Errno::ENOSYS,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(!fs.calls().iter().any(|c| c.starts_with("mount overlay")));
    }

    #[test]
    fn mount_target_behind_an_evil_symlink_stays_inside() {
        let fs = FakeSys::new();
        fs.add("/b/rootfs", Entry::Dir);
        fs.add("/b/rootfs/proc", Entry::Symlink("/../../etc".into()));
        let mut p = plan();
        p.mounts.truncate(1);
        p.masked_paths.clear();
        p.readonly_paths.clear();
        setup_rootfs(&fs, &p, None, None).unwrap();
        let calls = fs.calls();
        assert!(
            calls.contains(&"mount proc /b/rootfs/etc proc - -".to_string()),
            "{calls:#?}"
        );
    }
}
