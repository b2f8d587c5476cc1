//! Image lifecycle beyond import: resolving a reference to an image, load archives,
//! pull from registries, tag, remove, prune, the overlay lower dirs of an image, and
//! the layer half of reconcile.
//!
//! Every image reference a user gives (create's `image`, `/v1/images/{ref}`, a tag's
//! source) is resolved by `Runtime::find_image`, through the one grammar of
//! [`crate::image::reference`]; every name stored (import, load, pull, tag) is made by it.
//!
//! Ordering (crash safety): layers are published on disk before their rows, and rows
//! are deleted before their dirs, so a crash leaves at most a layer dir no row owns,
//! which `Runtime::reconcile_layers` removes at the next start. Every writer holds
//! the image store's gc lock (shared for adding, exclusive for removing).

use std::path::PathBuf;

use boxd_types::{Image, PruneResponse, PullRequest};
use bytes::Bytes;
use chrono::Utc;
use futures_util::Stream;

use crate::image::archive::LoadedImage;
use crate::image::oci::Platform;
use crate::image::reference::{self, Lookup, Reference};
use crate::image::registry::{Progress, RegistryConfig};
use crate::image::ImageError;
use crate::store::{LayerRow, Resolved};

use super::{Runtime, RuntimeError};

/// A client's own credentials for a registry.
#[derive(Clone)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The registries file, in the daemon's root dir.
pub const REGISTRIES_FILE: &str = "registries.toml";

fn platform_of(p: Option<&str>) -> Result<Platform, RuntimeError> {
    match p.filter(|p| !p.is_empty()) {
        Some(p) => Platform::parse(p).map_err(|e| RuntimeError::invalid("platform", e.to_string())),
        None => Ok(Platform::host()),
    }
}

/// The familiar tag to store a name given for import or as a tag's target under.
pub(super) fn tag_name(name: &str) -> Result<String, RuntimeError> {
    Ok(reference::familiar_tag(name).map_err(ImageError::from)?)
}

/// The name an image was found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredName {
    /// A familiar tag (`busybox:latest`) or repo digest (`busybox@sha256:…`).
    pub name: String,
    /// True for a repo digest.
    pub digest: bool,
}

/// An image and how a reference found it.
#[derive(Debug)]
pub(super) struct Found {
    pub image: Image,
    /// The tag or repo digest the reference named; `None` when it gave an id.
    pub name: Option<StoredName>,
}

impl Runtime {
    /// Resolves a reference as Docker does: a full id; else a tag or repo digest in any
    /// spelling of the name (`busybox`, `docker.io/library/busybox:latest`,
    /// `name:tag@sha256:…` by its digest); else a unique id prefix. A malformed
    /// reference is a 400 that says what is wrong.
    pub(super) async fn find_image(&self, reference: &str) -> Result<Found, RuntimeError> {
        let not_found = || RuntimeError::NotFound {
            kind: "image",
            reference: reference.to_owned(),
        };
        let lookup = reference::lookup(reference).map_err(ImageError::from)?;
        let (stored, digest, id_prefix) = match lookup {
            Lookup::Id(id) => {
                let image = self.inner.store.image(&id).await?.ok_or_else(not_found)?;
                return Ok(Found { image, name: None });
            }
            Lookup::Name {
                stored,
                digest,
                id_prefix,
            } => (stored, digest, id_prefix),
        };
        if let Some(image) = self.inner.store.image_by_name(&stored, digest).await? {
            return Ok(Found {
                image,
                name: Some(StoredName {
                    name: stored,
                    digest,
                }),
            });
        }
        let Some(prefix) = id_prefix else {
            return Err(not_found());
        };
        match self.inner.store.image_by_id_prefix(&prefix).await? {
            Resolved::One(image) => Ok(Found { image, name: None }),
            Resolved::None => Err(not_found()),
            Resolved::Ambiguous => Err(RuntimeError::Ambiguous {
                kind: "image",
                reference: reference.to_owned(),
            }),
        }
    }

    /// Records a loaded or pulled image whose layers are stored. The caller holds the
    /// gc lock (shared).
    async fn record_loaded(
        &self,
        loaded: &LoadedImage,
        repo_digest: Option<String>,
    ) -> Result<Image, RuntimeError> {
        let mut image = loaded.config.to_image();
        image.id = loaded.id.clone();
        image.tags = loaded.tags.clone();
        image.layers = loaded.layers.iter().map(|l| l.diff_id.clone()).collect();
        image.repo_digests = repo_digest.into_iter().collect();
        let rows: Vec<LayerRow> = loaded
            .layers
            .iter()
            .map(|l| LayerRow {
                chain_id: l.chain_id.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
            })
            .collect();
        // A layer stored before keeps its recorded size; only new ones report theirs.
        let mut size = 0;
        let known = self.inner.store.layer_ids().await?;
        for l in &rows {
            if l.size == 0 && known.contains(&l.chain_id) {
                continue;
            }
            size += l.size;
        }
        image.size = size;
        self.inner
            .store
            .record_image(&image, &rows, Utc::now())
            .await?;
        let stored = self.image_by_id(&image.id).await?;
        // The image's size is the sum of its layers (shared ones included).
        Ok(Image {
            size: self
                .inner
                .store
                .image_layers(&image.id)
                .await?
                .iter()
                .map(|l| l.size)
                .sum::<u64>()
                .max(stored.size),
            ..stored
        })
    }

    /// `POST /v1/images/load`: every image of a `docker save` or OCI archive.
    pub async fn load_images<S, E>(
        &self,
        body: S,
        name: Option<&str>,
        platform: Option<&str>,
    ) -> Result<Vec<Image>, RuntimeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let platform = platform_of(platform)?;
        if let Some(n) = name {
            Reference::parse(n).map_err(ImageError::from)?;
        }
        let images = &self.inner.images;
        let body = images.spool(body).await?;
        let result = {
            let _gc = images.gc_read().await;
            self.load_and_record(body.path(), name, &platform).await
        };
        if result.is_err() {
            self.discard_unrecorded_layers().await;
        }
        result
    }

    /// The part of [`Self::load_images`] under the gc lock (shared).
    async fn load_and_record(
        &self,
        archive: &std::path::Path,
        name: Option<&str>,
        platform: &Platform,
    ) -> Result<Vec<Image>, RuntimeError> {
        let loaded = self
            .inner
            .images
            .load_archive(archive, name, platform)
            .await?;
        let mut out = Vec::new();
        for l in &loaded {
            let image = self.record_loaded(l, None).await?;
            self.inner
                .events
                .emit(
                    "image",
                    "load",
                    &image.id,
                    &[("name", image.tags.join(","))],
                )
                .await;
            out.push(image);
        }
        Ok(out)
    }

    /// `docker save`: the images `references` name, as one docker-save archive streamed
    /// in chunks. Every reference is resolved first (a missing one fails the request
    /// before any byte); the archive is then written by a blocking task under the gc
    /// lock (shared), so no layer goes away while it is read. A client that goes away
    /// stops the writing (the channel closes) and its temp files are removed.
    pub async fn save_images(
        &self,
        references: &[String],
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, RuntimeError>
    {
        if references.is_empty() {
            return Err(RuntimeError::invalid(
                "names",
                "name at least one image to save",
            ));
        }
        let mut items: Vec<crate::image::save::SaveItem> = Vec::new();
        for r in references {
            let found = self.find_image(r).await?;
            let repo_tags: Vec<String> = found
                .name
                .filter(|n| !n.digest)
                .map(|n| n.name)
                .into_iter()
                .collect();
            if let Some(item) = items.iter_mut().find(|i| i.image.id == found.image.id) {
                // One image named twice is one entry with both names.
                for t in repo_tags {
                    if !item.repo_tags.contains(&t) {
                        item.repo_tags.push(t);
                    }
                }
                continue;
            }
            let chain_ids = self
                .inner
                .store
                .image_layers(&found.image.id)
                .await?
                .into_iter()
                .map(|l| l.chain_id)
                .collect();
            items.push(crate::image::save::SaveItem {
                image: found.image,
                chain_ids,
                repo_tags,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let images = self.inner.images.clone();
        let events = self.inner.events.clone();
        tokio::spawn(async move {
            let _gc = images.gc_read().await;
            let writer = ChannelWriter(tx.clone());
            let store = images.clone();
            let saved = items.clone();
            let result =
                tokio::task::spawn_blocking(move || store.save_archive(&saved, writer)).await;
            let failure = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(format!("save task failed: {e}")),
            };
            match failure {
                None => {
                    for i in &items {
                        events
                            .emit(
                                "image",
                                "save",
                                &i.image.id,
                                &[("name", i.repo_tags.join(","))],
                            )
                            .await;
                    }
                }
                Some(message) => {
                    tracing::warn!(error = %message, "image save failed");
                    // The body ends with an error: the client sees a broken download
                    // rather than a short archive that looks whole.
                    let _ = tx.send(Err(std::io::Error::other(message))).await;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// `POST /v1/images/pull`: pulls and records the image; `progress` hears each step.
    pub async fn pull_image(
        &self,
        req: &PullRequest,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Image, RuntimeError> {
        self.pull_image_as(req, None, progress).await
    }

    /// [`Self::pull_image`] with the client's own credentials for the registry, used
    /// instead of any in `registries.toml` (Docker's `X-Registry-Auth`).
    pub async fn pull_image_as(
        &self,
        req: &PullRequest,
        credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Image, RuntimeError> {
        let reference = Reference::parse(&req.reference).map_err(ImageError::from)?;
        let platform = platform_of(req.platform.as_deref())?;
        let mut config = RegistryConfig::load(&self.inner.info.root_dir.join(REGISTRIES_FILE))
            .map_err(ImageError::from)?;
        if let Some(c) = credentials {
            config = config.with_credentials(&reference.registry, &c.username, &c.password);
        }
        let images = &self.inner.images;
        let result = {
            let _gc = images.gc_read().await;
            match images.pull(&reference, &platform, &config, progress).await {
                Ok(pulled) => {
                    // The digest the manifest (or index) was fetched by, under the name
                    // as stored, so the image is found by `name@digest` in any spelling.
                    let repo_digest = Reference {
                        digest: Some(pulled.digest.clone()),
                        ..reference.clone()
                    }
                    .familiar_digest();
                    self.record_loaded(&pulled.image, repo_digest).await
                }
                Err(e) => Err(e.into()),
            }
        };
        let image = match result {
            Ok(image) => image,
            Err(e) => {
                // Layers of this pull that were unpacked before a later one failed.
                self.discard_unrecorded_layers().await;
                return Err(e);
            }
        };
        self.inner
            .events
            .emit(
                "image",
                "pull",
                &image.id,
                &[("name", reference.to_string())],
            )
            .await;
        Ok(image)
    }

    /// Checks credentials against a registry (`docker login`): its `/v2/` answered
    /// with them, through the token endpoint when it asks for one. `server` is a host
    /// (`127.0.0.1:5000`) or Docker's URL form (`https://index.docker.io/v1/`).
    pub async fn check_registry_login(
        &self,
        server: &str,
        credentials: &RegistryCredentials,
    ) -> Result<(), RuntimeError> {
        let host = server
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        let host = match host {
            "" | "index.docker.io" | "registry-1.docker.io" => "docker.io",
            h => h,
        };
        // A reference in that registry: the session pings `/v2/`, authenticating as
        // the registry asks (the repository only scopes a token request).
        let reference = Reference::parse(&format!("{host}/library/login"))
            .map_err(|e| RuntimeError::invalid("serveraddress", e.to_string()))?;
        let config = RegistryConfig::load(&self.inner.info.root_dir.join(REGISTRIES_FILE))
            .map_err(ImageError::from)?
            .with_credentials(
                &reference.registry,
                &credentials.username,
                &credentials.password,
            );
        crate::image::registry::RegistryClient::connect(&reference, &config)
            .await
            .map_err(ImageError::from)?;
        Ok(())
    }

    /// `POST /v1/images/tag`.
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<Image, RuntimeError> {
        let image = self.find_image(source).await?.image;
        let tag = tag_name(target)?;
        let _gc = self.inner.images.gc_read().await;
        self.inner.store.tag_image(&tag, &image.id).await?;
        self.inner
            .events
            .emit("image", "tag", &image.id, &[("name", tag)])
            .await;
        self.image_by_id(&image.id).await
    }

    /// The overlay lower dirs of an image, topmost first.
    pub(super) async fn image_lowers(&self, image_id: &str) -> Result<Vec<PathBuf>, RuntimeError> {
        let layers = self.inner.store.image_layers(image_id).await?;
        let chains: Vec<String> = layers.into_iter().map(|l| l.chain_id).collect();
        // Rows of an image stored before layers existed have a layer row from the
        // migration; an image without any is a one-layer image by its id.
        let chains = if chains.is_empty() {
            vec![image_id.to_owned()]
        } else {
            chains
        };
        Ok(self.inner.images.lower_dirs(&chains))
    }

    /// Removes an image, as `docker rmi`: a name (tag or repo digest) of an image with
    /// other names is only removed, and removing a repository's last tag removes that
    /// repository's repo digests with it (moby `ImageDelete`); an image a container
    /// uses is 409, or with `force` loses its names and stays until its containers are
    /// gone (prune then takes it).
    pub(super) async fn remove_image_impl(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<(), RuntimeError> {
        let Found { image: img, name } = self.find_image(reference).await?;
        let _gc = self.inner.images.gc_write().await;
        if let (Some(name), false) = (&name, force) {
            let names = names_removed_with(&img, name);
            let total = img.tags.len() + img.repo_digests.len();
            if names.len() < total {
                for (n, digest) in &names {
                    if *digest {
                        self.inner.store.remove_repo_digest(n).await?;
                    } else {
                        self.inner.store.untag_image(n).await?;
                    }
                }
                let removed: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                self.inner
                    .events
                    .emit("image", "untag", &img.id, &[("name", removed.join(","))])
                    .await;
                return Ok(());
            }
        }
        let count = self.inner.store.containers_using_image(&img.id).await?;
        if count > 0 {
            if !force {
                return Err(RuntimeError::ImageInUse {
                    image: img.id,
                    count,
                });
            }
            for t in &img.tags {
                self.inner.store.untag_image(t).await?;
            }
            for d in &img.repo_digests {
                self.inner.store.remove_repo_digest(d).await?;
            }
            self.inner
                .events
                .emit("image", "untag", &img.id, &[("name", img.tags.join(","))])
                .await;
            return Ok(());
        }
        self.delete_image_locked(&img.id).await?;
        self.inner
            .events
            .emit("image", "delete", &img.id, &[("name", img.tags.join(","))])
            .await;
        Ok(())
    }

    /// Deletes an image row and then the layers only it used. Gc lock held (exclusive).
    async fn delete_image_locked(&self, id: &str) -> Result<(Vec<String>, u64), RuntimeError> {
        let layers = self.inner.store.image_layers(id).await?;
        self.inner.store.delete_image(id).await?;
        crate::fault::crash_point("image.after_row_delete");
        let mut removed = Vec::new();
        let mut space = 0;
        for l in layers.iter().rev() {
            if self.inner.store.delete_layer(&l.chain_id).await? {
                self.inner.images.remove(&l.chain_id).await?;
                removed.push(l.chain_id.clone());
                space += l.size;
            }
        }
        Ok((removed, space))
    }

    /// `POST /v1/images/prune`: images no container uses that have no tag (all of
    /// them with `all`), then every layer no image links to.
    pub async fn prune_images(&self, all: bool) -> Result<PruneResponse, RuntimeError> {
        let _gc = self.inner.images.gc_write().await;
        let mut out = PruneResponse::default();
        for id in self.inner.store.unused_images(!all).await? {
            let (layers, space) = self.delete_image_locked(&id).await?;
            out.layers_deleted.extend(layers);
            out.space_reclaimed += space;
            self.inner.events.emit("image", "delete", &id, &[]).await;
            out.images_deleted.push(id);
        }
        for l in self.inner.store.unreferenced_layers().await? {
            if self.inner.store.delete_layer(&l.chain_id).await? {
                self.inner.images.remove(&l.chain_id).await?;
                out.layers_deleted.push(l.chain_id);
                out.space_reclaimed += l.size;
            }
        }
        Ok(out)
    }

    /// At start-up: removes layer dirs no row owns (a load or pull that crashed between
    /// publishing a layer and recording it).
    pub(super) async fn reconcile_layers(&self) -> Result<(), RuntimeError> {
        // Layers no image links to (an image delete that crashed half-way): nothing
        // is being pulled yet, so they are garbage.
        for l in self.inner.store.unreferenced_layers().await? {
            if self.inner.store.delete_layer(&l.chain_id).await? {
                tracing::info!(id = l.chain_id, "removing a layer no image uses");
            }
        }
        self.remove_unowned_layer_dirs().await
    }

    /// Removes layer dirs no row owns. Only sound while no load, pull or import is
    /// between publishing a layer and recording it: at start-up, or under the gc lock
    /// held exclusively.
    async fn remove_unowned_layer_dirs(&self) -> Result<(), RuntimeError> {
        let known = self.inner.store.layer_ids().await?;
        let on_disk = match self.inner.images.list_layers() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "failed to list layers");
                return Ok(());
            }
        };
        for id in on_disk.into_iter().filter(|id| !known.contains(id)) {
            tracing::info!(id, "removing a layer no record owns");
            if let Err(e) = self.inner.images.remove(&id).await {
                tracing::warn!(id, error = %crate::error_chain(&e), "failed to remove stray layer");
            }
        }
        Ok(())
    }

    /// After a failed load or pull: the layers it published before failing have no row
    /// and no image needs them. Waits for the loads and pulls in flight (the gc lock,
    /// exclusive), so a layer another one just published and has yet to record is not
    /// taken from it. A failure here only leaves litter the next start-up removes.
    async fn discard_unrecorded_layers(&self) {
        let _gc = self.inner.images.gc_write().await;
        if let Err(e) = self.remove_unowned_layer_dirs().await {
            tracing::warn!(error = %crate::error_chain(&e), "failed to remove the layers of a failed load or pull");
        }
    }
}

/// The names (and whether each is a repo digest) that removing `name` from `image`
/// removes: the name itself, and when it is the last tag of its repository, that
/// repository's repo digests too (they would otherwise keep an untagged image alive
/// under a name nobody asked for).
fn names_removed_with(image: &Image, name: &StoredName) -> Vec<(String, bool)> {
    let mut out = vec![(name.name.clone(), name.digest)];
    if name.digest {
        return out;
    }
    let repo = reference::repository_of(&name.name);
    let other_tag = image
        .tags
        .iter()
        .any(|t| *t != name.name && reference::repository_of(t) == repo);
    if !other_tag {
        out.extend(
            image
                .repo_digests
                .iter()
                .filter(|d| reference::repository_of(d) == repo)
                .map(|d| (d.clone(), true)),
        );
    }
    out
}

/// The argv of a container, by Docker's rules (moby `daemon/commit.go` `merge`): a
/// requested entrypoint replaces the image's and then the image's cmd is not used; a
/// requested cmd replaces the image's cmd; the result is entrypoint + cmd.
pub(super) fn merged_command(
    req: &super::spec::ContainerSpec,
    image: &Image,
) -> Result<Vec<String>, RuntimeError> {
    let req_cmd = req.cmd.clone().unwrap_or_default();
    let (entrypoint, cmd) = match &req.entrypoint {
        Some(ep) if !ep.is_empty() => (ep.clone(), req_cmd),
        // `[]` clears the image's entrypoint; the image's cmd still applies.
        Some(_) => (
            Vec::new(),
            if req_cmd.is_empty() {
                image.cmd.clone()
            } else {
                req_cmd
            },
        ),
        None => (
            image.entrypoint.clone(),
            if req_cmd.is_empty() {
                image.cmd.clone()
            } else {
                req_cmd
            },
        ),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(RuntimeError::NoCommand);
    }
    Ok(argv)
}

/// The image's labels with the request's on top.
pub(super) fn merged_labels(
    req: &super::spec::ContainerSpec,
    image: &Image,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = image.labels.clone();
    labels.extend(req.labels.clone());
    labels
}

/// A signal named as in an image config (`SIGQUIT`, `QUIT`, `3`).
pub(super) fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

impl Runtime {
    /// The signal `stop` sends first: the container's own (`own`, checked at create),
    /// else the image's `StopSignal`, else SIGTERM.
    pub(super) async fn stop_signal(&self, own: Option<&str>, image_id: &str) -> i32 {
        if let Some(sig) = own.and_then(parse_signal) {
            return sig;
        }
        match self.inner.store.image(image_id).await {
            Ok(Some(img)) => img
                .stop_signal
                .as_deref()
                .and_then(parse_signal)
                .unwrap_or(libc::SIGTERM),
            _ => libc::SIGTERM,
        }
    }
}

/// A blocking writer into a body channel; fails once the receiver (the client) is gone.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::ContainerSpec as CreateContainer;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_merge_follows_docker() {
        let image = Image {
            entrypoint: v(&["/bin/cat"]),
            cmd: v(&["/hello.txt"]),
            ..Default::default()
        };
        let req = |ep: Option<&[&str]>, cmd: Option<&[&str]>| CreateContainer {
            image: "x".into(),
            entrypoint: ep.map(v),
            cmd: cmd.map(v),
            ..Default::default()
        };
        let m = |r: CreateContainer| merged_command(&r, &image).ok();
        assert_eq!(m(req(None, None)), Some(v(&["/bin/cat", "/hello.txt"])));
        assert_eq!(
            m(req(None, Some(&["/etc/passwd"]))),
            Some(v(&["/bin/cat", "/etc/passwd"]))
        );
        // A new entrypoint drops the image's cmd.
        assert_eq!(m(req(Some(&["/bin/echo"]), None)), Some(v(&["/bin/echo"])));
        assert_eq!(
            m(req(Some(&["/bin/echo"]), Some(&["hi"]))),
            Some(v(&["/bin/echo", "hi"]))
        );
        // `[]` clears the entrypoint; the image's cmd remains.
        assert_eq!(m(req(Some(&[]), None)), Some(v(&["/hello.txt"])));
        let bare = Image::default();
        assert!(matches!(
            merged_command(&req(None, None), &bare),
            Err(RuntimeError::NoCommand)
        ));
    }

    #[test]
    fn labels_merge_request_wins() {
        let image = Image {
            labels: [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        let req = CreateContainer {
            image: "x".into(),
            labels: [("b".to_owned(), "3".to_owned())].into(),
            ..Default::default()
        };
        let l = merged_labels(&req, &image);
        assert_eq!(l["a"], "1");
        assert_eq!(l["b"], "3");
    }

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("quit"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }
}
