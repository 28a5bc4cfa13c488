"""Helpers of the ``grpc`` benchmark area, run in their own processes.

- ``echo_impl``: the plain ``echo(value) -> value`` function (no agent_runtime import), used by
  the design note's Python server and by the subprocess-per-call approach.
- ``ours_tools``: imported by ``agent-runtime serve``; registers ``bench.echo`` (Python) and the
  ``diag.*`` Rust tools (``diag.echo``).
- ``note_server``: the design note's grpcio ``PythonServiceServicer``, served with
  ``grpc.server(futures.ThreadPoolExecutor(max_workers=10))``.
"""
