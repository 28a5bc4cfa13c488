"""Tools for tests/test_isolation.py: each runs in an isolation worker process."""
from __future__ import annotations

import asyncio
import ctypes
import os
import time
from typing import Any, Dict, List

from agent_runtime import Context, tool


class CustomError(Exception):
    """An exception class the host can import too."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code


@tool(isolated=True)
def iso_echo(value: Any = None) -> Any:
    """Return the value."""
    return value


@tool(isolated=True)
def iso_pid() -> int:
    """The worker's pid."""
    return os.getpid()


@tool(isolated=True)
def iso_segfault() -> None:
    """Dereference NULL."""
    ctypes.string_at(0)


@tool(isolated=True)
def iso_exit(code: int) -> None:
    """Leave the worker without cleanup."""
    os._exit(code)


@tool(isolated=True)
def iso_loop() -> None:
    """Never return."""
    while True:
        pass


@tool(isolated=True)
def iso_sleep(seconds: float, marker: str = "") -> float:
    """Sleep; optionally write the worker pid to `marker` first."""
    if marker:
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(seconds)
    return seconds


@tool(isolated=True)
def iso_hog(chunk_mb: int = 32) -> None:
    """Allocate (and touch) memory until killed."""
    keep: List[bytes] = []
    while True:
        keep.append(b"\x01" * (chunk_mb << 20))
        time.sleep(0.002)


@tool(isolated=True)
def iso_raise(kind: str, message: str) -> None:
    """Raise an exception of the given kind."""
    if kind == "value":
        raise ValueError(message)
    if kind == "custom":
        raise CustomError(7, message)
    raise KeyError(message)


@tool(isolated=True)
def iso_progress(steps: int, ctx: Context) -> str:
    """Report progress `steps` times."""
    for i in range(steps):
        ctx.progress(i + 1, steps, f"step {i + 1}")
    return "done"


@tool(isolated=True)
def iso_print(text: str) -> str:
    """print() must not corrupt the reply pipe."""
    print(text)
    print(text, flush=True)
    os.write(1, b"raw write to fd 1\n")
    return text


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@tool(isolated=True)
async def iso_async_sleep(seconds: float, marker: str = "") -> Dict[str, Any]:
    """Sleep on the worker's loop; write 'started' to `marker`, and 'cancelled' on cancellation."""
    if marker:
        _write(marker, "started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if marker:
            _write(marker, "cancelled")
        raise
    return {"slept": seconds, "pid": os.getpid()}


@tool(isolated=True, timeout=0.5)
def iso_default_timeout() -> None:
    """Sleeps past its own default timeout."""
    time.sleep(30)


@tool(isolated=True)
def iso_bytes(data: bytes) -> bytes:
    """Bytes cross as base64 both ways."""
    return data[::-1]
