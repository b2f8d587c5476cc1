//! `/images/...`: list, inspect, history, pull and import (`/images/create`), load,
//! tag, remove and prune, onto the engine's image store.
//!
//! Image names may hold slashes and a registry port (`127.0.0.1:5000/test/app`), so
//! the per-image paths are one wildcard route split on their last word (`/json`,
//! `/history`, `/tag`, `/push`, `/get`).

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bollard_stubs::models::{
    CreateImageInfo, ErrorDetail, HistoryResponseItem, ImageConfig, ImageDeleteResponseItem,
    ImageInspect, ImageInspectRootFs, ImagePruneResponse, ImageSummary, ProgressDetail,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::error::{bool_value, DockerError, DockerQuery};
use super::models::{Filters, QueryFilters};
use crate::api::AppState;
use crate::image::registry::Progress;
use crate::runtime::images::RegistryCredentials;
use crate::runtime::{ImportChanges, RuntimeError};

fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// How many containers use each image.
async fn users(s: &AppState) -> Result<HashMap<String, i64>, DockerError> {
    let mut n = HashMap::new();
    for c in s.runtime.containers(true).await? {
        *n.entry(c.image_id).or_insert(0) += 1;
    }
    Ok(n)
}

/// `docker images` rows, filtered.
pub(super) async fn summaries(
    s: &AppState,
    filters: &Filters,
) -> Result<Vec<ImageSummary>, DockerError> {
    filters.only(&["dangling", "reference", "label", "before", "since", "until"])?;
    let used = users(s).await?;
    let mut out = Vec::new();
    for i in s.runtime.images().await? {
        let dangling = i.tags.is_empty();
        if let Some(d) = filters.get("dangling").first() {
            if bool_value(Some(d)) != dangling {
                continue;
            }
        }
        let refs = filters.get("reference");
        // Only the names that match are shown (the CLI prints a row per name).
        let tags: Vec<String> = i
            .tags
            .iter()
            .filter(|t| refs.is_empty() || refs.iter().any(|r| reference_matches(r, t)))
            .cloned()
            .collect();
        if !refs.is_empty() && tags.is_empty() {
            continue;
        }
        if !filters.labels_match("label", |k| i.labels.get(k).map(String::as_str)) {
            continue;
        }
        out.push(ImageSummary {
            id: i.id.clone(),
            parent_id: String::new(),
            repo_tags: tags,
            repo_digests: i.repo_digests.clone(),
            created: i.created_at.timestamp(),
            size: i.size as i64,
            shared_size: -1,
            virtual_size: Some(i.size as i64),
            labels: i.labels.clone().into_iter().collect(),
            containers: used.get(&i.id).copied().unwrap_or(0),
            manifests: None,
        });
    }
    out.sort_by_key(|i| std::cmp::Reverse(i.created));
    Ok(out)
}

/// Docker's `reference` filter: a name, `name:tag`, with `*` globs in either.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let (repo, t) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
    let (prepo, ptag) = match pattern.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (pattern, None),
    };
    glob(prepo, repo) && ptag.is_none_or(|p| glob(p, t))
}

fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len()).any(|i| glob(rest, &s[head.len() + i..]))
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    filters: Option<String>,
    all: Option<String>,
}

pub(super) async fn list(
    State(s): State<AppState>,
    DockerQuery(q): DockerQuery<ListQuery>,
) -> Result<Json<Vec<ImageSummary>>, DockerError> {
    let _ = q.all;
    let filters = Filters::parse(q.filters.as_deref())?;
    Ok(Json(summaries(&s, &filters).await?))
}

async fn image_of(s: &AppState, name: &str) -> Result<boxd_types::Image, DockerError> {
    match s.runtime.image(name).await {
        Ok(i) => Ok(i),
        Err(RuntimeError::NotFound { .. }) => Err(DockerError::new(
            StatusCode::NOT_FOUND,
            format!("No such image: {name}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /images/{name}/json|history|get`.
pub(super) async fn get_named(
    State(s): State<AppState>,
    Path(rest): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, DockerError> {
    let (name, what) = rest.rsplit_once('/').unwrap_or(("", rest.as_str()));
    match what {
        "json" => Ok(Json(Inspect143 {
            inspect: inspect_out(image_of(&s, name).await?),
            container: String::new(),
            container_config: empty_container_config(),
        })
        .into_response()),
        "history" => {
            let i = image_of(&s, name).await?;
            let mut items: Vec<HistoryResponseItem> = i
                .history
                .iter()
                .rev()
                .enumerate()
                .map(|(n, h)| HistoryResponseItem {
                    id: if n == 0 {
                        i.id.clone()
                    } else {
                        "<missing>".into()
                    },
                    created: h
                        .created
                        .as_deref()
                        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                        .map_or(0, |t| t.timestamp()),
                    created_by: h.created_by.clone().unwrap_or_default(),
                    tags: if n == 0 { i.tags.clone() } else { Vec::new() },
                    size: 0,
                    comment: h.comment.clone().unwrap_or_default(),
                })
                .collect();
            if items.is_empty() {
                items.push(HistoryResponseItem {
                    id: i.id.clone(),
                    created: i.created_at.timestamp(),
                    created_by: String::new(),
                    tags: i.tags.clone(),
                    size: i.size as i64,
                    comment: "imported".into(),
                });
            }
            Ok(Json(items).into_response())
        }
        "get" if !name.is_empty() => save(&s, vec![name.to_owned()]).await,
        _ if rest == "get" => {
            // `names` repeats, one key per image: read from the raw query.
            let names = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k == "names")
                .map(|(_, v)| v.into_owned())
                .collect();
            save(&s, names).await
        }
        _ => Err(super::error::DockerError::new(
            StatusCode::NOT_FOUND,
            "page not found",
        )),
    }
}

/// `GET /images/get` and `/images/{name}/get`: a docker-save archive.
async fn save(s: &AppState, names: Vec<String>) -> Result<Response, DockerError> {
    let body = s.runtime.save_images(&names).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(body),
    )
        .into_response())
}

fn not_yet(what: &str) -> DockerError {
    DockerError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!("{what} is not supported by boxd yet"),
    )
}

/// An image's inspect as API 1.43 shapes it. bollard's model follows API 1.47, which
/// dropped the deprecated `Container` and `ContainerConfig` (the builder container's);
/// dockerd still sends them to clients below 1.45, empty when the image was not built
/// by its classic builder, and docker-compose 1.29 reads `ContainerConfig.Volumes` each
/// time it recreates a container (a `KeyError` without it: docker/compose#11742).
#[derive(Serialize)]
struct Inspect143 {
    #[serde(flatten)]
    inspect: ImageInspect,
    #[serde(rename = "Container")]
    container: String,
    #[serde(rename = "ContainerConfig")]
    container_config: serde_json::Value,
}

/// The `ContainerConfig` of an image no builder container made, as dockerd writes it.
fn empty_container_config() -> serde_json::Value {
    serde_json::json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    })
}

fn inspect_out(i: boxd_types::Image) -> ImageInspect {
    let config = ImageConfig {
        user: Some(i.user.clone().unwrap_or_default()),
        env: Some(i.env.clone()),
        cmd: Some(i.cmd.clone()).filter(|c| !c.is_empty()),
        entrypoint: Some(i.entrypoint.clone()).filter(|e| !e.is_empty()),
        working_dir: Some(i.working_dir.clone().unwrap_or_default()),
        labels: Some(i.labels.clone().into_iter().collect()),
        stop_signal: i.stop_signal.clone(),
        exposed_ports: Some(
            i.exposed_ports
                .iter()
                .map(|p| (p.clone(), HashMap::new()))
                .collect(),
        )
        .filter(|m: &HashMap<_, _>| !m.is_empty()),
        ..Default::default()
    };
    ImageInspect {
        id: Some(i.id.clone()),
        repo_tags: Some(i.tags.clone()),
        repo_digests: Some(i.repo_digests.clone()),
        parent: Some(String::new()),
        comment: Some(String::new()),
        created: Some(super::models::time(Some(i.created_at))),
        docker_version: Some(String::new()),
        author: Some(String::new()),
        config: Some(config),
        architecture: Some(i.architecture.clone().unwrap_or_else(super::system_arch)),
        os: Some(i.os.clone().unwrap_or_else(|| "linux".into())),
        size: Some(i.size as i64),
        virtual_size: Some(i.size as i64),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".into(),
            layers: Some(i.layers.clone()),
        }),
        ..Default::default()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct TagQuery {
    repo: Option<String>,
    tag: Option<String>,
}

/// `POST /images/{name}/tag|push`.
pub(super) async fn post_named(
    State(s): State<AppState>,
    Path(rest): Path<String>,
    DockerQuery(q): DockerQuery<TagQuery>,
) -> Result<StatusCode, DockerError> {
    let (name, what) = rest.rsplit_once('/').unwrap_or(("", rest.as_str()));
    match what {
        "tag" => {
            let repo = q
                .repo
                .filter(|r| !r.is_empty())
                .ok_or_else(|| DockerError::bad("repo is required"))?;
            let target = match q.tag.filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo,
            };
            image_of(&s, name).await?;
            s.runtime.tag_image(name, &target).await?;
            Ok(StatusCode::CREATED)
        }
        "push" => Err(not_yet("docker push")),
        _ => Err(DockerError::new(StatusCode::NOT_FOUND, "page not found")),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RemoveQuery {
    force: Option<String>,
    noprune: Option<String>,
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
    DockerQuery(q): DockerQuery<RemoveQuery>,
) -> Result<Json<Vec<ImageDeleteResponseItem>>, DockerError> {
    let _ = q.noprune;
    let before = image_of(&s, &name).await?;
    let by_id = before.id == name
        || before
            .id
            .trim_start_matches("sha256:")
            .starts_with(name.trim_start_matches("sha256:"));
    match s.runtime.remove_image(&name, bool_value(q.force.as_deref())).await {
        Ok(()) => {}
        Err(RuntimeError::ImageInUse { image, .. }) => {
            return Err(DockerError::new(
                StatusCode::CONFLICT,
                format!("conflict: unable to remove repository reference \"{name}\" (must force) - image {} is being used by a container", short(&image)),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let mut out = Vec::new();
    let untagged: Vec<String> = if by_id {
        before.tags.clone()
    } else {
        vec![name.clone()]
    };
    for t in untagged {
        out.push(ImageDeleteResponseItem {
            untagged: Some(t),
            deleted: None,
        });
    }
    if s.runtime.image(&before.id).await.is_err() {
        out.push(ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(before.id),
        });
    }
    Ok(Json(out))
}

pub(super) async fn prune(
    State(s): State<AppState>,
    QueryFilters(filters): QueryFilters,
) -> Result<Json<ImagePruneResponse>, DockerError> {
    filters.only(&["dangling", "until", "label"])?;
    // dangling=false (docker image prune -a): every image no container uses.
    let all = filters
        .get("dangling")
        .first()
        .is_some_and(|d| !bool_value(Some(d)));
    let r = s.runtime.prune_images(all).await?;
    Ok(Json(ImagePruneResponse {
        images_deleted: Some(
            r.images_deleted
                .into_iter()
                .map(|id| ImageDeleteResponseItem {
                    untagged: None,
                    deleted: Some(id),
                })
                .collect(),
        ),
        space_reclaimed: Some(r.space_reclaimed as i64),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateQuery {
    #[serde(rename = "fromImage")]
    from_image: Option<String>,
    #[serde(rename = "fromSrc")]
    from_src: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    message: Option<String>,
    platform: Option<String>,
}

/// One JSONMessage line.
fn line(info: &CreateImageInfo) -> Bytes {
    let mut v = serde_json::to_vec(info).expect("progress serialises");
    v.push(b'\n');
    Bytes::from(v)
}

fn status(id: Option<String>, status: impl Into<String>) -> CreateImageInfo {
    CreateImageInfo {
        id,
        status: Some(status.into()),
        progress_detail: Some(ProgressDetail::default()),
        ..Default::default()
    }
}

fn error_line(message: String) -> CreateImageInfo {
    CreateImageInfo {
        error: Some(message.clone()),
        error_detail: Some(ErrorDetail {
            code: None,
            message: Some(message),
        }),
        ..Default::default()
    }
}

fn progress_info(p: Progress) -> CreateImageInfo {
    match p {
        Progress::Resolved { digest, .. } => status(None, format!("Digest: {digest}")),
        Progress::Waiting { digest } => status(Some(short(&digest)), "Pulling fs layer"),
        Progress::Downloading {
            digest,
            current,
            total,
        } => CreateImageInfo {
            id: Some(short(&digest)),
            status: Some("Downloading".into()),
            progress_detail: Some(ProgressDetail {
                current: Some(current as i64),
                total: Some(total as i64),
            }),
            ..Default::default()
        },
        Progress::Extracting { digest } => status(Some(short(&digest)), "Extracting"),
        Progress::Exists { digest } => status(Some(short(&digest)), "Already exists"),
        Progress::LayerDone { digest } => status(Some(short(&digest)), "Pull complete"),
    }
}

/// `POST /images/create`: `fromImage` pulls (a JSONMessage stream), `fromSrc=-`
/// imports the body as a root filesystem.
pub(super) async fn create(
    State(s): State<AppState>,
    DockerQuery(q): DockerQuery<CreateQuery>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, DockerError> {
    if let Some(src) = q.from_src.as_deref() {
        if src != "-" {
            return Err(DockerError::bad(
                "fromSrc must be - (the body): boxd does not fetch archives from URLs",
            ));
        }
        // `changes` repeats (one key per instruction), which the query extractor
        // cannot collect: read from the raw query.
        let changes = ImportChanges {
            changes: form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k == "changes")
                .map(|(_, v)| v.into_owned())
                .collect(),
            message: q.message.clone(),
        };
        let repo =
            q.repo.clone().filter(|r| !r.is_empty()).ok_or_else(|| {
                DockerError::bad("repo is required: boxd names every imported image")
            })?;
        let name = match q.tag.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo,
        };
        let mut body = req.into_body().into_data_stream();
        if let Err(e) = crate::image::changes::apply(&mut Default::default(), &changes.changes) {
            // Read the upload to its end before answering, or the client, still
            // writing it, sees a broken pipe instead of the reason.
            while let Some(Ok(_)) = body.next().await {}
            return Err(DockerError::bad(e.to_string()));
        }
        let image = s.runtime.import_image(&name, body, &changes).await?;
        let body = line(&status(None, image.id));
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let from = q
        .from_image
        .clone()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| DockerError::bad("fromImage or fromSrc is required"))?;
    let reference = match q.tag.as_deref().filter(|t| !t.is_empty()) {
        // A digest is given as the tag by some clients.
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None if from.contains('@') || from.rsplit('/').next().is_some_and(|l| l.contains(':')) => {
            from.clone()
        }
        None => format!("{from}:latest"),
    };
    let credentials = match headers.get("x-registry-auth") {
        Some(auth) => header_credentials(auth.as_bytes())?,
        None => None,
    };
    let req = boxd_types::PullRequest {
        reference: reference.clone(),
        platform: q.platform.clone().filter(|p| !p.is_empty()),
    };
    let (tx, rx) = mpsc::unbounded_channel::<CreateImageInfo>();
    let runtime = s.runtime.clone();
    tokio::spawn(async move {
        let _ = tx.send(status(None, format!("Pulling from {from}")));
        let progress_tx = tx.clone();
        let last = std::sync::Mutex::new(HashMap::<String, u64>::new());
        let progress = move |p: Progress| {
            if let Progress::Downloading {
                digest,
                current,
                total,
            } = &p
            {
                let mut sent = last.lock().expect("progress map poisoned");
                let l = sent.entry(digest.clone()).or_insert(0);
                if *current != *total && *current < *l + (512 << 10) && *l != 0 {
                    return;
                }
                *l = (*current).max(1);
            }
            let _ = progress_tx.send(progress_info(p));
        };
        match runtime
            .pull_image_as(&req, credentials.as_ref(), &progress)
            .await
        {
            Ok(_) => {
                let _ = tx.send(status(
                    None,
                    format!("Status: Downloaded newer image for {reference}"),
                ));
            }
            Err(e) => {
                let e = DockerError::from(e);
                let _ = tx.send(error_line(e.message().to_owned()));
            }
        }
    });
    let body = tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
        .map(|info| Ok::<_, Infallible>(line(&info)));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Docker's `AuthConfig`, as `X-Registry-Auth` (base64url JSON) and `POST /auth`
/// carry it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuthConfig {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// `base64("user:password")`, the config file's form.
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    pub(super) serveraddress: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl AuthConfig {
    /// The credentials it holds; none for an empty config (the CLI's `{}`). Tokens
    /// (OAuth identity or registry tokens) are refused: boxd logs in with a username
    /// and password.
    pub(super) fn credentials(&self) -> Result<Option<RegistryCredentials>, DockerError> {
        use base64::Engine;
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        if given(&self.identitytoken).is_some() || given(&self.registrytoken).is_some() {
            return Err(DockerError::bad(
                "identity and registry tokens are not supported by boxd: log in with a username and password",
            ));
        }
        if let (Some(u), Some(p)) = (given(&self.username), given(&self.password)) {
            return Ok(Some(RegistryCredentials {
                username: u.to_owned(),
                password: p.to_owned(),
            }));
        }
        if let Some(auth) = given(&self.auth) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| DockerError::bad("auth is not base64 of user:password"))?;
            let (u, p) = decoded
                .split_once(':')
                .ok_or_else(|| DockerError::bad("auth is not base64 of user:password"))?;
            return Ok(Some(RegistryCredentials {
                username: u.to_owned(),
                password: p.to_owned(),
            }));
        }
        if given(&self.username).is_some() {
            return Err(DockerError::bad("a username needs its password"));
        }
        Ok(None)
    }
}

/// `X-Registry-Auth`: base64url JSON credentials for this pull, used instead of the
/// daemon's `registries.toml` for the registry pulled from.
fn header_credentials(raw: &[u8]) -> Result<Option<RegistryCredentials>, DockerError> {
    use base64::Engine;
    let raw = String::from_utf8_lossy(raw);
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
        .map_err(|_| DockerError::bad("X-Registry-Auth is not base64"))?;
    let config: AuthConfig = serde_json::from_slice(&decoded)
        .map_err(|e| DockerError::bad(format!("X-Registry-Auth is not an auth config: {e}")))?;
    config.credentials()
}

#[derive(Debug, Deserialize)]
pub(super) struct LoadQuery {
    quiet: Option<String>,
}

/// `POST /images/load`.
pub(super) async fn load(
    State(s): State<AppState>,
    DockerQuery(q): DockerQuery<LoadQuery>,
    req: Request,
) -> Result<Response, DockerError> {
    let _ = q.quiet;
    let body = req.into_body().into_data_stream();
    let images = s.runtime.load_images(body, None, None).await?;
    let mut out = Vec::new();
    for i in images {
        let names = if i.tags.is_empty() {
            vec![format!("Loaded image ID: {}", i.id)]
        } else {
            i.tags
                .iter()
                .map(|t| format!("Loaded image: {t}"))
                .collect()
        };
        for n in names {
            let mut v = serde_json::to_vec(&serde_json::Map::from_iter([(
                "stream".to_owned(),
                serde_json::Value::String(format!("{n}\n")),
            )]))
            .expect("serialises");
            v.push(b'\n');
            out.extend_from_slice(&v);
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filters_glob_as_docker() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busybox:latest", "busybox:latest"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:latest"));
        assert!(reference_matches("*:lat*", "busybox:latest"));
        assert!(!reference_matches("alpine", "busybox:latest"));
        assert!(reference_matches(
            "127.0.0.1:5000/test/*",
            "127.0.0.1:5000/test/app:v1"
        ));
    }

    #[test]
    fn registry_auth_header() {
        use base64::Engine;
        assert!(header_credentials(b"e30=").unwrap().is_none());
        assert!(header_credentials(b"").unwrap().is_none());
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE.encode(s);
        let c = header_credentials(enc(r#"{"username":"u","password":"p:w"}"#).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:w"));
        let auth = base64::engine::general_purpose::STANDARD.encode("v:x:y");
        let c = header_credentials(enc(&format!(r#"{{"auth":"{auth}"}}"#)).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("v", "x:y"));
        for bad in [
            r#"{"identitytoken":"t"}"#,
            r#"{"username":"u"}"#,
            r#"{"auth":"%%%"}"#,
        ] {
            assert_eq!(
                header_credentials(enc(bad).as_bytes())
                    .unwrap_err()
                    .status(),
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert!(header_credentials(b"!!").is_err());
    }
}
