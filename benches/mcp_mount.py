"""MCP mount area (issue 16): the cost of going through a mounted upstream.

Rows (per-call latency, one call in flight; p50 as the value, p99 in the note):
- gateway: the SDK's ``mcp.Client`` calling ``echo`` straight on an upstream (``MCPServer``
  over streamable HTTP, baseline A) vs through ``agent-runtime --mcp-server up=URL serve
  --mcp-http`` in front of it (ratio = gateway overhead).
- mounted call: ``ClientSession.call_tool`` (``mcp.Client``) to the upstream over stdio
  (baseline B) vs ``agent_runtime.call("up.echo")`` of the same server mounted with
  ``mount_mcp`` (stdio).

Run alone: ``python -m benches --area mcp_mount``.
"""

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

from .common import REPO_ROOT, Row, free_port, timed_awaits

AREA = "mcp_mount"
UPSTREAM = str(REPO_ROOT / "tests" / "mcphost_upstream.py")
ARGS: Dict[str, Any] = {"text": "hello"}


def _wait_port(port: int, proc: "subprocess.Popen[bytes]") -> None:
    end = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("server did not start")
            time.sleep(0.1)


def _env() -> Dict[str, str]:
    import agent_runtime

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))
    return dict(os.environ, PYTHONPATH=pkg_parent)


def _row(name: str, samples: List[float], **kw: Any) -> Row:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return Row(
        area=AREA, name=name, value=statistics.median(s), samples=s, batch=1,
        note=f"p50 {statistics.median(s) / 1e3:.0f} µs, p99 {p99 / 1e3:.0f} µs", **kw,
    )  # fmt: skip


def _client_samples(target: Any, n: int) -> List[float]:
    from mcp import Client

    async def go() -> List[float]:
        async with Client(target) as c:
            return await timed_awaits(lambda: c.call_tool("echo", ARGS), n, warmup=max(5, n // 10))

    return asyncio.run(go())


def run(quick: bool) -> List[Row]:
    import agent_runtime as ar

    from mcp import StdioServerParameters

    n = 200 if quick else 2000
    rows: List[Row] = []
    up_port, gw_port = free_port(), free_port()
    up = subprocess.Popen(
        [sys.executable, UPSTREAM, "http", str(up_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    gw = None
    try:
        _wait_port(up_port, up)
        up_url = f"http://127.0.0.1:{up_port}/mcp"
        gw = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime", "--mcp-server", "=" + up_url, "serve", "--mcp-http",
             f"127.0.0.1:{gw_port}"],
            env=_env(), stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(gw_port, gw)
        direct = _client_samples(up_url, n)
        via = _client_samples(f"http://127.0.0.1:{gw_port}/mcp", n)
        rows.append(_row("tools/call direct to upstream (HTTP)", direct, tag="A"))
        rows.append(_row("tools/call through the gateway (HTTP)", via, baseline="A",
                         baseline_value=statistics.median(direct)))  # fmt: skip
    finally:
        for p in (gw, up):
            if p is not None:
                p.terminate()
                p.wait(15)

    params = StdioServerParameters(command=sys.executable, args=[UPSTREAM, "stdio"])
    sdk = _client_samples(params, n)
    reg = ar.Registry()
    with ar.mount_mcp("up", command=sys.executable, args=[UPSTREAM, "stdio"], registry=reg):
        for _ in range(max(5, n // 10)):
            reg.call("up.echo", ARGS)
        mounted = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            reg.call("up.echo", ARGS)
            mounted.append(float(time.perf_counter_ns() - t0))
    rows.append(_row("ClientSession.call_tool (stdio)", sdk, tag="B"))
    rows.append(_row("mounted call() (stdio)", mounted, baseline="B", baseline_value=statistics.median(sdk)))
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(f"{r.name:45} {r.note}")
