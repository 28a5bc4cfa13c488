//! Tools implemented in Rust and shipped with the runtime.

pub mod diag;
