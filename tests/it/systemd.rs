//! `systemd/boxd.service`: accepted by `systemd-analyze verify`, and keeps the settings
//! that let containers outlive a service restart.

use std::process::Command;

use boxd_tests::{boxd_bin, skip, workspace_root};

fn unit_text() -> String {
    let path = workspace_root().join("systemd/boxd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `[Service]` settings as `key=value` lines, comments dropped.
fn settings(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| l.replace(' ', ""))
        .collect()
}

#[test]
fn systemd_unit_keeps_containers_alive_across_restarts() {
    let s = settings(&unit_text());
    for want in [
        "Type=simple",
        "ExecStart=/usr/local/bin/boxd",
        // The daemon manages its containers' cgroups below its own.
        "Delegate=yes",
        // Only the daemon is signalled on stop: containers keep running.
        "KillMode=process",
        "Restart=on-failure",
        "After=local-fs.target",
    ] {
        assert!(s.iter().any(|l| l == want), "boxd.service lacks {want}");
    }
}

#[test]
fn systemd_unit_passes_verify() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        skip("systemd-analyze not found (apt-get install systemd)");
        return;
    };
    assert!(out.status.success(), "systemd-analyze --version failed");
    // verify checks that ExecStart exists and is executable: point it at the binary
    // just built instead of the installed path.
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("boxd.service");
    let text: String = unit_text()
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("ExecStart=") {
                format!("ExecStart={}\n", boxd_bin().display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&unit, text).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("boxd.service"),
        "systemd-analyze verify rejected boxd.service ({}):\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}
