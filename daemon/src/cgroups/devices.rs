//! The device controller: a container may open only the allow-listed device nodes.
//!
//! On cgroup v1 the group's `devices.deny` gets `a` (deny everything), then each
//! [`ALLOWED`] rule goes to `devices.allow`, as runc does. So even a node the app
//! manages to make (with `cap_add: MKNOD`) or finds bind-mounted cannot be opened
//! unless listed. A v1 child group starts with its parent's list, which may be wider;
//! the deny-all first makes the result independent of it.
//!
//! On cgroup v2 the same policy is an eBPF program (BPF_CGROUP_DEVICE) attached to the
//! group, as runc and crun do; boxd does not attach one yet, so there the default
//! capability set (no MKNOD) and the tmpfs `/dev` holding only the allowed nodes are
//! what keep devices out of reach.

use std::path::Path;

use super::files;
use super::CgroupError;

/// The character devices a container may use (`type major:minor access`): the OCI
/// default devices in `/dev` (null, zero, full, random, urandom, tty), `/dev/ptmx`
/// and the pty slaves of its own devpts.
pub const ALLOWED: &[&str] = &[
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// Deny every device in the v1 group `dir`, then allow [`ALLOWED`].
pub fn restrict_v1(dir: &Path) -> Result<(), CgroupError> {
    let set = |file: &'static str, value: &str| {
        files::write_value(&dir.join(file), value).map_err(|source| CgroupError::SetLimit {
            path: dir.to_owned(),
            file,
            source: Box::new(source),
        })
    };
    set("devices.deny", "a")?;
    for rule in ALLOWED {
        set("devices.allow", rule)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_all_comes_first() {
        // Plain files stand in for cgroupfs: each write replaces the content, so the
        // last allow rule is what remains, and deny holds "a".
        let dir = tempfile::tempdir().unwrap();
        for f in ["devices.deny", "devices.allow"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        restrict_v1(dir.path()).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("devices.deny"), "a");
        assert_eq!(read("devices.allow"), *ALLOWED.last().unwrap());
        // A missing controller file is an error, not a silently open group.
        let empty = tempfile::tempdir().unwrap();
        assert!(restrict_v1(empty.path()).is_err());
    }
}
