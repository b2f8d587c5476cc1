//! `boxctl create [OPTIONS] IMAGE [CMD...]`: creates a container and prints its id.
//!
//! Owns the container options shared with `run` (docker's flag names and units) and the
//! parsers that turn them into a `CreateContainer` body.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};
use boxd_client::models::{CreateContainer, CreateResponse, Mount, Resources};
use clap::Args as ClapArgs;

use super::{print_json, Ctx};

/// The CFS period `--cpus` is expressed against (the kernel's default, as docker uses).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The options of `create`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Print help (`-h` is `--hostname`, as in docker).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// What to create.
    #[command(flatten)]
    pub opts: ContainerOpts,
}

/// How a container is made; shared by `create` and `run`.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct ContainerOpts {
    /// Name of the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Pull the image first: `missing` (when it is not stored), `always`, or `never`.
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing, value_name = "POLICY")]
    pub pull: PullPolicy,
    /// Set an environment variable (K=V; a bare K takes its value from boxctl's environment).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// User to run as: uid, uid:gid, name or name:group.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Replace the image's entrypoint ("" clears it; the image's command is then not used).
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Hostname of the container.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount a volume or bind a host path: NAME:DST[:ro|rw] (a named volume, made if
    /// missing), /HOST:DST[:ro|rw] or ./REL:DST (a bind; relative to the current
    /// directory), or DST alone (a new anonymous volume).
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volume: Vec<String>,
    /// Mount, as docker's --mount: `type=volume|bind,src=NAME|PATH,dst=PATH`, optionally `,readonly`.
    #[arg(long = "mount", value_name = "type=volume,src=NAME,dst=PATH")]
    pub mount: Vec<String>,
    /// Memory limit (b, k, m, g, t suffixes; 1k = 1024; 0: unlimited, as docker).
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Memory plus swap limit, or -1 for unlimited swap.
    #[arg(long, value_name = "SIZE|-1", value_parser = parse_swap, allow_hyphen_values = true)]
    pub memory_swap: Option<i64>,
    /// Swappiness of the container's memory (0 to 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=100))]
    pub memory_swappiness: Option<u64>,
    /// Soft memory limit (cgroup v2 memory.high): above it the kernel reclaims and
    /// throttles the container, and a memory_pressure event is recorded.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_high: Option<u64>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Number of CPUs the container may use (0.5 = half of one).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Relative CPU weight (1024 is the default).
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Set a label (K=V).
    #[arg(short = 'l', long = "label", value_name = "K=V")]
    pub label: Vec<String>,
    /// Network mode: bridge (the default network), a network's name, none, host, or
    /// container:NAME|ID (share that container's network).
    #[arg(long, visible_alias = "net", value_name = "MODE", value_parser = super::ports::parse_network)]
    pub network: Option<String>,
    /// Publish a container port on the host: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]
    /// (no HOST_PORT: a random free one; ranges like 8000-8010:8000-8010 allowed).
    // This doc comment is the --help text: `[...]` marks an optional part, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on a random host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Addresses, DNS, names and rate limits of the container's network.
    #[command(flatten)]
    pub net: super::netopts::NetworkOpts,
    /// Restart policy: no, on-failure[:N], always or unless-stopped.
    // This doc comment is the --help text: `[...]` marks an optional part, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Read environment variables from a file: K=V lines (a bare K takes its value
    /// from boxctl's environment; `#` comments and blank lines are skipped). `-e` wins.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The signal `stop` sends first (SIGTERM, or the image's StopSignal, when absent).
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Docker flags boxd does not offer: refused with the reason instead of "unknown
    /// argument" (see `refused_flags`).
    #[command(flatten)]
    pub refused: RefusedFlags,
    /// Security settings (capabilities, seccomp, read-only root, tmpfs, ulimits, disk).
    #[command(flatten)]
    pub security: super::security::SecurityOpts,
    /// Image name or id.
    pub image: String,
    /// Command and arguments (the image's default when absent).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<String>,
}

/// Runs `boxctl create`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let spec = build(&args.opts)?;
    let created = create(ctx, &spec, args.opts.pull).await?;
    if ctx.json {
        print_json(&created)?;
    } else {
        println!("{}", created.id);
    }
    Ok(0)
}

/// When `create` and `run` pull the image, as Docker's `--pull`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull when the daemon has no such image.
    #[default]
    Missing,
    /// Pull before every create.
    Always,
    /// Never pull.
    Never,
}

/// Sends the create request (pulling the image first as `pull` says) and prints the
/// daemon's warnings on stderr. Pull progress goes to stderr: stdout is the id's, or
/// the container's.
pub async fn create(
    ctx: &Ctx,
    spec: &CreateContainer,
    pull: PullPolicy,
) -> anyhow::Result<CreateResponse> {
    let fail = || format!("failed to create a container from {}", spec.image);
    if pull == PullPolicy::Always {
        pull_quietly(ctx, &spec.image).await?;
    }
    let created = match ctx.client.create_container(spec).await {
        Err(boxd_client::Error::Api {
            status: 404, code, ..
        }) if code == "not_found" && pull == PullPolicy::Missing => {
            eprintln!("Unable to find image '{}' locally", spec.image);
            pull_quietly(ctx, &spec.image).await?;
            ctx.client.create_container(spec).await.with_context(fail)?
        }
        Err(e @ boxd_client::Error::Api { status: 404, .. }) if pull == PullPolicy::Never => {
            return Err(anyhow::Error::new(e)
                .context(fail())
                .context("--pull never: pull it first with `boxctl pull`"))
        }
        other => other.with_context(fail)?,
    };
    for warning in &created.warnings {
        eprintln!("WARNING: {warning}");
    }
    Ok(created)
}

/// Pulls `reference`, telling progress on stderr one line per layer.
async fn pull_quietly(ctx: &Ctx, reference: &str) -> anyhow::Result<()> {
    use futures_util::StreamExt as _;
    let fail = || format!("failed to pull {reference}");
    let request = boxd_client::models::PullRequest {
        reference: reference.to_owned(),
        platform: None,
    };
    let mut stream = ctx.client.pull(&request).await.with_context(fail)?;
    while let Some(line) = stream.next().await {
        let line = line.with_context(fail)?;
        match line.status.as_str() {
            "layer_done" | "exists" => {
                let id = line.id.as_deref().unwrap_or_default();
                let short = id.strip_prefix("sha256:").unwrap_or(id);
                eprintln!(
                    "{}: {}",
                    &short[..short.len().min(12)],
                    line.status.replace('_', " ")
                );
            }
            "done" => {
                eprintln!("Status: downloaded {reference}");
                return Ok(());
            }
            "error" => {
                let err = line.error.map_or_else(
                    || anyhow::anyhow!("the daemon reported an error without details"),
                    |e| anyhow::anyhow!("{} ({})", e.message, e.code),
                );
                return Err(err.context(fail()));
            }
            _ => {}
        }
    }
    Err(anyhow::anyhow!("the pull ended without a result").context(fail()))
}

/// Flags docker users reach for that boxd does not offer. Each is taken so that the
/// error can say why, instead of clap's "unexpected argument".
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct RefusedFlags {
    /// Not supported: boxd runs no privileged containers (give the capabilities it needs
    /// with --cap-add instead).
    #[arg(long)]
    pub privileged: bool,
    /// Not supported: boxd gives containers no host devices.
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Not supported yet: an init process as pid 1 (the app is pid 1; use a shell
    /// `trap` or an init of the image).
    #[arg(long)]
    pub init: bool,
    /// Not supported yet: pinning to CPUs (limit with --cpus or --cpu-shares).
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Not supported yet: the size of /dev/shm (mount one with --tmpfs /dev/shm:size=N).
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Not supported yet: a per-container stop timeout (give -t to stop and restart).
    #[arg(long, value_name = "SECS")]
    pub stop_timeout: Option<String>,
}

/// The first refused flag that is set, as an error that says why and what to use.
fn refused_flags(r: &RefusedFlags) -> anyhow::Result<()> {
    let why = if r.privileged {
        "--privileged is not supported: boxd runs no privileged containers; add the \
         capabilities the app needs with --cap-add"
    } else if !r.device.is_empty() {
        "--device is not supported: boxd gives containers no host devices"
    } else if r.init {
        "--init is not supported yet: the app is pid 1; use an init in the image"
    } else if r.cpuset_cpus.is_some() {
        "--cpuset-cpus is not supported yet: limit CPU with --cpus or --cpu-shares"
    } else if r.shm_size.is_some() {
        "--shm-size is not supported yet: mount one with --tmpfs /dev/shm:size=SIZE"
    } else if r.stop_timeout.is_some() {
        "--stop-timeout is not supported yet: give the timeout to stop (-t)"
    } else {
        return Ok(());
    };
    bail!("{why}")
}

/// `--env-file` lines as `-e` values: `K=V` or a bare `K`; comments and blank lines
/// skipped.
fn env_file_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read env file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// The request body for `opts`, reading bare `-e K` from this process's environment and
/// resolving relative volume sources against the current directory.
pub fn build(opts: &ContainerOpts) -> anyhow::Result<CreateContainer> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    build_with(opts, |k| std::env::var(k).ok(), &cwd)
}

/// [`build`] with the environment and current directory given, for tests.
pub fn build_with(
    opts: &ContainerOpts,
    lookup: impl Fn(&str) -> Option<String>,
    cwd: &Path,
) -> anyhow::Result<CreateContainer> {
    refused_flags(&opts.refused)?;
    let mut specs = Vec::new();
    for file in &opts.env_file {
        specs.extend(env_file_lines(&cwd.join(file))?);
    }
    specs.extend(opts.env.iter().cloned());
    let mut env: Vec<String> = Vec::new();
    for spec in &specs {
        if let Some(var) = parse_env(spec, &lookup)? {
            // A later definition of a name replaces an earlier one (`-e` over the file).
            let name = var.split('=').next().unwrap_or_default().to_owned();
            env.retain(|e| e.split('=').next() != Some(name.as_str()));
            env.push(var);
        }
    }
    let mounts = opts
        .volume
        .iter()
        .map(|v| parse_volume(v, cwd))
        .chain(opts.mount.iter().map(|m| parse_mount(m, cwd)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ports = Vec::new();
    for spec in &opts.publish {
        ports.extend(super::ports::parse_publish(spec)?);
    }
    let labels = opts
        .label
        .iter()
        .map(|l| parse_label(l))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let mut req = CreateContainer {
        image: opts.image.clone(),
        name: opts.name.clone(),
        cmd: (!opts.cmd.is_empty()).then(|| opts.cmd.clone()),
        // Docker's --entrypoint takes one word; "" clears the image's.
        entrypoint: opts.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            }
        }),
        env,
        working_dir: opts.workdir.clone(),
        hostname: opts.hostname.clone(),
        user: opts.user.clone(),
        mounts,
        resources: resources(opts)?,
        labels,
        restart_policy: opts.restart.clone(),
        stop_signal: opts.stop_signal.clone(),
        memory_warning_percent: None,
        network: opts.network.clone(),
        ports,
        publish_all: opts.publish_all,
        ..Default::default()
    };
    super::netopts::apply(&opts.net, &mut req);
    super::security::apply(&opts.security, &mut req)?;
    Ok(req)
}

fn resources(opts: &ContainerOpts) -> anyhow::Result<Resources> {
    // `-m 0` is no limit, as docker reads it.
    let memory = opts.memory.filter(|&m| m != 0);
    if let Some(swap) = opts.memory_swap.filter(|&s| s != -1) {
        // Docker's rule: swap is memory *plus* swap, so it means nothing without a
        // memory limit and cannot be below it.
        let Some(memory) = memory else {
            bail!("--memory-swap needs --memory");
        };
        if (swap as u64) < memory {
            bail!("--memory-swap must not be smaller than --memory");
        }
    }
    let (cpu_quota_us, cpu_period_us) = match opts.cpus {
        Some(cpus) => (Some(cpu_quota(cpus, CPU_PERIOD_US)), Some(CPU_PERIOD_US)),
        None => (None, None),
    };
    Ok(Resources {
        memory_bytes: memory,
        memory_swap_bytes: opts.memory_swap,
        memory_swappiness: opts.memory_swappiness,
        memory_high_bytes: opts.memory_high,
        pids_max: opts.pids_limit,
        cpu_quota_us,
        cpu_period_us,
        cpu_shares: opts.cpu_shares,
        ..Resources::default()
    })
}

/// The CFS quota for `cpus` CPUs per `period_us`.
pub fn cpu_quota(cpus: f64, period_us: u64) -> i64 {
    (cpus * period_us as f64).round() as i64
}

/// Parses a size such as `64m`, `1.5g`, `512k`, `100`, `64MiB` into bytes. Units are
/// binary (`k` = 1024) and case-insensitive, like docker's `RAMInBytes`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let unit = unit.trim_start().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("invalid size {s:?}: unit must be b, k, m, g or t")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number like 64m"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(bytes as u64)
}

/// Parses `--memory-swap`: a size, or `-1` for unlimited.
pub fn parse_swap(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    let bytes = parse_size(s)?;
    i64::try_from(bytes).map_err(|_| format!("invalid size {s:?}: too large"))
}

/// Parses `--cpus`: a positive number of CPUs, at least 0.01 (the kernel refuses a CFS
/// quota under 1 ms, and 0.01 × 100 ms is 1 ms).
pub fn parse_cpus(s: &str) -> Result<f64, String> {
    let cpus: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("invalid number of cpus {s:?}"))?;
    if !cpus.is_finite() || cpus < 0.01 {
        return Err(format!(
            "invalid number of cpus {s:?}: must be at least 0.01"
        ));
    }
    Ok(cpus)
}

/// Parses one `-e`: `K=V` as is; a bare `K` takes its value from `lookup`, and is left
/// out when unset (as docker does).
pub fn parse_env(
    spec: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<String>> {
    match spec.split_once('=') {
        Some(("", _)) => bail!("invalid environment variable {spec:?}: empty name"),
        Some(_) => Ok(Some(spec.to_string())),
        None if spec.is_empty() => bail!("invalid environment variable: empty name"),
        None => Ok(lookup(spec).map(|v| format!("{spec}={v}"))),
    }
}

/// Parses one `-l K=V` (a bare `K` gets an empty value).
pub fn parse_label(spec: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = spec.split_once('=').unwrap_or((spec, ""));
    if k.is_empty() {
        bail!("invalid label {spec:?}: empty key");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses one `-v SRC:DST[:ro|rw]` as docker does: a SRC starting with `/` is a host
/// path, one starting with `.` or `~` a host path made absolute against `cwd` (or
/// `$HOME`), anything else a volume's name; a lone absolute DST is a new anonymous
/// volume.
pub fn parse_volume(spec: &str, cwd: &Path) -> anyhow::Result<Mount> {
    let parts: Vec<&str> = spec.split(':').collect();
    if let [dst] = parts.as_slice() {
        if !dst.starts_with('/') {
            bail!("invalid volume {spec:?}: expected SRC:DST[:ro] or an absolute DST");
        }
        return Ok(Mount {
            kind: Some("volume".into()),
            source: String::new(),
            target: dst.to_string(),
            read_only: false,
        });
    }
    let (src, dst, read_only) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        [_, _, mode] => bail!("invalid volume {spec:?}: unknown mode {mode:?} (ro or rw)"),
        _ => bail!("invalid volume {spec:?}: expected SRC:DST[:ro]"),
    };
    if src.is_empty() {
        bail!("invalid volume {spec:?}: empty source");
    }
    if !dst.starts_with('/') {
        bail!("invalid volume {spec:?}: destination must be an absolute path");
    }
    if !src.starts_with(['/', '.', '~']) {
        return Ok(Mount {
            kind: Some("volume".into()),
            source: src.to_string(),
            target: dst.to_string(),
            read_only,
        });
    }
    let src = match src.strip_prefix('~') {
        Some(rest) => {
            let home = std::env::var("HOME").context("~ in a volume source needs $HOME")?;
            format!("{home}{rest}")
        }
        None => src.to_string(),
    };
    Ok(Mount {
        kind: Some("bind".into()),
        source: absolute(Path::new(&src), cwd)
            .to_string_lossy()
            .into_owned(),
        target: dst.to_string(),
        read_only,
    })
}

/// Parses one `--mount type=volume|bind,src=..,dst=..[,readonly]` (docker's keys and
/// their aliases: source, destination, target, ro). A bind's relative source is made
/// absolute against `cwd`; a volume without a source is a new anonymous one.
pub fn parse_mount(spec: &str, cwd: &Path) -> anyhow::Result<Mount> {
    let mut kind = "volume".to_string();
    let (mut src, mut dst, mut read_only) = (String::new(), None, false);
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (k, v) {
            ("type", Some(t)) => kind = t.to_string(),
            ("src" | "source", Some(s)) => src = s.to_string(),
            ("dst" | "destination" | "target", Some(d)) => dst = Some(d.to_string()),
            ("readonly" | "ro", None) => read_only = true,
            ("readonly" | "ro", Some(b)) => {
                read_only = match b {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid mount {spec:?}: {k}={b} is not true or false"),
                }
            }
            _ => bail!("invalid mount {spec:?}: unknown field {field:?}"),
        }
    }
    let Some(dst) = dst else {
        bail!("invalid mount {spec:?}: dst is required");
    };
    if !dst.starts_with('/') {
        bail!("invalid mount {spec:?}: dst must be an absolute path");
    }
    let source = match kind.as_str() {
        "volume" => src,
        "bind" => {
            if src.is_empty() {
                bail!("invalid mount {spec:?}: a bind needs src");
            }
            absolute(Path::new(&src), cwd)
                .to_string_lossy()
                .into_owned()
        }
        other => bail!("invalid mount {spec:?}: type {other:?} is not volume or bind"),
    };
    Ok(Mount {
        kind: Some(kind),
        source,
        target: dst,
        read_only,
    })
}

/// `path` against `cwd`, with `.` and `..` resolved lexically (like Go's `filepath.Abs`,
/// which docker uses); symlinks are left for the daemon to meet.
fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in cwd.join(path).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxd_client::models::PortSpec;

    #[test]
    fn sizes_use_binary_units_any_case() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100b"), Ok(100));
        assert!(parse_size("").is_err());
        assert!(parse_size("m").is_err());
        assert!(parse_size("64x").is_err());
        assert!(parse_size("-5m").is_err());
        assert!(parse_size("99999999999t").is_err());
    }

    #[test]
    fn env_files_are_read_and_env_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.env"),
            "# settings\nA=1\n\nB=from-file\nHOME_DIR\n",
        )
        .unwrap();
        let opts = ContainerOpts {
            env_file: vec!["app.env".into()],
            env: vec!["B=from-flag".into()],
            stop_signal: Some("SIGINT".into()),
            ..Default::default()
        };
        let lookup = |k: &str| (k == "HOME_DIR").then(|| "/home/x".to_owned());
        let req = build_with(&opts, lookup, dir.path()).unwrap();
        assert_eq!(req.env, ["A=1", "HOME_DIR=/home/x", "B=from-flag"]);
        assert_eq!(req.stop_signal.as_deref(), Some("SIGINT"));
        let missing = ContainerOpts {
            env_file: vec!["nope.env".into()],
            ..Default::default()
        };
        let err = build_with(&missing, lookup, dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("nope.env"), "{err:#}");
    }

    #[test]
    fn docker_flags_boxd_lacks_are_refused_with_the_reason() {
        for (refused, says) in [
            (
                RefusedFlags {
                    privileged: true,
                    ..Default::default()
                },
                "--cap-add",
            ),
            (
                RefusedFlags {
                    device: vec!["/dev/fuse".into()],
                    ..Default::default()
                },
                "--device",
            ),
            (
                RefusedFlags {
                    shm_size: Some("64m".into()),
                    ..Default::default()
                },
                "--tmpfs /dev/shm",
            ),
        ] {
            let opts = ContainerOpts {
                refused,
                ..Default::default()
            };
            let err = build_with(&opts, |_| None, Path::new("/")).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn memory_zero_is_no_limit_as_docker() {
        let opts = ContainerOpts {
            memory: Some(0),
            ..Default::default()
        };
        assert_eq!(resources(&opts).unwrap().memory_bytes, None);
        let opts = ContainerOpts {
            memory: Some(64 << 20),
            ..Default::default()
        };
        assert_eq!(resources(&opts).unwrap().memory_bytes, Some(64 << 20));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
    }

    #[test]
    fn mounts_parse_as_dockers() {
        let cwd = Path::new("/w");
        let m = parse_mount("type=volume,src=data,dst=/d,readonly", cwd).unwrap();
        assert_eq!(
            (
                m.kind.as_deref(),
                m.source.as_str(),
                m.target.as_str(),
                m.read_only
            ),
            (Some("volume"), "data", "/d", true)
        );
        let m = parse_mount("type=bind,source=./x,target=/x,ro=false", cwd).unwrap();
        assert_eq!(
            (m.kind.as_deref(), m.source.as_str(), m.read_only),
            (Some("bind"), "/w/x", false)
        );
        let m = parse_mount("dst=/anon", cwd).unwrap();
        assert_eq!((m.kind.as_deref(), m.source.as_str()), (Some("volume"), ""));
        assert!(parse_mount("type=tmpfs,dst=/t", cwd).is_err());
        assert!(parse_mount("type=volume,src=a", cwd).is_err());
        assert!(parse_mount("type=bind,dst=/x", cwd).is_err());
        assert!(parse_mount("type=volume,dst=/x,bogus=1", cwd).is_err());
    }

    #[test]
    fn swap_takes_minus_one() {
        assert_eq!(parse_swap("-1"), Ok(-1));
        assert_eq!(parse_swap("128m"), Ok(128 << 20));
        assert!(parse_swap("-2").is_err());
    }

    #[test]
    fn cpus_become_quota_per_period() {
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        assert_eq!(cpu_quota(0.5, CPU_PERIOD_US), 50_000);
        assert_eq!(cpu_quota(1.5, CPU_PERIOD_US), 150_000);
        assert_eq!(cpu_quota(0.333, CPU_PERIOD_US), 33_300);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("0.001").is_err());
        assert!(parse_cpus("NaN").is_err());
        assert!(parse_cpus("two").is_err());
    }

    #[test]
    fn volumes_parse_and_sources_become_absolute() {
        let cwd = Path::new("/home/u/proj");
        let m = parse_volume("/data:/mnt", cwd).unwrap();
        assert_eq!(
            (m.source.as_str(), m.target.as_str(), m.read_only),
            ("/data", "/mnt", false)
        );
        let m = parse_volume("./conf:/etc/app:ro", cwd).unwrap();
        assert_eq!(m.source, "/home/u/proj/conf");
        assert!(m.read_only);
        let m = parse_volume("../x/./y:/y:rw", cwd).unwrap();
        assert_eq!(m.source, "/home/u/x/y");
        assert!(!m.read_only);
        // A lone destination is a new anonymous volume; a bare name a named one.
        let m = parse_volume("/data", cwd).unwrap();
        assert_eq!((m.kind.as_deref(), m.source.as_str()), (Some("volume"), ""));
        let m = parse_volume("cache:/c:ro", cwd).unwrap();
        assert_eq!(
            (m.kind.as_deref(), m.source.as_str(), m.read_only),
            (Some("volume"), "cache", true)
        );
        assert!(parse_volume("rel", cwd).is_err());
        assert!(parse_volume("/data:rel", cwd).is_err());
        assert!(parse_volume("/data:/mnt:rx", cwd).is_err());
        assert!(parse_volume(":/mnt", cwd).is_err());
        assert!(parse_volume("/a:/b:ro:x", cwd).is_err());
    }

    #[test]
    fn env_bare_name_comes_from_lookup() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(parse_env("A=1", lookup).unwrap().as_deref(), Some("A=1"));
        assert_eq!(parse_env("A=", lookup).unwrap().as_deref(), Some("A="));
        assert_eq!(
            parse_env("A=b=c", lookup).unwrap().as_deref(),
            Some("A=b=c")
        );
        assert_eq!(
            parse_env("HOME", lookup).unwrap().as_deref(),
            Some("HOME=/root")
        );
        assert_eq!(parse_env("UNSET", lookup).unwrap(), None);
        assert!(parse_env("=x", lookup).is_err());
        assert!(parse_env("", lookup).is_err());
    }

    #[test]
    fn labels_parse() {
        assert_eq!(parse_label("a=b").unwrap(), ("a".into(), "b".into()));
        assert_eq!(parse_label("a").unwrap(), ("a".into(), "".into()));
        assert!(parse_label("=b").is_err());
    }

    #[test]
    fn build_maps_every_option() {
        let opts = ContainerOpts {
            name: Some("web".into()),
            env: vec!["A=1".into(), "FROM_ENV".into(), "MISSING".into()],
            workdir: Some("/srv".into()),
            user: Some("1000:1000".into()),
            hostname: Some("h".into()),
            volume: vec!["data:/data:ro".into()],
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            memory_swappiness: Some(0),
            memory_high: Some(48 << 20),
            pids_limit: Some(64),
            cpus: Some(0.5),
            cpu_shares: Some(512),
            label: vec!["tier=web".into()],
            restart: Some("on-failure:3".into()),
            network: Some("front".into()),
            publish: vec!["8080:80".into(), "127.0.0.1::53/udp".into()],
            publish_all: true,
            net: super::super::netopts::NetworkOpts {
                ip: Some("10.88.0.9".into()),
                dns: vec!["192.0.2.53".into()],
                dns_search: vec!["example.org".into()],
                dns_option: vec!["ndots:2".into()],
                add_host: vec!["db:192.0.2.9".into()],
                network_alias: vec!["www".into()],
                network_rate: Some(8_000_000),
                network_ingress_rate: None,
                network_egress_rate: Some(1_000_000),
            },
            image: "busybox".into(),
            cmd: vec!["sh".into(), "-c".into(), "echo hi".into()],
            ..Default::default()
        };
        let lookup = |k: &str| (k == "FROM_ENV").then(|| "x".to_string());
        let spec = build_with(&opts, lookup, Path::new("/w")).unwrap();
        assert_eq!(spec.image, "busybox");
        assert_eq!(spec.name.as_deref(), Some("web"));
        assert_eq!(spec.cmd.as_deref().unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(spec.env, ["A=1", "FROM_ENV=x"]);
        assert_eq!(spec.working_dir.as_deref(), Some("/srv"));
        assert_eq!(spec.user.as_deref(), Some("1000:1000"));
        assert_eq!(spec.hostname.as_deref(), Some("h"));
        assert_eq!(spec.mounts[0].source, "data");
        assert_eq!(spec.mounts[0].kind.as_deref(), Some("volume"));
        assert_eq!(spec.labels["tier"], "web");
        assert_eq!(spec.restart_policy.as_deref(), Some("on-failure:3"));
        assert_eq!(spec.network.as_deref(), Some("front"));
        assert_eq!(
            spec.ports,
            [
                PortSpec {
                    host_port: Some(8080),
                    container_port: 80,
                    ..Default::default()
                },
                PortSpec {
                    host_ip: Some("127.0.0.1".into()),
                    container_port: 53,
                    protocol: Some("udp".into()),
                    ..Default::default()
                },
            ]
        );
        assert!(spec.publish_all);
        assert_eq!(spec.ip.as_deref(), Some("10.88.0.9"));
        assert_eq!(spec.dns, ["192.0.2.53"]);
        assert_eq!(spec.dns_search, ["example.org"]);
        assert_eq!(spec.dns_options, ["ndots:2"]);
        assert_eq!(spec.extra_hosts, ["db:192.0.2.9"]);
        assert_eq!(spec.network_aliases, ["www"]);
        let r = &spec.resources;
        assert_eq!(r.network_ingress_bps, Some(8_000_000));
        assert_eq!(r.network_egress_bps, Some(1_000_000));
        assert_eq!(r.memory_bytes, Some(64 << 20));
        assert_eq!(r.memory_swap_bytes, Some(128 << 20));
        assert_eq!(r.memory_swappiness, Some(0));
        assert_eq!(r.memory_high_bytes, Some(48 << 20));
        assert_eq!(r.pids_max, Some(64));
        assert_eq!(r.cpu_quota_us, Some(50_000));
        assert_eq!(r.cpu_period_us, Some(100_000));
        assert_eq!(r.cpu_shares, Some(512));
    }

    #[test]
    fn build_without_cmd_uses_image_default_and_checks_swap() {
        let mut opts = ContainerOpts {
            image: "busybox".into(),
            ..Default::default()
        };
        let spec = build_with(&opts, |_| None, Path::new("/")).unwrap();
        assert_eq!(spec.cmd, None);
        assert_eq!(spec.resources, Resources::default());
        // No flag: the daemon's default network, nothing published.
        assert_eq!((spec.network.as_deref(), spec.ports.len()), (None, 0));
        opts.publish = vec!["80:".into()];
        let err = build_with(&opts, |_| None, Path::new("/")).unwrap_err();
        assert!(
            err.to_string().contains("invalid port spec \"80:\""),
            "{err}"
        );
        opts.publish.clear();
        opts.memory_swap = Some(1 << 30);
        assert!(build_with(&opts, |_| None, Path::new("/")).is_err());
        opts.memory = Some(2 << 30);
        assert!(build_with(&opts, |_| None, Path::new("/")).is_err());
        opts.memory_swap = Some(-1);
        assert!(build_with(&opts, |_| None, Path::new("/")).is_ok());
    }
}
