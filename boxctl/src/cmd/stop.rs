//! `boxctl stop [-t SECS] ID...`: SIGTERM, then SIGKILL after the grace time; and
//! `boxctl restart [-t SECS] ID...`: the same, then a start.

use clap::Args as ClapArgs;

use super::{each_id, Ctx};

/// The options of `stop`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Seconds to wait for the container to exit before killing it (the daemon's default
    /// when absent).
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        value_name = "SECS"
    )]
    pub time: Option<u64>,
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl stop`: prints each stopped id; failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.ids, "stop", |id| ctx.client.stop(id, args.time)).await)
}

/// Runs `boxctl restart`: prints each restarted id; failures are reported and the rest
/// go on.
pub async fn restart(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.ids, "restart", |id| {
        ctx.client.restart(id, args.time)
    })
    .await)
}
