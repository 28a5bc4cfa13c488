"""Process-wide settings for the test suite (pytest imports this before any test module)."""

import os

# grpcio's fork handlers can deadlock a child forked while grpc's own threads hold their locks
# (seen: the fork that starts a shell session's bash hung in grpc's post-fork handler after the
# gRPC tests had run in the same process). The suite forks from Rust threads (shell sessions,
# worker processes) in a process that also imports grpcio, so turn its fork support off, as
# grpcio documents for programs that fork but do not use gRPC in the child.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
