//! Named sessions.

use std::collections::HashMap;
use std::sync::Arc;

use super::options::SessionOptions;
use super::session::ShellSession;
use crate::core::{Error, Result};

/// Named sessions.
#[derive(Default)]
pub struct SessionManager {
    sessions: parking_lot::Mutex<HashMap<String, Arc<ShellSession>>>,
}

impl SessionManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a session called `name`; fails if a live one of that name exists (one whose
    /// shell exited or was given up is replaced).
    pub async fn create(&self, name: &str, opts: &SessionOptions) -> Result<String> {
        let old = {
            let mut map = self.sessions.lock();
            match map.get(name) {
                Some(s) if s.is_alive() => return Err(exists(name)),
                Some(_) => map.remove(name),
                None => None,
            }
        };
        if let Some(old) = old {
            old.close().await;
        }
        let (s, out) = ShellSession::start(opts).await?;
        let clash = {
            let mut map = self.sessions.lock();
            if map.contains_key(name) {
                true
            } else {
                map.insert(name.to_string(), s.clone());
                false
            }
        };
        if clash {
            s.close().await;
            return Err(exists(name));
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<Arc<ShellSession>> {
        self.sessions
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| missing(name))
    }

    /// Names of the sessions that can still run commands.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, s)| s.is_alive())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    pub async fn close(&self, name: &str) -> Result<()> {
        let s = self
            .sessions
            .lock()
            .remove(name)
            .ok_or_else(|| missing(name))?;
        s.close().await;
        Ok(())
    }

    pub async fn close_all(&self) {
        let all: Vec<_> = self.sessions.lock().drain().map(|(_, s)| s).collect();
        for s in all {
            s.close().await;
        }
    }
}

fn exists(name: &str) -> Error {
    Error::tool(
        "shell.session.create",
        format!("session '{name}' already exists"),
    )
}

fn missing(name: &str) -> Error {
    Error::Tool {
        tool: "shell.session".into(),
        message: format!("session '{name}' does not exist"),
    }
}
