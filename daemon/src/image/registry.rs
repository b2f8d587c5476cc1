//! Pulling from registries that speak the OCI distribution API (Docker Registry HTTP
//! API v2): `GET /v2/`, the `WWW-Authenticate` bearer-token dance or basic auth,
//! manifest negotiation, platform selection from an index, and blobs streamed to disk
//! with their sha256 checked while they stream.
//!
//! HTTP client: `reqwest` with rustls (no OpenSSL on the host, native roots so the
//! host's CA store is honoured); it streams bodies, pools connections and follows the
//! redirects registries use to send blobs to a CDN.
//!
//! Credentials come from `registries.toml` (see [`RegistryConfig`]) and are never
//! logged: errors name the registry, never a header.
//!
//! HTTPS always, except for registries listed `insecure = true` and loopback hosts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::archive::LoadedImage;
use super::oci::{self, Document, ImageConfig, Platform};
use super::reference::Reference;
use super::{ImageError, ImageStore, LayerInfo};

/// How many layers download at once.
pub const PARALLEL_LAYERS: usize = 3;
/// Largest manifest or config accepted (they are held in memory).
const MAX_DOCUMENT: usize = 4 << 20;

/// Errors of talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("failed to read registry config {path}")]
    ReadConfig {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse registry config {path}")]
    ParseConfig {
        path: std::path::PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("failed to build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("request to {url} failed")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("registry {registry} refused the credentials (or none were configured)")]
    Unauthorized { registry: String },
    #[error("registry {registry} asked for an unsupported authentication: {scheme}")]
    AuthScheme { registry: String, scheme: String },
    #[error("failed to get a token from {realm}")]
    Token {
        realm: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what} too large")]
    TooLarge { what: &'static str },
    #[error("{what} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{what} {digest} is {actual} bytes, expected {expected}")]
    SizeMismatch {
        what: &'static str,
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("failed to write blob {path}")]
    WriteBlob {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The registry says the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::Status { status: 404, .. })
    }

    /// The registry refused the credentials (or their absence).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized { .. }
                | RegistryError::Status {
                    status: 401 | 403,
                    ..
                }
        )
    }

    /// The request itself was wrong (credentials, auth, an unknown platform).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized { .. }
                | RegistryError::Status {
                    status: 400..=403,
                    ..
                }
        )
    }
}

/// `registries.toml`:
///
/// ```toml
/// [[registry]]
/// host = "registry.example.com:5000"
/// insecure = false          # plain HTTP (loopback hosts always may)
/// username = "me"
/// password = "secret"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub registry: Vec<RegistryEntry>,
}

/// One registry's settings.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub host: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for RegistryEntry {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryEntry")
            .field("host", &self.host)
            .field("insecure", &self.insecure)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RegistryConfig {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<RegistryConfig, RegistryError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| RegistryError::ParseConfig {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryConfig::default()),
            Err(source) => Err(RegistryError::ReadConfig {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// This config with `username`/`password` for `registry` (a pull's or login's own
    /// credentials, as Docker's `X-Registry-Auth` gives them), in place of any the file
    /// has; the file's other settings for it (`insecure`) are kept.
    pub fn with_credentials(mut self, registry: &str, username: &str, password: &str) -> Self {
        match self.registry.iter_mut().find(|r| r.host == registry) {
            Some(e) => {
                e.username = Some(username.to_owned());
                e.password = Some(password.to_owned());
            }
            None => self.registry.push(RegistryEntry {
                host: registry.to_owned(),
                insecure: false,
                username: Some(username.to_owned()),
                password: Some(password.to_owned()),
            }),
        }
        self
    }

    fn entry(&self, host: &str) -> Option<&RegistryEntry> {
        self.registry.iter().find(|r| r.host == host)
    }
}

fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Progress of a pull, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The manifest is known: its digest and the layers' digests and sizes.
    Resolved {
        digest: String,
        layers: Vec<(String, u64)>,
    },
    /// Another pull is fetching this layer; waiting for it.
    Waiting { digest: String },
    /// Bytes of a layer so far.
    Downloading {
        digest: String,
        current: u64,
        total: u64,
    },
    /// Unpacking a downloaded layer.
    Extracting { digest: String },
    /// The layer was already stored.
    Exists { digest: String },
    /// The layer is stored.
    LayerDone { digest: String },
}

/// A session with one repository of one registry.
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    registry: String,
    repository: String,
    creds: Option<(String, String)>,
    /// `Authorization` value once learned (a bearer token or basic credentials).
    auth: Mutex<Option<String>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Parses `Bearer realm="...",service="...",scope="..."`.
fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|i| format!("{} {}", i.code, i.message).trim().to_owned())
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned(),
    }
}

impl RegistryClient {
    /// Opens a session: picks the scheme, then pings `/v2/` (learning how to
    /// authenticate).
    pub async fn connect(
        reference: &Reference,
        config: &RegistryConfig,
    ) -> Result<RegistryClient, RegistryError> {
        let host = reference.api_host().to_owned();
        let entry = config
            .entry(&reference.registry)
            .or_else(|| config.entry(&host));
        let insecure = entry.is_some_and(|e| e.insecure) || is_loopback(&host);
        let scheme = if insecure { "http" } else { "https" };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("boxd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(RegistryError::Client)?;
        let creds = entry.and_then(|e| match (&e.username, &e.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        });
        let client = RegistryClient {
            http,
            base: format!("{scheme}://{host}"),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            creds,
            auth: Mutex::new(None),
        };
        let url = format!("{}/v2/", client.base);
        let resp = client.send(Method::GET, &url, &[]).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(RegistryError::Status {
                url,
                status,
                message: error_message(&body),
            });
        }
        Ok(client)
    }

    /// Sends a request with the known authorization; on 401, answers the challenge once
    /// and retries.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(reqwest::header::HeaderName, String)],
    ) -> Result<reqwest::Response, RegistryError> {
        for attempt in 0..2 {
            let mut req = self.http.request(method.clone(), url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let auth = self.auth.lock().expect("auth poisoned").clone();
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|source| RegistryError::Request {
                url: url.to_owned(),
                source,
            })?;
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                    });
                }
                return Ok(resp);
            }
            self.authenticate(resp.headers()).await?;
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), RegistryError> {
        let unauthorized = || RegistryError::Unauthorized {
            registry: self.registry.clone(),
        };
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let (scheme, params) = parse_challenge(challenge);
        let value = match scheme.as_str() {
            "basic" => {
                let (u, p) = self.creds.clone().ok_or_else(unauthorized)?;
                basic(&u, &p)
            }
            "bearer" => {
                let realm = params.get("realm").cloned().ok_or_else(unauthorized)?;
                let mut req = self.http.get(&realm);
                let mut query = vec![("scope", format!("repository:{}:pull", self.repository))];
                if let Some(service) = params.get("service") {
                    query.push(("service", service.clone()));
                }
                req = req.query(&query);
                if let Some((u, p)) = &self.creds {
                    req = req.basic_auth(u, Some(p));
                }
                let token_err = |source| RegistryError::Token {
                    realm: realm.clone(),
                    source,
                };
                let resp = req.send().await.map_err(token_err)?;
                if matches!(resp.status().as_u16(), 401 | 403) {
                    return Err(unauthorized());
                }
                let answer: TokenAnswer = resp
                    .error_for_status()
                    .map_err(token_err)?
                    .json()
                    .await
                    .map_err(token_err)?;
                let token = answer
                    .token
                    .or(answer.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(unauthorized)?;
                format!("Bearer {token}")
            }
            other => {
                return Err(RegistryError::AuthScheme {
                    registry: self.registry.clone(),
                    scheme: other.to_owned(),
                })
            }
        };
        *self.auth.lock().expect("auth poisoned") = Some(value);
        Ok(())
    }

    /// Fetches a manifest (by tag or digest) with every handled type accepted. Returns
    /// the body, its media type and its digest (verified: the sha256 of the body equals
    /// the digest asked for, and the registry's `Docker-Content-Digest`).
    pub async fn manifest(
        &self,
        object: &str,
    ) -> Result<(Vec<u8>, Option<String>, String), RegistryError> {
        let url = format!("{}/v2/{}/manifests/{object}", self.base, self.repository);
        let resp = self
            .send(
                Method::GET,
                &url,
                &[(ACCEPT, oci::MANIFEST_ACCEPT.to_owned())],
            )
            .await?;
        let status = resp.status();
        let media = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_limited(resp, &url, MAX_DOCUMENT, "manifest").await?;
        if !status.is_success() {
            return Err(RegistryError::Status {
                url,
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        let actual = oci::digest_of(&body);
        if object.starts_with("sha256:") && actual != object {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                expected: object.to_owned(),
                actual,
            });
        }
        // Schema 1 bodies are re-signed on every request, so their header digest never
        // matches; they are refused by the parser anyway.
        let schema1 = media.as_deref().is_some_and(|m| m.contains("manifest.v1+"));
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:") && !schema1) {
            if h != actual {
                return Err(RegistryError::DigestMismatch {
                    what: "manifest",
                    expected: h,
                    actual,
                });
            }
        }
        Ok((body, media, actual))
    }

    /// Fetches a small blob (a config) into memory, verified.
    pub async fn blob_bytes(&self, digest: &str, size: u64) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.send(Method::GET, &url, &[]).await?;
        let status = resp.status();
        let body = read_limited(resp, &url, MAX_DOCUMENT, "config").await?;
        if !status.is_success() {
            return Err(RegistryError::Status {
                url,
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        if size != 0 && body.len() as u64 != size {
            return Err(RegistryError::SizeMismatch {
                what: "blob",
                digest: digest.to_owned(),
                expected: size,
                actual: body.len() as u64,
            });
        }
        let actual = oci::digest_of(&body);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(body)
    }

    /// Streams a blob into `path` (created), hashing as it goes; on a size or digest
    /// mismatch the caller's temp guard removes the file.
    pub async fn blob_to_file(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
        mut progress: impl FnMut(u64),
    ) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.send(Method::GET, &url, &[]).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(RegistryError::Status {
                url,
                status,
                message: error_message(&body),
            });
        }
        let write_err = |source| RegistryError::WriteBlob {
            path: path.to_owned(),
            source,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .await
            .map_err(write_err)?;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        let mut stream = resp
            .bytes_stream()
            .map_err(|source| RegistryError::Request {
                url: url.clone(),
                source,
            });
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            done += chunk.len() as u64;
            if size != 0 && done > size {
                return Err(RegistryError::SizeMismatch {
                    what: "blob",
                    digest: digest.to_owned(),
                    expected: size,
                    actual: done,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(write_err)?;
            progress(done);
        }
        file.flush().await.map_err(write_err)?;
        if size != 0 && done != size {
            return Err(RegistryError::SizeMismatch {
                what: "blob",
                digest: digest.to_owned(),
                expected: size,
                actual: done,
            });
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(())
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn read_limited(
    resp: reqwest::Response,
    url: &str,
    limit: usize,
    what: &'static str,
) -> Result<Vec<u8>, RegistryError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| RegistryError::Request {
            url: url.to_owned(),
            source,
        })?;
        if out.len() + chunk.len() > limit {
            return Err(RegistryError::TooLarge { what });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A pulled image: its layers stored, ready to record.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image (id = config digest).
    pub image: LoadedImage,
    /// The digest of the image manifest (or of the index when one was followed).
    pub digest: String,
}

impl ImageStore {
    /// Pulls `reference` for `platform`: manifest (following an index), config, then
    /// the layers, `PARALLEL_LAYERS` at a time, each downloaded once even when several
    /// pulls want it.
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        config: &RegistryConfig,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Pulled, ImageError> {
        let client = RegistryClient::connect(reference, config).await?;
        let (bytes, media, top_digest) = client.manifest(reference.object()).await?;
        let mut doc = oci::parse_document(media.as_deref(), &bytes)?;
        if let Document::Index(index) = &doc {
            let entry = oci::select_platform(index, platform)?.clone();
            let (bytes, media, digest) = client.manifest(&entry.digest).await?;
            if digest != entry.digest {
                return Err(RegistryError::DigestMismatch {
                    what: "manifest",
                    expected: entry.digest,
                    actual: digest,
                }
                .into());
            }
            doc = oci::parse_document(media.as_deref().or(Some(&entry.media_type)), &bytes)?;
        }
        let Document::Manifest(manifest) = doc else {
            return Err(oci::FormatError::UnsupportedManifest("nested index".into()).into());
        };
        let config_bytes = client
            .blob_bytes(&manifest.config.digest, manifest.config.size)
            .await?;
        let image_config = ImageConfig::parse(&config_bytes)?;
        let diff_ids = image_config.diff_ids()?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(oci::FormatError::LayerCount {
                diff_ids: diff_ids.len(),
                layers: manifest.layers.len(),
            }
            .into());
        }
        progress(Progress::Resolved {
            digest: top_digest.clone(),
            layers: manifest
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.size))
                .collect(),
        });
        let chains = oci::chain_ids(&diff_ids);
        let jobs = manifest.layers.iter().enumerate().map(|(i, layer)| {
            let parent = i.checked_sub(1).map(|p| chains[p].clone());
            let diff_id = diff_ids[i].clone();
            let chain = chains[i].clone();
            let client = &client;
            async move {
                if !super::reference::valid_digest(&layer.digest) {
                    return Err(oci::FormatError::BadDigest(layer.digest.clone()).into());
                }
                let guard = match self.locks_try(&chain) {
                    Some(g) => g,
                    None => {
                        progress(Progress::Waiting {
                            digest: layer.digest.clone(),
                        });
                        self.blob_lock(&chain).await
                    }
                };
                if self.layer_exists(&chain) {
                    drop(guard);
                    progress(Progress::Exists {
                        digest: layer.digest.clone(),
                    });
                    return Ok(LayerInfo {
                        chain_id: chain,
                        diff_id,
                        size: 0,
                    });
                }
                let (path, _tmp) = self.temp_file("blob-");
                client
                    .blob_to_file(&layer.digest, layer.size, &path, |current| {
                        progress(Progress::Downloading {
                            digest: layer.digest.clone(),
                            current,
                            total: layer.size,
                        })
                    })
                    .await?;
                progress(Progress::Extracting {
                    digest: layer.digest.clone(),
                });
                let info = self
                    .apply_layer(&path, parent.as_deref(), Some(&diff_id))
                    .await?;
                drop(guard);
                progress(Progress::LayerDone {
                    digest: layer.digest.clone(),
                });
                Ok::<_, ImageError>(info)
            }
        });
        // Collected first: a lazy `map` held across the awaits below makes the future
        // fail the `Send` check of `tokio::spawn` (rust-lang/rust#102211).
        let jobs: Vec<_> = jobs.collect();
        let layers: Vec<LayerInfo> = futures_util::stream::iter(jobs)
            .buffered(PARALLEL_LAYERS)
            .try_collect()
            .await?;
        Ok(Pulled {
            image: LoadedImage {
                id: oci::digest_of(&config_bytes),
                config: image_config,
                layers,
                tags: reference.familiar_tag().into_iter().collect(),
            },
            digest: top_digest,
        })
    }

    fn locks_try(&self, key: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.blob_lock_try(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "basic");
        assert_eq!(p["realm"], "Registry Realm");
        let (_, p) = parse_challenge("Bearer realm=http://x/t, service=s");
        assert_eq!(p["realm"], "http://x/t");
        assert_eq!(p["service"], "s");
    }

    #[test]
    fn loopback_hosts_may_use_http() {
        assert!(is_loopback("127.0.0.1:5055"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn config_parses_and_hides_passwords() {
        let c: RegistryConfig = toml::from_str(
            "[[registry]]\nhost = \"r:5000\"\ninsecure = true\nusername = \"u\"\npassword = \"hunter2\"\n",
        )
        .unwrap();
        assert!(c.entry("r:5000").unwrap().insecure);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(basic("u", "p"), "Basic dTpw");
    }
}
