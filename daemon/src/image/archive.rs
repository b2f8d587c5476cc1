//! Image archives: `docker save` tars (`manifest.json`) and OCI image layouts packed as
//! a tar (`oci-layout` + `index.json`, skopeo's `oci-archive:`).
//!
//! The archive is untrusted. Its regular files are copied to numbered temp files (no
//! archive name ever becomes a host path), symlinks are only resolved inside the
//! archive's own namespace, every blob is checked against its digest, and each layer's
//! tar against its diff_id before it is published. Several images per archive are
//! loaded; an index (multi-arch) yields the host platform's image.

use std::collections::HashMap;
use std::fs::{DirBuilder, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::layers::TempFile;
use super::oci::{self, Document, ImageConfig, Platform};
use super::reference;
use super::{random_name, unpack, ImageError, ImageStore, LayerInfo, TempPath};

/// What is wrong with an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not an image archive: it has neither manifest.json nor oci-layout and index.json")]
    UnknownFormat,
    #[error("archive lacks {0}")]
    Missing(String),
    #[error("failed to read the archive")]
    ReadTar(#[source] io::Error),
    #[error("failed to parse {what}")]
    Parse {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the archive holds no image")]
    Empty,
    #[error("archive member {name} is {size} bytes, more than the limit of {limit} bytes; raise it with --max-archive-member (config key max_archive_member)")]
    MemberTooLarge { name: String, size: u64, limit: u64 },
}

/// An image of an archive, with its layers stored.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// `sha256` of the config blob (the image id).
    pub id: String,
    /// The parsed config.
    pub config: ImageConfig,
    /// The layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// Familiar tags (`test/busybox:latest`).
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// The extracted archive: archive path -> temp file, and its symlinks.
struct Extracted {
    _dir: TempPath,
    files: HashMap<String, PathBuf>,
    links: HashMap<String, String>,
}

impl Extracted {
    /// Resolves a name (following the archive's own symlinks, never the host's).
    fn file(&self, name: &str) -> Result<&Path, ArchiveError> {
        let mut cur = normalise(name).ok_or_else(|| ArchiveError::Missing(name.to_owned()))?;
        for _ in 0..16 {
            if let Some(p) = self.files.get(&cur) {
                return Ok(p);
            }
            let Some(target) = self.links.get(&cur) else {
                break;
            };
            cur = target.clone();
        }
        Err(ArchiveError::Missing(name.to_owned()))
    }

    /// Reads a member whole, off the async workers, refusing one over `limit` bytes.
    async fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
        let path = self.file(name)?.to_owned();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || read_capped(&path, &name, limit))
            .await
            .map_err(ImageError::Join)?
    }
}

/// The whole of a member that is at most `limit` bytes.
fn read_capped(path: &Path, name: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
    let file = File::open(path).map_err(ImageError::ReadTemp)?;
    let size = file.metadata().map_err(ImageError::ReadTemp)?.len();
    let too_large = |size| ArchiveError::MemberTooLarge {
        name: name.to_owned(),
        size,
        limit,
    };
    if size > limit {
        return Err(too_large(size).into());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // `take`: the temp file is ours, but never read past the limit whatever it holds.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ImageError::ReadTemp)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64).into());
    }
    Ok(bytes)
}

fn normalise(name: &str) -> Option<String> {
    let comps = unpack::normalise(name.as_bytes()).ok()?;
    let parts: Vec<String> = comps
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Resolves a symlink target relative to the link's directory, inside the archive.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return normalise(target);
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn sha256_file(path: &Path) -> Result<String, ImageError> {
    let mut f = File::open(path).map_err(ImageError::ReadTemp)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).map_err(ImageError::ReadTemp)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

impl ImageStore {
    /// Streams a request body into a temp file of the store.
    pub(crate) async fn spool<S, E>(&self, mut body: S) -> Result<TempFile, ImageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (path, guard) = self.temp_file("body-");
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|source| ImageError::CreateTemp {
                path: path.clone(),
                source,
            })?;
        let write_err = |source| ImageError::WriteTemp {
            path: path.clone(),
            source,
        };
        let mut any = false;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ImageError::ReadBody(Box::new(e)))?;
            any |= !chunk.is_empty();
            file.write_all(&chunk).await.map_err(write_err)?;
        }
        file.flush().await.map_err(write_err)?;
        if !any {
            return Err(ImageError::EmptyBody);
        }
        Ok(guard)
    }

    /// Loads every image of an archive: its layers are stored (each verified), the
    /// images are returned for the caller to record. `name` tags OCI images whose
    /// `ref.name` is a bare tag (`latest`).
    pub async fn load_archive(
        &self,
        archive: &Path,
        name: Option<&str>,
        platform: &Platform,
    ) -> Result<Vec<LoadedImage>, ImageError> {
        let store = self.clone();
        let archive = archive.to_owned();
        let extracted = tokio::task::spawn_blocking(move || store.extract(&archive))
            .await
            .map_err(ImageError::Join)??;
        let images = if extracted.files.contains_key("manifest.json") {
            self.load_docker(&extracted).await?
        } else if extracted.files.contains_key("index.json") {
            self.load_oci(&extracted, name, platform).await?
        } else {
            return Err(ArchiveError::UnknownFormat.into());
        };
        if images.is_empty() {
            return Err(ArchiveError::Empty.into());
        }
        Ok(images)
    }

    fn extract(&self, archive: &Path) -> Result<Extracted, ImageError> {
        let dir_path = self.tmp.join(random_name("load-"));
        DirBuilder::new()
            .mode(0o700)
            .create(&dir_path)
            .map_err(|source| ImageError::CreateDir {
                path: dir_path.clone(),
                source,
            })?;
        let dir = TempPath::new(dir_path.clone());
        let file = File::open(archive).map_err(ImageError::ReadTemp)?;
        let mut tar = tar::Archive::new(file);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for (n, entry) in tar.entries().map_err(ArchiveError::ReadTar)?.enumerate() {
            let mut entry = entry.map_err(ArchiveError::ReadTar)?;
            let raw = entry.path_bytes().into_owned();
            let Some(name) = normalise(&String::from_utf8_lossy(&raw)) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let path = dir_path.join(format!("f{n}"));
                    let mut out = File::create(&path).map_err(|source| ImageError::CreateTemp {
                        path: path.clone(),
                        source,
                    })?;
                    io::copy(&mut entry, &mut out).map_err(ArchiveError::ReadTar)?;
                    links.remove(&name);
                    files.insert(name, path);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Link {
                        normalise(&target)
                    } else {
                        resolve_link(&name, &target)
                    };
                    if let Some(t) = resolved {
                        files.remove(&name);
                        links.insert(name, t);
                    }
                }
                _ => {}
            }
        }
        Ok(Extracted {
            _dir: dir,
            files,
            links,
        })
    }

    async fn load_docker(&self, x: &Extracted) -> Result<Vec<LoadedImage>, ImageError> {
        let manifest: Vec<DockerManifestEntry> = serde_json::from_slice(
            &x.read("manifest.json", self.max_member).await?,
        )
        .map_err(|source| ArchiveError::Parse {
            what: "manifest.json".into(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in manifest {
            let config_bytes = x.read(&entry.config, self.max_member).await?;
            let id = oci::digest_of(&config_bytes);
            let config = ImageConfig::parse(&config_bytes)?;
            let diff_ids = config.diff_ids()?;
            if diff_ids.len() != entry.layers.len() {
                return Err(oci::FormatError::LayerCount {
                    diff_ids: diff_ids.len(),
                    layers: entry.layers.len(),
                }
                .into());
            }
            let mut layers: Vec<LayerInfo> = Vec::new();
            for (name, diff_id) in entry.layers.iter().zip(&diff_ids) {
                let path = x.file(name)?;
                let parent = layers.last().map(|l| l.chain_id.clone());
                let layer = self
                    .apply_layer(path, parent.as_deref(), Some(diff_id))
                    .await?;
                layers.push(layer);
            }
            let tags = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| reference::familiar_tag(t))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(LoadedImage {
                id,
                config,
                layers,
                tags,
            });
        }
        Ok(out)
    }

    async fn load_oci(
        &self,
        x: &Extracted,
        name: Option<&str>,
        platform: &Platform,
    ) -> Result<Vec<LoadedImage>, ImageError> {
        if x.file("oci-layout").is_err() {
            return Err(ArchiveError::Missing("oci-layout".into()).into());
        }
        let index = match oci::parse_document(
            Some(oci::OCI_INDEX),
            &x.read("index.json", self.max_member).await?,
        )? {
            Document::Index(i) => i,
            Document::Manifest(_) => unreachable!("parsed as an index"),
        };
        let mut out = Vec::new();
        for desc in &index.manifests {
            let ref_name = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name"))
                .cloned();
            let mut manifest_desc = desc.clone();
            let mut bytes = self.oci_blob(x, &manifest_desc.digest).await?;
            let mut doc = oci::parse_document(non_empty(&manifest_desc.media_type), &bytes)?;
            if let Document::Index(inner) = &doc {
                manifest_desc = oci::select_platform(inner, platform)?.clone();
                bytes = self.oci_blob(x, &manifest_desc.digest).await?;
                doc = oci::parse_document(non_empty(&manifest_desc.media_type), &bytes)?;
            }
            let Document::Manifest(manifest) = doc else {
                return Err(oci::FormatError::UnsupportedManifest("nested index".into()).into());
            };
            let config_bytes = self.oci_blob(x, &manifest.config.digest).await?;
            let config = ImageConfig::parse(&config_bytes)?;
            let diff_ids = config.diff_ids()?;
            if diff_ids.len() != manifest.layers.len() {
                return Err(oci::FormatError::LayerCount {
                    diff_ids: diff_ids.len(),
                    layers: manifest.layers.len(),
                }
                .into());
            }
            let mut layers: Vec<LayerInfo> = Vec::new();
            for (l, diff_id) in manifest.layers.iter().zip(&diff_ids) {
                let parent = layers.last().map(|l| l.chain_id.clone());
                let chain = super::layers::chain_of(parent.as_deref(), diff_id);
                let layer = if self.layer_exists(&chain) {
                    LayerInfo {
                        chain_id: chain,
                        diff_id: diff_id.clone(),
                        size: 0,
                    }
                } else {
                    let path = self.oci_blob_path(x, &l.digest).await?;
                    self.apply_layer(&path, parent.as_deref(), Some(diff_id))
                        .await?
                };
                layers.push(layer);
            }
            let tags = match ref_name {
                Some(r) if r.contains('/') || r.contains(':') => {
                    vec![reference::familiar_tag(&r)?]
                }
                Some(tag) => match name {
                    Some(repo) => vec![reference::familiar_tag(&format!("{repo}:{tag}"))?],
                    None => Vec::new(),
                },
                None => Vec::new(),
            };
            out.push(LoadedImage {
                id: oci::digest_of(&config_bytes),
                config,
                layers,
                tags,
            });
        }
        Ok(out)
    }

    /// A blob of the layout (a manifest, index or config: at most `max_member` bytes),
    /// its digest checked.
    async fn oci_blob(&self, x: &Extracted, digest: &str) -> Result<Vec<u8>, ImageError> {
        let name = blob_name(digest)?;
        let bytes = x.read(&name, self.max_member).await?;
        let actual = oci::digest_of(&bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: "archive blob",
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The path of a blob of the layout (a layer), its digest checked off the async
    /// workers: a layer can be gigabytes.
    async fn oci_blob_path(&self, x: &Extracted, digest: &str) -> Result<PathBuf, ImageError> {
        let path = x.file(&blob_name(digest)?)?.to_owned();
        let hashed = path.clone();
        let actual = tokio::task::spawn_blocking(move || sha256_file(&hashed))
            .await
            .map_err(ImageError::Join)??;
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: "archive blob",
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(path)
    }
}

/// `blobs/<alg>/<hex>`, the layout's name of a blob.
fn blob_name(digest: &str) -> Result<String, ImageError> {
    if !reference::valid_digest(digest) {
        return Err(oci::FormatError::BadDigest(digest.to_owned()).into());
    }
    Ok(format!("blobs/{}", digest.replacen(':', "/", 1)))
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_archive() {
        assert_eq!(
            resolve_link("abc/layer.tar", "../d.tar").as_deref(),
            Some("d.tar")
        );
        assert_eq!(resolve_link("a/b", "c").as_deref(), Some("a/c"));
        assert_eq!(resolve_link("a", "../../x"), None);
        assert_eq!(normalise("./x/./y").as_deref(), Some("x/y"));
        assert_eq!(normalise("../x"), None);
    }
}
