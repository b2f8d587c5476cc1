//! The layer store: each layer unpacked once, keyed by its chain id, stacked as
//! overlayfs lower dirs.
//!
//! A layer dir holds exactly its own tar's files, with whiteouts turned into overlayfs
//! whiteouts (see `unpack::unpack_layer_file`), so layers are shared between images and
//! an image needs no copy of its root filesystem: the container's overlay stacks the
//! image's layers (topmost first) under its own upper dir.
//!
//! Invariants callers rely on:
//! - `apply_layer` verifies the tar's sha256 against the expected diff_id before the
//!   layer is published, and publishes it with one rename, so a layer dir is always
//!   complete and right;
//! - writers to the database and the layer dirs take `gc_read` (pulls, loads,
//!   imports) or `gc_write` (deletes, prune), so a layer is never removed between a
//!   pull finding it and the pull's image row referencing it;
//! - `blob_lock(digest)` serialises work on one digest, so two pulls of one image
//!   download and unpack each layer once.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{oci, parse_id, random_name, unpack, ImageError, ImageStore, TempPath};

/// A layer now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Its key: the chain id of the stack it tops.
    pub chain_id: String,
    /// The sha256 of its uncompressed tar.
    pub diff_id: String,
    /// Bytes of regular files it holds (0 when it was already stored).
    pub size: u64,
}

/// In-process locks of the store (see the module doc).
#[derive(Debug, Default)]
pub struct LayerLocks {
    gc: RwLock<()>,
    blobs: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ImageStore {
    /// Shared access for adding layers and images.
    pub async fn gc_read(&self) -> RwLockReadGuard<'_, ()> {
        self.locks.gc.read().await
    }

    /// Exclusive access for removing layers and images.
    pub async fn gc_write(&self) -> RwLockWriteGuard<'_, ()> {
        self.locks.gc.write().await
    }

    /// Serialises work on one digest (download + unpack of a layer).
    pub async fn blob_lock(&self, digest: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.blobs.lock().expect("blob locks poisoned");
            // Drop entries nobody holds, so the map stays small.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(digest.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// [`Self::blob_lock`] without waiting: `None` when someone holds it.
    pub fn blob_lock_try(&self, digest: &str) -> Option<OwnedMutexGuard<()>> {
        let lock = {
            let mut map = self.locks.blobs.lock().expect("blob locks poisoned");
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(digest.to_owned()).or_default().clone()
        };
        lock.try_lock_owned().ok()
    }

    /// The directory layers live in.
    pub fn layers_dir(&self) -> &Path {
        &self.layers
    }

    /// A fresh temp path in the store's `tmp/`, removed when the guard drops.
    pub(crate) fn temp_file(&self, prefix: &str) -> (PathBuf, TempFile) {
        let path = self.tmp.join(random_name(prefix));
        (path.clone(), TempFile(TempPath::new(path)))
    }

    /// True when the layer with this chain id is stored.
    pub fn layer_exists(&self, chain_id: &str) -> bool {
        self.exists(chain_id)
    }

    /// The lower dirs of an image whose layers have these chain ids (bottom first), in
    /// overlayfs order: topmost first.
    pub fn lower_dirs(&self, chain_ids: &[String]) -> Vec<PathBuf> {
        chain_ids.iter().rev().map(|c| self.rootfs(c)).collect()
    }

    /// Chain ids of the layers on disk, sorted.
    pub fn list_layers(&self) -> Result<Vec<String>, ImageError> {
        let list_err = |source| ImageError::List {
            path: self.layers.clone(),
            source,
        };
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.layers).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            if let Some(name) = entry.file_name().to_str() {
                if super::is_hex_name(name) {
                    ids.push(format!("sha256:{name}"));
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Unpacks the layer tar at `blob` (plain, gzip or zstd) on top of `parent` (a chain
    /// id), unless that layer is already stored. When `expected_diff_id` is given, the
    /// tar must have it (checked before anything is published).
    pub async fn apply_layer(
        &self,
        blob: &Path,
        parent: Option<&str>,
        expected_diff_id: Option<&str>,
    ) -> Result<LayerInfo, ImageError> {
        if let Some(diff_id) = expected_diff_id {
            parse_id(diff_id)?;
            let chain = chain_of(parent, diff_id);
            if self.layer_exists(&chain) {
                return Ok(LayerInfo {
                    chain_id: chain,
                    diff_id: diff_id.to_owned(),
                    size: 0,
                });
            }
        }
        let store = self.clone();
        let blob = blob.to_owned();
        let parent = parent.map(str::to_owned);
        let expected = expected_diff_id.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            store.apply_layer_blocking(&blob, parent.as_deref(), expected.as_deref())
        })
        .await
        .map_err(ImageError::Join)?
    }

    fn apply_layer_blocking(
        &self,
        blob: &Path,
        parent: Option<&str>,
        expected: Option<&str>,
    ) -> Result<LayerInfo, ImageError> {
        let work_path = self.tmp.join(random_name("layer-"));
        let rootfs_tmp = work_path.join("rootfs");
        let mkdir = |path: &Path, mode: u32| -> std::io::Result<()> {
            DirBuilder::new().mode(mode).create(path)?;
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
        let unpacked = unpack::unpack_layer_file(blob, &rootfs_tmp)?;
        let diff_id = format!("sha256:{}", unpacked.digest_hex);
        if let Some(expected) = expected {
            if expected != diff_id {
                return Err(ImageError::DigestMismatch {
                    what: "layer tar (diff_id)",
                    expected: expected.to_owned(),
                    actual: diff_id,
                });
            }
        }
        let chain_id = chain_of(parent, &diff_id);
        let hex = parse_id(&chain_id)?.to_owned();
        let layer_dir = self.layers.join(&hex);
        let info = LayerInfo {
            chain_id,
            diff_id,
            size: unpacked.size,
        };
        if fs::symlink_metadata(&layer_dir).is_ok() {
            return Ok(info);
        }
        let store_err = |source| ImageError::StoreImage {
            path: layer_dir.clone(),
            source,
        };
        // Data first, then the rename that publishes it (see `unpack_and_store`).
        let tmp_dir = File::open(&self.tmp).map_err(store_err)?;
        nix::unistd::syncfs(&tmp_dir).map_err(|e| store_err(e.into()))?;
        match fs::rename(&work_path, &layer_dir) {
            Ok(()) => work.disarm(),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {}
            Err(e) => return Err(store_err(e)),
        }
        File::open(&self.layers)
            .and_then(|d| d.sync_all())
            .map_err(store_err)?;
        Ok(info)
    }
}

/// The chain id of `diff_id` on top of `parent`.
pub fn chain_of(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_owned(),
        Some(p) => oci::chain_ids(&[p.to_owned(), diff_id.to_owned()])
            .pop()
            .expect("two ids give two chain ids"),
    }
}

/// A temp file in the store's `tmp/`, removed on drop.
pub struct TempFile(TempPath);

impl TempFile {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_matches_chain_ids() {
        let a = format!("sha256:{}", "1".repeat(64));
        let b = format!("sha256:{}", "2".repeat(64));
        let c = format!("sha256:{}", "3".repeat(64));
        let ids = oci::chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(chain_of(None, &a), ids[0]);
        assert_eq!(chain_of(Some(&ids[0]), &b), ids[1]);
        assert_eq!(chain_of(Some(&ids[1]), &c), ids[2]);
    }
}
