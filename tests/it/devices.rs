//! The device allow-list holds on either hierarchy: `devices.deny`/`devices.allow` on
//! cgroup v1, the eBPF device program on v2. A container may make and open only the
//! listed nodes, even with CAP_MKNOD and even for nodes a bind mount brings in.

use std::path::{Path, PathBuf};

use boxd_tests::{cgroup_v2_unified, require_root, TestDaemon};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use serde_json::json;

/// Run a shell script in busybox with `extra` request fields; (exit code, stdout+stderr).
async fn sh(d: &TestDaemon, extra: serde_json::Value, script: &str) -> (i64, String) {
    d.run_to_end(extra, &["/bin/sh", "-c", &format!("exec 2>&1\n{script}")])
        .await
}

/// A fresh tmpfs (device nodes allowed) at a new directory; unmounted on drop.
struct DevTmpfs(PathBuf);

impl DevTmpfs {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir(dir).unwrap();
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID,
            Some("size=64k,mode=0755"),
        )
        .expect("mount a tmpfs");
        Self(dir.to_owned())
    }
}

impl Drop for DevTmpfs {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.0, MntFlags::MNT_DETACH) {
            eprintln!("cleanup: unmount {}: {e}", self.0.display());
        }
    }
}

fn hierarchy() -> &'static str {
    if cgroup_v2_unified() {
        "cgroup v2 (eBPF device program)"
    } else {
        "cgroup v1 (devices.deny/devices.allow)"
    }
}

#[tokio::test]
async fn root_mknod_capability_does_not_reach_unlisted_devices() {
    require_root!();
    eprintln!(
        "root_mknod_capability_does_not_reach_unlisted_devices: {}",
        hierarchy()
    );
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // CAP_MKNOD lets the syscall through; the device filter still refuses the node
    // (its `m` access), while a listed one can be made and used.
    let (code, out) = sh(
        &d,
        json!({"cap_add": ["MKNOD"]}),
        "t() { n=$1; shift; if \"$@\" >/dev/null; then echo $n:ok; else echo $n:refused; fi; }
         t mknod-sda mknod /sda b 8 0
         t mknod-mem mknod /mem c 1 1
         t mknod-kmsg mknod /kmsg c 1 11
         t mknod-zero mknod /zero2 c 1 5
         t read-zero head -c 1 /zero2",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let verdicts: Vec<&str> = out.lines().filter(|l| l.contains(':')).collect();
    let refused = out.matches("Operation not permitted").count();
    assert!(verdicts.contains(&"mknod-sda:refused"), "{out}");
    assert!(verdicts.contains(&"mknod-mem:refused"), "{out}");
    assert!(verdicts.contains(&"mknod-kmsg:refused"), "{out}");
    assert!(verdicts.contains(&"mknod-zero:ok"), "{out}");
    assert!(verdicts.contains(&"read-zero:ok"), "{out}");
    assert_eq!(refused, 3, "{out}");
}

#[tokio::test]
async fn root_bind_mounted_device_nodes_cannot_be_opened_unless_listed() {
    require_root!();
    eprintln!(
        "root_bind_mounted_device_nodes_cannot_be_opened_unless_listed: {}",
        hierarchy()
    );
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // Nodes made on the host and bind-mounted in: a user bind mount is not `nodev`, so
    // only the device filter stands between the app and them. `null` is the control: it
    // proves the mount lets devices work. They sit on a tmpfs of the test's own, since
    // /tmp (where the daemon's dir is) may be mounted nodev, and a bind keeps that.
    let mnt = DevTmpfs::new(&d.dir.join("devs"));
    let dir = mnt.0.clone();
    for (name, kind, major, minor) in [
        ("null", SFlag::S_IFCHR, 1, 3),
        ("mem", SFlag::S_IFCHR, 1, 1),
        ("port", SFlag::S_IFCHR, 1, 4),
        ("loop0", SFlag::S_IFBLK, 7, 0),
        ("sda", SFlag::S_IFBLK, 8, 0),
    ] {
        mknod(
            &dir.join(name),
            kind,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .unwrap();
    }
    let (code, out) = sh(
        &d,
        json!({
            "cap_add": ["MKNOD"],
            "mounts": [{"source": dir.display().to_string(), "target": "/hostdev"}],
        }),
        "t() { n=$1; shift; if \"$@\" >/dev/null; then echo $n:ok; else echo $n:refused; fi; }
         t read-null head -c 1 /hostdev/null
         t write-null sh -c 'echo x > /hostdev/null'
         t read-mem head -c 1 /hostdev/mem
         t write-port sh -c 'echo x > /hostdev/port'
         t read-loop0 head -c 1 /hostdev/loop0
         t read-sda head -c 1 /hostdev/sda",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let verdicts: Vec<&str> = out.lines().filter(|l| l.contains(':')).collect();
    for want in [
        "read-null:ok",
        "write-null:ok",
        "read-mem:refused",
        "write-port:refused",
        "read-loop0:refused",
        "read-sda:refused",
    ] {
        assert!(verdicts.contains(&want), "{want}: {out}");
    }
    // EPERM from the filter, not ENXIO or EACCES for some other reason.
    assert_eq!(out.matches("Operation not permitted").count(), 4, "{out}");
}
