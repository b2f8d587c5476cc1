//! `boxctl tag SOURCE TARGET` (and `boxctl image tag`): gives an image another name.

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{print_json, Ctx};

/// The options of `tag`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The image: a name, an id or a unique id prefix.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The new name (`repo[:tag]`; `:latest` when the tag is left out).
    #[arg(value_name = "TARGET")]
    pub target: String,
}

/// Runs `boxctl tag`: silent on success, like docker (`--json` prints the image).
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let image = ctx
        .client
        .tag_image(&args.source, &args.target)
        .await
        .with_context(|| format!("failed to tag {} as {}", args.source, args.target))?;
    if ctx.json {
        print_json(&image)?;
    }
    Ok(0)
}
