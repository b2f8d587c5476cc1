//! `boxctl update [--memory SIZE] [--memory-swap SIZE|-1] [--pids-limit N] [--cpus N]
//! [--cpu-shares N] [--restart POLICY] ID...`: changes the limits of containers (at once
//! in a running one's cgroup, and for every later start) and their restart policy, with
//! the flags and units of `run`.

use anyhow::bail;
use boxd_client::models::UpdateContainer;
use clap::Args as ClapArgs;

use super::create::{cpu_quota, parse_cpus, parse_size, parse_swap};
use super::{report, Ctx};

/// The CFS period `--cpus` is expressed against, as `run` uses it.
const CPU_PERIOD_US: u64 = 100_000;

/// The options of `update`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Memory limit (b, k, m, g, t suffixes; 1k = 1024).
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Memory plus swap limit, or -1 for unlimited swap.
    #[arg(long, value_name = "SIZE|-1", value_parser = parse_swap, allow_hyphen_values = true)]
    pub memory_swap: Option<i64>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Number of CPUs the container may use (0.5 = half of one).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Relative CPU weight (1024 is the default).
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Restart policy: no, on-failure[:N], always or unless-stopped.
    // This doc comment is the --help text: `[...]` marks an optional part, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// The update body the flags ask for.
pub fn body(args: &Args) -> anyhow::Result<UpdateContainer> {
    let (cpu_quota_us, cpu_period_us) = match args.cpus {
        Some(cpus) => (Some(cpu_quota(cpus, CPU_PERIOD_US)), Some(CPU_PERIOD_US)),
        None => (None, None),
    };
    let body = UpdateContainer {
        memory_bytes: args.memory,
        memory_swap_bytes: args.memory_swap,
        pids_max: args.pids_limit,
        cpu_quota_us,
        cpu_period_us,
        cpu_shares: args.cpu_shares,
        restart_policy: args.restart.clone(),
    };
    if body == UpdateContainer::default() {
        bail!("nothing to update: give --memory, --memory-swap, --pids-limit, --cpus, --cpu-shares or --restart");
    }
    Ok(body)
}

/// Runs `boxctl update`: prints each updated id (and any warning on stderr); failures
/// are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let body = body(&args)?;
    let mut code = 0;
    for id in &args.ids {
        match ctx.client.update(id, &body).await {
            Ok(answer) => {
                for w in answer.warnings {
                    eprintln!("WARNING: {w}");
                }
                println!("{id}");
            }
            Err(err) => {
                report(&anyhow::Error::new(err).context(format!("failed to update {id}")));
                code = 1;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> anyhow::Result<UpdateContainer> {
        let cli = Cli::try_parse_from(std::iter::once("update").chain(argv.iter().copied()))?;
        body(&cli.args)
    }

    #[test]
    fn flags_become_the_update_body() {
        let b = parse(&[
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--pids-limit",
            "20",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--restart",
            "on-failure:3",
            "web",
        ])
        .unwrap();
        assert_eq!(b.memory_bytes, Some(64 << 20));
        assert_eq!(b.memory_swap_bytes, Some(-1));
        assert_eq!(b.pids_max, Some(20));
        assert_eq!(
            (b.cpu_quota_us, b.cpu_period_us),
            (Some(150_000), Some(100_000))
        );
        assert_eq!(b.cpu_shares, Some(512));
        assert_eq!(b.restart_policy.as_deref(), Some("on-failure:3"));
        assert!(parse(&["web"]).is_err(), "nothing to update");
        assert!(parse(&["--memory", "lots", "web"]).is_err());
    }
}
