//! Published ports: checked and resolved at create (a random free host port is picked
//! then, and kept), handed to the `portmap` plugin as its `portMappings` capability.
//!
//! A host port another container publishes is refused at create (409); one a host
//! process holds is found at start, when boxd binds it for a moment before the ADD
//! (the plugin's DNAT would otherwise silently steal or lose the traffic).

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::NetworkError;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" | "" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(format!("protocol {other:?} must be tcp or udp")),
        }
    }
}

/// A published port as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    /// Host address; the daemon's `port_host_ip` when absent.
    pub host_ip: Option<IpAddr>,
    /// Host port; a free one is picked when absent or 0.
    pub host_port: Option<u16>,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A published port as resolved and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address (`0.0.0.0`: every address of the host).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip, self.host_port, self.container_port, self.protocol
        )
    }
}

impl PortMapping {
    /// Whether two mappings want the same host port: same port and protocol, and the
    /// same host address or either on every address.
    fn clashes(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

/// Resolves `requests` (defaults, random ports), refusing clashes among them (400) and
/// with `taken`, the ports other containers publish (409).
pub fn plan(
    requests: &[PortRequest],
    default_ip: IpAddr,
    taken: &[(String, PortMapping)],
) -> Result<Vec<PortMapping>, NetworkError> {
    let mut out: Vec<PortMapping> = Vec::new();
    for r in requests {
        if r.container_port == 0 {
            return Err(NetworkError::Invalid {
                field: "ports",
                reason: "container_port must be 1-65535".to_owned(),
            });
        }
        let host_ip = r.host_ip.unwrap_or(default_ip);
        let host_port = match r.host_port.filter(|p| *p != 0) {
            Some(p) => p,
            None => random_port(host_ip, r.protocol, taken, &out)?,
        };
        let m = PortMapping {
            host_ip,
            host_port,
            container_port: r.container_port,
            protocol: r.protocol,
        };
        if let Some(o) = out.iter().find(|o| o.clashes(&m)) {
            return Err(NetworkError::Invalid {
                field: "ports",
                reason: format!("{m} and {o} publish the same host port"),
            });
        }
        if let Some((who, o)) = taken.iter().find(|(_, o)| o.clashes(&m)) {
            return Err(NetworkError::PortInUse(format!(
                "host port {}/{} is already published by container {} ({o}); choose another host port",
                m.host_port,
                m.protocol,
                who.get(..12).unwrap_or(who)
            )));
        }
        out.push(m);
    }
    Ok(out)
}

/// What `publish_all` adds to `requested`: each of an image's `exposed` ports
/// (`80/tcp`) that no request publishes yet (same container port and protocol), on a
/// random host port of the default address, as Docker's `-P` does. An exposed port
/// that cannot be published (another protocol than tcp and udp, or not a port) is
/// left out with a warning rather than failing the create: the image, not the
/// caller, named it.
pub fn exposed_requests(
    requested: &[PortRequest],
    exposed: &[String],
    warnings: &mut Vec<String>,
) -> Vec<PortRequest> {
    let mut out: Vec<PortRequest> = Vec::new();
    for e in exposed {
        let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let (Ok(container_port), Ok(protocol)) = (port.parse::<u16>(), proto.parse::<Protocol>())
        else {
            warnings.push(format!(
                "exposed port {e} of the image is not published: only tcp and udp ports 1-65535 can be"
            ));
            continue;
        };
        let published =
            |r: &PortRequest| r.container_port == container_port && r.protocol == protocol;
        if container_port == 0 || requested.iter().chain(&out).any(published) {
            continue;
        }
        out.push(PortRequest {
            host_ip: None,
            host_port: None,
            container_port,
            protocol,
        });
    }
    out
}

/// A port the kernel says is free now (bound to port 0), and no container publishes.
fn random_port(
    ip: IpAddr,
    protocol: Protocol,
    taken: &[(String, PortMapping)],
    chosen: &[PortMapping],
) -> Result<u16, NetworkError> {
    for _ in 0..64 {
        let addr = SocketAddr::new(ip, 0);
        let port = match protocol {
            Protocol::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
            Protocol::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
        }
        .map_err(|e| NetworkError::Invalid {
            field: "ports",
            reason: format!("cannot bind {ip} on this host: {e}"),
        })?
        .port();
        let m = PortMapping {
            host_ip: ip,
            host_port: port,
            container_port: 1,
            protocol,
        };
        if !taken.iter().any(|(_, o)| o.clashes(&m)) && !chosen.iter().any(|o| o.clashes(&m)) {
            return Ok(port);
        }
    }
    Err(NetworkError::PortInUse(format!(
        "no free {protocol} host port found on {ip}"
    )))
}

/// Refuses a start whose host port a host process holds: binds each one for a moment.
pub fn check_free_on_host(ports: &[PortMapping]) -> Result<(), NetworkError> {
    for m in ports {
        let addr = SocketAddr::new(m.host_ip, m.host_port);
        let bound = match m.protocol {
            Protocol::Tcp => TcpListener::bind(addr).map(drop),
            Protocol::Udp => UdpSocket::bind(addr).map(drop),
        };
        if let Err(e) = bound {
            return Err(NetworkError::PortInUse(format!(
                "host port {}/{} on {} is in use on the host ({e}); stop what holds it or publish another port",
                m.host_port, m.protocol, m.host_ip
            )));
        }
    }
    Ok(())
}

/// The `portMappings` runtime config of the portmap plugin.
pub fn runtime_config(ports: &[PortMapping]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|m| {
                let mut v = json!({
                    "hostPort": m.host_port,
                    "containerPort": m.container_port,
                    "protocol": m.protocol.to_string(),
                });
                if !m.host_ip.is_unspecified() {
                    v["hostIP"] = json!(m.host_ip.to_string());
                }
                v
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<u16>, container: u16, protocol: Protocol) -> PortRequest {
        PortRequest {
            host_ip: None,
            host_port: host,
            container_port: container,
            protocol,
        }
    }

    #[test]
    fn clashes_need_the_same_port_protocol_and_address() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let taken = vec![(
            "c1".to_owned(),
            PortMapping {
                host_ip: lo,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            },
        )];
        assert!(matches!(
            plan(&[req(Some(8080), 80, Protocol::Tcp)], any, &taken),
            Err(NetworkError::PortInUse(_))
        ));
        assert!(plan(&[req(Some(8080), 80, Protocol::Udp)], any, &taken).is_ok());
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(plan(&[req(Some(8080), 80, Protocol::Tcp)], other, &taken).is_ok());
        assert!(matches!(
            plan(
                &[
                    req(Some(9000), 80, Protocol::Tcp),
                    req(Some(9000), 81, Protocol::Tcp)
                ],
                any,
                &[]
            ),
            Err(NetworkError::Invalid { .. })
        ));
        assert!(matches!(
            plan(&[req(Some(1), 0, Protocol::Tcp)], any, &[]),
            Err(NetworkError::Invalid { .. })
        ));
    }

    #[test]
    fn publish_all_adds_each_exposed_port_not_yet_published() {
        let requested = [
            req(Some(8080), 80, Protocol::Tcp),
            req(None, 53, Protocol::Udp),
        ];
        let exposed: Vec<String> = ["53/tcp", "53/udp", "80/tcp", "443/tcp", "9/sctp", "x/tcp"]
            .map(str::to_owned)
            .to_vec();
        let mut warnings = Vec::new();
        let added = exposed_requests(&requested, &exposed, &mut warnings);
        assert_eq!(
            added,
            [req(None, 53, Protocol::Tcp), req(None, 443, Protocol::Tcp)]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("9/sctp"), "{warnings:?}");
        assert!(warnings[1].contains("x/tcp"), "{warnings:?}");
        // Repeated ports are added once; nothing exposed, nothing added.
        let twice = ["80/tcp".to_owned(), "80/tcp".to_owned()];
        assert_eq!(exposed_requests(&[], &twice, &mut warnings).len(), 1);
        assert!(exposed_requests(&requested, &[], &mut warnings).is_empty());
        // Planned, each gets its own random host port.
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let all: Vec<PortRequest> = requested.iter().copied().chain(added).collect();
        let got = plan(&all, lo, &[]).unwrap();
        assert_eq!(got.len(), 4);
        assert!(got[2].host_port != 0 && got[3].host_port != 0);
        assert_ne!(got[2].host_port, got[3].host_port);
    }

    #[test]
    fn a_random_port_is_picked_and_kept() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let got = plan(&[req(None, 80, Protocol::Tcp)], lo, &[]).unwrap();
        assert_ne!(got[0].host_port, 0);
        assert_eq!(got[0].container_port, 80);
    }

    #[test]
    fn runtime_config_is_portmaps_format() {
        let m = PortMapping {
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Udp,
        };
        assert_eq!(
            runtime_config(&[m]),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "udp"}])
        );
    }
}
