//! Network counters of a running container: `/proc/<pid>/net/dev` shows the interfaces
//! of the network namespace `pid` is in.

use boxd_types::NetworkStats;

/// The counters of `pid`'s namespace, summed over its interfaces but `lo`; zeros when
/// the process is gone.
pub fn read(pid: u32) -> NetworkStats {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .map(|text| parse(&text))
        .unwrap_or_default()
}

/// Parses `/proc/net/dev` (two header lines, then `name: rx_bytes rx_packets ...`,
/// with tx_bytes and tx_packets the 9th and 10th numbers).
fn parse(text: &str) -> NetworkStats {
    let mut s = NetworkStats::default();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let n: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if n.len() >= 10 {
            s.rx_bytes += n[0];
            s.rx_packets += n[1];
            s.tx_bytes += n[8];
            s.tx_packets += n[9];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_without_lo() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    5000      10    0    0    0     0          0         0     3000       7    0    0    0     0       0          0
";
        assert_eq!(
            parse(text),
            NetworkStats {
                rx_bytes: 5000,
                rx_packets: 10,
                tx_bytes: 3000,
                tx_packets: 7
            }
        );
    }
}
