//! `boxctl load [-i FILE]` (and `boxctl image load`): loads every image of a
//! `docker save` archive or of an OCI layout packed as a tar, streamed from the file
//! (standard input without `-i`, as docker does).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{print_json, Ctx};

/// The options of `load`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The archive (default: standard input).
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The name for an image the archive does not name itself (an OCI layout without
    /// a `ref.name` annotation).
    #[arg(long, value_name = "REF")]
    pub name: Option<String>,
    /// `os/arch[/variant]` to pick from a multi-platform archive (default: the host's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Print only the ids of the images loaded.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `boxctl load`: one line per image, `Loaded image: NAME` or, for an image the
/// archive leaves unnamed, `Loaded image ID: ID`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let name = args.name.as_deref();
    let platform = args.platform.as_deref();
    let loaded = match &args.input {
        Some(path) if path.as_os_str() != "-" => ctx
            .client
            .load_image(path, name, platform)
            .await
            .with_context(|| format!("failed to load {}", path.display()))?,
        _ => ctx
            .client
            .load_image_stream(tokio::io::stdin(), name, platform)
            .await
            .context("failed to load the archive from standard input")?,
    };
    if ctx.json {
        print_json(&loaded)?;
        return Ok(0);
    }
    for image in &loaded.images {
        if args.quiet {
            println!("{}", image.id);
        } else if image.tags.is_empty() {
            println!("Loaded image ID: {}", image.id);
        } else {
            for tag in &image.tags {
                println!("Loaded image: {tag}");
            }
        }
    }
    Ok(0)
}
