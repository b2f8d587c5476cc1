//! `boxctl doctor`: lists whatever the daemon's store and the kernel disagree on, and what
//! the daemon's start-up reconcile repaired. Exits 1 when a problem remains.

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{print_json, Ctx};

/// The options of `doctor` (none).
#[derive(Debug, ClapArgs)]
pub struct Args {}

/// Runs `boxctl doctor`.
pub async fn run(ctx: &Ctx, _args: Args) -> anyhow::Result<i32> {
    let check = ctx
        .client
        .system_check()
        .await
        .context("failed to run the daemon's system check")?;
    if ctx.json {
        print_json(&check)?;
    } else {
        if check.reconciled.is_empty() {
            println!("At start-up: nothing needed repair.");
        } else {
            println!("At start-up, boxd repaired:");
            for line in &check.reconciled {
                println!("  - {line}");
            }
        }
        if check.ok {
            println!("No problems found.");
        } else {
            println!("Problems:");
            for line in &check.problems {
                println!("  - {line}");
            }
            println!("Restarting boxd runs its reconcile again, which repairs most of these.");
        }
    }
    Ok(if check.ok { 0 } else { 1 })
}
