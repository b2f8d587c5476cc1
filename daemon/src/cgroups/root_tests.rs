//! Root-only tests against the real kernel, on whichever hierarchy the machine has.
//!
//! Each test uses its own parent (`boxd-test-<random>`) and removes every group, process
//! and the parent itself in `Drop` guards, so a failing assertion leaks nothing.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::runtime::spec::Resources;
use boxd_testutil::wait_for_value;

use super::{detect, CgroupManager, CgroupVersion, ContainerCgroup};

const MIB: u64 = 1024 * 1024;

/// A manager on a unique parent; on drop removes every child group and the parent.
struct Parent {
    mgr: Box<dyn CgroupManager>,
}

impl Parent {
    fn new() -> Self {
        let name = format!("boxd-test-{:016x}", rand::random::<u64>());
        let mgr = detect(Some(&name)).expect("detect the cgroup hierarchy");
        eprintln!("cgroup {} under {name}", mgr.version().as_str());
        Self { mgr }
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        if let Ok(ids) = self.mgr.list() {
            for id in ids {
                if let Err(e) = self.mgr.remove(&id) {
                    eprintln!("cleanup: remove {id}: {e:?}");
                }
            }
        }
        if let Err(e) = self.mgr.remove_parent() {
            eprintln!("cleanup: remove parent: {e:?}");
        }
    }
}

/// A child process killed and reaped on drop.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(cmd: &mut Command) -> Self {
        Self(Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn"),
        ))
    }

    fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Waits (bounded) for the exit.
    fn wait(mut self, limit: Duration) -> ExitStatus {
        let child = self.0.as_mut().expect("child");
        let status = wait_for_value(limit, || child.try_wait().expect("try_wait"))
            .unwrap_or_else(|| panic!("child did not exit in {limit:?}"));
        self.0 = None;
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A shell that joins every procs file, then runs `script`.
fn joined_shell(cg: &ContainerCgroup, script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "for f in \"$@\"; do echo $$ > \"$f\" || exit 99; done; {script}"
        ))
        .arg("sh")
        .args(&cg.join_files);
    cmd
}

/// The file `name` in whichever of the group's directories has it.
fn find(cg: &ContainerCgroup, name: &str) -> Option<PathBuf> {
    cg.join_files
        .iter()
        .filter_map(|p| p.parent())
        .map(|d| d.join(name))
        .find(|f| f.exists())
}

fn read(cg: &ContainerCgroup, name: &str) -> String {
    let file = find(cg, name).unwrap_or_else(|| panic!("{name} not found in {:?}", cg.join_files));
    fs::read_to_string(&file).unwrap().trim().to_owned()
}

fn group_dirs(cg: &ContainerCgroup) -> Vec<&Path> {
    cg.join_files.iter().filter_map(|p| p.parent()).collect()
}

#[test]
fn root_create_applies_every_limit() {
    boxd_testutil::require_root!();
    let p = Parent::new();
    let r = Resources {
        memory_bytes: Some(64 * MIB),
        memory_swap_bytes: Some(128 * MIB as i64),
        memory_swappiness: Some(10),
        pids_max: Some(50),
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(100_000),
        cpu_shares: Some(512),
        ..Resources::default()
    };
    let cg = p.mgr.create("c1", &r).unwrap();
    assert!(
        cg.join_files.iter().all(|f| f.exists()),
        "{:?}",
        cg.join_files
    );
    assert_eq!(read(&cg, "pids.max"), "50");
    match p.mgr.version() {
        CgroupVersion::V1 => {
            for c in ["memory", "pids", "cpu"] {
                assert!(p.mgr.controllers().iter().any(|x| x == c), "{c}");
            }
            assert_eq!(read(&cg, "memory.limit_in_bytes"), (64 * MIB).to_string());
            if find(&cg, "memory.memsw.limit_in_bytes").is_some() {
                assert_eq!(
                    read(&cg, "memory.memsw.limit_in_bytes"),
                    (128 * MIB).to_string()
                );
                assert!(cg.warnings.is_empty(), "{:?}", cg.warnings);
            } else {
                assert!(cg.warnings[0].contains("swap"), "{:?}", cg.warnings);
            }
            assert_eq!(read(&cg, "memory.swappiness"), "10");
            assert_eq!(read(&cg, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cg, "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&cg, "cpu.shares"), "512");
            if find(&cg, "cpuset.cpus").is_some() {
                // Without it no task could join.
                assert!(!read(&cg, "cpuset.cpus").is_empty());
                assert!(!read(&cg, "cpuset.mems").is_empty());
            }
            assert!(cg
                .oom_counter
                .as_ref()
                .unwrap()
                .path
                .ends_with("memory.oom_control"));
        }
        CgroupVersion::V2 => {
            assert_eq!(read(&cg, "memory.max"), (64 * MIB).to_string());
            if find(&cg, "memory.swap.max").is_some() {
                assert_eq!(read(&cg, "memory.swap.max"), (64 * MIB).to_string());
            }
            assert_eq!(read(&cg, "cpu.max"), "50000 100000");
            assert_eq!(read(&cg, "cpu.weight"), "20");
            assert!(
                cg.warnings.iter().any(|w| w.contains("swappiness")),
                "{:?}",
                cg.warnings
            );
            let parent_dir = group_dirs(&cg)[0].parent().unwrap();
            let enabled = fs::read_to_string(parent_dir.join("cgroup.subtree_control")).unwrap();
            for c in ["cpu", "memory", "pids"] {
                assert!(enabled.split_whitespace().any(|x| x == c), "{enabled}");
            }
        }
    }

    // Reusing the group: raising then lowering memory must respect memsw >= limit.
    let raised = Resources {
        memory_bytes: Some(256 * MIB),
        memory_swap_bytes: Some(512 * MIB as i64),
        ..Resources::default()
    };
    let cg = p.mgr.create("c1", &raised).unwrap();
    let lowered = Resources {
        memory_bytes: Some(32 * MIB),
        memory_swap_bytes: Some(32 * MIB as i64),
        ..Resources::default()
    };
    let limit_file = match p.mgr.version() {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    assert_eq!(read(&cg, limit_file), (256 * MIB).to_string());
    p.mgr.create("c1", &lowered).unwrap();
    assert_eq!(read(&cg, limit_file), (32 * MIB).to_string());
    assert_eq!(p.mgr.list().unwrap(), vec!["c1"]);
}

#[test]
fn root_remove_kills_every_process_and_leaves_no_dir() {
    boxd_testutil::require_root!();
    let p = Parent::new();
    let cg = p
        .mgr
        .create(
            "c1",
            &Resources {
                pids_max: Some(20),
                ..Resources::default()
            },
        )
        .unwrap();
    // One process joined from outside, as the brief for the shim does it...
    let sleeper = Proc::spawn(Command::new("sleep").arg("100"));
    for procs in &cg.join_files {
        fs::write(procs, sleeper.pid().to_string()).unwrap();
    }
    // ...and one that joins itself and forks.
    let forker = Proc::spawn(&mut joined_shell(&cg, "sleep 100 & exec sleep 100"));
    let pids = wait_for_value(Duration::from_secs(20), || {
        let pids = p.mgr.pids("c1").unwrap();
        (pids.len() == 3).then_some(pids)
    })
    .expect("three processes in the group");
    assert!(pids.contains(&sleeper.pid()) && pids.contains(&forker.pid()));

    p.mgr.remove("c1").unwrap();

    assert_eq!(sleeper.wait(Duration::from_secs(20)).signal(), Some(9));
    assert_eq!(forker.wait(Duration::from_secs(20)).signal(), Some(9));
    assert!(!p.mgr.exists("c1"));
    for dir in group_dirs(&cg) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert_eq!(p.mgr.list().unwrap(), Vec::<String>::new());
    p.mgr.remove("c1").unwrap();
}

#[test]
fn root_oom_kill_count_counts_a_kill() {
    boxd_testutil::require_root!();
    let p = Parent::new();
    let r = Resources {
        memory_bytes: Some(16 * MIB),
        memory_swap_bytes: Some(16 * MIB as i64),
        ..Resources::default()
    };
    let cg = p.mgr.create("oom", &r).unwrap();
    assert_eq!(p.mgr.oom_kill_count("oom").unwrap(), 0);
    let counter = cg.oom_counter.clone().unwrap();
    assert_eq!(
        super::files::read_counter(&counter.path, &counter.key).unwrap(),
        0
    );

    let hog = if Path::new("/usr/bin/python3").exists() {
        "exec /usr/bin/python3 -c 'bytearray(200 << 20)'"
    } else {
        "exec /bin/busybox sh -c 'x=$(head -c 100000000 /dev/zero | tr \"\\0\" a)'"
    };
    // Python starts in seconds under the v2 VM's emulated CPU; leave a wide margin.
    let status = Proc::spawn(&mut joined_shell(&cg, hog)).wait(Duration::from_secs(300));
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert_eq!(p.mgr.oom_kill_count("oom").unwrap(), 1);
    assert_eq!(
        super::files::read_counter(&counter.path, &counter.key).unwrap(),
        1
    );
}

#[test]
fn root_list_sees_groups_and_remove_is_idempotent() {
    boxd_testutil::require_root!();
    let p = Parent::new();
    assert_eq!(p.mgr.list().unwrap(), Vec::<String>::new());
    p.mgr.remove("never-created").unwrap();
    let a = p.mgr.create("a", &Resources::default()).unwrap();
    p.mgr.create("b", &Resources::default()).unwrap();
    assert_eq!(p.mgr.list().unwrap(), vec!["a", "b"]);
    assert!(p.mgr.exists("a"));
    assert_eq!(p.mgr.pids("a").unwrap(), Vec::<i32>::new());
    assert!(
        p.mgr.remove_parent().is_err(),
        "parent removed with children"
    );
    p.mgr.remove("a").unwrap();
    p.mgr.remove("a").unwrap();
    assert_eq!(p.mgr.list().unwrap(), vec!["b"]);
    p.mgr.remove("b").unwrap();
    p.mgr.remove_parent().unwrap();
    for dir in group_dirs(&a) {
        assert!(
            !dir.parent().unwrap().exists(),
            "parent of {}",
            dir.display()
        );
    }
    p.mgr.remove_parent().unwrap();
}

#[test]
fn root_device_filter_allows_only_listed_nodes() {
    let test = "root_device_filter_allows_only_listed_nodes";
    boxd_testutil::require_root!();
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};

    let p = Parent::new();
    let cg = p.mgr.create("dev", &Resources::default()).unwrap();
    let dir = group_dirs(&cg)[0].to_owned();
    match p.mgr.version() {
        CgroupVersion::V1 => {
            eprintln!("{test}: cgroup v1, so devices.deny/devices.allow (no eBPF program)");
            let devices = group_dirs(&cg)
                .into_iter()
                .map(|d| d.join("devices.list"))
                .find(|f| f.exists())
                .expect("a devices group");
            let list = fs::read_to_string(devices).unwrap();
            assert!(!list.contains("a *:* rwm"), "{list}");
            assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
        }
        CgroupVersion::V2 => {
            eprintln!("{test}: cgroup v2, so the eBPF device program");
            let first = boxd_shim::bpf::device_program_ids(&dir).unwrap();
            assert_eq!(first.len(), 1, "{first:?}");
            // A reused group gets a fresh program in place of the old one, not a second.
            p.mgr.create("dev", &Resources::default()).unwrap();
            let again = boxd_shim::bpf::device_program_ids(&dir).unwrap();
            assert_eq!(again.len(), 1, "{again:?}");
            assert_ne!(again, first);
        }
    }

    // Nodes made outside the group (as a bind mount would bring them in); the child in
    // the group may open only the listed one, and make only listed ones. They live on a
    // tmpfs of the test's own, since /tmp may be mounted nodev (it is in the v2 VM).
    let tmp = DevTmpfs::new();
    let node = |name: &str, kind: SFlag, major: u64, minor: u64| {
        mknod(
            &tmp.path().join(name),
            kind,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .unwrap();
    };
    node("null", SFlag::S_IFCHR, 1, 3);
    node("mem", SFlag::S_IFCHR, 1, 1);
    node("loop", SFlag::S_IFBLK, 7, 0);
    let d = tmp.path().display();
    let script = format!(
        "t() {{ n=$1; shift; if \"$@\" >/dev/null; then echo $n:ok; else echo $n:failed; fi; }}
         t read-null head -c 1 {d}/null
         t write-null sh -c 'echo x > {d}/null'
         t read-mem head -c 1 {d}/mem
         t read-loop head -c 1 {d}/loop
         t mknod-zero mknod {d}/zero c 1 5
         t mknod-kmem mknod {d}/kmem c 1 2
         t mknod-sda mknod {d}/sda b 8 0"
    );
    let out = joined_shell(&cg, &script)
        .stdin(Stdio::null())
        .output()
        .expect("run the shell");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stdout} {stderr}", out.status);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "read-null:ok",
            "write-null:ok",
            "read-mem:failed",
            "read-loop:failed",
            "mknod-zero:ok",
            "mknod-kmem:failed",
            "mknod-sda:failed",
        ],
        "{stderr}"
    );
    // Refused by the device filter, not for another reason (a nodev mount, ENXIO).
    assert_eq!(
        stderr.matches("Operation not permitted").count(),
        4,
        "{stderr}"
    );
    // Outside the group the same node opens, unless the kernel lacks /dev/mem (ENXIO)
    // or a filter above this process refuses it; the EPERMs above still came first.
    if let Err(e) = fs::File::open(tmp.path().join("mem")) {
        eprintln!("{test}: 1:1 does not open outside the group either: {e}");
    }
}

/// A temp dir with a fresh tmpfs (device nodes allowed) on it; unmounted and removed on
/// drop.
struct DevTmpfs(Option<tempfile::TempDir>);

impl DevTmpfs {
    fn new() -> Self {
        use nix::mount::{mount, MsFlags};
        let dir = tempfile::tempdir().unwrap();
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID,
            Some("size=64k,mode=0755"),
        )
        .expect("mount a tmpfs");
        Self(Some(dir))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("mounted").path()
    }
}

impl Drop for DevTmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if let Err(e) = nix::mount::umount2(dir.path(), nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("cleanup: unmount {}: {e}", dir.path().display());
            }
        }
    }
}
