//! Which servers to mount: `PREFIX=COMMAND ARGS…` / `PREFIX=URL` specs (the CLI's
//! `--mcp-server`) and the config file format desktop hosts use:
//! `{"mcpServers": {"name": {"command", "args"?, "env"?, "cwd"?} | {"url", "headers"?},
//! "prefix"?}}` (the prefix defaults to the entry's name).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::Transport;
use crate::core::{Error, Result};

/// One server to mount.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerEntry {
    pub prefix: String,
    pub transport: Transport,
}

/// `PREFIX=COMMAND ARGS…` (shell-style quoting) or `PREFIX=http(s)://…`.
pub fn parse_server_spec(spec: &str) -> Result<ServerEntry> {
    let bad = |why: &str| Error::Runtime(format!("--mcp-server {spec:?}: {why}"));
    let (prefix, rest) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected PREFIX=COMMAND... or PREFIX=URL"))?;
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(bad("nothing after '='"));
    }
    let transport = if rest.starts_with("http://") || rest.starts_with("https://") {
        Transport::http(rest)
    } else {
        let words = shlex::split(rest).ok_or_else(|| bad("unbalanced quotes"))?;
        let mut it = words.into_iter();
        let command = it.next().ok_or_else(|| bad("no command"))?;
        Transport::stdio(command, it.collect())
    };
    Ok(ServerEntry {
        prefix: prefix.trim().to_string(),
        transport,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    cwd: Option<std::path::PathBuf>,
    url: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    prefix: Option<String>,
    /// Desktop configs mark the transport; it is implied by command/url here.
    #[serde(rename = "type")]
    _kind: Option<String>,
    /// Desktop hosts' switch to keep an entry without loading it.
    #[serde(default)]
    disabled: bool,
}

/// Parse a config document; `origin` names it in errors.
pub fn parse_config(text: &str, origin: &str) -> Result<Vec<ServerEntry>> {
    let bad = |why: String| Error::Runtime(format!("{origin}: {why}"));
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let servers = doc
        .get("mcpServers")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("expected an object with an \"mcpServers\" object".into()))?;
    let mut out = Vec::new();
    for (name, v) in servers {
        let e: Entry = serde_json::from_value(v.clone())
            .map_err(|e| bad(format!("mcpServers.{name}: {e}")))?;
        if e.disabled {
            continue;
        }
        let transport = match (e.command, e.url) {
            (Some(command), None) => Transport::Stdio {
                command,
                args: e.args,
                env: e.env.into_iter().collect(),
                cwd: e.cwd,
            },
            (None, Some(url)) => Transport::Http {
                url,
                headers: e.headers.into_iter().collect(),
            },
            _ => {
                return Err(bad(format!(
                    "mcpServers.{name}: give exactly one of \"command\" or \"url\""
                )))
            }
        };
        out.push(ServerEntry {
            prefix: e.prefix.unwrap_or_else(|| name.clone()),
            transport,
        });
    }
    Ok(out)
}

/// Mount every entry into `registry`; on a failure the ones already mounted are closed again.
pub async fn mount_all(
    registry: &crate::core::Registry,
    entries: Vec<ServerEntry>,
) -> Result<Vec<super::Mount>> {
    let mut done: Vec<super::Mount> = Vec::with_capacity(entries.len());
    for e in entries {
        match super::mount(registry, &e.prefix, e.transport).await {
            Ok(m) => done.push(m),
            Err(err) => {
                for m in &done {
                    m.close().await;
                }
                return Err(err);
            }
        }
    }
    Ok(done)
}

pub fn load_config(path: &Path) -> Result<Vec<ServerEntry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Runtime(format!("cannot read {}: {e}", path.display())))?;
    parse_config(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_configs_parse() {
        let s = parse_server_spec("fs=npx -y '@x/server fs' /tmp").unwrap();
        assert_eq!(s.prefix, "fs");
        assert_eq!(
            s.transport,
            Transport::stdio(
                "npx",
                vec!["-y".into(), "@x/server fs".into(), "/tmp".into()]
            )
        );
        let h = parse_server_spec("=http://127.0.0.1:1/mcp").unwrap();
        assert_eq!(
            (h.prefix.as_str(), h.transport),
            ("", Transport::http("http://127.0.0.1:1/mcp"))
        );
        assert!(parse_server_spec("nope").is_err());
        assert!(parse_server_spec("a=").is_err());

        let c = parse_config(
            r#"{"mcpServers": {"files": {"command": "srv", "args": ["-v"], "env": {"K": "V"}},
                "web": {"url": "http://h/mcp", "headers": {"A": "b"}, "prefix": ""},
                "off": {"command": "x", "disabled": true}}}"#,
            "cfg",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].prefix, "files");
        assert_eq!(c[1].prefix, "");
        let err = parse_config(
            r#"{"mcpServers": {"x": {"command": "a", "url": "b"}}}"#,
            "cfg",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("mcpServers.x") && err.contains("exactly one"),
            "{err}"
        );
        let err = parse_config(r#"{"mcpServers": {"x": {"comand": "a"}}}"#, "cfg").unwrap_err();
        assert!(err.to_string().contains("comand"), "{err}");
    }
}
