//! `boxctl image import FILE NAME`: uploads a rootfs tarball (plain, gzip or zstd) as an
//! image, streamed from the file (`-` reads standard input).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{print_json, Ctx};

/// The options of `image import`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The tarball, or `-` for standard input.
    pub file: PathBuf,
    /// The name to give the image (`busybox` or `busybox:1.36`).
    pub name: String,
}

/// Runs `boxctl image import`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let image = if args.file.as_os_str() == "-" {
        ctx.client
            .import_image_stream(&args.name, tokio::io::stdin())
            .await
    } else {
        ctx.client.import_image(&args.name, &args.file).await
    }
    .with_context(|| format!("failed to import {} as {}", args.file.display(), args.name))?;
    if ctx.json {
        print_json(&image)?;
    } else {
        println!("{}", image.id);
    }
    Ok(0)
}
