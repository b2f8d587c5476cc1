//! The one image-reference grammar of boxd, Docker's (`distribution/reference`,
//! `ParseNormalizedNamed` and `ParseAnyReference`). Every place that names an image
//! (create, inspect, delete, tag, pull, load, import) parses it here.
//!
//! - `busybox` is `docker.io/library/busybox:latest`; `docker.io/busybox`,
//!   `index.docker.io/library/busybox` and `library/busybox` are the same name.
//! - The first component is a registry only when it has a `.` or a `:`, is
//!   `localhost`, or has an upper-case letter (`host:port/repo:tag`).
//! - `name@sha256:<hex>` pins a manifest digest; `name:tag@sha256:<hex>` is looked up
//!   by the digest (the tag only names what a pull stores).
//! - `sha256:<64 hex>` or 64 hex digits alone are an image id; any other string that
//!   is also hex (`3f2a`, `sha256:3f2a`) may be an id prefix, tried after the name.
//!
//! The store keeps names in the *familiar* form (`busybox:latest`,
//! `127.0.0.1:5000/test/busybox@sha256:…`), so `docker.io/library/` never shows and
//! every spelling of a name finds the same row: [`lookup`] says which rows to try.

use std::fmt;

/// The registry that short names refer to.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The legacy name of Docker Hub, normalised to [`DOCKER_HUB`] as Docker does.
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// The longest repository name (registry included), as in `distribution/reference`.
const NAME_MAX: usize = 255;

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

/// Why a path component is refused, if it is.
fn path_component_error(c: &str) -> Option<&'static str> {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    if c.is_empty() {
        return Some("a repository name has an empty path component");
    }
    if c.bytes().any(|x| x.is_ascii_uppercase()) {
        return Some("repository names must be lowercase");
    }
    let b = c.as_bytes();
    let shape = "repository path components are [a-z0-9] words joined by one '.', \
                 one or two '_', or '-'s";
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Some(shape);
    }
    if !b
        .iter()
        .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-'))
    {
        return Some(shape);
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
                return Some(shape);
            }
        } else {
            i += 1;
        }
    }
    None
}

fn valid_tag(t: &str) -> bool {
    // [\w][\w.-]{0,127}
    !t.is_empty()
        && t.len() <= 128
        && t.as_bytes()[0] != b'.'
        && t.as_bytes()[0] != b'-'
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `host[:port]`: host is DNS labels (`[A-Za-z0-9]` or `[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]`)
/// joined by `.`, or an IPv6 address in brackets; port is digits.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(p) => ("ipv6", p),
                None => return false,
            },
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (r, "1"),
        }
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    r.len() <= NAME_MAX
        && host.split('.').all(label)
        && !port.is_empty()
        && port.bytes().all(|c| c.is_ascii_digit())
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// True for `sha256:` and 64 lowercase hex digits.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && is_hex(h))
}

/// The full image id `s` names (`sha256:<64 hex>` or the 64 hex digits alone).
pub fn full_id(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (hex.len() == 64 && is_hex(hex)).then(|| format!("sha256:{hex}"))
}

/// The id prefix `s` may be (`3f2a`, `sha256:3f2a`), as `sha256:3f2a`.
pub fn id_prefix(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (!hex.is_empty() && hex.len() <= 64 && is_hex(hex)).then(|| format!("sha256:{hex}"))
}

impl Reference {
    /// Parses `name[:tag][@digest]`, normalising the name as Docker does.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let bad = |reason| ReferenceError::Parse {
            reference: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("the reference is empty"));
        }
        if s.len() > 2 * NAME_MAX {
            return Err(bad("the reference is too long"));
        }
        if s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad(
                "a reference cannot contain spaces or control characters",
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(bad(if d.starts_with("sha256:") {
                        "a sha256 digest is 64 lowercase hex digits"
                    } else {
                        "the digest must be sha256: and 64 lowercase hex digits"
                    }));
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        if rest.len() == 64 && is_hex(rest) {
            return Err(bad("64 hex digits are an image id, not a repository name"));
        }
        // The tag is after the last ':' that comes after the last '/' (a ':' before a
        // '/' is a registry port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if t.is_empty() {
                return Err(bad("the tag after ':' is empty"));
            }
            if !valid_tag(t) {
                return Err(bad(
                    "tags are at most 128 of [A-Za-z0-9_.-], not led by '.' or '-'",
                ));
            }
        }
        if name.is_empty() {
            return Err(bad("the repository name is missing"));
        }
        if name.len() > NAME_MAX {
            return Err(bad("the repository name is longer than 255 characters"));
        }
        // `distribution/reference.splitDockerDomain`.
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !valid_registry(first) {
                    return Err(bad(
                        "the registry is not host[:port] (DNS labels or [IPv6], port digits)",
                    ));
                }
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let registry = if registry == LEGACY_DOCKER_HUB {
            DOCKER_HUB.to_owned()
        } else {
            registry
        };
        if let Some(reason) = path.split('/').find_map(path_component_error) {
            return Err(bad(reason));
        }
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
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

    /// The local repo digest this reference names (`busybox@sha256:…`), if pinned.
    pub fn familiar_digest(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|d| format!("{}@{d}", self.familiar_name()))
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

/// The familiar tag a name to store is given as (import's `name`, a tag's target, the
/// names in an archive: `docker.io/test/busybox:latest` as skopeo writes it,
/// `test/busybox:latest` as `docker save` does). A digest is refused: a tag is
/// something a user can move, a digest is not.
pub fn familiar_tag(name: &str) -> Result<String, ReferenceError> {
    let r = Reference::parse(name)?;
    if r.digest.is_some() {
        return Err(ReferenceError::Parse {
            reference: name.to_owned(),
            reason: "a tag name cannot carry a digest",
        });
    }
    Ok(r.familiar_tag()
        .expect("a reference without a digest has a tag"))
}

/// The repository of a stored name: `busybox` of `busybox:latest` and of
/// `busybox@sha256:…`, `reg:5000/app` of `reg:5000/app:1`.
pub fn repository_of(stored: &str) -> &str {
    if let Some((repo, _)) = stored.split_once('@') {
        return repo;
    }
    let last_slash = stored.rfind('/').map_or(0, |i| i + 1);
    match stored[last_slash..].rfind(':') {
        Some(i) => &stored[..last_slash + i],
        None => stored,
    }
}

/// Where to look for the image a user's reference names, in Docker's order
/// (`daemon/images/image.go` `GetImage`): an id is only an id; a name is looked up
/// among tags or repo digests, then, if the string is also hex, as an id prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A full image id (`sha256:<64 hex>`).
    Id(String),
    /// A stored name, then maybe an id prefix.
    Name {
        /// A familiar tag (`busybox:latest`) or repo digest (`busybox@sha256:…`); the
        /// digest wins when both are given.
        stored: String,
        /// True when `stored` is a repo digest.
        digest: bool,
        /// `sha256:<hex prefix>` when the reference could also be a short id.
        id_prefix: Option<String>,
    },
}

/// Parses a reference to an existing image. A malformed one is an error that says
/// what is wrong, never a silent "not found".
pub fn lookup(s: &str) -> Result<Lookup, ReferenceError> {
    if let Some(id) = full_id(s) {
        return Ok(Lookup::Id(id));
    }
    let r = Reference::parse(s)?;
    let (stored, digest) = match (r.familiar_digest(), r.familiar_tag()) {
        (Some(d), _) => (d, true),
        (None, Some(t)) => (t, false),
        (None, None) => unreachable!("a reference has a tag or a digest"),
    };
    Ok(Lookup::Name {
        stored,
        digest,
        id_prefix: id_prefix(s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    const D: &str = "sha256:abababababababababababababababababababababababababababababababab";

    #[test]
    fn names_normalise_as_docker_does() {
        let d = D;
        let cases: &[(&str, String)] = &[
            ("busybox", "docker.io/library/busybox:latest".into()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".into()),
            ("library/busybox", "docker.io/library/busybox:latest".into()),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "docker.io/library/busybox",
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1".into(),
            ),
            ("test/busybox", "docker.io/test/busybox:latest".into()),
            ("a/b/c/d", "docker.io/a/b/c/d:latest".into()),
            ("localhost/app", "localhost/app:latest".into()),
            ("localhost:5000/app:v1", "localhost:5000/app:v1".into()),
            (
                "127.0.0.1:5055/test/busybox:v2s2",
                "127.0.0.1:5055/test/busybox:v2s2".into(),
            ),
            ("[::1]:5000/app", "[::1]:5000/app:latest".into()),
            ("quay.io/coreos/dex", "quay.io/coreos/dex:latest".into()),
            // An upper-case first component is a host, as in Docker.
            ("Registry/app", "Registry/app:latest".into()),
            // A port-like suffix on the last component is a tag, not a port.
            ("reg:5000/app:1.2", "reg:5000/app:1.2".into()),
            ("host:5000", "docker.io/library/host:5000".into()),
            (
                "busybox:Latest_1.x-y",
                "docker.io/library/busybox:Latest_1.x-y".into(),
            ),
            (
                &format!("busybox@{d}"),
                format!("docker.io/library/busybox@{d}"),
            ),
            (
                &format!("busybox:1@{d}"),
                format!("docker.io/library/busybox:1@{d}"),
            ),
            (
                &format!("127.0.0.1:5055/test/busybox@{d}"),
                format!("127.0.0.1:5055/test/busybox@{d}"),
            ),
            ("a_b", "docker.io/library/a_b:latest".into()),
            ("a__b", "docker.io/library/a__b:latest".into()),
            ("a--b", "docker.io/library/a--b:latest".into()),
            ("a-b-c/d.e", "docker.io/a-b-c/d.e:latest".into()),
            ("abc123", "docker.io/library/abc123:latest".into()),
        ];
        for (input, want) in cases {
            assert_eq!(&full(input), want, "{input}");
        }
    }

    #[test]
    fn familiar_forms_drop_the_default_registry() {
        let fam = |s: &str| {
            let r = Reference::parse(s).unwrap();
            (r.familiar_tag(), r.familiar_digest())
        };
        let some = |s: &str| Some(s.to_owned());
        for s in [
            "busybox",
            "docker.io/library/busybox:latest",
            "library/busybox",
            "index.docker.io/busybox",
        ] {
            assert_eq!(fam(s), (some("busybox:latest"), None), "{s}");
        }
        assert_eq!(
            fam("docker.io/test/busybox:1"),
            (some("test/busybox:1"), None)
        );
        assert_eq!(
            fam("docker.io/library/a/b"),
            (some("library/a/b:latest"), None)
        );
        assert_eq!(
            fam(&format!("127.0.0.1:5055/test/busybox:v1@{D}")),
            (
                some("127.0.0.1:5055/test/busybox:v1"),
                Some(format!("127.0.0.1:5055/test/busybox@{D}"))
            )
        );
        assert_eq!(
            fam(&format!("docker.io/library/busybox@{D}")),
            (None, Some(format!("busybox@{D}")))
        );
        assert_eq!(familiar_tag("test/busybox").unwrap(), "test/busybox:latest");
        assert!(familiar_tag(&format!("busybox@{D}")).is_err());
        assert_eq!(
            Reference::parse("busybox").unwrap().api_host(),
            DOCKER_HUB_API
        );
        assert_eq!(Reference::parse("reg.io/a").unwrap().api_host(), "reg.io");
    }

    #[test]
    fn digests_pin_and_drop_the_default_tag() {
        let r = Reference::parse(&format!("127.0.0.1:5055/test/busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.object(), D);
        let r = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.object(), D);
        assert_eq!(Reference::parse("busybox:1").unwrap().object(), "1");
    }

    /// Each malformed reference is refused with a reason that names the fault.
    #[test]
    fn malformed_references_say_what_is_wrong() {
        let long = format!("{}/a", "a".repeat(255));
        let upper_d = format!(
            "busybox@{}",
            D.to_ascii_uppercase().replacen("SHA256", "sha256", 1)
        );
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("test/BusyBox", "lowercase"),
            ("a//b", "empty path component"),
            ("host:5000/", "empty path component"),
            ("-a", "path components"),
            ("a/b-", "path components"),
            ("a..b", "path components"),
            ("a___b", "path components"),
            ("bad name", "spaces"),
            ("a:", "tag after ':' is empty"),
            ("a:.x", "tags are"),
            ("a:-x", "tags are"),
            (":tag", "name is missing"),
            ("busybox@sha256:abc", "64 lowercase hex"),
            ("busybox@md5:abc", "must be sha256"),
            (&upper_d, "64 lowercase hex"),
            ("busybox@", "must be sha256"),
            (&format!("busybox@{D}@{D}"), "64 lowercase hex"),
            ("bad_host.io:port/app", "registry"),
            ("-x.io/app", "registry"),
            (&long, "longer than 255"),
            (&"ab".repeat(32), "image id"),
        ];
        for (input, reason) in cases {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(e) => assert!(
                    e.to_string().contains(reason),
                    "{input:?}: {e} (want {reason:?})"
                ),
            }
        }
        let tag129 = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&tag129).is_err());
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn lookups_follow_dockers_order() {
        let hex = "ab".repeat(32);
        let name = |stored: &str, digest: bool, prefix: Option<&str>| Lookup::Name {
            stored: stored.to_owned(),
            digest,
            id_prefix: prefix.map(str::to_owned),
        };
        let cases: Vec<(String, Lookup)> = vec![
            (hex.clone(), Lookup::Id(format!("sha256:{hex}"))),
            (format!("sha256:{hex}"), Lookup::Id(format!("sha256:{hex}"))),
            ("busybox".into(), name("busybox:latest", false, None)),
            (
                "docker.io/library/busybox".into(),
                name("busybox:latest", false, None),
            ),
            ("busybox:1".into(), name("busybox:1", false, None)),
            (
                format!("busybox:1@{D}"),
                name(&format!("busybox@{D}"), true, None),
            ),
            (
                format!("127.0.0.1:5/t/b@{D}"),
                name(&format!("127.0.0.1:5/t/b@{D}"), true, None),
            ),
            // Hex that is not a full id: a name first, then a prefix.
            (
                "abc123".into(),
                name("abc123:latest", false, Some("sha256:abc123")),
            ),
            (
                "sha256:abc1".into(),
                name("sha256:abc1", false, Some("sha256:abc1")),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(lookup(&input).unwrap(), want, "{input}");
        }
        assert!(lookup("ABC123").is_err());
        assert_eq!(repository_of("busybox:latest"), "busybox");
        assert_eq!(repository_of(&format!("busybox@{D}")), "busybox");
        assert_eq!(repository_of("reg:5000/app:1"), "reg:5000/app");
        assert_eq!(repository_of("reg:5000/app"), "reg:5000/app");
        assert!(lookup("busybox@sha256:12").is_err());
        assert_eq!(full_id(&"AB".repeat(32)), None);
        assert_eq!(id_prefix(&"a".repeat(65)), None);
        assert_eq!(id_prefix("sha256:"), None);
    }
}
