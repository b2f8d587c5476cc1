//! Attach and interactive run: a terminal for the app (`tty`), stdin kept open
//! (`open_stdin`), `POST .../attach` over the upgrade, resize, detach, and
//! `boxctl run -it` / `run -i` driven through a real pty and a pipe.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use boxd_tests::{boxctl_bin, require_root, TestDaemon};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Kills a spawned boxctl if the test fails before it ended.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `POST /v1/containers/{name}/attach?QUERY` with the upgrade; the raw stream after
/// the `101`, or the status line and body of any other answer.
async fn attach_upgrade(d: &TestDaemon, name: &str, query: &str) -> Result<UnixStream, String> {
    let mut stream = UnixStream::connect(&d.socket).await.expect("connect");
    let req = format!(
        "POST /v1/containers/{name}/attach?{query} HTTP/1.1\r\nHost: boxd\r\n\
         Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut byte))
            .await
            .expect("answer in time")
            .unwrap();
        assert_eq!(n, 1, "connection closed in the headers: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 101") {
        return Ok(stream);
    }
    let mut body = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut body))
        .await
        .map_or(0, |r| r.unwrap_or(0));
    Err(format!("{head}{}", String::from_utf8_lossy(&body[..n])))
}

/// Reads until `needle` shows up; everything read is appended to `seen`.
async fn read_until(stream: &mut UnixStream, seen: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
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

/// Reads until the daemon closes the stream.
async fn read_to_end(stream: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut out))
        .await
        .expect("stream ends in time")
        .unwrap();
    out
}

/// A running busybox shell with a terminal and open stdin, named `name`.
async fn tty_shell(d: &TestDaemon, name: &str) -> String {
    d.import_busybox().await;
    d.run(json!({
        "image": "busybox",
        "name": name,
        "cmd": ["/bin/sh"],
        "tty": true,
        "open_stdin": true,
    }))
    .await
}

fn pty_read_until(master: &mut std::fs::File, seen: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
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
}

/// `boxctl run -it busybox sh` through a terminal the test holds: the app is on a pty
/// of its own devpts, `echo $((6*7))` answers 42, `exit 5` is boxctl's status, and the
/// local terminal is back in cooked mode afterwards.
#[tokio::test]
async fn root_run_it_through_a_pty_exit_status_is_the_containers() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;

    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let before = nix::sys::termios::tcgetattr(&slave).unwrap();
    let child = std::process::Command::new(boxctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["run", "-it", "--name", "inter", "busybox", "sh"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .expect("spawn boxctl");
    let mut child = Reap(child);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    // Typed before the shell may even exist: nothing is lost.
    master.write_all(b"tty; echo $((6*7))\r").unwrap();
    pty_read_until(&mut master, &mut seen, "42");
    assert!(
        String::from_utf8_lossy(&seen).contains("/dev/pts/0"),
        "the app's terminal is the container's first pty: {:?}",
        String::from_utf8_lossy(&seen)
    );
    master.write_all(b"exit 5\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&master),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(50u16)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            let _ = master.read(&mut buf);
        }
        assert!(Instant::now() < deadline, "boxctl run -it did not end");
    };
    assert_eq!(status.code(), Some(5), "boxctl's status = the shell's");
    let after = nix::sys::termios::tcgetattr(&slave).unwrap();
    assert_eq!(
        before.local_flags, after.local_flags,
        "raw mode is undone on exit"
    );
    let c = d.inspect("inter").await;
    assert_eq!(c["state"], "exited");
    assert_eq!(c["exit_code"], 5);
    assert_eq!(c["config"]["tty"], true);
    assert_eq!(c["config"]["open_stdin"], true);
    // The terminal's output went to the log too, as one stream.
    assert!(d.stdout_of("inter").await.contains("42"));
}

/// Attach to a running tty container: resize changes `stty size`, a second client
/// cannot take stdin, ctrl-p ctrl-q detaches and the container keeps running with
/// its stdin open for the next attach.
#[tokio::test]
async fn root_attach_resize_detach_keeps_the_container_running() {
    require_root!();
    let d = TestDaemon::start().await;
    tty_shell(&d, "term").await;

    let q = "stream=1&stdin=1&stdout=1&stderr=1";
    let mut s = attach_upgrade(&d, "term", q).await.expect("attach");
    let mut seen = Vec::new();
    s.write_all(b"echo $((40+2))\r").await.unwrap();
    read_until(&mut s, &mut seen, "42").await;

    d.api_ok("POST", "/v1/containers/term/resize?h=33&w=101", None, 204)
        .await;
    s.write_all(b"stty size\r").await.unwrap();
    read_until(&mut s, &mut seen, "33 101").await;

    // Another client may watch, but not type.
    let err = attach_upgrade(&d, "term", q)
        .await
        .expect_err("stdin in use");
    assert!(err.starts_with("HTTP/1.1 409"), "{err}");
    assert!(err.contains("stdin_in_use"), "{err}");
    let mut watcher = attach_upgrade(&d, "term", "stream=1&stdout=1")
        .await
        .expect("read-only attach");

    s.write_all(b"echo watched-$((1+1))\r").await.unwrap();
    read_until(&mut s, &mut seen, "watched-2").await;
    let mut w_seen = Vec::new();
    read_until(&mut watcher, &mut w_seen, "watched-2").await;

    // Detach: the daemon ends this stream, the shell lives on.
    s.write_all(b"\x10\x11").await.unwrap();
    read_to_end(&mut s).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(d.inspect("term").await["state"], "running");

    // Stdin is still open: a new client takes it over (with the log replayed first).
    let mut again = attach_upgrade(&d, "term", &format!("{q}&logs=1"))
        .await
        .expect("attach again");
    let mut seen = Vec::new();
    read_until(&mut again, &mut seen, "watched-2").await;
    again.write_all(b"exit 7\r").await.unwrap();
    read_to_end(&mut again).await;
    read_to_end(&mut watcher).await;
    assert_eq!(d.wait("term").await["exit_code"], 7);

    // Not running any more: attach and resize are 409.
    let err = attach_upgrade(&d, "term", q).await.expect_err("stopped");
    assert!(err.starts_with("HTTP/1.1 409"), "{err}");
    assert!(err.contains("not_running"), "{err}");
    let (status, body) = d
        .api("POST", "/v1/containers/term/resize?h=10&w=10", None)
        .await;
    assert_eq!(status.as_u16(), 409, "{body}");
}

/// `echo hi | boxctl run -i busybox cat` prints hi: the pipe's end is the app's stdin
/// EOF (`stdin_once`), and the exit status is the container's.
#[tokio::test]
async fn root_run_i_with_piped_stdin() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let child = std::process::Command::new(boxctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args([
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "cat; echo err >&2; exit 3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn boxctl");
    let mut child = Reap(child);
    child.0.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let ended = boxd_tests::wait_for(Duration::from_secs(30), || {
        child.0.try_wait().unwrap().is_some()
    });
    assert!(ended, "boxctl run -i did not end");
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(out, "hi\n", "stderr: {err}");
    assert_eq!(err, "err\n", "stderr stays apart from stdout");
    assert_eq!(child.0.wait().unwrap().code(), Some(3));
    let (_, list) = d.api("GET", "/v1/containers?all=true", None).await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "--rm removed it: {list}"
    );
}

/// Attach to a container that has exited is a 409, stdin without `open_stdin` a 400.
#[tokio::test]
async fn root_attach_to_a_stopped_container_is_409() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "name": "done", "cmd": ["true"]}))
        .await;
    d.wait(&id).await;
    let err = attach_upgrade(&d, "done", "stream=1&stdout=1")
        .await
        .expect_err("stopped");
    assert!(err.starts_with("HTTP/1.1 409"), "{err}");

    d.run(json!({"image": "busybox", "name": "closed", "cmd": ["sleep", "300"]}))
        .await;
    let err = attach_upgrade(&d, "closed", "stream=1&stdin=1")
        .await
        .expect_err("no open stdin");
    assert!(err.starts_with("HTTP/1.1 400"), "{err}");
    let (status, _) = d
        .api("POST", "/v1/containers/closed/resize?h=10&w=10", None)
        .await;
    assert_eq!(status.as_u16(), 400, "no terminal to resize");
}

/// Without a terminal, SIGTERM sent to `boxctl run -i` goes to the container (whose
/// trap decides), and boxctl exits with the container's status.
#[tokio::test]
async fn root_run_i_forwards_sigterm_to_the_container() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.1; done";
    let child = std::process::Command::new(boxctl_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args([
            "run", "-i", "--name", "proxied", "busybox", "sh", "-c", script,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn boxctl");
    let mut child = Reap(child);
    // stdin stays open (the app must not see EOF); read until the trap is set. The
    // output is read on a thread, so a boxctl that hangs fails the test, not CI.
    let _stdin = child.0.stdin.take().unwrap();
    let mut stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(e) => panic!("no 'ready' ({e}): {}", String::from_utf8_lossy(&out)),
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status =
        boxd_tests::wait_for_value(deadline.saturating_duration_since(Instant::now()), || {
            child.0.try_wait().unwrap()
        })
        .expect("boxctl did not end after SIGTERM");
    // The reader ends with boxctl's stdout.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(10)) {
        out.extend_from_slice(&chunk);
    }
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("got-term"),
        "the container's trap did not run: {out}"
    );
    assert_eq!(
        status.code(),
        Some(3),
        "boxctl exits with the container's status"
    );
    let c = d.inspect("proxied").await;
    assert_eq!(
        (c["state"].as_str(), c["exit_code"].as_i64()),
        (Some("exited"), Some(3)),
        "{c}"
    );
    d.remove_container("proxied").await;
}
