//! `boxctl volume create|ls|inspect|rm|prune`: manages the daemon's named volumes, with
//! docker's verbs and output.

use std::collections::BTreeMap;

use anyhow::Context as _;
use boxd_client::models::{Volume, VolumeCreate, VolumePruneResponse};
use clap::{Args as ClapArgs, Subcommand};

use super::create::parse_label;
use super::{each_id, human_size, print_json, report, Ctx, Table};

/// The subcommands of `volume`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a volume and print its name.
    Create(CreateArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON.
    Inspect(InspectArgs),
    /// Remove volumes.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove every volume no container uses.
    Prune(PruneArgs),
}

/// The options of `volume create`.
#[derive(Debug, ClapArgs)]
pub struct CreateArgs {
    /// Volume driver (only `local`).
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Driver option K=V: size=100m (a size-limited volume), or type=none, o=bind,
    /// device=/host/dir (a host directory).
    #[arg(short, long = "opt", value_name = "K=V")]
    pub opt: Vec<String>,
    /// Set a label (K=V).
    #[arg(long = "label", value_name = "K=V")]
    pub label: Vec<String>,
    /// Name of the volume (a random one when absent).
    pub name: Option<String>,
}

/// The options of `volume ls`.
#[derive(Debug, ClapArgs)]
pub struct LsArgs {
    /// Only print volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: dangling=true|false, name=SUBSTRING, label=K[=V].
    #[arg(short, long = "filter", value_name = "K=V")]
    pub filter: Vec<String>,
}

/// The options of `volume inspect`.
#[derive(Debug, ClapArgs)]
pub struct InspectArgs {
    /// Volume names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// The options of `volume rm`.
#[derive(Debug, ClapArgs)]
pub struct RmArgs {
    /// Do not fail on a volume that does not exist (a volume in use is still refused).
    #[arg(short, long)]
    pub force: bool,
    /// Volume names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// The options of `volume prune`.
#[derive(Debug, ClapArgs)]
pub struct PruneArgs {
    /// Accepted for docker compatibility; boxctl never asks for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `boxctl volume ...`.
pub async fn run(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Create(args) => {
            let spec = spec(&args)?;
            let v = ctx
                .client
                .create_volume(&spec)
                .await
                .context("failed to create volume")?;
            if ctx.json {
                print_json(&v)?;
            } else {
                println!("{}", v.name);
            }
            Ok(0)
        }
        Command::Ls(args) => {
            let filters = parse_filters(&args.filter)?;
            let volumes = ctx
                .client
                .volumes(&filters)
                .await
                .context("failed to list volumes")?;
            if ctx.json {
                print_json(&volumes)?;
            } else if args.quiet {
                for v in &volumes {
                    println!("{}", v.name);
                }
            } else {
                print!("{}", table(&volumes));
            }
            Ok(0)
        }
        Command::Inspect(args) => {
            let mut found = Vec::new();
            let mut code = 0;
            for name in &args.names {
                match ctx
                    .client
                    .volume(name)
                    .await
                    .with_context(|| format!("failed to inspect volume {name}"))
                {
                    Ok(v) => found.push(v),
                    Err(err) => {
                        report(&err);
                        code = 1;
                    }
                }
            }
            print_json(&found)?;
            Ok(code)
        }
        Command::Rm(args) => Ok(each_id(ctx, &args.names, "remove volume", |name| {
            ctx.client.remove_volume(name, args.force)
        })
        .await),
        Command::Prune(_) => {
            let answer = ctx
                .client
                .prune_volumes()
                .await
                .context("failed to prune volumes")?;
            if ctx.json {
                print_json(&answer)?;
            } else {
                print!("{}", prune_report(&answer));
            }
            Ok(0)
        }
    }
}

fn pairs(list: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("invalid {what} {kv:?}: expected K=V"))?;
            anyhow::ensure!(!k.is_empty(), "invalid {what} {kv:?}: empty key");
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// `--filter K=V` words as the query's pairs.
pub fn parse_filters(list: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs(list, "filter")
}

/// The request body of `volume create`; a bad option or label is refused before any
/// request.
pub fn spec(args: &CreateArgs) -> anyhow::Result<VolumeCreate> {
    Ok(VolumeCreate {
        name: args.name.clone(),
        driver: Some(args.driver.clone()),
        driver_opts: pairs(&args.opt, "option")?.into_iter().collect(),
        labels: args
            .label
            .iter()
            .map(|l| parse_label(l))
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?,
    })
}

/// The `volume ls` table (docker's columns).
pub fn table(volumes: &[Volume]) -> String {
    let mut t = Table::new(&["DRIVER", "VOLUME NAME"]);
    for v in volumes {
        t.row(vec![v.driver.clone(), v.name.clone()]);
    }
    t.render()
}

/// The text docker prints after a prune.
pub fn prune_report(answer: &VolumePruneResponse) -> String {
    let mut out = String::new();
    if !answer.volumes_deleted.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for n in &answer.volumes_deleted {
            out.push_str(n);
            out.push('\n');
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
    fn create_options_and_filters_parse() {
        let args = CreateArgs {
            driver: "local".into(),
            opt: vec!["size=100m".into()],
            label: vec!["app=web".into()],
            name: Some("data".into()),
        };
        let s = spec(&args).unwrap();
        assert_eq!(s.driver_opts["size"], "100m");
        assert_eq!(s.labels["app"], "web");
        assert_eq!(s.name.as_deref(), Some("data"));
        let bad = CreateArgs {
            opt: vec!["size".into()],
            ..args
        };
        assert!(spec(&bad).is_err());
        assert_eq!(
            parse_filters(&["dangling=true".into(), "label=a=b".into()]).unwrap(),
            [
                ("dangling".to_owned(), "true".to_owned()),
                ("label".to_owned(), "a=b".to_owned())
            ]
        );
        assert!(parse_filters(&["dangling".into()]).is_err());
    }

    #[test]
    fn prune_report_lists_names_and_space() {
        let out = prune_report(&VolumePruneResponse {
            volumes_deleted: vec!["a".into(), "b".into()],
            space_reclaimed: 2048,
        });
        assert!(out.starts_with("Deleted Volumes:\na\nb\n\n"), "{out}");
        assert!(out.contains("Total reclaimed space:"), "{out}");
    }
}
