"""Isolation area: an echo call to a tool isolated in a worker process (pipe round trip through
the pool) against the same echo in-process and against the design note's subprocess-per-call,
plus the worker's frame codec (stdlib JSON vs msgpack)."""

import subprocess
import sys
from typing import Any, Dict, List

import agent_runtime

from .common import Case, Row, Target, measure, measure_async

AREA = "isolation"
ARGS = {"value": {"text": "hello", "n": 3, "items": [1, 2, 3]}}


def echo(value: Any = None) -> Any:
    """The isolated echo (runs in a worker: this module is importable as benches.isolation)."""
    return value


def echo_local(value: Any = None) -> Any:
    """The same echo, in-process."""
    return value


async def aecho(value: Any = None) -> Any:
    """Async isolated echo (shares a worker with other async calls)."""
    return value


_SUBPROCESS = "import json, sys; print(json.dumps(json.loads(sys.argv[1])))"


def _subprocess_echo(payload: str) -> str:
    return subprocess.run([sys.executable, "-c", _SUBPROCESS, payload], capture_output=True, text=True, check=True).stdout


_PINGPONG = """
import os
while True:
    b = os.read(0, 65536)
    if not b:
        break
    os.write(1, b)
"""


def _floor_row(quick: bool) -> Row:
    """The machine's floor for any cross-process call: a 100-byte ping-pong over pipes with a
    Python child doing nothing but os.read/os.write (two wake-ups per round trip; a pool call
    has three: caller, worker, reply reader)."""
    import os

    child = subprocess.Popen([sys.executable, "-c", _PINGPONG], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdin is not None and child.stdout is not None
        ns: Dict[str, Any] = {"w": child.stdin.fileno(), "r": child.stdout.fileno(), "write": os.write, "read": os.read, "msg": b"x" * 100}
        m = measure([Case("pp", "write(w, msg); read(r, 65536)", ns)], quick)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    return m["pp"].row(AREA, "floor: raw 100-byte pipe ping-pong with a Python child (os.read/os.write)", tag="F")


def _codec_rows(quick: bool) -> List[Row]:
    import json

    frame = {"op": "call", "id": 12345, "tool": "bench.iso.echo", "module": "benches.isolation", "qualname": "echo", "async": False, "call_id": 7, "args": ARGS}
    ns: Dict[str, Any] = {"dumps": json.dumps, "loads": json.loads, "frame": frame}
    cases = [Case("json", "loads(dumps(frame).encode())", ns)]
    try:
        import msgpack  # type: ignore[import-not-found]

        ns.update(packb=msgpack.packb, unpackb=msgpack.unpackb)
        cases.append(Case("msgpack", "unpackb(packb(frame))", ns))
    except ImportError:
        pass
    m = measure(cases, quick)
    rows = [m["json"].row(AREA, "worker frame codec: json dumps+loads of a call frame (stdlib)", tag="J")]
    if "msgpack" in m:
        rows.append(
            m["msgpack"].row(AREA, "worker frame codec: msgpack packb+unpackb of the same frame").relate(rows[0])
        )
    return rows


def run(quick: bool) -> List[Row]:
    agent_runtime.configure_isolation(min_workers=1)
    agent_runtime.tool(name="bench.iso.echo", isolated=True, replace=True)(echo)
    agent_runtime.tool(name="bench.iso.aecho", isolated=True, replace=True)(aecho)
    agent_runtime.tool(name="bench.iso.local", replace=True)(echo_local)
    call = agent_runtime.call
    assert call("bench.iso.echo", ARGS) == ARGS["value"] and call("bench.iso.local", ARGS) == ARGS["value"]
    # Warm up (workers started, modules imported, caches filled) so calibration sees steady state.
    for _ in range(300):
        call("bench.iso.echo", ARGS)
    ns: Dict[str, Any] = {"call": call, "call_async": agent_runtime.call_async, "ARGS": ARGS, "sub": _subprocess_echo, "payload": '{"value": "hello"}'}
    m = measure([Case("local", 'call("bench.iso.local", ARGS)', ns), Case("iso", 'call("bench.iso.echo", ARGS)', ns)], quick)
    # Separately: interleaving process spawns with the pool's batches disturbs both.
    m.update(measure([Case("sub", "sub(payload)", ns)], quick))
    a = measure_async([Case("aiso", 'await call_async("bench.iso.aecho", ARGS)', ns, is_async=True)], quick)
    base = m["local"].row(AREA, 'in-process call("bench.iso.local", args) \u2014 same echo', tag="L")
    sub = m["sub"].row(
        AREA,
        "note's subprocess per call: subprocess.run([sys.executable, '-c', echo])",
        tag="S",
    )
    iso = m["iso"].row(
        AREA,
        'isolated call("bench.iso.echo", args) \u2014 worker round trip',
        target=Target(100_000),
        note="sync tool: a worker to itself; length-prefixed JSON over pipes",
    ).relate(base)
    aiso = a["aiso"].row(
        AREA,
        'isolated await call_async("bench.iso.aecho", args) \u2014 async tool',
        target=Target(100_000),
        note="runs on the worker's asyncio loop thread: one more thread hop there",
    ).relate(base)
    vs_sub = m["iso"].row(AREA, "isolated call vs subprocess per call").relate(sub)
    floor = _floor_row(quick)
    vs_floor = m["iso"].row(AREA, "isolated call vs the pipe ping-pong floor").relate(floor)
    return [base, iso, aiso, sub, vs_sub, floor, vs_floor, *_codec_rows(quick)]
