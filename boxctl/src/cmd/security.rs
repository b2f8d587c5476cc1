//! The security flags of `boxctl create` / `run` (docker's names): `--cap-add`,
//! `--cap-drop`, `--security-opt`, `--read-only`, `--tmpfs`, `--ulimit`, `--disk`,
//! `--userns`.
//!
//! `--security-opt seccomp=FILE` reads the profile here, on the client, and sends its
//! JSON (as docker does), so the daemon never opens a path a client names.

use anyhow::{bail, Context as _};
use boxd_client::models::{CreateContainer, Ulimit, UsernsRequest};
use clap::Args as ClapArgs;

use super::create::parse_size;

/// Security options shared by `create` and `run`.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct SecurityOpts {
    /// Add a Linux capability (NET_ADMIN or CAP_NET_ADMIN; ALL for every one).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (ALL for every one).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined|FILE, no-new-privileges[=true|false].
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs: PATH[:OPTIONS] (options such as size=64m,mode=1777).
    // This doc comment is the --help text: `[...]` marks an optional part, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long = "tmpfs", value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD] (nofile=1024:2048).
    // This doc comment is the --help text: `[...]` marks an optional part, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Size limit of the container's writable layer (b, k, m, g, t suffixes).
    #[arg(long = "disk", value_name = "SIZE", value_parser = parse_size)]
    pub disk: Option<u64>,
    /// User namespace: host (default), auto (the container's root is an unprivileged
    /// host id range), or explicit maps as JSON ({"uid_map":[...],"gid_map":[...]}).
    #[arg(long = "userns", value_name = "host|auto|JSON")]
    pub userns: Option<String>,
}

/// Adds `opts` to `req`, reading a seccomp profile file with `read`.
pub fn apply_with(
    opts: &SecurityOpts,
    req: &mut CreateContainer,
    read: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    req.cap_add.extend(opts.cap_add.iter().cloned());
    req.cap_drop.extend(opts.cap_drop.iter().cloned());
    for opt in &opts.security_opt {
        match opt.split_once(['=', ':']) {
            Some(("seccomp", value)) if !matches!(value, "unconfined" | "default") => {
                let json = read(value)?;
                req.security_opt.push(format!("seccomp={json}"));
            }
            _ => req.security_opt.push(opt.clone()),
        }
    }
    req.read_only_rootfs |= opts.read_only;
    for t in &opts.tmpfs {
        let (path, options) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if path.is_empty() {
            bail!("invalid --tmpfs {t:?}: expected PATH[:OPTIONS]");
        }
        req.tmpfs.insert(path.to_owned(), options.to_owned());
    }
    for u in &opts.ulimit {
        req.ulimits.push(parse_ulimit(u)?);
    }
    if opts.disk.is_some() {
        req.resources.disk_bytes = opts.disk;
    }
    if let Some(u) = &opts.userns {
        req.userns = Some(if u.trim_start().starts_with('{') {
            serde_json::from_str(u).with_context(|| format!("invalid --userns maps {u:?}"))?
        } else {
            UsernsRequest::Mode(u.clone())
        });
    }
    Ok(())
}

/// [`apply_with`] reading files from disk.
pub fn apply(opts: &SecurityOpts, req: &mut CreateContainer) -> anyhow::Result<()> {
    apply_with(opts, req, |path| {
        std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the seccomp profile {path}"))
    })
}

/// Parses `NAME=SOFT[:HARD]` (`-1` or `unlimited` for no limit).
pub fn parse_ulimit(s: &str) -> anyhow::Result<Ulimit> {
    let Some((name, limits)) = s.split_once('=') else {
        bail!("invalid --ulimit {s:?}: expected NAME=SOFT[:HARD]");
    };
    let value = |v: &str| -> anyhow::Result<u64> {
        match v.trim() {
            "-1" | "unlimited" => Ok(u64::MAX),
            n => n
                .parse()
                .with_context(|| format!("invalid --ulimit {s:?}: {n:?} is not a number")),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (value(soft)?, value(hard)?),
        None => {
            let v = value(limits)?;
            (v, v)
        }
    };
    if soft > hard {
        bail!("invalid --ulimit {s:?}: the soft limit is above the hard limit");
    }
    Ok(Ulimit {
        name: name.trim().to_owned(),
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CreateContainer {
        CreateContainer {
            image: "busybox".into(),
            ..Default::default()
        }
    }

    #[test]
    fn flags_fill_the_request() {
        let opts = SecurityOpts {
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            security_opt: vec![
                "seccomp=/p.json".into(),
                "no-new-privileges=false".into(),
                "seccomp=unconfined".into(),
            ],
            read_only: true,
            tmpfs: vec!["/tmp:size=1m".into(), "/run".into()],
            ulimit: vec!["nofile=10:20".into()],
            disk: Some(1 << 26),
            userns: Some("auto".into()),
        };
        let mut r = req();
        apply_with(&opts, &mut r, |p| {
            assert_eq!(p, "/p.json");
            Ok("{\"defaultAction\":\"SCMP_ACT_ALLOW\"}".into())
        })
        .unwrap();
        assert_eq!(r.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(r.cap_drop, vec!["ALL"]);
        assert_eq!(
            r.security_opt,
            vec![
                "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}",
                "no-new-privileges=false",
                "seccomp=unconfined"
            ]
        );
        assert!(r.read_only_rootfs);
        assert_eq!(r.tmpfs["/tmp"], "size=1m");
        assert_eq!(r.tmpfs["/run"], "");
        assert_eq!((r.ulimits[0].soft, r.ulimits[0].hard), (10, 20));
        assert_eq!(r.resources.disk_bytes, Some(1 << 26));
        assert_eq!(r.userns, Some(UsernsRequest::Mode("auto".into())));
        let maps = SecurityOpts {
            userns: Some(
                r#"{"uid_map":[{"container_id":0,"host_id":100000,"size":10}],"gid_map":[]}"#
                    .into(),
            ),
            ..Default::default()
        };
        let mut r = req();
        apply(&maps, &mut r).unwrap();
        assert!(
            matches!(&r.userns, Some(UsernsRequest::Maps { uid_map, gid_map }) if uid_map[0].host_id == 100_000 && gid_map.is_empty())
        );
        let bad = SecurityOpts {
            userns: Some("{oops".into()),
            ..Default::default()
        };
        assert!(apply(&bad, &mut req()).is_err());
    }

    #[test]
    fn ulimits_parse_like_docker() {
        let u = parse_ulimit("nproc=100").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nproc", 100, 100));
        assert_eq!(parse_ulimit("core=0:-1").unwrap().hard, u64::MAX);
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("nofile=2:1").is_err());
        assert!(parse_ulimit("nofile=x").is_err());
    }
}
