//! `boxctl rename CONTAINER NEW_NAME`: renames a container, running or not.

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::Ctx;

/// The options of `rename`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The container: id, prefix or current name.
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Its new name.
    #[arg(value_name = "NEW_NAME")]
    pub name: String,
}

/// Runs `boxctl rename`; prints nothing on success, as docker.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    ctx.client
        .rename(&args.container, &args.name)
        .await
        .with_context(|| format!("failed to rename {}", args.container))?;
    Ok(0)
}
