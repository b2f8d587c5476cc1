//! The size limit of a container's writable layer (`resources.disk_bytes`).
//!
//! A limited container gets a sparse ext4 image, `<container dir>/disk.img`, made
//! with `mkfs.ext4` at its first start; the overlay's upper and work dirs live inside
//! it, below `<container dir>/disk`. The shim attaches the image to an auto-clearing
//! loop device and mounts it inside the container's own mount namespace (the why of
//! that is in the shim's `mounts::DiskPlan`), so the kernel answers ENOSPC inside once
//! the image is full, the host's filesystem never holds more than the image's size
//! for it, and no mount or loop device exists on the host for reconcile to undo.
//! Project quotas would avoid the image, but ext4 has them only when made with them
//! and overlayfs on XFS needs `pquota`; the image works on any host filesystem.
//!
//! Invariants: `disk.img` exists only complete (made as `disk.img.tmp`, synced, then
//! renamed), so a crash during `mkfs` leaves a temp file that the next start
//! overwrites, and delete removes both with the container dir. The image is made
//! once: its contents are the container's writable layer and persist across stop and
//! start. The ext4 metadata (journal, inode tables) counts against the limit, as the
//! whole image is what the host gives the container.

use std::path::{Path, PathBuf};

use boxd_shim::protocol::{DiskImage, Overlay};

use super::RuntimeError;

/// The smallest limit accepted (also `minimum` in the API spec): below it, ext4's own
/// metadata would take most of the image.
pub const MIN_DISK_BYTES: u64 = 16 << 20;
/// The image file, in the container dir.
pub const IMAGE: &str = "disk.img";
/// Where the shim mounts the image (an empty dir on the host), in the container dir.
pub const MOUNT_POINT: &str = "disk";
/// Suffix of an image being made.
const TEMP_SUFFIX: &str = ".tmp";
/// Where `mkfs.ext4` is looked for after `PATH` (a daemon's `PATH` may lack sbin).
const MKFS_FALLBACKS: &[&str] = &["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"];

/// Making a container's disk image failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The image file could not be created or sized.
    #[error("failed to create disk image {path}")]
    CreateImage {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `mkfs.ext4` is not installed.
    #[error("mkfs.ext4 not found (install e2fsprogs) to use disk limits")]
    MkfsMissing,
    /// `mkfs.ext4` could not be run.
    #[error("failed to run mkfs.ext4 on {path}")]
    RunMkfs {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `mkfs.ext4` ran and failed.
    #[error("mkfs.ext4 failed on {path}: {stderr}")]
    Mkfs {
        /// The image.
        path: PathBuf,
        /// What it said.
        stderr: String,
    },
    /// The finished image could not be put in place.
    #[error("failed to move disk image into place at {path}")]
    Publish {
        /// The final path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The mount point could not be made.
    #[error("failed to create mount point {path}")]
    CreateMountPoint {
        /// The dir.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<DiskError> for RuntimeError {
    /// A disk that cannot be made is a failed start (500, with the reason shown, as
    /// for the shim's own stages).
    fn from(e: DiskError) -> Self {
        RuntimeError::StartFailed {
            stage: "disk".to_owned(),
            message: crate::error_chain(&e),
        }
    }
}

/// Checks a requested limit; the reason is for a 400.
pub fn check_limit(bytes: u64) -> Result<(), String> {
    if bytes < MIN_DISK_BYTES {
        return Err(format!(
            "disk_bytes {bytes} is below the minimum of {MIN_DISK_BYTES} (16 MiB)"
        ));
    }
    Ok(())
}

/// The overlay for a container whose dir is `dir`: plain `upper` and `work` dirs in
/// `dir` without a limit, or dirs inside `disk.img` (made now if it is not there yet)
/// with one.
pub async fn writable_layer(
    dir: &Path,
    lower: Vec<PathBuf>,
    disk_bytes: Option<u64>,
) -> Result<Overlay, DiskError> {
    let Some(bytes) = disk_bytes else {
        return Ok(Overlay {
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            disk: None,
        });
    };
    let image = ensure_image(dir, bytes).await?;
    let mount_point = dir.join(MOUNT_POINT);
    std::fs::create_dir_all(&mount_point).map_err(|source| DiskError::CreateMountPoint {
        path: mount_point.clone(),
        source,
    })?;
    Ok(Overlay {
        lower,
        upper: mount_point.join("upper"),
        work: mount_point.join("work"),
        disk: Some(DiskImage { image, mount_point }),
    })
}

/// `dir/disk.img`, made (sparse, `bytes` long, ext4) if it does not exist yet.
pub async fn ensure_image(dir: &Path, bytes: u64) -> Result<PathBuf, DiskError> {
    let image = dir.join(IMAGE);
    if image.exists() {
        return Ok(image);
    }
    let temp = dir.join(format!("{IMAGE}{TEMP_SUFFIX}"));
    let create = |source| DiskError::CreateImage {
        path: temp.clone(),
        source,
    };
    {
        use std::os::unix::fs::OpenOptionsExt;
        // 0600: the image holds the container's files, readable by root only.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(create)?;
        // Sparse: the host gives the blocks only as the container writes.
        file.set_len(bytes).map_err(create)?;
    }
    let mkfs = find_mkfs().ok_or(DiskError::MkfsMissing)?;
    let out = tokio::process::Command::new(mkfs)
        .args(mkfs_args(&temp))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| DiskError::RunMkfs {
            path: temp.clone(),
            source,
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&temp);
        return Err(DiskError::Mkfs {
            path: temp.clone(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    // On disk before it is published: a crash must not leave a `disk.img` whose
    // filesystem was never written.
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(create)?;
    let publish = |source| DiskError::Publish {
        path: image.clone(),
        source,
    };
    std::fs::rename(&temp, &image).map_err(publish)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(publish)?;
    Ok(image)
}

/// `mkfs.ext4` arguments for an image at `path`: `-F` as the target is a regular
/// file, `-m 0` so no blocks are reserved for root (the whole limit is the app's),
/// `nodiscard` as discarding a fresh sparse file is pointless work.
fn mkfs_args(path: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["-q", "-F", "-m", "0", "-E", "nodiscard", "-L", "boxd-disk"]
            .iter()
            .map(Into::into)
            .collect();
    args.push(path.as_os_str().to_owned());
    args
}

fn find_mkfs() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("mkfs.ext4"))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| {
        MKFS_FALLBACKS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_below_the_minimum_are_refused() {
        assert!(check_limit(MIN_DISK_BYTES - 1).is_err());
        assert!(check_limit(0).is_err());
        assert!(check_limit(MIN_DISK_BYTES).is_ok());
        assert!(check_limit(100 << 30).is_ok());
    }

    #[tokio::test]
    async fn without_a_limit_the_layer_is_plain_dirs() {
        let o = writable_layer(Path::new("/c/x"), vec!["/l".into()], None)
            .await
            .unwrap();
        assert_eq!(o.upper, PathBuf::from("/c/x/upper"));
        assert_eq!(o.work, PathBuf::from("/c/x/work"));
        assert_eq!(o.disk, None);
    }

    #[tokio::test]
    async fn with_a_limit_the_layer_is_inside_a_sparse_ext4_image_made_once() {
        boxd_testutil::require!(
            find_mkfs().is_some(),
            "needs mkfs.ext4 (apt-get install e2fsprogs)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let o = writable_layer(tmp.path(), vec!["/l".into()], Some(MIN_DISK_BYTES))
            .await
            .unwrap();
        let disk = o.disk.clone().unwrap();
        assert_eq!(disk.image, tmp.path().join(IMAGE));
        assert_eq!(disk.mount_point, tmp.path().join(MOUNT_POINT));
        assert!(disk.mount_point.is_dir());
        assert!(o.upper.starts_with(&disk.mount_point));
        assert!(o.work.starts_with(&disk.mount_point));
        let meta = std::fs::metadata(&disk.image).unwrap();
        assert_eq!(meta.len(), MIN_DISK_BYTES);
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Sparse: far fewer blocks than the size.
        assert!(
            meta.blocks() * 512 < MIN_DISK_BYTES / 2,
            "{}",
            meta.blocks()
        );
        // ext4 superblock magic at 1024 + 0x38.
        let bytes = std::fs::read(&disk.image).unwrap();
        assert_eq!(&bytes[1024 + 0x38..1024 + 0x3a], &[0x53, 0xef]);
        assert!(!tmp.path().join("disk.img.tmp").exists());

        // A second start keeps the image (and so the container's files).
        std::fs::write(&disk.image, b"marker").unwrap();
        writable_layer(tmp.path(), vec![], Some(MIN_DISK_BYTES * 2))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&disk.image).unwrap(), b"marker");
    }

    #[tokio::test]
    async fn a_left_over_temp_image_is_replaced() {
        boxd_testutil::require!(
            find_mkfs().is_some(),
            "needs mkfs.ext4 (apt-get install e2fsprogs)"
        );
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("disk.img.tmp"), b"half made").unwrap();
        let image = ensure_image(tmp.path(), MIN_DISK_BYTES).await.unwrap();
        assert_eq!(std::fs::metadata(image).unwrap().len(), MIN_DISK_BYTES);
        assert!(!tmp.path().join("disk.img.tmp").exists());
    }
}
