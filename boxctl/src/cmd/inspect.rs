//! `boxctl inspect ID...`: the full record of containers (or, failing that, images) as a
//! pretty JSON array, like `docker inspect`.

use anyhow::anyhow;
use clap::Args as ClapArgs;

use super::{print_json, report, Ctx};

/// The options of `inspect`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Container ids, prefixes or names, or image references.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl inspect`: the array holds what was found; each miss is reported, and
/// any miss makes the exit status 1.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut found = Vec::new();
    let mut code = 0;
    for id in &args.ids {
        match lookup(ctx, id).await {
            Ok(value) => found.push(value),
            Err(err) => {
                report(&err);
                code = 1;
            }
        }
    }
    print_json(&found)?;
    Ok(code)
}

async fn lookup(ctx: &Ctx, id: &str) -> anyhow::Result<serde_json::Value> {
    match ctx.client.container(id).await {
        Ok(c) => return Ok(serde_json::to_value(c)?),
        Err(err) if err.is_not_found() => {}
        Err(err) => return Err(anyhow::Error::new(err).context(format!("failed to inspect {id}"))),
    }
    match ctx.client.image(id).await {
        Ok(image) => Ok(serde_json::to_value(image)?),
        Err(err) if err.is_not_found() => Err(anyhow!("no such container or image: {id}")),
        Err(err) => Err(anyhow::Error::new(err).context(format!("failed to inspect {id}"))),
    }
}
