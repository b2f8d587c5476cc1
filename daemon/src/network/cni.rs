//! The CNI runtime side (spec 1.0): runs the plugins of a network configuration list
//! for one attachment, as containerd and CRI-O do.
//!
//! Each plugin is an executable found in the configured plugin dirs by its `type`; it
//! gets `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` in its
//! environment and its own configuration on stdin: the list's `name` and `cniVersion`,
//! the previous plugin's result as `prevResult`, and `runtimeConfig` holding only the
//! capabilities the plugin declares (`portMappings`, `bandwidth`, `ips`). It answers a
//! result (ADD) or an error object on stdout. ADD runs the list in order, DEL in
//! reverse with the cached ADD result, CHECK in order with it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

/// The CNI version boxd writes in its own lists.
pub const CNI_VERSION: &str = "1.0.0";

/// How long one plugin may run before it is killed (the bridge plugin waits for
/// duplicate address detection; iptables waits for its lock).
const PLUGIN_DEADLINE: Duration = Duration::from_secs(60);

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach (idempotent: a plugin must tolerate what is already gone).
    Del,
    /// Verify an attachment is as the cached result says.
    Check,
}

impl Command {
    fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// Errors of a plugin run.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The list is not a CNI configuration list.
    #[error("invalid CNI configuration list: {0}")]
    InvalidList(String),
    /// No plugin dir holds the plugin.
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// The dirs searched.
        dirs: String,
    },
    /// The plugin could not be run.
    #[error("failed to run CNI plugin {plugin}")]
    Spawn {
        /// The plugin type.
        plugin: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plugin did not finish in time.
    #[error("CNI plugin {plugin} did not finish {command} within {secs} s")]
    Timeout {
        /// The plugin type.
        plugin: String,
        /// The command.
        command: &'static str,
        /// The deadline.
        secs: u64,
    },
    /// The plugin answered an error.
    #[error("CNI plugin {plugin} failed {command}: {msg}")]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// The command.
        command: &'static str,
        /// Its message (with details, when it gave them).
        msg: String,
        /// The CNI error code (0 when it gave none).
        code: u64,
    },
}

/// Runs CNI plugins found in a list of dirs.
#[derive(Debug, Clone)]
pub struct Cni {
    plugin_dirs: Vec<PathBuf>,
}

/// One attachment's identity as the plugins see it.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`: the network namespace's path.
    pub netns: &'a Path,
    /// `CNI_IFNAME`: the interface made inside it.
    pub ifname: &'a str,
}

impl Cni {
    /// Plugins are looked up in `plugin_dirs`, in order.
    pub fn new(plugin_dirs: Vec<PathBuf>) -> Cni {
        Cni { plugin_dirs }
    }

    /// The dirs searched.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    fn find(&self, plugin: &str) -> Result<PathBuf, CniError> {
        if plugin.is_empty() || plugin.contains('/') || plugin.starts_with('.') {
            return Err(CniError::InvalidList(format!(
                "plugin type {plugin:?} is not a file name"
            )));
        }
        self.plugin_dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::PluginNotFound {
                plugin: plugin.to_owned(),
                dirs: self
                    .plugin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            })
    }

    /// Checks that every plugin of `list` is installed.
    pub fn check_installed(&self, list: &Value) -> Result<(), CniError> {
        for p in plugins(list)? {
            self.find(plugin_type(p)?)?;
        }
        Ok(())
    }

    /// How many plugins `list` has.
    pub fn plugin_count(list: &Value) -> Result<usize, CniError> {
        Ok(plugins(list)?.len())
    }

    /// ADD of the `index`th plugin of `list`, given the result of the ones before
    /// (`prev`); returns its result, which the next plugin gets. The caller keeps each
    /// result as it comes: a DEL after a crash midway then tells every plugin what
    /// the ones before it made (the firewall plugin frees its rules only by the
    /// addresses in `prevResult`).
    pub async fn add_plugin(
        &self,
        list: &Value,
        index: usize,
        target: &Target<'_>,
        runtime_config: &Value,
        prev: Option<&Value>,
    ) -> Result<Value, CniError> {
        let p = plugins(list)?
            .get(index)
            .ok_or_else(|| CniError::InvalidList(format!("it has no plugin {index}")))?;
        let config = plugin_config(list, p, prev, runtime_config)?;
        let out = self.exec(Command::Add, p, &config, target).await?;
        serde_json::from_slice(&out).map_err(|e| CniError::Plugin {
            plugin: plugin_type(p).unwrap_or("?").to_owned(),
            command: "ADD",
            msg: format!("its result is not JSON: {e}"),
            code: 0,
        })
    }

    /// DEL: runs the list in reverse with the cached ADD result (none when the ADD never
    /// finished). Every plugin runs even when one fails, so that as much as can be freed
    /// is; the first failure is returned.
    pub async fn del(
        &self,
        list: &Value,
        target: &Target<'_>,
        runtime_config: &Value,
        result: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut first_err = None;
        for p in plugins(list)?.iter().rev() {
            let run = async {
                let config = plugin_config(list, p, result, runtime_config)?;
                self.exec(Command::Del, p, &config, target).await
            };
            if let Err(e) = run.await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// CHECK: runs the list in order with the cached ADD result.
    pub async fn check(
        &self,
        list: &Value,
        target: &Target<'_>,
        runtime_config: &Value,
        result: &Value,
    ) -> Result<(), CniError> {
        for p in plugins(list)? {
            let config = plugin_config(list, p, Some(result), runtime_config)?;
            self.exec(Command::Check, p, &config, target).await?;
        }
        Ok(())
    }

    async fn exec(
        &self,
        command: Command,
        plugin: &Value,
        config: &Value,
        target: &Target<'_>,
    ) -> Result<Vec<u8>, CniError> {
        let kind = plugin_type(plugin)?.to_owned();
        let program = self.find(&kind)?;
        let cni_path = std::env::join_paths(&self.plugin_dirs)
            .map_err(|e| CniError::InvalidList(format!("plugin dirs: {e}")))?;
        let mut child = tokio::process::Command::new(&program)
            .env_clear()
            // Plugins run iptables and friends from PATH.
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", target.container_id)
            .env("CNI_NETNS", target.netns)
            .env("CNI_IFNAME", target.ifname)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CniError::Spawn {
                plugin: kind.clone(),
                source,
            })?;
        let started = std::time::Instant::now();
        let input = serde_json::to_vec(config).expect("a JSON value serialises");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let run = async {
            // A plugin that exits without reading its input closes the pipe: its answer
            // on stdout says why, so a write error is not the failure to report.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(PLUGIN_DEADLINE, run)
            .await
            .map_err(|_| CniError::Timeout {
                plugin: kind.clone(),
                command: command.as_str(),
                secs: PLUGIN_DEADLINE.as_secs(),
            })?
            .map_err(|source| CniError::Spawn {
                plugin: kind.clone(),
                source,
            })?;
        tracing::debug!(
            plugin = kind,
            command = command.as_str(),
            ms = started.elapsed().as_millis() as u64,
            "CNI plugin ran"
        );
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(plugin_error(&kind, command, &output))
    }
}

/// The error a failed plugin reported: its error object (spec: `code`, `msg`,
/// `details`), else its stderr, else its exit status.
fn plugin_error(kind: &str, command: Command, output: &std::process::Output) -> CniError {
    let parsed: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("msg"))
        .and_then(Value::as_str)
        .map(|m| {
            match parsed
                .as_ref()
                .and_then(|v| v.get("details"))
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                Some(d) => format!("{m}: {d}"),
                None => m.to_owned(),
            }
        })
        .or_else(|| {
            let err = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            (!err.is_empty()).then_some(err)
        })
        .unwrap_or_else(|| format!("it exited with {}", output.status));
    CniError::Plugin {
        plugin: kind.to_owned(),
        command: command.as_str(),
        msg,
        code,
    }
}

fn plugins(list: &Value) -> Result<&Vec<Value>, CniError> {
    list.get("plugins")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| CniError::InvalidList("it has no \"plugins\" array".to_owned()))
}

fn plugin_type(plugin: &Value) -> Result<&str, CniError> {
    plugin
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| CniError::InvalidList("a plugin has no \"type\"".to_owned()))
}

/// One plugin's stdin: its own keys, the list's `name` and `cniVersion`, `prevResult`,
/// and the `runtimeConfig` entries of the capabilities it declares.
fn plugin_config(
    list: &Value,
    plugin: &Value,
    prev: Option<&Value>,
    runtime_config: &Value,
) -> Result<Value, CniError> {
    let mut config: Map<String, Value> = plugin
        .as_object()
        .cloned()
        .ok_or_else(|| CniError::InvalidList("a plugin is not an object".to_owned()))?;
    for key in ["name", "cniVersion"] {
        let v = list
            .get(key)
            .cloned()
            .ok_or_else(|| CniError::InvalidList(format!("it has no {key:?}")))?;
        config.insert(key.to_owned(), v);
    }
    if let Some(prev) = prev {
        config.insert("prevResult".to_owned(), prev.clone());
    }
    let capabilities = plugin.get("capabilities").and_then(Value::as_object);
    let mut rc = Map::new();
    if let (Some(caps), Some(given)) = (capabilities, runtime_config.as_object()) {
        for (cap, on) in caps {
            if on.as_bool() == Some(true) {
                if let Some(v) = given.get(cap) {
                    rc.insert(cap.clone(), v.clone());
                }
            }
        }
    }
    if !rc.is_empty() {
        config.insert("runtimeConfig".to_owned(), Value::Object(rc));
    }
    config.remove("capabilities");
    Ok(Value::Object(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_config_passes_only_declared_capabilities() {
        let list = json!({
            "cniVersion": "1.0.0", "name": "n",
            "plugins": [
                {"type": "bridge"},
                {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}}
            ]
        });
        let rc = json!({"portMappings": [{"hostPort": 8080}], "bandwidth": {"ingressRate": 1}});
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let p = plugin_config(&list, &list["plugins"][1], Some(&prev), &rc).unwrap();
        assert_eq!(p["name"], "n");
        assert_eq!(p["cniVersion"], "1.0.0");
        assert_eq!(p["prevResult"], prev);
        assert_eq!(
            p["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080}]})
        );
        assert!(p.get("capabilities").is_none());
        let b = plugin_config(&list, &list["plugins"][0], None, &rc).unwrap();
        assert!(b.get("runtimeConfig").is_none() && b.get("prevResult").is_none());
    }

    #[test]
    fn a_plugin_type_is_a_file_name() {
        let cni = Cni::new(vec![PathBuf::from("/usr/lib/cni")]);
        for bad in ["", "../bin/sh", "a/b", ".hidden"] {
            assert!(
                matches!(cni.find(bad), Err(CniError::InvalidList(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn plugin_errors_carry_the_plugins_message() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: br#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"}"#.to_vec(),
            stderr: Vec::new(),
        };
        let e = plugin_error("bridge", Command::Add, &out);
        assert_eq!(e.to_string(), "CNI plugin bridge failed ADD: bad: why");
        let out = std::process::Output {
            stdout: Vec::new(),
            stderr: b"boom\n".to_vec(),
            ..out
        };
        assert!(plugin_error("x", Command::Del, &out)
            .to_string()
            .ends_with(": boom"));
    }
}
