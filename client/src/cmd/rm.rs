//! `boxctl rm [-f] ID...`: removes containers (`-f` kills running ones first).

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{report, Ctx};

/// The options of `rm`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Kill and remove running containers.
    #[arg(short, long)]
    pub force: bool,
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl rm`: prints each removed id; failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut code = 0;
    for id in &args.ids {
        match ctx
            .client
            .remove_container(id, args.force)
            .await
            .with_context(|| format!("failed to remove {id}"))
        {
            Ok(()) => println!("{id}"),
            Err(err) => {
                report(&err);
                code = 1;
            }
        }
    }
    Ok(code)
}
