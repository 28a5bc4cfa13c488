//! Resources next to the tools of a registry: static ones (a URI) and templates (a URI with
//! `{placeholders}`, each a parameter of the function), read through an async function that
//! returns text or a base64 blob. Changes of the set wake `watch_changes` receivers (MCP
//! `resources/list_changed`); `notify_updated(uri)` reaches `updates` subscribers (MCP
//! `resources/updated` for the sessions that subscribed to the URI).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalog::{self, CatalogError};
use super::error::{Error, Result};
use super::interest::Interest;
use super::registry::Registered;
use super::text::bounded;
use super::tool::{CallContext, Tool};
use super::uri_template::UriTemplate;

/// The longest resource URI (or template) accepted, in bytes.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// How many `updated` notifications may wait for a slow subscriber before it skips some.
const UPDATES_BACKLOG: usize = 1024;

/// What clients see of a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// The URI, or the URI template (with `{placeholders}`) of a template.
    pub uri: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// A resource's contents: text, or binary data as base64.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceBody {
    Text(String),
    Blob(String),
}

/// A registered resource or template.
pub struct Resource {
    spec: ResourceSpec,
    template: Option<UriTemplate>,
    reader: Arc<Registered>,
}

impl Resource {
    pub fn spec(&self) -> &ResourceSpec {
        &self.spec
    }

    pub fn is_template(&self) -> bool {
        self.template.is_some()
    }
}

/// The resources of one registry.
pub struct ResourceStore {
    entries: RwLock<BTreeMap<String, Arc<Resource>>>,
    changes: tokio::sync::watch::Sender<u64>,
    updates: tokio::sync::broadcast::Sender<String>,
    interest: Arc<Interest>,
}

impl Default for ResourceStore {
    fn default() -> Self {
        ResourceStore {
            entries: RwLock::default(),
            changes: catalog::changes(),
            updates: tokio::sync::broadcast::Sender::new(UPDATES_BACKLOG),
            interest: Arc::default(),
        }
    }
}

impl ResourceStore {
    /// Add a resource read by `reader`, whose input schema's parameters must be exactly the
    /// template's placeholders (all of them; a static resource's reader takes no required
    /// parameter). An existing resource of the same URI is an error unless `replace`.
    pub fn register(&self, spec: ResourceSpec, reader: Arc<dyn Tool>, replace: bool) -> Result<()> {
        if spec.uri.is_empty() {
            return Err(Error::Registration("resource URI must not be empty".into()));
        }
        if spec.uri.len() > MAX_URI_LEN {
            return Err(Error::Registration(format!(
                "resource URI '{}' is longer than {MAX_URI_LEN} bytes",
                bounded(&spec.uri, 64)
            )));
        }
        if let Some(why) = uri_problem(&spec.uri) {
            return Err(Error::Registration(format!(
                "resource URI '{}' {why}",
                bounded(&spec.uri, 200)
            )));
        }
        if spec.name.is_empty() {
            return Err(Error::Registration(format!(
                "resource '{}' needs a name",
                bounded(&spec.uri, 200)
            )));
        }
        let template = UriTemplate::parse(&spec.uri)?;
        let (props, required) = catalog::params(&reader.spec().input_schema);
        let vars: &[String] = template.as_ref().map(|t| t.vars()).unwrap_or(&[]);
        let what = || {
            if template.is_some() {
                format!("resource template '{}'", bounded(&spec.uri, 200))
            } else {
                format!("resource '{}'", bounded(&spec.uri, 200))
            }
        };
        if let Some(v) = vars.iter().find(|v| !props.iter().any(|(p, _)| p == *v)) {
            return Err(Error::Registration(format!(
                "{}: placeholder '{{{v}}}' is not a parameter of its function",
                what()
            )));
        }
        if let Some(r) = required.iter().find(|r| !vars.contains(r)) {
            return Err(Error::Registration(format!(
                "{}: its function's required parameter '{r}' is not a placeholder of the URI \
                 (give it a default, or add '{{{r}}}' to the URI)",
                what()
            )));
        }
        let reader = catalog::compile(reader)?;
        let entry = Arc::new(Resource {
            spec,
            template,
            reader,
        });
        {
            let mut m = self.entries.write();
            if !replace && m.contains_key(&entry.spec.uri) {
                return Err(Error::Registration(format!(
                    "a resource with URI '{}' is already registered",
                    bounded(&entry.spec.uri, 200)
                )));
            }
            m.insert(entry.spec.uri.clone(), entry);
        }
        catalog::bump(&self.changes);
        Ok(())
    }

    /// Remove the resource (or template) registered under `uri`; `true` if it was there.
    pub fn unregister(&self, uri: &str) -> bool {
        let removed = self.entries.write().remove(uri).is_some();
        if removed {
            catalog::bump(&self.changes);
        }
        removed
    }

    /// Static resources, sorted by URI.
    pub fn list(&self) -> Vec<ResourceSpec> {
        self.specs(false)
    }

    /// Templates, sorted by URI template.
    pub fn templates(&self) -> Vec<ResourceSpec> {
        self.specs(true)
    }

    fn specs(&self, templates: bool) -> Vec<ResourceSpec> {
        self.entries
            .read()
            .values()
            .filter(|r| r.is_template() == templates)
            .map(|r| r.spec.clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }

    /// The resource `uri` names: the static one of that URI, else the first template (by
    /// template text) matching it, with the template's variables.
    pub fn resolve(&self, uri: &str) -> Option<(Arc<Resource>, Map<String, Value>)> {
        if uri.len() > MAX_URI_LEN {
            return None;
        }
        let m = self.entries.read();
        if let Some(r) = m.get(uri).filter(|r| !r.is_template()) {
            return Some((r.clone(), Map::new()));
        }
        m.values().find_map(|r| {
            let vars = r.template.as_ref()?.matches(uri)?;
            Some((r.clone(), vars))
        })
    }

    /// Read `uri`: its resource's function called with the template's variables (strings
    /// turned into the parameters' types where they parse).
    pub async fn read(
        &self,
        uri: &str,
        ctx: CallContext,
    ) -> std::result::Result<(Arc<Resource>, ResourceBody), CatalogError> {
        let Some((res, mut args)) = self.resolve(uri) else {
            return Err(CatalogError::NotFound(format!(
                "Resource not found: {}",
                bounded(uri, 200)
            )));
        };
        catalog::coerce_strings(&res.reader.spec().input_schema, &mut args);
        let out = catalog::run(&res.reader, args, ctx)
            .await
            .map_err(|e| match e {
                CatalogError::InvalidParams(m) => {
                    CatalogError::InvalidParams(format!("resource '{}': {m}", bounded(uri, 200)))
                }
                other => other,
            })?;
        let body = match out {
            Value::String(s) => ResourceBody::Text(s),
            Value::Object(mut o) => match (o.remove("text"), o.remove("blob")) {
                (Some(Value::String(t)), None) => ResourceBody::Text(t),
                (None, Some(Value::String(b))) => ResourceBody::Blob(b),
                _ => return Err(bad_body(uri)),
            },
            _ => return Err(bad_body(uri)),
        };
        Ok((res, body))
    }

    /// Wakes on every change of the set of resources.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Tell subscribers that the contents of `uri` changed.
    pub fn notify_updated(&self, uri: &str) {
        // No receiver is fine: nobody is subscribed.
        let _ = self.updates.send(uri.to_string());
    }

    /// URIs passed to [`ResourceStore::notify_updated`] from now on.
    pub fn updates(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.updates.subscribe()
    }

    /// The URIs clients are subscribed to (the MCP server holds them).
    pub fn interest(&self) -> &Arc<Interest> {
        &self.interest
    }
}

/// What makes `uri` unusable as a resource URI (clients validate them): a scheme is required
/// (`scheme:`, RFC 3986), whitespace and control characters are refused.
fn uri_problem(uri: &str) -> Option<&'static str> {
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !scheme_ok {
        Some("has no scheme (e.g. 'file://notes' or 'notes://today')")
    } else if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else {
        None
    }
}

fn bad_body(uri: &str) -> CatalogError {
    CatalogError::Failed(Error::tool(
        format!("resource {}", bounded(uri, 200)),
        "a resource function must return str (text) or bytes (a blob)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{FnTool, ToolSpec};
    use serde_json::json;

    fn spec(uri: &str) -> ResourceSpec {
        ResourceSpec {
            uri: uri.into(),
            name: "n".into(),
            description: String::new(),
            mime_type: None,
        }
    }

    fn reader(schema: Value, f: fn(Value) -> Result<Value>) -> Arc<dyn Tool> {
        Arc::new(FnTool::sync(ToolSpec::new("r").input_schema(schema), f))
    }

    fn id_schema(t: &str) -> Value {
        json!({"type": "object", "properties": {"id": {"type": t}}, "required": ["id"]})
    }

    #[tokio::test]
    async fn static_and_template_reads() {
        let s = ResourceStore::default();
        s.register(spec("t://a"), reader(json!({}), |_| Ok(json!("A"))), false)
            .unwrap();
        s.register(
            spec("t://item/{id}"),
            reader(id_schema("integer"), |v| {
                Ok(json!({"blob": format!("{}", v["id"])}))
            }),
            false,
        )
        .unwrap();
        assert_eq!(s.list().len(), 1);
        assert_eq!(s.templates()[0].uri, "t://item/{id}");
        let (_, b) = s.read("t://a", CallContext::new()).await.unwrap();
        assert_eq!(b, ResourceBody::Text("A".into()));
        // "42" reached the function as the integer the schema asks for.
        let (_, b) = s.read("t://item/42", CallContext::new()).await.unwrap();
        assert_eq!(b, ResourceBody::Blob("42".into()));
        match s.read("t://item/x", CallContext::new()).await {
            Err(CatalogError::InvalidParams(m)) => {
                assert!(
                    m.starts_with("resource 't://item/x': ") && m.contains("id"),
                    "{m}"
                )
            }
            other => panic!("{:?}", other.map(|r| r.1)),
        }
        match s.read("t://nope", CallContext::new()).await {
            Err(CatalogError::NotFound(m)) => assert_eq!(m, "Resource not found: t://nope"),
            other => panic!("{:?}", other.map(|r| r.1)),
        }
    }

    #[tokio::test]
    async fn bad_results_and_failures() {
        let s = ResourceStore::default();
        s.register(spec("t://n"), reader(json!({}), |_| Ok(json!(3))), false)
            .unwrap();
        s.register(
            spec("t://e"),
            reader(json!({}), |_| Err(Error::tool("r", "boom"))),
            false,
        )
        .unwrap();
        match s.read("t://n", CallContext::new()).await {
            Err(CatalogError::Failed(e)) => assert!(e.to_string().contains("str (text) or bytes")),
            other => panic!("{:?}", other.map(|r| r.1)),
        }
        match s.read("t://e", CallContext::new()).await {
            Err(CatalogError::Failed(e)) => assert!(e.to_string().contains("boom")),
            other => panic!("{:?}", other.map(|r| r.1)),
        }
    }

    #[test]
    fn registration_checks_placeholders_against_parameters() {
        let s = ResourceStore::default();
        let e = s
            .register(
                spec("t://{id}/{other}"),
                reader(id_schema("string"), |_| Ok(json!(""))),
                false,
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("placeholder '{other}' is not a parameter"),
            "{e}"
        );
        let e = s
            .register(
                spec("t://static"),
                reader(id_schema("string"), |_| Ok(json!(""))),
                false,
            )
            .unwrap_err();
        assert!(e.to_string().contains("required parameter 'id'"), "{e}");
        let e = s
            .register(spec(""), reader(json!({}), |_| Ok(json!(""))), false)
            .unwrap_err();
        assert!(e.to_string().contains("must not be empty"), "{e}");
        for (bad, why) in [
            ("notes", "has no scheme"),
            ("{x}://a", "has no scheme"),
            ("1x://a", "has no scheme"),
            ("x://a b", "whitespace"),
            ("x://a\nb", "control"),
        ] {
            let e = s
                .register(spec(bad), reader(json!({}), |_| Ok(json!(""))), false)
                .unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        s.register(spec("t://x"), reader(json!({}), |_| Ok(json!(""))), false)
            .unwrap();
        let e = s
            .register(spec("t://x"), reader(json!({}), |_| Ok(json!(""))), false)
            .unwrap_err();
        assert!(e.to_string().contains("already registered"), "{e}");
        s.register(spec("t://x"), reader(json!({}), |_| Ok(json!(""))), true)
            .unwrap();
    }

    #[tokio::test]
    async fn changes_and_updates_are_announced() {
        let s = ResourceStore::default();
        let mut ch = s.watch_changes();
        ch.mark_unchanged();
        let mut up = s.updates();
        s.register(spec("t://a"), reader(json!({}), |_| Ok(json!(""))), false)
            .unwrap();
        assert!(ch.has_changed().unwrap());
        ch.mark_unchanged();
        assert!(s.unregister("t://a"));
        assert!(ch.has_changed().unwrap());
        ch.mark_unchanged();
        assert!(!s.unregister("t://a"));
        assert!(!ch.has_changed().unwrap());
        s.notify_updated("t://a");
        assert_eq!(up.recv().await.unwrap(), "t://a");
    }
}
