//! Networking through CNI: published ports, user networks and their isolation, the
//! network modes, errors, cleanup and crash safety. Traffic goes only to loopback, the
//! host's own address and the bridges and namespaces these tests make.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use boxd_tests::{require, require_root, StopHow, TestDaemon};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A daemon whose containers get the default network, with busybox imported.
async fn net_daemon() -> TestDaemon {
    let mut d = TestDaemon::prepare();
    d.networking = true;
    d.spawn().await;
    d.import_busybox().await;
    d
}

macro_rules! require_cni {
    () => {
        require_root!();
        require!(
            std::path::Path::new("/usr/lib/cni/bridge").exists(),
            "no CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
        );
        require!(which("iptables"), "no iptables (apt-get install iptables)");
    };
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// A web server on port 80 run by an unprivileged user (uid 1000): as in Docker, a
/// container with its own network namespace may bind low ports without capabilities.
fn web(text: &str) -> Value {
    json!({
        "image": "busybox",
        "user": "1000:1000",
        "cmd": ["sh", "-c", format!(
            "mkdir -p /tmp/www && echo {text} > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"
        )],
    })
}

/// A create body for the busybox image with `v`'s fields.
fn bb(v: Value) -> Value {
    merge(json!({"image": "busybox"}), v)
}

fn merge(mut a: Value, b: Value) -> Value {
    for (k, v) in b.as_object().expect("object").clone() {
        a[k] = v;
    }
    a
}

/// `GET /index.html` over a fresh TCP connection; `None` when nothing answers within
/// two seconds.
async fn http_get(addr: SocketAddr) -> Option<String> {
    let run = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(2), run)
        .await
        .ok()
        .flatten()
        .filter(|o| o.starts_with("HTTP/"))
}

/// Polls [`http_get`] until it answers (the app may still be starting).
async fn wait_http(addr: SocketAddr) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(body) = http_get(addr).await {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing answered on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The host's first global IPv4 address.
fn host_address() -> std::net::Ipv4Addr {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(" bx"))
        .find_map(|l| {
            let cidr = l.split_whitespace().nth(3)?;
            cidr.split('/').next()?.parse().ok()
        })
        .expect("the host has a global IPv4 address")
}

fn host_port(c: &Value, i: usize) -> u16 {
    c["config"]["ports"][i]["host_port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no host port in {c}")) as u16
}

fn address_of(c: &Value) -> String {
    c["networks"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {c}"))
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// What of the host's firewall and links belongs to daemon `d` (tests in parallel
/// change the rest): rules naming one of `ids`, one of `subnets` or one of its bridges,
/// its bridges, and the veths enslaved to them.
fn host_network_state(
    d: &TestDaemon,
    ids: &[String],
    subnets: &[String],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = std::process::Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    let rules = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A "))
        .filter(|l| {
            l.contains(&d.bridge_prefix)
                || ids.iter().any(|id| l.contains(id.as_str()))
                || subnets.iter().any(|s| l.contains(s.as_str()))
        })
        .map(str::to_owned)
        .collect();
    let mut links = BTreeSet::new();
    for bridge in boxd_tests::links_named(&d.bridge_prefix) {
        for port in std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
            .into_iter()
            .flatten()
            .flatten()
        {
            links.insert(format!("{bridge}:{}", port.file_name().to_string_lossy()));
        }
        links.insert(bridge);
    }
    (rules, links)
}

/// `10.1.2.` of `10.1.2.0/24`: what the rules of the subnet's addresses start with.
fn subnet_prefix(cidr: &str) -> String {
    let net = cidr.split('/').next().unwrap();
    let mut parts: Vec<&str> = net.split('.').collect();
    parts.pop();
    parts.join(".") + "."
}

#[tokio::test]
async fn root_published_ports_answer_on_loopback_and_on_the_hosts_address() {
    require_cni!();
    let d = net_daemon().await;
    let id = d
        .run(merge(
            web("published"),
            json!({"name": "web", "ports": [{"host_port": 0, "container_port": 80}]}),
        ))
        .await;
    let c = d.inspect(&id).await;
    let port = host_port(&c, 0);
    assert_ne!(port, 0, "a random host port is reported: {c}");
    assert_eq!(c["config"]["network"], "boxd", "{c}");
    let ep = &c["networks"][0];
    assert_eq!(ep["network"], "boxd");
    assert!(ep["gateway"].is_string() && ep["mac"].is_string(), "{c}");
    for ip in ["127.0.0.1".parse().unwrap(), host_address().into()] {
        let body = wait_http(SocketAddr::new(ip, port)).await;
        assert!(body.contains("published"), "{ip}:{port} answered {body}");
    }
    // The container's own address, from the host, through the bridge.
    let addr: std::net::IpAddr = address_of(&c).parse().unwrap();
    assert!(wait_http(SocketAddr::new(addr, 80))
        .await
        .contains("published"));

    // UDP: the host's python (read-only) echoes what it gets to its stdout.
    require!(
        std::path::Path::new("/usr/bin/python3").exists(),
        "no /usr/bin/python3 for the UDP server"
    );
    let mounts: Vec<_> = ["/usr", "/lib", "/lib64"]
        .iter()
        .filter(|p| std::path::Path::new(p).exists())
        .map(|p| json!({"source": p, "target": p, "read_only": true}))
        .collect();
    let server = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('',5353))\nwhile True:\n d,a=s.recvfrom(100)\n print(d.decode(),flush=True)\n";
    let udp = d
        .run(bb(json!({
            "mounts": mounts,
            "cmd": ["/usr/bin/python3", "-c", server],
            "ports": [{"container_port": 5353, "protocol": "udp"}],
        })))
        .await;
    let c = d.inspect(&udp).await;
    assert_eq!(c["config"]["ports"][0]["protocol"], "udp");
    let port = host_port(&c, 0);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let got = boxd_tests::wait_for(Duration::from_secs(15), || {
        let _ = sock.send_to(b"over-udp", ("127.0.0.1", port));
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(d.root_dir_of(&udp).join("container.log"))
            .is_ok_and(|l| l.contains("over-udp"))
    });
    assert!(got, "the UDP datagram did not arrive");
}

#[tokio::test]
async fn root_user_networks_connect_their_containers_and_keep_others_out() {
    require_cni!();
    let d = net_daemon().await;
    let front = d
        .api_ok("POST", "/v1/networks", Some(json!({"name": "front"})), 201)
        .await;
    assert!(
        front["subnet"].is_string() && front["bridge"].is_string(),
        "{front}"
    );
    d.api_ok("POST", "/v1/networks", Some(json!({"name": "back"})), 201)
        .await;
    let server = d
        .run(merge(
            web("front-page"),
            json!({"name": "srv", "network": "front", "network_aliases": ["web-alias"]}),
        ))
        .await;
    let ip = address_of(&d.inspect(&server).await);
    wait_http(SocketAddr::new(ip.parse().unwrap(), 80)).await;
    let fetch = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80");
    let (code, out) = d
        .run_to_end(json!({"network": "front"}), &["sh", "-c", &fetch])
        .await;
    assert!(
        code == 0 && out.contains("front-page"),
        "same network: {code} {out}"
    );
    // By name and by alias, through the network's DNS on its gateway.
    for name in ["srv", "web-alias"] {
        let by_name = fetch.replace(&ip, name);
        let (code, out) = d
            .run_to_end(json!({"network": "front"}), &["sh", "-c", &by_name])
            .await;
        assert!(
            code == 0 && out.contains("front-page"),
            "by {name}: {code} {out}"
        );
    }
    let (code, out) = d
        .run_to_end(
            json!({"network": "front"}),
            &[
                "sh",
                "-c",
                "nslookup nosuch-container; cat /etc/resolv.conf",
            ],
        )
        .await;
    assert!(out.contains("NXDOMAIN"), "{code} {out}");
    assert!(
        out.contains(&format!(
            "nameserver {}",
            front["gateway"].as_str().unwrap()
        )),
        "{out}"
    );
    // A container on another network does not learn the name.
    let (_, out) = d
        .run_to_end(json!({"network": "back"}), &["nslookup", "srv"])
        .await;
    assert!(!out.contains(&ip), "srv resolved on another network: {out}");
    for other in ["back", "bridge"] {
        let (code, out) = d
            .run_to_end(json!({"network": other}), &["sh", "-c", &fetch])
            .await;
        assert!(
            !out.contains("front-page"),
            "a container on {other} reached one on front: {code} {out}"
        );
    }
    let n = d.api_ok("GET", "/v1/networks/front", None, 200).await;
    assert_eq!(n["containers"][0]["id"], server.as_str(), "{n}");
    assert_eq!(
        n["containers"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next(),
        Some(ip.as_str())
    );
    let all = d.api_ok("GET", "/v1/networks", None, 200).await;
    let names: BTreeSet<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["back", "boxd", "front"]));
}

#[tokio::test]
async fn root_resolv_conf_and_hosts_are_written_per_container() {
    require_cni!();
    let d = net_daemon().await;
    let (code, out) = d
        .run_to_end(
            json!({
                "name": "files",
                "dns": ["192.0.2.53"],
                "dns_search": ["corp.example"],
                "dns_options": ["ndots:2"],
                "extra_hosts": ["db.local:192.0.2.9"],
            }),
            &["sh", "-c", "cat /etc/resolv.conf /etc/hosts"],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    for want in [
        "nameserver 192.0.2.53\n",
        "search corp.example\n",
        "options ndots:2\n",
        "192.0.2.9\tdb.local\n",
        "127.0.0.1\tlocalhost\n",
        "\tfiles\n",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    // The image's files are untouched: the next container sees the defaults.
    let (_, out) = d.run_to_end(json!({}), &["cat", "/etc/hosts"]).await;
    assert!(!out.contains("db.local"), "{out}");
    let c = d.api_ok("GET", "/v1/containers/files", None, 200).await;
    assert_eq!(c["config"]["extra_hosts"], json!(["db.local:192.0.2.9"]));
    for bad in [
        json!({"extra_hosts": ["nocolon"]}),
        json!({"dns": ["not-an-ip"]}),
        json!({"network_aliases": ["a"]}),
    ] {
        let body = merge(json!({"image": "busybox", "cmd": ["true"]}), bad.clone());
        let (s, v) = d.api("POST", "/v1/containers", Some(body)).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
}

#[tokio::test]
async fn root_network_modes_none_host_and_container() {
    require_cni!();
    let d = net_daemon().await;
    let interfaces = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";
    let (code, out) = d
        .run_to_end(json!({"network": "none"}), &["sh", "-c", interfaces])
        .await;
    assert_eq!((code, out.trim()), (0, "lo"));

    let host: BTreeSet<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_owned()))
        .collect();
    let resp = d
        .api_ok(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "cmd": ["true"], "network": "host"})),
            201,
        )
        .await;
    assert!(
        resp["warnings"].to_string().contains("not isolated"),
        "host mode is said to be unisolated: {resp}"
    );
    let (code, out) = d
        .run_to_end(json!({"network": "host"}), &["sh", "-c", interfaces])
        .await;
    assert_eq!(code, 0);
    let seen: BTreeSet<String> = out.split_whitespace().map(str::to_owned).collect();
    assert!(seen.contains("lo") && seen.len() > 1, "{out}");
    let inspected = d
        .api_ok(
            "GET",
            &format!("/v1/containers/{}", resp["id"].as_str().unwrap()),
            None,
            200,
        )
        .await;
    assert!(
        inspected["warnings"].to_string().contains("not isolated"),
        "inspect says host mode is not isolated: {inspected}"
    );
    assert!(
        seen.iter().all(|i| host.contains(i)) || seen.len() >= host.len() - 2,
        "host mode sees {seen:?}, the host has {host:?}"
    );

    let peer = d
        .run(bb(json!({"name": "peer", "cmd": ["sleep", "1000"]})))
        .await;
    let mac = d.inspect(&peer).await["networks"][0]["mac"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out) = d
        .run_to_end(
            json!({"network": "container:peer"}),
            &["cat", "/sys/class/net/eth0/address"],
        )
        .await;
    assert_eq!(
        (code, out.trim()),
        (0, mac.as_str()),
        "container: shares the peer's interface"
    );
}

#[tokio::test]
async fn root_network_errors_say_what_to_fix() {
    require_cni!();
    let d = net_daemon().await;
    let create = |body: Value| {
        let d = &d;
        async move {
            d.api(
                "POST",
                "/v1/containers",
                Some(merge(json!({"image": "busybox", "cmd": ["true"]}), body)),
            )
            .await
        }
    };
    let (s, v) = create(json!({"ports": [{"host_port": 18999, "container_port": 80}]})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = create(json!({"ports": [{"host_port": 18999, "container_port": 81}]})).await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (409, Some("port_in_use")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("18999"), "{v}");
    for bad in [
        json!({"ports": [{"container_port": 0}]}),
        json!({"ports": [{"container_port": 80, "protocol": "sctp"}]}),
        json!({"ports": [{"container_port": 80, "host_ip": "nowhere"}]}),
        json!({"network": "none", "ports": [{"container_port": 80}]}),
        json!({"network": "container:"}),
    ] {
        let (s, v) = create(bad.clone()).await;
        assert_eq!(s, 400, "{bad} -> {v}");
    }
    let (s, v) = create(json!({"network": "nosuch"})).await;
    assert_eq!(s, 404, "{v}");

    d.api_ok(
        "POST",
        "/v1/networks",
        Some(json!({"name": "n1", "subnet": "10.251.4.0/24"})),
        201,
    )
    .await;
    let (s, v) = d
        .api(
            "POST",
            "/v1/networks",
            Some(json!({"name": "n2", "subnet": "10.251.0.0/16"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (400, Some("subnet_overlap")),
        "{v}"
    );
    let (s, _) = d
        .api(
            "POST",
            "/v1/networks",
            Some(json!({"name": "n1", "subnet": "10.252.4.0/24"})),
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = d
        .api(
            "POST",
            "/v1/networks",
            Some(json!({"name": "n3", "subnet": "not-a-subnet"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = create(json!({"network": "n1"})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = d.api("DELETE", "/v1/networks/n1", None).await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (409, Some("network_in_use")),
        "{v}"
    );
    let (s, _) = d.api("DELETE", "/v1/networks/boxd", None).await;
    assert_eq!(s, 403);
    let (s, _) = d.api("DELETE", "/v1/networks/nosuch", None).await;
    assert_eq!(s, 404);

    // A host port a host process holds: the start fails and names it.
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let (s, v) = create(
        json!({"ports": [{"host_port": taken, "container_port": 80}], "cmd": ["sleep", "100"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let (s, v) = d
        .api("POST", &format!("/v1/containers/{id}/start"), None)
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains(&taken.to_string()),
        "{v}"
    );
    assert_eq!(d.inspect(id).await["state"], "created");
    drop(holder);
}

#[tokio::test]
async fn root_removing_containers_and_networks_frees_addresses_links_and_rules() {
    require_cni!();
    let d = net_daemon().await;
    d.api_ok("POST", "/v1/networks", Some(json!({"name": "side"})), 201)
        .await;
    // The plugins' shared chains are made by a first attachment and stay (as Docker's).
    for net in ["side", "bridge"] {
        let warm = d.run(bb(json!({"cmd": ["true"], "network": net}))).await;
        d.wait(&warm).await;
        d.remove_container(&warm).await;
    }
    let subnets: Vec<String> = d
        .api_ok("GET", "/v1/networks", None, 200)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|n| subnet_prefix(n["subnet"].as_str().unwrap()))
        .collect();
    let mut all_ids = Vec::new();
    let before = host_network_state(&d, &all_ids, &subnets);

    let mut ids = Vec::new();
    for i in 0..100u32 {
        let body = json!({"cmd": ["sleep", "100"], "network": if i % 2 == 0 { "side" } else { "bridge" },
            "ports": [{"container_port": 80}]});
        let id = d.run(bb(body)).await;
        all_ids.push(id.clone());
        ids.push(id);
        if ids.len() == 5 {
            for id in ids.drain(..) {
                d.remove_container(&id).await;
            }
        }
    }
    for id in ids {
        d.remove_container(&id).await;
    }
    let after = host_network_state(&d, &all_ids, &subnets);
    assert_eq!(
        before.1, after.1,
        "links differ after the containers are gone"
    );
    assert_eq!(
        before.0, after.0,
        "firewall rules differ after the containers are gone"
    );
    let leases = d.root.join("cni/ipam");
    let held: Vec<_> = walk(&leases)
        .into_iter()
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
        })
        .collect();
    assert!(held.is_empty(), "addresses still leased: {held:?}");

    let bridge = d.api_ok("GET", "/v1/networks/side", None, 200).await["bridge"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(boxd_tests::links_named(&bridge).contains(&bridge));
    d.api_ok("DELETE", "/v1/networks/side", None, 204).await;
    assert!(
        !boxd_tests::links_named(&bridge).contains(&bridge),
        "bridge {bridge} left"
    );
    assert!(
        boxd_tests::iptables_rules_naming(&bridge).is_empty(),
        "rules for {bridge} left"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn root_a_daemon_crash_cuts_no_one_off_and_the_restart_frees_what_ended() {
    require_cni!();
    let mut d = net_daemon().await;
    let served = d
        .run(merge(
            web("still-here"),
            json!({"ports": [{"container_port": 80}]}),
        ))
        .await;
    let port = host_port(&d.inspect(&served).await, 0);
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    wait_http(local).await;
    let ends = d
        .run(merge(
            web("gone"),
            json!({"ports": [{"container_port": 80}]}),
        ))
        .await;
    let c = d.inspect(&ends).await;
    let (ends_port, ends_ip, ends_pid) =
        (host_port(&c, 0), address_of(&c), c["pid"].as_i64().unwrap());
    wait_http(SocketAddr::from(([127, 0, 0, 1], ends_port))).await;

    d.stop_daemon(StopHow::Kill);
    assert!(
        wait_http(local).await.contains("still-here"),
        "served while the daemon is down"
    );
    // One app ends while no daemon watches.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ends_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(boxd_tests::wait_gone(&[ends_pid as i32], Duration::from_secs(10)).is_empty());

    d.spawn().await;
    assert!(
        wait_http(local).await.contains("still-here"),
        "served after the restart"
    );
    let c = d.wait_state(&ends, "exited", Duration::from_secs(10)).await;
    assert_eq!(c["networks"], json!([]), "{c}");
    assert!(
        boxd_tests::iptables_rules_naming(&format!("{ends_ip}:80")).is_empty()
            && boxd_tests::iptables_rules_naming(&format!("{ends_ip}/32")).is_empty(),
        "rules of the ended container are left"
    );
    assert!(http_get(SocketAddr::from(([127, 0, 0, 1], ends_port)))
        .await
        .is_none());
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert!(
        check.to_string().contains(c["name"].as_str().unwrap()),
        "the reconcile says what it did: {check}"
    );
    assert!(
        !check.to_string().contains("failed its check"),
        "the running container's attachment checks out: {check}"
    );
    let c = d.inspect(&served).await;
    assert_eq!(c["state"], "running");
    assert_eq!(c["networks"][0]["network"], "boxd");
}

/// A client that fetches `/big` from `ip` and prints the byte count and its start and
/// end (seconds of `/proc/uptime`).
fn timed_fetch(ip: &str) -> String {
    format!(
        "a=$(cut -d' ' -f1 /proc/uptime); printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | nc -w 20 {ip} 80 | wc -c; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"
    )
}

/// Bits per second of a [`timed_fetch`] output.
fn rate_of(out: &str) -> f64 {
    let nums: Vec<f64> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 3, "unexpected output: {out}");
    nums[0] * 8.0 / (nums[2] - nums[1])
}

#[tokio::test]
async fn root_bandwidth_limits_hold_and_stats_count_the_traffic() {
    require_cni!();
    let d = net_daemon().await;
    let serve = |extra: Value| {
        merge(
            json!({
                "image": "busybox",
                "cmd": ["sh", "-c", "mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/big bs=1M count=3 2>/dev/null && exec httpd -f -p 80 -h /tmp/www"],
            }),
            extra,
        )
    };
    let limit = 8_000_000u64;
    let server = d.run(serve(json!({}))).await;
    let ip = address_of(&d.inspect(&server).await);
    wait_http(SocketAddr::new(ip.parse().unwrap(), 80)).await;
    let before = d
        .api_ok("GET", &format!("/v1/containers/{server}/stats"), None, 200)
        .await;

    // Into a client limited on ingress.
    let (code, out) = d
        .run_to_end(
            json!({"resources": {"network_ingress_bps": limit}}),
            &["sh", "-c", &timed_fetch(&ip)],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let rate = rate_of(&out);
    assert!(
        (0.75..=1.25).contains(&(rate / limit as f64)),
        "ingress limited to {limit} bit/s ran at {rate:.0} bit/s"
    );
    let after = d
        .api_ok("GET", &format!("/v1/containers/{server}/stats"), None, 200)
        .await;
    let sent = after["network"]["tx_bytes"].as_u64().unwrap()
        - before["network"]["tx_bytes"].as_u64().unwrap();
    assert!(
        sent >= 3 << 20,
        "the server's tx_bytes grew by {sent}: {after}"
    );
    assert!(
        after["network"]["rx_packets"].as_u64() > before["network"]["rx_packets"].as_u64(),
        "{after}"
    );

    // Out of a server limited on egress.
    let slow = d
        .run(serve(json!({"resources": {"network_egress_bps": limit}})))
        .await;
    let slow_ip = address_of(&d.inspect(&slow).await);
    wait_http(SocketAddr::new(slow_ip.parse().unwrap(), 80)).await;
    let (code, out) = d
        .run_to_end(json!({}), &["sh", "-c", &timed_fetch(&slow_ip)])
        .await;
    assert_eq!(code, 0, "{out}");
    let rate = rate_of(&out);
    assert!(
        (0.75..=1.25).contains(&(rate / limit as f64)),
        "egress limited to {limit} bit/s ran at {rate:.0} bit/s"
    );

    let (s, v) = d
        .api(
            "POST",
            "/v1/containers",
            Some(
                json!({"image": "busybox", "cmd": ["true"], "network": "none",
                "resources": {"network_ingress_bps": limit}}),
            ),
        )
        .await;
    assert_eq!(s, 400, "a rate limit needs a network: {v}");
}

#[tokio::test]
async fn root_a_fixed_address_is_given_and_kept_for_one_container() {
    require_cni!();
    let d = net_daemon().await;
    let net = d
        .api_ok(
            "POST",
            "/v1/networks",
            Some(json!({"name": "fixed", "subnet": "10.253.9.0/24"})),
            201,
        )
        .await;
    assert_eq!(net["gateway"], "10.253.9.1");
    let (code, out) = d
        .run_to_end(
            json!({"network": "fixed", "ip": "10.253.9.77"}),
            &[
                "sh",
                "-c",
                "ip -4 -o addr show eth0 2>/dev/null || cat /proc/net/fib_trie",
            ],
        )
        .await;
    assert!(code == 0 && out.contains("10.253.9.77"), "{code} {out}");
    let (s, v) = d
        .api(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "cmd": ["true"], "network": "fixed", "ip": "10.253.9.77"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (409, Some("address_in_use")),
        "{v}"
    );
    for (ip, network) in [
        ("10.253.9.1", "fixed"),
        ("10.9.9.9", "fixed"),
        ("10.253.9.5", "none"),
        ("x", "fixed"),
    ] {
        let (s, v) = d
            .api(
                "POST",
                "/v1/containers",
                Some(json!({"image": "busybox", "cmd": ["true"], "network": network, "ip": ip})),
            )
            .await;
        assert_eq!(s, 400, "{ip} on {network}: {v}");
    }
}

/// A server in a network namespace this test makes, reached from the host through a
/// veth pair: "the outside" for containers, on this machine only. Removed on drop.
struct Outside {
    ns: String,
    addr: String,
    server: std::process::Child,
}

impl Outside {
    fn start(d: &TestDaemon, third_octet: u8) -> Outside {
        let ns = format!("{}o", d.bridge_prefix);
        let host_if = format!("{}h", d.bridge_prefix);
        let run = |args: &[&str]| {
            let st = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("ip");
            assert!(st.success(), "ip {args:?}");
        };
        let (host_addr, addr) = (
            format!("10.254.{third_octet}.1"),
            format!("10.254.{third_octet}.2"),
        );
        run(&["netns", "add", &ns]);
        run(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        run(&["addr", "add", &format!("{host_addr}/30"), "dev", &host_if]);
        run(&["link", "set", &host_if, "up"]);
        run(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            "eth0",
        ]);
        run(&["-n", &ns, "link", "set", "eth0", "up"]);
        run(&["-n", &ns, "link", "set", "lo", "up"]);
        let www = d.dir.join("outside-www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "outside-world\n").unwrap();
        let server = std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(&www)
            .spawn()
            .expect("start the outside server");
        Outside { ns, addr, server }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // The veth pair goes with the namespace.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

#[tokio::test]
async fn root_containers_reach_the_outside_through_nat_but_internal_networks_do_not() {
    require_cni!();
    require!(
        which("busybox"),
        "no busybox on the host (apt-get install busybox-static)"
    );
    let d = net_daemon().await;
    let third = u8::from_str_radix(&d.bridge_prefix[2..4], 16).unwrap_or(1) & 0xfc;
    let outside = Outside::start(&d, third);
    let fetch = format!(
        "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 8080",
        outside.addr
    );
    // The server may still be starting: a few tries.
    let mut out = String::new();
    for _ in 0..20 {
        out = d.run_to_end(json!({}), &["sh", "-c", &fetch]).await.1;
        if out.contains("outside-world") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        out.contains("outside-world"),
        "the default network reaches out: {out}"
    );
    d.api_ok(
        "POST",
        "/v1/networks",
        Some(json!({"name": "sealed", "internal": true})),
        201,
    )
    .await;
    let (_, out) = d
        .run_to_end(json!({"network": "sealed"}), &["sh", "-c", &fetch])
        .await;
    assert!(
        !out.contains("outside-world"),
        "an internal network reached out: {out}"
    );
}

#[tokio::test]
async fn root_connect_and_disconnect_a_running_container() {
    require_cni!();
    let d = net_daemon().await;
    for n in ["front", "back"] {
        d.api_ok("POST", "/v1/networks", Some(json!({"name": n})), 201)
            .await;
    }
    let server = d
        .run(merge(
            web("front-page"),
            json!({"name": "srv", "network": "front"}),
        ))
        .await;
    wait_http(SocketAddr::new(
        address_of(&d.inspect(&server).await).parse().unwrap(),
        80,
    ))
    .await;
    let client = d
        .run(bb(
            json!({"name": "cli", "network": "back", "cmd": ["sleep", "1000"]}),
        ))
        .await;
    let fetch = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 srv 80";
    let (_, out, _) = crate::exec::exec_plain(&d, "cli", &["sh", "-c", fetch]).await;
    assert!(
        !out.contains("front-page"),
        "reached front before the connect: {out}"
    );

    // Connected while it runs: a second interface at once, the name resolves.
    d.api_ok(
        "POST",
        "/v1/networks/front/connect",
        Some(json!({"container": "cli", "aliases": ["cli-alias"]})),
        204,
    )
    .await;
    let c = d.inspect(&client).await;
    let nets: Vec<(&str, &str)> = c["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["network"].as_str().unwrap(),
                e["ifname"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(nets, vec![("back", "eth0"), ("front", "eth1")], "{c}");
    assert_eq!(c["config"]["connected_networks"], json!(["front"]));
    let (_, out, _) = crate::exec::exec_plain(&d, "cli", &["sh", "-c", fetch]).await;
    assert!(
        out.contains("front-page"),
        "srv by name after the connect: {out}"
    );
    let (s, v) = d
        .api(
            "POST",
            "/v1/networks/front/connect",
            Some(json!({"container": "cli"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (409, Some("already_connected"))
    );
    let (s, _) = d
        .api(
            "POST",
            "/v1/networks/back/disconnect",
            Some(json!({"container": "cli"})),
        )
        .await;
    assert_eq!(s, 400, "the network of its mode stays");
    let (s, _) = d.api("DELETE", "/v1/networks/front", None).await;
    assert_eq!(s, 409, "front is in use by srv and cli");

    // A stopped container keeps the connection: the next start attaches both.
    d.stop_container(&client, 1).await;
    d.start_container(&client).await;
    let c = d.inspect(&client).await;
    assert_eq!(c["networks"].as_array().unwrap().len(), 2, "{c}");

    // Disconnected while it runs: the interface and its address go.
    d.api_ok(
        "POST",
        "/v1/networks/front/disconnect",
        Some(json!({"container": "cli"})),
        204,
    )
    .await;
    let c = d.inspect(&client).await;
    assert_eq!(c["networks"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["config"]["connected_networks"], json!([]));
    let (s, v) = d
        .api(
            "POST",
            "/v1/networks/front/disconnect",
            Some(json!({"container": "cli"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (409, Some("not_connected"))
    );
    let (s, _) = d
        .api(
            "POST",
            "/v1/networks/front/connect",
            Some(json!({"container": "nosuch"})),
        )
        .await;
    assert_eq!(s, 404);
    // The same through boxctl.
    let boxctl = |args: &[&str]| {
        let out = std::process::Command::new(boxd_tests::boxctl_bin())
            .args(args)
            .env("BOXD_SOCKET", &d.socket)
            .output()
            .expect("run boxctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        boxctl(&["network", "connect", "--alias", "c2", "front", "cli"]).0,
        Some(0)
    );
    assert_eq!(
        d.inspect(&client).await["networks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        boxctl(&["network", "disconnect", "front", "cli"]).0,
        Some(0)
    );
    let (code, err) = boxctl(&["network", "disconnect", "front", "cli"]);
    assert!(
        code != Some(0) && err.contains("not connected"),
        "{code:?} {err}"
    );
    let none = d
        .run(bb(json!({"network": "none", "cmd": ["sleep", "100"]})))
        .await;
    let (s, _) = d
        .api(
            "POST",
            "/v1/networks/front/connect",
            Some(json!({"container": none})),
        )
        .await;
    assert_eq!(s, 400, "a container in mode none cannot be connected");
}

/// busybox's OCI layout (a fixture) copied under `dir` with `ports` added to its
/// config's ExposedPorts, and archived for `/v1/images/load`. The config, and so the
/// manifest and the index pointing at them, get new digests; the layer is the same.
fn busybox_exposing(dir: &std::path::Path, ports: &[&str]) -> std::path::PathBuf {
    use boxd::image::oci::digest_of;
    let layout = dir.join("layout");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(boxd_tests::fixtures().join("busybox-oci"))
        .arg(&layout)
        .status()
        .unwrap();
    assert!(status.success());
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let write_blob = |v: &Value| {
        let bytes = serde_json::to_vec(v).unwrap();
        let digest = digest_of(&bytes);
        std::fs::write(blob(&digest), &bytes).unwrap();
        (digest, bytes.len())
    };
    let read = |p: std::path::PathBuf| -> Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let mut index = read(layout.join("index.json"));
    let mut manifest = read(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let mut config = read(blob(manifest["config"]["digest"].as_str().unwrap()));
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    config["config"]["ExposedPorts"] = ports.iter().map(|p| (p.to_string(), json!({}))).collect();
    let (digest, size) = write_blob(&config);
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = size.into();
    let (digest, size) = write_blob(&manifest);
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = size.into();
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    let tar = dir.join("exposing.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    tar
}

#[tokio::test]
async fn root_publish_all_publishes_the_images_exposed_ports() {
    require_cni!();
    let d = net_daemon().await;
    let tmp = tempfile::tempdir().unwrap();
    let tar = busybox_exposing(tmp.path(), &["80/tcp", "53/udp", "8080", "9/sctp"]);
    let (status, v) = d.upload("/v1/images/load?name=test/exposing", &tar).await;
    assert_eq!(status.as_u16(), 200, "{v}");
    let image = d.api_ok("GET", "/v1/images/test/exposing", None, 200).await;
    assert_eq!(
        image["exposed_ports"],
        json!(["9/sctp", "53/udp", "80/tcp", "8080/tcp"]),
        "{image}"
    );

    // 80/tcp is published by the request already, on its own host port; the others
    // get random ones, and sctp is left out with a word.
    let resp = d
        .api_ok(
            "POST",
            "/v1/containers",
            Some(json!({
                "image": "test/exposing", "cmd": ["sleep", "100"], "publish_all": true,
                "ports": [{"host_ip": "127.0.0.1", "container_port": 80}],
            })),
            201,
        )
        .await;
    assert!(resp["warnings"].to_string().contains("9/sctp"), "{resp}");
    let c = d.inspect(resp["id"].as_str().unwrap()).await;
    let ports = c["config"]["ports"].as_array().unwrap();
    let published: BTreeSet<(u64, String)> = ports
        .iter()
        .map(|p| {
            assert_ne!(p["host_port"].as_u64(), Some(0), "{c}");
            (
                p["container_port"].as_u64().unwrap(),
                p["protocol"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(ports.len(), 3, "{c}");
    assert_eq!(
        published,
        BTreeSet::from([
            (53, "udp".to_owned()),
            (80, "tcp".to_owned()),
            (8080, "tcp".to_owned())
        ])
    );
    assert_eq!(
        ports[0]["host_ip"], "127.0.0.1",
        "the request's own mapping: {c}"
    );

    // An image without a config (a rootfs import) exposes nothing: nothing is added.
    let resp = d
        .api_ok(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "cmd": ["true"], "publish_all": true})),
            201,
        )
        .await;
    let c = d.inspect(resp["id"].as_str().unwrap()).await;
    assert_eq!(c["config"]["ports"], json!([]), "{c}");

    // No network of its own, nothing to publish on: refused whatever the image says.
    for (image, mode) in [("test/exposing", "none"), ("busybox", "none")] {
        let (s, v) = d
            .api(
                "POST",
                "/v1/containers",
                Some(
                    json!({"image": image, "cmd": ["true"], "network": mode, "publish_all": true}),
                ),
            )
            .await;
        assert_eq!(s, 400, "{image} {mode}: {v}");
        assert!(v["message"].to_string().contains("publish_all"), "{v}");
    }
}

#[tokio::test]
async fn root_a_network_with_ipv6_gives_both_addresses_and_answers_aaaa() {
    require_cni!();
    require!(
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
            .is_ok_and(|v| v.trim() == "0"),
        "IPv6 is disabled on this host"
    );
    let d = net_daemon().await;
    let h = u16::from_str_radix(&d.bridge_prefix[2..6], 16).unwrap_or(1);
    let subnet6 = format!("fd42:{h:x}::/64");
    let n = d
        .api_ok(
            "POST",
            "/v1/networks",
            Some(json!({"name": "six", "subnet6": subnet6})),
            201,
        )
        .await;
    assert_eq!(n["subnet6"], subnet6.as_str());
    assert_eq!(n["gateway6"], format!("fd42:{h:x}::1"));
    let (s, v) = d
        .api(
            "POST",
            "/v1/networks",
            Some(json!({"name": "six-b", "subnet6": format!("fd42:{h:x}::/48")})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (400, Some("subnet_overlap")),
        "{v}"
    );

    let server = d
        .run(merge(
            web("over-six"),
            json!({"name": "srv6", "network": "six"}),
        ))
        .await;
    let c = d.inspect(&server).await;
    let v6 = c["networks"][0]["address6"]
        .as_str()
        .unwrap_or_else(|| panic!("no IPv6 address: {c}"))
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        c["networks"][0]["address"].is_string(),
        "both families: {c}"
    );
    let addr: std::net::IpAddr = v6.parse().unwrap();
    assert!(wait_http(SocketAddr::new(addr, 80))
        .await
        .contains("over-six"));
    let fetch = format!(
        "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {v6} 80; nslookup -type=AAAA srv6"
    );
    let (code, out) = d
        .run_to_end(json!({"network": "six"}), &["sh", "-c", &fetch])
        .await;
    assert!(
        out.contains("over-six"),
        "container to container over IPv6: {code} {out}"
    );
    assert!(out.contains(&v6), "AAAA of srv6: {out}");
    let bridge = n["bridge"].as_str().unwrap().to_owned();
    let all = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    for c in all.as_array().unwrap() {
        d.remove_container(c["id"].as_str().unwrap()).await;
    }
    d.api_ok("DELETE", "/v1/networks/six", None, 204).await;
    let left = boxd_tests::rules_naming("ip6tables", &bridge);
    assert!(left.is_empty(), "IPv6 rules for {bridge} left: {left:#?}");
    let prefix = subnet6.trim_end_matches("/64");
    let left = boxd_tests::rules_naming("ip6tables", prefix);
    assert!(left.is_empty(), "IPv6 rules for {prefix} left: {left:#?}");
}

#[tokio::test]
async fn root_an_operators_own_conflist_drives_the_plugins_it_names() {
    require_cni!();
    let d = net_daemon().await;
    let h = u8::from_str_radix(&d.bridge_prefix[2..4], 16).unwrap_or(1);
    // ptp (a veth per container, no bridge) with host-local and portmap: nothing of
    // boxd's own list.
    let list = json!({
        "cniVersion": "1.0.0",
        "plugins": [
            {"type": "ptp", "ipMasq": true,
             "ipam": {"type": "host-local", "subnet": format!("10.251.{h}.0/24"),
                      "dataDir": d.root.join("ptp-leases")}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]
    });
    let n = d
        .api_ok(
            "POST",
            "/v1/networks",
            Some(json!({"name": "custom", "conflist": list})),
            201,
        )
        .await;
    assert_eq!(n["driver"], "cni", "{n}");
    assert_eq!(
        n["conflist"]["name"], "custom",
        "the list takes the network's name"
    );
    let (s, v) = d
        .api(
            "POST",
            "/v1/networks",
            Some(json!({"name": "bad", "conflist": {"plugins": [{"type": "no-such-plugin"}]}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no-such-plugin"),
        "{v}"
    );

    let id = d
        .run(merge(
            web("through-ptp"),
            json!({"network": "custom", "ports": [{"container_port": 80}]}),
        ))
        .await;
    let c = d.inspect(&id).await;
    let addr = address_of(&c);
    assert!(addr.starts_with(&format!("10.251.{h}.")), "{c}");
    let port = host_port(&c, 0);
    assert!(wait_http(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .contains("through-ptp"));
    d.remove_container(&id).await;
    let left = boxd_tests::iptables_rules_naming(&format!("10.251.{h}."));
    assert!(left.is_empty(), "rules left: {left:#?}");
    d.api_ok("DELETE", "/v1/networks/custom", None, 204).await;
}
