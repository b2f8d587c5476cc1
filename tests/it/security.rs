//! A hacked app stays in its box: escape and abuse attempts from inside a default
//! container, each of which must fail and leave the host unchanged, plus the positives
//! (what the default set still allows) and the opt-outs.
//!
//! The image is busybox only, so each attempt is a busybox applet making the syscall in
//! question; calls busybox cannot make (keyctl, bpf, open_by_handle_at, ...) are
//! covered by the profile's unit tests (`runtime::seccomp`) together with the
//! `Seccomp: 2` check here, which proves the filter is installed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use boxd_tests::{boxctl_bin, boxd_bin, require_root, TestDaemon};
use serde_json::{json, Value};

/// Run a shell script in busybox with `extra` request fields; (exit code, stdout+stderr).
async fn sh(d: &TestDaemon, extra: Value, script: &str) -> (i64, String) {
    d.run_to_end(extra, &["/bin/sh", "-c", &format!("exec 2>&1\n{script}")])
        .await
}

/// The busybox binary of the imported image (a static one), on the host.
async fn fixture_busybox(d: &TestDaemon) -> std::path::PathBuf {
    let img = d.api_ok("GET", "/v1/images/busybox", None, 200).await;
    let id = img["id"].as_str().unwrap().to_string();
    let found = walk_for(&d.root, "busybox", &id);
    found.unwrap_or_else(|| panic!("no busybox binary of image {id} under {}", d.root.display()))
}

/// A file named `name` under `dir` whose path mentions `hint` (the image's layer).
fn walk_for(dir: &std::path::Path, name: &str, hint: &str) -> Option<std::path::PathBuf> {
    let hex = hint.trim_start_matches("sha256:");
    let mut stack = vec![dir.to_path_buf()];
    let mut any = None;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            let t = e.file_type().ok()?;
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() && p.file_name().is_some_and(|n| n == name) {
                if p.to_string_lossy().contains(hex) {
                    return Some(p);
                }
                any = Some(p);
            }
        }
    }
    any
}

/// The value of `key:` in a /proc/self/status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{status}"))
}

/// The default set as a CapEff mask: CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, FSETID 4, KILL 5,
/// SETGID 6, SETUID 7, SETPCAP 8, NET_BIND_SERVICE 10, SYS_CHROOT 18, SETFCAP 31.
const DEFAULT_CAPS: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 10)
    | (1 << 18)
    | (1 << 31);

#[tokio::test]
async fn root_status_shows_default_caps_seccomp_and_no_new_privs() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, status) = sh(&d, json!({}), "cat /proc/self/status").await;
    assert_eq!(code, 0, "{status}");
    let mask = format!("{DEFAULT_CAPS:016x}");
    assert_eq!(status_field(&status, "CapEff"), mask);
    assert_eq!(status_field(&status, "CapPrm"), mask);
    assert_eq!(status_field(&status, "CapBnd"), mask);
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");

    // A non-root user keeps the bounding set only.
    let (_, status) = sh(&d, json!({"user": "1000:1000"}), "cat /proc/self/status").await;
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapBnd"), mask);

    // inspect shows what is in force.
    let id = d
        .create(json!({"image": "busybox", "cmd": ["true"], "cap_add": ["net_raw"]}))
        .await;
    let sec = &d.inspect(&id).await["config"]["security"];
    assert_eq!(sec["seccomp"], "default", "{sec}");
    assert_eq!(sec["no_new_privileges"], true);
    let caps: Vec<&str> = sec["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        caps.contains(&"CAP_NET_RAW") && caps.contains(&"CAP_CHOWN"),
        "{caps:?}"
    );
    assert!(sec["masked_paths"]
        .as_array()
        .unwrap()
        .contains(&json!("/proc/kcore")));
    assert!(sec["devices"]
        .as_array()
        .unwrap()
        .contains(&json!("c 1:3 rwm")));
}

#[tokio::test]
async fn root_default_set_still_allows_chown_and_port_80() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = sh(
        &d,
        json!({}),
        "touch /f && chown 1234:5678 /f && stat -c '%u:%g' /f
         nc -l -p 80 >/dev/null & sleep 0.5; netstat -ltn | grep -c ':80 '",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["1234:5678", "1"], "{out}");
}

/// Each attempt prints `name:escaped` if the command succeeded, `name:blocked` if not.
const ESCAPES: &[(&str, &str)] = &[
    ("mount_proc", "mkdir -p /m1 && mount -t proc proc /m1"),
    ("mount_sysfs", "mkdir -p /m2 && mount -t sysfs sysfs /m2"),
    ("mount_cgroup", "mkdir -p /m3 && mount -t cgroup -o memory cg /m3"),
    ("mount_tmpfs", "mkdir -p /m4 && mount -t tmpfs t /m4"),
    ("remount_sys_rw", "mount -o remount,rw /sys"),
    ("sysrq_trigger", "echo h > /proc/sysrq-trigger"),
    // Writes back the value it read: harmless even if it got through.
    (
        "proc_sys_kernel",
        "v=$(cat /proc/sys/kernel/printk_ratelimit) && echo $v > /proc/sys/kernel/printk_ratelimit",
    ),
    ("release_agent", "echo /x > /sys/fs/cgroup/release_agent"),
    ("kcore", "head -c 1 /proc/kcore > /dev/null && test -s /proc/kcore"),
    ("insmod", "echo x > /m.ko && insmod /m.ko"),
    ("reboot", "reboot -f"),
    (
        "swapon",
        "dd if=/dev/zero of=/swap bs=1k count=64 2>/dev/null && mkswap /swap >/dev/null && swapon /swap",
    ),
    ("mknod_block", "mknod /sda b 8 0"),
    ("mknod_char_mem", "mknod /mem c 1 1"),
    ("userns_regain_caps", "unshare -U -r true"),
    ("new_mount_ns", "unshare -m true"),
    ("setns_host", "nsenter -t 1 -m -u true"),
    ("pivot_root", "mkdir -p /new/old && pivot_root /new /new/old"),
    // Sets the clock to what it already is: harmless even if it got through. busybox
    // date only warns (exit 0) when it cannot set the clock, so any warning counts.
    (
        "set_clock",
        "[ -z \"$(date -s \"$(date '+%Y-%m-%d %H:%M:%S')\" 2>&1 >/dev/null)\" ]",
    ),
    ("raw_socket_ping", "ping -c 1 -W 1 127.0.0.1 >/dev/null"),
    ("write_any_exe", "for e in /proc/[0-9]*/exe; do echo x >> $e && exit 0; done; exit 1"),
    ("sethostname", "hostname evil"),
];

#[tokio::test]
async fn root_escape_attempts_fail_and_leave_the_host_unchanged() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // A kernel without module support has no /proc/modules: then both reads are None.
    // Names only: a module's use count moves with whatever else runs (overlay's with
    // every container of a parallel test).
    let module_names = || {
        std::fs::read_to_string("/proc/modules").ok().map(|text| {
            text.lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect::<std::collections::BTreeSet<_>>()
        })
    };
    let modules_before = module_names();
    let swaps_before = std::fs::read_to_string("/proc/swaps").unwrap();
    let hostname_before = nix::unistd::gethostname().unwrap();
    let boxd_before = std::fs::read(boxd_bin()).unwrap();

    let mut script = String::new();
    for (name, cmd) in ESCAPES {
        script.push_str(&format!(
            "( {cmd} ) >/dev/null 2>&1 && echo {name}:escaped || echo {name}:blocked\n"
        ));
    }
    // The classic chroot breakout: climbing above a chroot, or above /, still finds
    // the container's root, never the host's (where this test's dir exists).
    let host_dir = d.dir.display().to_string();
    script.push_str(&format!(
        "mkdir -p /j && chroot /j /bin/true 2>/dev/null; cd /../../../..; \
         ( test -e {host_dir} || test -e /proc/1/root{host_dir} ) && echo chroot_breakout:escaped || echo chroot_breakout:blocked\n"
    ));
    let (code, out) = sh(&d, json!({}), &script).await;
    assert_eq!(code, 0, "{out}");
    let escaped: Vec<&str> = out.lines().filter(|l| l.ends_with(":escaped")).collect();
    assert!(escaped.is_empty(), "escapes succeeded: {escaped:?}\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with(":blocked")).count(),
        ESCAPES.len() + 1,
        "{out}"
    );

    // The kernel refused for the right reason: the seccomp filter and the missing
    // capabilities answer EPERM.
    let (_, out) = sh(&d, json!({}), "unshare -U -r true; unshare -m true").await;
    assert_eq!(
        out.matches("Operation not permitted").count(),
        2,
        "expected EPERM twice: {out}"
    );

    assert_eq!(
        module_names(),
        modules_before,
        "a module was loaded or removed"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/swaps").unwrap(),
        swaps_before
    );
    assert_eq!(nix::unistd::gethostname().unwrap(), hostname_before);
    assert!(
        std::fs::read(boxd_bin()).unwrap() == boxd_before,
        "the boxd binary changed"
    );
}

#[tokio::test]
async fn root_setuid_binary_gains_nothing_under_no_new_privs() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // A setuid-root busybox, made on the host and bind-mounted in; the app runs as 1000.
    let dir = d.dir.join("suid");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fixture_busybox(&d).await, dir.join("su")).unwrap();
    std::fs::set_permissions(dir.join("su"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let body = |nnp: bool| {
        json!({
            "user": "1000:1000",
            "mounts": [{"source": dir.display().to_string(), "target": "/x", "read_only": true}],
            "security_opt": [format!("no-new-privileges={nnp}")],
        })
    };
    // busybox picks its applet by its name: this is `su`, setuid root, which refuses
    // to run when exec did not make it root (busybox drops setuid for most other
    // applets itself, so they would prove nothing).
    let (_, out) = sh(&d, body(true), "/x/su -c true root </dev/null").await;
    assert!(out.contains("must be suid"), "{out}");
    // The control: without no_new_privs the same binary does become root.
    let (_, out) = sh(&d, body(false), "/x/su -c true root </dev/null").await;
    assert!(!out.contains("must be suid"), "{out}");
}

#[tokio::test]
async fn root_fork_bomb_stops_at_the_pids_limit() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (_, out) = sh(
        &d,
        json!({"resources": {"pids_max": 10}}),
        "n=0; for i in $(seq 30); do sleep 5 & n=$((n+1)); done; echo started $(jobs -p | wc -l); kill $(jobs -p) 2>/dev/null; true",
    )
    .await;
    assert!(
        out.contains("can't fork") || out.contains("Resource temporarily unavailable"),
        "{out}"
    );
}

#[tokio::test]
async fn root_opt_outs_and_custom_profiles() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;

    // cap_add SYS_ADMIN also re-opens mount in the default profile, as with Docker.
    let (code, out) = sh(
        &d,
        json!({"cap_add": ["CAP_SYS_ADMIN"]}),
        "mkdir -p /m && mount -t tmpfs t /m && echo mounted",
    )
    .await;
    assert_eq!((code, out.trim()), (0, "mounted"), "{out}");

    let (_, status) = sh(
        &d,
        json!({"seccomp": "unconfined"}),
        "cat /proc/self/status",
    )
    .await;
    assert_eq!(status_field(&status, "Seccomp"), "0");
    let (_, status) = sh(
        &d,
        json!({"security_opt": ["no-new-privileges=false"]}),
        "cat /proc/self/status",
    )
    .await;
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    let (_, status) = sh(&d, json!({"cap_drop": ["ALL"]}), "cat /proc/self/status").await;
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapBnd"), "0000000000000000");

    // A custom profile in Docker's JSON: everything allowed but mkdir.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    })
    .to_string();
    let (code, out) = sh(&d, json!({"seccomp": profile}), "mkdir /x; echo rc=$?").await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Permission denied") && out.contains("rc=1"),
        "{out}"
    );

    // Bad requests are 400s.
    for bad in [
        json!({"image": "busybox", "cmd": ["true"], "cap_add": ["CAP_FLY"]}),
        json!({"image": "busybox", "cmd": ["true"], "cap_drop": ["nope"]}),
        json!({"image": "busybox", "cmd": ["true"], "security_opt": ["apparmor=x"]}),
        json!({"image": "busybox", "cmd": ["true"], "seccomp": "{broken"}),
        json!({"image": "busybox", "cmd": ["true"], "ulimits": [{"name": "nofile", "soft": 2, "hard": 1}]}),
        json!({"image": "busybox", "cmd": ["true"], "tmpfs": {"/tmp": "remount"}}),
    ] {
        let (status, body) = d.api("POST", "/v1/containers", Some(bad.clone())).await;
        assert_eq!(status.as_u16(), 400, "{bad} -> {body}");
    }
}

#[tokio::test]
async fn root_read_only_root_with_tmpfs_and_ulimits() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = sh(
        &d,
        json!({
            "read_only_rootfs": true,
            "tmpfs": {"/tmp": "size=1m,mode=1777"},
            "ulimits": [{"name": "nofile", "soft": 100, "hard": 200}]
        }),
        "touch /x 2>/dev/null && echo root:rw || echo root:ro
         touch /tmp/x && echo tmp:rw
         dd if=/dev/zero of=/tmp/big bs=1k count=2048 2>/dev/null || echo tmp:full
         ulimit -n; ulimit -Hn",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["root:ro", "tmp:rw", "tmp:full", "100", "200"],
        "{out}"
    );
}

#[tokio::test]
async fn root_devices_are_allow_listed() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = sh(&d, json!({}), "ls /dev | tr '\\n' ' '").await;
    assert_eq!(code, 0, "{out}");
    let nodes: Vec<&str> = out.split_whitespace().collect();
    for n in &nodes {
        assert!(
            [
                "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
                "fd", "stdin", "stdout", "stderr", "console"
            ]
            .contains(n),
            "unexpected /dev/{n} in {nodes:?}"
        );
    }
    // Even with CAP_MKNOD, the device controller refuses a node not listed (v1 checks
    // mknod itself, the `m` access), while a listed one can be made and used.
    let (code, out) = sh(
        &d,
        json!({"cap_add": ["MKNOD"]}),
        "mknod /loop b 7 0 || echo loop:refused
         mknod /mem c 1 1 || echo mem:refused
         mknod /zero2 c 1 5 && head -c 1 /zero2 | wc -c",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("loop:refused") && out.contains("mem:refused"),
        "{out}"
    );
    assert_eq!(out.matches("Operation not permitted").count(), 2, "{out}");
    assert!(
        out.trim_end().ends_with('1'),
        "an allowed node works: {out}"
    );
}

/// Syscalls busybox cannot make, made live from inside a default container by the
/// host's python (its /usr and libraries bind-mounted read-only): the seccomp filter
/// answers EPERM to the keyring, bpf, perf_event_open, the "shocker" open_by_handle_at
/// and kexec; ptrace cannot reach a host process (pids outside the container's pid
/// namespace do not exist in it).
#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn root_keyctl_bpf_shocker_and_ptrace_of_the_host_fail_live() {
    require_root!();
    if !std::path::Path::new("/usr/bin/python3").exists() {
        boxd_tests::skip("no /usr/bin/python3 on the host (apt-get install python3)");
        return;
    }
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let host_pid = std::process::id();
    // x86_64 syscall numbers; arguments that would fail with EFAULT/EBADF/EINVAL if
    // the call got past the filter, so EPERM can only come from the filter.
    let probe = format!(
        r#"
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    print(name, "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()])
call("keyctl", 250, 0, -3, 0)
call("add_key", 248, 0, 0, 0, 0, -3)
call("request_key", 249, 0, 0, 0, -3)
call("bpf", 321, 5, 0, 0)
call("perf_event_open", 298, 0, 0, -1, -1, 0)
call("open_by_handle_at", 304, -100, 0, 0)
call("kexec_load", 246, 0, 0, 0, 0)
call("ptrace_host", 101, 16, {host_pid}, 0, 0)
"#
    );
    let mounts: Vec<_> = ["/usr", "/lib", "/lib64"]
        .iter()
        .filter(|p| std::path::Path::new(p).exists())
        .map(|p| json!({"source": p, "target": p, "read_only": true}))
        .collect();
    let (code, out) = d
        .run_to_end(
            json!({"mounts": mounts}),
            &["/usr/bin/python3", "-c", &probe],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let answers: std::collections::BTreeMap<&str, &str> =
        out.lines().filter_map(|l| l.split_once(' ')).collect();
    for call in [
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "open_by_handle_at",
        "kexec_load",
    ] {
        assert_eq!(answers.get(call), Some(&"EPERM"), "{call}: {out}");
    }
    assert!(
        matches!(answers.get("ptrace_host"), Some(&"ESRCH") | Some(&"EPERM")),
        "ptrace of a host process: {out}"
    );
    // Without the filter the keyring calls get through (to the kernel's own answer):
    // the EPERMs above are the filter's.
    let (_, open) = d
        .run_to_end(
            json!({"mounts": mounts, "seccomp": "unconfined"}),
            &["/usr/bin/python3", "-c", &probe],
        )
        .await;
    assert!(
        open.lines()
            .any(|l| l.starts_with("keyctl ") && l != "keyctl EPERM"),
        "unconfined: {open}"
    );
}

/// The daemon compiles each seccomp profile once and hands the program to the shim;
/// the filter in force is that program (the escape tests above run under it).
#[tokio::test]
async fn root_seccomp_program_is_compiled_by_the_daemon_and_loaded_by_the_shim() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let confined = d
        .run(json!({"image": "busybox", "cmd": ["sleep", "30"]}))
        .await;
    let unconfined = d
        .run(json!({"image": "busybox", "cmd": ["sleep", "30"], "seccomp": "unconfined"}))
        .await;
    let bpf = std::fs::read(d.state_dir_of(&confined).join("seccomp.bpf")).unwrap();
    assert!(!bpf.is_empty() && bpf.len() % 8 == 0, "{} bytes", bpf.len());
    assert!(!d.state_dir_of(&unconfined).join("seccomp.bpf").exists());
    let status = |id: &str| {
        let pid = std::fs::read_to_string(d.state_dir_of(id).join("container.pid")).unwrap();
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap()
    };
    assert!(status(&confined).contains("Seccomp:\t2"));
    assert!(status(&unconfined).contains("Seccomp:\t0"));
    // The same profile again: the same program.
    let again = d
        .run(json!({"image": "busybox", "cmd": ["sleep", "30"]}))
        .await;
    assert_eq!(
        std::fs::read(d.state_dir_of(&again).join("seccomp.bpf")).unwrap(),
        bpf
    );
}

#[tokio::test]
async fn root_shim_runs_from_a_sealed_memfd() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "cmd": ["sleep", "30"]}))
        .await;
    let shim_pid: i32 = std::fs::read_to_string(d.state_dir_of(&id).join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let exe = std::fs::read_link(format!("/proc/{shim_pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:boxd-shim"),
        "shim runs from {exe:?}"
    );
    // Not even host root can write through it: the memfd is sealed.
    let write = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/{shim_pid}/exe"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
    assert!(write.is_err(), "wrote into the shim's executable");
    d.remove_container(&id).await;
}

#[tokio::test]
async fn root_socket_refuses_a_user_outside_its_group() {
    require_root!();
    let d = TestDaemon::start().await;
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.uid(), 0);
    // Let anyone reach the socket file, so only its own mode decides.
    std::fs::set_permissions(&d.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let version = |gid: u32| {
        Command::new(boxctl_bin())
            .args(["--socket", &d.socket.display().to_string(), "version"])
            .uid(65534)
            .gid(gid)
            .output()
            .unwrap()
    };
    let out = version(65534);
    assert!(!out.status.success(), "a non-member reached the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.to_lowercase().contains("permission denied"),
        "{stderr}"
    );
    // The same uid in the socket's group gets in: it is the mode, not something else.
    let out = version(meta.gid());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
