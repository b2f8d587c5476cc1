//! `boxctl rmi [-f] REF...` (and `boxctl image rm`): removes images.

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{report, Ctx};

/// The options of `rmi`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Remove even while containers use the image.
    #[arg(short, long)]
    pub force: bool,
    /// Image names or ids.
    #[arg(required = true, value_name = "REF")]
    pub refs: Vec<String>,
}

/// Runs `boxctl rmi`: each removed ref is printed; failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut code = 0;
    for reference in &args.refs {
        match ctx
            .client
            .remove_image(reference, args.force)
            .await
            .with_context(|| format!("failed to remove image {reference}"))
        {
            Ok(()) => println!("Deleted: {reference}"),
            Err(err) => {
                report(&err);
                code = 1;
            }
        }
    }
    Ok(code)
}
