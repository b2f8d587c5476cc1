//! The image store: image layers on disk, addressed by content, and the formats and
//! transports images arrive in (rootfs tarballs, `docker save` and OCI archives,
//! registries).
//!
//! Layout under the store's directory (`<boxd root>/images`, mode 0700: images hold
//! setuid binaries that no host user may reach):
//!
//! ```text
//! <dir>/layers/<hex>/rootfs/   a layer, keyed by its chain id <hex>, with overlayfs
//!                              whiteouts; an image is a stack of these (lowerdirs)
//! <dir>/tmp/                   imports, downloads and removals in progress; emptied
//!                              by `clean_tmp`
//! ```
//!
//! Before layers, an image was `<dir>/<hex>/rootfs` (a plain import: one layer whose
//! chain id is its id); [`ImageStore::new`] moves such dirs into `layers/` (one atomic
//! rename each), and migration 0004 gives their rows a layer row.
//!
//! Invariants callers rely on:
//! - a layer's key is its chain id; a plain import's image id is its only layer's chain
//!   id (= `diff_id`, the digest of the *uncompressed* tar); ids are validated before
//!   any path is built from them;
//! - `layers/<hex>` appears only complete (a fully unpacked and synced temp dir is renamed
//!   into place) and disappears atomically (renamed into `tmp/` before it is deleted), so a
//!   crash leaves at most leftovers in `tmp/`, or a complete layer that no row owns
//!   (which the runtime's reconcile removes);
//! - importing the same content twice yields the same id and one copy;
//! - an import that fails leaves nothing behind, and nothing is ever written outside the
//!   store (the `unpack` submodule has the rules for hostile archives).

pub mod archive;
pub mod changes;
mod layers;
pub mod oci;
pub mod reference;
pub mod registry;
pub mod save;
mod unpack;
pub mod users;

pub use layers::{LayerInfo, LayerLocks};
pub use unpack::{unpack_into_dir, DirUnpack, OwnerMap};

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("failed to create image directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to create temporary file {path}")]
    CreateTemp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write temporary file {path}")]
    WriteTemp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read temporary file")]
    ReadTemp(#[source] io::Error),
    /// The request body could not be read (client went away, body too large, ...).
    #[error("failed to read request body")]
    ReadBody(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("image body is empty")]
    EmptyBody,
    #[error("unsupported compression {0} (use plain tar, gzip or zstd)")]
    UnsupportedCompression(&'static str),
    #[error("failed to set up decompression")]
    InitDecoder(#[source] io::Error),
    /// Not a tar, or a corrupt or truncated tar/gzip/zstd stream.
    #[error("corrupt or truncated archive")]
    CorruptArchive(#[source] io::Error),
    #[error("archive entry {path} is truncated")]
    TruncatedEntry { path: String },
    /// An entry that could escape the image or that does not fit its rules.
    #[error("unsafe archive entry {path}: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },
    #[error("unsupported archive entry {path} of type {kind}")]
    UnsupportedEntry { path: String, kind: String },
    #[error("failed to unpack {path}")]
    Unpack {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to move image into {path}")]
    StoreImage {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid image id {0:?}")]
    InvalidId(String),
    #[error("failed to remove image {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to list images in {path}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to clean temporary directory {path}")]
    CleanTmp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image task failed")]
    Join(#[source] tokio::task::JoinError),
    #[error("failed to apply whiteout {path}")]
    Whiteout {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid image metadata")]
    Format(#[from] oci::FormatError),
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    #[error("failed to pull image")]
    Registry(#[from] registry::RegistryError),
    #[error("invalid image archive")]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Change(#[from] changes::ChangeError),
    /// The content does not have the digest it was named by.
    #[error("{what} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("failed to read layer {path}")]
    ReadLayer {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// True when a part of the input is larger than the daemon accepts (HTTP 413).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            ImageError::Archive(archive::ArchiveError::MemberTooLarge { .. })
        )
    }

    /// True when the client sent something wrong (HTTP 400), false when the failure is
    /// ours (500). A failed body read counts as the client's.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ImageError::ReadBody(_)
                | ImageError::EmptyBody
                | ImageError::UnsupportedCompression(_)
                | ImageError::CorruptArchive(_)
                | ImageError::TruncatedEntry { .. }
                | ImageError::UnsafeEntry { .. }
                | ImageError::UnsupportedEntry { .. }
                | ImageError::InvalidId(_)
                | ImageError::Format(_)
                | ImageError::Reference(_)
                | ImageError::Archive(_)
                | ImageError::Change(_)
                | ImageError::DigestMismatch { .. }
        ) || matches!(self, ImageError::Registry(r) if r.is_bad_input())
    }

    /// True when a registry refused the credentials it was given (or that none were
    /// configured for it).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ImageError::Registry(r) if r.is_unauthorized())
    }

    /// True when a registry failed or sent content that is not what it claims (HTTP 502).
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            ImageError::Registry(_) | ImageError::DigestMismatch { .. }
        ) && !self.is_bad_input()
            && !self.is_not_found()
    }

    /// True when the thing asked for does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ImageError::Registry(r) if r.is_not_found())
    }
}

/// An image that is now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// `sha256:<hex>` of the uncompressed tar.
    pub id: String,
    /// Bytes of regular files unpacked.
    pub size: u64,
    /// Where its root filesystem is.
    pub rootfs: PathBuf,
}

/// Returns the hex part of a valid id (`sha256:` + 64 lowercase hex digits).
pub fn parse_id(id: &str) -> Result<&str, ImageError> {
    match id.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(ImageError::InvalidId(id.to_owned())),
    }
}

fn is_hex_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn random_name(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// A temp file or dir that is removed on drop unless disarmed (also when an import is
/// cancelled half-way).
struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    fn new(path: PathBuf) -> Self {
        TempPath { path, armed: true }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            if let Err(err) = unpack::remove_tree(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %err, "failed to remove temporary image data");
            }
        }
    }
}

/// The image store. Cheap to clone; all state is on disk (plus in-process locks).
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
    tmp: PathBuf,
    layers: PathBuf,
    locks: std::sync::Arc<LayerLocks>,
    /// Largest archive member (manifest, index, config) read into memory.
    max_member: u64,
}

/// Largest archive member read into memory by default: real manifests, indexes and
/// configs are a few KiB; layers are never read whole.
pub const DEFAULT_MAX_ARCHIVE_MEMBER: u64 = 16 << 20;

impl ImageStore {
    /// Opens the store at `dir`, creating it (0700), `dir/tmp` and `dir/layers` when
    /// missing, and moves images of the pre-layer layout into `layers/`.
    pub fn new(dir: PathBuf) -> Result<Self, ImageError> {
        let tmp = dir.join("tmp");
        let layers = dir.join("layers");
        for path in [&dir, &tmp, &layers] {
            let create = |path: &Path| -> io::Result<()> {
                DirBuilder::new().recursive(true).mode(0o700).create(path)?;
                // Also when it existed: the store must not be reachable by other users.
                fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            };
            create(path).map_err(|source| ImageError::CreateDir {
                path: path.clone(),
                source,
            })?;
        }
        let store = ImageStore {
            dir,
            tmp,
            layers,
            locks: Default::default(),
            max_member: DEFAULT_MAX_ARCHIVE_MEMBER,
        };
        store.migrate_legacy()?;
        Ok(store)
    }

    /// Reads archive members (manifest, index, config) of at most `n` bytes.
    pub fn with_max_member(mut self, n: u64) -> Self {
        self.max_member = n;
        self
    }

    /// Moves `<dir>/<hex>` (a pre-layer image) to `layers/<hex>`: same contents
    /// (`rootfs/`), one atomic rename, so a crash half-way is finished on the next open.
    /// Overlays mounted from the old path keep working (a mount holds the directory,
    /// not its name).
    fn migrate_legacy(&self) -> Result<(), ImageError> {
        for id in self.list_ids()? {
            let hex = parse_id(&id)?;
            let from = self.dir.join(hex);
            let to = self.layers.join(hex);
            if fs::symlink_metadata(&to).is_ok() {
                // Already there (imported again after an old daemon stored it): the
                // old copy is redundant.
                let doomed = self.tmp.join(random_name("remove-"));
                fs::rename(&from, &doomed)
                    .and_then(|()| unpack::remove_tree(&doomed))
                    .map_err(|source| ImageError::Remove { path: from, source })?;
                continue;
            }
            fs::rename(&from, &to).map_err(|source| ImageError::StoreImage { path: to, source })?;
            tracing::info!(id, "moved image into the layer store");
        }
        Ok(())
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Imports a rootfs tarball (plain tar, gzip or zstd, told by its magic bytes).
    ///
    /// The body is streamed to a temp file, then unpacked on a blocking thread while the
    /// uncompressed tar is hashed. If the id is already stored, the new copy is dropped and
    /// the stored one returned. If the returned future is dropped, the unpack still runs
    /// to its end and cleans up after itself.
    pub async fn import<S, E>(&self, mut body: S) -> Result<ImportedImage, ImageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let body_path = self.tmp.join(random_name("body-"));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&body_path)
            .await
            .map_err(|source| ImageError::CreateTemp {
                path: body_path.clone(),
                source,
            })?;
        let body_guard = TempPath::new(body_path.clone());
        let write_err = |source| ImageError::WriteTemp {
            path: body_path.clone(),
            source,
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ImageError::ReadBody(Box::new(e)))?;
            file.write_all(&chunk).await.map_err(write_err)?;
        }
        file.flush().await.map_err(write_err)?;
        drop(file);

        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = store.unpack_and_store(&body_guard.path);
            drop(body_guard);
            result
        })
        .await
        .map_err(ImageError::Join)?
    }

    fn unpack_and_store(&self, body: &Path) -> Result<ImportedImage, ImageError> {
        let work_path = self.tmp.join(random_name("import-"));
        let rootfs_tmp = work_path.join("rootfs");
        let mkdir = |path: &Path, mode: u32| -> io::Result<()> {
            DirBuilder::new().mode(mode).create(path)?;
            // Explicit: mkdir's mode is masked by the umask.
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
        };
        mkdir(&work_path, 0o700).map_err(|source| ImageError::CreateDir {
            path: work_path.clone(),
            source,
        })?;
        let mut work = TempPath::new(work_path.clone());
        mkdir(&rootfs_tmp, 0o755).map_err(|source| ImageError::CreateDir {
            path: rootfs_tmp.clone(),
            source,
        })?;

        let unpacked = unpack::unpack_file(body, &rootfs_tmp)?;
        let id = format!("sha256:{}", unpacked.digest_hex);
        let image_dir = self.layers.join(&unpacked.digest_hex);
        let imported = ImportedImage {
            id,
            size: unpacked.size,
            rootfs: image_dir.join("rootfs"),
        };
        if fs::symlink_metadata(&image_dir).is_ok() {
            return Ok(imported);
        }
        let store_err = |source| ImageError::StoreImage {
            path: image_dir.clone(),
            source,
        };
        // Data first, then the rename that publishes it: a crash must not leave a
        // published image with unwritten files. (Through `tmp/`, same filesystem: the
        // image's own root dir may not be readable by us.)
        let tmp_dir = File::open(&self.tmp).map_err(store_err)?;
        nix::unistd::syncfs(&tmp_dir).map_err(|e| store_err(e.into()))?;
        match fs::rename(&work_path, &image_dir) {
            Ok(()) => work.disarm(),
            // An identical import won the race; ours is dropped with `work`.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {}
            Err(e) => return Err(store_err(e)),
        }
        File::open(&self.layers)
            .and_then(|d| d.sync_all())
            .map_err(store_err)?;
        Ok(imported)
    }

    /// Where a stored layer's files are (for a plain import, the image's root
    /// filesystem: its id is its only layer's chain id). For an invalid id this is a
    /// path that never exists (`<dir>/invalid-id/rootfs`), so it cannot name anything else.
    pub fn rootfs(&self, id: &str) -> PathBuf {
        match parse_id(id) {
            Ok(hex) => self.layers.join(hex).join("rootfs"),
            Err(_) => self.dir.join("invalid-id").join("rootfs"),
        }
    }

    /// True when `id` is valid and stored.
    pub fn exists(&self, id: &str) -> bool {
        parse_id(id).is_ok()
            && fs::symlink_metadata(self.rootfs(id)).is_ok_and(|m| m.file_type().is_dir())
    }

    /// Removes a stored layer (for a plain import: the image); removing an absent one
    /// succeeds. The caller checks that no image or container uses it.
    pub async fn remove(&self, id: &str) -> Result<(), ImageError> {
        let hex = parse_id(id)?;
        let legacy = self.dir.join(hex);
        if fs::symlink_metadata(&legacy).is_ok() {
            self.remove_dir(legacy).await?;
        }
        self.remove_dir(self.layers.join(hex)).await
    }

    async fn remove_dir(&self, image_dir: PathBuf) -> Result<(), ImageError> {
        // Out of sight atomically first, so a crash mid-delete leaves only `tmp/` litter.
        let doomed = self.tmp.join(random_name("remove-"));
        match tokio::fs::rename(&image_dir, &doomed).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ImageError::Remove {
                    path: image_dir,
                    source,
                })
            }
        }
        let path = doomed.clone();
        tokio::task::spawn_blocking(move || unpack::remove_tree(&path))
            .await
            .map_err(ImageError::Join)?
            .map_err(|source| ImageError::Remove {
                path: image_dir,
                source,
            })
    }

    /// Ids of images still in the pre-layer layout (`<dir>/<hex>`), sorted. Empty once
    /// the store is open (`new` moves them).
    pub fn list_ids(&self) -> Result<Vec<String>, ImageError> {
        let list_err = |source| ImageError::List {
            path: self.dir.clone(),
            source,
        };
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if is_hex_name(&name) && entry.file_type().map_err(list_err)?.is_dir() {
                ids.push(format!("sha256:{name}"));
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes what crashed imports and removals left in `tmp/`. Call at start-up,
    /// before serving: it would also remove the files of an import in progress.
    pub fn clean_tmp(&self) -> Result<(), ImageError> {
        let clean_err = |source| ImageError::CleanTmp {
            path: self.tmp.clone(),
            source,
        };
        for entry in fs::read_dir(&self.tmp).map_err(clean_err)? {
            let entry = entry.map_err(clean_err)?;
            unpack::remove_tree(&entry.path()).map_err(clean_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
