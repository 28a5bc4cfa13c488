//! Tools implemented in Rust and shipped with the runtime.

pub mod diag;
pub mod shell;

use crate::core::{Error, Registry, Result};

/// Names accepted by [`register_groups`].
pub const GROUPS: &[&str] = &["diag", "shell"];

/// Register the built-in tool groups named in `groups` (see [`GROUPS`]) into `registry`.
pub fn register_groups(registry: &Registry, groups: &[&str]) -> Result<()> {
    for g in groups {
        match *g {
            "diag" => diag::register(registry)?,
            "shell" => shell::register(registry)?,
            other => {
                return Err(Error::Registration(format!(
                    "unknown built-in tool group {other:?} (valid: {})",
                    GROUPS.join(", ")
                )))
            }
        }
    }
    Ok(())
}
