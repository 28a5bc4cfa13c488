"""MCP area: the same Python ``echo(value) -> value`` tool served by our server
(``agent-runtime serve --mcp-stdio`` / ``--mcp-http``) and by the MCP Python SDK's own server
(``MCPServer``, formerly FastMCP), called by the same client (the SDK's ``mcp.Client``) in the
bench process.

Rows: sequential ``tools/call`` latency and throughput with 32 calls in flight, over stdio and
streamable HTTP. Baselines are the SDK server's rows of the same transport and kind; targets:
ours must beat them (ratio < 1). Needs Python 3.10+ and the ``mcp`` package.
"""

import asyncio
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Tuple

from .common import REPO_ROOT, Row, Target, row_from_samples

AREA = "mcp"
SUPPORT = Path(__file__).resolve().parent / "mcp_support"
VALUE: Dict[str, Any] = {"k": "v", "n": 1}
CONCURRENCY = 32
START_TIMEOUT = 60.0


def _env() -> Dict[str, str]:
    import agent_runtime

    e = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))
    e["PYTHONPATH"] = os.pathsep.join([pkg_parent, str(SUPPORT), str(REPO_ROOT)])
    e.pop("AGENT_RUNTIME_TOKEN", None)
    return e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ours_cmd(*serve: str) -> List[str]:
    return [sys.executable, "-m", "agent_runtime", "--import", "echo_tools", "serve", *serve]


def _sdk_cmd(*args: str) -> List[str]:
    return [sys.executable, str(SUPPORT / "sdk_server.py"), *args]


@contextlib.contextmanager
def _http_server(cmd: List[str], url: str, ours: bool):
    """Start a server process; for ours, read the bound address from stderr."""
    p = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE if ours else subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        if ours:
            assert p.stderr is not None
            lines = []
            while time.monotonic() < deadline:
                line = p.stderr.readline()
                if not line:
                    raise RuntimeError("our MCP server exited: " + "".join(lines))
                lines.append(line)
                m = re.search(r"listening on (\S+)", line)
                if m:
                    url = m.group(1)
                    break
            else:
                raise RuntimeError("our MCP server did not report its address")
            # Keep draining stderr so the server never blocks on a full pipe.
            import threading

            threading.Thread(target=lambda: [None for _ in p.stderr or []], daemon=True).start()
        else:
            host_port = url.split("//", 1)[1].split("/", 1)[0]
            host, port = host_port.rsplit(":", 1)
            while time.monotonic() < deadline:
                try:
                    socket.create_connection((host, int(port)), timeout=0.5).close()
                    break
                except OSError:
                    if p.poll() is not None:
                        raise RuntimeError("the SDK server exited") from None
                    time.sleep(0.1)
        yield url
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def _check(client: Any, label: str) -> None:
    r = await client.call_tool("echo", {"value": VALUE})
    # The SDK wraps a dict-typed result as {"result": ...}; ours passes an object through.
    if r.is_error or r.structured_content not in (VALUE, {"result": VALUE}):
        raise RuntimeError(f"{label}: echo returned {r!r}")


async def _sequential_batch(client: Any, n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await client.call_tool("echo", {"value": VALUE})
    return (time.perf_counter_ns() - t0) / n


async def _concurrent_batch(client: Any, n: int) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with sem:
            r = await client.call_tool("echo", {"value": VALUE})
            if r.is_error:
                raise RuntimeError(f"echo failed: {r!r}")

    t0 = time.perf_counter_ns()
    await asyncio.gather(*[one() for _ in range(n)])
    return (time.perf_counter_ns() - t0) / n


async def _measure(
    clients: Dict[str, Any], batch: Callable[[Any, int], Awaitable[float]], n: int, batches: int
) -> Dict[str, List[float]]:
    out: Dict[str, List[float]] = {k: [] for k in clients}
    for c in clients.values():  # warmup
        await batch(c, max(5, n // 4))
    for _ in range(batches):  # round-robin so drift hits every server alike
        for k, c in clients.items():
            out[k].append(await batch(c, n))
    return out


TARGETS: List[Tuple[str, str, str]] = [
    ("sdk_stdio", "stdio", "MCP SDK's MCPServer (Python)"),
    ("ours_stdio", "stdio", "ours (agent-runtime serve --mcp-stdio)"),
    ("sdk_http", "http", "MCP SDK's MCPServer (Python, uvicorn)"),
    ("ours_http", "http", "ours (agent-runtime serve --mcp-http)"),
]


async def _run_async(quick: bool) -> List[Row]:
    from mcp import Client, StdioServerParameters

    seq_n, seq_batches = (20, 5) if quick else (50, 9)
    con_n, con_batches = (100, 5) if quick else (300, 9)
    port = _free_port()
    with _http_server(_sdk_cmd("http", str(port)), f"http://127.0.0.1:{port}/mcp", ours=False) as sdk_url, \
            _http_server(_ours_cmd("--mcp-http", "127.0.0.1:0"), "", ours=True) as ours_url:  # fmt: skip
        async with contextlib.AsyncExitStack() as stack:
            env = _env()
            clients = {
                "sdk_stdio": Client(StdioServerParameters(command=sys.executable, args=_sdk_cmd("stdio")[1:], env=env)),
                "ours_stdio": Client(
                    StdioServerParameters(command=sys.executable, args=_ours_cmd("--mcp-stdio")[1:], env=env)
                ),
                "sdk_http": Client(sdk_url),
                "ours_http": Client(ours_url),
            }
            for k, c in clients.items():
                await stack.enter_async_context(c)
                await _check(c, k)
            seq = await _measure(clients, _sequential_batch, seq_n, seq_batches)
            con = await _measure(clients, _concurrent_batch, con_n, con_batches)

    rows: List[Row] = []
    tags = {"sdk_stdio": ("M", "N"), "sdk_http": ("H", "K")}
    for kind, data, n, what in (
        ("seq", seq, seq_n, "sequential tools/call latency"),
        ("con", con, con_n, f"tools/call with {CONCURRENCY} in flight, time per call"),
    ):
        by_key: Dict[str, Row] = {}
        for key, transport, label in TARGETS:
            r = row_from_samples(
                AREA,
                f"{what} ({transport}): {label}",
                data[key],
                n,
                note="mcp.Client (Python SDK) in the bench process, Python echo tool, "
                f"{statistics.median(data[key]) / 1e3:.0f} \u00b5s median",
            )
            by_key[key] = r
        for key, transport, _label in TARGETS:
            if key.startswith("sdk"):
                by_key[key].tag = tags[key][0 if kind == "seq" else 1]
        for key, transport, _label in TARGETS:
            if key.startswith("ours"):
                base = by_key["sdk_" + transport]
                by_key[key].relate(base)
                by_key[key].target = Target(1.0, kind="ratio", strict=True)
        rows += [by_key[k] for k, _t, _l in TARGETS]
    return rows


def run(quick: bool) -> List[Row]:
    if sys.version_info < (3, 10):
        raise RuntimeError("the MCP benchmark needs Python 3.10+ (the mcp package)")
    try:
        import mcp  # noqa: F401
    except ImportError as e:
        raise RuntimeError("the MCP benchmark needs the `mcp` package (pip install mcp)") from e
    return asyncio.run(_run_async(quick))

