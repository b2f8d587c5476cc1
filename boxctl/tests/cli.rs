//! `boxctl` as a user runs it, against a fake daemon (or none): output, error lines,
//! exit codes, and the requests each command makes.

#[path = "../../client/tests/support/mod.rs"]
mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::json;
use support::{FakeDaemon, Reply};
use tokio::process::Command;
use tokio::sync::mpsc;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn boxctl(socket: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxctl"));
    cmd.env_remove("BOXD_SOCKET").arg("--socket").arg(socket);
    cmd.kill_on_drop(true);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_one_error_line(out: &Output) -> String {
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line, got {stderr:?}");
    assert!(lines[0].starts_with("boxctl: "), "{stderr:?}");
    lines[0].to_string()
}

fn entry(stream: &str, line: &str) -> String {
    json!({"time": "2024-05-06T10:00:00Z", "stream": stream, "line": line}).to_string() + "\n"
}

#[tokio::test]
async fn no_daemon_gives_one_clear_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let out = boxctl(&socket).arg("ps").output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let line = assert_one_error_line(&out);
    assert!(line.contains(&socket.display().to_string()), "{line}");
    assert!(line.contains("is it running"), "{line}");

    // BOXD_SOCKET chooses the socket when --socket is not given.
    let out = Command::new(env!("CARGO_BIN_EXE_boxctl"))
        .env("BOXD_SOCKET", &socket)
        .arg("images")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(assert_one_error_line(&out).contains(&socket.display().to_string()));

    // `run` keeps 125 for its own failures, so they never pass for a container's code.
    let out = boxctl(&socket)
        .args(["run", "busybox", "true"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_one_error_line(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_run_prints_output_and_exits_with_the_container_code() {
    let daemon = FakeDaemon::start(|req| match (req.method.as_str(), req.path()) {
        ("POST", "/v1/containers") => {
            Reply::Json(201, json!({"id": ID, "name": "web"}).to_string())
        }
        (_, p) if p.ends_with("/logs") => Reply::pieces(&[
            &entry("stdout", "hello\n"),
            &entry("stderr", "oops\n"),
            &entry("stdout", "wor"),
            &entry("stdout", "ld\n"),
        ]),
        (_, p) if p.ends_with("/wait") => Reply::Json(
            200,
            json!({"exit_code": 3, "oom_killed": false}).to_string(),
        ),
        _ => Reply::Empty(204),
    });
    let out = boxctl(&daemon.socket())
        .args([
            "run", "--rm", "-e", "A=1", "-m", "64m", "--cpus", "0.5", "busybox",
        ])
        .args(["sh", "-c", "echo hello"])
        .output()
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), "hello\nworld\n");
    assert_eq!(text(&out.stderr), "oops\n");
    assert_eq!(out.status.code(), Some(3));

    let lines = daemon.lines();
    assert_eq!(lines[0], "POST /v1/containers");
    assert_eq!(lines[1], format!("POST /v1/containers/{ID}/start"));
    assert!(lines[2].starts_with(&format!(
        "GET /v1/containers/{ID}/logs?format=ndjson&follow=true"
    )));
    assert_eq!(lines[3], format!("POST /v1/containers/{ID}/wait"));
    assert_eq!(lines[4], format!("DELETE /v1/containers/{ID}?force=true"));
    assert_eq!(lines.len(), 5);

    let body: serde_json::Value = serde_json::from_slice(&daemon.requests()[0].body).unwrap();
    assert_eq!(body["image"], "busybox");
    assert_eq!(body["cmd"], json!(["sh", "-c", "echo hello"]));
    assert_eq!(body["env"], json!(["A=1"]));
    assert_eq!(body["resources"]["memory_bytes"], 64 << 20);
    assert_eq!(body["resources"]["cpu_quota_us"], 50_000);
    assert_eq!(body["resources"]["cpu_period_us"], 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_during_run_is_forwarded_to_the_container() {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let rx = std::sync::Mutex::new(Some(rx));
    let daemon = FakeDaemon::start(move |req| match (req.method.as_str(), req.path()) {
        ("POST", "/v1/containers") => {
            Reply::Json(201, json!({"id": ID, "name": "web"}).to_string())
        }
        (_, p) if p.ends_with("/logs") => Reply::Stream(rx.lock().unwrap().take().unwrap()),
        (_, p) if p.ends_with("/wait") => Reply::Json(
            200,
            json!({"exit_code": 130, "oom_killed": false}).to_string(),
        ),
        _ => Reply::Empty(204),
    });
    let child = boxctl(&daemon.socket())
        .args(["run", "busybox", "sleep", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();

    let seen = |daemon: &FakeDaemon, what: &str| daemon.lines().iter().any(|l| l.contains(what));
    wait_until(|| seen(&daemon, "/logs?")).await;
    tx.send(entry("stdout", "started\n").into_bytes()).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until(|| seen(&daemon, "/kill?signal=SIGINT")).await;
    // The container "exits": the follow ends and wait answers.
    drop(tx);

    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("boxctl exits once the container has")
        .unwrap();
    assert_eq!(text(&out.stdout), "started\n");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    let held = boxd_testutil::wait_for_async(Duration::from_secs(10), async || cond()).await;
    assert!(held, "timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_failing_at_the_daemon_exits_125_with_its_message() {
    let daemon = FakeDaemon::start(|_| Reply::error(404, "not_found", "no such image: nope"));
    let out = boxctl(&daemon.socket())
        .args(["run", "--pull", "never", "nope"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let line = assert_one_error_line(&out);
    assert!(
        line.contains("no such image: nope (404 not_found)") && line.contains("--pull never"),
        "{line}"
    );
    // By default a missing image is pulled first (as `docker run`), and the pull's
    // failure is the error.
    let out = boxctl(&daemon.socket())
        .args(["run", "nope"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], "Unable to find image 'nope' locally");
    assert!(lines[1].starts_with("boxctl: failed to pull nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_run_prints_the_id() {
    let daemon = FakeDaemon::start(|req| match req.path() {
        "/v1/containers" => Reply::Json(201, json!({"id": ID, "name": "web"}).to_string()),
        _ => Reply::Empty(204),
    });
    let out = boxctl(&daemon.socket())
        .args(["run", "-d", "--name", "web", "busybox"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("{ID}\n"));
    assert_eq!(daemon.lines().len(), 2, "create and start only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_id_commands_report_each_failure_and_go_on() {
    let daemon = FakeDaemon::start(|req| match req.path() {
        "/v1/containers/b" => Reply::error(404, "not_found", "no such container: b"),
        _ => Reply::Empty(204),
    });
    let out = boxctl(&daemon.socket())
        .args(["rm", "-f", "a", "b", "c"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "a\nc\n");
    let line = assert_one_error_line(&out);
    assert!(line.contains("no such container: b"), "{line}");
    assert_eq!(
        daemon.lines(),
        [
            "DELETE /v1/containers/a?force=true",
            "DELETE /v1/containers/b?force=true",
            "DELETE /v1/containers/c?force=true",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_prints_a_table_or_json() {
    let daemon = FakeDaemon::start(|_| {
        let now = chrono::Utc::now();
        Reply::Json(
            200,
            json!([{
                "id": ID, "name": "web", "image": "busybox", "image_id": "sha256:aa",
                "state": "exited", "pid": null, "exit_code": 137, "oom_killed": true,
                "created_at": now - chrono::TimeDelta::minutes(10),
                "started_at": now - chrono::TimeDelta::minutes(9),
                "finished_at": now - chrono::TimeDelta::minutes(2),
                "config": {"cmd": ["sleep", "100"], "env": [], "working_dir": "/",
                           "hostname": "h", "user": "", "mounts": [],
                           "ports": [{"host_ip": "0.0.0.0", "host_port": 8081,
                                      "container_port": 81, "protocol": "tcp"}]},
                "resources": {}
            }, {
                "id": "fedcba9876543210", "name": "api", "image": "busybox",
                "image_id": "sha256:aa", "state": "running", "pid": 42,
                "exit_code": null, "oom_killed": false,
                "created_at": now - chrono::TimeDelta::minutes(5),
                "started_at": now - chrono::TimeDelta::minutes(5),
                "finished_at": null,
                "config": {"cmd": ["httpd"], "env": [], "working_dir": "/",
                           "hostname": "h", "user": "", "mounts": [],
                           "network": "front",
                           "ports": [{"host_ip": "0.0.0.0", "host_port": 8080,
                                      "container_port": 80, "protocol": "tcp"},
                                     {"host_ip": "127.0.0.1", "host_port": 5353,
                                      "container_port": 53, "protocol": "udp"}]},
                "resources": {}
            }])
            .to_string(),
        )
    });
    let out = boxctl(&daemon.socket())
        .args(["ps", "-a"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID   IMAGE"), "{stdout}");
    let words: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(
        words,
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "{stdout}"
    );
    // Newest first; a running container shows its ports, an exited one none.
    assert!(lines[1].starts_with("fedcba987654   busybox"), "{stdout}");
    assert!(
        lines[1].ends_with("127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp   api"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("0123456789ab   busybox   \"sleep 100\"   10 minutes ago"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("Exited (137) 2 minutes ago (OOM killed)   "),
        "{stdout}"
    );
    assert!(lines[2].ends_with("   web"), "{stdout}");
    assert!(!lines[2].contains("->"), "{stdout}");
    assert_eq!(daemon.lines(), ["GET /v1/containers?all=true"]);

    let out = boxctl(&daemon.socket())
        .args(["--json", "ps"])
        .output()
        .await
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed[0]["name"], "api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sends_the_network_and_published_ports() {
    let daemon = FakeDaemon::start(|req| match req.path() {
        "/v1/containers" => Reply::Json(201, json!({"id": ID, "name": "web"}).to_string()),
        _ => Reply::Empty(204),
    });
    let out = boxctl(&daemon.socket())
        .args(["run", "-d", "--net", "front", "-p", "127.0.0.1::80"])
        .args(["-p", "8000-8001:9000-9001/udp", "-P", "busybox"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&daemon.requests()[0].body).unwrap();
    assert_eq!(body["network"], "front");
    assert_eq!(body["publish_all"], true);
    assert_eq!(
        body["ports"],
        json!([
            {"host_ip": "127.0.0.1", "container_port": 80},
            {"host_port": 8000, "container_port": 9000, "protocol": "udp"},
            {"host_port": 8001, "container_port": 9001, "protocol": "udp"},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sends_addresses_dns_hosts_aliases_and_rates() {
    let daemon = FakeDaemon::start(|req| match req.path() {
        "/v1/containers" => Reply::Json(201, json!({"id": ID, "name": "web"}).to_string()),
        _ => Reply::Empty(204),
    });
    let out = boxctl(&daemon.socket())
        .args(["run", "-d", "--net", "front", "--ip", "10.90.0.9"])
        .args(["--dns", "192.0.2.53", "--dns", "2001:db8::53"])
        .args(["--dns-search", "example.org", "--dns-search", "corp"])
        .args(["--dns-option", "ndots:2", "--dns-option", "timeout:1"])
        .args([
            "--add-host",
            "db.local:192.0.2.9",
            "--add-host",
            "cache=192.0.2.10",
        ])
        .args(["--network-alias", "www", "--alias", "api"])
        .args(["--network-rate", "8mbit", "--network-egress-rate", "500K"])
        .arg("busybox")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&daemon.requests()[0].body).unwrap();
    assert_eq!(body["network"], "front");
    assert_eq!(body["ip"], "10.90.0.9");
    assert_eq!(body["dns"], json!(["192.0.2.53", "2001:db8::53"]));
    assert_eq!(body["dns_search"], json!(["example.org", "corp"]));
    assert_eq!(body["dns_options"], json!(["ndots:2", "timeout:1"]));
    assert_eq!(
        body["extra_hosts"],
        json!(["db.local:192.0.2.9", "cache:192.0.2.10"])
    );
    assert_eq!(body["network_aliases"], json!(["www", "api"]));
    assert_eq!(body["resources"]["network_ingress_bps"], 8_000_000);
    assert_eq!(body["resources"]["network_egress_bps"], 500_000);
    // Nothing asked for, nothing sent: the daemon's defaults stay in charge.
    let out = boxctl(&daemon.socket())
        .args(["create", "busybox"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&daemon.requests()[2].body).unwrap();
    for field in [
        "ip",
        "dns",
        "dns_search",
        "dns_options",
        "extra_hosts",
        "network_aliases",
    ] {
        assert!(body.get(field).is_none(), "{field}: {body}");
    }
    assert_eq!(body["resources"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rate_or_address_is_a_usage_error_before_any_request() {
    let daemon = FakeDaemon::start(|_| Reply::Empty(204));
    for (flag, value) in [
        ("--network-rate", "8mbps"),
        ("--network-ingress-rate", "fast"),
        ("--network-egress-rate", "0"),
        ("--dns", "dns.example"),
        ("--add-host", "db"),
        ("--ip", "::1"),
    ] {
        for verb in ["run", "create"] {
            let out = boxctl(&daemon.socket())
                .args([verb, flag, value, "busybox"])
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{verb} {flag} {value}");
            let stderr = text(&out.stderr);
            assert!(stderr.contains(flag), "{stderr}");
            assert!(stderr.contains(value), "{stderr}");
        }
    }
    assert!(daemon.lines().is_empty(), "{:?}", daemon.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_publish_fails_before_any_request() {
    let daemon = FakeDaemon::start(|_| Reply::Empty(204));
    for (verb, code) in [("run", 125), ("create", 1)] {
        let out = boxctl(&daemon.socket())
            .args([verb, "-p", "8000-8010:80", "busybox"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{verb}");
        let line = assert_one_error_line(&out);
        assert!(
            line.contains("invalid port spec \"8000-8010:80\""),
            "{line}"
        );
    }
    assert!(daemon.lines().is_empty(), "{:?}", daemon.lines());
}

fn network_json(id: &str, name: &str, subnet: &str) -> serde_json::Value {
    json!({
        "id": id, "name": name, "driver": "bridge", "bridge": "boxd1", "subnet": subnet,
        "gateway": "10.90.0.1", "internal": false, "created_at": "2024-05-06T10:00:00Z",
        "containers": []
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_verbs_print_like_docker_and_go_on_after_a_failure() {
    let daemon = FakeDaemon::start(|req| match (req.method.as_str(), req.path()) {
        ("POST", "/v1/networks") => {
            Reply::Json(201, network_json(ID, "front", "10.90.0.0/24").to_string())
        }
        ("GET", "/v1/networks") => Reply::Json(
            200,
            json!([
                network_json(ID, "front", "10.90.0.0/24"),
                network_json("fedcba9876543210", "bridge", "10.88.0.0/16"),
            ])
            .to_string(),
        ),
        (_, "/v1/networks/nope") => Reply::error(404, "not_found", "no such network: nope"),
        ("GET", _) => Reply::Json(200, network_json(ID, "front", "10.90.0.0/24").to_string()),
        ("DELETE", "/v1/networks/bridge") => Reply::error(
            409,
            "conflict",
            "the default network bridge cannot be removed",
        ),
        _ => Reply::Empty(204),
    });
    let run = |args: &'static [&'static str]| {
        let mut cmd = boxctl(&daemon.socket());
        cmd.args(args);
        async move { cmd.output().await.unwrap() }
    };

    let out = run(&[
        "network",
        "create",
        "--subnet",
        "10.90.0.0/24",
        "--label",
        "a=b",
        "front",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{ID}\n"));
    let body: serde_json::Value = serde_json::from_slice(&daemon.requests()[0].body).unwrap();
    assert_eq!(
        body,
        json!({"name": "front", "subnet": "10.90.0.0/24", "labels": {"a": "b"}})
    );

    let out = run(&["network", "ls"]).await;
    assert_eq!(
        text(&out.stdout),
        "NETWORK ID     NAME     DRIVER   SUBNET\n\
         fedcba987654   bridge   bridge   10.88.0.0/16\n\
         0123456789ab   front    bridge   10.90.0.0/24\n"
    );

    let out = run(&["network", "inspect", "front", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.as_array().map(Vec::len), Some(1), "{parsed}");
    assert_eq!(parsed[0]["subnet"], "10.90.0.0/24");
    let line = assert_one_error_line(&out);
    assert!(
        line.contains("no such network: nope (404 not_found)"),
        "{line}"
    );

    let out = run(&["network", "rm", "bridge", "front", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "front\n");
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(
        errors[0].contains(
            "failed to remove network bridge: the default network bridge cannot be removed"
        ),
        "{stderr}"
    );
    assert!(errors[1].contains("no such network: nope"), "{stderr}");

    assert_eq!(
        daemon.lines()[1..],
        [
            "GET /v1/networks",
            "GET /v1/networks/front",
            "GET /v1/networks/nope",
            "DELETE /v1/networks/bridge",
            "DELETE /v1/networks/front",
            "DELETE /v1/networks/nope",
        ]
    );
}

/// Completions and man pages come from the parser's own definitions: every verb is
/// there, and so are the flags it takes. They need no daemon.
#[tokio::test]
async fn completions_and_man_pages_are_generated_from_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    for shell in ["bash", "zsh", "fish"] {
        let out = boxctl(&socket)
            .args(["completion", shell])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        // fish writes long flags as `-l pull`.
        for word in ["restart", "volume", "pull"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = boxctl(&socket)
        .args(["completion", "tcsh"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let man = dir.path().join("man1");
    let out = boxctl(&socket)
        .args(["man", "--out"])
        .arg(&man)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = std::fs::read_to_string(man.join("boxctl-run.1")).unwrap();
    assert!(run.contains("pull"), "boxctl-run.1 names --pull");
    assert!(man.join("boxctl.1").exists());
    assert!(man.join("boxctl-restart.1").exists());
}
