//! `boxctl pull REF [--platform P]` (and `boxctl image pull`): pulls an image from a
//! registry through the daemon, showing each layer's progress as it streams in.
//!
//! On a terminal every layer gets an `indicatif` bar (bytes done/total, then its state);
//! otherwise (a pipe, a CI log) one plain line is printed per layer state change, never
//! one per chunk, so logs stay short. `--json` prints the daemon's progress lines as
//! they arrive instead.

use std::collections::HashMap;
use std::io::IsTerminal as _;

use anyhow::{anyhow, Context as _};
use boxd_client::models::{Image, PullProgress, PullRequest};
use clap::Args as ClapArgs;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{human_size, short_id, Ctx};

/// The options of `pull`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// `os/arch[/variant]` to pick from a multi-platform image (default: the host's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Print only the image id at the end.
    #[arg(short, long)]
    pub quiet: bool,
    /// What to pull (`busybox`, `host:port/repo:tag`, `repo@sha256:...`).
    #[arg(value_name = "REF")]
    pub reference: String,
}

/// Runs `boxctl pull`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let request = PullRequest {
        reference: args.reference.clone(),
        platform: args.platform.clone(),
    };
    let fail = || format!("failed to pull {}", args.reference);
    let mut stream = ctx.client.pull(&request).await.with_context(fail)?;
    let mut view: Box<dyn View> = if ctx.json {
        Box::new(JsonView)
    } else if args.quiet {
        Box::new(QuietView)
    } else if std::io::stdout().is_terminal() {
        Box::new(BarView::new())
    } else {
        Box::new(PlainView::default())
    };
    let mut image = None;
    while let Some(line) = stream.next().await {
        let line = line.with_context(fail)?;
        view.show(&line);
        match line.status.as_str() {
            "done" => image = line.image,
            "error" => {
                view.finish();
                let err = line.error.map_or_else(
                    || anyhow!("the daemon reported an error without details"),
                    |e| anyhow!("{} ({})", e.message, e.code),
                );
                return Err(err.context(fail()));
            }
            _ => {}
        }
    }
    view.finish();
    let image = image.ok_or_else(|| anyhow!("the pull ended without a result").context(fail()))?;
    view.done(&args.reference, &image);
    Ok(0)
}

/// How progress is shown.
trait View {
    /// One progress line from the daemon.
    fn show(&mut self, line: &PullProgress);
    /// The stream ended (clear bars before anything else is printed).
    fn finish(&mut self) {}
    /// The pull succeeded.
    fn done(&mut self, reference: &str, image: &Image);
}

struct JsonView;

impl View for JsonView {
    fn show(&mut self, line: &PullProgress) {
        if let Ok(text) = serde_json::to_string(line) {
            println!("{text}");
        }
    }

    fn done(&mut self, _: &str, _: &Image) {}
}

struct QuietView;

impl View for QuietView {
    fn show(&mut self, _: &PullProgress) {}

    fn done(&mut self, _: &str, image: &Image) {
        println!("{}", image.id);
    }
}

/// The plain-text rendering: at most one line per layer and state.
#[derive(Debug, Default)]
pub struct PlainView {
    /// The last state printed per layer digest.
    seen: HashMap<String, String>,
}

impl PlainView {
    /// The line to print for `p`, if it says something new.
    pub fn line(&mut self, p: &PullProgress) -> Option<String> {
        let id = p.id.as_deref().unwrap_or("");
        let text = match p.status.as_str() {
            "resolved" => {
                return Some(format!(
                    "resolved {id} ({} in layers)",
                    human_size(p.total.unwrap_or(0))
                ))
            }
            "done" | "error" => return None,
            "downloading" => match (p.current, p.total) {
                (Some(c), Some(t)) if t > 0 && c >= t => {
                    format!("downloaded {}", human_size(t))
                }
                (_, Some(t)) => format!("downloading {}", human_size(t)),
                _ => "downloading".to_owned(),
            },
            "exists" => "already exists".to_owned(),
            "layer_done" => "pull complete".to_owned(),
            other => other.to_owned(),
        };
        if self.seen.get(id) == Some(&text) {
            return None;
        }
        self.seen.insert(id.to_owned(), text.clone());
        Some(format!("{}: {text}", short_id(id)))
    }
}

impl View for PlainView {
    fn show(&mut self, line: &PullProgress) {
        if let Some(text) = self.line(line) {
            println!("{text}");
        }
    }

    fn done(&mut self, reference: &str, image: &Image) {
        print_summary(reference, image);
    }
}

fn print_summary(reference: &str, image: &Image) {
    if let Some(digest) = image.repo_digests.first() {
        let digest = digest.rsplit_once('@').map_or(digest.as_str(), |(_, d)| d);
        println!("Digest: {digest}");
    }
    println!("Pulled {reference} as {}", image.id);
}

/// Bars on a terminal, one per layer, in the order layers were first mentioned.
struct BarView {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    style: ProgressStyle,
}

impl BarView {
    fn new() -> BarView {
        let style =
            ProgressStyle::with_template("{prefix}: {msg:<12} [{bar:30}] {bytes}/{total_bytes}")
                .expect("valid template")
                .progress_chars("=> ");
        BarView {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: HashMap::new(),
            style,
        }
    }

    fn bar(&mut self, id: &str) -> &ProgressBar {
        self.bars.entry(id.to_owned()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(self.style.clone());
            bar.set_prefix(short_id(id).to_owned());
            bar
        })
    }
}

impl View for BarView {
    fn show(&mut self, p: &PullProgress) {
        let Some(id) = p.id.clone() else { return };
        match p.status.as_str() {
            "resolved" => {
                let _ = self.multi.println(format!("resolved {id}"));
            }
            "done" | "error" => {}
            "downloading" => {
                let bar = self.bar(&id);
                if let Some(t) = p.total {
                    bar.set_length(t);
                }
                bar.set_position(p.current.unwrap_or(0));
                bar.set_message("downloading");
            }
            "exists" => {
                let bar = self.bar(&id);
                bar.finish_with_message("already exists");
            }
            "layer_done" => {
                let bar = self.bar(&id);
                if let Some(len) = bar.length() {
                    bar.set_position(len);
                }
                bar.finish_with_message("pull complete");
            }
            other => {
                let other = other.to_owned();
                self.bar(&id).set_message(other);
            }
        }
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        // The last bar's line has no newline of its own: end it before the summary.
        if !self.bars.is_empty() {
            self.bars.clear();
            println!();
        }
    }

    fn done(&mut self, reference: &str, image: &Image) {
        print_summary(reference, image);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = "sha256:a738b7abe221eae8e2c685fc4043c986d6290e66c48b09395a4a059f999f149a";

    fn p(status: &str, current: Option<u64>, total: Option<u64>) -> PullProgress {
        PullProgress {
            status: status.into(),
            id: Some(L.into()),
            current,
            total,
            ..Default::default()
        }
    }

    #[test]
    fn plain_lines_once_per_state() {
        let mut v = PlainView::default();
        let lines: Vec<String> = [
            p("resolved", None, Some(1_088_172)),
            p("downloading", Some(1), Some(1_088_172)),
            p("downloading", Some(300_000), Some(1_088_172)),
            p("downloading", Some(1_088_172), Some(1_088_172)),
            p("extracting", None, None),
            p("layer_done", None, None),
            p("done", None, None),
        ]
        .iter()
        .filter_map(|x| v.line(x))
        .collect();
        assert_eq!(
            lines,
            [
                format!("resolved {L} (1.09MB in layers)"),
                "a738b7abe221: downloading 1.09MB".to_owned(),
                "a738b7abe221: downloaded 1.09MB".to_owned(),
                "a738b7abe221: extracting".to_owned(),
                "a738b7abe221: pull complete".to_owned(),
            ]
        );
        // A layer another pull stored shows once as such.
        let mut v = PlainView::default();
        assert_eq!(
            v.line(&p("exists", None, None)).as_deref(),
            Some("a738b7abe221: already exists")
        );
        assert_eq!(v.line(&p("exists", None, None)), None);
    }
}
