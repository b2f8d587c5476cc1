//! Crash safety: the daemon is killed (SIGKILL, through the `fault-injection` crash
//! points) at every named point of every operation, restarted, and must then agree with
//! the kernel, leak nothing, and let the operation be retried.

use std::ffi::OsStr;
use std::time::Duration;

use boxd_tests::{assert_no_leaks, require_root, StopHow, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

/// Restarts `d` with `BOXD_CRASH_AT=point`.
async fn arm(d: &mut TestDaemon, point: &str) {
    d.stop_daemon(StopHow::Term);
    d.spawn_with(&[], &[("BOXD_CRASH_AT", OsStr::new(point))])
        .await;
}

/// Sends a request that is expected to kill the daemon, then checks it died by SIGKILL
/// and starts it again normally.
async fn crash_on(
    d: &mut TestDaemon,
    point: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) {
    let (ct, bytes) = match &body {
        Some(v) => (Some("application/json"), v.to_string().into()),
        None => (None, Default::default()),
    };
    let _ = d.request(method, path, ct, bytes).await; // the connection drops mid-way
    let status = d
        .wait_daemon_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the daemon did not die at {point}; log:\n{}", d.log_text()));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "died at {point} but not by SIGKILL: {status}"
    );
    assert!(
        d.log_text()
            .contains(&format!("crash point {point} reached")),
        "{point} not reached"
    );
    d.spawn().await;
}

async fn assert_consistent(d: &TestDaemon, point: &str) {
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert_eq!(check["ok"], true, "after a crash at {point}: {check}");
}

async fn run_sleeper(d: &TestDaemon, name: &str) -> String {
    d.run(json!({"image": "busybox", "name": name, "cmd": ["sleep", "1000"]}))
        .await
}

#[tokio::test]
async fn root_crash_during_create_and_start_is_finished_or_undone() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    for point in [
        "create.after_insert",
        "start.before_launch",
        "start.after_cgroup",
        "start.after_shim",
        "start.after_launch_recorded",
    ] {
        let name = point.replace(['.', '_'], "-");
        arm(&mut d, point).await;
        let body = json!({"image": "busybox", "name": name, "cmd": ["sleep", "1000"]});
        if point == "create.after_insert" {
            crash_on(&mut d, point, Method::POST, "/v1/containers", Some(body)).await;
        } else {
            d.create(body).await;
            crash_on(
                &mut d,
                point,
                Method::POST,
                &format!("/v1/containers/{name}/start"),
                None,
            )
            .await;
        }
        assert_consistent(&d, point).await;
        // Whatever state it is in now, the user can carry on: start it (if it is not
        // running yet), see it run, and remove it.
        let c = d.inspect(&name).await;
        match c["state"].as_str() {
            Some("created") => {
                d.api_ok("POST", &format!("/v1/containers/{name}/start"), None, 204)
                    .await
            }
            Some("running") => Value::Null,
            other => panic!("after a crash at {point} the container is {other:?}: {c}"),
        };
        let c = d.inspect(&name).await;
        assert_eq!(c["state"], "running", "{point}: {c}");
        d.remove_container(&name).await;
        assert_consistent(&d, point).await;
    }
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_crash_while_recording_an_exit_keeps_the_exit_code() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    arm(&mut d, "exit.after_record").await;
    d.create(
        json!({"image": "busybox", "name": "quick", "cmd": ["sh", "-c", "sleep 0.3; exit 3"]}),
    )
    .await;
    d.api_ok("POST", "/v1/containers/quick/start", None, 204)
        .await;
    let status = d
        .wait_daemon_exit(Duration::from_secs(20))
        .expect("the daemon did not die at exit.after_record");
    assert!(!status.success());
    d.spawn().await;
    let c = d.inspect("quick").await;
    assert_eq!(
        (c["state"].as_str(), c["exit_code"].as_i64()),
        (Some("exited"), Some(3)),
        "{c}"
    );
    assert_consistent(&d, "exit.after_record").await;
    d.api_ok("DELETE", "/v1/containers/quick", None, 204).await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_crash_during_delete_can_be_retried() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    for point in [
        "delete.after_kill",
        "delete.after_cgroup",
        "delete.before_row",
    ] {
        let name = point.replace(['.', '_'], "-");
        run_sleeper(&d, &name).await;
        arm(&mut d, point).await;
        crash_on(
            &mut d,
            point,
            Method::DELETE,
            &format!("/v1/containers/{name}?force=true"),
            None,
        )
        .await;
        // The row is still there (it goes last) and the retry finishes the job.
        let (status, _) = d
            .api("DELETE", &format!("/v1/containers/{name}?force=true"), None)
            .await;
        assert_eq!(
            status.as_u16(),
            204,
            "retrying the delete after a crash at {point}"
        );
        assert_consistent(&d, point).await;
    }
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_crash_during_image_import_and_delete_leaves_no_half_image() {
    require_root!();
    let mut d = TestDaemon::start().await;
    arm(&mut d, "image.after_unpack").await;
    let tarball = boxd_tests::fixtures().join("busybox-rootfs.tar.gz");
    let body = std::fs::read(&tarball).expect("read the busybox fixture");
    let _ = d
        .request(
            Method::POST,
            "/v1/images/import?name=busybox",
            Some("application/x-tar"),
            body.into(),
        )
        .await;
    d.wait_daemon_exit(Duration::from_secs(20))
        .expect("no crash at image.after_unpack");
    d.spawn().await;
    let (status, _) = d.api("GET", "/v1/images/busybox", None).await;
    assert_eq!(
        status.as_u16(),
        404,
        "an image whose record never landed is not half there"
    );
    assert_consistent(&d, "image.after_unpack").await;

    d.import_busybox().await;
    arm(&mut d, "image.after_row_delete").await;
    crash_on(
        &mut d,
        "image.after_row_delete",
        Method::DELETE,
        "/v1/images/busybox",
        None,
    )
    .await;
    let (status, _) = d.api("GET", "/v1/images/busybox", None).await;
    assert_eq!(status.as_u16(), 404);
    assert_consistent(&d, "image.after_row_delete").await;
    // And the same image imports again.
    d.import_busybox().await;
    assert_no_leaks(&d);
}

/// Bounded churn of concurrent create/start/stop/delete while the daemon is killed with
/// SIGKILL and restarted three times; at the end every record agrees with the kernel.
#[tokio::test]
async fn root_churn_with_repeated_kill_9_stays_consistent() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    let socket = d.socket.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..3 {
        let socket = socket.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let client = boxd_client::Client::connect(socket);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 40 {
                n += 1;
                let name = format!("churn-{w}-{n}");
                let spec = boxd_client::models::CreateContainer {
                    image: "busybox".into(),
                    name: Some(name.clone()),
                    cmd: Some(vec!["sleep".into(), "1000".into()]),
                    ..Default::default()
                };
                // Any step may fail while the daemon is down; the loop carries on.
                if client.create_container(&spec).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let _ = client.start(&name).await;
                if n % 2 == 0 {
                    let _ = client.stop(&name, Some(1)).await;
                }
                if n % 3 != 0 {
                    let _ = client.remove_container(&name, true).await;
                }
            }
        }));
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        d.stop_daemon(StopHow::Kill);
        tokio::time::sleep(Duration::from_millis(100)).await;
        d.spawn().await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("a worker hung")
            .expect("worker");
    }
    // One more restart: what the last crash left is reconciled now.
    d.restart(StopHow::Kill).await;
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert_eq!(check["ok"], true, "after the churn: {check}");
    let all = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    for c in all.as_array().expect("list") {
        if c["state"] == "running" {
            let pid = c["pid"].as_i64().expect("pid") as i32;
            assert!(
                boxd_tests::process_alive(pid),
                "running in the store, gone on the host: {c}"
            );
        }
        let path = format!("/v1/containers/{}?force=true", c["id"].as_str().unwrap());
        d.api_ok("DELETE", &path, None, 204).await;
    }
    assert_no_leaks(&d);
}

/// `boxctl doctor` says what reconcile repaired, and exits 1 while a problem remains.
#[tokio::test]
async fn root_boxctl_doctor_reports_repairs_and_problems() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = run_sleeper(&d, "lost").await;
    let doctor = |d: &TestDaemon| {
        let out = std::process::Command::new(boxd_tests::boxctl_bin())
            .arg("doctor")
            .env("BOXD_SOCKET", &d.socket)
            .output()
            .expect("run boxctl doctor");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = doctor(&d);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("No problems found."), "{out}");

    // A stray cgroup (as a crashed daemon could leave) is a problem until reconcile runs.
    let stray = d.cgroup_dirs_of(&id)[0].parent().unwrap().join("stray");
    std::fs::create_dir(&stray).expect("make a stray cgroup");
    let (code, out) = doctor(&d);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cgroup stray belongs to no running container"),
        "{out}"
    );

    d.restart(StopHow::Kill).await;
    let (code, out) = doctor(&d);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("re-attached to running container lost"),
        "{out}"
    );
    assert!(out.contains("removed cgroup stray"), "{out}");
    assert!(!stray.exists());
    d.api_ok("DELETE", "/v1/containers/lost?force=true", None, 204)
        .await;
    assert_no_leaks(&d);
}

/// Addresses host-local still leases in the daemon's default network.
fn leases(d: &TestDaemon) -> Vec<String> {
    std::fs::read_dir(d.root.join("cni/ipam/boxd"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

#[tokio::test]
async fn root_crash_while_attaching_or_detaching_leaks_no_address_or_rule() {
    require_root!();
    boxd_tests::require!(
        std::path::Path::new("/usr/lib/cni/bridge").exists(),
        "no CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
    );
    let mut d = TestDaemon::prepare();
    d.networking = true;
    d.spawn().await;
    d.import_busybox().await;
    for point in [
        "network.after_attachment_row",
        "network.after_first_plugin",
        "network.after_add",
    ] {
        let name = point.replace(['.', '_'], "-");
        arm(&mut d, point).await;
        d.create(
            json!({"image": "busybox", "name": name, "cmd": ["sleep", "1000"],
            "ports": [{"container_port": 80}]}),
        )
        .await;
        crash_on(
            &mut d,
            point,
            Method::POST,
            &format!("/v1/containers/{name}/start"),
            None,
        )
        .await;
        assert_consistent(&d, point).await;
        let c = d.inspect(&name).await;
        assert_eq!(c["state"], "created", "{point}: {c}");
        assert_eq!(c["networks"], json!([]), "{point}: attachment left: {c}");
        assert!(
            leases(&d).is_empty(),
            "{point}: addresses leased: {:?}",
            leases(&d)
        );
        assert_no_rules(&d, point).await;
        d.start_container(&name).await;
        let c = d.inspect(&name).await;
        assert_eq!(
            c["networks"].as_array().map(Vec::len),
            Some(1),
            "{point}: {c}"
        );
        d.remove_container(&name).await;
        assert!(leases(&d).is_empty(), "{point}: {:?}", leases(&d));
    }
    // Killed between a DEL and the forgetting of its attachment: the next start DELs
    // again (plugins take a repeated DEL) and forgets it.
    let point = "network.after_del";
    arm(&mut d, point).await;
    d.run(json!({"image": "busybox", "name": "del", "cmd": ["sleep", "1000"]}))
        .await;
    crash_on(
        &mut d,
        point,
        Method::DELETE,
        "/v1/containers/del?force=true",
        None,
    )
    .await;
    assert_consistent(&d, point).await;
    let (s, _) = d.api("DELETE", "/v1/containers/del?force=true", None).await;
    assert!(s == 204 || s == 404, "{s}");
    let all = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    assert_eq!(all, json!([]));
    assert!(leases(&d).is_empty(), "{point}: {:?}", leases(&d));
    assert_no_rules(&d, point).await;
    assert_no_leaks(&d);
}

/// No firewall rule names an address of the daemon's default network.
async fn assert_no_rules(d: &TestDaemon, point: &str) {
    let n = d.api_ok("GET", "/v1/networks/boxd", None, 200).await;
    let subnet = n["subnet"].as_str().unwrap();
    let prefix = &subnet[..subnet.rfind('.').unwrap() + 1];
    let rules = boxd_tests::iptables_rules_naming(prefix);
    assert!(rules.is_empty(), "{point}: rules left: {rules:#?}");
}
