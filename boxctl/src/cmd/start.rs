//! `boxctl start ID...`: starts created or exited containers.

use clap::Args as ClapArgs;

use super::{each_id, Ctx};

/// The options of `start`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl start`: prints each started id; failures are reported and the rest go on.
/// A container that already runs is not a failure (as `docker start`): it is printed.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.ids, "start", |id| async move {
        match ctx.client.start(id).await {
            Err(boxd_client::Error::Api { code, .. }) if code == "already_running" => Ok(()),
            other => other,
        }
    })
    .await)
}
