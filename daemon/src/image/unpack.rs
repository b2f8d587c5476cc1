//! Safe unpacking of a (possibly compressed) rootfs tarball into a fresh directory.
//!
//! Invariants callers rely on:
//! - nothing is ever created, modified or followed outside the target directory: every
//!   operation is relative to a directory fd reached from the target by opening one
//!   component at a time with `O_NOFOLLOW | O_DIRECTORY`, so a symlink planted by the
//!   archive (or a `..`/absolute name) can never redirect a write (the classic
//!   failures: Python tarfile's CVE-2007-4559, "zip slip", docker cp's CVE-2018-15664);
//! - the returned digest is the sha256 of the whole *uncompressed* tar stream (the OCI
//!   `diff_id`), end-of-archive padding included;
//! - errors caused by the archive itself are `is_bad_input()`; failures of our own disk
//!   are not.
//!
//! The image store unpacks into a directory only this process writes to (its private
//! temp dir). [`unpack_into_dir`] unpacks into a directory somebody else may be writing
//! to at the same time (a running container's, for `docker cp`): every call below is
//! therefore either relative to a directory fd with `O_NOFOLLOW`, or made on an fd, or
//! made by name with `AT_SYMLINK_NOFOLLOW`; a node (fifo, device) is chmod'ed through
//! `/proc/self/fd` of an `O_PATH` fd whose type was checked, never by following a name.

use std::cell::Cell;
use std::cmp::Reverse;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use sha2::{Digest, Sha256};

use super::ImageError;

/// Longest path we accept (Linux `PATH_MAX`): anything longer could not be opened by its
/// absolute name inside the container, and it bounds the tree depth we create and walk.
const PATH_MAX: usize = 4096;
/// Longest file name (Linux `NAME_MAX`).
const NAME_MAX: usize = 255;
/// Deepest path we accept. Real images stay far below; the bound keeps the number of
/// directory fds held open while removing a tree (one per level) well under the usual
/// soft `RLIMIT_NOFILE` of 1024.
const MAX_DEPTH: usize = 256;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// What an unpack produced.
#[derive(Debug)]
pub(super) struct Unpacked {
    /// Lowercase hex sha256 of the uncompressed tar.
    pub digest_hex: String,
    /// Bytes of regular files written.
    pub size: u64,
}

/// Compression of the body, told by its first bytes (never by a name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// `source` decompressed as `compression` says.
fn decoder<'a>(
    compression: Compression,
    source: impl Read + 'a,
) -> Result<Box<dyn Read + 'a>, ImageError> {
    Ok(match compression {
        Compression::None => Box::new(source),
        // Multi-member gzip (pigz, concatenated files) is valid gzip.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(source)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(source).map_err(ImageError::InitDecoder)?)
        }
    })
}
fn sniff(magic: &[u8]) -> Result<Compression, ImageError> {
    const GZIP: &[u8] = &[0x1f, 0x8b];
    const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
    const BZIP2: &[u8] = b"BZh";
    if magic.starts_with(GZIP) {
        Ok(Compression::Gzip)
    } else if magic.starts_with(ZSTD) {
        Ok(Compression::Zstd)
    } else if magic.starts_with(XZ) {
        Err(ImageError::UnsupportedCompression("xz"))
    } else if magic.starts_with(BZIP2) {
        Err(ImageError::UnsupportedCompression("bzip2"))
    } else {
        // Anything else is handed to the tar parser, which rejects what is not a tar.
        Ok(Compression::None)
    }
}

/// The body file; remembers whether reading *it* failed, so that such an error is
/// reported as ours and not as a corrupt archive.
struct SourceFile {
    file: File,
    failed: Rc<Cell<bool>>,
}

impl Read for SourceFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// Hashes everything read through it: the uncompressed tar.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the tarball at `body` (plain, gzip or zstd) into the existing, empty
/// directory `target`.
pub(super) fn unpack_file(body: &Path, target: &Path) -> Result<Unpacked, ImageError> {
    unpack_file_as(body, target, false)
}

/// Unpacks an image layer (plain, gzip or zstd tar) into the existing, empty directory
/// `target`, turning its whiteouts into overlayfs ones so that the directory can be
/// stacked as a `lowerdir` above its parents:
/// - `.wh.NAME` becomes a character device 0/0 named `NAME` (overlayfs hides `NAME`
///   of lower layers; see Documentation/filesystems/overlayfs.rst, "whiteouts");
/// - `.wh..wh..opq` marks its directory opaque (`trusted.overlay.opaque=y`);
/// - other `.wh..wh.*` names are aufs bookkeeping and are skipped, as Docker does.
pub(super) fn unpack_layer_file(body: &Path, target: &Path) -> Result<Unpacked, ImageError> {
    unpack_file_as(body, target, true)
}

fn unpack_file_as(body: &Path, target: &Path, overlay: bool) -> Result<Unpacked, ImageError> {
    let mut file = File::open(body).map_err(ImageError::ReadTemp)?;
    let mut magic = [0u8; 6];
    let mut have = 0;
    while have < magic.len() {
        match file
            .read(&mut magic[have..])
            .map_err(ImageError::ReadTemp)?
        {
            0 => break,
            n => have += n,
        }
    }
    if have == 0 {
        return Err(ImageError::EmptyBody);
    }
    let compression = sniff(&magic[..have])?;
    file.rewind().map_err(ImageError::ReadTemp)?;

    let failed = Rc::new(Cell::new(false));
    let source = SourceFile {
        file,
        failed: Rc::clone(&failed),
    };
    let reader = HashingReader {
        inner: decoder(compression, source)?,
        hasher: Sha256::new(),
    };
    let archive_err = |e: io::Error| {
        if failed.get() {
            ImageError::ReadTemp(e)
        } else {
            ImageError::CorruptArchive(e)
        }
    };
    unpack_tar(reader, target, overlay, &archive_err)
}

fn unpack_tar<R: Read>(
    reader: HashingReader<R>,
    target: &Path,
    overlay: bool,
    archive_err: &dyn Fn(io::Error) -> ImageError,
) -> Result<Unpacked, ImageError> {
    let root =
        nix::fcntl::open(target, DIR_FLAGS, Mode::empty()).map_err(|e| ImageError::Unpack {
            path: "/".into(),
            source: e.into(),
        })?;
    let opts = DirUnpack {
        overlay,
        ..DirUnpack::default()
    };
    unpack_tar_at(reader, root, opts, archive_err)
}

/// Owner ids of an archive entry as the target's filesystem stores them (`(uid, gid)`
/// in, `None` when the entry's ids cannot be represented there).
pub type OwnerMap = Box<dyn Fn(u32, u32) -> Option<(u32, u32)> + Send>;

/// How [`unpack_into_dir`] writes.
#[derive(Default)]
pub struct DirUnpack {
    /// Whiteouts become overlayfs whiteouts (image layers only).
    overlay: bool,
    /// Refuse to replace a directory with a non-directory or the reverse (Docker's
    /// `noOverwriteDirNonDir`).
    no_overwrite_dir_non_dir: bool,
    /// Maps the archive's owners to the ids stored on disk (a user namespace).
    owners: Option<OwnerMap>,
}

impl DirUnpack {
    /// Options for unpacking into a directory that is not an image layer.
    pub fn new(no_overwrite_dir_non_dir: bool, owners: Option<OwnerMap>) -> Self {
        DirUnpack {
            overlay: false,
            no_overwrite_dir_non_dir,
            owners,
        }
    }
}

/// Unpacks a tar stream (plain, gzip or zstd) into the directory `target` (an fd of it,
/// in any open mode), which may hold files already and may be written to by others
/// while this runs. Returns the bytes of regular files written.
pub fn unpack_into_dir(
    mut body: impl Read,
    target: &OwnedFd,
    opts: DirUnpack,
) -> Result<u64, ImageError> {
    let mut magic = [0u8; 6];
    let mut have = 0;
    while have < magic.len() {
        match body.read(&mut magic[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImageError::ReadBody(Box::new(e))),
        }
    }
    if have == 0 {
        return Err(ImageError::EmptyBody);
    }
    let compression = sniff(&magic[..have])?;
    let source = io::Cursor::new(magic[..have].to_vec()).chain(body);
    let reader = HashingReader {
        inner: decoder(compression, source)?,
        hasher: Sha256::new(),
    };
    let root = openat(target, ".", DIR_FLAGS, Mode::empty()).map_err(|e| ImageError::Unpack {
        path: "/".into(),
        source: e.into(),
    })?;
    let unpacked = unpack_tar_at(reader, root, opts, &ImageError::CorruptArchive)?;
    Ok(unpacked.size)
}

fn unpack_tar_at<R: Read>(
    reader: HashingReader<R>,
    root: OwnedFd,
    opts: DirUnpack,
    archive_err: &dyn Fn(io::Error) -> ImageError,
) -> Result<Unpacked, ImageError> {
    let mut unpacker = Unpacker {
        root,
        privileged: nix::unistd::geteuid().is_root(),
        overlay: opts.overlay,
        no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
        owners: opts.owners,
        dirs: Vec::new(),
        size: 0,
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        unpacker.entry(&mut entry, archive_err)?;
    }
    unpacker.finish()?;
    // The tar parser stops at the first zero block; the id covers the whole stream.
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(archive_err)?;
    Ok(Unpacked {
        digest_hex: hex::encode(reader.hasher.finalize()),
        size: unpacker.size,
    })
}

/// Why an archive path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadPath {
    Absolute,
    DotDot,
    Nul,
    TooLong,
    NameTooLong,
    TooDeep,
}

impl BadPath {
    fn reason(self, link: bool) -> &'static str {
        match (self, link) {
            (BadPath::Absolute, false) => "absolute path",
            (BadPath::Absolute, true) => "hard link target is an absolute path",
            (BadPath::DotDot, false) => "path has a '..' component",
            (BadPath::DotDot, true) => "hard link target has a '..' component",
            (BadPath::Nul, _) => "path contains a NUL byte",
            (BadPath::TooLong, _) => "path too long",
            (BadPath::NameTooLong, _) => "path component too long",
            (BadPath::TooDeep, _) => "path too deep",
        }
    }
}

/// Splits an archive path into its components, dropping `.` and empty ones (so `./a//b/`
/// is `[a, b]` and `./` is the root, `[]`). `..` and absolute paths are refused outright
/// rather than resolved: a legitimate image never needs them.
pub(super) fn normalise(raw: &[u8]) -> Result<Vec<OsString>, BadPath> {
    if raw.contains(&0) {
        return Err(BadPath::Nul);
    }
    if raw.len() > PATH_MAX {
        return Err(BadPath::TooLong);
    }
    if raw.first() == Some(&b'/') {
        return Err(BadPath::Absolute);
    }
    let mut comps = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err(BadPath::DotDot),
            _ if comp.len() > NAME_MAX => return Err(BadPath::NameTooLong),
            _ if comps.len() == MAX_DEPTH => return Err(BadPath::TooDeep),
            _ => comps.push(OsStr::from_bytes(comp).to_owned()),
        }
    }
    Ok(comps)
}

/// Metadata of one entry, with pax overrides applied.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: Mode,
    uid: Uid,
    gid: Gid,
    mtime: TimeSpec,
}

/// A directory whose mode and times are applied after everything has been unpacked:
/// its mtime would otherwise change as entries are added, and a read-only mode would
/// stop an unprivileged unpack from adding them.
struct DeferredDir {
    comps: Vec<OsString>,
    meta: Meta,
}

enum WalkError {
    /// The path is refused (goes through a symlink or a non-directory).
    Unsafe(&'static str),
    /// A component does not exist (and was not to be created).
    Missing,
    Sys(Errno),
}

struct Unpacker {
    root: OwnedFd,
    /// euid 0: ownership is preserved and device nodes are created.
    privileged: bool,
    /// Whiteouts become overlayfs whiteouts (image layers).
    overlay: bool,
    /// See [`DirUnpack::no_overwrite_dir_non_dir`].
    no_overwrite_dir_non_dir: bool,
    /// See [`DirUnpack::owners`].
    owners: Option<OwnerMap>,
    dirs: Vec<DeferredDir>,
    size: u64,
}

fn is_dir(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

fn is_symlink(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFLNK
}

impl Unpacker {
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        archive_err: &dyn Fn(io::Error) -> ImageError,
    ) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        // A pax global header only carries defaults for later entries (none that we
        // honour); it is not a file.
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&raw).into_owned();
        let unsafe_entry = |reason: &'static str| ImageError::UnsafeEntry {
            path: path.clone(),
            reason,
        };
        let comps = normalise(&raw).map_err(|bad| unsafe_entry(bad.reason(false)))?;
        let meta = self.meta(entry, &path, archive_err)?;

        let Some((name, parent_comps)) = comps.split_last() else {
            // `./`: only the root directory's own metadata.
            if !kind.is_dir() {
                return Err(unsafe_entry("the root entry must be a directory"));
            }
            self.dirs.push(DeferredDir { comps, meta });
            return Ok(());
        };
        let io_err = |e: Errno| ImageError::Unpack {
            path: path.clone(),
            source: e.into(),
        };
        let parent = self.walk(parent_comps, true).map_err(|e| match e {
            WalkError::Unsafe(reason) => unsafe_entry(reason),
            WalkError::Missing => io_err(Errno::ENOENT),
            WalkError::Sys(e) => io_err(e),
        })?;
        let name = name.as_os_str();

        if self.overlay {
            if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
                return self.whiteout(&parent, hidden, parent_comps, &path);
            }
        }

        if self.no_overwrite_dir_non_dir {
            match fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is_dir(st.st_mode) && !kind.is_dir() => {
                    return Err(unsafe_entry(
                        "cannot overwrite a directory with a non-directory",
                    ))
                }
                Ok(st) if !is_dir(st.st_mode) && kind.is_dir() => {
                    return Err(unsafe_entry(
                        "cannot overwrite a non-directory with a directory",
                    ))
                }
                Ok(_) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(io_err(e)),
            }
        }

        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear(&parent, name, false, &comps).map_err(io_err)?;
                let fd = openat(
                    &parent,
                    name,
                    // O_EXCL: the name was just cleared, so this never opens (or follows)
                    // something that was already there.
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(io_err)?;
                let mut file = File::from(fd);
                let expected = entry.size();
                let written = copy_data(entry, &mut file, archive_err, &path)?;
                if written != expected {
                    return Err(ImageError::TruncatedEntry { path });
                }
                self.size += written;
                // chown before chmod: chown clears the setuid/setgid bits.
                if self.privileged {
                    fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(io_err)?;
                }
                fchmod(&file, meta.mode).map_err(io_err)?;
                futimens(&file, &meta.mtime, &meta.mtime).map_err(io_err)?;
            }
            tar::EntryType::Directory => {
                // A directory over an existing directory keeps its contents (tar semantics).
                let kept = self.clear(&parent, name, true, &comps).map_err(io_err)?;
                if !kept {
                    mkdirat(&parent, name, Mode::from_bits_truncate(0o700)).map_err(io_err)?;
                }
                self.dirs.push(DeferredDir { comps, meta });
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() || target.contains(&0) {
                    return Err(unsafe_entry("symlink without a valid target"));
                }
                self.clear(&parent, name, false, &comps).map_err(io_err)?;
                // The target is stored as is, absolute or not: it is only resolved at run
                // time, inside the container's root. It is never followed here.
                symlinkat(OsStr::from_bytes(&target), &parent, name).map_err(io_err)?;
                if self.privileged {
                    fchownat(
                        &parent,
                        name,
                        Some(meta.uid),
                        Some(meta.gid),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(io_err)?;
                }
                utimensat(
                    &parent,
                    name,
                    &meta.mtime,
                    &meta.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(io_err)?;
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target =
                    normalise(&raw_target).map_err(|bad| unsafe_entry(bad.reason(true)))?;
                let Some((target_name, target_parent)) = target.split_last() else {
                    return Err(unsafe_entry("hard link to the root directory"));
                };
                if target == comps {
                    // A link to itself is a no-op; clearing the name first would lose it.
                    return Ok(());
                }
                // The target must already be in the image, reached without any symlink.
                let tparent = self.walk(target_parent, false).map_err(|e| match e {
                    WalkError::Unsafe(_) => unsafe_entry("hard link target goes through a symlink"),
                    WalkError::Missing => unsafe_entry("hard link target is not in the image"),
                    WalkError::Sys(e) => io_err(e),
                })?;
                match fstatat(
                    &tparent,
                    target_name.as_os_str(),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) if is_dir(st.st_mode) => {
                        return Err(unsafe_entry("hard link to a directory"))
                    }
                    Ok(_) => {}
                    Err(Errno::ENOENT) => {
                        return Err(unsafe_entry("hard link target is not in the image"))
                    }
                    Err(e) => return Err(io_err(e)),
                }
                self.clear(&parent, name, false, &comps).map_err(io_err)?;
                // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, not followed.
                // The metadata is the target inode's; tar does not reapply it.
                match linkat(
                    &tparent,
                    target_name.as_os_str(),
                    &parent,
                    name,
                    AtFlags::empty(),
                ) {
                    Ok(()) => {}
                    // Only possible if clearing the name removed the target with it.
                    Err(Errno::ENOENT) => {
                        return Err(unsafe_entry("hard link target is not in the image"))
                    }
                    Err(e) => return Err(io_err(e)),
                }
            }
            tar::EntryType::Fifo => {
                self.clear(&parent, name, false, &comps).map_err(io_err)?;
                mknodat(
                    &parent,
                    name,
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(io_err)?;
                self.node_meta(&parent, name, meta).map_err(io_err)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                // Device nodes need CAP_MKNOD: without it (unprivileged, or root in a user
                // namespace) they are skipped, as rootless runtimes do. Containers get
                // their /dev from the runtime anyway, not from the image.
                if !self.privileged {
                    tracing::debug!(path, "skipping device node: not privileged");
                    return Ok(());
                }
                let major = entry.header().device_major().map_err(archive_err)?;
                let minor = entry.header().device_minor().map_err(archive_err)?;
                let (Some(major), Some(minor)) = (major, minor) else {
                    return Err(unsafe_entry("device node without a device number"));
                };
                let sflag = if kind == tar::EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                self.clear(&parent, name, false, &comps).map_err(io_err)?;
                match mknodat(
                    &parent,
                    name,
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    makedev(major.into(), minor.into()),
                ) {
                    Ok(()) => self.node_meta(&parent, name, meta).map_err(io_err)?,
                    Err(Errno::EPERM) => {
                        tracing::debug!(path, "skipping device node: mknod not permitted");
                    }
                    Err(e) => return Err(io_err(e)),
                }
            }
            other => {
                return Err(ImageError::UnsupportedEntry {
                    path,
                    kind: format!("{other:?}"),
                })
            }
        }
        // Extended attributes (security.capability, user.*) are not restored: the
        // images this store takes are plain rootfs tarballs, and writing security.*
        // xattrs from an untrusted archive would need its own policy.
        Ok(())
    }

    /// Applies a whiteout entry (`.wh.` + `hidden`) found in `parent`.
    fn whiteout(
        &mut self,
        parent: &OwnedFd,
        hidden: &[u8],
        parent_comps: &[OsString],
        path: &str,
    ) -> Result<(), ImageError> {
        let io_err = |e: Errno| ImageError::Whiteout {
            path: path.to_owned(),
            source: e.into(),
        };
        if hidden == b".wh..opq" {
            let dir =
                parent
                    .try_clone()
                    .map(File::from)
                    .map_err(|source| ImageError::Whiteout {
                        path: path.to_owned(),
                        source,
                    })?;
            return xattr::FileExt::set_xattr(&dir, "trusted.overlay.opaque", b"y").map_err(
                |source| ImageError::Whiteout {
                    path: path.to_owned(),
                    source,
                },
            );
        }
        if hidden.starts_with(b".wh.") {
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(ImageError::UnsafeEntry {
                path: path.to_owned(),
                reason: "whiteout without a name",
            });
        }
        let name = OsStr::from_bytes(hidden);
        let mut comps = parent_comps.to_vec();
        comps.push(name.to_owned());
        self.clear(parent, name, false, &comps).map_err(io_err)?;
        mknodat(
            parent,
            name,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o000),
            makedev(0, 0),
        )
        .map_err(io_err)
    }

    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        path: &str,
        archive_err: &dyn Fn(io::Error) -> ImageError,
    ) -> Result<Meta, ImageError> {
        let header = entry.header();
        let mode = header.mode().map_err(archive_err)? & 0o7777;
        // uid/gid: the tar crate already applies pax overrides to the header.
        let id = |v: u64| {
            u32::try_from(v).map_err(|_| ImageError::UnsafeEntry {
                path: path.to_owned(),
                reason: "owner id out of range",
            })
        };
        let mut uid = id(header.uid().map_err(archive_err)?)?;
        let mut gid = id(header.gid().map_err(archive_err)?)?;
        if let Some(map) = &self.owners {
            (uid, gid) = map(uid, gid).ok_or_else(|| ImageError::UnsafeEntry {
                path: path.to_owned(),
                reason: "owner id outside the container's user namespace",
            })?;
        }
        let mut mtime = TimeSpec::new(
            i64::try_from(header.mtime().map_err(archive_err)?).unwrap_or(i64::MAX),
            0,
        );
        if let Some(exts) = entry.pax_extensions().map_err(archive_err)? {
            for ext in exts.flatten() {
                if ext.key_bytes() == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta {
            mode: Mode::from_bits_truncate(mode),
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            mtime,
        })
    }

    /// Owner, mode and times of a node just made with `mknodat`. The node cannot be
    /// opened for I/O (opening a device has side effects, a fifo may block): owner and
    /// times are set by name without following, the mode through an `O_PATH` fd whose
    /// type is checked first (chmod has no no-follow form before Linux 6.6), so a node
    /// swapped for a symlink meanwhile is never followed.
    fn node_meta(&self, parent: &OwnedFd, name: &OsStr, meta: Meta) -> nix::Result<()> {
        if self.privileged {
            fchownat(
                parent,
                name,
                Some(meta.uid),
                Some(meta.gid),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        chmod_node(parent, name, meta.mode, |m| {
            matches!(
                m & libc::S_IFMT,
                libc::S_IFIFO | libc::S_IFCHR | libc::S_IFBLK
            )
        })?;
        utimensat(
            parent,
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
    }

    /// Opens the directory `comps` below the root, one component at a time, refusing
    /// symlinks and non-directories; with `create`, missing ones are made (0755, like
    /// tar does for parents an archive does not list).
    fn walk(&self, comps: &[OsString], create: bool) -> Result<OwnedFd, WalkError> {
        let mut cur = openat(&self.root, ".", DIR_FLAGS, Mode::empty()).map_err(WalkError::Sys)?;
        for comp in comps {
            let comp = comp.as_os_str();
            let next = match openat(&cur, comp, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    mkdirat(&cur, comp, Mode::from_bits_truncate(0o700)).map_err(WalkError::Sys)?;
                    let fd = openat(&cur, comp, DIR_FLAGS, Mode::empty())
                        .map_err(|e| classify(&cur, comp, e))?;
                    // Explicit chmod: mkdir's mode is masked by the umask.
                    fchmod(&fd, Mode::from_bits_truncate(0o755)).map_err(WalkError::Sys)?;
                    fd
                }
                Err(Errno::ENOENT) => return Err(WalkError::Missing),
                Err(e) => return Err(classify(&cur, comp, e)),
            };
            cur = next;
        }
        Ok(cur)
    }

    /// Makes room for a new entry `name` in `parent`: tar semantics (the later entry
    /// wins), but an existing entry is removed rather than written through, so a symlink
    /// left by an earlier entry is never followed. Returns true when an existing
    /// directory is kept because the new entry is a directory too.
    fn clear(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        new_is_dir: bool,
        comps: &[OsString],
    ) -> nix::Result<bool> {
        let st = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        };
        if is_dir(st.st_mode) {
            if new_is_dir {
                return Ok(true);
            }
            remove_tree_at(parent, name)?;
            // Metadata recorded for the removed tree must not land on a later namesake.
            self.dirs.retain(|d| !d.comps.starts_with(comps));
        } else {
            unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)?;
        }
        Ok(false)
    }

    /// Applies the deferred directory metadata, deepest first so that a directory made
    /// read-only does not block the ones below it. A directory later replaced by another
    /// kind of entry is skipped; two entries for one directory: the later wins (stable sort).
    fn finish(&mut self) -> Result<(), ImageError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| Reverse(d.comps.len()));
        for dir in dirs {
            let fd = match self.walk(&dir.comps, false) {
                Ok(fd) => fd,
                Err(WalkError::Missing | WalkError::Unsafe(_)) => continue,
                Err(WalkError::Sys(e)) => return Err(dir_err(&dir.comps, e)),
            };
            let meta = dir.meta;
            let apply = || -> nix::Result<()> {
                if self.privileged {
                    fchown(&fd, Some(meta.uid), Some(meta.gid))?;
                }
                fchmod(&fd, meta.mode)?;
                futimens(&fd, &meta.mtime, &meta.mtime)
            };
            apply().map_err(|e| dir_err(&dir.comps, e))?;
        }
        Ok(())
    }
}

fn dir_err(comps: &[OsString], e: Errno) -> ImageError {
    let path = comps
        .iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    ImageError::Unpack {
        path: format!("{path}/"),
        source: e.into(),
    }
}

/// Tells why opening a directory component failed.
fn classify(dir: &OwnedFd, name: &OsStr, e: Errno) -> WalkError {
    match e {
        Errno::ELOOP | Errno::ENOTDIR => match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_symlink(st.st_mode) => WalkError::Unsafe("path goes through a symlink"),
            Ok(_) => WalkError::Unsafe("a parent is not a directory"),
            Err(e) => WalkError::Sys(e),
        },
        e => WalkError::Sys(e),
    }
}

/// Copies an entry's data, telling archive read errors (bad input) from write errors (ours).
fn copy_data(
    src: &mut impl Read,
    dst: &mut File,
    archive_err: &dyn Fn(io::Error) -> ImageError,
    path: &str,
) -> Result<u64, ImageError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(archive_err(e)),
        };
        dst.write_all(&buf[..n])
            .map_err(|source| ImageError::Unpack {
                path: path.to_owned(),
                source,
            })?;
        total += n as u64;
    }
}

/// Parses a pax time ("1704067200", "1704067200.5", "-1.25").
fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let negative = int.starts_with('-');
    let secs: i64 = int.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().take(9).collect();
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    Some(if negative && nanos > 0 {
        TimeSpec::new(secs - 1, 1_000_000_000 - nanos)
    } else {
        TimeSpec::new(secs, nanos)
    })
}

/// Removes `name` in `parent` and everything below it, never following a symlink
/// (each directory is opened with `O_NOFOLLOW` and emptied through its fd). Missing is
/// fine. Directories lacking owner rwx get it first: an unprivileged daemon could not
/// empty an image's read-only directory otherwise.
pub(super) fn remove_tree_at(parent: &impl std::os::fd::AsFd, name: &OsStr) -> nix::Result<()> {
    let st = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if !is_dir(st.st_mode) {
        return match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e),
        };
    }
    if st.st_mode & 0o700 != 0o700 {
        chmod_node(parent, name, Mode::from_bits_truncate(0o700), is_dir)?;
    }
    let mut dir = Dir::openat(parent, name, DIR_FLAGS, Mode::empty())?;
    let mut names = Vec::new();
    for ent in dir.iter() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_owned());
        }
    }
    for n in &names {
        remove_tree_at(&dir, n)?;
    }
    drop(dir);
    match unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// chmod of `name` in `parent` without following it: through `/proc/self/fd` of an
/// `O_PATH | O_NOFOLLOW` fd whose `st_mode` passes `kind` (EINVAL otherwise: it was
/// replaced meanwhile). `fchmodat(AT_SYMLINK_NOFOLLOW)` is EOPNOTSUPP before Linux 6.6.
fn chmod_node(
    parent: &impl std::os::fd::AsFd,
    name: &OsStr,
    mode: Mode,
    kind: impl Fn(u32) -> bool,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    if !kind(nix::sys::stat::fstat(&fd)?.st_mode) {
        return Err(Errno::EINVAL);
    }
    let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
    fchmodat(
        nix::fcntl::AT_FDCWD,
        by_fd.as_str(),
        mode,
        FchmodatFlags::FollowSymlink,
    )
}

/// [`remove_tree_at`] by path. The path's parent directories are the store's own (not
/// from an archive), so resolving them normally is fine.
pub(super) fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot remove a root path",
        ));
    };
    let parent = match nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    remove_tree_at(&parent, name).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_drops_dot_and_empty_components() {
        let c = |s: &str| normalise(s.as_bytes());
        assert_eq!(c("./a//b/").unwrap(), vec![OsString::from("a"), "b".into()]);
        assert_eq!(c("./").unwrap(), Vec::<OsString>::new());
        assert_eq!(c(".").unwrap(), Vec::<OsString>::new());
        assert_eq!(c("a/./b").unwrap(), vec![OsString::from("a"), "b".into()]);
        assert_eq!(c("../x"), Err(BadPath::DotDot));
        assert_eq!(c("a/../../x"), Err(BadPath::DotDot));
        assert_eq!(c("a/.."), Err(BadPath::DotDot));
        assert_eq!(c("/abs"), Err(BadPath::Absolute));
        assert_eq!(c("//abs"), Err(BadPath::Absolute));
        assert_eq!(normalise(b"a\0b"), Err(BadPath::Nul));
        assert_eq!(c(&"x".repeat(256)), Err(BadPath::NameTooLong));
        assert_eq!(c(&"a/".repeat(2049)), Err(BadPath::TooLong));
        assert_eq!(c(&"a/".repeat(256)).unwrap().len(), 256);
        assert_eq!(c(&"a/".repeat(257)), Err(BadPath::TooDeep));
        // A name that merely starts with dots is fine.
        assert_eq!(
            c("..a/...").unwrap(),
            vec![OsString::from("..a"), "...".into()]
        );
    }

    #[test]
    fn sniff_tells_compression_by_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]).unwrap(), Compression::Gzip);
        assert_eq!(
            sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(sniff(b"bin/\0\0").unwrap(), Compression::None);
        assert!(matches!(
            sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Err(ImageError::UnsupportedCompression("xz"))
        ));
        assert!(matches!(
            sniff(b"BZh91A"),
            Err(ImageError::UnsupportedCompression("bzip2"))
        ));
    }

    #[test]
    fn pax_times_parse() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(t("1704067200"), Some((1_704_067_200, 0)));
        assert_eq!(t("1704067200.5"), Some((1_704_067_200, 500_000_000)));
        assert_eq!(t("1.0000000019"), Some((1, 1)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }
}
