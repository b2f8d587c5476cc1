//! Request shapes of the Docker face that `bollard-stubs` has no type for, and the
//! `filters` query parameter.

use std::collections::BTreeMap;

use bollard_stubs::models::{ContainerConfig, HostConfig, NetworkingConfig};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::DockerError;

/// `POST /containers/create`: the container's `Config` with `HostConfig` and
/// `NetworkingConfig` beside its fields.
#[derive(Debug, Default, Deserialize)]
pub struct CreateBody {
    /// Config fields (Image, Cmd, Env, ...).
    #[serde(flatten)]
    pub config: ContainerConfig,
    /// Host-specific settings.
    #[serde(rename = "HostConfig", default)]
    pub host_config: Option<HostConfig>,
    /// Networks to join.
    #[serde(rename = "NetworkingConfig", default)]
    pub networking_config: Option<NetworkingConfig>,
}

/// Docker's `filters` parameter: `{"name":{"web":true}}` (the CLI) or `{"name":["web"]}`
/// (older clients, docker-py), as name -> values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the JSON of the parameter (absent or empty: no filters).
    pub fn parse(raw: Option<&str>) -> Result<Filters, DockerError> {
        let raw = raw.map(str::trim).unwrap_or("");
        if raw.is_empty() {
            return Ok(Filters::default());
        }
        let bad = |why: &str| DockerError::bad(format!("invalid filters {raw:?}: {why}"));
        let v: Value = serde_json::from_str(raw).map_err(|e| bad(&e.to_string()))?;
        let Value::Object(map) = v else {
            return Err(bad("expected a JSON object"));
        };
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let values: Vec<String> = match v {
                Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(k, _)| k)
                    .collect(),
                Value::Array(a) => a
                    .into_iter()
                    .map(|x| match x {
                        Value::String(s) => Ok(s),
                        other => Err(bad(&format!("{other} is not a string"))),
                    })
                    .collect::<Result<_, _>>()?,
                Value::String(s) => vec![s],
                other => return Err(bad(&format!("{other} is not a list of values"))),
            };
            out.insert(k, values);
        }
        Ok(Filters(out))
    }

    /// The values of filter `name` (empty: not filtered on it).
    pub fn get(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// Refuses filters not in `known`, as dockerd does ("invalid filter 'x'").
    pub fn only(&self, known: &[&str]) -> Result<(), DockerError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(DockerError::bad(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// Whether `labels` match every `label` filter (`key` or `key=value`).
    pub fn labels_match<'a>(&self, name: &str, labels: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.get(name).iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels(k) == Some(v),
            None => labels(f).is_some(),
        })
    }
}

/// The parsed `filters` parameter of a request whose query has nothing else.
pub struct QueryFilters(pub Filters);

#[derive(Deserialize)]
struct FiltersParam {
    filters: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueryFilters {
    type Rejection = DockerError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let super::error::DockerQuery(q) =
            super::error::DockerQuery::<FiltersParam>::from_request_parts(parts, state).await?;
        Filters::parse(q.filters.as_deref()).map(QueryFilters)
    }
}

/// A Docker time parameter (`since`, `until`): Unix seconds with an optional fraction
/// (what the CLI sends), or RFC 3339.
pub fn parse_time(name: &str, v: &str) -> Result<DateTime<Utc>, DockerError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().map_err(|_| {
        DockerError::bad(format!(
            "{name} must be Unix seconds or RFC 3339, not {v:?}"
        ))
    })?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}")[..9]
            .parse()
            .map_err(|_| DockerError::bad(format!("{name}: bad fraction in {v:?}")))?
    };
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| DockerError::bad(format!("{name} {v:?} is out of range")))
}

/// Docker's time for "never": what inspect shows for a time that is not set.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with nanoseconds, as Docker writes times.
pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || ZERO_TIME.to_owned(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_both_shapes() {
        let f = Filters::parse(Some(
            r#"{"name":{"web":true},"status":["running","exited"]}"#,
        ))
        .unwrap();
        assert_eq!(f.get("name"), ["web"]);
        assert_eq!(f.get("status"), ["running", "exited"]);
        assert!(f.get("label").is_empty());
        assert!(f.only(&["name", "status"]).is_ok());
        assert!(f.only(&["name"]).is_err());
        assert!(Filters::parse(Some("[1]")).is_err());
        assert_eq!(Filters::parse(Some("")).unwrap(), Filters::default());
        let f = Filters::parse(Some(r#"{"label":["a","b=1"]}"#)).unwrap();
        let labels: BTreeMap<&str, &str> = [("a", "x"), ("b", "1")].into();
        assert!(f.labels_match("label", |k| labels.get(k).copied()));
        let labels: BTreeMap<&str, &str> = [("a", "x"), ("b", "2")].into();
        assert!(!f.labels_match("label", |k| labels.get(k).copied()));
    }

    #[test]
    fn docker_times() {
        let t = parse_time("since", "1700000000.5").unwrap();
        assert_eq!(t.timestamp(), 1_700_000_000);
        assert_eq!(t.timestamp_subsec_nanos(), 500_000_000);
        assert_eq!(
            parse_time("until", "1700000000").unwrap().timestamp(),
            1_700_000_000
        );
        assert!(parse_time("since", "yesterday").is_err());
        assert_eq!(time(None), ZERO_TIME);
    }

    #[test]
    fn the_create_body_the_cli_sends_is_read() {
        // As docker 28 sends it for `run --rm busybox true` (fields it always sends).
        let body = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["true"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},
        "HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},
        "NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DriverOpts":null,"DNSNames":null}}}}"#;
        let b: CreateBody = serde_json::from_str(body).unwrap();
        assert_eq!(b.config.image.as_deref(), Some("busybox"));
        assert_eq!(b.config.cmd, Some(vec!["true".to_owned()]));
        let h = b.host_config.unwrap();
        assert_eq!(h.auto_remove, Some(true));
        assert_eq!(h.memory_swappiness, Some(-1));
        assert!(b
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap()
            .contains_key("default"));
    }
}
