//! `boxctl version`: the client's version and the daemon's.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde_json::json;

use super::{print_json, Ctx};

/// The options of `version` (none).
#[derive(Debug, ClapArgs)]
pub struct Args {}

/// Runs `boxctl version`. The client half prints even when the daemon is down.
pub async fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<i32> {
    let client_version = env!("CARGO_PKG_VERSION");
    if !ctx.json {
        println!("Client:\n Version:        {client_version}");
    }
    let server = ctx
        .client
        .version()
        .await
        .context("failed to get the daemon's version")?;
    if ctx.json {
        print_json(&json!({ "client": { "version": client_version }, "server": server }))?;
    } else {
        println!("\nServer:");
        println!(" Version:        {}", server.version);
        println!(" API version:    {}", server.api_version);
        println!(" Cgroup version: {}", server.cgroup_version);
        println!(" Kernel:         {}", server.kernel);
    }
    Ok(0)
}
