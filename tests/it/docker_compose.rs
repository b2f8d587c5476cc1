//! The Docker Engine API face driven by two more real clients: docker-compose
//! (Debian's 1.29, which speaks the API through docker-py) and testcontainers-python.
//! Both are pointed at a test daemon's socket with `DOCKER_HOST`; images come only from
//! the project's test images, loaded into the daemon first (neither client can pull
//! here). Every client call runs under `timeout -s KILL` (a client waiting on a wrong
//! answer would otherwise hang the test), and network traffic goes only to 127.0.0.1
//! and to the containers the test made.

use crate::docker_cli::Out;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boxd_tests::{assert_no_leaks, fixtures, require, require_root, wait_for_async, TestDaemon};

/// How long one client call may take (a `down` stops containers in dependency order).
const CALL_DEADLINE: Duration = Duration::from_secs(90);

const PROJECT: &str = "bxc";

/// The web server publishes port 80 on 127.0.0.1 only, at a port the daemon picks; the
/// client reaches it by its service name and stops on its `stop_signal`, which its
/// shell traps; the named volume holds the served files. The web server's
/// `stop_grace_period` is short because busybox's httpd, as pid 1, ignores SIGTERM:
/// `down` would otherwise wait Docker's 10 s for it.
const COMPOSE_FILE: &str = r#"version: "3.8"
services:
  web:
    image: test/busybox:latest
    command: ["sh", "-c", "echo web starting; echo hello > /www/index.html; exec httpd -f -v -p 80 -h /www"]
    ports:
      - "127.0.0.1::80"
    volumes:
      - data:/www
    stop_grace_period: 1s
  client:
    image: test/busybox:latest
    command: ["sh", "-c", "trap 'echo client got INT; exit 0' INT; echo client up; while true; do sleep 1; done"]
    depends_on:
      - web
    stop_signal: SIGINT
volumes:
  data: {}
"#;

/// Runs `program args` with `envs` under `timeout -s KILL`.
async fn run_client(program: &str, args: &[&str], envs: &[(&str, String)], dir: &Path) -> Out {
    let secs = CALL_DEADLINE.as_secs().to_string();
    let out = tokio::process::Command::new("timeout")
        .args(["-s", "KILL", &secs, program])
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// docker-compose on the project in `dir`, against `d`.
struct Compose<'a> {
    d: &'a TestDaemon,
    dir: PathBuf,
}

impl Compose<'_> {
    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCKER_HOST", format!("unix://{}", self.d.socket.display())),
            (
                "DOCKER_CONFIG",
                self.d.dir.join("docker-config").display().to_string(),
            ),
        ]
    }

    async fn run(&self, args: &[&str]) -> Out {
        let mut all = vec!["--no-ansi", "-p", PROJECT];
        all.extend_from_slice(args);
        run_client("docker-compose", &all, &self.envs(), &self.dir).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        self.run(args).await.ok(&format!("docker-compose {args:?}"))
    }
}

/// Takes the project down (with its volumes) even when the test failed half-way, so
/// that the daemon's teardown finds only what compose could not remove.
struct ComposeDown {
    socket: PathBuf,
    dir: PathBuf,
}

impl Drop for ComposeDown {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let _ = std::process::Command::new("timeout")
            .args(["-s", "KILL", "60", "docker-compose", "--no-ansi", "-p"])
            .args([PROJECT, "down", "-v", "-t", "1"])
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .output();
    }
}

/// `curl http://addr/path` (addr is on 127.0.0.1), its body.
pub(crate) async fn http_get(addr: &str, path: &str) -> Out {
    run_client(
        "curl",
        // Never through a proxy the environment may name: the address is loopback.
        &[
            "-sS",
            "-f",
            "--noproxy",
            "*",
            "-m",
            "5",
            &format!("http://{addr}{path}"),
        ],
        &[],
        Path::new("/"),
    )
    .await
}

/// Loads the busybox test image into `d` through the Docker face; it is
/// `test/busybox:latest` there, as the compose file and the script name it.
async fn load_busybox(d: &TestDaemon) {
    let archive = fixtures().join("busybox-docker-archive.tar");
    let (status, body) = d.upload("/v1.43/images/load?quiet=1", &archive).await;
    assert!(status.is_success(), "load: {status} {body}");
    let (status, body) = d
        .api("GET", "/v1.43/images/test/busybox:latest/json", None)
        .await;
    assert_eq!(status, 200, "the loaded image: {body}");
}

/// The links of the daemon's bridges (names with its prefix).
fn bridges(d: &TestDaemon) -> BTreeSet<String> {
    boxd_tests::links_named(&d.bridge_prefix)
        .into_iter()
        .collect()
}

fn has_command(name: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn root_docker_compose_up_ps_logs_exec_down() {
    require_root!();
    require!(
        has_command("docker-compose"),
        "docker-compose is not installed (Debian package docker-compose)"
    );
    require!(has_command("curl"), "curl is not installed");
    let d = TestDaemon::start().await;
    load_busybox(&d).await;
    let dir = d.dir.join("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), COMPOSE_FILE).unwrap();
    let compose = Compose { d: &d, dir };
    let _down = ComposeDown {
        socket: d.socket.clone(),
        dir: compose.dir.clone(),
    };
    let bridges_before = bridges(&d);
    let rules_before = boxd_tests::iptables_rules_naming(&d.bridge_prefix);

    compose.ok(&["up", "-d"]).await;
    // A second `up` finds everything as it made it (the network's inspect shows the
    // options it was made with, and no others).
    let again = compose.run(&["up", "-d"]).await;
    assert!(
        again.code == Some(0) && again.stderr.contains("is up-to-date"),
        "second up: {:?}\n{}",
        again.code,
        again.stderr
    );

    // ps: both services, running; the published port on 127.0.0.1.
    let ps = compose.ok(&["ps"]).await;
    for name in ["bxc_web_1", "bxc_client_1"] {
        assert!(
            ps.lines().any(|l| l.starts_with(name) && l.contains(" Up")),
            "{ps}"
        );
    }
    assert_eq!(compose.ok(&["ps", "-q"]).await.lines().count(), 2, "{ps}");
    let mut services: Vec<String> = compose
        .ok(&["ps", "--services"])
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    services.sort();
    assert_eq!(services, ["client", "web"]);
    let addr = compose.ok(&["port", "web", "80"]).await.trim().to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(ps.contains(&format!("{addr}->80/tcp")), "{ps}");

    // The web server answers on the published port (it may still be starting).
    let mut body = String::new();
    let answered = wait_for_async(Duration::from_secs(20), async || {
        let out = http_get(&addr, "/").await;
        body = out.stdout;
        out.code == Some(0)
    })
    .await;
    assert!(answered, "no answer on {addr}: {body}");
    assert_eq!(body, "hello\n");

    // The client reaches the web server by its service name on the project network.
    let out = compose
        .ok(&["exec", "-T", "client", "wget", "-qO-", "http://web/"])
        .await;
    assert_eq!(out, "hello\n");
    // exec: environment, working dir, user, and the exit code.
    let out = compose
        .ok(&[
            "exec",
            "-T",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "--user",
            "nobody",
            "web",
            "sh",
            "-c",
            "echo $FOO $(pwd) $(id -un)",
        ])
        .await;
    assert_eq!(out, "bar /tmp nobody\n");
    // The hostname is the short id, as dockerd gives it (not the name: `_` is no
    // hostname character).
    let (_, web) = d.api("GET", "/v1.43/containers/bxc_web_1/json", None).await;
    let short = web["Id"].as_str().expect("an id")[..12].to_owned();
    assert_eq!(
        compose.ok(&["exec", "-T", "web", "hostname"]).await.trim(),
        short
    );
    assert_eq!(web["Config"]["Hostname"], short.as_str(), "{web}");
    let out = compose
        .run(&["exec", "-T", "web", "sh", "-c", "exit 3"])
        .await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);

    // run: a one-off container of a service, linked by compose to the service's
    // running container (`client_1` is a name only the one-off resolves), removed after.
    let (_, client) = d
        .api("GET", "/v1.43/containers/bxc_client_1/json", None)
        .await;
    let client_ip = client["NetworkSettings"]["Networks"]["bxc_default"]["IPAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("the client's address: {client}"))
        .to_owned();
    let out = compose
        .ok(&[
            "run",
            "--rm",
            "-T",
            "client",
            "sh",
            "-c",
            "wget -qO- http://web/ && nslookup client_1",
        ])
        .await;
    assert!(out.starts_with("hello\n"), "{out}");
    assert!(
        out.contains(&format!("Address: {client_ip}")),
        "client_1 is the running client ({client_ip}): {out}"
    );
    let (_, list) = d.api("GET", "/v1.43/containers/json?all=1", None).await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "the one-off is removed: {list}"
    );

    // logs: each service's output, prefixed with its container.
    let logs = compose.ok(&["logs", "--no-color"]).await;
    assert!(
        logs.lines()
            .any(|l| l.starts_with("web_1") && l.ends_with("| web starting")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.starts_with("client_1") && l.ends_with("| client up")),
        "{logs}"
    );
    let web_logs = compose.ok(&["logs", "--no-color", "web"]).await;
    assert!(!web_logs.contains("client up"), "{web_logs}");

    // stop_signal: the client is stopped with SIGINT, which its shell traps to exit 0.
    let (_, client) = d
        .api("GET", "/v1.43/containers/bxc_client_1/json", None)
        .await;
    assert_eq!(client["Config"]["StopSignal"], "SIGINT", "{client}");
    compose.ok(&["stop", "-t", "20", "client"]).await;
    let client_logs = compose.ok(&["logs", "--no-color", "client"]).await;
    assert!(client_logs.contains("| client got INT"), "{client_logs}");
    let (_, client) = d
        .api("GET", "/v1.43/containers/bxc_client_1/json", None)
        .await;
    assert_eq!(client["State"]["ExitCode"], 0, "{client}");
    compose.ok(&["start", "client"]).await;

    // Data in the named volume outlives `down`, which removes containers and network.
    compose
        .ok(&["exec", "-T", "web", "sh", "-c", "echo kept > /www/kept.txt"])
        .await;

    // A changed service is recreated (compose reads the image's ContainerConfig to
    // carry volumes over), with the named volume's data.
    std::fs::write(
        compose.dir.join("docker-compose.yml"),
        COMPOSE_FILE.replace("echo web starting;", "echo web recreated;"),
    )
    .unwrap();
    let out = compose.run(&["up", "-d"]).await;
    assert!(
        out.code == Some(0) && out.stderr.contains("Recreating bxc_web_1"),
        "up after a change: {:?}\n{}",
        out.code,
        out.stderr
    );
    let addr = compose.ok(&["port", "web", "80"]).await.trim().to_owned();
    let mut body = String::new();
    let answered = wait_for_async(Duration::from_secs(20), async || {
        let out = http_get(&addr, "/kept.txt").await;
        body = out.stdout;
        out.code == Some(0)
    })
    .await;
    assert!(answered, "no answer on {addr} after the recreate: {body}");
    assert_eq!(body, "kept\n");
    let web_logs = compose.ok(&["logs", "--no-color", "web"]).await;
    assert!(web_logs.contains("| web recreated"), "{web_logs}");
    let (_, net) = d.api("GET", "/v1.43/networks/bxc_default", None).await;
    assert_eq!(
        net["Options"],
        serde_json::json!({}),
        "a network shows the driver options it was made with: {net}"
    );
    let subnet = net["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_else(|| panic!("the project network has a subnet: {net}"))
        .to_owned();
    compose.ok(&["down", "-t", "1"]).await;
    let (_, list) = d.api("GET", "/v1.43/containers/json?all=1", None).await;
    assert_eq!(list, serde_json::json!([]), "containers left after down");
    let (status, _) = d.api("GET", "/v1.43/networks/bxc_default", None).await;
    assert_eq!(status, 404, "the project network is gone after down");
    assert_eq!(bridges(&d), bridges_before, "bridges left after down");
    assert_eq!(
        boxd_tests::iptables_rules_naming(&d.bridge_prefix),
        rules_before,
        "firewall rules of the project's bridge left after down"
    );
    let prefix = subnet
        .rsplit_once('.')
        .expect("an IPv4 subnet")
        .0
        .to_owned()
        + ".";
    assert_eq!(
        boxd_tests::iptables_rules_naming(&prefix),
        Vec::new(),
        "firewall rules of {subnet} left after down"
    );
    let (status, vol) = d.api("GET", "/v1.43/volumes/bxc_data", None).await;
    assert_eq!(status, 200, "the named volume outlives down: {vol}");

    compose.ok(&["up", "-d"]).await;
    let addr = compose.ok(&["port", "web", "80"]).await.trim().to_owned();
    let mut body = String::new();
    let answered = wait_for_async(Duration::from_secs(20), async || {
        let out = http_get(&addr, "/kept.txt").await;
        body = out.stdout;
        out.code == Some(0)
    })
    .await;
    assert!(answered, "no answer on {addr}: {body}");
    assert_eq!(body, "kept\n", "the volume's data after down and up");

    // down -v also removes the named volume.
    compose.ok(&["down", "-v", "-t", "1"]).await;
    let (status, _) = d.api("GET", "/v1.43/volumes/bxc_data", None).await;
    assert_eq!(status, 404, "the named volume is gone after down -v");
    let (_, list) = d.api("GET", "/v1.43/containers/json?all=1", None).await;
    assert_eq!(list, serde_json::json!([]));
    assert_eq!(bridges(&d), bridges_before, "bridges left after down -v");
    assert_eq!(
        boxd_tests::iptables_rules_naming(&d.bridge_prefix),
        rules_before,
        "firewall rules of the project's bridge left after down -v"
    );
    assert_no_leaks(&d);
}

/// A testcontainers generic container: started with an exposed port, its mapped port
/// read and answered on 127.0.0.1, its log line waited for, removed when the `with`
/// block ends. The Ryuk reaper (an image from Docker Hub) is off.
const TESTCONTAINERS_SCRIPT: &str = r#"
import socket, sys, docker
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs

cmd = "echo tc-hello > /tmp/index.html; echo server ready; exec httpd -f -p 8080 -h /tmp"
with DockerContainer("test/busybox:latest").with_exposed_ports(8080).with_command(["sh", "-c", cmd]) as c:
    wait_for_logs(c, "server ready", timeout=30)
    host = c.get_container_host_ip()
    assert host == "127.0.0.1", host
    port = int(c.get_exposed_port(8080))
    assert port != 8080, port
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    assert data.startswith(b"HTTP/1.") and data.endswith(b"tc-hello\n"), data
    print("id", c.get_wrapped_container().id)
left = docker.from_env().containers.list(all=True)
assert left == [], left
print("ok")
"#;

#[tokio::test]
async fn root_testcontainers_generic_container() {
    require_root!();
    let python_has_testcontainers = std::process::Command::new("python3")
        .args(["-c", "import testcontainers.core.container"])
        .output()
        .is_ok_and(|o| o.status.success());
    require!(
        python_has_testcontainers,
        "testcontainers (python3 -c 'import testcontainers') is not installed"
    );
    let mut d = TestDaemon::prepare();
    // Containers get the default bridge when they name no network, as with dockerd:
    // testcontainers publishes the port without choosing one.
    d.networking = true;
    d.spawn().await;
    load_busybox(&d).await;
    let envs = [
        ("DOCKER_HOST", format!("unix://{}", d.socket.display())),
        ("TESTCONTAINERS_RYUK_DISABLED", "true".to_owned()),
        // testcontainers guesses where the published port is reachable: a machine with
        // /.dockerenv (these are containers themselves) makes it use the bridge's
        // gateway. The host and mode are pinned so that it connects to 127.0.0.1.
        ("TC_HOST", "127.0.0.1".to_owned()),
        ("TESTCONTAINERS_CONNECTION_MODE", "docker_host".to_owned()),
    ];
    let out = run_client("python3", &["-c", TESTCONTAINERS_SCRIPT], &envs, &d.dir).await;
    assert_eq!(
        out.code,
        Some(0),
        "testcontainers failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.ends_with("ok\n"), "{}", out.stdout);
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .expect("the script printed the container id")
        .to_owned();
    d.assert_container_gone(&id);
    assert_eq!(
        boxd_tests::iptables_rules_naming(&id),
        Vec::new(),
        "the published port's rules outlived the container"
    );
    assert_no_leaks(&d);
}
