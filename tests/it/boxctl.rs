//! `boxctl` against a real daemon, as a user types it.

use std::time::Duration;

use boxd_tests::{assert_no_leaks, boxctl, require, require_root, tool, TestDaemon};
use serde_json::json;

#[tokio::test]
async fn root_boxctl_run_rm_prints_hello() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out, err) = boxctl(&d, &["run", "--rm", "busybox", "echo", "hello"]).await;
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, "hello\n", "stderr: {err}");
    // --rm removed the container.
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    assert_eq!(list, json!([]));
    // Detached, the daemon removes it after its exit (no boxctl is left to).
    let (code, out, err) = boxctl(
        &d,
        &[
            "run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "1",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out} {err}");
    assert_eq!(d.inspect("gone").await["config"]["auto_remove"], true);
    assert!(
        boxd_tests::wait_for_async(std::time::Duration::from_secs(20), async || {
            d.api("GET", "/v1/containers/gone", None).await.0 == 404
        })
        .await,
        "run -d --rm left the container"
    );
}

#[tokio::test]
async fn root_boxctl_run_exits_with_the_containers_status() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, _, err) = boxctl(&d, &["run", "busybox", "sh", "-c", "exit 7"]).await;
    assert_eq!(code, Some(7), "stderr: {err}");
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    assert_eq!(list[0]["exit_code"], 7, "{list}");
    // `logs --json`: one JSON line per entry, with its stream.
    let (code, _, err) = boxctl(
        &d,
        &[
            "run",
            "--name",
            "talker",
            "busybox",
            "sh",
            "-c",
            "echo out; sleep 0.2; echo err >&2",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {err}");
    let (code, out, err) = boxctl(&d, &["--json", "logs", "talker"]).await;
    assert_eq!(code, Some(0), "stderr: {err}");
    let entries: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(entries.len(), 2, "{out}");
    assert_eq!(
        (&entries[0]["stream"], &entries[0]["line"]),
        (&json!("stdout"), &json!("out\n"))
    );
    assert_eq!(
        (&entries[1]["stream"], &entries[1]["line"]),
        (&json!("stderr"), &json!("err\n"))
    );
    // A command that is not found is 127, one that cannot be run 126, as docker run;
    // boxctl's and the daemon's own failures stay 125.
    let (code, _, err) = boxctl(&d, &["run", "--rm", "busybox", "no-such-command"]).await;
    assert_eq!(code, Some(127), "stderr: {err}");
    let (code, _, err) = boxctl(&d, &["run", "--rm", "busybox", "/etc/passwd"]).await;
    assert_eq!(code, Some(126), "stderr: {err}");
    let (code, _, err) = boxctl(&d, &["run", "--rm", "--pull", "never", "nosuchimage"]).await;
    assert_eq!(code, Some(125), "stderr: {err}");
}

#[tokio::test]
async fn root_boxctl_reports_errors_in_one_line_and_fails() {
    require_root!();
    let d = TestDaemon::start().await;
    let (code, out, err) = boxctl(&d, &["inspect", "no-such-container"]).await;
    assert_ne!(code, Some(0), "stdout: {out}");
    assert!(!err.trim().is_empty(), "no error message");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "error is not one line:\n{err}"
    );
}

#[tokio::test]
async fn root_boxctl_verbs_take_several_ids_and_go_on_after_a_failure() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    for name in ["one", "two"] {
        let body = json!({"image": "busybox", "name": name, "cmd": ["sleep", "100"]});
        d.api_ok("POST", "/v1/containers", Some(body), 201).await;
    }
    let lines = |s: &str| s.lines().map(str::to_owned).collect::<Vec<_>>();

    let (code, out, err) = boxctl(&d, &["start", "one", "nope", "two"]).await;
    assert_eq!(code, Some(1), "a failed id fails the command: {err}");
    assert_eq!(lines(&out), ["one", "two"], "the others still ran");
    assert!(err.contains("failed to start nope"), "{err}");
    for name in ["one", "two"] {
        assert_eq!(d.inspect(name).await["state"], "running");
    }
    // Starting one that runs is no failure, as `docker start`.
    let (code, out, err) = boxctl(&d, &["start", "one"]).await;
    assert_eq!(
        (code, lines(&out)),
        (Some(0), vec!["one".to_owned()]),
        "{err}"
    );
    // Removing one that runs says what to type.
    let (code, _, err) = boxctl(&d, &["rm", "one"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("boxctl rm -f"), "{err}");

    let (code, out, err) = boxctl(&d, &["--json", "stop", "-t", "1", "one"]).await;
    assert_eq!(
        (code, lines(&out)),
        (Some(0), vec![r#"{"id":"one"}"#.to_owned()]),
        "--json is one line per id: {err}"
    );
    // restart: a stopped one is started; a running one stopped and started again.
    let (code, out, err) = boxctl(&d, &["restart", "-t", "1", "one"]).await;
    assert_eq!(
        (code, lines(&out)),
        (Some(0), vec!["one".to_owned()]),
        "{err}"
    );
    let first = d.inspect("one").await;
    assert_eq!(first["state"], "running", "{first}");
    d.api_ok("POST", "/v1/containers/one/restart?timeout=1", None, 204)
        .await;
    let second = d.inspect("one").await;
    assert_eq!(second["state"], "running", "{second}");
    assert_ne!(second["pid"], first["pid"], "a new run: {second}");
    let (code, _, err) = boxctl(&d, &["restart", "nope"]).await;
    assert_eq!(code, Some(1), "{err}");
    let (code, _, err) = boxctl(&d, &["stop", "-t", "1", "one"]).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = boxctl(&d, &["kill", "two", "nope"]).await;
    assert_eq!(
        (code, lines(&out)),
        (Some(1), vec!["two".to_owned()]),
        "{err}"
    );
    assert!(err.contains("failed to kill nope"), "{err}");
    d.wait("two").await;

    let (code, out, err) = boxctl(&d, &["rm", "one", "nope", "two"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(lines(&out), ["one", "two"]);
    assert!(err.contains("failed to remove nope"), "{err}");
    let (_, out, _) = boxctl(&d, &["ps", "-a", "-q"]).await;
    assert!(out.trim().is_empty(), "left: {out}");
    assert_no_leaks(&d);
}

/// The port of the `ps` line's `127.0.0.1:PORT->80/tcp`, if it has one.
fn loopback_port_to_80(ps_line: &str) -> Option<u16> {
    let at = ps_line.find("127.0.0.1:")? + "127.0.0.1:".len();
    let rest = &ps_line[at..];
    let (port, tail) = rest.split_once("->")?;
    tail.starts_with("80/tcp").then(|| port.parse().ok())?
}

#[tokio::test]
async fn root_boxctl_network_create_ls_rm_and_run_publish() {
    require_root!();
    require!(
        std::path::Path::new("/usr/lib/cni/bridge").exists(),
        "no CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
    );
    require!(
        tool("iptables").is_some(),
        "no iptables (apt-get install iptables)"
    );
    let mut d = TestDaemon::prepare();
    d.networking = true;
    d.spawn().await;
    d.import_busybox().await;

    let (code, out, err) = boxctl(&d, &["network", "create", "--label", "t=1", "front"]).await;
    assert_eq!(code, Some(0), "stderr: {err}");
    let id = out.trim().to_owned();
    assert_eq!(id.len(), 64, "create prints the id: {out}");

    let (code, out, err) = boxctl(&d, &["network", "ls"]).await;
    assert_eq!(code, Some(0), "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NETWORK ID") && lines[0].ends_with("SUBNET"),
        "{out}"
    );
    let row = lines
        .iter()
        .find(|l| l.split_whitespace().nth(1) == Some("front"))
        .unwrap_or_else(|| panic!("front not listed:\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[0], &id[..12], "{out}");
    assert_eq!(cells[2], "bridge", "{out}");
    assert!(cells[3].contains('/'), "a subnet: {out}");

    let (code, out, err) = boxctl(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-u",
            "1000",
            "-p",
            "127.0.0.1::80",
            "--network",
            "front",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {err}");
    let container = out.trim().to_owned();

    let (code, out, err) = boxctl(&d, &["ps"]).await;
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|h| h.contains("   PORTS   ")),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.ends_with("   web"))
        .unwrap_or_else(|| panic!("web not in ps:\n{out}"));
    let port = loopback_port_to_80(line)
        .unwrap_or_else(|| panic!("no 127.0.0.1:<port>->80/tcp in ps:\n{out}"));
    let c = d.inspect("web").await;
    assert_eq!(c["config"]["ports"][0]["host_port"], port, "{c}");
    assert_eq!(c["config"]["network"], "front", "{c}");

    // The published port reaches the server (it may still be starting).
    let answered = boxd_tests::wait_for_async(Duration::from_secs(15), async || {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
            let mut reply = String::new();
            s.read_to_string(&mut reply).await?;
            std::io::Result::Ok(reply)
        };
        tokio::time::timeout(Duration::from_secs(2), exchange)
            .await
            .is_ok_and(|r| r.is_ok_and(|reply| reply.starts_with("HTTP/")))
    })
    .await;
    assert!(answered, "nothing answered on 127.0.0.1:{port}");

    let (code, out, err) = boxctl(&d, &["network", "inspect", "front"]).await;
    assert_eq!(code, Some(0), "stderr: {err}");
    let inspected: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspected[0]["id"], id.as_str(), "{inspected}");
    assert_eq!(
        inspected[0]["containers"][0]["id"],
        container.as_str(),
        "{inspected}"
    );

    let (code, out, err) = boxctl(&d, &["rm", "-f", "web"]).await;
    assert_eq!((code, out.as_str()), (Some(0), "web\n"), "stderr: {err}");
    let (code, out, err) = boxctl(&d, &["network", "rm", "front"]).await;
    assert_eq!((code, out.as_str()), (Some(0), "front\n"), "stderr: {err}");
    let (_, out, _) = boxctl(&d, &["network", "ls"]).await;
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("front")),
        "front still listed:\n{out}"
    );
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_boxctl_run_dns_and_add_host_reach_the_containers_files() {
    require_root!();
    require!(
        std::path::Path::new("/usr/lib/cni/bridge").exists(),
        "no CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
    );
    require!(
        tool("iptables").is_some(),
        "no iptables (apt-get install iptables)"
    );
    let mut d = TestDaemon::prepare();
    d.networking = true;
    d.spawn().await;
    d.import_busybox().await;

    let (code, out, err) = boxctl(
        &d,
        &[
            "run",
            "--rm",
            "--dns",
            "192.0.2.53",
            "--add-host",
            "db.local:192.0.2.9",
            "--add-host",
            "cache=192.0.2.10",
            "busybox",
            "cat",
            "/etc/resolv.conf",
            "/etc/hosts",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {err}");
    for want in [
        "nameserver 192.0.2.53\n",
        "192.0.2.9\tdb.local\n",
        "192.0.2.10\tcache\n",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    // The default resolvers are replaced, not added to.
    let servers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("nameserver "))
        .collect();
    assert_eq!(servers, ["nameserver 192.0.2.53"], "{out}");
}

/// `boxctl ps --json | head` ends quietly when `head` stops reading: no error line.
#[tokio::test]
async fn root_boxctl_output_to_a_closed_pipe_is_no_error() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // More than a pipe's buffer (64 KiB) of JSON, so that the writes meet the closed
    // pipe.
    for i in 0..60 {
        let body = json!({"image": "busybox", "name": format!("c{i}"), "cmd": ["true"],
            "labels": {"filler": "x".repeat(1000)}});
        d.api_ok("POST", "/v1/containers", Some(body), 201).await;
    }
    let script = format!(
        "set -o pipefail; {} ps -a --json | head -c 10 >/dev/null; echo status=$?",
        boxd_tests::boxctl_bin().display()
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("bash")
            .args(["-c", &script])
            .env("BOXD_SOCKET", &d.socket)
            .output(),
    )
    .await
    .expect("boxctl | head finished")
    .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "", "an error was printed");
    assert_eq!(stdout.trim(), "status=141", "{stdout}");
}
