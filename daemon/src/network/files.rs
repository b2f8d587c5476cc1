//! The `/etc/resolv.conf` and `/etc/hosts` boxd writes for each run (in its state
//! dir, bind-mounted over the image's), as Docker does.
//!
//! resolv.conf: on a user network, the network's own DNS server (its gateway, see
//! `dns`); elsewhere, the host's resolvers, without loopback ones (unreachable from a
//! namespace of its own), falling back to public resolvers only if none is left (as
//! Docker). `dns`, `dns_search` and `dns_options` of the container replace the
//! respective parts. hosts: localhost, the container's own address and hostname, and
//! `extra_hosts`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A container's DNS settings (`--dns`, `--dns-search`, `--dns-option`,
/// `--add-host`), as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// Resolvers replacing the default ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf `options`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// More `/etc/hosts` lines: name and address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<(String, IpAddr)>,
}

/// The `nameserver` addresses of a resolv.conf.
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            words.next()?.parse().ok()
        })
        .collect()
}

fn words_of(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == key).then(|| words.map(str::to_owned).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

/// The resolv.conf of a run: `own_server` is the network's DNS (user networks), else
/// the host's resolvers (`host_text`, its resolv.conf) are used.
pub fn resolv_conf(dns: &DnsConfig, own_server: Option<IpAddr>, host_text: &str) -> String {
    let servers: Vec<IpAddr> = if !dns.servers.is_empty() {
        dns.servers.clone()
    } else if let Some(s) = own_server {
        vec![s]
    } else {
        let host: Vec<IpAddr> = nameservers(host_text)
            .into_iter()
            .filter(|ip| !ip.is_loopback())
            .collect();
        if host.is_empty() {
            // What Docker falls back to when the host only has a local stub resolver.
            vec![
                "8.8.8.8".parse().expect("valid"),
                "8.8.4.4".parse().expect("valid"),
            ]
        } else {
            host
        }
    };
    let search = if dns.search.is_empty() {
        words_of(host_text, "search")
    } else {
        dns.search.clone()
    };
    let options = if dns.options.is_empty() {
        words_of(host_text, "options")
    } else {
        dns.options.clone()
    };
    let mut out = String::from("# written by boxd\n");
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The hosts file of a run: localhost, `address hostname name` when the run has an
/// address, and the extra hosts.
pub fn hosts(dns: &DnsConfig, address: Option<IpAddr>, hostname: &str, name: &str) -> String {
    let mut out = String::from(
        "# written by boxd\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if let Some(a) = address {
        if hostname == name {
            out.push_str(&format!("{a}\t{hostname}\n"));
        } else {
            out.push_str(&format!("{a}\t{hostname} {name}\n"));
        }
    } else {
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for (host, ip) in &dns.extra_hosts {
        out.push_str(&format!("{ip}\t{host}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str =
        "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    #[test]
    fn resolv_conf_uses_the_network_server_or_the_hosts_without_loopback() {
        let d = DnsConfig::default();
        assert_eq!(
            resolv_conf(&d, Some("10.9.0.1".parse().unwrap()), HOST),
            "# written by boxd\nnameserver 10.9.0.1\nsearch corp.example\noptions edns0\n"
        );
        assert!(resolv_conf(&d, None, HOST).contains("nameserver 192.0.2.53\n"));
        assert!(!resolv_conf(&d, None, HOST).contains("127.0.0.53"));
        let custom = DnsConfig {
            servers: vec!["192.0.2.1".parse().unwrap()],
            search: vec!["a.example".into()],
            options: vec!["ndots:2".into()],
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(&custom, Some("10.9.0.1".parse().unwrap()), HOST),
            "# written by boxd\nnameserver 192.0.2.1\nsearch a.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_names_the_container_and_the_extra_hosts() {
        let d = DnsConfig {
            extra_hosts: vec![("db.local".into(), "192.0.2.9".parse().unwrap())],
            ..Default::default()
        };
        let h = hosts(&d, Some("10.9.0.2".parse().unwrap()), "web", "web");
        assert!(
            h.contains("10.9.0.2\tweb\n") && h.contains("192.0.2.9\tdb.local\n"),
            "{h}"
        );
        assert!(hosts(&d, None, "h", "n").contains("127.0.1.1\th\n"));
    }
}
