use crate::core::{Registry, Result};
pub fn register(_r: &Registry) -> Result<()> { Ok(()) }
