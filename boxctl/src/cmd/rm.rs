//! `boxctl rm [-f] [-v] ID...`: removes containers (`-f` kills running ones first, `-v`
//! removes their anonymous volumes too).

use clap::Args as ClapArgs;

use super::{each_id, Ctx};

/// The options of `rm`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Kill and remove running containers.
    #[arg(short, long)]
    pub force: bool,
    /// Remove the containers' anonymous volumes too (named volumes stay).
    #[arg(short, long)]
    pub volumes: bool,
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl rm`: prints each removed id; failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.ids, "remove", |id| {
        ctx.client
            .remove_container_with_volumes(id, args.force, args.volumes)
    })
    .await)
}
