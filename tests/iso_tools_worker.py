"""Hostile isolated tools for tests/test_adversarial_worker.py (each runs in a worker process)."""
from __future__ import annotations

import asyncio
import ctypes
import math
import os
import sys
import time
from typing import Any, List

from agent_runtime import Context, tool


def write_marker_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def write_marker(path: str) -> None:
    """What a crafted ``__reduce__`` would make an unpickling host run."""
    with open(path, "w") as f:
        f.write("host code execution")


class EvilError(Exception):
    """Unpickling it would call ``write_marker`` in the host."""

    def __init__(self, marker: str) -> None:
        super().__init__(marker)
        self.marker = marker

    def __reduce__(self) -> Any:
        return (write_marker, (self.marker,))


@tool(isolated=True)
def iso_evil(marker: str) -> None:
    """Raise an exception whose pickle would run code in the host."""
    raise EvilError(marker)


@tool(isolated=True)
def iso_raise_from(module: str, message: str) -> None:
    """Import ``module`` (in the worker) and raise its ``Err``."""
    import importlib

    raise importlib.import_module(module).Err(message)


@tool(isolated=True)
def iso_raise_kind(kind: str) -> None:
    """Raise exceptions that cannot or must not be rebuilt as themselves in the host."""
    if kind == "exit":
        sys.exit(3)
    if kind == "bytes":
        raise ValueError(b"\x00\xff")
    if kind == "bigint":
        raise ValueError(2**100 + 1)
    if kind == "badstr":

        class Unprintable(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no str")

        raise Unprintable()
    if kind == "surrogate":
        raise ValueError("bad \udcff name")
    raise KeyError(kind)


@tool(isolated=True)
def iso_result(kind: str, depth: int = 1000) -> Any:
    """Results the host cannot receive exactly."""
    if kind == "deep":
        v: Any = []
        for _ in range(depth):
            v = [v]
        return v
    if kind == "nan":
        return {"x": math.nan}
    if kind == "object":
        return {"x": object()}
    if kind == "bigint":
        return 2**100 + 1
    if kind == "nested_bigint":
        return {"a": [1, -(2**70)]}
    if kind == "edges":
        return [2**64 - 1, -(2**63), 10**18, "12345678901234567890123"]
    if kind == "cycle":
        a: List[Any] = []
        a.append(a)
        return a
    return None


@tool(isolated=True)
def iso_bad_progress(ctx: Context) -> str:
    """Progress reports JSON cannot carry."""
    ctx.progress(math.nan)
    ctx.progress(1, math.inf, "inf total")
    ctx.progress(2, 2, "bad \udcff text")
    return "done"


@tool(isolated=True)
def iso_stderr_flood(mb: int) -> None:
    """Write ``mb`` MiB to stderr without a newline, then die."""
    chunk = b"e" * (1 << 20)
    for _ in range(mb):
        os.write(2, chunk)
    os._exit(1)


@tool(isolated=True)
def iso_pid_w() -> int:
    """The worker's pid."""
    return os.getpid()


def _fork(raw: bool) -> int:
    if raw:
        # libc fork with the GIL held: no at-fork hooks run, the child keeps every fd.
        return int(ctypes.PyDLL(None).fork())
    return os.fork()


@tool(isolated=True)
def iso_fork_exit(marker: str, raw: bool = False) -> None:
    """Fork a child that lingers, then end the worker."""
    pid = _fork(raw)
    if pid == 0:
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(marker + ".tmp", marker)
        time.sleep(60)
        os._exit(0)
    while not os.path.exists(marker):
        time.sleep(0.01)
    os._exit(0)


@tool(isolated=True)
def iso_fork_both(raw: bool = False) -> int:
    """Fork; parent and child both return their pid as the call's result."""
    _fork(raw)
    return os.getpid()


@tool(isolated=True)
async def iso_async_stubborn(seconds: float) -> str:
    """Ignore cancellation (the loop keeps turning)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue
    return "stubborn done"


@tool(isolated=True)
async def iso_async_block(seconds: float) -> str:
    """Block the worker's event loop."""
    time.sleep(seconds)  # noqa: ASYNC251 - the point: a tool that blocks its loop
    return "blocked done"


@tool(isolated=True)
async def iso_async_nap(seconds: float, marker: str = "") -> int:
    """A well-behaved async call."""
    if marker:
        write_marker_text(marker, str(os.getpid()))
    await asyncio.sleep(seconds)
    return os.getpid()
