//! Named volumes against a real daemon: data that outlives containers, copy-up of the
//! image's content, in-use refusals, sized volumes on a loop-mounted image, anonymous
//! volumes and `rm -v`, prune, restarts and crashes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boxd_tests::{
    boxctl_bin, loop_devices_backed_under, mounts_under, require_root, wait_for, StopHow,
    TestDaemon,
};
use hyper::Method;
use serde_json::{json, Value};

fn volume_mount(source: &str, target: &str) -> Value {
    json!({"type": "volume", "source": source, "target": target})
}

/// Runs `sh -c script` in busybox with `mounts` to its end; (id, exit code,
/// stdout+stderr).
async fn sh(d: &TestDaemon, mounts: Value, script: &str) -> (String, i64, String) {
    let id = d
        .run(json!({"image": "busybox", "cmd": ["sh", "-c", format!("exec 2>&1; {script}")], "mounts": mounts}))
        .await;
    let w = d.wait(&id).await;
    let out = d.stdout_of(&id).await;
    (id, w["exit_code"].as_i64().expect("exit_code"), out)
}

async fn volume_events(d: &TestDaemon) -> Vec<(String, String)> {
    let until = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut events = d
        .stream_lines(&format!("/v1/events?since=0&until={until}&type=volume"))
        .await;
    let mut out = Vec::new();
    while let Some(e) = events.next_json(Duration::from_secs(5)).await {
        out.push((
            e["action"].as_str().unwrap_or_default().to_owned(),
            e["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    out
}

async fn check_ok(d: &TestDaemon) {
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert_eq!(check["ok"], true, "{check}");
}

#[tokio::test]
async fn root_volume_data_outlives_its_container_and_in_use_is_409() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let v = d
        .api_ok(
            "POST",
            "/v1/volumes",
            Some(json!({"name": "data", "labels": {"app": "web"}})),
            201,
        )
        .await;
    assert_eq!(v["name"], "data");
    assert_eq!(v["driver"], "local");
    assert_eq!(v["scope"], "local");
    assert_eq!(v["labels"]["app"], "web");
    let mountpoint = PathBuf::from(v["mountpoint"].as_str().unwrap());
    assert_eq!(mountpoint, d.root.join("volumes/data/_data"));
    assert!(mountpoint.is_dir());
    // Create is idempotent (Docker's): the same volume, 200.
    let again = d
        .api_ok("POST", "/v1/volumes", Some(json!({"name": "data"})), 200)
        .await;
    assert_eq!(again["created_at"], v["created_at"]);

    let (writer, code, out) = sh(
        &d,
        json!([volume_mount("data", "/data")]),
        "echo kept > /data/hello",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("hello")).unwrap(),
        "kept\n"
    );
    let inspect = d.inspect(&writer).await;
    assert_eq!(
        inspect["config"]["mounts"][0]["type"], "volume",
        "{inspect}"
    );
    assert_eq!(
        inspect["config"]["mounts"][0]["source"], "data",
        "{inspect}"
    );

    // Used by an exited container: 409 naming it, force or not.
    let name = inspect["name"].as_str().unwrap().to_owned();
    for q in ["", "?force=true"] {
        let (status, body) = d.api("DELETE", &format!("/v1/volumes/data{q}"), None).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "volume_in_use", "{body}");
        assert!(body["message"].as_str().unwrap().contains(&name), "{body}");
    }
    let v = d.api_ok("GET", "/v1/volumes/data", None, 200).await;
    assert_eq!(v["containers"], json!([writer]), "{v}");

    d.remove_container(&writer).await;
    let (reader, code, out) = sh(&d, json!([volume_mount("data", "/d")]), "cat /d/hello").await;
    assert_eq!((code, out.as_str()), (0, "kept\n"));
    d.remove_container(&reader).await;

    d.api_ok("DELETE", "/v1/volumes/data", None, 204).await;
    let (status, body) = d.api("GET", "/v1/volumes/data", None).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(!d.root.join("volumes/data").exists());
    // rm -f of a missing volume is not an error; without -f it is a 404.
    d.api_ok("DELETE", "/v1/volumes/data?force=true", None, 204)
        .await;
    let (status, _) = d.api("DELETE", "/v1/volumes/data", None).await;
    assert_eq!(status, 404);

    let events = volume_events(&d).await;
    let actions: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
    for want in ["create", "mount", "unmount", "destroy"] {
        assert!(actions.contains(&want), "{want} in {events:?}");
    }
    check_ok(&d).await;
}

#[tokio::test]
async fn root_volume_requests_are_checked() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    for (body, needle) in [
        (json!({"name": "-bad"}), "name"),
        (json!({"name": "x"}), "name"),
        (json!({"name": "v1", "driver": "nfs"}), "driver"),
        (
            json!({"name": "v1", "driver_opts": {"uid": "1000"}}),
            "\\\"uid\\\"",
        ),
        (
            json!({"name": "v1", "driver_opts": {"type": "tmpfs", "device": "tmpfs"}}),
            "\\\"type\\\"",
        ),
        (
            json!({"name": "v1", "driver_opts": {"size": "1m"}}),
            "minimum",
        ),
        (
            json!({"name": "v1", "driver_opts": {"size": "lots"}}),
            "size",
        ),
    ] {
        let (status, answer) = d.api("POST", "/v1/volumes", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["code"], "bad_request", "{answer}");
        let message = answer.to_string();
        assert!(message.contains(needle), "{needle} in {message}");
    }
    // Nothing was left by the refusals.
    assert_eq!(d.api_ok("GET", "/v1/volumes", None, 200).await, json!([]));
    assert!(std::fs::read_dir(d.root.join("volumes"))
        .unwrap()
        .next()
        .is_none());
    // A bad volume name in a container's mounts, and an unknown mount type.
    for mount in [
        json!({"type": "volume", "source": "a/b", "target": "/x"}),
        json!({"type": "tmpfs", "source": "", "target": "/x"}),
    ] {
        let (status, answer) = d
            .api(
                "POST",
                "/v1/containers",
                Some(json!({"image": "busybox", "cmd": ["true"], "mounts": [mount]})),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
    }
    // A failed container create removes the volume it made for itself.
    d.create(json!({"image": "busybox", "name": "taken", "cmd": ["true"]}))
        .await;
    let (status, answer) = d
        .api(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "name": "taken", "cmd": ["true"],
                        "mounts": [volume_mount("fresh", "/f")]})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(d.api_ok("GET", "/v1/volumes", None, 200).await, json!([]));
    assert!(!d.root.join("volumes/fresh").exists());
}

#[tokio::test]
async fn root_a_fresh_volume_gets_the_images_content_once() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // `fresh` is made on the fly by the container's create, as `docker run -v`.
    let (first, code, out) = sh(
        &d,
        json!([volume_mount("fresh", "/etc/fixture.d")]),
        "cat /etc/fixture.d/a.conf /etc/fixture.d/b.conf; rm /etc/fixture.d/a.conf",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "a=1\nb=2\n"));
    let data = d.root.join("volumes/fresh/_data");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data.join("b.conf")).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o644, 0));
    assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o777, 0o755);
    d.remove_container(&first).await;
    // Mounted before: never copied into again.
    let (second, code, out) = sh(
        &d,
        json!([volume_mount("fresh", "/etc/fixture.d")]),
        "ls /etc/fixture.d",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "b.conf\n"));
    d.remove_container(&second).await;

    // A volume first used where the image has nothing stays empty later too.
    let (third, code, _) = sh(&d, json!([volume_mount("blank", "/nothing")]), "true").await;
    assert_eq!(code, 0);
    let (fourth, code, out) = sh(
        &d,
        json!([volume_mount("blank", "/etc/fixture.d")]),
        "ls -A /etc/fixture.d | wc -l",
    )
    .await;
    assert_eq!((code, out.trim()), (0, "0"));
    // A volume that is not empty is not copied into.
    d.api_ok("POST", "/v1/volumes", Some(json!({"name": "full"})), 201)
        .await;
    std::fs::write(d.root.join("volumes/full/_data/mine"), "x").unwrap();
    let (fifth, code, out) = sh(
        &d,
        json!([volume_mount("full", "/etc/fixture.d")]),
        "ls /etc/fixture.d",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "mine\n"));
    for id in [third, fourth, fifth] {
        d.remove_container(&id).await;
    }
}

#[tokio::test]
async fn root_a_sized_volume_is_full_at_its_size_and_its_loop_device_goes_with_it() {
    require_root!();
    boxd_tests::require!(
        Path::new("/usr/sbin/mkfs.ext4").exists() || Path::new("/sbin/mkfs.ext4").exists(),
        "needs mkfs.ext4"
    );
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let v = d
        .api_ok(
            "POST",
            "/v1/volumes",
            Some(json!({"name": "small", "driver_opts": {"size": "20m"}})),
            201,
        )
        .await;
    assert_eq!(v["size_bytes"], 20 << 20, "{v}");
    let data = d.root.join("volumes/small/_data");
    assert!(mounts_under(&d.dir).contains(&data), "mounted at create");
    assert_eq!(loop_devices_backed_under(&d.dir).len(), 1);
    let (id, code, out) = sh(
        &d,
        json!([volume_mount("small", "/data")]),
        "ls -A /data; dd if=/dev/zero of=/data/big bs=1M count=40",
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    // Empty at first: lost+found of mkfs is not there.
    assert!(!out.contains("lost+found"), "{out}");
    let used = std::fs::metadata(data.join("big")).unwrap().len();
    assert!(used < 20 << 20, "{used}");
    d.remove_container(&id).await;
    d.api_ok("DELETE", "/v1/volumes/small", None, 204).await;
    assert!(!mounts_under(&d.dir).contains(&data));
    assert!(
        wait_for(Duration::from_secs(5), || loop_devices_backed_under(&d.dir)
            .is_empty()),
        "loop devices left: {:?}",
        loop_devices_backed_under(&d.dir)
    );
    assert!(!d.root.join("volumes/small").exists());
}

#[tokio::test]
async fn root_anonymous_volumes_go_with_rm_v_and_named_ones_stay() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let mounts = json!([{"type": "volume", "target": "/anon"}, volume_mount("named", "/named")]);
    let keep = d
        .create(json!({"image": "busybox", "cmd": ["true"], "mounts": mounts}))
        .await;
    let anon_of = |c: &Value| {
        c["config"]["mounts"][0]["source"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let kept_anon = anon_of(&d.inspect(&keep).await);
    assert_eq!(kept_anon.len(), 64, "{kept_anon}");
    let v = d
        .api_ok("GET", &format!("/v1/volumes/{kept_anon}"), None, 200)
        .await;
    assert_eq!(v["anonymous"], true, "{v}");
    d.api_ok("DELETE", &format!("/v1/containers/{keep}"), None, 204)
        .await;
    // Without v=true: kept.
    d.api_ok("GET", &format!("/v1/volumes/{kept_anon}"), None, 200)
        .await;

    let gone = d
        .create(json!({"image": "busybox", "cmd": ["true"], "mounts": mounts}))
        .await;
    let gone_anon = anon_of(&d.inspect(&gone).await);
    assert_ne!(gone_anon, kept_anon);
    d.api_ok(
        "DELETE",
        &format!("/v1/containers/{gone}?v=true"),
        None,
        204,
    )
    .await;
    let (status, _) = d
        .api("GET", &format!("/v1/volumes/{gone_anon}"), None)
        .await;
    assert_eq!(status, 404);
    assert!(!d.root.join("volumes").join(&gone_anon).exists());
    // The named one stays.
    d.api_ok("GET", "/v1/volumes/named", None, 200).await;
    check_ok(&d).await;
}

#[tokio::test]
async fn root_prune_and_filters_see_which_volumes_are_used() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    for (name, label) in [("used", "a"), ("idle", "b"), ("idle2", "a")] {
        d.api_ok(
            "POST",
            "/v1/volumes",
            Some(json!({"name": name, "labels": {"tier": label}})),
            201,
        )
        .await;
    }
    std::fs::write(d.root.join("volumes/idle/_data/f"), vec![7u8; 64 << 10]).unwrap();
    let user = d
        .create(
            json!({"image": "busybox", "cmd": ["true"], "mounts": [volume_mount("used", "/u")]}),
        )
        .await;
    let names = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |q: &'static str| d.api_ok("GET", q, None, 200);
    assert_eq!(
        names(get("/v1/volumes?dangling=true").await),
        ["idle", "idle2"]
    );
    assert_eq!(names(get("/v1/volumes?dangling=false").await), ["used"]);
    assert_eq!(names(get("/v1/volumes?name=idle").await), ["idle", "idle2"]);
    assert_eq!(
        names(get("/v1/volumes?label=tier=a").await),
        ["idle2", "used"]
    );
    assert_eq!(
        names(get("/v1/volumes?label=tier=a&dangling=true").await),
        ["idle2"]
    );
    let (status, _) = d.api("GET", "/v1/volumes?driver=local", None).await;
    assert_eq!(status, 400);

    let pruned = d.api_ok("POST", "/v1/volumes/prune", None, 200).await;
    let mut deleted: Vec<String> =
        serde_json::from_value(pruned["volumes_deleted"].clone()).unwrap();
    deleted.sort();
    assert_eq!(deleted, ["idle", "idle2"], "{pruned}");
    assert!(
        pruned["space_reclaimed"].as_u64().unwrap() >= 64 << 10,
        "{pruned}"
    );
    assert_eq!(names(get("/v1/volumes").await), ["used"]);
    d.remove_container(&user).await;
    let pruned = d.api_ok("POST", "/v1/volumes/prune", None, 200).await;
    assert_eq!(pruned["volumes_deleted"], json!(["used"]));
    check_ok(&d).await;
}

#[tokio::test]
async fn root_volumes_survive_a_daemon_restart_and_a_lost_mount() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    d.api_ok("POST", "/v1/volumes", Some(json!({"name": "plain"})), 201)
        .await;
    d.api_ok(
        "POST",
        "/v1/volumes",
        Some(json!({"name": "sized", "driver_opts": {"size": "16m"}})),
        201,
    )
    .await;
    let mounts = json!([volume_mount("plain", "/p"), volume_mount("sized", "/s")]);
    let (id, code, out) = sh(&d, mounts.clone(), "echo p > /p/f && echo s > /s/f").await;
    assert_eq!(code, 0, "{out}");
    d.remove_container(&id).await;

    d.restart(StopHow::Kill).await;
    let list = d.api_ok("GET", "/v1/volumes", None, 200).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let (id, code, out) = sh(&d, mounts.clone(), "cat /p/f /s/f").await;
    assert_eq!((code, out.as_str()), (0, "p\ns\n"));
    d.remove_container(&id).await;

    // As after a reboot: the image is not mounted when boxd starts; it mounts it again.
    d.stop_daemon(StopHow::Term);
    let data = d.root.join("volumes/sized/_data");
    nix::mount::umount2(&data, nix::mount::MntFlags::empty()).unwrap();
    d.spawn().await;
    assert!(mounts_under(&d.dir).contains(&data));
    let (_, code, out) = sh(&d, mounts, "cat /s/f").await;
    assert_eq!((code, out.as_str()), (0, "s\n"));
    check_ok(&d).await;
}

#[tokio::test]
async fn root_a_host_directory_volume_is_used_in_place_and_kept() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let host = d.dir.join("hostdir");
    std::fs::create_dir(&host).unwrap();
    let v = d
        .api_ok(
            "POST",
            "/v1/volumes",
            Some(json!({"name": "hostvol", "driver_opts":
                {"type": "none", "o": "bind", "device": host.to_str().unwrap()}})),
            201,
        )
        .await;
    assert_eq!(v["mountpoint"], host.to_str().unwrap());
    let (id, code, out) = sh(&d, json!([volume_mount("hostvol", "/h")]), "echo hi > /h/x").await;
    assert_eq!(code, 0, "{out}");
    d.remove_container(&id).await;
    d.api_ok("DELETE", "/v1/volumes/hostvol", None, 204).await;
    assert_eq!(std::fs::read_to_string(host.join("x")).unwrap(), "hi\n");
}

/// Restarts `d` with `BOXD_CRASH_AT=point`.
async fn arm(d: &mut TestDaemon, point: &str) {
    d.stop_daemon(StopHow::Term);
    d.spawn_with(&[], &[("BOXD_CRASH_AT", OsStr::new(point))])
        .await;
}

/// Sends a request that kills the daemon at `point`, then starts it again normally.
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
    let _ = d.request(method, path, ct, bytes).await;
    let status = d
        .wait_daemon_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the daemon did not die at {point}; log:\n{}", d.log_text()));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "at {point}: {status}");
    assert!(d
        .log_text()
        .contains(&format!("crash point {point} reached")));
    d.spawn().await;
}

#[tokio::test]
async fn root_crash_in_volume_create_remove_and_copy_up_is_finished_or_undone() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;

    // Between the row and the directory (and image): the reconcile finishes it.
    arm(&mut d, "volume.after_insert").await;
    crash_on(
        &mut d,
        "volume.after_insert",
        Method::POST,
        "/v1/volumes",
        Some(json!({"name": "half", "driver_opts": {"size": "16m"}})),
    )
    .await;
    d.api_ok("GET", "/v1/volumes/half", None, 200).await;
    assert!(mounts_under(&d.dir).contains(&d.root.join("volumes/half/_data")));
    check_ok(&d).await;

    // Between the row's delete and the directory's: the reconcile removes the rest.
    arm(&mut d, "volume.after_row_delete").await;
    crash_on(
        &mut d,
        "volume.after_row_delete",
        Method::DELETE,
        "/v1/volumes/half",
        None,
    )
    .await;
    let (status, _) = d.api("GET", "/v1/volumes/half", None).await;
    assert_eq!(status, 404);
    assert!(!d.root.join("volumes/half").exists());
    assert!(
        wait_for(Duration::from_secs(5), || loop_devices_backed_under(&d.dir)
            .is_empty()),
        "loop devices left"
    );
    check_ok(&d).await;

    // During copy-up: the next start copies again, completely.
    let id = d
        .create(json!({"image": "busybox", "cmd": ["ls", "/etc/fixture.d"],
                       "mounts": [volume_mount("cu", "/etc/fixture.d")]}))
        .await;
    arm(&mut d, "volume.during_copy_up").await;
    crash_on(
        &mut d,
        "volume.during_copy_up",
        Method::POST,
        &format!("/v1/containers/{id}/start"),
        None,
    )
    .await;
    // A partial copy, as a crash in the middle would leave.
    std::fs::write(d.root.join("volumes/cu/_data/a.conf"), "a=").unwrap();
    d.start_container(&id).await;
    d.wait(&id).await;
    assert_eq!(d.stdout_of(&id).await, "a.conf\nb.conf\n");
    assert_eq!(
        std::fs::read_to_string(d.root.join("volumes/cu/_data/a.conf")).unwrap(),
        "a=1\n"
    );
    check_ok(&d).await;
}

#[tokio::test]
async fn root_boxctl_volume_commands_and_run_v() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let boxctl = |args: &[&str]| {
        let out = std::process::Command::new(boxctl_bin())
            .args(args)
            .env("BOXD_SOCKET", &d.socket)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run boxctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = boxctl(&["volume", "create", "--label", "k=v", "cli"]);
    assert_eq!((code, out.as_str()), (Some(0), "cli\n"), "{err}");
    let (code, out, err) = boxctl(&[
        "run",
        "-v",
        "cli:/c",
        "busybox",
        "sh",
        "-c",
        "echo x > /c/f",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = boxctl(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=cli,dst=/c,readonly",
        "busybox",
        "sh",
        "-c",
        "cat /c/f; touch /c/g || echo ro",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("x\n") && out.contains("ro"), "{out}");
    let (code, out, _) = boxctl(&["volume", "ls", "-q", "--filter", "label=k=v"]);
    assert_eq!((code, out.as_str()), (Some(0), "cli\n"));
    let (code, out, _) = boxctl(&["volume", "inspect", "cli"]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["labels"]["k"], "v");
    let (code, _, err) = boxctl(&["volume", "rm", "cli"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("in use"), "{err}");
    let (code, _, err) = boxctl(&["rm", "-v", "-f", &first_container(&d).await]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = boxctl(&["volume", "prune", "-f"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("cli"), "{out}");
}

async fn first_container(d: &TestDaemon) -> String {
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    list[0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn root_a_user_namespaced_container_owns_its_fresh_volumes() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let script = "stat -c '%u:%g' /etc/fixture.d /etc/fixture.d/a.conf /empty \
                  && echo w > /etc/fixture.d/new && echo w > /empty/new && echo ok";
    let id = d
        .run(json!({"image": "busybox", "userns": "auto", "cmd": ["sh", "-c", format!("exec 2>&1; {script}")],
                    "mounts": [volume_mount("nsfix", "/etc/fixture.d"), volume_mount("nsempty", "/empty")]}))
        .await;
    let w = d.wait(&id).await;
    let out = d.stdout_of(&id).await;
    assert_eq!(w["exit_code"], 0, "{out}");
    // Inside, the copied files are root's as in the image, and the empty volume is too.
    assert_eq!(out, "0:0\n0:0\n0:0\nok\n");
    // On the host, they belong to the container's range, not to host root.
    use std::os::unix::fs::MetadataExt;
    let host_uid = std::fs::metadata(d.root.join("volumes/nsfix/_data/a.conf"))
        .unwrap()
        .uid();
    assert_ne!(host_uid, 0);
    assert_eq!(
        std::fs::metadata(d.root.join("volumes/nsempty/_data"))
            .unwrap()
            .uid(),
        host_uid
    );
    d.remove_container(&id).await;
}
