//! `boxctl wait ID...`: blocks until each container exits and prints its exit code.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde::Serialize;

use super::{print_json, report, Ctx};

/// The options of `wait`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// One line of `wait --json`.
#[derive(Serialize)]
struct Waited<'a> {
    id: &'a str,
    exit_code: i32,
    oom_killed: bool,
}

/// Runs `boxctl wait`: codes print in argument order as each container exits (with
/// `--json`, an array once all have); failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut code = 0;
    let mut waited = Vec::new();
    for id in &args.ids {
        match ctx
            .client
            .wait(id)
            .await
            .with_context(|| format!("failed to wait for {id}"))
        {
            Ok(exit) if ctx.json => waited.push(Waited {
                id,
                exit_code: exit.exit_code,
                oom_killed: exit.oom_killed,
            }),
            Ok(exit) => println!("{}", exit.exit_code),
            Err(err) => {
                report(&err);
                code = 1;
            }
        }
    }
    if ctx.json {
        print_json(&waited)?;
    }
    Ok(code)
}
