//! `boxctl image prune [-a]`: removes unused images and the layers nothing needs.

use anyhow::Context as _;
use boxd_client::models::PruneResponse;
use clap::Args as ClapArgs;

use super::{human_size, print_json, Ctx};

/// The options of `image prune`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Remove every image no container uses, not only untagged ones.
    #[arg(short, long)]
    pub all: bool,
    /// Accepted for docker compatibility; boxctl never asks for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `boxctl image prune`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let answer = ctx
        .client
        .prune_images(args.all)
        .await
        .context("failed to prune images")?;
    if ctx.json {
        print_json(&answer)?;
    } else {
        print!("{}", report(&answer));
    }
    Ok(0)
}

/// The text docker prints: what was deleted, then the space reclaimed.
pub fn report(answer: &PruneResponse) -> String {
    let mut out = String::new();
    if !answer.images_deleted.is_empty() || !answer.layers_deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for id in &answer.images_deleted {
            out.push_str(&format!("deleted: {id}\n"));
        }
        for id in &answer.layers_deleted {
            out.push_str(&format!("deleted layer: {id}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(answer.space_reclaimed)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_deletions_and_space() {
        assert_eq!(
            report(&PruneResponse::default()),
            "Total reclaimed space: 0B\n"
        );
        let r = report(&PruneResponse {
            images_deleted: vec!["sha256:aa".into()],
            layers_deleted: vec!["sha256:bb".into()],
            space_reclaimed: 4_264_123,
        });
        assert_eq!(
            r,
            "Deleted Images:\ndeleted: sha256:aa\ndeleted layer: sha256:bb\n\n\
             Total reclaimed space: 4.26MB\n"
        );
    }
}
