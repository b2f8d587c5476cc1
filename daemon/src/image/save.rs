//! `docker save`: stored images written out as a docker-save archive (`manifest.json`,
//! `<config hex>.json`, `<diff_id hex>/layer.tar`), the format `docker load`, podman
//! and boxd's own load read.
//!
//! The store keeps layers unpacked, not their original tars, so each layer's tar is made
//! again from its directory, with overlayfs whiteouts turned back into `.wh.` files and
//! opaque directories into `.wh..wh..opq`. The new tar's bytes differ from the original
//! (entry order, header fields), so its diff_id differs, and so does the config that
//! lists it: a saved image loads elsewhere with the same content, defaults and history
//! under a new id (docker keeps tar-split data to give the original bytes back; boxd
//! does not). The tar is deterministic: the same layer always gives the same bytes
//! (entries sorted by name, metadata from the files), so a layer shared by two saved
//! images is one member and saving twice gives one id.
//!
//! Each layer tar is written to a temp file in the store's `tmp/` first (an archive
//! member's size comes before its bytes) and removed when written out. The layer dirs
//! are the store's own (root-only, never written after publication); they are walked
//! without following symlinks.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::oci::ImageConfig;
use super::{ImageError, ImageStore};

/// One image to save.
#[derive(Debug, Clone)]
pub struct SaveItem {
    pub image: boxd_types::Image,
    /// Its layers' chain ids, bottom first.
    pub chain_ids: Vec<String>,
    /// The names to give it in the archive (`busybox:latest`).
    pub repo_tags: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// The name of the archive member of a layer or config: its digest's hex.
fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

impl ImageStore {
    /// Writes the archive of `items` to `out`. Blocking; the caller holds the gc lock
    /// (shared) so that no layer goes away meanwhile.
    pub fn save_archive(&self, items: &[SaveItem], out: impl Write) -> Result<(), ImageError> {
        let write_err = |source: io::Error| ImageError::WriteTemp {
            path: PathBuf::from("(archive)"),
            source,
        };
        let mut archive = tar::Builder::new(BufWriter::with_capacity(256 << 10, out));
        archive.mode(tar::HeaderMode::Deterministic);
        // chain id -> the diff_id of its tar as written.
        let mut written: HashMap<String, String> = HashMap::new();
        let mut manifest = Vec::new();
        for item in items {
            let mut diff_ids = Vec::new();
            for chain_id in &item.chain_ids {
                if let Some(d) = written.get(chain_id) {
                    diff_ids.push(d.clone());
                    continue;
                }
                let (path, temp) = self.temp_file("save-layer");
                let diff_id = write_layer_tar(&self.rootfs(chain_id), &path)?;
                let mut file = File::open(temp.path()).map_err(ImageError::ReadTemp)?;
                let len = file.metadata().map_err(ImageError::ReadTemp)?.len();
                let mut header = member_header(len);
                archive
                    .append_data(
                        &mut header,
                        format!("{}/layer.tar", hex_of(&diff_id)),
                        &mut file,
                    )
                    .map_err(write_err)?;
                drop(temp);
                written.insert(chain_id.clone(), diff_id.clone());
                diff_ids.push(diff_id);
            }
            let config = ImageConfig::of_image(&item.image, &diff_ids).to_bytes();
            let config_name = format!("{}.json", hex_of(&super::oci::digest_of(&config)));
            let mut header = member_header(config.len() as u64);
            archive
                .append_data(&mut header, &config_name, config.as_slice())
                .map_err(write_err)?;
            manifest.push(ManifestEntry {
                config: config_name,
                repo_tags: item.repo_tags.clone(),
                layers: diff_ids
                    .iter()
                    .map(|d| format!("{}/layer.tar", hex_of(d)))
                    .collect(),
            });
        }
        let manifest = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let mut header = member_header(manifest.len() as u64);
        archive
            .append_data(&mut header, "manifest.json", manifest.as_slice())
            .map_err(write_err)?;
        archive
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(write_err)
    }
}

/// The header of a regular member of the outer archive.
fn member_header(len: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the tar of the layer dir `root` to `path`; returns its sha256 (the diff_id).
fn write_layer_tar(root: &Path, path: &Path) -> Result<String, ImageError> {
    let read_err = |source: io::Error| ImageError::ReadLayer {
        path: root.to_owned(),
        source,
    };
    let file = File::create(path).map_err(|source| ImageError::CreateTemp {
        path: path.to_owned(),
        source,
    })?;
    let mut tar = tar::Builder::new(Hashing {
        inner: BufWriter::with_capacity(256 << 10, file),
        hash: Sha256::new(),
    });
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    append_dir(&mut tar, root, "", &mut links).map_err(read_err)?;
    let mut hashing = tar.into_inner().map_err(read_err)?;
    hashing.flush().map_err(read_err)?;
    hashing
        .inner
        .into_inner()
        .map_err(|e| read_err(e.into_error()))?
        .sync_all()
        .map_err(read_err)?;
    Ok(format!("sha256:{}", hex::encode(hashing.hash.finalize())))
}

fn header_for(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    h.set_size(0);
    h
}

fn empty_file(name: &str, tar: &mut tar::Builder<impl Write>) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_size(0);
    tar.append_data(&mut h, name, io::empty())
}

/// Appends the entries under `dir` (whose name in the tar is `prefix`), sorted by name.
fn append_dir(
    tar: &mut tar::Builder<impl Write>,
    dir: &Path,
    prefix: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let Some(name_str) = name.to_str() else {
            // Names that are not UTF-8 cannot be written by the tar crate's path API;
            // image layers unpacked by boxd came from tar names, which were.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a name that is not UTF-8 under {}", dir.display()),
            ));
        };
        let path = dir.join(&name);
        let member = format!("{prefix}{name_str}");
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = header_for(&meta, tar::EntryType::Directory);
            tar.append_data(&mut h, format!("{member}/"), io::empty())?;
            if xattr::get(&path, "trusted.overlay.opaque")?.as_deref() == Some(b"y") {
                empty_file(&format!("{member}/.wh..wh..opq"), tar)?;
            }
            append_dir(tar, &path, &format!("{member}/"), links)?;
        } else if ft.is_char_device() && meta.rdev() == 0 {
            // An overlayfs whiteout: the name is deleted from the layers below.
            empty_file(&format!("{prefix}.wh.{name_str}"), tar)?;
        } else if ft.is_symlink() {
            let mut h = header_for(&meta, tar::EntryType::Symlink);
            tar.append_link(&mut h, &member, fs::read_link(&path)?)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    let mut h = header_for(&meta, tar::EntryType::Link);
                    tar.append_link(&mut h, &member, first)?;
                    continue;
                }
                links.insert(key, member.clone());
            }
            let mut h = header_for(&meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            let file = open_nofollow(&path)?;
            tar.append_data(&mut h, &member, file.take(meta.len()))?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header_for(&meta, kind);
            let rdev = meta.rdev();
            h.set_device_major(nix::sys::stat::major(rdev) as u32)?;
            h.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
            tar.append_data(&mut h, &member, io::empty())?;
        } else if ft.is_fifo() {
            let mut h = header_for(&meta, tar::EntryType::Fifo);
            tar.append_data(&mut h, &member, io::empty())?;
        }
        // Sockets are not archived (as docker).
    }
    Ok(())
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_layer_tar_is_deterministic_and_turns_whiteouts_back_into_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        fs::create_dir_all(root.join("etc/opaque")).unwrap();
        fs::write(root.join("etc/hostname"), "box\n").unwrap();
        fs::hard_link(root.join("etc/hostname"), root.join("etc/hostname2")).unwrap();
        symlink("hostname", root.join("etc/link")).unwrap();
        // A whiteout needs mknod (root); without it the rest is still checked.
        let whiteout = nix::sys::stat::mknod(
            &root.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .is_ok();
        let opaque = xattr::set(root.join("etc/opaque"), "trusted.overlay.opaque", b"y").is_ok();

        let a = write_layer_tar(&root, &tmp.path().join("a.tar")).unwrap();
        let b = write_layer_tar(&root, &tmp.path().join("b.tar")).unwrap();
        assert_eq!(a, b, "the same layer gives the same bytes");
        assert_eq!(
            fs::read(tmp.path().join("a.tar")).unwrap(),
            fs::read(tmp.path().join("b.tar")).unwrap()
        );

        let mut names = Vec::new();
        let mut ar = tar::Archive::new(File::open(tmp.path().join("a.tar")).unwrap());
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            names.push((name, kind));
        }
        let has = |n: &str, k: tar::EntryType| names.iter().any(|(m, l)| m == n && *l == k);
        assert!(has("etc/", tar::EntryType::Directory), "{names:?}");
        assert!(has("etc/hostname", tar::EntryType::Regular), "{names:?}");
        assert!(has("etc/hostname2", tar::EntryType::Link), "{names:?}");
        assert!(has("etc/link", tar::EntryType::Symlink), "{names:?}");
        if whiteout {
            assert!(has("etc/.wh.gone", tar::EntryType::Regular), "{names:?}");
            assert!(!names.iter().any(|(m, _)| m == "etc/gone"), "{names:?}");
        }
        if opaque {
            assert!(
                has("etc/opaque/.wh..wh..opq", tar::EntryType::Regular),
                "{names:?}"
            );
        }
    }
}
