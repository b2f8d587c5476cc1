//! The timing loop of `bench/create-start-wait.sh`: create + start + wait of
//! `/bin/true` through the API with the typed client, once with `"network": "none"`
//! and once with `"network": "bridge"` (the default network: a CNI attach and
//! detach), next to the same program run raw in fresh namespaces
//! (`unshare -pfmuin --mount-proc=R/proc chroot R /bin/true`) and, when given an
//! image, to `podman run --rm --network none|NET IMAGE /bin/true`, all interleaved in
//! one process so that drift in the machine's load hits each alike.
//!
//! The API side is timed from the first request to the wait's answer, in a process
//! that is already running: what a client of the daemon waits for, without the
//! start-up of a client process (curl's own is ~10 ms, more than boxd's whole share).
//! The raw and podman sides are one process spawned and waited for, as a shell would
//! (podman has no daemon: its own start-up is its cost).
//!
//! ```text
//! create_start_wait --socket S --rootfs R [--runs 30] [--warmup 3]
//!     [--podman-image IMG [--podman-network bridge] [--podman-arg ARG]...]
//! ```
//! Prints `api_none_ms api_bridge_ms raw_ms` (medians), followed by
//! `podman_none_ms podman_bridge_ms` with `--podman-image`, on the last line of stdout.

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
    /// Also time `podman run` of this image (busybox, already in podman's store).
    #[arg(long)]
    podman_image: Option<String>,
    /// The podman network of the bridge runs.
    #[arg(long, default_value = "bridge")]
    podman_network: String,
    /// More `podman run` options (before the image), repeatable.
    #[arg(long, allow_hyphen_values = true)]
    podman_arg: Vec<String>,
}

const NAME: &str = "bench";

/// Create + start + wait of `spec` (after an untimed removal of the previous
/// container), in ms.
async fn api_run(client: &Client, spec: &CreateContainer) -> Result<f64> {
    let _ = client.remove_container(NAME, true).await;
    let t0 = Instant::now();
    client.create_container(spec).await.context("create")?;
    client.start(NAME).await.context("start")?;
    let exit = client.wait(NAME).await.context("wait")?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if exit.exit_code != 0 {
        bail!("the container exited {}", exit.exit_code);
    }
    Ok(ms)
}

/// One run of `cmd`, spawned and waited for, in ms.
fn spawn_run(cmd: &mut Command, what: &str) -> Result<f64> {
    let t0 = Instant::now();
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(ms)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Client::connect(&args.socket);
    let spec = |network: &str| CreateContainer {
        image: "busybox".into(),
        name: Some(NAME.into()),
        cmd: Some(vec!["/bin/true".into()]),
        network: Some(network.into()),
        ..CreateContainer::default()
    };
    let (none_spec, bridge_spec) = (spec("none"), spec("bridge"));
    let mut raw_cmd = Command::new("unshare");
    raw_cmd
        .arg("-pfmuin")
        .arg(format!("--mount-proc={}/proc", args.rootfs.display()))
        .arg("chroot")
        .arg(&args.rootfs)
        .arg("/bin/true")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let podman = |network: &str| {
        args.podman_image.as_ref().map(|image| {
            let mut cmd = Command::new("podman");
            cmd.args(["run", "--rm", "--network", network])
                .args(&args.podman_arg)
                .arg(image)
                .arg("/bin/true")
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            cmd
        })
    };
    let (mut podman_none, mut podman_bridge) = (podman("none"), podman(&args.podman_network));

    let mut samples: [Vec<f64>; 5] = Default::default();
    for i in 0..args.warmup + args.runs {
        let mut row = vec![
            api_run(&client, &none_spec).await.context("api, none")?,
            api_run(&client, &bridge_spec)
                .await
                .context("api, bridge")?,
            spawn_run(&mut raw_cmd, "unshare")?,
        ];
        if let (Some(none), Some(bridge)) = (&mut podman_none, &mut podman_bridge) {
            row.push(spawn_run(none, "podman run --network none")?);
            row.push(spawn_run(bridge, "podman run --network bridge")?);
        }
        if i >= args.warmup {
            for (s, ms) in samples.iter_mut().zip(row) {
                s.push(ms);
            }
        }
    }
    let _ = client.remove_container(NAME, true).await;
    let medians: Vec<String> = samples
        .iter_mut()
        .filter(|s| !s.is_empty())
        .map(|s| format!("{:.2}", median(s)))
        .collect();
    println!("{}", medians.join(" "));
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
