//! The image formats boxd reads: OCI image manifest, index and config, and their Docker
//! v2 schema 2 twins (same JSON shape, other media types), plus platform selection.
//!
//! Parsing is lenient on purpose: umoci writes OCI manifests without `mediaType`, and
//! unknown fields are ignored. What matters is checked where it is used: every digest
//! is verified against the bytes it names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_SCHEMA1_PLAIN: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// The Accept header of manifest requests: every type boxd handles. (A registry answers
/// 404 to an OCI object whose type is not accepted, and turns v2s2 into signed schema 1
/// when v2s2 is not accepted.)
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Errors of reading image metadata.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("failed to parse {what}")]
    Parse {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("unsupported manifest type {0} (boxd reads OCI and Docker v2 schema 2)")]
    UnsupportedManifest(String),
    #[error("no image for platform {wanted} (available: {available})")]
    NoPlatform { wanted: String, available: String },
    #[error("invalid platform {0:?}: use os/arch[/variant]")]
    BadPlatform(String),
    #[error("the config lists {diff_ids} diff_ids for {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
    #[error("invalid digest {0:?}")]
    BadDigest(String),
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// os/architecture[/variant].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The host's platform in OCI (Go) names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: (architecture == "arm64").then(|| "v8".to_owned()),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, FormatError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: (*os).into(),
                architecture: normalize_arch(arch).into(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: (*os).into(),
                architecture: normalize_arch(arch).into(),
                variant: Some((*variant).into()),
            }),
            _ => Err(FormatError::BadPlatform(s.to_owned())),
        }
    }

    /// Whether an index entry's platform satisfies this wanted one. A wanted platform
    /// without a variant takes any variant; arm64's `v8` is its default.
    pub fn matches(&self, entry: &Platform) -> bool {
        if self.os != entry.os
            || normalize_arch(&self.architecture) != normalize_arch(&entry.architecture)
        {
            return false;
        }
        let norm = |v: &Option<String>| match (self.architecture.as_str(), v.as_deref()) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.map(str::to_owned),
        };
        match &self.variant {
            None => true,
            Some(_) => norm(&self.variant) == norm(&entry.variant),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An image manifest (OCI or Docker v2s2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// What a manifest document is.
#[derive(Debug, Clone)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

/// Parses a manifest document, told by its media type (from the transport) or, when
/// that says nothing, by its own `mediaType` or shape.
pub fn parse_document(media_type: Option<&str>, bytes: &[u8]) -> Result<Document, FormatError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        schema_version: Option<u32>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| FormatError::Parse {
        what: "manifest",
        source,
    })?;
    let media = media_type
        .map(|m| m.split(';').next().unwrap_or(m).trim().to_owned())
        .filter(|m| !m.is_empty() && m != "application/json" && m != "application/octet-stream")
        .or(probe.media_type.clone());
    let kind = match media.as_deref() {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => "manifest",
        Some(OCI_INDEX | DOCKER_LIST) => "index",
        Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_PLAIN) => {
            return Err(FormatError::UnsupportedManifest(
                "docker schema 1 (deprecated and unverifiable)".into(),
            ))
        }
        Some(other) => return Err(FormatError::UnsupportedManifest(other.to_owned())),
        None if probe.schema_version == Some(1) => {
            return Err(FormatError::UnsupportedManifest("docker schema 1".into()))
        }
        None if probe.manifests.is_some() => "index",
        None if probe.config.is_some() => "manifest",
        None => return Err(FormatError::UnsupportedManifest("unknown".into())),
    };
    if kind == "index" {
        serde_json::from_slice(bytes)
            .map(Document::Index)
            .map_err(|source| FormatError::Parse {
                what: "image index",
                source,
            })
    } else {
        serde_json::from_slice(bytes)
            .map(Document::Manifest)
            .map_err(|source| FormatError::Parse {
                what: "image manifest",
                source,
            })
    }
}

/// Picks the entry for `wanted` from an index. Entries without a platform are skipped
/// (attestations, artifacts).
pub fn select_platform<'a>(
    index: &'a Index,
    wanted: &Platform,
) -> Result<&'a Descriptor, FormatError> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
        .ok_or_else(|| FormatError::NoPlatform {
            wanted: wanted.to_string(),
            available: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The image config (OCI `application/vnd.oci.image.config.v1+json`; Docker's is the
/// same shape).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

/// `config.config`: the defaults of a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's `EXPOSE`s: `{"80/tcp": {}}` (the values are always empty objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

/// `config.rootfs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One history step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, FormatError> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Parse {
            what: "image config",
            source,
        })
    }

    /// The diff_ids, each checked to be a sha256 digest.
    pub fn diff_ids(&self) -> Result<Vec<String>, FormatError> {
        let ids = self
            .rootfs
            .as_ref()
            .map(|r| r.diff_ids.clone())
            .unwrap_or_default();
        for id in &ids {
            if !super::reference::valid_digest(id) {
                return Err(FormatError::BadDigest(id.clone()));
            }
        }
        Ok(ids)
    }

    /// The image's defaults as the wire type (tags, size, ids filled in by the caller).
    pub fn to_image(&self) -> boxd_types::Image {
        let c = self.config.clone().unwrap_or_default();
        boxd_types::Image {
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.filter(|w| !w.is_empty()),
            entrypoint: c.entrypoint.unwrap_or_default(),
            user: c.user.filter(|u| !u.is_empty()),
            labels: c.labels.unwrap_or_default(),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
            exposed_ports: exposed_ports(c.exposed_ports.iter().flat_map(|m| m.keys())),
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            history: self
                .history
                .iter()
                .map(|h| boxd_types::ImageHistory {
                    created: h.created.clone(),
                    created_by: h.created_by.clone(),
                    comment: h.comment.clone(),
                    empty_layer: h.empty_layer,
                })
                .collect(),
            ..Default::default()
        }
    }
}

impl ImageConfig {
    /// The config of a stored image (the inverse of [`ImageConfig::to_image`]), with
    /// `diff_ids` as its layers: what `docker save` writes, and the config an import
    /// with changes is identified by.
    pub fn of_image(image: &boxd_types::Image, diff_ids: &[String]) -> ImageConfig {
        let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let config = RunConfig {
            user: image.user.clone(),
            env: some_vec(&image.env),
            entrypoint: some_vec(&image.entrypoint),
            cmd: some_vec(&image.cmd),
            working_dir: image.working_dir.clone(),
            labels: (!image.labels.is_empty()).then(|| image.labels.clone()),
            stop_signal: image.stop_signal.clone(),
            exposed_ports: (!image.exposed_ports.is_empty()).then(|| {
                image
                    .exposed_ports
                    .iter()
                    .map(|p| (p.clone(), serde_json::json!({})))
                    .collect()
            }),
        };
        ImageConfig {
            architecture: image.architecture.clone(),
            os: image.os.clone(),
            variant: None,
            created: Some(
                image
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
            config: Some(config),
            rootfs: Some(RootFs {
                kind: "layers".into(),
                diff_ids: diff_ids.to_vec(),
            }),
            history: image
                .history
                .iter()
                .map(|h| History {
                    created: h.created.clone(),
                    created_by: h.created_by.clone(),
                    comment: h.comment.clone(),
                    empty_layer: h.empty_layer,
                })
                .collect(),
        }
    }

    /// The config as the bytes of a blob (its digest is an image id).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an image config serialises")
    }
}

/// The keys of a config's `ExposedPorts` in one form, `<port>/<protocol>` (`80/tcp`),
/// sorted by port then protocol, without repeats. A key without a protocol means tcp,
/// as Docker reads it; protocols are kept whatever they are (`sctp` too), for the
/// engine to decide what it can publish.
pub fn exposed_ports<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut ports: Vec<(String, String)> = keys
        .into_iter()
        .map(|k| {
            let (port, proto) = k.trim().split_once('/').unwrap_or((k.trim(), "tcp"));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            (port.to_owned(), proto.to_ascii_lowercase())
        })
        .filter(|(port, _)| !port.is_empty())
        .collect();
    // Numbers in numeric order; anything else (malformed, left for the engine to
    // report) after them.
    ports.sort_by(|a, b| {
        let n = |p: &str| p.parse::<u32>().unwrap_or(u32::MAX);
        (n(&a.0), &a.0, &a.1).cmp(&(n(&b.0), &b.0, &b.1))
    });
    ports.dedup();
    ports
        .into_iter()
        .map(|(port, proto)| format!("{port}/{proto}"))
        .collect()
}

/// Chain ids of a stack of diff_ids (OCI image spec, "ChainID"): the first is its
/// diff_id, each next is `sha256(parent_chain + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], digest_of(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn exposed_ports_come_from_the_config_in_one_form() {
        let config = ImageConfig::parse(
            br#"{"config": {"Cmd": ["httpd"], "ExposedPorts":
                {"8080/tcp": {}, "53/UDP": {}, "53/tcp": {}, "443": {}, "9/sctp": {}}}}"#,
        )
        .unwrap();
        assert_eq!(
            config.to_image().exposed_ports,
            ["9/sctp", "53/tcp", "53/udp", "443/tcp", "8080/tcp"]
        );
        // No ExposedPorts, or none at all (null): nothing exposed.
        for blob in [
            &br#"{"config": {"Cmd": ["sh"]}}"#[..],
            br#"{"config": {"ExposedPorts": null}}"#,
            b"{}",
        ] {
            assert!(ImageConfig::parse(blob)
                .unwrap()
                .to_image()
                .exposed_ports
                .is_empty());
        }
        let keys = ["80/tcp".to_owned(), "80".to_owned()];
        assert_eq!(exposed_ports(&keys), ["80/tcp"]);
    }

    #[test]
    fn documents_are_told_apart() {
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:00","size":1},"layers":[]}"#;
        assert!(matches!(parse_document(None, m), Ok(Document::Manifest(_))));
        assert!(matches!(
            parse_document(Some(DOCKER_MANIFEST), m),
            Ok(Document::Manifest(_))
        ));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse_document(None, i), Ok(Document::Index(_))));
        assert!(matches!(
            parse_document(Some(DOCKER_SCHEMA1), br#"{"schemaVersion":1}"#),
            Err(FormatError::UnsupportedManifest(_))
        ));
        assert!(matches!(
            parse_document(None, br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(FormatError::UnsupportedManifest(_))
        ));
    }

    #[test]
    fn platforms_select_by_os_arch_variant() {
        let entry = |arch: &str, variant: Option<&str>| Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}"),
            size: 1,
            platform: Some(Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.map(str::to_owned),
            }),
            annotations: BTreeMap::new(),
        };
        let index = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![entry("amd64", None), entry("arm64", Some("v8"))],
        };
        let pick = |p: &str| {
            select_platform(&index, &Platform::parse(p).unwrap()).map(|d| d.digest.clone())
        };
        assert_eq!(pick("linux/amd64").unwrap(), "sha256:amd64");
        assert_eq!(pick("linux/arm64").unwrap(), "sha256:arm64");
        assert_eq!(pick("linux/arm64/v8").unwrap(), "sha256:arm64");
        assert_eq!(pick("linux/aarch64").unwrap(), "sha256:arm64");
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(err.contains("linux/amd64, linux/arm64/v8"), "{err}");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("Linux/amd64").is_err());
    }
}
