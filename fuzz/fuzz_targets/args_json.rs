//! JSON argument text → parse → schema validation → echo call (see `agent_runtime_fuzz::args_json`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agent_runtime_fuzz::args_json(data));
