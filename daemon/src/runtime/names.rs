//! Names and references as users type them: container names, image references, signals.

use rand::Rng;

/// Checks a container name the way Docker does: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most
/// 128 characters. Returns a sentence saying what to fix.
pub fn validate_container_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    if !ok || name.len() > 128 {
        return Err(format!(
            "invalid container name {name:?}: use 1-128 of [a-zA-Z0-9_.-], starting with a letter or digit"
        ));
    }
    Ok(())
}

/// A generated name, `adjective_noun_NNNN`, readable in `ps` output.
pub fn generate_container_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nimble", "proud", "quiet", "rapid", "sharp", "tidy", "vivid", "witty", "young", "zesty",
    ];
    const NOUN: &[&str] = &[
        "otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "orca", "panda", "quail",
        "raven", "seal", "tapir", "urchin", "viper", "walrus", "yak", "zebra", "bison", "crane",
    ];
    let mut rng = rand::rng();
    format!(
        "{}_{}_{:04}",
        ADJ[rng.random_range(0..ADJ.len())],
        NOUN[rng.random_range(0..NOUN.len())],
        rng.random_range(0..10000)
    )
}

/// A new container id: 32 random bytes as 64 lowercase hex digits.
pub fn generate_container_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Normalises an image name for tagging and lookup: `busybox` → `busybox:latest`.
/// Repository components are lowercase `[a-z0-9._-]` separated by `/`, optionally led
/// by a `host[:port]` component; the tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn normalize_image_name(name: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "invalid image name {name:?}: use a name like busybox, busybox:1.36 or registry:5000/team/app:tag"
        )
    };
    if name.is_empty() || name.len() > 255 {
        return Err(bad());
    }
    // The tag is after the last ':' that comes after the last '/'.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
        None => (name, "latest"),
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let components: Vec<&str> = repo.split('/').collect();
    let comp_ok = |c: &str, first: bool| {
        let host_like = first
            && components.len() > 1
            && (c.contains('.') || c.contains(':') || c == "localhost");
        if host_like {
            return !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | ':'));
        }
        !c.is_empty()
            && c.chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .last()
                .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
            })
    };
    let repo_ok = components
        .iter()
        .enumerate()
        .all(|(i, c)| comp_ok(c, i == 0));
    if !tag_ok || !repo_ok || name.starts_with("sha256:") {
        return Err(bad());
    }
    Ok(format!("{repo}:{tag}"))
}

/// Parses a signal given as `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let bad = || format!("unknown signal {s:?}: use a name like SIGTERM or TERM, or a number 1-64");
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for ok in ["web", "a", "web-1.prod_x", "0abc"] {
            assert!(validate_container_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "we b", "web/1", "ü", &"a".repeat(129)] {
            assert!(validate_container_name(bad).is_err(), "{bad}");
        }
        let generated = generate_container_name();
        assert!(validate_container_name(&generated).is_ok(), "{generated}");
        let id = generate_container_id();
        assert_eq!(id.len(), 64);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn image_names() {
        let n = |s| normalize_image_name(s);
        assert_eq!(n("busybox").unwrap(), "busybox:latest");
        assert_eq!(n("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(n("test/busybox").unwrap(), "test/busybox:latest");
        assert_eq!(
            n("localhost:5000/test/busybox:v2s2").unwrap(),
            "localhost:5000/test/busybox:v2s2"
        );
        assert_eq!(n("127.0.0.1:5055/a").unwrap(), "127.0.0.1:5055/a:latest");
        for bad in [
            "",
            "BusyBox",
            "busybox:",
            "bad name",
            "a//b",
            ":tag",
            "sha256:abc",
            "x:-y",
            "-a",
        ] {
            assert!(n(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Ok(15));
        assert_eq!(parse_signal("term"), Ok(15));
        assert_eq!(parse_signal("KILL"), Ok(9));
        assert_eq!(parse_signal("10"), Ok(10));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("SIGFOO").is_err());
    }
}
