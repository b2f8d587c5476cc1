//! A container cannot hog the disk: the writable layer's size limit
//! (`resources.disk_bytes`) and the bounded container log.
//!
//! The disk tests look at the host from outside: free space on the host filesystem,
//! the image file's allocated blocks, `/proc/self/mountinfo` and
//! `/sys/block/loop*/backing_file` (which loop device is attached to what).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use boxd_tests::{require_root, StopHow, TestDaemon};
use serde_json::json;

const MIB: u64 = 1 << 20;

/// Loop devices whose backing file is below `dir` (a deleted file shows with a
/// ` (deleted)` suffix, still below `dir`).
fn loops_backed_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
            if Path::new(b.trim()).starts_with(dir) {
                found.push(format!("{name}: {}", b.trim()));
            }
        }
    }
    found
}

/// Free bytes on the filesystem holding `path`.
/// Bytes allocated to the files below `dir` (what the daemon's data takes on the host
/// disk; free space of the whole filesystem would count what other tests write).
fn allocated_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

/// Poll the container's output until it contains `needle` (at most 30 s).
async fn output_with(d: &TestDaemon, id: &str, needle: &str) -> String {
    let mut out = String::new();
    let found = boxd_tests::wait_for_async(Duration::from_secs(30), async || {
        out = d.stdout_of(id).await;
        out.contains(needle)
    })
    .await;
    assert!(
        found,
        "no {needle:?} in the output of {id} after 30 s:\n{out}"
    );
    out
}

/// Mountinfo lines of this (the host's) namespace that mention `needle`.
fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn root_disk_limit_gives_enospc_inside_and_spares_the_host() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // First run: keep a marker, then try to write 64 MiB into a 16 MiB layer. Later
    // runs: show the marker. Then stay up.
    let script = "exec 2>&1
if [ -f /keep ]; then echo found=$(cat /keep); else
  echo written > /keep; sync
  dd if=/dev/zero of=/big bs=1M count=64; echo dd_exit=$?
  dd if=/dev/zero of=/more bs=1M count=1; echo more_exit=$?
fi
echo ready; exec sleep 300";
    let id = d
        .create(json!({
            "image": "busybox",
            "cmd": ["/bin/sh", "-c", script],
            "resources": {"disk_bytes": 16 * MIB},
        }))
        .await;
    let dir = d.root_dir_of(&id);
    let before = allocated_under(&d.root);
    d.start_container(&id).await;
    let out = output_with(&d, &id, "ready").await;

    // Inside: ENOSPC, for dd and for the next megabyte.
    assert!(out.contains("No space left on device"), "{out}");
    assert!(!out.contains("dd_exit=0"), "{out}");
    assert!(!out.contains("more_exit=0"), "{out}");
    // The container is not harmed by it.
    assert_eq!(d.inspect(&id).await["state"], "running");

    // Outside: the data is in the image, which never takes more than the limit.
    let image = dir.join("disk.img");
    let meta = std::fs::metadata(&image).expect("disk.img exists");
    assert_eq!(meta.len(), 16 * MIB);
    assert!(
        meta.blocks() * 512 <= 16 * MIB,
        "image takes {} bytes",
        meta.blocks() * 512
    );
    assert!(!dir.join("upper/big").exists());
    let used = allocated_under(&d.root).saturating_sub(before);
    // Without the limit dd would have taken 64 MiB.
    assert!(used < 32 * MIB, "host lost {} MiB", used / MIB);
    // The mount and the loop device exist for the container only: no host mount, one
    // loop device on its image.
    let mounts = host_mounts_mentioning(&id);
    assert!(mounts.is_empty(), "host sees mounts: {mounts:#?}");
    let loops = loops_backed_under(&dir);
    assert_eq!(loops.len(), 1, "{loops:?}");

    // What was written before a stop is there after the next start.
    d.stop_container(&id, 1).await;
    d.wait_state(&id, "exited", Duration::from_secs(20)).await;
    d.start_container(&id).await;
    output_with(&d, &id, "found=written").await;
    assert_eq!(loops_backed_under(&dir).len(), 1);

    // Delete: no file, mount or loop device stays.
    d.remove_container(&id).await;
    d.assert_container_gone(&id);
    let gone = boxd_tests::wait_for_async(Duration::from_secs(10), async || {
        loops_backed_under(&dir).is_empty()
    })
    .await;
    assert!(
        gone,
        "loop devices left after delete: {:?}",
        loops_backed_under(&dir)
    );
    assert!(!image.exists());
}

#[tokio::test]
async fn root_disk_limit_below_the_minimum_is_refused() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (status, body) = d
        .api(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "cmd": ["true"], "resources": {"disk_bytes": MIB}})),
        )
        .await;
    assert_eq!(status.as_u16(), 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("disk_bytes"),
        "{body}"
    );
    // inspect shows a limit that was accepted.
    let id = d
        .create(json!({"image": "busybox", "cmd": ["true"], "resources": {"disk_bytes": 32 * MIB}}))
        .await;
    assert_eq!(
        d.inspect(&id).await["resources"]["disk_bytes"],
        json!(32 * MIB)
    );
}

#[tokio::test]
async fn root_chatty_container_log_stays_bounded_and_keeps_the_newest_lines() {
    require_root!();
    let mut d = TestDaemon::start().await;
    // Restart the daemon with a small bound: the flags go after the fixed ones.
    d.stop_daemon(StopHow::Term);
    let wrapper = "exec \"$0\" \"$@\" --log-max-bytes 65536 --log-max-files 3";
    d.spawn_with(&["/bin/sh".as_ref(), "-c".as_ref(), wrapper.as_ref()], &[])
        .await;
    d.import_busybox().await;
    let lines = 20_000;
    let script = format!(
        "i=0; while [ $i -lt {lines} ]; do echo line-$i-0123456789abcdef0123456789abcdef; i=$((i+1)); done"
    );
    let id = d
        .run(json!({"image": "busybox", "cmd": ["/bin/sh", "-c", script]}))
        .await;
    assert_eq!(d.wait(&id).await["exit_code"], 0);

    // About 2 MiB of records went out; at most three files of about 64 KiB stayed.
    let dir = d.root_dir_of(&id);
    let record_max = 200;
    let mut total = 0;
    for name in ["container.log", "container.log.1", "container.log.2"] {
        let len = std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .len();
        assert!(len <= 65536 + record_max, "{name} is {len} bytes");
        total += len;
    }
    assert!(total > 2 * 65536, "only {total} bytes kept");
    assert!(!dir.join("container.log.3").exists());

    // `logs` reads the rotated files in order and ends with the newest line.
    let out = d.stdout_of(&id).await;
    let numbers: Vec<u64> = out
        .lines()
        .map(|l| {
            l.strip_prefix("line-")
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    assert_eq!(numbers.last(), Some(&(lines - 1)));
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "lines out of order or missing"
    );
    assert!(numbers.len() > 1000, "{} lines", numbers.len());
    let (_, tail) = d
        .get_text(&format!("/v1/containers/{id}/logs?tail=2"))
        .await;
    assert_eq!(
        tail,
        format!(
            "line-{}-0123456789abcdef0123456789abcdef\nline-{}-0123456789abcdef0123456789abcdef\n",
            lines - 2,
            lines - 1
        )
    );
}
