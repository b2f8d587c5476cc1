//! `boxctl images` (and `boxctl image ls`): lists images, one row per tag.

use anyhow::Context as _;
use boxd_client::models::Image;
use chrono::{DateTime, Utc};
use clap::Args as ClapArgs;

use super::{ago, human_size, print_json, short_id, Ctx, Table};

/// The options of `images`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Only print image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `boxctl images`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut images = ctx.client.images().await.context("failed to list images")?;
    images.sort_by_key(|image| std::cmp::Reverse(image.created_at));
    if ctx.json {
        print_json(&images)?;
    } else if args.quiet {
        for image in &images {
            println!("{}", short_id(&image.id));
        }
    } else {
        print!("{}", table(&images, Utc::now()));
    }
    Ok(0)
}

/// The `images` table as of `now`.
pub fn table(images: &[Image], now: DateTime<Utc>) -> String {
    let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for image in images {
        let mut row = |repo: &str, tag: &str| {
            t.row(vec![
                repo.to_string(),
                tag.to_string(),
                short_id(&image.id).to_string(),
                ago(image.created_at, now),
                human_size(image.size),
            ])
        };
        if image.tags.is_empty() {
            row("<none>", "<none>");
        }
        for reference in &image.tags {
            let (repo, tag) = split_reference(reference);
            row(repo, tag);
        }
    }
    t.render()
}

/// `registry:5000/app:1.2` → (`registry:5000/app`, `1.2`): the tag follows the last `:`
/// after the last `/`.
pub fn split_reference(reference: &str) -> (&str, &str) {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => (
            &reference[..name_start + i],
            &reference[name_start + i + 1..],
        ),
        None => (reference, "<none>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_colon() {
        assert_eq!(split_reference("busybox:latest"), ("busybox", "latest"));
        assert_eq!(split_reference("reg:5000/app:1.2"), ("reg:5000/app", "1.2"));
        assert_eq!(split_reference("reg:5000/app"), ("reg:5000/app", "<none>"));
        assert_eq!(split_reference("plain"), ("plain", "<none>"));
    }

    #[test]
    fn table_lists_each_tag() {
        let now = Utc::now();
        let image = Image {
            id: "sha256:0123456789abcdef".into(),
            tags: vec!["busybox:latest".into(), "bb:1".into()],
            size: 4_264_123,
            created_at: now - chrono::TimeDelta::minutes(2),
            cmd: vec![],
            env: vec![],
            working_dir: None,
            ..Default::default()
        };
        let out = table(&[image], now);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "REPOSITORY   TAG      IMAGE ID       CREATED         SIZE"
        );
        assert_eq!(
            lines[1],
            "busybox      latest   0123456789ab   2 minutes ago   4.26MB"
        );
        assert_eq!(
            lines[2],
            "bb           1        0123456789ab   2 minutes ago   4.26MB"
        );
    }
}
