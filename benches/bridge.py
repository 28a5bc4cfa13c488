"""Bridge overhead: calling tools across the Python <-> Rust boundary, sync and async.

Baselines: A = direct Python call, B = bare PyO3 call, C = pyo3-async-runtimes'
``future_into_py`` on a ready future, D = direct Python call with one keyword argument,
E = pure-Python round trip to an asyncio loop thread (the floor for cross-thread rows).
"""

import asyncio
import gc
import threading
from typing import Any, Dict, List

import agent_runtime
from agent_runtime import _native

from .common import (
    Case,
    Row,
    Target,
    measure,
    measure_async,
    measure_native,
    require_bench_build,
    rss_bytes,
)

AREA = "bridge"


def noop() -> None:
    return None


def echo_int(x: int) -> int:
    return x


def _noop() -> None: ...


def _echo_int(x: int) -> int:
    return x


async def _anoop() -> None: ...


def _register() -> None:
    agent_runtime.register_diagnostic_tools()
    agent_runtime.tool(name="bench.noop")(_noop)
    agent_runtime.tool(name="bench.echo_int")(_echo_int)
    agent_runtime.tool(name="bench.anoop")(_anoop)


def _namespace() -> Dict[str, Any]:
    return {
        "noop": noop,
        "echo_int": echo_int,
        "_bare_noop": _native._bare_noop,
        "_bare_detach": _native._bare_detach,
        "call": agent_runtime.call,
        "call_async": agent_runtime.call_async,
        "_bench_future_into_py": _native._bench_future_into_py,
    }


def _sync_rows(quick: bool) -> Dict[str, Row]:
    ns = _namespace()
    cases = [
        Case("loop", "pass", ns),
        Case("A", "noop()", ns),
        Case("B", "_bare_noop()", ns),
        Case("B2", "_bare_detach()", ns),
        Case("diag", 'call("diag.noop")', ns),
        Case("bench", 'call("bench.noop")', ns),
        Case("D", "echo_int(x=1)", ns),
        Case("echo", 'call("bench.echo_int", {"x": 1})', ns),
    ]
    m = measure(cases, quick)

    def row(key: str, name: str, **kw: Any) -> Row:
        return m[key].row(AREA, name, **kw)

    out = {
        "loop": row("loop", "timing-loop overhead (`pass`), included in every Python row"),
        "A": row("A", "direct Python call noop()", tag="A"),
        "B": row("B", "bare PyO3 call _native._bare_noop()", tag="B"),
        "B2": row(
            "B2",
            "bare PyO3 call that releases the GIL _native._bare_detach()",
            tag="B2",
            note="the floor for any call that runs Rust work without the GIL",
        ),
        "D": row("D", "direct Python call echo_int(x=1)", tag="D"),
    }
    out["diag"] = row("diag", 'call("diag.noop") \u2014 Rust noop tool', target=Target(2, "ratio")).relate(
        out["B"]
    )
    out["bench"] = row(
        "bench",
        'call("bench.noop") \u2014 Python noop tool (inline fast path: runs on the calling thread)',
        target=Target(3, "ratio"),
    ).relate(out["A"])
    out["echo"] = row("echo", 'call("bench.echo_int", {"x": 1}) \u2014 Python tool, 1 int arg').relate(
        out["D"]
    )
    return out


def _async_rows(quick: bool) -> Dict[str, Row]:
    ns = _namespace()
    cases = [
        Case("C", "await _bench_future_into_py()", ns, is_async=True),
        Case("call_async", 'await call_async("diag.noop")', ns, is_async=True),
    ]
    m = measure_async(cases, quick)
    c = m["C"].row(
        AREA,
        "await _native._bench_future_into_py() (future_into_py, ready future)",
        tag="C",
        note="tokio task -> asyncio future: a cross-thread wakeup per call",
    )
    ca = m["call_async"].row(
        AREA,
        'await call_async("diag.noop") (one asyncio.run loop, sequential)',
        target=Target(10_000),
        note="diag.noop completes inline: call_async returns a ready awaitable (no thread hop)",
    ).relate(c)
    return {"C": c, "call_async": ca}


def _thread_hop_row(quick: bool) -> Row:
    """Platform floor for rows that hop to an asyncio loop thread and back: the same round trip
    in pure Python (no agent_runtime involved)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    thread.start()
    try:
        ns = {"run_coroutine_threadsafe": asyncio.run_coroutine_threadsafe, "anoop": _anoop, "loop": loop}
        case = Case("E", "run_coroutine_threadsafe(anoop(), loop).result()", ns)
        m = measure([case], quick)["E"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    return m.row(
        AREA,
        "pure Python round trip: run_coroutine_threadsafe(anoop(), loop).result()",
        tag="E",
        note="no agent_runtime: the machine's cross-thread asyncio round trip",
    )


def _native_rows(quick: bool) -> Dict[str, Row]:
    reg = agent_runtime.default_registry()
    r2p = measure_native("r2p", lambda n: _native._bench_rust_to_python(reg, "bench.noop", n, {}), quick)
    aw = measure_native("await", lambda n: _native._bench_rust_await(reg, "bench.anoop", n, {}), quick)
    note = "Rust-timed; one figure per 100 calls"
    return {
        "r2p": r2p.row(
            AREA,
            "Rust\u2192Python sync call of bench.noop from a tokio worker",
            target=Target(1_000),
            note=note,
        ),
        "await": aw.row(
            AREA,
            "Rust awaits async Python tool bench.anoop",
            target=Target(20_000),
            note=note + "; each call runs the coroutine on the runtime's asyncio loop thread",
        ),
    }


def _rss_rows(quick: bool) -> List[Row]:
    n = 100_000 if quick else 1_000_000
    ns = _namespace()
    diag = Case("diag", 'call("diag.noop")', ns).compile()
    bench = Case("bench", 'call("bench.noop")', ns).compile()
    diag(10_000)
    bench(10_000)
    gc.collect()
    r0 = rss_bytes()
    diag(n)
    gc.collect()
    r1 = rss_bytes()
    bench(n)
    gc.collect()
    r2 = rss_bytes()
    if r0 is None or r1 is None or r2 is None:
        return []
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"

    def row(name: str, before: int, after: int, calls: int, **kw: Any) -> Row:
        note = (
            f"RSS {before / 2**20:.1f} \u2192 {after / 2**20:.1f} MB, {(after - before) / calls:.2f} B/call"
        )
        return Row(AREA, name, float(after - before), unit="bytes", batch=calls, note=note, **kw)

    return [
        row(f'RSS growth, {label} \u00d7 call("diag.noop")', r0, r1, n),
        row(f'RSS growth, {label} \u00d7 call("bench.noop")', r1, r2, n),
        row(
            "RSS growth, total over both (after 10k warmup each)",
            r0,
            r2,
            2 * n,
            target=Target(5 * 2**20, strict=True),
        ),
    ]


def run(quick: bool) -> List[Row]:
    require_bench_build()
    _register()
    s = _sync_rows(quick)
    a = _async_rows(quick)
    nat = _native_rows(quick)
    e = _thread_hop_row(quick)
    nat["await"].relate(e)
    rows = [
        s["loop"],
        s["A"],
        s["B"],
        s["B2"],
        s["diag"],
        s["bench"],
        s["D"],
        s["echo"],
        nat["r2p"],
        a["C"],
        a["call_async"],
        e,
        nat["await"],
    ]
    rows.extend(_rss_rows(quick))
    return rows
