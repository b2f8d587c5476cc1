//! Names as users type them: container names and ids, signals. (Image references
//! have their own grammar in `crate::image::reference`.)

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
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Ok(15));
        assert_eq!(parse_signal("term"), Ok(15));
        assert_eq!(parse_signal("KILL"), Ok(9));
        assert_eq!(parse_signal("10"), Ok(10));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("SIGFOO").is_err());
    }
}
