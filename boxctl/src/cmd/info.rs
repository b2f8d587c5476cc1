//! `boxctl info`: host facts and counts from the daemon.

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{human_size_binary, print_json, Ctx};

/// The options of `info` (none).
#[derive(Debug, ClapArgs)]
pub struct Args {}

/// Runs `boxctl info`.
pub async fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<i32> {
    let info = ctx
        .client
        .info()
        .await
        .context("failed to get the daemon's info")?;
    if ctx.json {
        print_json(&info)?;
        return Ok(0);
    }
    println!("Containers: {}", info.containers);
    println!(" Running: {}", info.containers_running);
    println!(" Created: {}", info.containers_created);
    println!(" Exited: {}", info.containers_exited);
    println!(" Dead: {}", info.containers_dead);
    println!("Images: {}", info.images);
    println!("Cgroup Version: {}", info.cgroup_version);
    println!("Cgroup Controllers: {}", info.cgroup_controllers.join(" "));
    println!("Cgroup Parent: {}", info.cgroup_parent);
    println!("Kernel Version: {}", info.kernel);
    println!("CPUs: {}", info.ncpu);
    println!("Total Memory: {}", human_size_binary(info.mem_total));
    println!("Root Dir: {}", info.root_dir);
    println!("State Dir: {}", info.state_dir);
    Ok(0)
}
