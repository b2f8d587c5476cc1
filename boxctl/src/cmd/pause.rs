//! `boxctl pause ID...` and `boxctl unpause ID...`: freeze and thaw every process of
//! containers (the cgroup freezer), as `docker pause` does.

use clap::Args as ClapArgs;

use super::{each_id, Ctx};

/// The options of `pause`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// The options of `unpause`.
#[derive(Debug, ClapArgs)]
pub struct UnpauseArgs {
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl pause`: prints each paused id; failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.ids, "pause", |id| ctx.client.pause(id)).await)
}

/// Runs `boxctl unpause`.
pub async fn run_unpause(ctx: &Ctx, args: UnpauseArgs) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.ids, "unpause", |id| ctx.client.unpause(id)).await)
}
