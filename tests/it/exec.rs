//! Exec into a running container: namespaces, cgroup and security equal to the app's,
//! framing, exit codes, stdin, terminals over the upgraded connection, resize, detach,
//! OOM, and boxctl driven through a real pty.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use boxd_tests::{boxctl_bin, require_root, wait_for_async, wait_for_value_async, TestDaemon};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const MIB: u64 = 1024 * 1024;

/// Split Docker-framed output into (stdout, stderr).
pub(crate) fn unframe(mut b: &[u8]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        assert_eq!(&b[1..4], &[0, 0, 0], "frame header");
        assert!(b.len() >= 8 + len, "truncated frame");
        match b[0] {
            1 => out.extend_from_slice(&b[8..8 + len]),
            2 => err.extend_from_slice(&b[8..8 + len]),
            s => panic!("unknown stream byte {s}"),
        }
        b = &b[8 + len..];
    }
    assert!(b.is_empty(), "trailing bytes after the frames");
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// An upgraded exec connection.
struct Session {
    stream: UnixStream,
    id: String,
}

/// `POST /v1/containers/{name}/exec` with `Connection: Upgrade`; `early` is sent right
/// behind the request, before the answer is read.
async fn exec_upgrade(d: &TestDaemon, name: &str, body: Value, early: &[u8]) -> Session {
    let mut stream = UnixStream::connect(&d.socket).await.expect("connect");
    let body = body.to_string();
    let req = format!(
        "POST /v1/containers/{name}/exec HTTP/1.1\r\nHost: boxd\r\nConnection: Upgrade\r\n\
         Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(early).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
            .await
            .expect("answer in time")
            .unwrap();
        assert_eq!(n, 1, "connection closed in the headers: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "answer: {head}");
    let id = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("boxd-exec-id:")
                .map(|v| v.trim().to_owned())
        })
        .expect("exec id header");
    Session { stream, id }
}

impl Session {
    async fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), self.stream.read_to_end(&mut out))
            .await
            .expect("output ends in time")
            .unwrap();
        out
    }

    /// Read until `needle` shows up in the output; returns all read so far.
    async fn read_until(&mut self, seen: &mut Vec<u8>, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{needle:?} not seen; got {:?}",
                        String::from_utf8_lossy(seen)
                    )
                })
                .unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}; got {:?}",
                String::from_utf8_lossy(seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    }
}

/// A plain (non-upgraded) exec: `(exec id, stdout, stderr)`.
pub(crate) async fn exec_plain(
    d: &TestDaemon,
    name: &str,
    cmd: &[&str],
) -> (String, String, String) {
    let resp = d
        .request(
            hyper::Method::POST,
            &format!("/v1/containers/{name}/exec"),
            Some("application/json"),
            json!({"cmd": cmd}).to_string().into(),
        )
        .await
        .expect("exec request");
    assert_eq!(resp.0.as_u16(), 200, "{}", String::from_utf8_lossy(&resp.1));
    let (out, err) = unframe(&resp.1);
    let id = last_exec(d, name).await["id"].as_str().unwrap().to_owned();
    (id, out, err)
}

async fn last_exec(d: &TestDaemon, name: &str) -> Value {
    let c = d.inspect(name).await;
    c["execs"]
        .as_array()
        .and_then(|a| a.last().cloned())
        .unwrap_or_else(|| panic!("no execs in inspect: {c}"))
}

/// Poll `GET /v1/exec/{id}` until it ended.
async fn exec_result(d: &TestDaemon, id: &str) -> Value {
    let path = format!("/v1/exec/{id}");
    let mut last = Value::Null;
    let ended = wait_for_value_async(Duration::from_secs(20), async || {
        last = d.api_ok("GET", &path, None, 200).await;
        (last["running"] == false).then(|| last.clone())
    })
    .await;
    ended.unwrap_or_else(|| panic!("exec still running: {last}"))
}

async fn sleeper(d: &TestDaemon, name: &str, extra: Value) -> String {
    d.import_busybox().await;
    let mut body = json!({
        "image": "busybox",
        "name": name,
        "cmd": ["/bin/sh", "-c", "echo made-by-app > /tmp/marker; exec sleep 300"],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let id = d.run(body).await;
    // The marker is written before the sleep: wait for it through exec itself.
    let marked = wait_for_async(Duration::from_secs(10), async || {
        let (_, out, _) = exec_plain(d, name, &["cat", "/tmp/marker"]).await;
        out.contains("made-by-app")
    })
    .await;
    assert!(marked, "marker never appeared");
    id
}

fn status_fields(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            [
                "CapEff",
                "CapPrm",
                "CapBnd",
                "CapInh",
                "CapAmb",
                "Seccomp",
                "NoNewPrivs",
            ]
            .iter()
            .any(|k| l.starts_with(&format!("{k}:")))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn root_exec_joins_the_containers_namespaces_cgroup_and_security() {
    require_root!();
    let d = TestDaemon::start().await;
    let id = sleeper(&d, "web", json!({})).await;

    let (_, ps, _) = exec_plain(&d, "web", &["ps", "-o", "pid,args"]).await;
    let first = ps.lines().nth(1).unwrap_or_default();
    assert!(
        first.trim_start().starts_with("1 ") && first.contains("sleep 300"),
        "the app is pid 1 in the exec's view:\n{ps}"
    );
    assert!(
        ps.lines().count() <= 4,
        "only the container's processes:\n{ps}"
    );

    let (_, host, _) = exec_plain(&d, "web", &["hostname"]).await;
    assert_eq!(host.trim(), "web");

    let (_, mine, _) = exec_plain(&d, "web", &["cat", "/proc/self/cgroup"]).await;
    let (_, app, _) = exec_plain(&d, "web", &["cat", "/proc/1/cgroup"]).await;
    assert_eq!(mine, app, "same cgroups as the app");
    let (_, ns_self, _) = exec_plain(&d, "web", &["ls", "-l", "/proc/self/ns/"]).await;
    let (_, ns_app, _) = exec_plain(&d, "web", &["ls", "-l", "/proc/1/ns/"]).await;
    let links = |s: &str| -> Vec<String> {
        s.lines()
            .filter_map(|l| l.split("-> ").nth(1).map(str::to_owned))
            .filter(|l| !l.starts_with("pid_for") && !l.starts_with("time"))
            .collect()
    };
    assert_eq!(
        links(&ns_self),
        links(&ns_app),
        "same namespaces as the app"
    );

    let (_, st_self, _) = exec_plain(&d, "web", &["cat", "/proc/self/status"]).await;
    let (_, st_app, _) = exec_plain(&d, "web", &["cat", "/proc/1/status"]).await;
    let (a, b) = (status_fields(&st_self), status_fields(&st_app));
    assert!(a.iter().any(|l| l.starts_with("CapEff")), "{st_self}");
    assert_eq!(
        a, b,
        "capabilities, seccomp and no_new_privs equal the app's"
    );

    // The cgroup on the host lists the exec'd process while it runs.
    let s = exec_upgrade(&d, "web", json!({"cmd": ["sleep", "30"]}), b"").await;
    let info = d
        .api_ok("GET", &format!("/v1/exec/{}", s.id), None, 200)
        .await;
    let pid = info["pid"].as_u64().expect("pid") as i32;
    let procs = d.read_cgroup("pids", &id, "cgroup.procs");
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "exec pid {pid} in the container's cgroup: {procs}"
    );
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    let r = exec_result(&d, &s.id).await;
    assert_eq!(r["exit_code"], 137, "{r}");
}

#[tokio::test]
async fn root_exec_frames_streams_and_propagates_exit_codes() {
    require_root!();
    let d = TestDaemon::start().await;
    sleeper(&d, "codes", json!({})).await;
    let (id, out, err) = exec_plain(
        &d,
        "codes",
        &["sh", "-c", "echo to-out; echo to-err >&2; exit 3"],
    )
    .await;
    assert_eq!((out.as_str(), err.as_str()), ("to-out\n", "to-err\n"));
    let r = exec_result(&d, &id).await;
    assert_eq!(r["exit_code"], 3, "{r}");
    assert_eq!(r["cmd"][0], "sh");
    let recent = d.inspect("codes").await["execs"].clone();
    assert!(
        recent
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["id"] == id.as_str())),
        "inspect lists the exec: {recent}"
    );
    // A command that does not exist is refused before anything streams.
    let (status, v) = d
        .api(
            "POST",
            "/v1/containers/codes/exec",
            Some(json!({"cmd": ["/nope"]})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), v["code"].as_str()),
        (400, Some("exec_failed")),
        "{v}"
    );
    let (status, v) = d.api("GET", "/v1/exec/nosuch", None).await;
    assert_eq!(status.as_u16(), 404, "{v}");
}

#[tokio::test]
async fn root_exec_stdin_is_piped_and_early_bytes_are_kept() {
    require_root!();
    let d = TestDaemon::start().await;
    sleeper(&d, "pipe", json!({})).await;
    // The bytes go out right behind the request, before the process exists.
    let mut s = exec_upgrade(
        &d,
        "pipe",
        json!({"cmd": ["sh", "-c", "cat; echo done >&2"], "stdin": true}),
        b"early bytes\n",
    )
    .await;
    s.stream.write_all(b"later\n").await.unwrap();
    s.stream.shutdown().await.unwrap(); // half-close: stdin EOF
    let out = s.read_to_end().await;
    let (out, err) = unframe(&out);
    assert_eq!(out, "early bytes\nlater\n");
    assert_eq!(err, "done\n");
    let r = exec_result(&d, &s.id).await;
    assert_eq!(r["exit_code"], 0, "{r}");
}

#[tokio::test]
async fn root_exec_tty_session_resize_and_detach() {
    require_root!();
    let d = TestDaemon::start().await;
    sleeper(&d, "term", json!({})).await;
    let mut s = exec_upgrade(
        &d,
        "term",
        json!({"cmd": ["sh"], "tty": true, "stdin": true, "height": 30, "width": 100}),
        b"",
    )
    .await;
    let mut seen = Vec::new();
    s.stream.write_all(b"tty; stty size\n").await.unwrap();
    s.read_until(&mut seen, "30 100").await;
    assert!(
        String::from_utf8_lossy(&seen).contains("/dev/pts/"),
        "{seen:?}"
    );
    d.api_ok(
        "POST",
        &format!("/v1/exec/{}/resize?h=40&w=120", s.id),
        None,
        204,
    )
    .await;
    s.stream.write_all(b"stty size\n").await.unwrap();
    s.read_until(&mut seen, "40 120").await;
    s.stream.write_all(b"echo $((6*7))\n").await.unwrap();
    s.read_until(&mut seen, "42").await;
    // ctrl-p ctrl-q: the connection ends, the shell and the container keep running.
    s.stream.write_all(&[0x10, 0x11]).await.unwrap();
    let _ = s.read_to_end().await;
    let info = d
        .api_ok("GET", &format!("/v1/exec/{}", s.id), None, 200)
        .await;
    assert_eq!(info["running"], true, "detached exec keeps running: {info}");
    assert_eq!(d.inspect("term").await["state"], "running");
    let (status, _) = d.api("POST", "/v1/exec/nosuch/resize?h=1&w=1", None).await;
    assert_eq!(status.as_u16(), 404);
}

#[tokio::test]
async fn root_exec_tty_exit_code_over_the_upgrade() {
    require_root!();
    let d = TestDaemon::start().await;
    sleeper(&d, "tty5", json!({})).await;
    let mut s = exec_upgrade(
        &d,
        "tty5",
        json!({"cmd": ["sh"], "tty": true, "stdin": true}),
        b"echo $((6*7))\n",
    )
    .await;
    let mut seen = Vec::new();
    s.read_until(&mut seen, "42").await;
    s.stream.write_all(b"exit 5\n").await.unwrap();
    let _ = s.read_to_end().await;
    let r = exec_result(&d, &s.id).await;
    assert_eq!(r["exit_code"], 5, "{r}");
}

#[tokio::test]
async fn root_exec_memory_hog_is_oom_killed_against_the_container() {
    require_root!();
    let d = TestDaemon::start().await;
    let id = sleeper(&d, "oomy", json!({"resources": {"memory_bytes": 32 * MIB}})).await;
    let mut s = exec_upgrade(
        &d,
        "oomy",
        // oom_score_adj 1000: whatever the kernel kills, it is the hog, never the app.
        json!({"cmd": ["sh", "-c", "echo 1000 > /proc/self/oom_score_adj; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}"]}),
        b"",
    )
    .await;
    let _ = s.read_to_end().await;
    let r = exec_result(&d, &s.id).await;
    assert_eq!(r["exit_code"], 137, "{r}");
    assert_eq!(r["oom_killed"], true, "{r}");
    let c = d.inspect(&id).await;
    assert_eq!(c["state"], "running", "the app survives: {c}");
    let mut events = d
        .stream_lines(&format!(
            "/v1/events?since=0&until={}&container={id}",
            (chrono::Utc::now() + chrono::Duration::seconds(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
        .await;
    let mut actions = Vec::new();
    while let Some(e) = events.next_json(Duration::from_secs(5)).await {
        actions.push(e["action"].as_str().unwrap_or_default().to_owned());
    }
    assert!(actions.iter().any(|a| a == "oom"), "oom event: {actions:?}");
}

#[tokio::test]
async fn root_exec_into_a_stopped_container_is_409() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .create(json!({"image": "busybox", "name": "idle", "cmd": ["true"]}))
        .await;
    let (status, v) = d
        .api(
            "POST",
            &format!("/v1/containers/{id}/exec"),
            Some(json!({"cmd": ["true"]})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), v["code"].as_str()),
        (409, Some("not_running")),
        "{v}"
    );
    d.start_container(&id).await;
    d.wait(&id).await;
    let (status, _) = d
        .api(
            "POST",
            "/v1/containers/idle/exec",
            Some(json!({"cmd": ["true"]})),
        )
        .await;
    assert_eq!(status.as_u16(), 409);
}

/// boxctl exec -it through a real terminal held by the test, and with piped stdin.
#[tokio::test]
async fn root_boxctl_exec_interactive_through_a_pty_and_piped() {
    require_root!();
    let d = TestDaemon::start().await;
    sleeper(&d, "shell", json!({})).await;

    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let mut child = std::process::Command::new(boxctl_bin())
        .args(["--socket"])
        .arg(&d.socket)
        .args(["exec", "-it", "shell", "sh"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn boxctl");
    let mut master = std::fs::File::from(pty.master);
    let fd = master.as_raw_fd();
    let read_until = |master: &mut std::fs::File, seen: &mut Vec<u8>, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(seen).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not seen: {:?}",
                String::from_utf8_lossy(seen)
            );
            let mut pfd = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(master),
                nix::poll::PollFlags::POLLIN,
            )];
            if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) == 0 {
                continue;
            }
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => panic!("pty closed; seen {:?}", String::from_utf8_lossy(seen)),
            }
        }
    };
    let _ = fd;
    let mut seen = Vec::new();
    master.write_all(b"echo $((6*7))\r").unwrap();
    read_until(&mut master, &mut seen, "42");
    master.write_all(b"exit 5\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        // Keep the pty drained so boxctl never blocks writing to it.
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(50u16)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            let _ = master.read(&mut buf);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("boxctl exec -it did not end");
        }
    };
    assert_eq!(
        status.code(),
        Some(5),
        "exit status of boxctl = the shell's"
    );

    // Piped stdin, no terminal.
    let mut child = std::process::Command::new(boxctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["exec", "-i", "shell", "sh", "-c", "cat; exit 4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn boxctl");
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{out:?}");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}
