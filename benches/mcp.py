"""MCP area: the same Python ``echo(value) -> value`` tool served by our server
(``agent-runtime serve --mcp-stdio`` / ``--mcp-http``) and by the MCP Python SDK's own server
(``MCPServer``, formerly FastMCP), called by the same client (the SDK's ``mcp.Client``) in the
bench process.

Rows: sequential ``tools/call`` latency and throughput with 32 calls in flight, over stdio and
streamable HTTP. Baselines are the SDK server's rows of the same transport and kind; targets:
ours must beat them (ratio < 1). Needs Python 3.10+ and the ``mcp`` package.

Load-client rows (streamable HTTP only): ``examples/mcp_load.rs`` (rmcp's client, Rust, so the
client is not the bottleneck) against both HTTP servers side by side, in one run: tools/call
throughput (time per call = wall / calls) with 1 call in flight on one kept-alive connection, and
with 64 in flight on 64 kept-alive connections (goal: ours >= 5x MCPServer's throughput there,
i.e. a time-per-call ratio <= 0.2).
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from .common import REPO_ROOT, Row, Target, free_port, row_from_samples

AREA = "mcp"
SUPPORT = Path(__file__).resolve().parent / "mcp_support"
VALUE: Dict[str, Any] = {"k": "v", "n": 1}
CONCURRENCY = 32
START_TIMEOUT = 60.0
LOAD_CONNECTIONS = 64  # kept-alive connections of the load client's concurrent rows
BUILD_TIMEOUT = 1200.0  # seconds for `cargo build` of the load client
# Its own target dir (see benches/grpc.py: the cdylib's output name has no hash).
LOAD_TARGET_DIR = REPO_ROOT / "target" / "mcp-load"
BUILD_CMD = [
    "build", "--release", "--example", "mcp_load", "--no-default-features", "--features", "mcp-load",
    "--target-dir", str(LOAD_TARGET_DIR),
]  # fmt: skip


def _env() -> Dict[str, str]:
    import agent_runtime

    e = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(agent_runtime.__file__)))
    e["PYTHONPATH"] = os.pathsep.join([pkg_parent, str(SUPPORT), str(REPO_ROOT)])
    e.pop("AGENT_RUNTIME_TOKEN", None)
    return e


def _ours_cmd(*serve: str) -> List[str]:
    return [sys.executable, "-m", "agent_runtime", "--import", "echo_tools", "serve", *serve]


def _sdk_cmd(*args: str) -> List[str]:
    return [sys.executable, str(SUPPORT / "sdk_server.py"), *args]


@contextlib.contextmanager
def _http_server(cmd: List[str], url: str, ours: bool):
    """Start a server process; for ours, read the bound address from stderr."""
    # The SDK server (uvicorn) logs every request: thousands of lines under the load client.
    err = subprocess.PIPE if ours else subprocess.DEVNULL
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err, text=True)
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


def _build_load_client() -> Tuple[Optional[Path], str]:
    """``cargo build`` the load client; returns (binary or None, a note on what happened)."""
    cargo = shutil.which("cargo") or str(Path(os.environ.get("CARGO_HOME", str(Path.home() / ".cargo"))) / "bin" / "cargo")
    if not Path(cargo).exists():
        return None, "cargo not found"
    print(f"  building the MCP load client: cargo {' '.join(BUILD_CMD)}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [cargo, *BUILD_CMD],
        cwd=str(REPO_ROOT),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        return None, f"cargo build timed out after {BUILD_TIMEOUT:.0f} s"
    if proc.returncode != 0:
        errs = [ln for ln in out.splitlines() if ln.startswith("error")] or out.splitlines()[-3:]
        return None, f"cargo build failed (exit {proc.returncode}): " + " / ".join(errs[:3])
    binary = LOAD_TARGET_DIR / "release" / "examples" / "mcp_load"
    if not binary.exists():
        return None, f"cargo build succeeded but {binary} is missing"
    return binary, f"load client built in {time.monotonic() - t0:.0f} s"


def _load_run(binary: Path, url: str, calls: int, connections: int) -> Dict[str, Any]:
    cmd = [str(binary), url, "echo", json.dumps({"value": VALUE}), str(calls), str(connections)]
    p = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"mcp_load @ {url} failed (exit {p.returncode}): {p.stderr.strip()}")
    r: Dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    if r["errors"] != 0 or r["calls"] != calls:
        raise RuntimeError(f"mcp_load @ {url}: {r['errors']} errors in {r['calls']} calls: {p.stderr.strip()}")
    return r


def _load_rows(urls: Dict[str, str], quick: bool) -> List[Row]:
    """The Rust load client against both HTTP servers, round-robin in one run."""
    binary, why = _build_load_client()
    if binary is None:
        return [
            Row(AREA, f"MCP load client rows skipped: {why}", float("nan"),
                note="examples/mcp_load.rs could not be built; the other rows are unaffected")
        ]  # fmt: skip
    reps = 3 if quick else 5
    one_calls, many_calls = (300, 2000) if quick else (1000, 8000)
    keys = ["sdk_http", "ours_http"]
    one: Dict[str, List[float]] = {k: [] for k in keys}
    many: Dict[str, List[float]] = {k: [] for k in keys}
    p99: Dict[str, List[float]] = {k: [] for k in keys}
    lat: Dict[str, List[float]] = {k: [] for k in keys}
    for k in keys:  # warmup
        _load_run(binary, urls[k], max(50, one_calls // 10), 1)
    for _ in range(reps):
        for k in keys:
            r = _load_run(binary, urls[k], one_calls, 1)
            one[k].append(float(r["secs"]) * 1e9 / one_calls)
            lat[k].append(float(r["median_us"]))
            p99[k].append(float(r["p99_us"]))
            r = _load_run(binary, urls[k], many_calls, LOAD_CONNECTIONS)
            many[k].append(float(r["secs"]) * 1e9 / many_calls)
    labels = {"sdk_http": "MCP SDK's MCPServer (Python, uvicorn)", "ours_http": "ours (agent-runtime serve --mcp-http)"}
    rows: List[Row] = []
    # Throughput at 1 and at 64 in flight, ours vs MCPServer: time per call = wall / calls (the
    # ratio to MCPServer's row is the inverse of the throughput multiple). Goal at 64: >= 5x.
    for data, what, n, tag, note, goal in (
        (one, "tools/call, 1 in flight (1 kept-alive connection), time per call", one_calls, "U",
         "wall / calls; \u2248 {rate} calls/s; per-request median {lat:.0f} \u00b5s, p99 {p99:.0f} \u00b5s", 1.0),
        (many, f"tools/call, {LOAD_CONNECTIONS} in flight ({LOAD_CONNECTIONS} kept-alive connections), time per call",
         many_calls, "V", "wall / calls; \u2248 {rate} calls/s", 0.2),
    ):  # fmt: skip
        base = None
        for k in keys:
            med = statistics.median(data[k])
            text = note.format(
                p99=statistics.median(p99[k]), lat=statistics.median(lat[k]), rate=f"{1e9 / med:,.0f}"
            )
            r = row_from_samples(
                AREA, f"{what} (Rust load client): {labels[k]}", data[k], n,
                note=f"examples/mcp_load.rs (rmcp client), Python echo tool, {n} calls/run: {text}; {why}",
            )  # fmt: skip
            if k == "sdk_http":
                r.tag = tag
                base = r
            elif base is not None:
                r.relate(base)
                r.target = Target(goal, kind="ratio", strict=goal == 1.0)
            rows.append(r)
    return rows


async def _run_async(quick: bool) -> List[Row]:
    from mcp import Client, StdioServerParameters

    seq_n, seq_batches = (20, 5) if quick else (50, 9)
    con_n, con_batches = (100, 5) if quick else (300, 9)
    port = free_port()
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
        urls = {"sdk_http": sdk_url, "ours_http": ours_url}
        load = await asyncio.get_running_loop().run_in_executor(None, _load_rows, urls, quick)

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
    return rows + load


def run(quick: bool) -> List[Row]:
    if sys.version_info < (3, 10):
        raise RuntimeError("the MCP benchmark needs Python 3.10+ (the mcp package)")
    try:
        import mcp  # noqa: F401
    except ImportError as e:
        raise RuntimeError("the MCP benchmark needs the `mcp` package (pip install mcp)") from e
    return asyncio.run(_run_async(quick))

