//! `boxctl events [--since S] [--until U] [--container ID] [--filter K=V]...`: one line
//! per event as it happens (`--json`: one JSON object per line); runs until `--until` or
//! ^C. Filters, as docker's: `container=ID`, `type=container|image`, `event=ACTION`
//! (or `action=ACTION`).

use std::io::Write as _;

use anyhow::{bail, Context as _};
use boxd_client::models::Event;
use boxd_client::EventsOptions;
use clap::Args as ClapArgs;
use futures_util::StreamExt;

use super::{resolve_time, Ctx};

/// The options of `events`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Replay from here: a sequence number, an RFC 3339 time, or relative (10m).
    #[arg(long, value_name = "SEQ|TIME")]
    pub since: Option<String>,
    /// Stop here: a sequence number, an RFC 3339 time, or relative (10m).
    #[arg(long, value_name = "SEQ|TIME")]
    pub until: Option<String>,
    /// Only events of this container.
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// Filter: `container=ID`, `type=TYPE`, `event=ACTION` (repeatable).
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// `--filter` values folded into the request's options.
fn apply_filters(options: &mut EventsOptions, filters: &[String]) -> anyhow::Result<()> {
    for f in filters {
        let Some((key, value)) = f.split_once('=') else {
            bail!("filter {f:?} is not KEY=VALUE");
        };
        let value = Some(value.to_owned());
        match key {
            "container" => options.container = value,
            "type" => options.kind = value,
            "event" | "action" => options.action = value,
            other => bail!("unknown filter {other:?} (container, type, event)"),
        }
    }
    Ok(())
}

/// Runs `boxctl events`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let now = chrono::Utc::now();
    let mut options = EventsOptions {
        since: args.since.as_deref().map(|s| resolve_time(s, now)),
        until: args.until.as_deref().map(|s| resolve_time(s, now)),
        container: args.container,
        ..Default::default()
    };
    apply_filters(&mut options, &args.filter)?;
    let mut stream = ctx
        .client
        .events(options)
        .await
        .context("failed to subscribe to events")?;
    while let Some(event) = stream.next().await {
        let event = event.context("event stream broke off")?;
        let line = if ctx.json {
            serde_json::to_string(&event)?
        } else {
            human(&event)
        };
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
            other => other.context("failed to write event")?,
        }
    }
    Ok(0)
}

/// `TIME type action id (k=v, ...)`, as `docker events` prints.
pub fn human(event: &Event) -> String {
    let mut line = format!(
        "{} {} {} {}",
        event
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        event.kind,
        event.action,
        event.id
    );
    if !event.attributes.is_empty() {
        let attrs: Vec<String> = event
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_fill_the_options() {
        let mut o = EventsOptions::default();
        apply_filters(
            &mut o,
            &[
                "type=container".into(),
                "event=oom".into(),
                "container=web".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            (
                o.kind.as_deref(),
                o.action.as_deref(),
                o.container.as_deref()
            ),
            (Some("container"), Some("oom"), Some("web"))
        );
        assert!(apply_filters(&mut o, &["colour=red".into()]).is_err());
        assert!(apply_filters(&mut o, &["oom".into()]).is_err());
    }

    #[test]
    fn human_line_has_time_type_action_id_attrs() {
        let mut event = Event {
            seq: 7,
            time: "2024-05-06T10:00:00.5Z".parse().unwrap(),
            kind: "container".into(),
            action: "die".into(),
            id: "abc".into(),
            attributes: Default::default(),
        };
        assert_eq!(
            human(&event),
            "2024-05-06T10:00:00.500000000Z container die abc"
        );
        event.attributes.insert("name".into(), "web".into());
        event.attributes.insert("exit_code".into(), "137".into());
        assert_eq!(
            human(&event),
            "2024-05-06T10:00:00.500000000Z container die abc (exit_code=137, name=web)"
        );
    }
}
