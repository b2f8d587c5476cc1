//! `boxctl network create|ls|inspect|rm|connect|disconnect`: manages the daemon's
//! networks, with docker's verbs and output.

use std::collections::BTreeMap;

use anyhow::Context as _;
use boxd_client::models::{Network, NetworkConnect, NetworkCreate, NetworkDisconnect};
use clap::{Args as ClapArgs, Subcommand};

use super::create::parse_label;
use super::{each_id, print_json, report, short_id, Ctx, Table};

/// The subcommands of `network`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a network and print its id.
    Create(CreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON.
    Inspect(InspectArgs),
    /// Remove networks.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Connect a container to a network (at once if it runs, and at every start).
    Connect(ConnectArgs),
    /// Disconnect a container from a network it was connected to.
    Disconnect(DisconnectArgs),
}

/// The options of `network connect`.
#[derive(Debug, ClapArgs)]
pub struct ConnectArgs {
    /// Another DNS name of the container on this network.
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// The options of `network disconnect`.
#[derive(Debug, ClapArgs)]
pub struct DisconnectArgs {
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// The options of `network create`.
#[derive(Debug, ClapArgs)]
pub struct CreateArgs {
    /// Subnet in CIDR notation; give it twice for IPv4 and IPv6 (an IPv4 one is a free
    /// /24 of the daemon's pool when absent).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// Gateway address, per subnet (the subnet's first address when absent).
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// IPv6 too: needs an IPv6 --subnet.
    #[arg(long)]
    pub ipv6: bool,
    /// Use this CNI configuration list (a JSON file) as it is, with any installed
    /// plugins, instead of boxd's bridge network.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["subnet", "gateway", "ipv6"])]
    pub conflist: Option<std::path::PathBuf>,
    /// No route out: containers reach only each other.
    #[arg(long)]
    pub internal: bool,
    /// Set a label (K=V).
    #[arg(long = "label", value_name = "K=V")]
    pub label: Vec<String>,
    /// Name of the network.
    pub name: String,
}

/// The options of `network ls`.
#[derive(Debug, ClapArgs)]
pub struct LsArgs {
    /// Only print network ids.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The options of `network inspect`.
#[derive(Debug, ClapArgs)]
pub struct InspectArgs {
    /// Network names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// The options of `network rm`.
#[derive(Debug, ClapArgs)]
pub struct RmArgs {
    /// Network names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// Runs `boxctl network ...`.
pub async fn run(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Create(args) => create(ctx, args).await,
        Command::Ls(args) => ls(ctx, args).await,
        Command::Inspect(args) => inspect(ctx, args).await,
        Command::Rm(args) => rm(ctx, args).await,
        Command::Connect(args) => {
            let body = NetworkConnect {
                container: args.container.clone(),
                aliases: args.aliases,
            };
            ctx.client
                .connect_network(&args.network, &body)
                .await
                .with_context(|| {
                    format!(
                        "failed to connect container {} to network {}",
                        args.container, args.network
                    )
                })?;
            Ok(0)
        }
        Command::Disconnect(args) => {
            let body = NetworkDisconnect {
                container: args.container.clone(),
            };
            ctx.client
                .disconnect_network(&args.network, &body)
                .await
                .with_context(|| {
                    format!(
                        "failed to disconnect container {} from network {}",
                        args.container, args.network
                    )
                })?;
            Ok(0)
        }
    }
}

/// The request body of `network create`; a bad label is refused before any request.
pub fn spec(args: &CreateArgs) -> anyhow::Result<NetworkCreate> {
    let labels = args
        .label
        .iter()
        .map(|l| parse_label(l))
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let v6 = |s: &&String| s.contains(':');
    let pick = |list: &[String], six: bool, what: &str| -> anyhow::Result<Option<String>> {
        let mut it = list.iter().filter(|s| v6(s) == six);
        let first = it.next().cloned();
        anyhow::ensure!(
            it.next().is_none(),
            "at most one IPv{} --{what}",
            if six { 6 } else { 4 }
        );
        Ok(first)
    };
    let subnet6 = pick(&args.subnet, true, "subnet")?;
    anyhow::ensure!(
        !args.ipv6 || subnet6.is_some(),
        "--ipv6 needs an IPv6 --subnet (like fd00:1::/64)"
    );
    let conflist = match &args.conflist {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?,
            )
        }
    };
    Ok(NetworkCreate {
        conflist,
        name: args.name.clone(),
        subnet: pick(&args.subnet, false, "subnet")?,
        gateway: pick(&args.gateway, false, "gateway")?,
        subnet6,
        gateway6: pick(&args.gateway, true, "gateway")?,
        internal: args.internal,
        labels,
    })
}

async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<i32> {
    let spec = spec(&args)?;
    let network = ctx
        .client
        .create_network(&spec)
        .await
        .with_context(|| format!("failed to create network {}", spec.name))?;
    if ctx.json {
        print_json(&network)?;
    } else {
        println!("{}", network.id);
    }
    Ok(0)
}

async fn ls(ctx: &Ctx, args: LsArgs) -> anyhow::Result<i32> {
    let mut networks = ctx
        .client
        .networks()
        .await
        .context("failed to list networks")?;
    // By name, as `docker network ls` sorts.
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    if ctx.json {
        print_json(&networks)?;
    } else if args.quiet {
        for n in &networks {
            println!("{}", short_id(&n.id));
        }
    } else {
        print!("{}", table(&networks));
    }
    Ok(0)
}

/// The `network ls` table.
pub fn table(networks: &[Network]) -> String {
    let mut t = Table::new(&["NETWORK ID", "NAME", "DRIVER", "SUBNET"]);
    for n in networks {
        t.row(vec![
            short_id(&n.id).to_string(),
            n.name.clone(),
            n.driver.clone(),
            n.subnet.clone(),
        ]);
    }
    t.render()
}

/// The array holds what was found; each miss is reported and makes the status 1, as
/// `docker network inspect` does.
async fn inspect(ctx: &Ctx, args: InspectArgs) -> anyhow::Result<i32> {
    let mut found = Vec::new();
    let mut code = 0;
    for name in &args.names {
        match ctx
            .client
            .network(name)
            .await
            .with_context(|| format!("failed to inspect network {name}"))
        {
            Ok(n) => found.push(n),
            Err(err) => {
                report(&err);
                code = 1;
            }
        }
    }
    print_json(&found)?;
    Ok(code)
}

async fn rm(ctx: &Ctx, args: RmArgs) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.names, "remove network", |name| {
        ctx.client.remove_network(name)
    })
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(id: &str, name: &str, subnet: &str) -> Network {
        Network {
            id: id.repeat(64 / id.len()),
            name: name.into(),
            driver: "bridge".into(),
            bridge: "boxd0".into(),
            subnet: subnet.into(),
            gateway: String::new(),
            subnet6: None,
            gateway6: None,
            internal: false,
            labels: BTreeMap::new(),
            created_at: chrono::Utc::now(),
            default: false,
            containers: Vec::new(),
            conflist: None,
        }
    }

    #[test]
    fn table_has_docker_like_columns_and_short_ids() {
        let out = table(&[
            network("0123456789abcdef", "bridge", "10.88.0.0/16"),
            network("fedcba98", "front", "10.89.1.0/24"),
        ]);
        assert_eq!(
            out,
            "NETWORK ID     NAME     DRIVER   SUBNET\n\
             0123456789ab   bridge   bridge   10.88.0.0/16\n\
             fedcba98fedc   front    bridge   10.89.1.0/24\n"
        );
    }

    #[test]
    fn create_spec_takes_every_flag_and_checks_labels() {
        let mut args = CreateArgs {
            subnet: vec!["10.90.0.0/24".into(), "fd00:9::/64".into()],
            gateway: vec!["10.90.0.254".into()],
            ipv6: true,
            conflist: None,
            internal: true,
            label: vec!["tier=front".into(), "bare".into()],
            name: "front".into(),
        };
        let spec = spec(&args).unwrap();
        assert_eq!(spec.name, "front");
        assert_eq!(spec.subnet.as_deref(), Some("10.90.0.0/24"));
        assert_eq!(spec.gateway.as_deref(), Some("10.90.0.254"));
        assert_eq!(spec.subnet6.as_deref(), Some("fd00:9::/64"));
        assert_eq!(spec.gateway6, None);
        assert!(spec.internal);
        assert_eq!(spec.labels["tier"], "front");
        assert_eq!(spec.labels["bare"], "");
        args.label.push("=x".into());
        assert!(super::spec(&args).is_err());
        args.label.pop();
        args.subnet = vec!["10.90.0.0/24".into()];
        assert!(super::spec(&args).is_err(), "--ipv6 without an IPv6 subnet");
        args.ipv6 = false;
        args.subnet = vec!["10.90.0.0/24".into(), "10.91.0.0/24".into()];
        assert!(super::spec(&args).is_err(), "two IPv4 subnets");
    }
}
