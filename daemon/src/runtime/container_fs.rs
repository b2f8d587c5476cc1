//! A container's files as `docker cp`, `docker export` and `docker diff` see them:
//! stat of a path, a tar of a path or of the whole root, unpacking a tar into a
//! directory, and the changes of the writable layer against the image.
//!
//! How the files are reached (the overlay root exists only inside the container's
//! mount namespace, so the host has no path for it):
//! - a running container: `/proc/<pid>/root` of its first process. That is the merged
//!   view with every mount the container has (volumes, binds), which is what
//!   `docker cp` shows, and it works whatever the container's overlay is made of (a
//!   user namespace's idmapped layers, a disk limit's ext4 image). The open fd keeps
//!   that root alive even if the process exits meanwhile.
//! - a stopped container: a *detached* overlay mount of its layers (`fsopen` +
//!   `fsmount`), never attached anywhere: the host's mount table never holds it, and
//!   it is gone when its fd is closed, so no error path, panic or daemon crash can leave
//!   a mount behind. With a disk limit, the upper dir is on the container's ext4
//!   image, which is mounted detached the same way (the shim's loop helper) and
//!   reached through `/proc/self/fd`. A stopped container with a user namespace (its
//!   layers need idmapped mounts to show the right owners) is refused for now, and so
//!   are the changes of a running container with a disk limit (its run has the image
//!   mounted, and ext4 cannot be mounted twice).
//!
//! Every open view holds a read lease on the container's layers (`LayerLeases`) and
//! a start takes the write lease, so a start waits for the copies in progress (up to
//! `LEASE_WAIT`, then it is refused): the layers are never mounted twice at once.
//!
//! The tree is hostile: the container may create any symlink and may change its files
//! while we read or write them. So nothing here resolves a container path by name on the
//! host: [`ContainerFs::resolve`] walks one component at a time from the root fd with
//! `O_PATH | O_NOFOLLOW`, resolves symlinks itself against the container's root
//! (absolute targets restart at the root, `..` is clamped there, as in a chroot), and
//! only ever opens a name relative to an fd it holds. Regular files are opened for
//! reading by reopening a checked `O_PATH` fd (`/proc/self/fd/N`), so a file swapped for
//! a device or a fifo meanwhile is never opened. Unpacking goes through the image
//! store's unpacker, which writes the same way (see `image::unpack`).
//!
//! Owners: in a user namespace the files seen from the host carry host ids; archives
//! carry the container's ids (as dockerd does with its identity mapping), in both
//! directions.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};

use super::spec::{Container, ContainerState, IdMapping};
use super::{Runtime, RuntimeError};

/// Most symlinks one resolution follows (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;
/// Deepest tree written into a tar: bounds the fds held open (one per level) and the
/// recursion against a container that makes a pathologically deep tree.
const MAX_DEPTH: usize = 512;

const PATH_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Failures of the container filesystem operations.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path does not exist in the container.
    #[error("no such path {path}")]
    NotFound {
        /// The path as asked.
        path: String,
    },
    /// A component that has to be a directory is not.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path as asked.
        path: String,
    },
    /// Too many symlinks while resolving.
    #[error("too many levels of symbolic links in {path}")]
    SymlinkLoop {
        /// The path as asked.
        path: String,
    },
    /// The container's root could not be opened.
    #[error("failed to open the root filesystem of container {id}")]
    OpenRoot {
        /// The container.
        id: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The operation is not available for this container in its state.
    #[error("{0}")]
    Unsupported(String),
    /// A filesystem call failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// Where (inside the container).
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Unpacking an archive failed.
    #[error(transparent)]
    Unpack(#[from] crate::image::ImageError),
}

fn sys(op: &'static str, path: &str) -> impl FnOnce(Errno) -> FsError {
    let path = path.to_owned();
    move |e| FsError::Io {
        op,
        path,
        source: e.into(),
    }
}

/// How long a start waits for the file operations that hold its layers.
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Per container: who holds its layers outside its run. Every [`ContainerFs`] holds a
/// read lease for its whole life, a start holds the write lease from before its
/// overlay is mounted until the run is recorded. So a stopped container's layers are
/// never mounted twice (overlayfs forbids two mounts sharing an upper dir: with
/// `index=off` it only warns, and what either then sees is undefined), and a running
/// container's root kept open by a copy after the container exited is closed before
/// the next run mounts the layers again.
#[derive(Default, Clone)]
pub(super) struct LayerLeases(Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>>);

/// A held lease (see [`LayerLeases`]); the map's entry goes with its last holder.
pub(super) struct LayerLease {
    id: String,
    leases: LayerLeases,
    guard: Option<LeaseGuard>,
}

/// Held only to be dropped.
enum LeaseGuard {
    Read {
        _guard: tokio::sync::OwnedRwLockReadGuard<()>,
    },
    Write {
        _guard: tokio::sync::OwnedRwLockWriteGuard<()>,
    },
}

impl LayerLeases {
    fn lock_of(&self, id: &str) -> Arc<tokio::sync::RwLock<()>> {
        let mut map = self.0.lock().expect("leases poisoned");
        Arc::clone(map.entry(id.to_owned()).or_default())
    }

    fn lease(&self, id: &str, guard: LeaseGuard) -> LayerLease {
        LayerLease {
            id: id.to_owned(),
            leases: self.clone(),
            guard: Some(guard),
        }
    }

    /// A file operation's lease.
    async fn read(&self, id: &str) -> LayerLease {
        let guard = self.lock_of(id).read_owned().await;
        self.lease(id, LeaseGuard::Read { _guard: guard })
    }

    /// A start's lease; waits for the file operations in progress, up to
    /// [`LEASE_WAIT`].
    pub(super) async fn write(&self, id: &str, name: &str) -> Result<LayerLease, RuntimeError> {
        match tokio::time::timeout(LEASE_WAIT, self.lock_of(id).write_owned()).await {
            Ok(guard) => Ok(self.lease(id, LeaseGuard::Write { _guard: guard })),
            Err(_) => Err(FsError::Unsupported(format!(
                "the files of container {name} are being copied; start it once that is done"
            ))
            .into()),
        }
    }
}

impl Drop for LayerLease {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.leases.0.lock().expect("leases poisoned");
        if map.get(&self.id).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&self.id);
        }
    }
}

/// A container's uid and gid maps (container ids to host ids).
#[derive(Debug, Clone, Default)]
pub struct IdMaps {
    uid: Vec<IdMapping>,
    gid: Vec<IdMapping>,
}

fn to_host(map: &[IdMapping], id: u32) -> Option<u32> {
    map.iter().find_map(|m| {
        let off = id.checked_sub(m.container_id)?;
        (off < m.size).then(|| m.host_id + off)
    })
}

fn to_container(map: &[IdMapping], id: u32) -> Option<u32> {
    map.iter().find_map(|m| {
        let off = id.checked_sub(m.host_id)?;
        (off < m.size).then(|| m.container_id + off)
    })
}

impl IdMaps {
    /// Host ids of an archive entry's owner, if the namespace maps them.
    pub fn host_ids(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        Some((to_host(&self.uid, uid)?, to_host(&self.gid, gid)?))
    }

    /// The container's view of host ids; ids it does not map show as `nobody`
    /// (65534), as the kernel shows them inside the namespace.
    pub fn container_ids(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            to_container(&self.uid, uid).unwrap_or(65534),
            to_container(&self.gid, gid).unwrap_or(65534),
        )
    }
}

/// An open view of a container's root filesystem.
pub struct ContainerFs {
    /// `O_PATH` fd of the container's `/`.
    root: OwnedFd,
    /// The user namespace's maps, if the container has one.
    ids: Option<IdMaps>,
    /// Mount points inside the root other than `/` (running containers): an export
    /// does not descend into them, as `docker export` has only the container's layers.
    mount_points: Vec<Vec<OsString>>,
    /// Keeps starts away while the layers are in use (see [`LayerLeases`]).
    _lease: Option<LayerLease>,
}

/// A path resolved inside the container.
pub struct Resolved {
    /// Its components from the root, symlinks resolved (the last one only if asked).
    pub comps: Vec<OsString>,
    /// `O_PATH | O_NOFOLLOW` fd of the path itself.
    fd: OwnedFd,
    /// `O_PATH` fd of its parent directory (the root for `/`).
    parent: OwnedFd,
    /// Its `lstat`.
    pub stat: FileStat,
}

impl Resolved {
    /// The absolute path inside the container.
    pub fn path(&self) -> String {
        let mut p = String::new();
        for c in &self.comps {
            p.push('/');
            p.push_str(&c.to_string_lossy());
        }
        if p.is_empty() {
            p.push('/');
        }
        p
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.stat.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

impl Runtime {
    /// Opens the root filesystem of the container `reference` (see the module docs for
    /// how, by state).
    pub async fn container_fs(
        &self,
        reference: &str,
    ) -> Result<(Container, ContainerFs), RuntimeError> {
        let first = self.container(reference).await?;
        // From here on no run can start, so the state read next can only go from
        // running to exited.
        let lease = self.inner.layer_leases.read(&first.id).await;
        let mut c = self.container(&first.id).await?;
        let ids = c.config.userns.as_ref().map(|u| IdMaps {
            uid: u.uid_map.clone(),
            gid: u.gid_map.clone(),
        });
        if let (ContainerState::Running, Some(pid)) = (c.state, c.pid) {
            let opened = tokio::task::spawn_blocking(move || open_proc_root(pid))
                .await
                .expect("open_proc_root does not panic");
            // The pid is only ours while the container still runs as that pid:
            // checked after the open, so the fd cannot be some later process's root.
            let now = self.container(&c.id).await?;
            let same = now.state == ContainerState::Running && now.pid == Some(pid);
            match opened {
                Ok((root, mount_points)) if same => {
                    return Ok((
                        c,
                        ContainerFs {
                            root,
                            ids,
                            mount_points,
                            _lease: Some(lease),
                        },
                    ))
                }
                Err(source) if same => {
                    return Err(FsError::OpenRoot { id: c.id, source }.into());
                }
                // It exited meanwhile: its layers are free now.
                _ => c = now,
            }
        }
        if c.state == ContainerState::Running {
            return Err(FsError::Unsupported(format!(
                "container {} runs without a process to reach its files through",
                c.name
            ))
            .into());
        }
        if ids.is_some() {
            return Err(FsError::Unsupported(format!(
                "container {} has a user namespace: its files can be copied only while it runs",
                c.name
            ))
            .into());
        }
        let lowers = self.image_lowers(&c.image_id).await?;
        let dir = self.inner.paths.container_dir(&c.id);
        let disk = c.resources.disk_bytes.map(|_| dir.join(super::disk::IMAGE));
        if disk.as_ref().is_some_and(|d| !d.exists()) {
            return Err(FsError::Unsupported(format!(
                "container {} has a disk limit and never ran: its writable layer is made at its first start",
                c.name
            ))
            .into());
        }
        let id = c.id.clone();
        let limited = disk.is_some();
        let root =
            tokio::task::spawn_blocking(move || stopped_root(&lowers, &dir, disk.as_deref()))
                .await
                .expect("stopped_root does not panic")
                .map_err(|source| {
                    // Some kernels refuse an overlay whose upper dir is on a detached
                    // mount (the disk image's): say so, rather than a 500.
                    if limited && source.raw_os_error() == Some(libc::EINVAL) {
                        FsError::Unsupported(format!(
                            "container {} has a disk limit and this kernel cannot mount its \
                             writable layer while it is stopped: its files can be copied \
                             while it runs",
                            c.name
                        ))
                    } else {
                        FsError::OpenRoot { id, source }
                    }
                })?;
        Ok((
            c,
            ContainerFs {
                root,
                ids: None,
                mount_points: Vec::new(),
                _lease: Some(lease),
            },
        ))
    }

    /// The owner `docker cp -a` (`copyUIDGID`) gives the files it copies in: the
    /// container's configured user, as the image's `/etc/passwd` and `/etc/group` name
    /// it; `None` when no user is configured (dockerd then keeps the archive's owners).
    pub async fn copy_owner(&self, c: &Container) -> Result<Option<(u32, u32)>, RuntimeError> {
        if c.config.user.is_empty() {
            return Ok(None);
        }
        let lowers = self.image_lowers(&c.image_id).await?;
        let user = c.config.user.clone();
        let u = tokio::task::spawn_blocking(move || {
            crate::image::users::resolve_layers(&lowers, &user)
        })
        .await
        .expect("resolve_layers does not panic")?;
        Ok(Some((u.uid, u.gid)))
    }

    /// The changes of the container's writable layer against its image.
    pub async fn container_changes(&self, reference: &str) -> Result<Vec<Change>, RuntimeError> {
        let first = self.container(reference).await?;
        // A stopped container's disk image is mounted here: no run may start meanwhile.
        let _lease = self.inner.layer_leases.read(&first.id).await;
        let c = self.container(&first.id).await?;
        let dir = self.inner.paths.container_dir(&c.id);
        let disk = match c.resources.disk_bytes {
            None => None,
            // The run has the image mounted, and ext4 cannot be mounted twice.
            Some(_) if c.state == ContainerState::Running => {
                return Err(FsError::Unsupported(format!(
                    "container {} has a disk limit: its changes can be listed only while it is stopped",
                    c.name
                ))
                .into())
            }
            Some(_) => {
                let image = dir.join(super::disk::IMAGE);
                if !image.exists() {
                    // Never ran: nothing changed yet.
                    return Ok(Vec::new());
                }
                Some(image)
            }
        };
        let lowers = self.image_lowers(&c.image_id).await?;
        tokio::task::spawn_blocking(move || match disk {
            None => changes(&dir.join("upper"), &lowers),
            Some(image) => {
                let disk = boxd_shim::detached_disk_mount(&image)?;
                let upper = PathBuf::from(format!("/proc/self/fd/{}/upper", disk.as_raw_fd()));
                changes(&upper, &lowers)
            }
        })
        .await
        .expect("changes does not panic")
        .map_err(|source| {
            FsError::Io {
                op: "read the changes of",
                path: "/".into(),
                source,
            }
            .into()
        })
    }
}

/// `/proc/<pid>/root` and the mount points below it (from `/proc/<pid>/mountinfo`).
fn open_proc_root(pid: u32) -> io::Result<(OwnedFd, Vec<Vec<OsString>>)> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    // Following the magic link is the point here; it is the kernel's, not the
    // container's.
    let root = nix::fcntl::open(
        &proc.join("root"),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mountinfo = std::fs::read(proc.join("mountinfo"))?;
    Ok((root, mount_points(&mountinfo)))
}

/// The mount points of a mountinfo text other than `/`, as path components (the
/// fifth field, with the kernel's octal escapes of space, tab, newline and backslash).
fn mount_points(mountinfo: &[u8]) -> Vec<Vec<OsString>> {
    let mut out = Vec::new();
    for line in mountinfo.split(|b| *b == b'\n') {
        let Some(field) = line.split(|b| *b == b' ').nth(4) else {
            continue;
        };
        let mut raw = Vec::with_capacity(field.len());
        let mut i = 0;
        while i < field.len() {
            if field[i] == b'\\'
                && i + 3 < field.len()
                && field[i + 1..i + 4]
                    .iter()
                    .all(|d| (b'0'..=b'7').contains(d))
            {
                let v =
                    (field[i + 1] - b'0') * 64 + (field[i + 2] - b'0') * 8 + (field[i + 3] - b'0');
                raw.push(v);
                i += 4;
            } else {
                raw.push(field[i]);
                i += 1;
            }
        }
        let comps: Vec<OsString> = raw
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .map(|c| OsStr::from_bytes(c).to_owned())
            .collect();
        if !comps.is_empty() && !out.contains(&comps) {
            out.push(comps);
        }
    }
    out
}

/// The root of a stopped container: a detached overlay of its layers, whose upper and
/// work dirs are in its container dir or, with a disk limit, on its disk image (then
/// mounted detached too, and reached through `/proc/self/fd`; the overlay keeps its
/// own reference to it, so the image's mount goes when the overlay does).
fn stopped_root(lowers: &[PathBuf], dir: &Path, disk_image: Option<&Path>) -> io::Result<OwnedFd> {
    match disk_image {
        None => detached_overlay(lowers, &dir.join("upper"), &dir.join("work")),
        Some(image) => {
            let disk = boxd_shim::detached_disk_mount(image)?;
            let base = PathBuf::from(format!("/proc/self/fd/{}", disk.as_raw_fd()));
            detached_overlay(lowers, &base.join("upper"), &base.join("work"))
        }
    }
}

/// A detached overlay mount of the layers: an fd of its root, never attached to any
/// mount point (see the module docs).
fn detached_overlay(lowers: &[PathBuf], upper: &Path, work: &Path) -> io::Result<OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    let lowerdir = lowers
        .iter()
        .map(|l| l.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "lowerdir", lowerdir.as_str())?;
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    // As the shim mounts it: no index, so the layers are not tied to one mount.
    fsconfig_set_string(&fs, "index", "off")?;
    fsconfig_create(&fs)?;
    Ok(fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?)
}

/// Splits a container path into its components, keeping `.` and `..` for the
/// resolver; whether it names a directory's contents (`dir/` or `dir/.`) is told apart.
fn split(path: &str) -> Vec<OsString> {
    path.as_bytes()
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsStr::from_bytes(c).to_owned())
        .collect()
}

impl ContainerFs {
    fn reopen_root(&self) -> Result<OwnedFd, FsError> {
        openat(
            &self.root,
            ".",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open", "/"))
    }

    /// Resolves `path` inside the container as if chrooted there. The last component
    /// is followed when it is a symlink only if `follow_last` (or the path ends in `/`
    /// or `/.`, which means the directory itself).
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<Resolved, FsError> {
        let follow_last = follow_last || path.ends_with('/') || path.ends_with("/.");
        let mut pending: Vec<OsString> = split(path);
        pending.reverse(); // popped from the end
                           // The resolved directories, each with its fd; the root is the base.
        let mut stack: Vec<(OsString, OwnedFd)> = Vec::new();
        let mut links = 0;
        let mut last: Option<(OsString, OwnedFd, FileStat)> = None;
        while let Some(comp) = pending.pop() {
            if let Some((name, fd, _)) = last.take() {
                stack.push((name, fd));
            }
            match comp.as_bytes() {
                b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let cur = match stack.last() {
                Some((_, fd)) => fd.try_clone().map_err(|e| FsError::Io {
                    op: "open",
                    path: path.to_owned(),
                    source: e,
                })?,
                None => self.reopen_root()?,
            };
            let fd = match openat(&cur, comp.as_os_str(), PATH_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    return Err(FsError::NotFound {
                        path: path.to_owned(),
                    })
                }
                Err(e) => return Err(sys("open", path)(e)),
            };
            let st = fstat(&fd).map_err(sys("stat", path))?;
            let is_last = pending.iter().all(|c| c == ".");
            match st.st_mode & libc::S_IFMT {
                libc::S_IFLNK if !is_last || follow_last => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(FsError::SymlinkLoop {
                            path: path.to_owned(),
                        });
                    }
                    let target =
                        readlinkat(&cur, comp.as_os_str()).map_err(sys("read link", path))?;
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    let mut more = split(&String::from_utf8_lossy(target));
                    // Non-UTF-8 targets: split the bytes themselves.
                    if std::str::from_utf8(target).is_err() {
                        more = target
                            .split(|b| *b == b'/')
                            .filter(|c| !c.is_empty())
                            .map(|c| OsStr::from_bytes(c).to_owned())
                            .collect();
                    }
                    pending.extend(more.into_iter().rev());
                }
                libc::S_IFDIR => last = Some((comp, fd, st)),
                _ if is_last => last = Some((comp, fd, st)),
                _ => {
                    return Err(FsError::NotADirectory {
                        path: path.to_owned(),
                    })
                }
            }
        }
        match last {
            Some((name, fd, stat)) => {
                let parent = match stack.last() {
                    Some((_, fd)) => fd.try_clone().map_err(|e| FsError::Io {
                        op: "open",
                        path: path.to_owned(),
                        source: e,
                    })?,
                    None => self.reopen_root()?,
                };
                let mut comps: Vec<OsString> = stack.into_iter().map(|(n, _)| n).collect();
                comps.push(name);
                if (path.ends_with('/') || path.ends_with("/."))
                    && stat.st_mode & libc::S_IFMT != libc::S_IFDIR
                {
                    return Err(FsError::NotADirectory {
                        path: path.to_owned(),
                    });
                }
                Ok(Resolved {
                    comps,
                    fd,
                    parent,
                    stat,
                })
            }
            None => {
                // The path resolved to a directory already on the stack, or the root.
                let (comps, fd, parent) = match stack.pop() {
                    Some((name, fd)) => {
                        let parent = match stack.last() {
                            Some((_, p)) => p.try_clone().map_err(|e| FsError::Io {
                                op: "open",
                                path: path.to_owned(),
                                source: e,
                            })?,
                            None => self.reopen_root()?,
                        };
                        let mut comps: Vec<OsString> = stack.into_iter().map(|(n, _)| n).collect();
                        comps.push(name);
                        (comps, fd, parent)
                    }
                    None => (Vec::new(), self.reopen_root()?, self.reopen_root()?),
                };
                let stat = fstat(&fd).map_err(sys("stat", path))?;
                // `file/.`: the `.` made the file look like a directory on the stack.
                if stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(FsError::NotADirectory {
                        path: path.to_owned(),
                    });
                }
                Ok(Resolved {
                    comps,
                    fd,
                    parent,
                    stat,
                })
            }
        }
    }

    /// Where a symlink at `r` leads inside the container (absolute), or `""` for
    /// anything else, as Docker's `linkTarget`.
    pub fn link_target(&self, r: &Resolved) -> String {
        if r.stat.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return String::new();
        }
        match self.resolve(&r.path(), true) {
            Ok(t) => t.path(),
            // A dangling link: its target as written, made absolute against its dir.
            Err(_) => readlinkat(
                &r.parent,
                r.comps.last().map_or(OsStr::new("."), |c| c.as_os_str()),
            )
            .map(|t| {
                let t = t.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    t
                } else {
                    let dir = &r.comps[..r.comps.len().saturating_sub(1)];
                    let mut p: String = dir
                        .iter()
                        .map(|c| format!("/{}", c.to_string_lossy()))
                        .collect();
                    p.push('/');
                    p.push_str(&t);
                    p
                }
            })
            .unwrap_or_default(),
        }
    }

    /// The owner of a file as an archive shows it.
    fn owner(&self, st: &FileStat) -> (u32, u32) {
        match &self.ids {
            Some(ids) => ids.container_ids(st.st_uid, st.st_gid),
            None => (st.st_uid, st.st_gid),
        }
    }

    /// Writes a tar of `r` to `out`, its entries named from `name` (`name`,
    /// `name/child`, ...; `"."` gives `./child`; `""`, for a directory, only its
    /// contents as `child`). With `skip_mounts`, directories that are mount points
    /// are archived empty.
    pub fn write_tar(
        &self,
        r: &Resolved,
        name: &str,
        skip_mounts: bool,
        out: impl Write,
    ) -> Result<(), FsError> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        builder.follow_symlinks(false);
        let mut w = TarWalk {
            fs: self,
            builder: &mut builder,
            skip_mounts,
        };
        let name = name.as_bytes();
        let fd = r.fd.try_clone().map_err(|e| FsError::Io {
            op: "open",
            path: r.path(),
            source: e,
        })?;
        w.entry(
            &r.parent,
            fd,
            r.comps.last().map(|c| c.as_os_str()),
            &r.comps,
            name,
            0,
        )?;
        builder.finish().map_err(|e| FsError::Io {
            op: "write the archive of",
            path: r.path(),
            source: e,
        })
    }

    /// Unpacks the tar `body` into the directory `r`, with the archive's owners or,
    /// if given, `owner` for every file (mapped into the user namespace, if any).
    pub fn unpack(
        &self,
        r: &Resolved,
        body: impl Read,
        no_overwrite_dir_non_dir: bool,
        owner: Option<(u32, u32)>,
    ) -> Result<u64, FsError> {
        let ids = self.ids.clone();
        let owners: Option<crate::image::OwnerMap> = match (owner, ids) {
            (None, None) => None,
            (owner, ids) => Some(Box::new(move |u, g| {
                let (u, g) = owner.unwrap_or((u, g));
                match &ids {
                    Some(ids) => ids.host_ids(u, g),
                    None => Some((u, g)),
                }
            })),
        };
        let dir = openat(
            &r.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open", &r.path()))?;
        Ok(crate::image::unpack_into_dir(
            body,
            &dir,
            crate::image::DirUnpack::new(no_overwrite_dir_non_dir, owners),
        )?)
    }
}

struct TarWalk<'a, W: Write> {
    fs: &'a ContainerFs,
    builder: &'a mut tar::Builder<W>,
    skip_mounts: bool,
}

impl<W: Write> TarWalk<'_, W> {
    /// Archives the node `fd` (`O_PATH`, not followed), named `name` in `parent`, at
    /// `comps` in the container, as `tar_name`.
    fn entry(
        &mut self,
        parent: &OwnedFd,
        fd: OwnedFd,
        name: Option<&OsStr>,
        comps: &[OsString],
        tar_name: &[u8],
        depth: usize,
    ) -> Result<(), FsError> {
        let shown = || {
            let p: String = comps
                .iter()
                .map(|c| format!("/{}", c.to_string_lossy()))
                .collect();
            if p.is_empty() {
                "/".to_owned()
            } else {
                p
            }
        };
        let io_err = |op: &'static str| {
            let path = shown();
            move |source: io::Error| FsError::Io { op, path, source }
        };
        if depth > MAX_DEPTH {
            return Err(FsError::Io {
                op: "archive",
                path: shown(),
                source: io::Error::other("tree too deep"),
            });
        }
        let st = fstat(&fd).map_err(sys("stat", &shown()))?;
        let mut header = tar::Header::new_gnu();
        let (uid, gid) = self.fs.owner(&st);
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mode(st.st_mode & 0o7777);
        header.set_mtime(st.st_mtime.max(0) as u64);
        header.set_size(0);
        let write_err = io_err("write the archive at");
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {
                header.set_entry_type(tar::EntryType::Regular);
                let size = st.st_size.max(0) as u64;
                header.set_size(size);
                // Reopened through the checked O_PATH fd: the very inode just stat'ed.
                let file = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .map_err(io_err("open"))?;
                // The file may change size while it is read: exactly `size` bytes go
                // into the archive, zero-padded if it shrank.
                let data = file.take(size).chain(io::repeat(0)).take(size);
                append_raw(self.builder, &mut header, tar_name, None, data).map_err(write_err)?;
            }
            libc::S_IFLNK => {
                header.set_entry_type(tar::EntryType::Symlink);
                let target = match name {
                    Some(n) => readlinkat(parent, n),
                    None => Err(Errno::EINVAL),
                }
                .map_err(sys("read link", &shown()))?;
                append_raw(
                    self.builder,
                    &mut header,
                    tar_name,
                    Some(target.as_bytes()),
                    io::empty(),
                )
                .map_err(write_err)?;
            }
            libc::S_IFDIR => {
                header.set_entry_type(tar::EntryType::Directory);
                let mut dir_name = tar_name.to_vec();
                if !dir_name.is_empty() && !dir_name.ends_with(b"/") {
                    dir_name.push(b'/');
                }
                if !dir_name.is_empty() {
                    append_raw(self.builder, &mut header, &dir_name, None, io::empty())
                        .map_err(write_err)?;
                }
                if self.skip_mounts
                    && !comps.is_empty()
                    && self.fs.mount_points.iter().any(|m| m.as_slice() == comps)
                {
                    return Ok(());
                }
                let mut dir = Dir::openat(
                    &fd,
                    ".",
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys("open", &shown()))?;
                let mut names: Vec<OsString> = Vec::new();
                for ent in dir.iter() {
                    let ent = ent.map_err(sys("list", &shown()))?;
                    let n = ent.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        names.push(OsStr::from_bytes(n).to_owned());
                    }
                }
                drop(dir);
                names.sort();
                for n in names {
                    let child = match openat(&fd, n.as_os_str(), PATH_FLAGS, Mode::empty()) {
                        Ok(c) => c,
                        // Removed meanwhile: it is simply not in the archive.
                        Err(Errno::ENOENT) => continue,
                        Err(e) => return Err(sys("open", &shown())(e)),
                    };
                    let mut child_comps = comps.to_vec();
                    child_comps.push(n.clone());
                    let mut child_name = dir_name.clone();
                    child_name.extend_from_slice(n.as_bytes());
                    self.entry(
                        &fd,
                        child,
                        Some(n.as_os_str()),
                        &child_comps,
                        &child_name,
                        depth + 1,
                    )?;
                }
            }
            kind @ (libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO) => {
                header.set_entry_type(match kind {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                if kind != libc::S_IFIFO {
                    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
                    header.set_device_major(major).map_err(write_err)?;
                    let write_err = io_err("write the archive at");
                    header.set_device_minor(minor).map_err(write_err)?;
                }
                let write_err = io_err("write the archive at");
                append_raw(self.builder, &mut header, tar_name, None, io::empty())
                    .map_err(write_err)?;
            }
            // Sockets have no tar form (tar and dockerd skip them too).
            _ => {}
        }
        Ok(())
    }
}

/// Appends an entry whose name (and link target) are written byte for byte: the tar
/// crate's own setters drop `.` components, but dockerd names the entries of `dir/.`
/// `./x`, and the CLI's rebasing of them relies on it. Names and targets over 100
/// bytes get GNU long-name records (`././@LongLink`), as GNU tar and dockerd write.
fn append_raw<W: Write>(
    b: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    if let Some(link) = link.filter(|l| l.len() > 100) {
        long_record(b, tar::EntryType::GNULongLink, link)?;
    }
    if name.len() > 100 {
        long_record(b, tar::EntryType::GNULongName, name)?;
    }
    let old = header.as_old_mut();
    old.name = [0; 100];
    let n = name.len().min(100);
    old.name[..n].copy_from_slice(&name[..n]);
    if let Some(link) = link {
        old.linkname = [0; 100];
        let n = link.len().min(100);
        old.linkname[..n].copy_from_slice(&link[..n]);
    }
    header.set_cksum();
    b.append(header, data)
}

fn long_record<W: Write>(
    b: &mut tar::Builder<W>,
    kind: tar::EntryType,
    value: &[u8],
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    let name = b"././@LongLink";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(value.len() as u64 + 1);
    h.set_entry_type(kind);
    h.set_cksum();
    b.append(&h, value.chain(&[0u8][..]))
}

/// One changed path of a container's writable layer, as `docker diff` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path inside the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Docker's change kinds (the numbers are the wire's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Present in the image and changed (0).
    Modified = 0,
    /// Not in the image (1).
    Added = 1,
    /// In the image, removed (2).
    Deleted = 2,
}

/// The changes recorded in an overlay upper dir against its lower dirs (topmost
/// first): a whiteout (character device 0/0) is a deletion; anything else is a
/// modification if a lower layer has the path and an addition otherwise; a directory
/// counts as modified only when its own mtime differs from the image's or it is
/// opaque (its lower contents are hidden: those are listed as deleted). The upper
/// and lower dirs are walked through fds with `O_NOFOLLOW` as both hold the
/// container's or the image's symlinks.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let upper_fd = nix::fcntl::open(upper, dir_flags, Mode::empty())?;
    let lower_fds: Vec<Option<OwnedFd>> = lowers
        .iter()
        .map(|l| nix::fcntl::open(l, dir_flags, Mode::empty()).ok())
        .collect();
    let mut out = Vec::new();
    walk_changes(&upper_fd, &lower_fds, "", 0, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn lstat_at(dir: &impl AsFd, name: &OsStr) -> Option<FileStat> {
    fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok()
}

fn is_whiteout(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn list(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut d = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for ent in d.iter() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `upper` is a directory of the upper layer at `prefix`; `lowers` the same directory
/// in each lower layer (topmost first), `None` where a layer does not have it (or a
/// higher layer hides it).
fn walk_changes(
    upper: &OwnedFd,
    lowers: &[Option<OwnedFd>],
    prefix: &str,
    depth: usize,
    out: &mut Vec<Change>,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other("tree too deep"));
    }
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for name in list(upper)? {
        let path = format!("{prefix}/{}", name.to_string_lossy());
        let Some(st) = lstat_at(upper, &name) else {
            continue;
        };
        // What the image has here: the first layer with the name, unless a whiteout.
        let mut lower_st = None;
        for l in lowers.iter().flatten() {
            if let Some(s) = lstat_at(l, &name) {
                if !is_whiteout(&s) {
                    lower_st = Some(s);
                }
                break;
            }
        }
        if is_whiteout(&st) {
            out.push(Change {
                path,
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if !is_dir {
            let kind = if lower_st.is_some() {
                ChangeKind::Modified
            } else {
                ChangeKind::Added
            };
            out.push(Change { path, kind });
            continue;
        }
        let child = openat(upper, name.as_os_str(), dir_flags, Mode::empty())?;
        let opaque =
            xattr::FileExt::get_xattr(&File::from(child.try_clone()?), "trusted.overlay.opaque")
                .ok()
                .flatten()
                .is_some_and(|v| v == b"y");
        let lower_is_dir = lower_st
            .as_ref()
            .is_some_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR);
        match &lower_st {
            None => out.push(Change {
                path: path.clone(),
                kind: ChangeKind::Added,
            }),
            Some(s)
                if !lower_is_dir
                    || opaque
                    || s.st_mtime != st.st_mtime
                    || s.st_mtime_nsec != st.st_mtime_nsec =>
            {
                out.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Modified,
                })
            }
            Some(_) => {}
        }
        // The same directory in the lower layers, down to the first one that is not a
        // directory there or is opaque (it hides those below).
        let mut child_lowers = Vec::with_capacity(lowers.len());
        let mut hidden = opaque || !lower_is_dir;
        for l in lowers {
            if hidden {
                child_lowers.push(None);
                continue;
            }
            let Some(l) = l else {
                child_lowers.push(None);
                continue;
            };
            match openat(l, name.as_os_str(), dir_flags, Mode::empty()) {
                Ok(fd) => {
                    if xattr::FileExt::get_xattr(
                        &File::from(fd.try_clone()?),
                        "trusted.overlay.opaque",
                    )
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y")
                    {
                        hidden = true;
                    }
                    child_lowers.push(Some(fd));
                }
                Err(_) => {
                    if lstat_at(l, &name).is_some() {
                        hidden = true;
                    }
                    child_lowers.push(None);
                }
            }
        }
        if opaque && lower_is_dir {
            // The image's entries of this directory that the opaque one hides.
            let mut seen = list(&child)?;
            let mut image_dirs = Vec::new();
            let mut stop = false;
            for l in lowers.iter().flatten() {
                if stop {
                    break;
                }
                if let Ok(fd) = openat(l, name.as_os_str(), dir_flags, Mode::empty()) {
                    stop = xattr::FileExt::get_xattr(
                        &File::from(fd.try_clone()?),
                        "trusted.overlay.opaque",
                    )
                    .ok()
                    .flatten()
                    .is_some_and(|v| v == b"y");
                    image_dirs.push(fd);
                } else {
                    break;
                }
            }
            for fd in &image_dirs {
                for n in list(fd)? {
                    if seen.contains(&n) {
                        continue;
                    }
                    let hidden_st = lstat_at(fd, &n);
                    seen.push(n.clone());
                    if hidden_st.is_some_and(|s| !is_whiteout(&s)) {
                        out.push(Change {
                            path: format!("{path}/{}", n.to_string_lossy()),
                            kind: ChangeKind::Deleted,
                        });
                    }
                }
            }
        }
        walk_changes(&child, &child_lowers, &path, depth + 1, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A view of a plain directory, as of a stopped container's root.
    fn fs_of(dir: &Path) -> ContainerFs {
        ContainerFs {
            root: nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap(),
            ids: None,
            mount_points: Vec::new(),
            _lease: None,
        }
    }

    /// A root with `/etc/passwd` and links that try to leave it.
    fn hostile_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root:x:0:0\n").unwrap();
        symlink("/", r.join("to_root")).unwrap();
        symlink("../../../../../..", r.join("up")).unwrap();
        symlink("/etc/passwd", r.join("abs")).unwrap();
        symlink("etc", r.join("rel")).unwrap();
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        t
    }

    fn comps(r: &Resolved) -> String {
        r.path()
    }

    #[test]
    fn paths_resolve_as_if_chrooted() {
        let t = hostile_root();
        let fs = fs_of(t.path());
        let ok = |p: &str, follow: bool| comps(&fs.resolve(p, follow).unwrap());
        assert_eq!(ok("/etc/passwd", false), "/etc/passwd");
        assert_eq!(ok("etc/passwd", false), "/etc/passwd");
        assert_eq!(ok("/to_root/etc/passwd", false), "/etc/passwd");
        assert_eq!(ok("/up/etc/passwd", false), "/etc/passwd");
        assert_eq!(ok("/../../etc/../etc/passwd", false), "/etc/passwd");
        assert_eq!(ok("/rel/passwd", false), "/etc/passwd");
        assert_eq!(ok("/", false), "/");
        assert_eq!(ok("/to_root", true), "/");
        assert_eq!(ok("/etc/.", false), "/etc");
        assert_eq!(ok("/rel/", false), "/etc");
        // The last component is the link itself unless followed.
        let link = fs.resolve("/abs", false).unwrap();
        assert_eq!(link.stat.st_mode & libc::S_IFMT, libc::S_IFLNK);
        assert_eq!(fs.link_target(&link), "/etc/passwd");
        assert_eq!(ok("/abs", true), "/etc/passwd");
        // The host's own path of the root does not exist inside it.
        let host = format!("/to_root{}/etc/passwd", t.path().display());
        assert!(matches!(
            fs.resolve(&host, true),
            Err(FsError::NotFound { .. })
        ));
        let host = format!("/up{}/etc/passwd", t.path().display());
        assert!(matches!(
            fs.resolve(&host, true),
            Err(FsError::NotFound { .. })
        ));
        assert!(matches!(
            fs.resolve("/a", true),
            Err(FsError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            fs.resolve("/etc/passwd/x", false),
            Err(FsError::NotADirectory { .. })
        ));
        assert!(matches!(
            fs.resolve("/etc/passwd/", false),
            Err(FsError::NotADirectory { .. })
        ));
        assert!(matches!(
            fs.resolve("/etc/passwd/.", false),
            Err(FsError::NotADirectory { .. })
        ));
        assert!(matches!(
            fs.resolve("/abs/..", false),
            Err(FsError::NotADirectory { .. })
        ));
        assert_eq!(ok("/rel/..", false), "/");
        assert_eq!(ok("/etc/./../rel/./passwd", false), "/etc/passwd");
    }

    #[test]
    fn archives_hold_links_not_what_they_point_at() {
        let t = hostile_root();
        let fs = fs_of(t.path());
        let r = fs.resolve("/", false).unwrap();
        let mut tar_bytes = Vec::new();
        fs.write_tar(&r, "", false, &mut tar_bytes).unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            if path == "to_root" {
                assert_eq!(e.header().entry_type(), tar::EntryType::Symlink);
                assert_eq!(e.link_name().unwrap().unwrap(), Path::new("/"));
            }
            seen.push(path);
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "a",
                "abs",
                "b",
                "etc/",
                "etc/passwd",
                "rel",
                "to_root",
                "up"
            ]
        );
    }

    #[test]
    fn unpacking_never_writes_through_a_planted_symlink() {
        let t = hostile_root();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), t.path().join("etc/escape")).unwrap();
        let fs = fs_of(t.path());
        let target = fs.resolve("/etc", false).unwrap();
        let mut body = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        body.append_data(&mut h, "escape/pwned", &b"evil"[..])
            .unwrap();
        let body = body.into_inner().unwrap();
        assert!(fs.unpack(&target, body.as_slice(), true, None).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        // A plain file lands in the target directory.
        let mut ok = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        ok.append_data(&mut h, "new.txt", &b"hi"[..]).unwrap();
        let ok = ok.into_inner().unwrap();
        fs.unpack(&target, ok.as_slice(), true, None).unwrap();
        assert_eq!(std::fs::read(t.path().join("etc/new.txt")).unwrap(), b"hi");
        // noOverwriteDirNonDir: a file over a directory is refused.
        std::fs::create_dir(t.path().join("etc/d")).unwrap();
        let mut over = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        over.append_data(&mut h, "d", &b""[..]).unwrap();
        let over = over.into_inner().unwrap();
        assert!(fs.unpack(&target, over.as_slice(), true, None).is_err());
        assert!(t.path().join("etc/d").is_dir());
    }

    #[test]
    fn changes_of_an_upper_dir() {
        boxd_testutil::require_root!();
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in [
            "lower/etc",
            "lower/bin",
            "lower/opq/old",
            "upper/etc",
            "upper/new",
            "upper/opq",
            "upper/bin",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::write(lower.join("etc/group"), "root\n").unwrap();
        std::fs::write(lower.join("bin/true"), "x").unwrap();
        std::fs::write(upper.join("etc/group"), "root\nextra\n").unwrap();
        std::fs::write(upper.join("new/file"), "n").unwrap();
        nix::sys::stat::mknod(
            &upper.join("bin/true"),
            nix::sys::stat::SFlag::S_IFCHR,
            Mode::empty(),
            0,
        )
        .unwrap();
        xattr::set(upper.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
        // Same mtime as the image's: not a change of its own.
        let mtime = std::fs::metadata(lower.join("bin"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::File::open(upper.join("bin"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let later = mtime + std::time::Duration::from_secs(5);
        std::fs::File::open(upper.join("etc"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let got: Vec<(String, ChangeKind)> = changes(&upper, &[lower])
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        use ChangeKind::*;
        let want: Vec<(String, ChangeKind)> = [
            ("/bin/true", Deleted),
            ("/etc", Modified),
            ("/etc/group", Modified),
            ("/new", Added),
            ("/new/file", Added),
            ("/opq", Modified),
            ("/opq/old", Deleted),
        ]
        .into_iter()
        .map(|(p, k)| (p.to_owned(), k))
        .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_start_waits_for_the_copies_holding_its_layers() {
        let leases = LayerLeases::default();
        let copy = leases.read("c1").await;
        let other = leases.read("c2").await;
        let start = tokio::spawn({
            let leases = leases.clone();
            async move { leases.write("c1", "web").await.map(|_| ()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!start.is_finished(), "the start did not wait for the copy");
        drop(copy);
        start.await.unwrap().unwrap();
        // Another container's copy does not matter; entries go with their holders.
        drop(other);
        assert!(leases.0.lock().unwrap().is_empty());
    }

    #[test]
    fn mount_points_come_from_the_fifth_field_unescaped() {
        let info = b"22 1 0:40 / / rw - overlay overlay rw\n\
23 22 0:5 / /proc rw - proc proc rw\n\
24 22 0:41 / /data\\040dir rw - tmpfs tmpfs rw\n\
25 23 0:42 / /proc/sys ro - proc proc rw\n";
        let m = mount_points(info);
        assert_eq!(
            m,
            vec![
                vec![OsString::from("proc")],
                vec![OsString::from("data dir")],
                vec![OsString::from("proc"), OsString::from("sys")],
            ]
        );
    }

    #[test]
    fn id_maps_go_both_ways() {
        let line = |c, h, s| IdMapping {
            container_id: c,
            host_id: h,
            size: s,
        };
        let ids = IdMaps {
            uid: vec![line(0, 100_000, 65536)],
            gid: vec![line(0, 200_000, 65536)],
        };
        assert_eq!(ids.host_ids(0, 0), Some((100_000, 200_000)));
        assert_eq!(ids.host_ids(1000, 5), Some((101_000, 200_005)));
        assert_eq!(ids.host_ids(70_000, 0), None);
        assert_eq!(ids.container_ids(101_000, 200_005), (1000, 5));
        assert_eq!(ids.container_ids(0, 0), (65534, 65534));
    }
}
