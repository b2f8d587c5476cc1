//! The networking flags of `boxctl create` / `run` beyond `--network` and `-p` (docker's
//! names): `--ip`, `--dns`, `--dns-search`, `--dns-option`, `--add-host`,
//! `--network-alias`, and the rate limits `--network-rate`, `--network-ingress-rate`,
//! `--network-egress-rate`.
//!
//! Addresses and rates are checked here, as clap value parsers, so a typo is a usage
//! error before any request; names, search domains and options are left to the daemon,
//! which knows its own rules for them.

use std::net::{IpAddr, Ipv4Addr};

use boxd_client::models::CreateContainer;
use clap::Args as ClapArgs;

/// Networking options shared by `create` and `run`.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct NetworkOpts {
    /// A fixed IPv4 address on the container's network (bridge or a user network).
    #[arg(long, value_name = "IP", value_parser = parse_ipv4)]
    pub ip: Option<String>,
    /// A DNS server for /etc/resolv.conf, replacing the default ones (repeatable).
    #[arg(long, value_name = "IP", value_parser = parse_ip)]
    pub dns: Vec<String>,
    /// A DNS search domain (repeatable).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// A resolv.conf option such as ndots:2 (repeatable).
    #[arg(long = "dns-option", value_name = "OPT")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry, NAME:IP or NAME=IP (repeatable).
    #[arg(long = "add-host", value_name = "NAME:IP", value_parser = parse_add_host)]
    pub add_host: Vec<String>,
    /// Another name the container answers to on its user network's DNS (repeatable).
    #[arg(long = "network-alias", visible_alias = "alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
    /// Rate limit of both directions, in bits per second (8mbit, 500kbit, 1gbit, 1000).
    #[arg(long = "network-rate", value_name = "RATE", value_parser = parse_rate)]
    pub network_rate: Option<u64>,
    /// Rate limit of traffic into the container (overrides --network-rate).
    #[arg(long = "network-ingress-rate", value_name = "RATE", value_parser = parse_rate)]
    pub network_ingress_rate: Option<u64>,
    /// Rate limit of traffic out of the container (overrides --network-rate).
    #[arg(long = "network-egress-rate", value_name = "RATE", value_parser = parse_rate)]
    pub network_egress_rate: Option<u64>,
}

/// Adds `opts` to `req`.
pub fn apply(opts: &NetworkOpts, req: &mut CreateContainer) {
    req.ip = opts.ip.clone();
    req.dns.extend(opts.dns.iter().cloned());
    req.dns_search.extend(opts.dns_search.iter().cloned());
    req.dns_options.extend(opts.dns_option.iter().cloned());
    req.extra_hosts.extend(opts.add_host.iter().cloned());
    req.network_aliases
        .extend(opts.network_alias.iter().cloned());
    req.resources.network_ingress_bps = opts.network_ingress_rate.or(opts.network_rate);
    req.resources.network_egress_bps = opts.network_egress_rate.or(opts.network_rate);
}

/// Checks `--ip`: an IPv4 address (the daemon's networks are IPv4).
pub fn parse_ipv4(s: &str) -> Result<String, String> {
    s.parse::<Ipv4Addr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("{s:?} is not an IPv4 address"))
}

/// Checks `--dns`: an IP address.
pub fn parse_ip(s: &str) -> Result<String, String> {
    s.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("{s:?} is not an IP address"))
}

/// Parses `--add-host NAME:IP` or `NAME=IP` into the daemon's `name:ip`.
///
/// `=` is tried first, as docker does, because an IPv6 address has colons of its own
/// (`db=2001:db8::1`); after a `:` the rest is the address (`db:2001:db8::1` works too).
/// Brackets around an IPv6 address are dropped.
pub fn parse_add_host(s: &str) -> Result<String, String> {
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| format!("{s:?} is not NAME:IP"))?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(format!("{s:?} has no host name"));
    }
    if ip == "host-gateway" {
        return Err(format!(
            "{s:?}: host-gateway is not supported; give the address"
        ));
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(ip);
    let ip: IpAddr = bare
        .parse()
        .map_err(|_| format!("{ip:?} in {s:?} is not an IP address"))?;
    Ok(format!("{name}:{ip}"))
}

/// Parses a rate in bits per second: a number with an optional decimal unit, `k`/`kbit`
/// (1000), `m`/`mbit`, `g`/`gbit`, `t`/`tbit`, or `bit`; any case; `1.5mbit` allowed.
///
/// tc's `bps` units mean *bytes* per second, so they are refused rather than read as
/// bits: `8mbps` would otherwise be off by a factor of eight without a word.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let unit = unit.to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "bit" => 1,
        "k" | "kbit" => 1_000,
        "m" | "mbit" => 1_000_000,
        "g" | "gbit" => 1_000_000_000,
        "t" | "tbit" => 1_000_000_000_000,
        u if u.ends_with("bps") || u.ends_with("b/s") => {
            return Err(format!(
                "invalid rate {s:?}: rates are in bits per second; write kbit, mbit or gbit"
            ))
        }
        _ => {
            return Err(format!(
                "invalid rate {s:?}: unit must be bit, kbit, mbit, gbit or tbit"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid rate {s:?}: expected a number like 8mbit"))?;
    let bits = (value * factor as f64).round();
    if !bits.is_finite() || bits >= u64::MAX as f64 {
        return Err(format!("invalid rate {s:?}: too large"));
    }
    if bits < 1.0 {
        return Err(format!("invalid rate {s:?}: must be more than 0"));
    }
    Ok(bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_bits_with_decimal_units_any_case() {
        assert_eq!(parse_rate("8mbit"), Ok(8_000_000));
        assert_eq!(parse_rate("8Mbit"), Ok(8_000_000));
        assert_eq!(parse_rate("8M"), Ok(8_000_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("500k"), Ok(500_000));
        assert_eq!(parse_rate("500K"), Ok(500_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_rate("2tbit"), Ok(2_000_000_000_000));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("1000bit"), Ok(1000));
        assert_eq!(parse_rate("1.5mbit"), Ok(1_500_000));
        assert_eq!(parse_rate(" 10m "), Ok(10_000_000));
        for bad in [
            "",
            "mbit",
            "8x",
            "8 mbit",
            "-8mbit",
            "0",
            "0k",
            "8mbps",
            "8MBps",
            "1e3",
            "1.2.3m",
            "99999999999999tbit",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_rate("8mbps").unwrap_err().contains("bits per second"));
    }

    #[test]
    fn add_host_takes_colon_or_equals_and_sends_colon() {
        assert_eq!(
            parse_add_host("db.local:192.0.2.9").unwrap(),
            "db.local:192.0.2.9"
        );
        assert_eq!(parse_add_host("db=192.0.2.9").unwrap(), "db:192.0.2.9");
        assert_eq!(parse_add_host("v6=2001:db8::1").unwrap(), "v6:2001:db8::1");
        assert_eq!(parse_add_host("v6:2001:db8::1").unwrap(), "v6:2001:db8::1");
        assert_eq!(parse_add_host("v6=[::1]").unwrap(), "v6:::1");
        for bad in [
            "db",
            "db:",
            ":1.2.3.4",
            "db:nope",
            "db=host-gateway",
            "a b:1.2.3.4",
        ] {
            assert!(parse_add_host(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert_eq!(parse_ipv4("10.88.0.9").unwrap(), "10.88.0.9");
        assert!(parse_ipv4("::1").is_err());
        assert!(parse_ipv4("10.88.0").is_err());
        assert_eq!(parse_ip("::1").unwrap(), "::1");
        assert_eq!(parse_ip("192.0.2.53").unwrap(), "192.0.2.53");
        assert!(parse_ip("dns.example").is_err());
    }

    #[test]
    fn one_rate_for_both_directions_each_overridable() {
        let mut req = CreateContainer::default();
        let opts = NetworkOpts {
            network_rate: Some(8_000_000),
            network_egress_rate: Some(1_000_000),
            ..Default::default()
        };
        apply(&opts, &mut req);
        assert_eq!(req.resources.network_ingress_bps, Some(8_000_000));
        assert_eq!(req.resources.network_egress_bps, Some(1_000_000));
        let mut req = CreateContainer::default();
        apply(&NetworkOpts::default(), &mut req);
        assert_eq!(req.resources.network_ingress_bps, None);
        assert_eq!(req.resources.network_egress_bps, None);
    }
}
