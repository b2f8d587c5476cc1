//! The embedded DNS of user-defined networks: one server per network on its gateway
//! address, port 53 (UDP and TCP), as Docker's and netavark's (aardvark-dns).
//!
//! It answers A queries for the names of the running containers attached to that
//! network (the container's name, its hostname, its `network_aliases` and its short
//! id), and AAAA queries with their IPv6 addresses on networks that have IPv6, so
//! containers reach each other by name and only within the networks they share. Every other question is forwarded, as received, to
//! the host's resolvers (read from `/etc/resolv.conf` when the server starts: the
//! server runs in the host's namespace, so a loopback resolver such as
//! systemd-resolved's works too), and the first answer is relayed back.
//!
//! Messages are parsed and built with `hickory-proto`. Names are looked up in the store
//! per question: the answer is always the current state, with no cache to keep right.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::store::Store;

/// TTL of the answers: short, since addresses change with each run.
const TTL: u32 = 5;
/// How long a forwarded question waits for an upstream answer.
const UPSTREAM_DEADLINE: Duration = Duration::from_secs(4);

/// One network's server: its address and its UDP and TCP tasks.
type Server = (IpAddr, Vec<JoinHandle<()>>);

/// The running servers, by network name.
#[derive(Default)]
pub struct DnsServers {
    running: Mutex<HashMap<String, Server>>,
}

impl DnsServers {
    /// Makes sure network `name` has its server on `gateway` (its bridge must have the
    /// address: call after an attachment succeeded). A failure to bind is logged; the
    /// containers then resolve only what the upstream resolvers know.
    pub async fn ensure(&self, store: &Store, name: &str, gateway: IpAddr) {
        {
            let running = self.running.lock().expect("dns servers poisoned");
            if let Some((addr, tasks)) = running.get(name) {
                if *addr == gateway && tasks.iter().all(|t| !t.is_finished()) {
                    return;
                }
            }
        }
        let addr = SocketAddr::new(gateway, 53);
        let udp = match UdpSocket::bind(addr).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(network = name, %addr, error = %e, "cannot serve DNS for the network");
                return;
            }
        };
        let tcp = TcpListener::bind(addr).await;
        let resolver = Resolver {
            store: store.clone(),
            network: name.to_owned(),
            upstream: upstream_servers(),
        };
        let resolver = Arc::new(resolver);
        let mut tasks = vec![tokio::spawn(serve_udp(udp, resolver.clone()))];
        match tcp {
            Ok(l) => tasks.push(tokio::spawn(serve_tcp(l, resolver))),
            Err(e) => {
                tracing::warn!(network = name, %addr, error = %e, "cannot serve DNS over TCP")
            }
        }
        tracing::info!(network = name, %addr, "serving DNS");
        let old = self
            .running
            .lock()
            .expect("dns servers poisoned")
            .insert(name.to_owned(), (gateway, tasks));
        if let Some((_, old)) = old {
            old.iter().for_each(JoinHandle::abort);
        }
    }

    /// Stops the server of network `name` (it is being removed).
    pub fn stop(&self, name: &str) {
        if let Some((_, tasks)) = self
            .running
            .lock()
            .expect("dns servers poisoned")
            .remove(name)
        {
            tasks.iter().for_each(JoinHandle::abort);
        }
    }
}

/// The host's resolvers, from `/etc/resolv.conf` (port 53).
fn upstream_servers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| super::files::nameservers(&text))
        .unwrap_or_default()
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The name link `alias` of a container stands for, lowercased (`None`: not a link).
fn linked(links: &[super::Link], alias: &str) -> Option<String> {
    links
        .iter()
        .find(|l| l.alias.eq_ignore_ascii_case(alias))
        .map(|l| l.name.to_ascii_lowercase())
}

struct Resolver {
    store: Store,
    network: String,
    upstream: Vec<SocketAddr>,
}

impl Resolver {
    /// The addresses of `name` for the container at `peer`: running containers whose
    /// name, hostname, alias or short id it is, on this network or on another network
    /// the asking container is also connected to (as Docker's embedded DNS). A link of
    /// the asking container turns its alias into the linked name first.
    async fn lookup(&self, name: &str, peer: IpAddr) -> Vec<IpAddr> {
        let mut name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Vec::new();
        }
        let Ok(attachments) = self.store.attachments(None).await else {
            return Vec::new();
        };
        let parse = |s: Option<String>| s.and_then(|s| s.split('/').next()?.parse::<IpAddr>().ok());
        let address = |a: &super::Attachment| parse(a.endpoint().address);
        let mut networks: Vec<&str> = vec![self.network.as_str()];
        if let Some(asking) = attachments.iter().find(|a| {
            a.network == self.network
                && (address(a) == Some(peer) || parse(a.endpoint().address6) == Some(peer))
        }) {
            networks.extend(
                attachments
                    .iter()
                    .filter(|a| a.container_id == asking.container_id)
                    .map(|a| a.network.as_str()),
            );
            if let Ok(Some(rec)) = self.store.container(&asking.container_id).await {
                if let Some(target) = linked(&rec.container.config.network.links, &name) {
                    name = target;
                }
            }
        }
        let mut out = Vec::new();
        for a in attachments
            .iter()
            .filter(|a| networks.contains(&a.network.as_str()))
        {
            let addrs: Vec<IpAddr> = [address(a), parse(a.endpoint().address6)]
                .into_iter()
                .flatten()
                .collect();
            if addrs.is_empty() {
                continue;
            }
            let Ok(Some(rec)) = self.store.container(&a.container_id).await else {
                continue;
            };
            let c = rec.container;
            let matches = c.name.eq_ignore_ascii_case(&name)
                || c.config.hostname.eq_ignore_ascii_case(&name)
                || c.id.get(..12) == Some(name.as_str())
                || c.config
                    .network
                    .aliases_on(&a.network)
                    .iter()
                    .any(|al| al.eq_ignore_ascii_case(&name));
            if matches {
                for addr in addrs {
                    if !out.contains(&addr) {
                        out.push(addr);
                    }
                }
            }
        }
        out
    }

    /// The answer to one message (`None`: nothing to send).
    async fn answer(&self, query: &[u8], peer: IpAddr) -> Option<Vec<u8>> {
        let msg = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) => return None,
        };
        if msg.message_type() != MessageType::Query || msg.op_code() != OpCode::Query {
            return reply(&msg, ResponseCode::NotImp, Vec::new());
        }
        let Some(q) = msg.queries().first() else {
            return reply(&msg, ResponseCode::FormErr, Vec::new());
        };
        let name = q.name().to_ascii();
        let name = name.trim_end_matches('.');
        let found = self.lookup(name, peer).await;
        if !found.is_empty() {
            let want = q.query_type();
            let answers = found
                .into_iter()
                .filter_map(|ip| match (ip, want) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(v4))),
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                        Some(RData::AAAA(AAAA(v6)))
                    }
                    // The name is ours; other record types have no data.
                    _ => None,
                })
                .map(|rdata| Record::from_rdata(q.name().clone(), TTL, rdata))
                .collect();
            return reply(&msg, ResponseCode::NoError, answers);
        }
        if !name.contains('.') {
            // A single label that is no container here: no resolver outside can know
            // it either.
            return reply(&msg, ResponseCode::NXDomain, Vec::new());
        }
        match self.forward(query).await {
            Some(answer) => Some(answer),
            None => reply(&msg, ResponseCode::ServFail, Vec::new()),
        }
    }

    /// Relays `query` to the upstream resolvers in turn; the first answer wins.
    async fn forward(&self, query: &[u8]) -> Option<Vec<u8>> {
        for server in &self.upstream {
            let bind: SocketAddr = if server.is_ipv4() {
                "0.0.0.0:0".parse().expect("valid")
            } else {
                "[::]:0".parse().expect("valid")
            };
            let Ok(sock) = UdpSocket::bind(bind).await else {
                continue;
            };
            if sock.send_to(query, server).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok(n)) = tokio::time::timeout(UPSTREAM_DEADLINE, sock.recv(&mut buf)).await {
                buf.truncate(n);
                return Some(buf);
            }
        }
        None
    }
}

fn reply(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Option<Vec<u8>> {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(code == ResponseCode::NoError || code == ResponseCode::NXDomain)
        .set_response_code(code);
    m.add_queries(query.queries().to_vec());
    m.add_answers(answers);
    m.to_vec().ok()
}

async fn serve_udp(sock: Arc<UdpSocket>, resolver: Arc<Resolver>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (sock, resolver) = (sock.clone(), resolver.clone());
        // Each question on its own task: a slow upstream does not hold up the rest.
        tokio::spawn(async move {
            if let Some(answer) = resolver.answer(&query, peer.ip()).await {
                let _ = sock.send_to(&answer, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) {
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else {
            continue;
        };
        let resolver = resolver.clone();
        tokio::spawn(async move {
            // RFC 1035 4.2.2: each message is preceded by its length (two bytes).
            let serve = async {
                loop {
                    let len = stream.read_u16().await.ok()? as usize;
                    let mut query = vec![0u8; len];
                    stream.read_exact(&mut query).await.ok()?;
                    let answer = resolver.answer(&query, peer.ip()).await?;
                    let len = u16::try_from(answer.len()).ok()?;
                    stream.write_u16(len).await.ok()?;
                    stream.write_all(&answer).await.ok()?;
                }
                #[allow(unreachable_code)]
                Some(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), serve).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_turns_its_alias_into_the_linked_name() {
        let links = vec![super::super::Link {
            name: "Proj_Client_1".into(),
            alias: "client".into(),
        }];
        assert_eq!(linked(&links, "CLIENT").as_deref(), Some("proj_client_1"));
        assert_eq!(linked(&links, "proj_client_1"), None);
        assert_eq!(linked(&[], "client"), None);
    }
}
