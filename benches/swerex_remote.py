"""SWE-ReX remote area: SWE-ReX's own server (``swerex-remote``: FastAPI, uvicorn, pexpect) against
agent-runtime's (``agent-runtime-swerex-remote`` = ``serve --swerex``), driven by the same client,
SWE-ReX's ``RemoteRuntime``, in one run: process start to ``/is_alive`` answering, idle RSS,
an ``echo hi`` round trip, ``seq 1 1000000``, and 16 concurrent sessions each running 100
commands (10 with ``--quick``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from typing import Dict, List, Optional, Tuple

from .common import Row, Target, free_port, row_from_samples, timed_awaits
from .swerex import swerex_missing

AREA = "swerex_remote"
TOKEN = "bench-token"
SERVERS: Dict[str, List[str]] = {
    "swerex-remote": [sys.executable, "-m", "swerex.server"],
    "agent-runtime": [sys.executable, "-m", "agent_runtime.swerex_remote"],
}


def _alive(url: str) -> bool:
    req = urllib.request.Request(f"{url}/is_alive", headers={"X-API-Key": TOKEN})
    try:
        with urllib.request.urlopen(req, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _start(kind: str) -> Tuple[subprocess.Popen, str, float]:
    """Start a server; returns it, its URL and the ns from spawn to /is_alive answering."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*SERVERS[kind], "--host", "127.0.0.1", "--port", str(port), "--auth-token", TOKEN]
    t0 = time.perf_counter_ns()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _alive(url):
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not start: {cmd}")
        time.sleep(0.002)
    return p, url, float(time.perf_counter_ns() - t0)


def _stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    return 0.0


async def _drive(url: str, quick: bool) -> Dict[str, List[float]]:
    from swerex.runtime.abstract import BashAction, CloseBashSessionRequest, CreateBashSessionRequest
    from swerex.runtime.remote import RemoteRuntime

    rt = RemoteRuntime(host=url, auth_token=TOKEN, timeout=600)
    await rt.create_session(CreateBashSessionRequest(session="b", startup_timeout=60))
    got: Dict[str, List[float]] = {}
    echo = BashAction(session="b", command="echo hi")
    got["echo"] = await timed_awaits(lambda: rt.run_in_session(echo), 10 if quick else 50, warmup=2)
    seq = BashAction(session="b", command="seq 1 1000000", timeout=600)
    got["seq"] = await timed_awaits(lambda: rt.run_in_session(seq), 1 if quick else 2, warmup=0)

    n_cmds = 10 if quick else 100

    async def client(i: int) -> int:
        """Returns the number of commands whose exit code was lost."""
        c = RemoteRuntime(host=url, auth_token=TOKEN, timeout=600)
        name = f"c{i}"
        await c.create_session(CreateBashSessionRequest(session=name, startup_timeout=60))
        lost = 0
        for j in range(n_cmds):
            # "silent": LocalRuntime's fixed 0.1 s wait for its prompt fails under load; count
            # those instead of aborting the run.
            obs = await c.run_in_session(BashAction(session=name, command=f"echo {i}-{j}", check="silent"))
            lost += obs.exit_code is None
        await c.close_session(CloseBashSessionRequest(session=name))
        return lost

    t = time.perf_counter_ns()
    lost = await asyncio.gather(*(client(i) for i in range(16)))
    got["concurrent"] = [float(time.perf_counter_ns() - t)]
    got["lost"] = [float(sum(lost))]
    await rt.close()
    return got


def _measure(quick: bool) -> List[Row]:
    reps_start = 3 if quick else 7
    start: Dict[str, List[float]] = {k: [] for k in SERVERS}
    rss: Dict[str, List[float]] = {k: [] for k in SERVERS}
    # Round-robin, so drift hits both alike.
    for _ in range(reps_start):
        for kind in SERVERS:
            p, _, ns = _start(kind)
            time.sleep(0.3)
            rss[kind].append(_rss(p.pid))
            start[kind].append(ns)
            _stop(p)
    driven: Dict[str, Dict[str, List[float]]] = {}
    for kind in SERVERS:
        p, url, _ = _start(kind)
        try:
            driven[kind] = asyncio.run(_drive(url, quick))
        finally:
            _stop(p)

    rows: List[Row] = []
    n_cmds = 10 if quick else 100

    def pair(name: str, tag: str, base: List[float], ours: List[float], limit: Optional[float],
             unit: str = "ns") -> None:
        b = row_from_samples(AREA, f"swerex-remote: {name}", base, 1, tag=tag, unit=unit)
        rows.append(b)
        target = None if limit is None else Target(limit, kind="ratio")
        rows.append(row_from_samples(AREA, f"serve --swerex: {name}", ours, 1, target=target, unit=unit).relate(b))

    pair("start to /is_alive answering", "R1", start["swerex-remote"], start["agent-runtime"], 0.2)
    pair("idle RSS", "R2", rss["swerex-remote"], rss["agent-runtime"], 0.5, unit="bytes")
    b, o = driven["swerex-remote"], driven["agent-runtime"]
    pair('RemoteRuntime.run_in_session("echo hi")', "R3", b["echo"], o["echo"], 0.05)
    pair("seq 1 1000000 (6.9 MB output)", "R4", b["seq"], o["seq"], None)
    pair(f"16 sessions x {n_cmds} commands, concurrently (total)", "R5", b["concurrent"], o["concurrent"], None)
    rows[-2].note = f"{b['lost'][0]:.0f} of {16 * n_cmds} commands lost their exit code"
    rows[-1].note = f"{o['lost'][0]:.0f} of {16 * n_cmds} commands lost their exit code"
    return rows


def run(quick: bool) -> List[Row]:
    if swerex_missing(AREA):
        return []
    os.environ.pop("AGENT_RUNTIME_TOKEN", None)
    return _measure(quick)
