//! Worker-pool framing: byte stream → frames → replies; requests → frames → back (see
//! `agent_runtime_fuzz::worker_frame`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agent_runtime_fuzz::worker_frame(data));
