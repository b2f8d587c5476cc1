//! The README's set-up and test commands work from a clone of this repository alone:
//! they name only files in it (no `../shared` or anything else beside the checkout), and
//! the steps they run besides cargo (the install check, the test images) and the pull
//! tests' local registry work in a fresh clone that has nothing beside it.
//!
//! The clone is `git clone --no-hardlinks file://<workspace>` of the committed HEAD, so
//! uncommitted changes are not seen. The workspace is not built again there (that is
//! what CI's own build is for, and twice would be too slow). And step 1's first command
//! stops with what to install on a machine that cannot build boxd.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use boxd_tests::{require, require_root, tool, workspace_root, Registry};

/// The registry's port; fixed and unique to this file.
const PORT: u16 = 5074;

/// The fixtures the tests read (`fixtures()` and the daemon's image tests).
const FIXTURES: &[&str] = &[
    "busybox-rootfs.tar.gz",
    "busybox-oci/index.json",
    "busybox-docker-archive.tar",
    "layered-oci/index.json",
    "layered-docker-archive.tar",
    "layered-top-layer.tar",
    "multiarch-oci/index.json",
    "evil-rootfs.tar",
    "evil-oci/index.json",
    "digests.json",
];

/// The shell command of the README's fenced `sh` block that follows the line starting
/// with `heading` (the set-up steps are one command each).
fn readme_command(readme: &str, heading: &str) -> String {
    let rest = readme
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip_while(|l| l.trim() != "```sh")
        .skip(1);
    let command: Vec<&str> = rest.take_while(|l| l.trim() != "```").collect();
    assert!(
        !command.is_empty(),
        "README.md: no ```sh block after {heading:?}"
    );
    command.join("\n")
}

/// `bash -c command` in `dir`, asserting it succeeds; its combined output.
fn run_in(dir: &Path, command: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", command])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{command:?} in {} failed ({}):\n{text}",
        dir.display(),
        out.status
    );
    text
}

/// `GET /v2/` on 127.0.0.1:`port`: the status line and headers.
fn get_v2(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn root_readme_image_steps_work_from_a_clone() {
    // Root: the scripts install missing Debian packages (and the other registry tests
    // are root tests too).
    require_root!();
    require!(tool("git").is_some(), "git is not installed");
    let root = workspace_root();
    require!(
        root.join(".git").exists(),
        "{} is not a git checkout",
        root.display()
    );

    // `bxd-` puts a leaked directory in CI's leftover check.
    let tmp = tempfile::Builder::new()
        .prefix("bxd-clone-")
        .tempdir()
        .expect("temp dir");
    let clone = tmp.path().join("boxd");
    let out = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(format!("file://{}", root.display()))
        .arg(&clone)
        .stdin(Stdio::null())
        .output()
        .expect("run git clone");
    assert!(
        out.status.success(),
        "git clone failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !tmp.path().join("shared").exists(),
        "the clone has a ../shared"
    );

    let readme = fs::read_to_string(clone.join("README.md")).expect("README.md");
    let setup = readme_command(&readme, "**1. Build and run the daemon**");
    let test = readme_command(&readme, "**2. Run the tests**");
    for command in [&setup, &test] {
        assert!(
            !command.contains("../"),
            "a README command names a file outside the repository: {command}"
        );
        // Every step but cargo and the daemon it built is a script of the repository:
        // run it in the clone (the install step with --check: its checks, no installs).
        for step in command.split("&&").map(str::trim) {
            let program = step.split_whitespace().next().unwrap_or_default();
            if program == "cargo" || program.starts_with("./target/") || step.contains("cargo ") {
                continue;
            }
            assert!(
                clone.join(program).is_file(),
                "README step {step:?}: {program} is not a file of the repository"
            );
            let step = if program == "scripts/install-deps.sh" {
                format!("{program} --check")
            } else {
                step.to_owned()
            };
            run_in(&clone, &step);
        }
    }
    for f in FIXTURES {
        assert!(
            clone.join("target/fixtures").join(f).is_file(),
            "the README's test step made no target/fixtures/{f} in the clone"
        );
    }

    // The pull tests' registry, from the clone's scripts (which build their own images).
    let data = tmp.path().join("registry");
    let reg = Registry::start_from(&clone.join("tests/images"), &data, PORT);
    let answer = get_v2(reg.port()).expect("GET /v2/ on the registry");
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "GET /v2/: {answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "GET /v2/ is not a registry's answer: {answer}"
    );
    assert!(
        !reg.digest_of("test/busybox:latest").is_empty(),
        "nothing pushed"
    );
    let pid: u32 = fs::read_to_string(data.join("registry.pid"))
        .expect("registry.pid")
        .trim()
        .parse()
        .expect("a pid in registry.pid");

    // Stopped by its last user, then nothing answers and the process is gone (or a
    // zombie its new parent has yet to reap).
    drop(reg);
    assert!(!data.join("registry.pid").exists(), "registry.pid left");
    assert!(
        get_v2(PORT).is_err(),
        "the registry still answers after stop"
    );
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(") ").next().unwrap_or_default();
    assert!(
        state.is_empty() || state.starts_with('Z') || state.starts_with('X'),
        "registry pid {pid} still runs: {state}"
    );

    let path = tmp.path().to_path_buf();
    tmp.close().expect("remove the clone");
    assert!(!path.exists());
}

/// Step 1 on a machine without a C compiler and with a rustc older than `rust-version`
/// (Debian 12's own) stops before installing anything and says what to install.
#[test]
fn install_check_names_what_is_missing() {
    let tmp = tempfile::Builder::new()
        .prefix("bxd-deps-")
        .tempdir()
        .expect("temp dir");
    let old_rustc = tmp.path().join("rustc");
    fs::write(&old_rustc, "#!/bin/sh\necho 'rustc 1.63.0'\n").expect("write fake rustc");
    fs::set_permissions(
        &old_rustc,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod fake rustc");
    // CC and RUSTC stand in for the host's, as cc-rs and cargo take them.
    let out = Command::new(workspace_root().join("scripts/install-deps.sh"))
        .arg("--check")
        .env("CC", tmp.path().join("no-such-cc"))
        .env("RUSTC", &old_rustc)
        .stdin(Stdio::null())
        .output()
        .expect("run install-deps.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("no C compiler") && stderr.contains("apt-get install -y gcc"),
        "no compiler hint: {stderr}"
    );
    assert!(
        stderr.contains("1.63.0") && stderr.contains("rustup") && stderr.contains("rustc-web"),
        "no toolchain hint: {stderr}"
    );
}
