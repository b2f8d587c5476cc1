//! The timing loop of `bench/create-start-wait.sh`: create + start + wait of
//! `/bin/true` through the API with the typed client, next to the same program run
//! raw in fresh namespaces (`unshare -pfmuin --mount-proc=R/proc chroot R /bin/true`),
//! interleaved in one process so that drift in the machine's load hits both alike.
//!
//! The API side is timed from the first request to the wait's answer, in a process
//! that is already running: what a client of the daemon waits for, without the
//! start-up of a client process (curl's own is ~10 ms, more than boxd's whole share).
//! The raw side is one process spawned and waited for, as a shell would.
//!
//! ```text
//! create_start_wait --socket S --rootfs R [--runs 30] [--warmup 3]
//! ```
//! Prints `api_ms raw_ms` (medians) on the last line of stdout.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use boxd_client::models::CreateContainer;
use boxd_client::Client;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The daemon's socket.
    #[arg(long)]
    socket: PathBuf,
    /// The busybox root filesystem, unpacked, for the raw runs.
    #[arg(long)]
    rootfs: PathBuf,
    /// Timed iterations of each.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
}

const NAME: &str = "bench";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Client::connect(&args.socket);
    let spec = CreateContainer {
        image: "busybox".into(),
        name: Some(NAME.into()),
        cmd: Some(vec!["/bin/true".into()]),
        ..CreateContainer::default()
    };
    let mut raw_cmd = Command::new("unshare");
    raw_cmd
        .arg("-pfmuin")
        .arg(format!("--mount-proc={}/proc", args.rootfs.display()))
        .arg("chroot")
        .arg(&args.rootfs)
        .arg("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null());

    let (mut api, mut raw) = (Vec::new(), Vec::new());
    for i in 0..args.warmup + args.runs {
        // Untimed: the previous iteration's container goes first.
        let _ = client.remove_container(NAME, true).await;

        let t0 = Instant::now();
        client.create_container(&spec).await.context("create")?;
        client.start(NAME).await.context("start")?;
        let exit = client.wait(NAME).await.context("wait")?;
        let api_ms = t0.elapsed().as_secs_f64() * 1e3;
        if exit.exit_code != 0 {
            bail!("the container exited {}", exit.exit_code);
        }

        let t0 = Instant::now();
        let status = raw_cmd.status().context("running unshare")?;
        let raw_ms = t0.elapsed().as_secs_f64() * 1e3;
        if !status.success() {
            bail!("raw run failed: {status}");
        }
        if i >= args.warmup {
            api.push(api_ms);
            raw.push(raw_ms);
        }
    }
    let _ = client.remove_container(NAME, true).await;
    println!("{:.2} {:.2}", median(&mut api), median(&mut raw));
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
