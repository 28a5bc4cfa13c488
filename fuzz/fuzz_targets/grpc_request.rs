//! Protobuf request bytes → decode → the PythonService handler (see `agent_runtime_fuzz::grpc_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agent_runtime_fuzz::grpc_request(data));
