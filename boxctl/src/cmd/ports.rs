//! Published ports in docker's notation: `-p/--publish` of `create` and `run` parsed into
//! the daemon's `PortSpec`s, and the PORTS column of `ps` printed from them.
//!
//! The grammar is docker's `[ip:][hostPort:]containerPort[/tcp|udp]`; an empty or absent
//! host port (or `0`) asks the daemon for a random free one. A range
//! (`8000-8010:8000-8010`) becomes one mapping per port, because the daemon maps single
//! ports only; for the same reason docker's "single container port, host port range"
//! form (pick a free host port in the range) is refused instead of being narrowed.

use std::net::IpAddr;

use anyhow::anyhow;
use boxd_client::models::PortSpec;

/// Parses one `-p` value into its mappings, one per port of a range.
pub fn parse_publish(spec: &str) -> anyhow::Result<Vec<PortSpec>> {
    parse(spec).map_err(|why| anyhow!("invalid port spec {spec:?}: {why}"))
}

fn parse(spec: &str) -> Result<Vec<PortSpec>, String> {
    // Split from the right, as docker does, so that an IPv6 address without brackets
    // (`::1:8080:80`) keeps its colons.
    let mut parts = spec.rsplitn(3, ':');
    let container = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let ip = parts.next().unwrap_or_default();

    let (container, protocol) = match container.split_once('/') {
        None => (container, None),
        Some((port, proto)) => match proto.to_ascii_lowercase().as_str() {
            p @ ("tcp" | "udp") => (port, Some(p.to_owned())),
            _ => return Err(format!("protocol {proto:?} must be tcp or udp")),
        },
    };
    if container.is_empty() {
        return Err("no container port".to_owned());
    }
    let host_ip = if ip.is_empty() {
        None
    } else {
        let bare = match ip.strip_prefix('[') {
            Some(rest) => rest
                .strip_suffix(']')
                .ok_or_else(|| format!("{ip:?} is not an IP address"))?,
            None => ip,
        };
        let addr: IpAddr = bare
            .parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        // Brackets only belong around IPv6 addresses.
        if bare.len() != ip.len() && addr.is_ipv4() {
            return Err(format!("{ip:?} is not an IP address"));
        }
        Some(addr.to_string())
    };

    let (c_start, c_end) = range(container, "container port")?;
    if c_start == 0 {
        return Err("container port must be 1-65535".to_owned());
    }
    let host = if host.is_empty() {
        None
    } else {
        let (h_start, h_end) = range(host, "host port")?;
        if h_end - h_start != c_end - c_start {
            return Err(format!(
                "host ports {host} and container ports {container} are not the same number of ports"
            ));
        }
        if h_start == 0 && h_end != 0 {
            return Err("host port 0 cannot start a range".to_owned());
        }
        Some(h_start)
    };

    Ok((c_start..=c_end)
        .map(|port| PortSpec {
            host_ip: host_ip.clone(),
            // 0 (like absent) leaves the choice to the daemon.
            host_port: host.filter(|&h| h != 0).map(|h| h + (port - c_start)),
            container_port: port,
            protocol: protocol.clone(),
        })
        .collect())
}

/// `80` or `8000-8010`.
fn range(s: &str, what: &str) -> Result<(u16, u16), String> {
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (port(a, what)?, port(b, what)?),
        None => {
            let p = port(s, what)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!("{what} range {s} ends before it starts"));
    }
    Ok((start, end))
}

fn port(s: &str, what: &str) -> Result<u16, String> {
    // `u16::from_str` takes a leading `+`; a port is digits only.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse()
        .map_err(|_| format!("{what} {s} is larger than 65535"))
}

/// Checks `--network`: one of docker's modes or a network's name; the daemon decides
/// whether the name exists.
pub fn parse_network(s: &str) -> Result<String, String> {
    match s {
        "" => Err("network mode must not be empty".to_owned()),
        "container:" => Err("container: needs a container's name or id".to_owned()),
        _ => Ok(s.to_owned()),
    }
}

/// A port as `ps` sees it (docker's `types.Port`).
struct Shown<'a> {
    ip: Option<&'a str>,
    public: Option<u16>,
    private: u16,
    proto: &'a str,
}

/// A run of consecutive ports published on the same numbers.
struct Group<'a> {
    ip: Option<&'a str>,
    proto: &'a str,
    first: u16,
    last: u16,
}

impl Group<'_> {
    fn render(&self) -> String {
        let ports = if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}-{}", self.first, self.last)
        };
        match self.ip {
            // Without brackets even for IPv6 (`:::80->80/tcp`): docker prints it so.
            Some(ip) => format!("{ip}:{ports}->{ports}/{}", self.proto),
            None => format!("{ports}/{}", self.proto),
        }
    }
}

/// The PORTS cell, as docker's `DisplayablePorts` writes it: sorted by container port,
/// runs of ports published on the same numbers folded into ranges
/// (`0.0.0.0:8000-8002->8000-8002/tcp`), then the mappings to other numbers
/// (`127.0.0.1:8080->80/tcp`), all joined by `, `.
pub fn display(ports: &[PortSpec]) -> String {
    let mut shown: Vec<Shown> = ports
        .iter()
        .map(|p| Shown {
            ip: p.host_ip.as_deref().filter(|ip| !ip.is_empty()),
            public: p.host_port.filter(|&h| h != 0),
            private: p.container_port,
            proto: p.protocol.as_deref().unwrap_or("tcp"),
        })
        .collect();
    shown.sort_by(|a, b| {
        (a.private, a.ip.unwrap_or(""), a.public, a.proto).cmp(&(
            b.private,
            b.ip.unwrap_or(""),
            b.public,
            b.proto,
        ))
    });

    let mut result = Vec::new();
    let mut mappings = Vec::new();
    // Open groups, in the order their keys first appeared (docker's `groupMapKeys`).
    let mut open: Vec<Group> = Vec::new();
    for p in &shown {
        let ip = match (p.ip, p.public) {
            (Some(ip), Some(public)) if public != p.private => {
                let host = if ip.contains(':') {
                    format!("[{ip}]:{public}")
                } else {
                    format!("{ip}:{public}")
                };
                mappings.push(format!("{host}->{}/{}", p.private, p.proto));
                continue;
            }
            (Some(ip), Some(_)) => Some(ip),
            // Not published on the host: docker shows just `80/tcp`.
            _ => None,
        };
        match open.iter_mut().find(|g| g.ip == ip && g.proto == p.proto) {
            None => open.push(Group {
                ip,
                proto: p.proto,
                first: p.private,
                last: p.private,
            }),
            Some(g) if g.last.checked_add(1) == Some(p.private) => g.last = p.private,
            Some(g) => {
                result.push(g.render());
                g.first = p.private;
                g.last = p.private;
            }
        }
    }
    result.extend(open.iter().map(Group::render));
    result.extend(mappings);
    result.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ip: Option<&str>, host: Option<u16>, container: u16, proto: Option<&str>) -> PortSpec {
        PortSpec {
            host_ip: ip.map(str::to_owned),
            host_port: host,
            container_port: container,
            protocol: proto.map(str::to_owned),
        }
    }

    fn one(s: &str) -> PortSpec {
        let mut all = parse_publish(s).unwrap();
        assert_eq!(all.len(), 1, "{s}");
        all.remove(0)
    }

    #[test]
    fn publish_takes_dockers_forms() {
        assert_eq!(one("80"), spec(None, None, 80, None));
        assert_eq!(one("8080:80"), spec(None, Some(8080), 80, None));
        assert_eq!(one(":80"), spec(None, None, 80, None));
        assert_eq!(one("0:80"), spec(None, None, 80, None));
        assert_eq!(one("80/tcp"), spec(None, None, 80, Some("tcp")));
        assert_eq!(one("53/UDP"), spec(None, None, 53, Some("udp")));
        assert_eq!(
            one("127.0.0.1:8080:80/udp"),
            spec(Some("127.0.0.1"), Some(8080), 80, Some("udp"))
        );
        assert_eq!(
            one("127.0.0.1::80"),
            spec(Some("127.0.0.1"), None, 80, None)
        );
        assert_eq!(one("::80"), spec(None, None, 80, None));
        assert_eq!(
            one("[::1]:8080:80"),
            spec(Some("::1"), Some(8080), 80, None)
        );
        assert_eq!(one("::1:8080:80"), spec(Some("::1"), Some(8080), 80, None));
        assert_eq!(one("[::]::80"), spec(Some("::"), None, 80, None));
        assert_eq!(one("65535:65535"), spec(None, Some(65535), 65535, None));
    }

    #[test]
    fn publish_ranges_become_one_mapping_per_port() {
        let got = parse_publish("127.0.0.1:8000-8002:9000-9002/udp").unwrap();
        assert_eq!(
            got,
            [
                spec(Some("127.0.0.1"), Some(8000), 9000, Some("udp")),
                spec(Some("127.0.0.1"), Some(8001), 9001, Some("udp")),
                spec(Some("127.0.0.1"), Some(8002), 9002, Some("udp")),
            ]
        );
        // Random host ports for each port of the range.
        assert_eq!(
            parse_publish("7000-7001").unwrap(),
            [spec(None, None, 7000, None), spec(None, None, 7001, None)]
        );
        assert_eq!(parse_publish("80-80:80-80").unwrap().len(), 1);
    }

    #[test]
    fn publish_refuses_malformed_specs() {
        for bad in [
            "",
            ":",
            "8080:",
            "abc",
            "80/sctp",
            "80/",
            "/tcp",
            "-80",
            "+80",
            " 80",
            "0",
            "65536",
            "8080:65536",
            "80:+80",
            "localhost:8080:80",
            "1.2.3:8080:80",
            "[127.0.0.1]:8080:80",
            "[::1:8080:80",
            "8000-8010:8000-8005",
            "8000-8010:80",
            "8000:80-81",
            "8010-8000:8010-8000",
            "8000-:80",
            "0-1:1-2",
            "80:80:80:80",
        ] {
            let err = parse_publish(bad).expect_err(bad).to_string();
            assert!(err.starts_with("invalid port spec "), "{bad}: {err}");
        }
        let err = parse_publish("8000-8010:8000-8005")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the same number of ports"), "{err}");
        let err = parse_publish("80/sctp").unwrap_err().to_string();
        assert!(err.contains("tcp or udp"), "{err}");
    }

    #[test]
    fn network_modes_pass_but_empty_ones_do_not() {
        for ok in ["bridge", "none", "host", "mynet", "container:web"] {
            assert_eq!(parse_network(ok).as_deref(), Ok(ok));
        }
        assert!(parse_network("").is_err());
        assert!(parse_network("container:").is_err());
    }

    #[test]
    fn ports_cell_reads_like_docker() {
        assert_eq!(display(&[]), "");
        assert_eq!(
            display(&[spec(Some("0.0.0.0"), Some(8080), 80, Some("tcp"))]),
            "0.0.0.0:8080->80/tcp"
        );
        // Sorted by container port; mappings to other numbers come after the folded runs.
        assert_eq!(
            display(&[
                spec(Some("0.0.0.0"), Some(8080), 80, Some("tcp")),
                spec(Some("127.0.0.1"), Some(5353), 53, Some("udp")),
                spec(Some("0.0.0.0"), Some(443), 443, Some("tcp")),
            ]),
            "0.0.0.0:443->443/tcp, 127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp"
        );
        // A run published on the same numbers folds into a range.
        let run: Vec<PortSpec> = (8000..=8002)
            .map(|p| spec(Some("0.0.0.0"), Some(p), p, Some("tcp")))
            .collect();
        assert_eq!(display(&run), "0.0.0.0:8000-8002->8000-8002/tcp");
        // A gap ends a run; protocols and addresses fold separately.
        assert_eq!(
            display(&[
                spec(Some("0.0.0.0"), Some(1), 1, None),
                spec(Some("0.0.0.0"), Some(2), 2, None),
                spec(Some("0.0.0.0"), Some(4), 4, None),
                spec(Some("0.0.0.0"), Some(2), 2, Some("udp")),
                spec(Some("::"), Some(3), 3, Some("tcp")),
            ]),
            "0.0.0.0:1-2->1-2/tcp, 0.0.0.0:4->4/tcp, 0.0.0.0:2->2/udp, :::3->3/tcp"
        );
        // IPv6 hosts of other numbers are bracketed; unpublished ports show bare.
        assert_eq!(
            display(&[
                spec(Some("::1"), Some(8080), 80, Some("tcp")),
                spec(None, None, 9000, None),
            ]),
            "9000/tcp, [::1]:8080->80/tcp"
        );
    }
}
