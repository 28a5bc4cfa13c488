"""SWE-ReX area: agent-runtime's ``RustRuntime`` against swe-rex's ``LocalRuntime`` (pexpect),
measured side by side in one run: create_session, an ``echo hi`` round trip in each check mode,
``seq 1 1000000`` output, interrupt after a timeout, and ``execute``."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import List, Optional

from .common import Row, Target, row_from_samples, timed_awaits

AREA = "swerex"
MS = 1_000_000  # ns


async def _measure(quick: bool) -> List[Row]:
    from agent_runtime.swerex import RustRuntime
    from swerex.exceptions import CommandTimeoutError
    from swerex.runtime.abstract import (
        BashAction,
        BashInterruptAction,
        CloseBashSessionRequest,
        Command,
        CreateBashSessionRequest,
    )
    from swerex.runtime.local import LocalRuntime

    reps_create = 4 if quick else 12
    reps_cmd = 10 if quick else 60
    reps_intr = 2 if quick else 5
    rows: List[Row] = []
    runtimes = {"LocalRuntime": LocalRuntime(), "RustRuntime": RustRuntime()}

    def pair(name: str, tag: str, local: List[float], rust: List[float], target_ms: Optional[float],
             note: str = "") -> None:
        base = row_from_samples(AREA, f"LocalRuntime: {name}", local, 1, tag=tag)
        rows.append(base)
        rows.append(
            row_from_samples(
                AREA,
                f"RustRuntime: {name}",
                rust,
                1,
                target=None if target_ms is None else Target(target_ms * MS),
                note=note,
            ).relate(base)
        )

    # create_session (+ close, not timed)
    got = {}
    for label, rt in runtimes.items():
        samples = []
        for k in range(reps_create + 1):
            name = f"bench{k}"
            t = time.perf_counter_ns()
            await rt.create_session(CreateBashSessionRequest(session=name))
            samples.append(float(time.perf_counter_ns() - t))
            await rt.close_session(CloseBashSessionRequest(session=name))
        got[label] = samples[1:]  # the first one warms up
    pair("create_session", "C", got["LocalRuntime"], got["RustRuntime"], 50)

    for rt in runtimes.values():
        await rt.create_session(CreateBashSessionRequest(session="b"))

    for i, check in enumerate(["raise", "silent", "ignore"]):
        res = {}
        for label, rt in runtimes.items():
            action = BashAction(session="b", command="echo hi", check=check)
            res[label] = await timed_awaits(lambda rt=rt, a=action: rt.run_in_session(a), reps_cmd, warmup=2)
        pair(f'run_in_session("echo hi"), check="{check}"', f"E{i + 1}", res["LocalRuntime"],
             res["RustRuntime"], 5)

    # 6.9 MB of output. LocalRuntime takes ~30 s for it: only in the full run.
    seq = BashAction(session="b", command="seq 1 1000000", timeout=600)
    rust = await timed_awaits(lambda: runtimes["RustRuntime"].run_in_session(seq), 1 if quick else 3, warmup=1)
    if quick:
        rows.append(
            row_from_samples(AREA, "RustRuntime: seq 1 1000000 (6.9 MB output)", rust, 1,
                             target=Target(500 * MS), note="LocalRuntime (~30 s) only in the full run")
        )
    else:
        local = await timed_awaits(lambda: runtimes["LocalRuntime"].run_in_session(seq), 1, warmup=0)
        pair("seq 1 1000000 (6.9 MB output)", "S", local, rust, 500)

    # Interrupt after a timeout, then the next command (the timeout itself is not timed).
    res = {}
    for label, rt in runtimes.items():
        samples = []
        for _ in range(reps_intr):
            try:
                await rt.run_in_session(BashAction(session="b", command="sleep 60", timeout=0.3))
            except CommandTimeoutError:
                pass
            t = time.perf_counter_ns()
            await rt.run_in_session(BashInterruptAction(session="b"))
            await rt.run_in_session(BashAction(session="b", command="echo ok"))
            samples.append(float(time.perf_counter_ns() - t))
        res[label] = samples
    pair("BashInterruptAction after a timeout + next command", "I", res["LocalRuntime"],
         res["RustRuntime"], None)

    res = {}
    cmd = Command(command=["echo", "hi"])
    for label, rt in runtimes.items():
        res[label] = await timed_awaits(lambda rt=rt: rt.execute(cmd), reps_cmd, warmup=2)
    pair('execute(["echo", "hi"])', "X", res["LocalRuntime"], res["RustRuntime"], None)

    for rt in runtimes.values():
        await rt.close()
    return rows


def swerex_missing(area: str) -> bool:
    """True, after saying why on stderr, where swe-rex cannot run: the areas measuring against it
    are then skipped."""
    if sys.version_info < (3, 10):
        print(f"[{area}] skipped: swe-rex needs Python 3.10+", file=sys.stderr)
        return True
    try:
        import swerex  # noqa: F401
    except ImportError:
        print(f"[{area}] skipped: swe-rex is not installed (pip install swe-rex)", file=sys.stderr)
        return True
    return False


def run(quick: bool) -> List[Row]:
    if swerex_missing(AREA):
        return []
    return asyncio.run(_measure(quick))
