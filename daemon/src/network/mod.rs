//! Container networking: networks as objects, each a CNI configuration list owned by
//! boxd, attachments of container runs to them through the CNI plugins (`cni`),
//! pinned network namespaces (`netns`) and published ports (`ports`).
//!
//! A container's network mode is one of: its own namespace with only `lo` (`none`);
//! the host's namespace (`host`); another container's namespace (`container:<id>`);
//! or a boxd network (`bridge`, the default network, or a user-defined one by name).
//! For a network, each run of the container gets a namespace pinned at
//! `<state_dir>/netns/<id>`, attached by a CNI ADD before the shim joins it, and
//! detached (DEL) when the run ends.
//!
//! Crash safety: an attachment's row (the exact conflist, runtime config and, once the
//! ADD answered, its result) is written before the ADD, so every address, veth and
//! port rule the plugins made is on record; the reconcile at start-up DELs the
//! attachments of containers that are no longer running and unpins their namespaces,
//! and CHECKs those of running ones. A running container is never detached by a
//! daemon restart.

pub mod cni;
pub mod dns;
pub mod files;
pub mod netns;
pub mod ports;
pub mod stats;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::store::{Store, StoreError};
pub use files::DnsConfig;
pub use ports::{PortMapping, PortRequest, Protocol};

/// The default network's name (Docker's is `bridge`, which names it here too).
pub const DEFAULT_NETWORK: &str = "boxd";
/// The default network's bridge.
pub const DEFAULT_BRIDGE: &str = "boxd0";
/// The default network's subnet: clear of Docker's 172.17.0.0/16 and Podman's
/// 10.88.0.0/16.
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";
/// Where user-defined networks without a subnet get a /24 from.
pub const DEFAULT_POOL: &str = "10.78.0.0/16";
/// Where CNI plugins are looked for (Debian's `containernetworking-plugins`, then the
/// upstream default).
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
/// The interface a container sees.
pub const IFNAME: &str = "eth0";

/// Said at create and in inspect of a container in network mode `host`.
pub const HOST_MODE_WARNING: &str =
    "network mode host: the container shares the host's network namespace and is not isolated from it";

/// Settings of the networking (config file keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Mode of a container created without one: `bridge` or `none`.
    pub default_mode: String,
    /// Bridge of the default network.
    pub default_bridge: String,
    /// Subnet of the default network.
    pub default_subnet: Ipv4Net,
    /// Pool of user network subnets.
    pub pool: Ipv4Net,
    /// Bridges of user networks are named this plus a number.
    pub bridge_prefix: String,
    /// Host address of a published port when none is given.
    pub port_host_ip: IpAddr,
    /// CNI plugin dirs, searched in order.
    pub plugin_dirs: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_mode: "bridge".to_owned(),
            default_bridge: DEFAULT_BRIDGE.to_owned(),
            default_subnet: DEFAULT_SUBNET.parse().expect("valid default subnet"),
            pool: DEFAULT_POOL.parse().expect("valid default pool"),
            bridge_prefix: "boxd".to_owned(),
            port_host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Id (64 hex digits).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Its Linux bridge.
    pub bridge: String,
    /// IPv4 subnet (CIDR).
    pub subnet: String,
    /// The bridge's address, the containers' gateway.
    pub gateway: String,
    /// IPv6 subnet, when the network has one.
    pub subnet6: Option<String>,
    /// IPv6 gateway.
    pub gateway6: Option<String>,
    /// No NAT and no default route: containers reach only each other.
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// An operator's own CNI configuration list (any plugins: Calico, Cilium, macvlan,
    /// ...), used as given; `None`: boxd's bridge list.
    pub custom: Option<Value>,
}

/// What a create asks for a new network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Unique name.
    pub name: String,
    /// IPv4 subnet; a free /24 of the pool when absent.
    pub subnet: Option<String>,
    /// Gateway; the subnet's first address when absent.
    pub gateway: Option<String>,
    /// IPv6 subnet: containers get an IPv6 address too.
    pub subnet6: Option<String>,
    /// IPv6 gateway; the subnet's first address when absent.
    pub gateway6: Option<String>,
    /// No route out.
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The operator's own CNI configuration list (then no subnet or gateway is given).
    pub conflist: Option<Value>,
}

/// A container's network mode, as stored in its config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum NetworkMode {
    /// Its own network namespace with only `lo` (also what a container made before
    /// networks existed has).
    #[default]
    None,
    /// The host's network namespace: not isolated.
    Host,
    /// Attached to the boxd network `name`.
    Network {
        /// The network's name.
        name: String,
    },
    /// The network namespace of the container `id` (while it runs).
    Container {
        /// The container's full id.
        id: String,
    },
}

impl NetworkMode {
    /// The mode as users write it (`none`, `host`, `container:<id>`, a network name).
    pub fn to_user_string(&self) -> String {
        match self {
            NetworkMode::None => "none".to_owned(),
            NetworkMode::Host => "host".to_owned(),
            NetworkMode::Network { name } => name.clone(),
            NetworkMode::Container { id } => format!("container:{id}"),
        }
    }
}

/// A container's networking, as stored in its config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// The mode.
    #[serde(flatten)]
    pub mode: NetworkMode,
    /// Published ports, host ports resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// More names the container answers to on its user network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A fixed address on its network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// resolv.conf and hosts settings.
    #[serde(default)]
    pub dns: DnsConfig,
    /// More networks connected (`POST /v1/networks/{name}/connect`), each a further
    /// interface (`eth1`, ...) from the next start on, and at once when running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected: Vec<Connection>,
    /// Names only this container resolves, each as another container's name, on every
    /// user network it joins (Docker's links on a user-defined network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// A link: `alias`, asked by the linking container, is answered as `name` would be.
///
/// On a user-defined network dockerd keeps only this of the legacy links: a name
/// scoped to the linking container, resolved by the embedded DNS when asked (so it
/// follows the target across restarts), with none of the default network's
/// environment variables or `/etc/hosts` entries (moby `daemon/container_operations.go`,
/// `buildCreateEndpointOptions`: `CreateOptionAlias(name, alias)`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The linked container's name (or id, or a name it answers to).
    pub name: String,
    /// The name the linking container uses for it.
    pub alias: String,
}

/// A further network of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The network's name.
    pub name: String,
    /// More DNS names of the container on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl ContainerNetwork {
    /// The networks the container is attached to when it runs: its mode's, then the
    /// connected ones.
    pub fn networks(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let NetworkMode::Network { name } = &self.mode {
            out.push(name.as_str());
        }
        out.extend(self.connected.iter().map(|c| c.name.as_str()));
        out
    }

    /// The container's DNS aliases on network `name`.
    pub fn aliases_on(&self, name: &str) -> &[String] {
        match &self.mode {
            NetworkMode::Network { name: own } if own == name => &self.aliases,
            _ => self
                .connected
                .iter()
                .find(|c| c.name == name)
                .map_or(&[], |c| c.aliases.as_slice()),
        }
    }
}

/// The network a create asks for, as a face parsed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModeRequest {
    /// The daemon's default (`default_mode`).
    #[default]
    Default,
    /// `none`.
    None,
    /// `host`.
    Host,
    /// `bridge`: the default network.
    Bridge,
    /// A network by name.
    Network(String),
    /// `container:<id or name>`.
    Container(String),
}

impl ModeRequest {
    /// Parses Docker's `--network` words.
    pub fn parse(s: &str) -> Result<ModeRequest, String> {
        Ok(match s {
            "" | "default" => ModeRequest::Default,
            "none" => ModeRequest::None,
            "host" => ModeRequest::Host,
            "bridge" => ModeRequest::Bridge,
            other => match other.strip_prefix("container:") {
                Some("") => return Err("container: needs a container id or name".to_owned()),
                Some(c) => ModeRequest::Container(c.to_owned()),
                None => {
                    crate::runtime::names::validate_container_name(other)
                        .map_err(|r| format!("{other:?} is not a network name: {r}"))?;
                    ModeRequest::Network(other.to_owned())
                }
            },
        })
    }
}

/// The networking a create asks for, as a face parsed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkRequest {
    /// The mode.
    pub mode: ModeRequest,
    /// Published ports.
    pub ports: Vec<PortRequest>,
    /// More DNS names on a user network.
    pub aliases: Vec<String>,
    /// resolv.conf and hosts settings.
    pub dns: DnsConfig,
    /// A fixed address on the network.
    pub ip: Option<Ipv4Addr>,
    /// Also publish every port the image exposes (Docker's `-P`).
    pub publish_all: bool,
    /// Links, on a user network.
    pub links: Vec<Link>,
}

/// What other containers hold, for a create's checks.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    /// Published ports, with the container's id.
    pub ports: Vec<(String, PortMapping)>,
    /// Fixed addresses: container id, network, address.
    pub addresses: Vec<(String, String, Ipv4Addr)>,
}

/// One container run's attachment to a network (table `attachments`).
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The container.
    pub container_id: String,
    /// The network's name.
    pub network: String,
    /// The interface inside.
    pub ifname: String,
    /// The pinned namespace.
    pub netns: PathBuf,
    /// The conflist the plugins were given.
    pub conflist: Value,
    /// The runtime config they were given.
    pub runtime_config: Value,
    /// The ADD result, once it answered.
    pub result: Option<Value>,
}

/// What an attachment gave the container, read off its CNI result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    /// The interface inside.
    pub ifname: String,
    /// Address with prefix length (`10.77.0.2/16`).
    pub address: Option<String>,
    /// Gateway.
    pub gateway: Option<String>,
    /// IPv6 address with prefix length, on a network with IPv6.
    pub address6: Option<String>,
    /// MAC address of the interface inside.
    pub mac: Option<String>,
}

impl Attachment {
    /// How the plugins see this attachment (`CNI_CONTAINERID`, `CNI_NETNS`,
    /// `CNI_IFNAME`).
    pub fn target(&self) -> cni::Target<'_> {
        cni::Target {
            container_id: &self.container_id,
            netns: &self.netns,
            ifname: &self.ifname,
        }
    }

    /// Address, gateway and MAC from the cached result.
    pub fn endpoint(&self) -> Endpoint {
        let mut e = Endpoint {
            network: self.network.clone(),
            ifname: self.ifname.clone(),
            ..Endpoint::default()
        };
        let Some(r) = &self.result else { return e };
        let interfaces = r.get("interfaces").and_then(Value::as_array);
        let ips = r.get("ips").and_then(Value::as_array);
        e.address6 = ips
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.get("address").and_then(Value::as_str))
            .find(|a| a.contains(':'))
            .map(str::to_owned);
        if let Some(ip) = ips.and_then(|ips| {
            ips.iter().find(|ip| {
                ip.get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| !a.contains(':'))
            })
        }) {
            e.address = ip.get("address").and_then(Value::as_str).map(str::to_owned);
            e.gateway = ip.get("gateway").and_then(Value::as_str).map(str::to_owned);
            e.mac = ip
                .get("interface")
                .and_then(Value::as_u64)
                .and_then(|i| interfaces?.get(i as usize))
                .and_then(|i| i.get("mac"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        e
    }
}

/// How the shim is to set up a run's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netns {
    /// A new one with only `lo`.
    Own,
    /// The host's.
    Host,
    /// Join the one at this path.
    Join(PathBuf),
}

/// Errors of networking.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Bad input (400).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No such network (404).
    #[error("no such network: {0}")]
    NotFound(String),
    /// The name is taken (409).
    #[error("a network named {0:?} already exists")]
    NameInUse(String),
    /// Containers use the network (409).
    #[error("network {network} is in use by container(s) {containers}; remove them or their network setting first")]
    InUse {
        /// The network.
        network: String,
        /// Who uses it.
        containers: String,
    },
    /// The default network cannot be removed (403).
    #[error("network {0} is the default network and cannot be removed")]
    Predefined(String),
    /// The subnet overlaps another network's (400).
    #[error("subnet {subnet} overlaps network {other}'s {other_subnet}")]
    Overlap {
        /// Asked for.
        subnet: String,
        /// The other network.
        other: String,
        /// Its subnet.
        other_subnet: String,
    },
    /// No free subnet in the pool (409).
    #[error("no free /24 left in the network pool {0}; give a subnet")]
    PoolExhausted(String),
    /// A host port is taken (409).
    #[error("{0}")]
    PortInUse(String),
    /// A fixed address is taken (409).
    #[error("{0}")]
    AddressInUse(String),
    /// Already attached to the network (409).
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// Not attached to the network (409).
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// The container.
        container: String,
        /// The network.
        network: String,
    },
    /// The container whose namespace is to be shared does not run (409).
    #[error("container {0} is not running: its network namespace cannot be joined")]
    PeerNotRunning(String),
    /// A CNI plugin failed.
    #[error("network setup failed")]
    Cni(#[from] cni::CniError),
    /// A namespace or link operation failed.
    #[error("failed to {op}")]
    Io {
        /// What.
        op: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NetworkError {
    fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetworkError {
        let op = op.into();
        move |source| NetworkError::Io { op, source }
    }
}

/// Networks and attachments.
pub struct NetworkManager {
    store: Store,
    cni: cni::Cni,
    settings: Settings,
    /// Where run namespaces are pinned.
    netns_dir: PathBuf,
    /// host-local's address leases (one dir per network).
    ipam_dir: PathBuf,
    /// Serialises the checks of ports and subnets with the inserts they guard.
    lock: tokio::sync::Mutex<()>,
    /// The DNS servers of user networks.
    dns: dns::DnsServers,
}

impl NetworkManager {
    /// Networking under `root_dir` (leases) and `state_dir` (namespaces); makes or
    /// updates the default network from `settings`.
    pub async fn new(
        store: Store,
        settings: Settings,
        root_dir: &Path,
        state_dir: &Path,
    ) -> Result<NetworkManager, NetworkError> {
        let m = NetworkManager {
            store,
            cni: cni::Cni::new(settings.plugin_dirs.clone()),
            netns_dir: state_dir.join("netns"),
            ipam_dir: root_dir.join("cni").join("ipam"),
            settings,
            lock: tokio::sync::Mutex::new(()),
            dns: dns::DnsServers::default(),
        };
        m.ensure_default().await?;
        Ok(m)
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn ensure_default(&self) -> Result<(), NetworkError> {
        let subnet = self.settings.default_subnet.trunc();
        let gateway = subnet.hosts().next().ok_or_else(|| NetworkError::Invalid {
            field: "default_subnet",
            reason: format!("{subnet} has no host addresses"),
        })?;
        let want = Network {
            id: crate::runtime::names::generate_container_id(),
            name: DEFAULT_NETWORK.to_owned(),
            bridge: self.settings.default_bridge.clone(),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            subnet6: None,
            gateway6: None,
            internal: false,
            labels: BTreeMap::new(),
            created_at: Utc::now(),
            custom: None,
        };
        match self.store.network(DEFAULT_NETWORK).await? {
            None => self.store.insert_network(&want).await?,
            Some(have)
                if have.bridge != want.bridge
                    || have.subnet != want.subnet
                    || have.gateway != want.gateway =>
            {
                // The config changed: running containers keep their addresses until
                // they stop; new runs get the new subnet.
                self.store
                    .update_network(&Network {
                        id: have.id.clone(),
                        ..want
                    })
                    .await?
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Takes the lock that serialises port and subnet checks with their inserts.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// Every network.
    pub async fn list(&self) -> Result<Vec<Network>, NetworkError> {
        Ok(self.store.networks().await?)
    }

    /// One network by name or id (prefix); `bridge` names the default one.
    pub async fn get(&self, name: &str) -> Result<Network, NetworkError> {
        let name = if name == "bridge" {
            DEFAULT_NETWORK
        } else {
            name
        };
        self.store
            .network(name)
            .await?
            .ok_or_else(|| NetworkError::NotFound(name.to_owned()))
    }

    /// Creates a user-defined network.
    pub async fn create(&self, spec: NetworkSpec) -> Result<Network, NetworkError> {
        crate::runtime::names::validate_container_name(&spec.name).map_err(|reason| {
            NetworkError::Invalid {
                field: "name",
                reason,
            }
        })?;
        if matches!(
            spec.name.as_str(),
            "none" | "host" | "bridge" | "default" | DEFAULT_NETWORK
        ) || spec.name.starts_with("container:")
        {
            return Err(NetworkError::Invalid {
                field: "name",
                reason: format!("{:?} is reserved", spec.name),
            });
        }
        let _guard = self.lock().await;
        if let Some(list) = &spec.conflist {
            return self.create_custom(&spec, list.clone()).await;
        }
        let existing = self.store.networks().await?;
        let v4_of = |n: &Network| Some(n.subnet.clone());
        let subnet = match &spec.subnet {
            Some(s) => match checked_subnet("subnet", s, false, &existing, v4_of)? {
                IpNet::V4(n) => n,
                IpNet::V6(_) => unreachable!("checked to be IPv4"),
            },
            None => self
                .settings
                .pool
                .subnets(24.max(self.settings.pool.prefix_len()))
                .map_err(|_| NetworkError::PoolExhausted(self.settings.pool.to_string()))?
                .find(|n| !existing.iter().any(|o| overlaps(&IpNet::V4(*n), &o.subnet)))
                .ok_or_else(|| NetworkError::PoolExhausted(self.settings.pool.to_string()))?,
        };
        let gateway = checked_gateway("gateway", spec.gateway.as_deref(), &IpNet::V4(subnet))?;
        let v6 = match &spec.subnet6 {
            None => None,
            Some(s) => {
                let net = checked_subnet("subnet6", s, true, &existing, |n| n.subnet6.clone())?;
                let gw = checked_gateway("gateway6", spec.gateway6.as_deref(), &net)?;
                Some((net, gw))
            }
        };
        if spec.gateway6.is_some() && v6.is_none() {
            return Err(NetworkError::Invalid {
                field: "gateway6",
                reason: "give subnet6 with it".to_owned(),
            });
        }
        let used: HashSet<&str> = existing.iter().map(|n| n.bridge.as_str()).collect();
        let bridge = (1..)
            .map(|i| format!("{}{i}", self.settings.bridge_prefix))
            .find(|b| !used.contains(b.as_str()))
            .expect("a free bridge name");
        if bridge.len() > 15 {
            return Err(NetworkError::Invalid {
                field: "bridge_prefix",
                reason: format!("bridge name {bridge} is longer than 15 characters"),
            });
        }
        let n = Network {
            id: crate::runtime::names::generate_container_id(),
            name: spec.name.clone(),
            bridge,
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            subnet6: v6.map(|(n, _)| n.to_string()),
            gateway6: v6.map(|(_, g)| g.to_string()),
            internal: spec.internal,
            labels: spec.labels,
            created_at: Utc::now(),
            custom: None,
        };
        self.store.insert_network(&n).await.map_err(|e| match e {
            StoreError::NameInUse(name) => NetworkError::NameInUse(name),
            other => other.into(),
        })?;
        Ok(n)
    }

    /// A network of the operator's own configuration list: checked to be a list whose
    /// plugins are installed, named after the network, and stored as given.
    async fn create_custom(
        &self,
        spec: &NetworkSpec,
        mut list: Value,
    ) -> Result<Network, NetworkError> {
        if spec.subnet.is_some() || spec.gateway.is_some() || spec.subnet6.is_some() {
            return Err(NetworkError::Invalid {
                field: "conflist",
                reason: "give either a conflist or subnet and gateway: the list's own IPAM assigns addresses".to_owned(),
            });
        }
        let Some(obj) = list.as_object_mut() else {
            return Err(NetworkError::Invalid {
                field: "conflist",
                reason: "a CNI configuration list is a JSON object".to_owned(),
            });
        };
        // The plugins key their state (leases, rules) by the list's name.
        obj.insert("name".to_owned(), json!(spec.name));
        obj.entry("cniVersion").or_insert(json!(cni::CNI_VERSION));
        self.cni
            .check_installed(&list)
            .map_err(|e| NetworkError::Invalid {
                field: "conflist",
                reason: e.to_string(),
            })?;
        let id = crate::runtime::names::generate_container_id();
        let n = Network {
            // Not a link boxd owns: the column only has to be unique.
            bridge: format!("cni:{}", &id[..12]),
            id,
            name: spec.name.clone(),
            subnet: String::new(),
            gateway: String::new(),
            subnet6: None,
            gateway6: None,
            internal: spec.internal,
            labels: spec.labels.clone(),
            created_at: Utc::now(),
            custom: Some(list),
        };
        self.store.insert_network(&n).await.map_err(|e| match e {
            StoreError::NameInUse(name) => NetworkError::NameInUse(name),
            other => other.into(),
        })?;
        Ok(n)
    }

    /// Removes a user-defined network nobody uses: its bridge, the firewall plugin's
    /// isolation rules for it, its leases, then its row.
    pub async fn remove(&self, name: &str, users: Vec<String>) -> Result<(), NetworkError> {
        let n = self.get(name).await?;
        if n.name == DEFAULT_NETWORK {
            return Err(NetworkError::Predefined(n.name));
        }
        let mut users = users;
        for a in self.store.attachments(None).await? {
            if a.network == n.name && !users.contains(&a.container_id) {
                users.push(a.container_id);
            }
        }
        if !users.is_empty() {
            return Err(NetworkError::InUse {
                network: n.name,
                containers: users
                    .iter()
                    .map(|u| u.get(..12).unwrap_or(u))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        self.dns.stop(&n.name);
        if n.custom.is_none() {
            // An operator's list owns its links and rules.
            links::delete_bridge(&n.bridge).await?;
            links::delete_isolation_rules(&n.bridge).await;
        }
        let leases = self.ipam_dir.join(&n.name);
        match tokio::fs::remove_dir_all(&leases).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetworkError::io(format!("remove {}", leases.display()))(e)),
        }
        self.store.delete_network(&n.id).await?;
        Ok(())
    }

    /// The configuration list boxd gives the plugins for `n`: a bridge with host-local
    /// addresses (masqueraded and routed unless internal), published ports, and the
    /// firewall plugin, which also keeps other bridges out (`ingressPolicy`).
    pub fn conflist(&self, n: &Network) -> Value {
        if let Some(custom) = &n.custom {
            return custom.clone();
        }
        let mut ranges = vec![json!([{ "subnet": n.subnet, "gateway": n.gateway }])];
        let mut routes = vec![json!({ "dst": "0.0.0.0/0" })];
        if let (Some(s6), Some(g6)) = (&n.subnet6, &n.gateway6) {
            ranges.push(json!([{ "subnet": s6, "gateway": g6 }]));
            routes.push(json!({ "dst": "::/0" }));
        }
        let mut ipam = json!({
            "type": "host-local",
            "ranges": ranges,
            "dataDir": self.ipam_dir,
        });
        if !n.internal {
            ipam["routes"] = Value::Array(routes);
        }
        json!({
            "cniVersion": cni::CNI_VERSION,
            "name": n.name,
            "plugins": [
                {
                    "type": "bridge",
                    "capabilities": { "ips": true },
                    "bridge": n.bridge,
                    "isGateway": true,
                    "ipMasq": !n.internal,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
                { "type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge" },
            ],
        })
    }

    /// Resolves a create's network request (the `container:` peer already resolved to
    /// its id by the engine) and its ports, checked against `taken`. `exposed` are the
    /// image's exposed ports (`80/tcp`), published when the request asks for all.
    pub async fn plan(
        &self,
        req: &NetworkRequest,
        peer_id: Option<String>,
        exposed: &[String],
        taken: &Taken,
    ) -> Result<(ContainerNetwork, Vec<String>), NetworkError> {
        let NetworkRequest {
            mode,
            ports,
            aliases,
            dns,
            ip,
            publish_all,
            links,
        } = req;
        let ip = *ip;
        check_aliases("network_aliases", aliases)?;
        for l in links {
            check_aliases("links", &[l.name.clone(), l.alias.clone()])?;
        }
        let mut warnings = Vec::new();
        let mode = match mode {
            ModeRequest::Default if self.settings.default_mode == "none" => NetworkMode::None,
            ModeRequest::Default | ModeRequest::Bridge => NetworkMode::Network {
                name: DEFAULT_NETWORK.to_owned(),
            },
            ModeRequest::None => NetworkMode::None,
            ModeRequest::Host => {
                warnings.push(HOST_MODE_WARNING.to_owned());
                NetworkMode::Host
            }
            ModeRequest::Network(name) => NetworkMode::Network {
                name: self.get(name).await?.name,
            },
            ModeRequest::Container(_) => NetworkMode::Container {
                id: peer_id.expect("the engine resolves the peer"),
            },
        };
        if *publish_all && matches!(mode, NetworkMode::None | NetworkMode::Container { .. }) {
            // Refused whatever the image exposes, so that the same flags do not work
            // with one image and fail with another (Docker refuses it for container:).
            return Err(NetworkError::Invalid {
                field: "publish_all",
                reason: format!(
                    "ports cannot be published in network mode {}",
                    mode.to_user_string()
                ),
            });
        }
        let mut ports = ports.clone();
        if *publish_all {
            let added = ports::exposed_requests(&ports, exposed, &mut warnings);
            ports.extend(added);
        }
        let ports = match &mode {
            NetworkMode::Network { .. } => {
                ports::plan(&ports, self.settings.port_host_ip, &taken.ports)?
            }
            _ if ports.is_empty() => Vec::new(),
            NetworkMode::Host => {
                warnings.push(
                    "published ports are ignored in network mode host: the app binds the host's ports itself"
                        .to_owned(),
                );
                Vec::new()
            }
            other => {
                return Err(NetworkError::Invalid {
                    field: "ports",
                    reason: format!(
                        "ports cannot be published in network mode {}",
                        other.to_user_string()
                    ),
                })
            }
        };
        if let Some(ip) = ip {
            let NetworkMode::Network { name } = &mode else {
                return Err(NetworkError::Invalid {
                    field: "ip",
                    reason: "a fixed address needs network mode bridge or a user network"
                        .to_owned(),
                });
            };
            let n = self.get(name).await?;
            let subnet: Ipv4Net = n.subnet.parse().map_err(|_| NetworkError::Invalid {
                field: "ip",
                reason: format!("network {name} has no IPv4 subnet"),
            })?;
            if !subnet.contains(&ip)
                || ip == subnet.network()
                || ip == subnet.broadcast()
                || n.gateway == ip.to_string()
            {
                return Err(NetworkError::Invalid {
                    field: "ip",
                    reason: format!(
                        "{ip} is not a free host address of network {name} ({}, gateway {})",
                        n.subnet, n.gateway
                    ),
                });
            }
            if let Some((who, _, _)) = taken
                .addresses
                .iter()
                .find(|(_, net, t)| net == name && *t == ip)
            {
                return Err(NetworkError::AddressInUse(format!(
                    "address {ip} on network {name} is already given to container {}",
                    who.get(..12).unwrap_or(who)
                )));
            }
        }
        if !aliases.is_empty()
            && !matches!(&mode, NetworkMode::Network { name } if name != DEFAULT_NETWORK)
        {
            return Err(NetworkError::Invalid {
                field: "network_aliases",
                reason: "aliases are names on a user-defined network's DNS; give --network <name>"
                    .to_owned(),
            });
        }
        if !links.is_empty()
            && !matches!(&mode, NetworkMode::Network { name } if name != DEFAULT_NETWORK)
        {
            // The default network's links are environment variables and hosts entries
            // frozen at start, which boxd does not make.
            return Err(NetworkError::Invalid {
                field: "links",
                reason: "links are names on a user-defined network's DNS; give --network <name>, where containers also find each other by name"
                    .to_owned(),
            });
        }
        Ok((
            ContainerNetwork {
                mode,
                ports,
                aliases: aliases.to_vec(),
                dns: dns.clone(),
                ip,
                connected: Vec::new(),
                links: links.clone(),
            },
            warnings,
        ))
    }

    /// Sets up the network of one run of container `id` and says how the shim enters
    /// it. `peer_pid`: the running peer's pid for `container:` mode; `rates`: ingress
    /// and egress limits in bits per second.
    pub async fn attach(
        &self,
        id: &str,
        net: &ContainerNetwork,
        peer_pid: Option<u32>,
        rates: (Option<u64>, Option<u64>),
    ) -> Result<Netns, NetworkError> {
        let name = match &net.mode {
            NetworkMode::None => return Ok(Netns::Own),
            NetworkMode::Host => return Ok(Netns::Host),
            NetworkMode::Container { id: peer } => {
                let pid = peer_pid.ok_or_else(|| NetworkError::PeerNotRunning(peer.clone()))?;
                return Ok(Netns::Join(PathBuf::from(format!("/proc/{pid}/ns/net"))));
            }
            NetworkMode::Network { name } => name,
        };
        let n = self.get(name).await?;
        ports::check_free_on_host(&net.ports)?;
        let path = self.netns_dir.join(id);
        let mut conflist = self.conflist(&n);
        if net.ports.is_empty() && n.custom.is_none() {
            // Without ports, portmap has nothing to add, but its DEL still sweeps its
            // chains with a dozen iptables calls: left out of this run's list (the
            // attachment keeps the list it ran with, so its DEL matches).
            if let Some(plugins) = conflist["plugins"].as_array_mut() {
                plugins.retain(|p| p["type"] != "portmap");
            }
        }
        let mut runtime_config = json!({ "portMappings": ports::runtime_config(&net.ports) });
        if let Some(ip) = net.ip {
            // host-local takes the address asked for through the `ips` capability.
            let prefix = n.subnet.parse::<Ipv4Net>().map_or(32, |s| s.prefix_len());
            runtime_config["ips"] = json!([format!("{ip}/{prefix}")]);
        }
        if let Some(bw) = bandwidth(rates) {
            // Only for a container with limits: one plugin run less for the rest.
            conflist["plugins"]
                .as_array_mut()
                .expect("plugins array")
                .push(json!({ "type": "bandwidth", "capabilities": { "bandwidth": true } }));
            runtime_config["bandwidth"] = bw;
        }
        self.cni.check_installed(&conflist)?;
        let a = Attachment {
            container_id: id.to_owned(),
            network: n.name.clone(),
            ifname: IFNAME.to_owned(),
            netns: path.clone(),
            runtime_config,
            conflist,
            result: None,
        };
        // Left by a run whose end was not seen (a crash before the reconcile ran).
        self.detach(id).await;
        self.store.insert_attachment(&a).await?;
        crate::fault::crash_point("network.after_attachment_row");
        let added = async {
            netns::create(path.clone())
                .await
                .map_err(NetworkError::io(format!(
                    "create network namespace {}",
                    path.display()
                )))?;
            self.add_chain(&a).await?;
            crate::fault::crash_point("network.after_add");
            Ok::<_, NetworkError>(())
        };
        if let Err(e) = added.await {
            self.detach(id).await;
            return Err(e);
        }
        if n.name != DEFAULT_NETWORK {
            self.serve_dns(&n).await;
        }
        for (i, c) in net.connected.iter().enumerate() {
            if let Err(e) = self
                .add_interface(id, &c.name, &format!("eth{}", i + 1))
                .await
            {
                self.detach(id).await;
                return Err(e);
            }
        }
        Ok(Netns::Join(path))
    }

    /// Attaches the running (or starting) container `id`'s pinned namespace to network
    /// `name` as interface `ifname`: the row first, then the ADD.
    async fn add_interface(&self, id: &str, name: &str, ifname: &str) -> Result<(), NetworkError> {
        let n = self.get(name).await?;
        let path = self.netns_dir.join(id);
        let a = Attachment {
            container_id: id.to_owned(),
            network: n.name.clone(),
            ifname: ifname.to_owned(),
            netns: path.clone(),
            conflist: self.conflist(&n),
            runtime_config: json!({}),
            result: None,
        };
        self.cni.check_installed(&a.conflist)?;
        self.store.insert_attachment(&a).await?;
        if let Err(e) = self.add_chain(&a).await {
            // What the plugins that ran made is on record: DEL frees it.
            if let Ok(rows) = self.store.attachments(Some(id)).await {
                for row in rows.iter().filter(|r| r.network == a.network) {
                    self.del(row).await;
                }
            }
            return Err(e);
        }
        if n.name != DEFAULT_NETWORK {
            self.serve_dns(&n).await;
        }
        Ok(())
    }

    /// Connects running container `id` to network `name` now (a further interface).
    pub async fn connect_running(&self, id: &str, name: &str) -> Result<(), NetworkError> {
        let used: HashSet<String> = self
            .store
            .attachments(Some(id))
            .await?
            .into_iter()
            .map(|a| a.ifname)
            .collect();
        let ifname = (1..)
            .map(|i| format!("eth{i}"))
            .find(|n| !used.contains(n))
            .expect("a free interface name");
        self.add_interface(id, name, &ifname).await
    }

    /// Detaches running container `id` from network `name` now.
    pub async fn disconnect_running(&self, id: &str, name: &str) -> Result<(), NetworkError> {
        for a in self.store.attachments(Some(id)).await? {
            if a.network == name {
                self.del(&a).await;
            }
        }
        Ok(())
    }

    /// Runs the ADD of every plugin of `a`'s list in order, recording each result in
    /// the attachment's row before the next plugin runs.
    async fn add_chain(&self, a: &Attachment) -> Result<(), NetworkError> {
        let target = a.target();
        let mut prev: Option<Value> = None;
        for i in 0..cni::Cni::plugin_count(&a.conflist)? {
            let result = self
                .cni
                .add_plugin(&a.conflist, i, &target, &a.runtime_config, prev.as_ref())
                .await?;
            self.store
                .set_attachment_result(&a.container_id, &a.network, &result)
                .await?;
            if i == 0 {
                crate::fault::crash_point("network.after_first_plugin");
            }
            prev = Some(result);
        }
        Ok(())
    }

    /// Starts the DNS server of user network `n` unless it runs (boxd's own lists
    /// only: an operator's list says nothing of a gateway boxd could serve on).
    async fn serve_dns(&self, n: &Network) {
        if n.custom.is_some() {
            return;
        }
        if let Ok(gw) = n.gateway.parse() {
            self.dns.ensure(&self.store, &n.name, gw).await;
        }
    }

    /// Writes the run's `/etc/resolv.conf` and `/etc/hosts` into `dir` and returns
    /// them as (container path, host file) pairs to bind-mount.
    pub async fn run_files(
        &self,
        id: &str,
        net: &ContainerNetwork,
        hostname: &str,
        name: &str,
        dir: &Path,
    ) -> Result<Vec<(String, PathBuf)>, NetworkError> {
        let address = self
            .store
            .attachments(Some(id))
            .await?
            .first()
            .and_then(|a| a.endpoint().address)
            .and_then(|a| a.split('/').next()?.parse::<IpAddr>().ok());
        let own_server = match &net.mode {
            NetworkMode::Network { name } if name != DEFAULT_NETWORK => self
                .store
                .network(name)
                .await?
                .filter(|n| n.custom.is_none())
                .and_then(|n| n.gateway.parse().ok()),
            _ => None,
        };
        let host_text = tokio::fs::read_to_string("/etc/resolv.conf")
            .await
            .unwrap_or_default();
        let resolv = if net.mode == NetworkMode::Host && net.dns == DnsConfig::default() {
            // The host's own resolvers, loopback ones included, are reachable here.
            host_text
        } else {
            files::resolv_conf(&net.dns, own_server, &host_text)
        };
        let hosts = files::hosts(&net.dns, address, hostname, name);
        let mut out = Vec::new();
        for (target, file, text) in [
            ("/etc/resolv.conf", "resolv.conf", resolv),
            ("/etc/hosts", "hosts", hosts),
        ] {
            let path = dir.join(file);
            tokio::fs::write(&path, text)
                .await
                .map_err(NetworkError::io(format!("write {}", path.display())))?;
            out.push((target.to_owned(), path));
        }
        Ok(out)
    }

    /// Frees everything of container `id`'s attachments (DEL of each, then the pinned
    /// namespace). A DEL that fails keeps its row for the next reconcile; it is logged.
    pub async fn detach(&self, id: &str) {
        let attachments = match self.store.attachments(Some(id)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(id, error = %crate::error_chain(&e), "failed to read attachments");
                Vec::new()
            }
        };
        for a in attachments {
            self.del(&a).await;
        }
        if let Err(e) = netns::remove(self.netns_dir.join(id)).await {
            tracing::warn!(id, error = %e, "failed to remove network namespace");
        }
    }

    async fn del(&self, a: &Attachment) {
        let done = self
            .cni
            .del(
                &a.conflist,
                &a.target(),
                &a.runtime_config,
                a.result.as_ref(),
            )
            .await;
        match done {
            Ok(()) => {
                crate::fault::crash_point("network.after_del");
                if let Err(e) = self
                    .store
                    .delete_attachment(&a.container_id, &a.network)
                    .await
                {
                    tracing::error!(id = a.container_id, error = %crate::error_chain(&e), "failed to delete attachment");
                }
            }
            Err(e) => tracing::warn!(
                id = a.container_id,
                network = a.network,
                error = %crate::error_chain(&e),
                "CNI DEL failed; the attachment is kept and retried at the next start"
            ),
        }
    }

    /// The attachments of container `id` (or all).
    pub async fn attachments(&self, id: Option<&str>) -> Result<Vec<Attachment>, NetworkError> {
        Ok(self.store.attachments(id).await?)
    }

    /// At start-up: DEL what belongs to containers not running (`live` holds the ones
    /// that are), unpin their namespaces, and CHECK the running ones' attachments.
    /// Returns what it did, for `GET /v1/system/check`.
    pub async fn reconcile(&self, live: &HashSet<String>) -> Vec<String> {
        let mut done = Vec::new();
        let attachments = match self.store.attachments(None).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "failed to read attachments");
                return done;
            }
        };
        for a in &attachments {
            if live.contains(&a.container_id) {
                let Some(result) = &a.result else { continue };
                let checked = self
                    .cni
                    .check(&a.conflist, &a.target(), &a.runtime_config, result)
                    .await;
                if let Err(e) = checked.as_ref().map_err(|e| e.to_string()) {
                    // portmap (1.1) checks its IPv6 chain even for an attachment with no
                    // IPv6 address, and fails: not a fault of the attachment.
                    if e.contains("ipv6") && !has_ipv6(result) {
                        continue;
                    }
                }
                if let Err(e) = checked {
                    tracing::warn!(id = a.container_id, network = a.network, error = %crate::error_chain(&e), "CNI CHECK failed");
                    done.push(format!(
                        "container {}: attachment to {} failed its check: {}",
                        a.container_id,
                        a.network,
                        crate::error_chain(&e)
                    ));
                }
            } else {
                self.del(a).await;
                done.push(format!(
                    "container {}: released its attachment to network {} (it no longer runs)",
                    a.container_id, a.network
                ));
            }
        }
        for (id, path) in netns::list(&self.netns_dir) {
            if !live.contains(&id) {
                if let Err(e) = netns::remove(path).await {
                    tracing::warn!(id, error = %e, "failed to remove a stale network namespace");
                }
            }
        }
        // The DNS of user networks whose containers run on.
        let served: HashSet<&str> = attachments
            .iter()
            .filter(|a| live.contains(&a.container_id) && a.network != DEFAULT_NETWORK)
            .map(|a| a.network.as_str())
            .collect();
        for name in served {
            if let Ok(Some(n)) = self.store.network(name).await {
                self.serve_dns(&n).await;
            }
        }
        done
    }
}

/// The `bandwidth` runtime config for (ingress, egress) rates in bits per second. The
/// bucket holds a tenth of a second at the rate (at least 64 KiB): short bursts pass,
/// a transfer longer than that runs at the rate.
fn bandwidth(rates: (Option<u64>, Option<u64>)) -> Option<Value> {
    let burst = |rate: u64| (rate / 10).max(64 * 1024 * 8);
    let mut bw = serde_json::Map::new();
    if let Some(r) = rates.0 {
        bw.insert("ingressRate".into(), json!(r));
        bw.insert("ingressBurst".into(), json!(burst(r)));
    }
    if let Some(r) = rates.1 {
        bw.insert("egressRate".into(), json!(r));
        bw.insert("egressBurst".into(), json!(burst(r)));
    }
    (!bw.is_empty()).then_some(Value::Object(bw))
}

/// DNS aliases are names as container names are.
pub fn check_aliases(field: &'static str, aliases: &[String]) -> Result<(), NetworkError> {
    for a in aliases {
        crate::runtime::names::validate_container_name(a).map_err(|reason| {
            NetworkError::Invalid {
                field,
                reason: format!("{a:?}: {reason}"),
            }
        })?;
    }
    Ok(())
}

/// Whether a CNI result gave an IPv6 address.
fn has_ipv6(result: &Value) -> bool {
    result
        .get("ips")
        .and_then(Value::as_array)
        .is_some_and(|ips| {
            ips.iter().any(|ip| {
                ip.get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.contains(':'))
            })
        })
}

/// Whether `net` overlaps the CIDR `other` (an unparsable one, or one of the other
/// family, overlaps nothing).
fn overlaps(net: &IpNet, other: &str) -> bool {
    other
        .parse::<IpNet>()
        .is_ok_and(|o| o.contains(&net.network()) || net.contains(&o.network()))
}

/// A subnet given at network create: of the right family, not too small (a /30 or a
/// /120 still has host addresses), and clear of every other network's (`of`).
fn checked_subnet(
    field: &'static str,
    text: &str,
    v6: bool,
    existing: &[Network],
    of: impl Fn(&Network) -> Option<String>,
) -> Result<IpNet, NetworkError> {
    let (family, example, max) = if v6 {
        ("IPv6", "fd00:1::/64", 120)
    } else {
        ("IPv4", "10.1.2.0/24", 30)
    };
    let net = text
        .parse::<IpNet>()
        .ok()
        .filter(|n| matches!(n, IpNet::V6(_)) == v6)
        .ok_or_else(|| NetworkError::Invalid {
            field,
            reason: format!("{text:?} is not an {family} CIDR subnet (like {example})"),
        })?;
    if net.prefix_len() > max {
        return Err(NetworkError::Invalid {
            field,
            reason: format!("{text} is too small: at most /{max}"),
        });
    }
    let net = net.trunc();
    for o in existing {
        if let Some(theirs) = of(o).filter(|t| overlaps(&net, t)) {
            return Err(NetworkError::Overlap {
                subnet: net.to_string(),
                other: o.name.clone(),
                other_subnet: theirs,
            });
        }
    }
    Ok(net)
}

/// A gateway given at network create (a host address of `net`), or `net`'s first host
/// address (for IPv6, the first after the subnet-router anycast address).
fn checked_gateway(
    field: &'static str,
    text: Option<&str>,
    net: &IpNet,
) -> Result<IpAddr, NetworkError> {
    let Some(text) = text else {
        return Ok(match net {
            IpNet::V4(n) => IpAddr::V4(n.hosts().next().expect("a /30 or larger has hosts")),
            IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) + 1)),
        });
    };
    let g: IpAddr = text
        .parse()
        .ok()
        .filter(|g: &IpAddr| g.is_ipv6() == matches!(net, IpNet::V6(_)))
        .ok_or_else(|| NetworkError::Invalid {
            field,
            reason: format!("{text:?} is not an address of {net}'s family"),
        })?;
    if !net.contains(&g) || g == net.network() || g == net.broadcast() {
        return Err(NetworkError::Invalid {
            field,
            reason: format!("{g} is not a host address of {net}"),
        });
    }
    Ok(g)
}

mod links {
    //! What no CNI plugin removes: a network's bridge (netlink) and the firewall
    //! plugin's per-bridge isolation rules.

    use futures_util::TryStreamExt;

    use super::NetworkError;

    /// Deletes the bridge `name`, if it exists.
    pub(super) async fn delete_bridge(name: &str) -> Result<(), NetworkError> {
        let io = |e: std::io::Error| NetworkError::Io {
            op: format!("delete bridge {name}"),
            source: e,
        };
        let (conn, handle, _) = rtnetlink::new_connection().map_err(io)?;
        let task = tokio::spawn(conn);
        let mut links = handle.link().get().match_name(name.to_owned()).execute();
        let result = match links.try_next().await {
            Ok(Some(link)) => handle
                .link()
                .del(link.header.index)
                .execute()
                .await
                .map_err(|e| io(std::io::Error::other(e.to_string()))),
            Ok(None) => Ok(()),
            // ENODEV: no such link.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            Err(e) => Err(io(std::io::Error::other(e.to_string()))),
        };
        task.abort();
        result
    }

    /// The firewall plugin (`ingressPolicy: same-bridge`) adds two rules per bridge to
    /// its isolation chains and never removes them; they go with the network.
    pub(super) async fn delete_isolation_rules(bridge: &str) {
        const COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge)";
        let rules: [&[&str]; 2] = [
            &[
                "CNI-ISOLATION-STAGE-1",
                "-i",
                bridge,
                "!",
                "-o",
                bridge,
                "-m",
                "comment",
                "--comment",
                COMMENT,
                "-j",
                "CNI-ISOLATION-STAGE-2",
            ],
            &[
                "CNI-ISOLATION-STAGE-2",
                "-o",
                bridge,
                "-m",
                "comment",
                "--comment",
                COMMENT,
                "-j",
                "DROP",
            ],
        ];
        // The plugin adds them for each family the network has.
        for tool in ["iptables", "ip6tables"] {
            for rule in rules {
                // Absent (no container ever ran on the network, or no IPv6): the tool
                // says so; fine.
                let _ = tokio::process::Command::new(tool)
                    .args(["-w", "-t", "filter", "-D"])
                    .args(rule)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_words_parse_as_docker_writes_them() {
        assert_eq!(ModeRequest::parse("").unwrap(), ModeRequest::Default);
        assert_eq!(ModeRequest::parse("none").unwrap(), ModeRequest::None);
        assert_eq!(ModeRequest::parse("host").unwrap(), ModeRequest::Host);
        assert_eq!(ModeRequest::parse("bridge").unwrap(), ModeRequest::Bridge);
        assert_eq!(
            ModeRequest::parse("container:web").unwrap(),
            ModeRequest::Container("web".into())
        );
        assert_eq!(
            ModeRequest::parse("backend").unwrap(),
            ModeRequest::Network("backend".into())
        );
        assert!(ModeRequest::parse("container:").is_err());
        assert!(ModeRequest::parse("bad name!").is_err());
    }

    #[test]
    fn stored_modes_round_trip() {
        let n = ContainerNetwork {
            mode: NetworkMode::Network { name: "a".into() },
            ..Default::default()
        };
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(text, r#"{"mode":"network","name":"a","dns":{}}"#);
        assert_eq!(serde_json::from_str::<ContainerNetwork>(&text).unwrap(), n);
    }

    #[test]
    fn subnets_overlap_when_either_holds_the_other() {
        let a: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(overlaps(&a, "10.1.2.0/24"));
        assert!(overlaps(&"10.1.2.0/24".parse().unwrap(), "10.1.0.0/16"));
        assert!(!overlaps(&a, "10.2.0.0/16"));
        assert!(!overlaps(&a, "fd00::/8"));
    }

    #[test]
    fn an_endpoint_is_read_off_the_cni_result() {
        let a = Attachment {
            container_id: "c".into(),
            network: "n".into(),
            ifname: "eth0".into(),
            netns: "/x".into(),
            conflist: json!({}),
            runtime_config: json!({}),
            result: Some(json!({
                "interfaces": [{"name": "br"}, {"name": "veth"}, {"name": "eth0", "mac": "aa:bb", "sandbox": "/x"}],
                "ips": [{"interface": 2, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}]
            })),
        };
        let e = a.endpoint();
        assert_eq!(e.address.as_deref(), Some("10.1.0.5/24"));
        assert_eq!(e.gateway.as_deref(), Some("10.1.0.1"));
        assert_eq!(e.mac.as_deref(), Some("aa:bb"));
    }
}
