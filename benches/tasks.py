"""Tasks area: spawn + await round trips, 10k concurrent tasks (wall time, peak RSS), and how
long interpreter exit takes with 1000 tasks in flight."""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, List

import agent_runtime

from .common import Case, Row, Target, measure, measure_async, row_from_samples

AREA = "tasks"


async def _coro_noop() -> None:
    return None


async def _anoop() -> None:
    return None


def _register() -> None:
    agent_runtime.register_diagnostic_tools()
    agent_runtime.tool(name="bench.tasks.anoop", replace=True)(_anoop)


def _round_trips(quick: bool) -> List[Row]:
    ns: Dict[str, Any] = {
        "spawn": agent_runtime.spawn,
        "create_task": asyncio.ensure_future,
        "coro_noop": _coro_noop,
    }
    m = measure_async(
        [
            Case("P", "await create_task(coro_noop())", ns, is_async=True),
            Case("rust", 'await spawn("diag.noop")', ns, is_async=True),
            Case("py", 'await spawn("bench.tasks.anoop")', ns, is_async=True),
        ],
        quick,
    )
    s = measure([Case("sync", 'spawn("diag.noop").result()', ns)], quick)
    base = m["P"].row(AREA, "asyncio baseline: await create_task(noop coroutine)", tag="P")
    return [
        base,
        m["rust"].row(AREA, 'await spawn("diag.noop") \u2014 Rust noop task').relate(base),
        m["py"].row(
            AREA,
            'await spawn("bench.tasks.anoop") \u2014 async Python noop task',
            note="the coroutine runs on the runtime's loop thread: two cross-thread hops",
        ).relate(base),
        s["sync"].row(AREA, 'spawn("diag.noop").result() \u2014 sync wait, GIL released'),
    ]


_CONCURRENT = r"""
import asyncio, json, sys, time
import agent_runtime

def vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0

kind, n = sys.argv[1], int(sys.argv[2])
agent_runtime.register_diagnostic_tools()

@agent_runtime.tool(name="bench.tasks.atriple")
async def atriple(x: int) -> int:
    await asyncio.sleep(0)
    return 3 * x

async def plain(x):
    await asyncio.sleep(0)
    return 3 * x

# Warm the runtime and loop thread so their start-up is not counted.
agent_runtime.call("diag.noop"); agent_runtime.call("bench.tasks.atriple", {"x": 1})
base = vm("VmRSS")
t0 = time.perf_counter_ns()
if kind == "asyncio":
    async def main():
        return await asyncio.gather(*(asyncio.ensure_future(plain(i)) for i in range(n)))
    out = asyncio.run(main())
    ok = out == [3 * i for i in range(n)]
else:
    name, args = {
        "rust": ("diag.add", lambda i: {"a": i, "b": 2 * i}),
        "python": ("bench.tasks.atriple", lambda i: {"x": i}),
    }[kind]
    tasks = [agent_runtime.spawn(name, args(i)) for i in range(n)]
    async def main():
        return await asyncio.gather(*tasks)
    out = asyncio.run(main())
    ok = out == [3 * i for i in range(n)]
wall = time.perf_counter_ns() - t0
print(json.dumps({"ok": ok, "wall_ns": wall, "peak_delta": vm("VmHWM") - base}))
"""


def _concurrent(quick: bool) -> List[Row]:
    n = 10_000
    reps = 1 if quick else 3
    rows: List[Row] = []
    base_wall = base_mem = None
    for kind, label in (
        ("asyncio", "asyncio baseline: 10k tasks of a coroutine, gathered"),
        ("rust", '10k concurrent spawn("diag.add"), gathered'),
        ("python", "10k concurrent spawn of an async Python tool, gathered"),
    ):
        walls, mems = [], []
        for _ in range(reps):
            p = subprocess.run(
                [sys.executable, "-c", _CONCURRENT, kind, str(n)], capture_output=True, text=True, check=True
            )
            r = json.loads(p.stdout.strip().splitlines()[-1])
            if not r["ok"]:
                raise RuntimeError(f"{kind}: wrong results")
            walls.append(float(r["wall_ns"]))
            mems.append(float(r["peak_delta"]))
        wall = row_from_samples(AREA, label + " \u2014 wall time", walls, n, note="fresh process per run")
        mem = row_from_samples(AREA, label + " \u2014 peak RSS growth", mems, n, unit="bytes")
        if kind == "asyncio":
            wall.tag, mem.tag = "Q", "R"
            base_wall, base_mem = wall, mem
        else:
            assert base_wall is not None and base_mem is not None
            wall.relate(base_wall)
            mem.relate(base_mem)
        rows += [wall, mem]
    return rows


_EXIT = r"""
import asyncio, sys, time
import agent_runtime
agent_runtime.register_diagnostic_tools()

@agent_runtime.tool(name="bench.exit.slow")
async def slow() -> None:
    await asyncio.sleep(600)

ts = [agent_runtime.spawn("diag.sleep", {"seconds": 600}) for _ in range(500)]
ts += [agent_runtime.spawn("bench.exit.slow") for _ in range(500)]
while any(t.status == "pending" for t in ts):
    time.sleep(0.005)
print(len(agent_runtime.tasks()), flush=True)
"""


def _exit_time(quick: bool) -> Row:
    samples = []
    for _ in range(1 if quick else 3):
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_EXIT)], stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None
        line = p.stdout.readline()
        t0 = time.perf_counter_ns()
        rc = p.wait(60)
        samples.append(float(time.perf_counter_ns() - t0))
        if rc != 0 or line.strip() != "1000":
            raise RuntimeError(f"exit benchmark: rc={rc}, tasks={line.strip()!r}")
    return row_from_samples(
        AREA,
        "interpreter exit with 1000 tasks in flight (500 Rust, 500 async Python)",
        samples,
        1,
        target=Target(1e9),
        note="from the last line printed to process exit; tasks cancelled, threads joined",
    )


def run(quick: bool) -> List[Row]:
    _register()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    return _round_trips(quick) + _concurrent(quick) + [_exit_time(quick)]
