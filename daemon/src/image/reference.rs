//! Image references parsed as Docker parses them (`distribution/reference`):
//! `busybox` is `docker.io/library/busybox:latest`, the first component is a registry
//! only when it has a `.` or a `:` or is `localhost`, and `@sha256:<hex>` pins a digest.
//!
//! Tags in the local store use the *familiar* form (`busybox:latest`,
//! `127.0.0.1:5000/test/busybox:latest`), so `docker.io/library/` never shows.

use std::fmt;

/// The registry that short names refer to.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Errors of reference parsing.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference {reference:?}: {reason}")]
    Parse {
        reference: String,
        reason: &'static str,
    },
}

/// A parsed, fully qualified reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `127.0.0.1:5000`, `quay.io`.
    pub registry: String,
    /// `library/busybox`, `test/busybox`.
    pub repository: String,
    /// The tag (`latest` when neither a tag nor a digest is given).
    pub tag: Option<String>,
    /// `sha256:<hex>` when pinned.
    pub digest: Option<String>,
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    if !b
        .iter()
        .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-'))
    {
        return false;
    }
    // Separators: a single '.', one or two '_', or any run of '-'.
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            let start = i;
            while i < b.len() && !b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let sep = &c[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
            if !ok {
                return false;
            }
        } else {
            i += 1;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.as_bytes()[0] != b'.'
        && t.as_bytes()[0] != b'-'
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']'))
}

/// True for `sha256:` and 64 lowercase hex digits.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl Reference {
    /// Parses `name[:tag][@digest]`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |reason| ReferenceError::Parse {
            reference: s.to_owned(),
            reason,
        };
        if s.is_empty() || s.len() > 512 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(bad(
                        "the digest must be sha256: and 64 lowercase hex digits",
                    ));
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    "tags are [A-Za-z0-9_.-], at most 128, not led by . or -",
                ));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_registry(first) {
                    return Err(bad("invalid registry host"));
                }
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.len() > 255 || !path.split('/').all(valid_path_component) {
            return Err(bad(
                "repository names are lowercase [a-z0-9] words joined by . _ __ - and /",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository: path,
            tag,
            digest,
        })
    }

    /// The repository as people write it: `busybox`, `test/busybox`,
    /// `127.0.0.1:5000/test/busybox`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The local tag this reference names (`busybox:latest`), if it has a tag.
    pub fn familiar_tag(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.familiar_name()))
    }

    /// The host the registry API answers on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Normalises a tag name found in an archive (`docker.io/test/busybox:latest` as
/// skopeo writes it, `test/busybox:latest` as `docker save` does) to the familiar form.
pub fn familiar_tag(name: &str) -> Result<String, ReferenceError> {
    let r = Reference::parse(name)?;
    r.familiar_tag().ok_or_else(|| ReferenceError::Parse {
        reference: name.to_owned(),
        reason: "a tag name cannot carry a digest",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn short_names_expand_as_docker_does() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("test/busybox"), "docker.io/test/busybox:latest");
        assert_eq!(
            full("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(
            full("127.0.0.1:5055/test/busybox:v2s2"),
            "127.0.0.1:5055/test/busybox:v2s2"
        );
        assert_eq!(full("quay.io/coreos/dex"), "quay.io/coreos/dex:latest");
        // A port-like suffix on the last component is a tag, not a port.
        assert_eq!(full("reg:5000/app:1.2"), "reg:5000/app:1.2");
    }

    #[test]
    fn digests_pin_and_drop_the_default_tag() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("127.0.0.1:5055/test/busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.object(), d);
        let r = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.object(), d);
        assert!(Reference::parse("busybox@sha256:abc").is_err());
        assert!(Reference::parse("busybox@md5:abc").is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        for s in [
            "",
            "Busybox",
            "a//b",
            "-a",
            "a:",
            "a:.x",
            "a/b-",
            "a..b",
            "a___b",
            "host:5000/",
        ] {
            assert!(Reference::parse(s).is_err(), "{s:?} should be refused");
        }
        for s in ["a_b", "a__b", "a--b", "a.b", "a-b-c/d.e"] {
            assert!(Reference::parse(s).is_ok(), "{s:?} should parse");
        }
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| familiar_tag(s).unwrap();
        assert_eq!(f("docker.io/library/busybox:latest"), "busybox:latest");
        assert_eq!(f("docker.io/test/busybox:latest"), "test/busybox:latest");
        assert_eq!(f("test/busybox"), "test/busybox:latest");
        assert_eq!(
            f("127.0.0.1:5055/test/busybox:v2s2"),
            "127.0.0.1:5055/test/busybox:v2s2"
        );
        assert_eq!(
            Reference::parse("busybox").unwrap().api_host(),
            DOCKER_HUB_API
        );
    }
}
