//! The Docker Engine API face driven by the real clients: the docker CLI
//! (`/usr/local/bin/docker` or Debian's) and docker-py, pointed at a test daemon's
//! socket with `DOCKER_HOST`. Every CLI call runs under a deadline and is killed with
//! SIGKILL when it passes it (the CLI forwards SIGTERM to the container instead of
//! dying).

use std::path::{Path, PathBuf};
use std::time::Duration;

use boxd_tests::{assert_no_leaks, fixtures, require, require_root, wait_for_async, TestDaemon};
use serde_json::Value;

/// How long one CLI call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

fn docker_bin() -> Option<PathBuf> {
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub(crate) struct Out {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Out {
    pub(crate) fn ok(self, what: &str) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "{what}: exit {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// The docker CLI against `d`, with its own (empty) client config dir.
pub(crate) struct Docker<'a> {
    bin: PathBuf,
    d: &'a TestDaemon,
    config: PathBuf,
}

impl<'a> Docker<'a> {
    pub(crate) fn new(d: &'a TestDaemon) -> Option<Docker<'a>> {
        let config = d.dir.join("docker-config");
        std::fs::create_dir_all(&config).ok()?;
        Some(Docker {
            bin: docker_bin()?,
            d,
            config,
        })
    }

    async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args);
        self.finish(cmd, stdin).await
    }

    /// Runs `cmd` (the CLI, or something that runs it) against the daemon, under the
    /// deadline.
    async fn finish(&self, mut cmd: tokio::process::Command, stdin: Option<&[u8]>) -> Out {
        use tokio::io::AsyncWriteExt;
        let args = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        cmd.env("DOCKER_HOST", format!("unix://{}", self.d.socket.display()))
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // SIGKILL when the deadline passes (the future is dropped).
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("run docker");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin piped");
            pipe.write_all(input).await.expect("write stdin");
            drop(pipe);
        }
        let out = tokio::time::timeout(CALL_DEADLINE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("docker {args:?} did not finish within {CALL_DEADLINE:?}"))
            .expect("docker output");
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `docker ARGS` on a real terminal: run by `script(1)`, which gives it a pty and
    /// copies `input` into it, then exits with its status.
    async fn run_in_pty(&self, args: &[&str], input: &[u8]) -> Out {
        let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
        let command = std::iter::once(quote(path_str(&self.bin)))
            .chain(args.iter().map(|a| quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = tokio::process::Command::new("script");
        cmd.args(["-q", "-e", "-c", &command, "/dev/null"]);
        self.finish(cmd, Some(input)).await
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None).await
    }

    pub(crate) async fn ok(&self, args: &[&str]) -> String {
        self.run(args).await.ok(&format!("docker {args:?}"))
    }

    /// Loads the busybox test image and names it `busybox`, as a user would.
    async fn busybox(&self) {
        let archive = fixtures().join("busybox-docker-archive.tar");
        let out = self.ok(&["load", "-i", path_str(&archive)]).await;
        let loaded = out
            .lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("docker load printed no image: {out}"))
            .trim()
            .to_owned();
        self.ok(&["tag", &loaded, "busybox"]).await;
    }
}

/// `docker cp FROM OUT/DEST`, then the text of `OUT/FILE` (`DEST` itself, or a file in
/// the directory copied).
async fn copied_out(docker: &Docker<'_>, from: &str, out: &Path, dest: &str, file: &str) -> String {
    docker.ok(&["cp", from, path_str(&out.join(dest))]).await;
    std::fs::read_to_string(out.join(file)).unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

macro_rules! docker_or_skip {
    ($d:expr) => {
        match Docker::new(&$d) {
            Some(docker) => docker,
            None => {
                require!(false, "the docker CLI is not installed");
                return;
            }
        }
    };
}

#[tokio::test]
async fn root_docker_cli_version_info_and_run() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);

    let v = docker
        .ok(&[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Os}}",
        ])
        .await;
    assert_eq!(v.trim(), format!("{} linux", boxd::compat::API_VERSION));
    let info = docker
        .ok(&[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.CgroupVersion}} {{.Containers}}",
        ])
        .await;
    let words: Vec<&str> = info.split_whitespace().collect();
    assert_eq!(words[0], "inactive", "{info}");
    assert!(words[1] == "1" || words[1] == "2", "{info}");
    assert_eq!(words[2], "0", "{info}");

    docker.busybox().await;
    // Foreground --rm: output, exit code, and the container is gone.
    assert_eq!(
        docker
            .ok(&["run", "--rm", "busybox", "echo", "hello"])
            .await,
        "hello\n"
    );
    let out = docker
        .run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
        .await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let out = docker
        .run(&["run", "--rm", "busybox", "no-such-command"])
        .await;
    assert_eq!(
        out.code,
        Some(127),
        "command not found is 127: {}",
        out.stderr
    );
    // Stdin piped into -i, its EOF closes the app's stdin.
    let out = docker
        .run_with(
            &["run", "-i", "--rm", "busybox", "sh"],
            Some(b"echo piped\nexit 4\n"),
        )
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(4), "piped\n"),
        "{}",
        out.stderr
    );
    // Every --rm container above was removed by the daemon.
    assert_eq!(docker.ok(&["ps", "-aq"]).await, "");

    // Detached with limits, seen through both faces.
    let id = docker
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "1.5",
            "-e",
            "GREETING=hi",
            "--restart",
            "on-failure:2",
            "busybox",
            "sleep",
            "300",
        ])
        .await;
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let v1 = d.inspect("web").await;
    assert_eq!(v1["id"], id);
    assert_eq!(v1["state"], "running");
    assert_eq!(v1["resources"]["memory_bytes"], 64 << 20);
    assert_eq!(v1["resources"]["pids_max"], 50);
    // cgroup v1 or v2.
    let mem = if d
        .cgroup_file("memory", id, "memory.limit_in_bytes")
        .exists()
    {
        d.read_cgroup("memory", id, "memory.limit_in_bytes")
    } else {
        d.read_cgroup("memory", id, "memory.max")
    };
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let f = docker
        .ok(&[
            "inspect", "-f",
            "{{.Name}} {{.State.Status}} {{.State.Running}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}} {{.Config.Image}}",
            "web",
        ])
        .await;
    assert_eq!(
        f.trim(),
        "/web running true 67108864 50 1500000000 on-failure busybox"
    );
    let ps = docker
        .ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
        .await;
    assert!(ps.starts_with("web Up "), "{ps}");
    assert_eq!(docker.ok(&["ps", "-q"]).await.trim(), &id[..12]);
    assert_eq!(
        docker
            .ok(&["ps", "-a", "--filter", "name=nosuch", "-q"])
            .await,
        ""
    );
    assert_eq!(
        docker
            .ok(&[
                "ps",
                "-a",
                "--filter",
                "status=running",
                "--format",
                "{{.Names}}"
            ])
            .await,
        "web\n"
    );

    // exec: plain, exit code, detached, environment of the container.
    assert_eq!(
        docker
            .ok(&["exec", "web", "sh", "-c", "echo $GREETING"])
            .await,
        "hi\n"
    );
    let out = docker.run(&["exec", "web", "sh", "-c", "exit 7"]).await;
    assert_eq!(out.code, Some(7), "{}", out.stderr);
    docker
        .ok(&["exec", "-d", "web", "sh", "-c", "echo detached > /tmp/d"])
        .await;
    assert!(
        wait_for_async(Duration::from_secs(10), async || {
            docker.run(&["exec", "web", "cat", "/tmp/d"]).await.stdout == "detached\n"
        })
        .await,
        "timed out waiting for the detached exec to write"
    );
    // top lists the container's processes.
    let top = docker.ok(&["top", "web"]).await;
    assert!(top.contains("PID") && top.contains("sleep 300"), "{top}");
    // stats --no-stream renders a row with the memory limit.
    let stats = docker
        .ok(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            "web",
        ])
        .await;
    assert!(
        stats.starts_with("web ") && stats.contains("/ 64MiB"),
        "{stats}"
    );

    // kill delivers the signal it names; stop, restart, wait; rm -f.
    docker
        .ok(&[
            "run",
            "-d",
            "--name",
            "trap",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-hup' HUP; while true; do sleep 0.1; done",
        ])
        .await;
    assert!(
        wait_for_async(Duration::from_secs(10), async || {
            docker.ok(&["top", "trap"]).await.contains("sleep")
        })
        .await,
        "timed out waiting for the trap to be set"
    );
    docker.ok(&["kill", "-s", "HUP", "trap"]).await;
    assert!(
        wait_for_async(Duration::from_secs(10), async || {
            docker.ok(&["logs", "trap"]).await.contains("got-hup")
        })
        .await,
        "timed out waiting for the HUP to be logged"
    );
    assert_eq!(
        docker
            .ok(&["inspect", "-f", "{{.State.Running}}", "trap"])
            .await
            .trim(),
        "true"
    );
    docker.ok(&["stop", "-t", "1", "trap"]).await;
    // A stop of a stopped container changes nothing and still succeeds.
    assert_eq!(docker.ok(&["stop", "trap"]).await.trim(), "trap");
    assert_eq!(docker.ok(&["wait", "trap"]).await.trim(), "137");
    let out = docker.run(&["kill", "trap"]).await;
    assert_eq!(
        out.code,
        Some(1),
        "kill of a stopped container fails: {}",
        out.stdout
    );
    docker.ok(&["restart", "-t", "1", "trap"]).await;
    assert_eq!(
        docker
            .ok(&["inspect", "-f", "{{.State.Running}}", "trap"])
            .await
            .trim(),
        "true"
    );
    let out = docker.run(&["rm", "trap"]).await;
    assert_eq!(
        out.code,
        Some(1),
        "rm of a running container fails: {}",
        out.stdout
    );
    docker.ok(&["rm", "-f", "trap", "web"]).await;
    assert_eq!(docker.ok(&["ps", "-aq"]).await, "");
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    assert_eq!(list, Value::Array(vec![]));
    assert_no_leaks(&d);
}

/// `-it` on a real terminal: the shell in the container reads what is typed, its
/// terminal is a pty, and the CLI exits with its status; the same through exec.
#[tokio::test]
async fn root_docker_cli_interactive_on_a_terminal() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;
    let out = docker
        .run_in_pty(
            &["run", "-it", "--rm", "busybox", "sh"],
            b"tty; echo typed-$((6*7))\nexit 7\n",
        )
        .await;
    assert_eq!(out.code, Some(7), "{} {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("typed-42"), "{}", out.stdout);
    assert!(out.stdout.contains("/dev/pts/0"), "{}", out.stdout);
    docker
        .ok(&["run", "-d", "--name", "w", "busybox", "sleep", "1000"])
        .await;
    let out = docker
        .run_in_pty(
            &["exec", "-it", "w", "sh"],
            b"tty; echo in-$((2+3))\nexit 5\n",
        )
        .await;
    assert_eq!(out.code, Some(5), "{} {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("in-5"), "{}", out.stdout);
    assert!(out.stdout.contains("/dev/pts/"), "{}", out.stdout);
    docker.ok(&["rm", "-f", "w"]).await;
    assert_eq!(docker.ok(&["ps", "-aq"]).await, "");
    assert_no_leaks(&d);
}

/// Networks, published ports, attach, `system df` and `image prune` through the CLI,
/// on a daemon whose containers get the default bridge as with dockerd. Traffic goes
/// only to 127.0.0.1 and between the test's own containers.
#[tokio::test]
async fn root_docker_cli_networks_ports_attach_and_df() {
    require_root!();
    let mut d = TestDaemon::prepare();
    d.networking = true;
    d.spawn().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;

    let net_id = docker.ok(&["network", "create", "front"]).await;
    assert_eq!(net_id.trim().len(), 64, "{net_id}");
    let names = docker.ok(&["network", "ls", "--format", "{{.Name}}"]).await;
    for n in ["bridge", "host", "none", "front"] {
        assert!(names.lines().any(|l| l == n), "{n} not in {names}");
    }
    let inspect = docker
        .ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Driver}} {{len .IPAM.Config}}",
            "front",
        ])
        .await;
    assert_eq!(inspect.trim(), "bridge 1");

    docker
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "front",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sh",
            "-c",
            "echo hello-web > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
        ])
        .await;
    let port = docker.ok(&["port", "web", "80"]).await;
    let addr = port.lines().next().unwrap_or_default().trim().to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{port}");
    let mut body = String::new();
    assert!(
        wait_for_async(Duration::from_secs(15), async || {
            body = crate::docker_compose::http_get(&addr, "/index.html")
                .await
                .stdout;
            body == "hello-web\n"
        })
        .await,
        "the published port never answered: {body:?}"
    );

    // A container on the default network joins `front` and reaches web there (by
    // address: its resolver was chosen when it started), then leaves it.
    docker
        .ok(&["run", "-d", "--name", "other", "busybox", "sleep", "1000"])
        .await;
    docker.ok(&["network", "connect", "front", "other"]).await;
    let web_ip = docker
        .ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.front.IPAddress}}",
            "web",
        ])
        .await;
    let got = docker
        .ok(&[
            "exec",
            "other",
            "wget",
            "-qO-",
            &format!("http://{}/index.html", web_ip.trim()),
        ])
        .await;
    assert_eq!(got, "hello-web\n");
    let nets = docker
        .ok(&[
            "inspect",
            "-f",
            "{{len .NetworkSettings.Networks}}",
            "other",
        ])
        .await;
    assert_eq!(nets.trim(), "2");
    docker
        .ok(&["network", "disconnect", "front", "other"])
        .await;
    let nets = docker
        .ok(&[
            "inspect",
            "-f",
            "{{len .NetworkSettings.Networks}}",
            "other",
        ])
        .await;
    assert_eq!(nets.trim(), "1");
    // A network in use is not removed.
    let out = docker.run(&["network", "rm", "front"]).await;
    assert_ne!(out.code, Some(0), "{}", out.stdout);

    // attach: stdin reaches the app, its output and exit code come back.
    docker
        .ok(&["run", "-d", "-i", "--name", "talk", "busybox", "sh"])
        .await;
    let out = docker
        .run_with(&["attach", "talk"], Some(b"echo via-attach\nexit 4\n"))
        .await;
    assert_eq!(out.code, Some(4), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "via-attach\n");

    let df = docker.ok(&["system", "df"]).await;
    assert!(
        df.contains("Images") && df.contains("Containers") && df.contains("Local Volumes"),
        "{df}"
    );
    docker.ok(&["rm", "-f", "web", "other", "talk"]).await;
    docker.ok(&["network", "rm", "front"]).await;
    let names = docker.ok(&["network", "ls", "--format", "{{.Name}}"]).await;
    assert!(!names.lines().any(|l| l == "front"), "{names}");
    // Nothing uses the images now: prune -a removes them all.
    let out = docker.ok(&["image", "prune", "-a", "-f"]).await;
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(docker.ok(&["images", "-q"]).await, "");
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_docker_cli_logs_and_events() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;
    let since = chrono::Utc::now().timestamp() - 1;
    docker
        .ok(&[
            "run",
            "--name",
            "talk",
            "busybox",
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2",
        ])
        .await;
    // stdout and stderr stay apart (the framing), tail and timestamps.
    let out = docker.run(&["logs", "talk"]).await;
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout, "out1\nout2\n");
    assert_eq!(out.stderr, "err1\n");
    // -f of a running container streams until it exits.
    docker
        .ok(&[
            "run",
            "-d",
            "--name",
            "slow",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.2; done",
        ])
        .await;
    assert_eq!(
        docker.ok(&["logs", "-f", "slow"]).await,
        "line1\nline2\nline3\n"
    );
    // (stdout and stderr are separate pipes: only one stream has an order to tail.)
    assert_eq!(docker.ok(&["logs", "--tail", "1", "slow"]).await, "line3\n");
    let t = docker.ok(&["logs", "-t", "--tail", "1", "slow"]).await;
    let (stamp, line) = t.trim_end().split_once(' ').expect("a timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{t}");
    assert_eq!(line, "line3");

    // The events of the runs above, in Docker's shape, bounded by --until.
    let until = chrono::Utc::now().timestamp() + 1;
    let events = docker
        .ok(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "container=talk",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .await;
    let actions: Vec<&str> = events.lines().collect();
    for want in [
        "container create talk",
        "container start talk",
        "container die talk",
    ] {
        assert!(actions.contains(&want), "{want} missing from {events}");
    }
    docker.ok(&["rm", "talk", "slow"]).await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_docker_cli_images() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;
    let images = docker
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
    docker.ok(&["tag", "busybox", "mine:v1"]).await;
    assert_eq!(
        docker
            .ok(&["images", "-q", "--filter", "reference=mine"])
            .await
            .lines()
            .count(),
        1
    );
    let id = docker.ok(&["inspect", "-f", "{{.Id}}", "mine:v1"]).await;
    assert!(id.trim().starts_with("sha256:"), "{id}");
    // Untag keeps the image while another name points at it.
    let out = docker.ok(&["rmi", "mine:v1"]).await;
    assert!(out.contains("Untagged: mine:v1"), "{out}");
    assert!(!out.contains("Deleted"), "{out}");
    // import of a root filesystem tarball, then run it.
    let rootfs = fixtures().join("busybox-rootfs.tar.gz");
    let rootfs_tar = d.dir.join("rootfs.tar");
    let gz = std::fs::read(&rootfs).unwrap();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    std::fs::write(&rootfs_tar, plain).unwrap();
    let out = docker
        .ok(&["import", path_str(&rootfs_tar), "imported:v2"])
        .await;
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(
        docker
            .ok(&["run", "--rm", "imported:v2", "/bin/echo", "from-import"])
            .await,
        "from-import\n"
    );
    // import with config changes and a message: the image runs its new defaults.
    let out = docker
        .ok(&[
            "import",
            "-c",
            r#"CMD ["/bin/sh", "-c", "echo from-change $GREETING"]"#,
            "-c",
            "ENV GREETING=hi",
            "-c",
            "WORKDIR /tmp",
            "-m",
            "made here",
            path_str(&rootfs_tar),
            "changed:v1",
        ])
        .await;
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(
        docker.ok(&["run", "--rm", "changed:v1"]).await,
        "from-change hi\n"
    );
    assert_eq!(
        docker.ok(&["run", "--rm", "changed:v1", "pwd"]).await,
        "/tmp\n"
    );
    let history = docker
        .ok(&["history", "--format", "{{.Comment}}", "changed:v1"])
        .await;
    assert!(history.contains("made here"), "{history}");
    let out = docker
        .run(&[
            "import",
            "-c",
            "VOLUME /data",
            path_str(&rootfs_tar),
            "nope:v1",
        ])
        .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("VOLUME is not supported"),
        "{}",
        out.stderr
    );
    // save, then load what was saved after the image is gone: same content and
    // defaults, under its name. skopeo reads the archive too (digests checked).
    let saved = d.dir.join("saved.tar");
    docker
        .ok(&["save", "-o", path_str(&saved), "changed:v1", "busybox"])
        .await;
    let oci_dir = d.dir.join("saved-oci");
    let out = std::process::Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}:changed:v1", saved.display()))
        .arg(format!("oci:{}:changed", oci_dir.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo read the saved archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    docker.ok(&["rmi", "changed:v1"]).await;
    let out = docker.ok(&["load", "-i", path_str(&saved)]).await;
    assert!(out.contains("Loaded image: changed:v1"), "{out}");
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(
        docker.ok(&["run", "--rm", "changed:v1"]).await,
        "from-change hi\n"
    );
    let out = docker
        .run(&["save", "-o", path_str(&saved), "nosuch:image"])
        .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);
    // An image in use is a conflict; removing the container frees it.
    docker
        .ok(&["create", "--name", "user", "imported:v2", "/bin/true"])
        .await;
    let out = docker.run(&["rmi", "imported:v2"]).await;
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    docker.ok(&["rm", "user"]).await;
    let out = docker.ok(&["rmi", "imported:v2"]).await;
    assert!(out.contains("Deleted: sha256:"), "{out}");
    // Prune of stopped containers.
    docker
        .ok(&["create", "--name", "old", "busybox", "true"])
        .await;
    let out = docker.ok(&["container", "prune", "-f"]).await;
    assert!(out.contains("Deleted Containers"), "{out}");
    assert_eq!(docker.ok(&["ps", "-aq"]).await, "");
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_docker_cli_refuses_what_boxd_does_not_do() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;
    let out = docker
        .run(&["run", "--rm", "--privileged", "busybox", "true"])
        .await;
    assert_eq!(out.code, Some(125));
    assert!(
        out.stderr.contains("Privileged is not supported"),
        "{}",
        out.stderr
    );
    let out = docker
        .run(&["run", "--rm", "--pid", "host", "busybox", "true"])
        .await;
    assert!(out.stderr.contains("PidMode"), "{}", out.stderr);
    // Links are names on a user network's DNS; the default network's kind (environment
    // variables, hosts entries) is not made.
    let out = docker
        .run(&["run", "--rm", "--link", "web:w", "busybox", "true"])
        .await;
    assert_eq!(out.code, Some(125));
    assert!(
        out.stderr
            .contains("invalid links: links are names on a user-defined network"),
        "{}",
        out.stderr
    );
    // A stop signal is checked at create.
    let out = docker
        .run(&["run", "--rm", "--stop-signal", "NOPE", "busybox", "true"])
        .await;
    assert_eq!(out.code, Some(125));
    assert!(
        out.stderr
            .contains("invalid stop_signal: \"NOPE\" is not a signal"),
        "{}",
        out.stderr
    );
    // Nothing was made by the refused creates.
    assert_eq!(docker.ok(&["ps", "-aq"]).await, "");
    // An API version newer than boxd's is refused with Docker's words.
    let out = tokio::process::Command::new(&docker.bin)
        .args(["ps"])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
        .env("DOCKER_CONFIG", &docker.config)
        .env("DOCKER_API_VERSION", "1.49")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client version 1.49 is too new"), "{err}");
}

#[tokio::test]
async fn root_docker_cli_on_the_docker_socket() {
    require_root!();
    let mut d = TestDaemon::prepare();
    let docker_socket = d.dir.join("docker.sock");
    d.config_lines.push(format!(
        "docker_socket = {:?}",
        docker_socket.display().to_string()
    ));
    d.spawn().await;
    let docker = docker_or_skip!(d);
    // The second socket answers the Docker API (and /v1, as the first does).
    let out = tokio::process::Command::new(&docker.bin)
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .env("DOCKER_HOST", format!("unix://{}", docker_socket.display()))
        .env("DOCKER_CONFIG", &docker.config)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        boxd::compat::API_VERSION
    );
    let mode = std::fs::metadata(&docker_socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o660
    );
    // Gone with the daemon.
    d.stop_daemon(boxd_tests::StopHow::Term);
    assert!(
        !docker_socket.exists(),
        "the Docker socket outlived the daemon"
    );
}

#[tokio::test]
async fn root_docker_py_drives_boxd() {
    require_root!();
    let d = TestDaemon::start().await;
    let python_has_docker = std::process::Command::new("python3")
        .args(["-c", "import docker"])
        .output()
        .is_ok_and(|o| o.status.success());
    require!(
        python_has_docker,
        "docker-py (python3 -c 'import docker') is not installed"
    );
    let docker = docker_or_skip!(d);
    docker.busybox().await;
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1], version="auto", timeout=60)
assert c.ping()
assert c.version()["ApiVersion"]
names = [t for i in c.images.list() for t in i.tags]
assert "busybox:latest" in names, names
# run to the end, output returned
out = c.containers.run("busybox", ["sh", "-c", "echo py-out"], remove=True)
assert out == b"py-out\n", out
# detached: get, exec_run, logs(stream), stop, wait, remove
ctr = c.containers.run("busybox", ["sh", "-c", "echo started; sleep 300"], detach=True, name="py", labels={"app": "py"})
assert c.containers.get("py").id == ctr.id
code, output = ctr.exec_run(["sh", "-c", "echo in-exec; exit 2"])
assert (code, output) == (2, b"in-exec\n"), (code, output)
for chunk in ctr.logs(stream=True, follow=False):
    assert chunk == b"started\n", chunk
    break
assert [x.name for x in c.containers.list(filters={"label": "app=py"})] == ["py"]
ctr.stop(timeout=1)
assert ctr.wait()["StatusCode"] == 137
ctr.reload()
assert ctr.status == "exited", ctr.status
ctr.remove()
assert c.containers.list(all=True) == []
# networks
n = c.networks.create("pynet")
assert c.networks.get("pynet").id == n.id
n.remove()
print("ok")
"#;
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .args(["-c", script, &format!("unix://{}", d.socket.display())])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("docker-py finished in time")
    .expect("run python3");
    assert!(
        out.status.success(),
        "docker-py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let _ = docker;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_docker_cli_volumes_pause_update_rename() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;
    // A named volume keeps data across containers and is listed, in use, then removed.
    assert_eq!(
        docker.ok(&["volume", "create", "data"]).await.trim(),
        "data"
    );
    docker
        .ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f",
        ])
        .await;
    assert_eq!(
        docker
            .ok(&[
                "run",
                "--rm",
                "-v",
                "data:/data:ro",
                "busybox",
                "cat",
                "/data/f"
            ])
            .await,
        "kept\n"
    );
    assert!(docker
        .ok(&["volume", "ls", "-q"])
        .await
        .lines()
        .any(|l| l == "data"));
    docker
        .ok(&[
            "create",
            "--name",
            "holder",
            "--mount",
            "type=volume,src=data,dst=/d",
            "busybox",
            "true",
        ])
        .await;
    let out = docker.run(&["volume", "rm", "data"]).await;
    assert_eq!(
        out.code,
        Some(1),
        "a volume in use is not removed: {}",
        out.stdout
    );
    let mounts = docker
        .ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
            "holder",
        ])
        .await;
    assert_eq!(mounts.trim(), "volume data /d");
    docker.ok(&["rm", "holder"]).await;
    docker.ok(&["volume", "rm", "data"]).await;
    assert_eq!(docker.ok(&["volume", "ls", "-q"]).await, "");

    // pause and unpause, update of a running container, rename.
    docker
        .ok(&[
            "run", "-d", "--name", "p", "-m", "64m", "busybox", "sleep", "300",
        ])
        .await;
    docker.ok(&["pause", "p"]).await;
    assert_eq!(
        docker
            .ok(&["inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "p"])
            .await
            .trim(),
        "paused true"
    );
    let ps = docker.ok(&["ps", "--format", "{{.Status}}"]).await;
    assert!(ps.contains("(Paused)"), "{ps}");
    docker.ok(&["unpause", "p"]).await;
    docker
        .ok(&["update", "-m", "96m", "--memory-swap", "-1", "p"])
        .await;
    assert_eq!(
        docker
            .ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "p"])
            .await
            .trim(),
        (96u64 << 20).to_string()
    );
    docker.ok(&["rename", "p", "q"]).await;
    assert_eq!(docker.ok(&["ps", "--format", "{{.Names}}"]).await, "q\n");
    docker.ok(&["rm", "-f", "q"]).await;
    assert_no_leaks(&d);
}

/// The names of the entries of a tar file.
fn tar_names(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).expect("open the archive");
    let mut archive = tar::Archive::new(file);
    archive
        .entries()
        .expect("read the archive")
        .map(|e| {
            let e = e.expect("an archive entry");
            e.path()
                .expect("an entry path")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Every regular file under `dir`, with its contents.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(files_under(&e.path()));
        } else if t.is_file() {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn root_docker_cli_cp_export_diff() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;

    // On the host: what goes in, where things come out, and a canary that a symlink
    // planted in the container must never reach.
    let host = d.dir.join("cp-host");
    let out = d.dir.join("cp-out");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(host.join("file.txt"), "hello file\n").unwrap();
    std::fs::write(host.join("dir/a.txt"), "A\n").unwrap();
    std::fs::write(host.join("dir/sub/b.txt"), "B\n").unwrap();
    let canary_dir = d.dir.join("canary");
    std::fs::create_dir_all(&canary_dir).unwrap();
    let canary = canary_dir.join("secret");
    std::fs::write(&canary, "host secret\n").unwrap();
    let canary_in = path_str(&canary).trim_start_matches('/').to_owned();
    let canary_dir_in = path_str(&canary_dir).trim_start_matches('/').to_owned();

    docker
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo inside > /tmp/in.txt; mkdir -p /tmp/indir/sub; echo deep > /tmp/indir/sub/d.txt; \
             ln -s / /tmp/rootlink; ln -s ../../../../../.. /tmp/uplink; \
             rm /bin/true; echo extra >> /etc/group; echo ready > /tmp/ready; sleep 300",
        ])
        .await;
    assert!(
        wait_for_async(Duration::from_secs(10), async || {
            docker
                .run(&["exec", "web", "cat", "/tmp/ready"])
                .await
                .stdout
                == "ready\n"
        })
        .await,
        "timed out waiting for the container to write its files"
    );

    // Into a running container: a file into a dir, a dir under a new name.
    docker
        .ok(&["cp", path_str(&host.join("file.txt")), "web:/tmp/"])
        .await;
    assert_eq!(
        docker.ok(&["exec", "web", "cat", "/tmp/file.txt"]).await,
        "hello file\n"
    );
    docker
        .ok(&["cp", path_str(&host.join("dir")), "web:/tmp/dir"])
        .await;
    assert_eq!(
        docker
            .ok(&["exec", "web", "cat", "/tmp/dir/a.txt", "/tmp/dir/sub/b.txt"])
            .await,
        "A\nB\n"
    );
    // A symlink to `/` in the container leads to the container's root, not the host's.
    docker
        .ok(&[
            "cp",
            path_str(&host.join("file.txt")),
            "web:/tmp/rootlink/tmp/via-link.txt",
        ])
        .await;
    assert_eq!(
        docker
            .ok(&["exec", "web", "cat", "/tmp/via-link.txt"])
            .await,
        "hello file\n"
    );

    // Owners: the archive's without -a (root's here), the container's user with -a.
    assert_eq!(
        docker
            .ok(&["exec", "web", "stat", "-c", "%u:%g", "/tmp/file.txt"])
            .await
            .trim(),
        "0:0"
    );
    docker
        .ok(&[
            "run", "-d", "--name", "nob", "-u", "nobody", "busybox", "sleep", "300",
        ])
        .await;
    docker
        .ok(&["cp", "-a", path_str(&host.join("file.txt")), "nob:/tmp/"])
        .await;
    assert_eq!(
        docker
            .ok(&["exec", "nob", "stat", "-c", "%u:%g", "/tmp/file.txt"])
            .await
            .trim(),
        "65534:65534"
    );
    docker.ok(&["rm", "-f", "nob"]).await;

    // Out of a running container: a file and a dir.
    assert_eq!(
        copied_out(&docker, "web:/tmp/in.txt", &out, "in.txt", "in.txt").await,
        "inside\n"
    );
    assert_eq!(
        copied_out(&docker, "web:/tmp/indir", &out, "indir", "indir/sub/d.txt").await,
        "deep\n"
    );
    // `dir/.` copies the contents; `-` writes the tar itself to stdout.
    assert_eq!(
        copied_out(
            &docker,
            "web:/tmp/indir/.",
            &out,
            "contents",
            "contents/sub/d.txt"
        )
        .await,
        "deep\n"
    );
    let tar_out = docker.ok(&["cp", "web:/tmp/in.txt", "-"]).await;
    assert!(
        tar_out.starts_with("in.txt") && tar_out.contains("inside\n"),
        "{tar_out:?}"
    );

    // A missing path fails with Docker's message.
    let missing = docker
        .run(&["cp", "web:/nope", path_str(&out.join("nope"))])
        .await;
    assert_ne!(missing.code, Some(0), "{}", missing.stdout);
    eprintln!("docker cp of a missing path: {}", missing.stderr.trim());
    assert!(
        missing
            .stderr
            .contains("Could not find the file /nope in container web")
            || missing.stderr.contains("No such container:path: web:/nope"),
        "{}",
        missing.stderr
    );
    assert!(!out.join("nope").exists());

    // Symlinks pointing at `/` or above it never reach the host: reads of the
    // canary's host path through them fail, writes land nowhere on the host.
    for link in ["/tmp/rootlink", "/tmp/uplink"] {
        let src = format!("web:{link}/{canary_in}");
        let dst = out.join(format!("escape{}", link.replace('/', "-")));
        let read = docker.run(&["cp", &src, path_str(&dst)]).await;
        assert_ne!(
            read.code,
            Some(0),
            "cp {src} read the host: {}",
            read.stdout
        );
        let dir = format!("web:{link}/{canary_dir_in}/");
        let write = docker
            .run(&["cp", path_str(&host.join("file.txt")), &dir])
            .await;
        assert_ne!(write.code, Some(0), "cp into {dir} succeeded");
        let over = format!("web:{link}/{canary_in}");
        let _ = docker
            .run(&["cp", path_str(&host.join("file.txt")), &over])
            .await;
    }
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "host secret\n");
    let canary_files: Vec<_> = std::fs::read_dir(&canary_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(canary_files, vec![std::ffi::OsString::from("secret")]);
    for (path, data) in files_under(&out) {
        assert!(
            !String::from_utf8_lossy(&data).contains("host secret"),
            "{} holds the host's canary",
            path.display()
        );
    }

    // diff: added, changed and deleted files of the writable layer.
    let diff = docker.ok(&["diff", "web"]).await;
    for line in [
        "A /tmp/in.txt",
        "C /etc/group",
        "D /bin/true",
        "C /tmp",
        "A /tmp/dir/sub/b.txt",
    ] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line:?} not in diff:\n{diff}"
        );
    }

    // export: the image's files and the container's own.
    let running_export = out.join("running.tar");
    docker
        .ok(&["export", "-o", path_str(&running_export), "web"])
        .await;
    let names = tar_names(&running_export);
    for want in ["bin/busybox", "tmp/in.txt", "etc/group"] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == want),
            "{want} not in export"
        );
    }
    assert!(
        !names.iter().any(|n| n == "bin/true"),
        "a deleted file is exported"
    );
    // What is mounted into the container is not exported.
    assert!(
        !names.iter().any(|n| n.starts_with("proc/") && n.len() > 5),
        "proc exported"
    );

    // A stopped container: out, in, and out again; its export too.
    docker.ok(&["stop", "-t", "1", "web"]).await;
    assert_eq!(
        copied_out(
            &docker,
            "web:/tmp/in.txt",
            &out,
            "stopped.txt",
            "stopped.txt"
        )
        .await,
        "inside\n"
    );
    assert_eq!(
        copied_out(
            &docker,
            "web:/tmp/dir",
            &out,
            "stopped-dir",
            "stopped-dir/sub/b.txt"
        )
        .await,
        "B\n"
    );
    docker
        .ok(&[
            "cp",
            path_str(&host.join("file.txt")),
            "web:/tmp/after-stop.txt",
        ])
        .await;
    docker
        .ok(&[
            "cp",
            "web:/tmp/after-stop.txt",
            path_str(&out.join("after-stop.txt")),
        ])
        .await;
    assert_eq!(
        std::fs::read_to_string(out.join("after-stop.txt")).unwrap(),
        "hello file\n"
    );
    let missing = docker
        .run(&["cp", "web:/tmp/uplink/nope", path_str(&out.join("nope"))])
        .await;
    assert_ne!(missing.code, Some(0));
    let stopped_export = out.join("stopped.tar");
    docker
        .ok(&["export", "-o", path_str(&stopped_export), "web"])
        .await;
    let names = tar_names(&stopped_export);
    for want in ["bin/busybox", "tmp/in.txt", "tmp/after-stop.txt"] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == want),
            "{want} not in export"
        );
    }
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "host secret\n");

    docker.ok(&["rm", "-f", "web"]).await;
    assert_eq!(docker.ok(&["ps", "-aq"]).await, "");
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_docker_cli_cp_maps_owners_in_a_user_namespace() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    d.import_busybox().await;
    let script = "echo out > /tmp/o; chown 1000:1001 /tmp/o; echo ready > /tmp/ready; sleep 300";
    let id = d
        .create(
            serde_json::json!({"image": "busybox", "userns": "auto", "cmd": ["sh", "-c", script]}),
        )
        .await;
    let (status, v) = d
        .api("POST", &format!("/v1/containers/{id}/start"), None)
        .await;
    if status.as_u16() != 204 {
        d.remove_container(&id).await;
        require!(false, "idmapped mounts unsupported here: {v}");
    }
    let uid0 = d.inspect(&id).await["config"]["userns"]["uid_map"][0]["host_id"]
        .as_u64()
        .unwrap() as u32;
    assert!(
        wait_for_async(Duration::from_secs(10), async || {
            docker.run(&["exec", &id, "cat", "/tmp/ready"]).await.stdout == "ready\n"
        })
        .await,
        "timed out waiting for the container"
    );

    // In: the archive's owner is the container's id, stored as its host id.
    let host = d.dir.join("owned.txt");
    std::fs::write(&host, "owned\n").unwrap();
    std::os::unix::fs::chown(&host, Some(1234), Some(5678)).unwrap();
    docker
        .ok(&["cp", path_str(&host), &format!("{id}:/tmp/")])
        .await;
    assert_eq!(
        docker
            .ok(&["exec", &id, "stat", "-c", "%u:%g", "/tmp/owned.txt"])
            .await
            .trim(),
        "1234:5678"
    );
    let pid = d.inspect(&id).await["pid"].as_u64().unwrap();
    let meta = std::fs::symlink_metadata(format!("/proc/{pid}/root/tmp/owned.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), uid0 + 1234);

    // Out: the container's ids again.
    let out = d.dir.join("o.tar");
    let tar_bytes = docker.ok(&["cp", &format!("{id}:/tmp/o"), "-"]).await;
    std::fs::write(&out, tar_bytes.as_bytes()).unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (entry.header().uid().unwrap(), entry.header().gid().unwrap()),
        (1000, 1001)
    );

    // Stopped, its idmapped layers are not mounted anywhere: refused, with the reason.
    d.stop_container(&id, 1).await;
    let refused = docker
        .run(&["cp", &format!("{id}:/tmp/o"), path_str(&d.dir.join("o2"))])
        .await;
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains("user namespace"),
        "{}",
        refused.stderr
    );

    d.remove_container(&id).await;
    assert_no_leaks(&d);
}

/// The archive endpoints on the wire: the stat header, Docker's errors, a gzip body.
#[tokio::test]
async fn root_docker_archive_endpoints_on_the_wire() {
    use base64::Engine as _;
    use hyper::Method;
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(serde_json::json!({"image": "busybox", "cmd": ["sh", "-c",
            "echo abc > /tmp/f; ln -s /tmp/f /tmp/l; echo ready > /tmp/ready; sleep 300"]}))
        .await;
    assert!(
        wait_for_async(Duration::from_secs(10), async || {
            let (s, _) = d
                .request(
                    Method::HEAD,
                    &format!("/v1.43/containers/{id}/archive?path=/tmp/ready"),
                    None,
                    Default::default(),
                )
                .await
                .unwrap();
            s.as_u16() == 200
        })
        .await,
        "timed out waiting for the container"
    );
    let stat = async |path: &str| -> Value {
        let resp = d
            .send(
                Method::HEAD,
                &format!("/v1.43/containers/{id}/archive?path={path}"),
                None,
                Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "HEAD {path}");
        let h = resp.headers()["x-docker-container-path-stat"]
            .to_str()
            .unwrap()
            .to_owned();
        let json = base64::engine::general_purpose::STANDARD.decode(h).unwrap();
        serde_json::from_slice(&json).unwrap()
    };
    let l = stat("/tmp/l").await;
    assert_eq!(l["name"], "l", "{l}");
    assert_eq!(l["linkTarget"], "/tmp/f", "{l}");
    assert_ne!(l["mode"].as_u64().unwrap() & (1 << 27), 0, "{l}");
    let t = stat("/tmp/").await;
    assert_eq!(t["name"], "tmp", "{t}");
    assert_eq!(
        t["mode"].as_u64().unwrap(),
        (1 << 31) | (1 << 20) | 0o777,
        "{t}"
    );
    let f = stat("tmp/f").await;
    assert_eq!(
        (f["size"].as_u64(), f["mode"].as_u64()),
        (Some(4), Some(0o644)),
        "{f}"
    );

    let (s, v) = d
        .api(
            "GET",
            &format!("/v1.43/containers/{id}/archive?path=/nope"),
            None,
        )
        .await;
    assert_eq!(s.as_u16(), 404);
    assert_eq!(
        v["message"],
        format!("Could not find the file /nope in container {id}")
    );
    let (s, _) = d
        .api("GET", "/v1.43/containers/nosuch/archive?path=/", None)
        .await;
    assert_eq!(s.as_u16(), 404);
    let (s, v) = d
        .api("GET", &format!("/v1.43/containers/{id}/archive"), None)
        .await;
    assert_eq!(s.as_u16(), 400, "{v}");

    // A gzip tar body unpacks; a file as the destination is a 400.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o640);
    h.set_uid(7);
    h.set_gid(8);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "put.txt", &b"gzip\n"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let put = async |path: &str, body: &[u8]| {
        d.request(
            Method::PUT,
            &format!("/v1.43/containers/{id}/archive?path={path}&noOverwriteDirNonDir=true"),
            Some("application/x-tar"),
            bytes::Bytes::copy_from_slice(body),
        )
        .await
        .unwrap()
    };
    assert_eq!(put("/tmp", &gz).await.0.as_u16(), 200);
    let (s, body) = put("/tmp/f", &tar).await;
    assert_eq!(s.as_u16(), 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(put("/nowhere", &tar).await.0.as_u16(), 404);
    let (s, body) = put("/tmp", b"this is not a tar archive at all").await;
    assert_eq!(s.as_u16(), 400, "{}", String::from_utf8_lossy(&body));
    let (s, body) = d
        .request(
            Method::GET,
            &format!("/v1.43/containers/{id}/archive?path=/tmp/put.txt"),
            None,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 200);
    let mut archive = tar::Archive::new(body.as_ref());
    let mut e = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.path().unwrap().to_str(), Some("put.txt"));
    assert_eq!(
        (e.header().uid().unwrap(), e.header().gid().unwrap()),
        (7, 8)
    );
    assert_eq!(e.header().mode().unwrap(), 0o640);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut e, &mut text).unwrap();
    assert_eq!(text, "gzip\n");

    let changes = d
        .api_ok("GET", &format!("/v1.43/containers/{id}/changes"), None, 200)
        .await;
    let has = |p: &str, k: u64| {
        changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["Path"] == p && c["Kind"] == k)
    };
    assert!(
        has("/tmp/put.txt", 1) && has("/tmp/f", 1) && has("/tmp", 0),
        "{changes}"
    );

    d.remove_container(&id).await;
    assert_no_leaks(&d);
}

/// A stopped container with a disk limit: its writable layer is on its disk image,
/// which `docker cp` mounts detached (and never while a run has it).
#[tokio::test]
async fn root_docker_cli_cp_with_a_disk_limit() {
    require_root!();
    let d = TestDaemon::start().await;
    let docker = docker_or_skip!(d);
    docker.busybox().await;
    let created = docker
        .run(&[
            "create",
            "--name",
            "disk",
            "--storage-opt",
            "size=32m",
            "busybox",
            "sh",
            "-c",
            "echo on-disk > /tmp/d; cat /tmp/in 2>/dev/null; true",
        ])
        .await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    // Never started: there is no writable layer yet.
    let early = docker
        .run(&["cp", "disk:/etc/passwd", path_str(&d.dir.join("p"))])
        .await;
    assert_ne!(early.code, Some(0));
    assert!(
        early.stderr.contains("never ran"),
        "{}\n{}",
        early.stderr,
        d.log_text()
    );

    docker.ok(&["start", "disk"]).await;
    assert_eq!(docker.ok(&["wait", "disk"]).await.trim(), "0");
    let out = d.dir.join("d.txt");
    docker.ok(&["cp", "disk:/tmp/d", path_str(&out)]).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "on-disk\n");
    let host = d.dir.join("in");
    std::fs::write(&host, "copied in\n").unwrap();
    docker.ok(&["cp", path_str(&host), "disk:/tmp/in"]).await;
    // The next run sees it: it went onto the image.
    docker.ok(&["start", "disk"]).await;
    assert_eq!(docker.ok(&["wait", "disk"]).await.trim(), "0");
    assert_eq!(docker.ok(&["logs", "disk"]).await, "copied in\n");
    let diff = docker.ok(&["diff", "disk"]).await;
    for line in ["A /tmp/d", "A /tmp/in"] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line:?} not in diff:\n{diff}"
        );
    }
    docker.ok(&["rm", "-f", "disk"]).await;
    assert_no_leaks(&d);
}
