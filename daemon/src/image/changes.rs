//! Config changes given with an import (`docker import --change 'CMD ["sh"]'`): the
//! Dockerfile instructions that only set an image's defaults, applied to a
//! [`RunConfig`].
//!
//! Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME and
//! WORKDIR here. boxd applies all but ONBUILD (there is no build) and VOLUME (an image
//! does not declare anonymous volumes in boxd), which are refused by name rather than
//! dropped, and STOPSIGNAL besides. CMD and ENTRYPOINT take the JSON (exec) form or
//! the shell form (`/bin/sh -c "..."`), as in a Dockerfile.

use super::oci::RunConfig;

/// An instruction that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid change {change:?}: {reason}")]
pub struct ChangeError {
    pub change: String,
    pub reason: String,
}

/// Applies each change in order to `config`.
pub fn apply(config: &mut RunConfig, changes: &[String]) -> Result<(), ChangeError> {
    for change in changes.iter().filter(|c| !c.trim().is_empty()) {
        apply_one(config, change.trim()).map_err(|reason| ChangeError {
            change: change.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn apply_one(config: &mut RunConfig, change: &str) -> Result<(), String> {
    let (word, rest) = change
        .split_once(|c: char| c.is_ascii_whitespace())
        .map_or((change, ""), |(w, r)| (w, r.trim()));
    let need_value = || {
        if rest.is_empty() {
            Err(format!("{} needs a value", word.to_ascii_uppercase()))
        } else {
            Ok(())
        }
    };
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            need_value()?;
            config.cmd = Some(command(rest)?);
        }
        "ENTRYPOINT" => {
            need_value()?;
            config.entrypoint = Some(command(rest)?);
        }
        "ENV" => {
            need_value()?;
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs(rest, "ENV")? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            need_value()?;
            let labels = config.labels.get_or_insert_with(Default::default);
            for (k, v) in pairs(rest, "LABEL")? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            need_value()?;
            let ports = config.exposed_ports.get_or_insert_with(Default::default);
            for p in rest.split_ascii_whitespace() {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                if port.parse::<u16>().map_or(true, |n| n == 0)
                    || !matches!(proto, "tcp" | "udp" | "sctp")
                {
                    return Err(format!(
                        "EXPOSE takes PORT[/tcp|udp|sctp] with a port from 1 to 65535, not {p:?}"
                    ));
                }
                ports.insert(format!("{port}/{proto}"), serde_json::json!({}));
            }
        }
        "USER" => {
            need_value()?;
            config.user = Some(rest.to_owned());
        }
        "WORKDIR" => {
            need_value()?;
            if !rest.starts_with('/') {
                return Err("WORKDIR must be an absolute path".into());
            }
            config.working_dir = Some(rest.to_owned());
        }
        "STOPSIGNAL" => {
            need_value()?;
            config.stop_signal = Some(rest.to_owned());
        }
        "VOLUME" => {
            return Err(
                "VOLUME is not supported by boxd: images declare no volumes; \
                 mount one when the container is created (-v NAME:/path)"
                    .into(),
            )
        }
        "ONBUILD" => return Err("ONBUILD is not supported: boxd builds no images".into()),
        other => {
            return Err(format!(
                "{other} cannot be changed; use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, \
                 STOPSIGNAL, USER or WORKDIR"
            ))
        }
    }
    Ok(())
}

/// `["a", "b"]` (exec form) or `a b` (shell form, run by `/bin/sh -c`).
fn command(rest: &str) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        if let Ok(args) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(args);
        }
        // As in a Dockerfile, a value that is not a JSON array of strings is the
        // shell form.
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
}

/// `k=v k2="v 2"` pairs, or the legacy single `k v` form.
fn pairs(rest: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest)?;
    if words.iter().all(|w| w.contains('=')) {
        return words
            .into_iter()
            .map(|w| {
                let (k, v) = w.split_once('=').expect("checked above");
                if k.is_empty() {
                    Err(format!("{what} has an empty name in {rest:?}"))
                } else {
                    Ok((k.to_owned(), v.to_owned()))
                }
            })
            .collect();
    }
    // `ENV NAME value with spaces`: the first word is the name, the rest its value.
    let (k, v) = rest
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or_else(|| format!("{what} takes NAME=VALUE or NAME VALUE, not {rest:?}"))?;
    if k.contains('=') {
        return Err(format!("{what} takes NAME=VALUE pairs, not {rest:?}"));
    }
    Ok(vec![(k.to_owned(), v.trim().to_owned())])
}

/// Words split on blanks, with `"..."` and `'...'` quoting and `\` escapes.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_ascii_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in {s:?}"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Result<RunConfig, ChangeError> {
        let mut c = RunConfig::default();
        apply(
            &mut c,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(c)
    }

    #[test]
    fn commands_take_the_exec_and_the_shell_form() {
        let c = applied(&[r#"CMD ["echo", "hi"]"#, "ENTRYPOINT /bin/run --x"]).unwrap();
        assert_eq!(c.cmd.unwrap(), ["echo", "hi"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/bin/run --x"]);
    }

    #[test]
    fn env_and_labels_take_pairs_and_the_legacy_form() {
        let c = applied(&[
            r#"ENV A=1 B="two words""#,
            "ENV C three words",
            "ENV A=replaced",
            "LABEL org.x=y",
        ])
        .unwrap();
        assert_eq!(
            c.env.unwrap(),
            ["B=two words", "C=three words", "A=replaced"]
        );
        assert_eq!(c.labels.unwrap()["org.x"], "y");
    }

    #[test]
    fn ports_user_workdir_and_stop_signal() {
        let c = applied(&[
            "EXPOSE 80 53/udp",
            "USER 1000:1000",
            "WORKDIR /srv",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    }

    #[test]
    fn what_cannot_be_applied_is_refused_by_name() {
        for (change, says) in [
            ("VOLUME /data", "VOLUME is not supported"),
            ("ONBUILD RUN x", "ONBUILD"),
            ("RUN make", "RUN cannot be changed"),
            ("EXPOSE 0", "EXPOSE takes"),
            ("EXPOSE 80/icmp", "EXPOSE takes"),
            ("WORKDIR srv", "absolute"),
            ("CMD", "CMD needs a value"),
            ("ENV A=\"open", "unterminated"),
        ] {
            let e = applied(&[change]).unwrap_err();
            assert!(e.to_string().contains(says), "{change}: {e}");
        }
    }
}
