//! `boxctl start ID...`: starts created or exited containers.

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{report, Ctx};

/// The options of `start`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl start`: prints each started id; failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut code = 0;
    for id in &args.ids {
        match ctx
            .client
            .start(id)
            .await
            .with_context(|| format!("failed to start {id}"))
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
