//! User namespaces of containers (opt-in per container): checking the request, the
//! host id range that `"auto"` allocates from, and the maps recorded in the container's
//! config.
//!
//! `"auto"` gives each container one 65536-id slot of the daemon's `userns_range`
//! (slot `k` maps container ids 0..65536 to `uid_start + k*65536..`, and the same for
//! gids); the slot is taken with the container's row and freed with it
//! (`store::userns`), so no two containers share host ids. The range comes from the
//! config file's `userns_range`, else from the `boxd` entries of `/etc/subuid` and
//! `/etc/subgid` when both exist, else [`UsernsRange::DEFAULT`]. Explicit maps are
//! checked (sizes > 0, no overlap, host root never mapped, container root mapped) and
//! must stay clear of that range, so they cannot collide with an `"auto"` container.
//!
//! How the shim builds the namespace, and why the root filesystem needs idmapped
//! mounts, is in `boxd_shim::userns`.

use std::path::Path;

use boxd_shim::userns::{check_map, IdMap};
use boxd_types::{IdMapping, UsernsConfig, UsernsRequest};

use super::RuntimeError;

/// Ids per `"auto"` slot: a full 16-bit range, so images with `nobody` (65534) work.
pub const SLOT_SIZE: u32 = 65536;

/// Where `"auto"` user namespaces take their host ids from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsernsRange {
    /// First host uid of slot 0.
    pub uid_start: u32,
    /// First host gid of slot 0.
    pub gid_start: u32,
    /// How many 65536-id slots there are.
    pub slots: u32,
}

impl UsernsRange {
    /// Host ids 1_000_000_000.. in 1024 slots: far above the ids of ordinary users
    /// and of the subordinate ranges `useradd` hands out (from 100000).
    pub const DEFAULT: UsernsRange = UsernsRange {
        uid_start: 1_000_000_000,
        gid_start: 1_000_000_000,
        slots: 1024,
    };

    /// The range from the `boxd` lines of `/etc/subuid` and `/etc/subgid`
    /// (`boxd:START:COUNT`), if both have one with room for at least one slot.
    pub fn from_subid_files(subuid: &Path, subgid: &Path) -> Option<UsernsRange> {
        let entry = |path: &Path| -> Option<(u32, u32)> {
            let text = std::fs::read_to_string(path).ok()?;
            text.lines().find_map(|l| {
                let mut it = l.trim().split(':');
                (it.next()? == "boxd").then_some(())?;
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
        };
        let (uid_start, uid_count) = entry(subuid)?;
        let (gid_start, gid_count) = entry(subgid)?;
        let slots = uid_count.min(gid_count) / SLOT_SIZE;
        let range = UsernsRange {
            uid_start,
            gid_start,
            slots,
        };
        range.check().ok().map(|()| range)
    }

    /// The range must hold a slot, never include id 0, and end below 2^32.
    pub fn check(&self) -> Result<(), String> {
        let end = |start: u32| u64::from(start) + u64::from(self.slots) * u64::from(SLOT_SIZE);
        if self.slots == 0 {
            return Err("must have at least one slot".to_owned());
        }
        if self.uid_start == 0 || self.gid_start == 0 {
            return Err("must not start at host id 0".to_owned());
        }
        if end(self.uid_start) > u64::from(u32::MAX) || end(self.gid_start) > u64::from(u32::MAX) {
            return Err("must end below host id 4294967295".to_owned());
        }
        Ok(())
    }

    /// The maps of slot `slot`.
    pub fn slot_config(&self, slot: u32) -> UsernsConfig {
        let line = |start: u32| IdMapping {
            container_id: 0,
            host_id: start + slot * SLOT_SIZE,
            size: SLOT_SIZE,
        };
        UsernsConfig {
            mode: "auto".to_owned(),
            uid_map: vec![line(self.uid_start)],
            gid_map: vec![line(self.gid_start)],
        }
    }

    fn overlaps(&self, m: &IdMapping, uid: bool) -> bool {
        let start = u64::from(if uid { self.uid_start } else { self.gid_start });
        let end = start + u64::from(self.slots) * u64::from(SLOT_SIZE);
        let (a, b) = (
            u64::from(m.host_id),
            u64::from(m.host_id) + u64::from(m.size),
        );
        a < end && start < b
    }
}

/// What a create request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Userns {
    /// The host's user namespace (no `userns`, or `"host"`).
    Host,
    /// A slot of the range, allocated at insert.
    Auto,
    /// These checked maps.
    Explicit(UsernsConfig),
}

/// Check the request's `userns` against `range`.
pub fn resolve(req: Option<&UsernsRequest>, range: &UsernsRange) -> Result<Userns, RuntimeError> {
    let invalid = |reason: String| RuntimeError::invalid("userns", reason);
    match req {
        None => Ok(Userns::Host),
        Some(UsernsRequest::Mode(m)) if m == "host" => Ok(Userns::Host),
        Some(UsernsRequest::Mode(m)) if m == "auto" => Ok(Userns::Auto),
        Some(UsernsRequest::Mode(m)) => Err(invalid(format!(
            "{m:?} must be \"host\", \"auto\" or {{\"uid_map\": [...], \"gid_map\": [...]}}"
        ))),
        Some(UsernsRequest::Maps { uid_map, gid_map }) => {
            for (map, what, uid) in [(uid_map, "uid map", true), (gid_map, "gid map", false)] {
                let lines: Vec<IdMap> = map
                    .iter()
                    .map(|m| IdMap {
                        container_id: m.container_id,
                        host_id: m.host_id,
                        size: m.size,
                    })
                    .collect();
                check_map(&lines, what).map_err(|e| invalid(e.to_string()))?;
                if map.iter().any(|m| range.overlaps(m, uid)) {
                    return Err(invalid(format!(
                        "the {what} overlaps the daemon's userns_range, which \"auto\" allocates from"
                    )));
                }
            }
            Ok(Userns::Explicit(UsernsConfig {
                mode: "explicit".to_owned(),
                uid_map: uid_map.clone(),
                gid_map: gid_map.clone(),
            }))
        }
    }
}

/// The host ids of the container's root, if it has a user namespace.
pub fn root_ids(config: &UsernsConfig) -> Option<(u32, u32)> {
    let host = |map: &[IdMapping]| map.iter().find(|m| m.container_id == 0).map(|m| m.host_id);
    Some((host(&config.uid_map)?, host(&config.gid_map)?))
}

/// Give the container's root its upper dir: the overlay's root directory takes the
/// upper dir's owner, so without this `/` would belong to host root and the
/// container's root could not write there.
pub fn chown_upper(upper: &Path, config: Option<&UsernsConfig>) -> Result<(), RuntimeError> {
    let Some((uid, gid)) = config.and_then(root_ids) else {
        return Ok(());
    };
    std::os::unix::fs::chown(upper, Some(uid), Some(gid)).map_err(RuntimeError::io("chown", upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(container_id: u32, host_id: u32, size: u32) -> IdMapping {
        IdMapping {
            container_id,
            host_id,
            size,
        }
    }

    fn maps(uid: Vec<IdMapping>, gid: Vec<IdMapping>) -> UsernsRequest {
        UsernsRequest::Maps {
            uid_map: uid,
            gid_map: gid,
        }
    }

    #[test]
    fn requests_resolve_or_are_refused_with_a_reason() {
        let r = UsernsRange::DEFAULT;
        assert_eq!(resolve(None, &r).unwrap(), Userns::Host);
        assert_eq!(
            resolve(Some(&UsernsRequest::Mode("host".into())), &r).unwrap(),
            Userns::Host
        );
        assert_eq!(
            resolve(Some(&UsernsRequest::Mode("auto".into())), &r).unwrap(),
            Userns::Auto
        );
        let ok = maps(vec![line(0, 200_000, 65536)], vec![line(0, 300_000, 65536)]);
        assert!(
            matches!(resolve(Some(&ok), &r).unwrap(), Userns::Explicit(c) if c.mode == "explicit")
        );
        let bad = [
            (UsernsRequest::Mode("yes".into()), "must be"),
            (maps(vec![], vec![line(0, 1, 1)]), "empty"),
            (maps(vec![line(0, 100, 0)], vec![line(0, 100, 1)]), "size 0"),
            (
                maps(vec![line(0, 0, 10)], vec![line(0, 100, 1)]),
                "host id 0",
            ),
            (
                maps(
                    vec![line(0, 100, 10), line(5, 1000, 10)],
                    vec![line(0, 100, 1)],
                ),
                "overlapping",
            ),
            (
                maps(vec![line(1, 100, 10)], vec![line(0, 100, 1)]),
                "container id 0",
            ),
            (
                maps(vec![line(0, 1_000_000_000, 10)], vec![line(0, 100, 1)]),
                "userns_range",
            ),
        ];
        for (req, why) in bad {
            let e = resolve(Some(&req), &r).unwrap_err();
            assert!(matches!(e, RuntimeError::Invalid { .. }), "{e:?}");
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn slots_are_disjoint_ranges() {
        let r = UsernsRange::DEFAULT;
        let a = r.slot_config(0);
        let b = r.slot_config(1);
        assert_eq!(a.uid_map, vec![line(0, 1_000_000_000, 65536)]);
        assert_eq!(b.gid_map, vec![line(0, 1_000_065_536, 65536)]);
        assert_eq!(root_ids(&b), Some((1_000_065_536, 1_000_065_536)));
        assert!(r.check().is_ok());
        let last = r.slot_config(r.slots - 1).uid_map[0];
        assert!(u64::from(last.host_id) + u64::from(last.size) <= u64::from(u32::MAX));
    }

    #[test]
    fn the_range_comes_from_subid_files_when_both_name_boxd() {
        let dir = tempfile::tempdir().unwrap();
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "alice:100000:65536\nboxd:200000000:655360\n").unwrap();
        assert_eq!(UsernsRange::from_subid_files(&u, &g), None);
        std::fs::write(&g, "boxd:300000000:131072\n").unwrap();
        assert_eq!(
            UsernsRange::from_subid_files(&u, &g),
            Some(UsernsRange {
                uid_start: 200_000_000,
                gid_start: 300_000_000,
                slots: 2
            })
        );
        // Too small for one slot: not used.
        std::fs::write(&g, "boxd:300000000:1000\n").unwrap();
        assert_eq!(UsernsRange::from_subid_files(&u, &g), None);
    }
}
