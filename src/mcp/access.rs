//! Which `Host` and `Origin` headers the MCP HTTP endpoint serves (DNS-rebinding and
//! cross-site protection, as the streamable-HTTP transport spec asks).
//!
//! Hosts: the loopback names (any port) and each `--mcp-allowed-host HOST[:PORT]`. Origins (a
//! request without one — not from a browser — passes): the loopback origins of the bound port,
//! the origins of each allowed host, and each `--mcp-allowed-origin`.

use std::str::FromStr;

use axum::http::header::{HOST, ORIGIN};
use axum::http::uri::{Authority, Uri};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::jsonrpc::quote;

const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A host name (lower case, IPv6 without brackets) and port (`None`: any port).
#[derive(Debug, Clone, PartialEq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

fn host_port(authority: &str) -> Option<HostPort> {
    if let Ok(ip) = authority.parse::<std::net::Ipv6Addr>() {
        // A bare IPv6 address (an allow-list entry): no port.
        return Some(HostPort {
            host: ip.to_string(),
            port: None,
        });
    }
    let a = Authority::from_str(authority).ok()?;
    if authority.contains('@') {
        return None; // userinfo never belongs in Host or Origin
    }
    let host = a.host().trim_start_matches('[').trim_end_matches(']');
    Some(HostPort {
        host: host.to_ascii_lowercase(),
        port: a.port_u16(),
    })
}

/// A browser origin: `null`, or scheme + host + port (`None`: any port, allow lists only).
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Parse an `Origin` value, or an allow-list entry when `wildcard` (then `:*` means any port).
fn parse_origin(value: &str, wildcard: bool) -> Option<Origin> {
    let value = value.trim();
    if value == "null" {
        return Some(Origin::Null);
    }
    let (value, any_port) = match value.strip_suffix(":*") {
        Some(v) if wildcard => (v, true),
        _ => (value, false),
    };
    let uri = Uri::from_str(value).ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    // An origin is scheme://host[:port] and nothing else.
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || value.ends_with('/') {
        return None;
    }
    let hp = host_port(authority.as_str())?;
    if any_port && hp.port.is_some() {
        return None;
    }
    let port = if any_port {
        None
    } else {
        Some(hp.port.or_else(|| default_port(&scheme))?)
    };
    Some(Origin::Tuple {
        scheme,
        host: hp.host,
        port,
    })
}

fn origin_matches(allowed: &Origin, given: &Origin) -> bool {
    match (allowed, given) {
        (Origin::Null, Origin::Null) => true,
        (
            Origin::Tuple {
                scheme: s1,
                host: h1,
                port: p1,
            },
            Origin::Tuple {
                scheme: s2,
                host: h2,
                port: p2,
            },
        ) => s1 == s2 && h1 == h2 && (p1.is_none() || p1 == p2),
        _ => false,
    }
}

/// The endpoint's Host and Origin allow lists.
#[derive(Debug, Clone)]
pub struct Access {
    hosts: Vec<HostPort>,
    origins: Vec<Origin>,
}

impl Access {
    /// Allow lists for a server bound to `port`; an invalid entry is an error naming its flag.
    pub fn new(
        port: u16,
        allowed_hosts: &[String],
        allowed_origins: &[String],
    ) -> Result<Self, (&'static str, String)> {
        let mut hosts: Vec<HostPort> = LOOPBACK
            .iter()
            .map(|h| HostPort {
                host: (*h).into(),
                port: None,
            })
            .collect();
        let mut origins = Vec::new();
        for h in LOOPBACK {
            for scheme in ["http", "https"] {
                origins.push(Origin::Tuple {
                    scheme: scheme.into(),
                    host: h.into(),
                    port: Some(port),
                });
            }
        }
        for raw in allowed_hosts {
            let hp = host_port(raw.trim()).ok_or_else(|| {
                (
                    "--mcp-allowed-host",
                    format!("{} is not HOST or HOST:PORT", quote(raw)),
                )
            })?;
            for scheme in ["http", "https"] {
                origins.push(Origin::Tuple {
                    scheme: scheme.into(),
                    host: hp.host.clone(),
                    port: hp.port,
                });
            }
            hosts.push(hp);
        }
        for raw in allowed_origins {
            origins.push(parse_origin(raw, true).ok_or_else(|| {
                (
                    "--mcp-allowed-origin",
                    format!(
                        "{} is not SCHEME://HOST[:PORT], SCHEME://HOST:* or null",
                        quote(raw)
                    ),
                )
            })?);
        }
        Ok(Access { hosts, origins })
    }

    /// The allowed `Host` names, for rmcp's own check (same rule: a portless name, any port).
    pub fn host_names(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| {
                let host = if h.host.contains(':') {
                    format!("[{}]", h.host)
                } else {
                    h.host.clone()
                };
                match h.port {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                }
            })
            .collect()
    }

    /// `Err(response)` when the request's Host or Origin is not allowed.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Response> {
        let host = match headers.get(HOST) {
            Some(v) => v.to_str().ok().map(str::to_owned),
            None => uri.authority().map(|a| a.as_str().to_owned()),
        };
        let Some(host) = host else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Bad Request: missing or unreadable Host header".into(),
            ));
        };
        let ok = host_port(&host).is_some_and(|given| {
            self.hosts
                .iter()
                .any(|a| a.host == given.host && (a.port.is_none() || a.port == given.port))
        });
        if !ok {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden: Host {} is not allowed (loopback names and --mcp-allowed-host \
                     values are)",
                    quote(&host)
                ),
            ));
        }
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(origin.as_bytes());
        let ok = parse_origin(&text, false)
            .is_some_and(|given| self.origins.iter().any(|a| origin_matches(a, &given)));
        if ok {
            return Ok(());
        }
        Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden: Origin {} is not allowed (this server's loopback origins and \
                 --mcp-allowed-host / --mcp-allowed-origin values are)",
                quote(&text)
            ),
        ))
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    log::debug!("MCP HTTP: {message}");
    (status, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    fn status(a: &Access, host: &str, origin: Option<&str>) -> u16 {
        match a.check(&headers(host, origin), &Uri::from_static("/mcp")) {
            Ok(()) => 200,
            Err(r) => r.status().as_u16(),
        }
    }

    #[test]
    fn loopback_hosts_and_origins_of_the_bound_port() {
        let a = Access::new(8123, &[], &[]).unwrap();
        assert_eq!(status(&a, "127.0.0.1:8123", None), 200);
        assert_eq!(status(&a, "localhost", None), 200);
        assert_eq!(status(&a, "[::1]:9", None), 200);
        assert_eq!(status(&a, "LOCALHOST:8123", None), 200);
        assert_eq!(status(&a, "evil.example.com", None), 403);
        assert_eq!(status(&a, "localhost.evil.com:8123", None), 403);
        assert_eq!(status(&a, "user@localhost:8123", None), 403);
        for ok in [
            "http://localhost:8123",
            "http://127.0.0.1:8123",
            "http://[::1]:8123",
            "https://localhost:8123",
        ] {
            assert_eq!(status(&a, "localhost:8123", Some(ok)), 200, "{ok}");
        }
        for bad in [
            "http://evil.example.com",
            "http://localhost:8124",
            "http://localhost",
            "null",
            "http://localhost:8123/path",
            "localhost:8123",
            "",
            "http://localhost:8123.evil.com",
        ] {
            assert_eq!(status(&a, "localhost:8123", Some(bad)), 403, "{bad}");
        }
    }

    #[test]
    fn allowed_hosts_and_origins() {
        let a = Access::new(
            80,
            &["mcp.example.com".into(), "other.example.com:8443".into()],
            &[
                "https://app.example.com".into(),
                "http://dev.example.com:*".into(),
                "null".into(),
            ],
        )
        .unwrap();
        assert_eq!(status(&a, "mcp.example.com:1234", None), 200);
        assert_eq!(status(&a, "other.example.com:8443", None), 200);
        assert_eq!(status(&a, "other.example.com:8444", None), 403);
        let h = "mcp.example.com";
        assert_eq!(status(&a, h, Some("https://mcp.example.com:9")), 200);
        assert_eq!(status(&a, h, Some("https://other.example.com:8443")), 200);
        assert_eq!(status(&a, h, Some("https://other.example.com")), 403);
        assert_eq!(status(&a, h, Some("https://app.example.com")), 200);
        assert_eq!(status(&a, h, Some("https://app.example.com:443")), 200);
        assert_eq!(status(&a, h, Some("https://app.example.com:444")), 403);
        assert_eq!(status(&a, h, Some("http://app.example.com")), 403);
        assert_eq!(status(&a, h, Some("http://dev.example.com:3000")), 200);
        assert_eq!(status(&a, h, Some("null")), 200);
    }

    #[test]
    fn bad_entries_name_their_flag() {
        let (flag, e) = Access::new(1, &["a b".into()], &[]).unwrap_err();
        assert_eq!(flag, "--mcp-allowed-host");
        assert!(e.contains("\"a b\""), "{e}");
        for bad in [
            "example.com",
            "https://x.com/path",
            "https://x.com:1:*",
            "ftp//x",
        ] {
            let (flag, _) = Access::new(1, &[], &[bad.into()]).unwrap_err();
            assert_eq!(flag, "--mcp-allowed-origin", "{bad}");
        }
    }

    #[test]
    fn host_names_for_rmcp() {
        let a = Access::new(1, &["h:5".into()], &[]).unwrap();
        assert_eq!(a.host_names(), ["localhost", "127.0.0.1", "[::1]", "h:5"]);
    }
}
