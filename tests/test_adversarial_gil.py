"""Hostile cases for the Python ↔ tokio bridge: the GIL never taken on a tokio thread, the
runtime's event loop surviving BaseExceptions, shutdown() inside tools, interpreter exit with
threads mid-call, nesting, and callbacks that misbehave. Cases that could kill the process run
in a subprocess."""

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Dict, List

import agent_runtime
import pytest
from agent_runtime import Cancelled, Context, Registry, _native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)
    return r


def run_script(code: str, timeout: float = 60.0) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), RUST_BACKTRACE="0")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_clean_exit(p: "subprocess.CompletedProcess[str]") -> None:
    assert p.returncode == 0, f"rc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert "panicked" not in p.stderr and "PanicException" not in p.stderr, p.stderr
    assert "Fatal Python error" not in p.stderr, p.stderr


def exits_cleanly(code: str, times: int) -> None:
    """Run a script that prints "exiting" and ends with daemon threads busy, `times` times (the
    races at exit are timing-dependent): every run must reach that line and exit cleanly."""
    for _ in range(times):
        p = run_script(code)
        assert_clean_exit(p)
        assert "exiting" in p.stdout


# ---------------------------------------------------------------- point 4: no GIL on tokio


def test_no_gil_taken_on_tokio_threads(reg: Registry) -> None:
    before = _native._gil_on_tokio()
    seen: List[str] = []
    progress: List[float] = []

    @reg.tool(name="g.sync")
    def g_sync(x: int, ctx: Context) -> int:
        ctx.progress(1, 2)
        time.sleep(0.01)
        ctx.progress(2, 2)
        return x + 1

    @reg.tool(name="g.async")
    async def g_async(x: int, ctx: Context) -> int:
        ctx.progress(1)
        await asyncio.sleep(0.01)
        return x * 2

    sub = _native.subscribe([], lambda e: seen.append(e["event"]))
    try:
        # Sync and async Python tools: inline, with a timeout (pool thread), spawned (the
        # result and the finished event arrive on a tokio worker), awaited.
        assert reg.call("g.sync", {"x": 1}) == 2
        assert reg.call("g.sync", {"x": 1}, timeout=5, on_progress=lambda d, t, m: progress.append(d)) == 2
        assert reg.call("g.async", {"x": 2}, on_progress=lambda d, t, m: progress.append(d)) == 4
        assert reg.spawn("g.sync", {"x": 3}).result() == 4
        assert reg.spawn("g.async", {"x": 3}).result() == 6
        # Rust → Python: diag.call converts the Python result to JSON where it is polled.
        assert reg.spawn("diag.call", {"name": "g.sync", "args": {"x": 4}}).result() == 5
        assert reg.spawn("diag.call", {"name": "g.async", "args": {"x": 4}}).result() == 8

        async def main() -> List[Any]:
            tasks = [reg.spawn("g.async", {"x": i}) for i in range(50)]
            awaited = [reg.call_async("g.sync", {"x": i}, timeout=5) for i in range(20)]
            rust = [reg.call_async("diag.sleep", {"seconds": 0.01}) for _ in range(20)]
            return await asyncio.gather(*tasks, *awaited, *rust)

        out = asyncio.run(main())
        assert out[:50] == [2 * i for i in range(50)]
        assert out[50:70] == [i + 1 for i in range(20)]
    finally:
        _native.unsubscribe(sub)
    assert progress[:3] == [1.0, 2.0, 1.0]
    assert seen.count("tool.started") == seen.count("tool.finished") > 0
    assert _native._gil_on_tokio() == before


def test_events_of_a_spawned_call_are_delivered_before_its_result(reg: Registry) -> None:
    @reg.tool(name="g.slow")
    async def slow() -> int:
        await asyncio.sleep(0.02)
        return 1

    seen: List[str] = []
    sub = _native.subscribe([], lambda e: seen.append(e["event"]) if e["tool"] == "g.slow" else None)
    try:
        for _ in range(20):
            seen.clear()
            assert reg.spawn("g.slow").result() == 1
            # The finished event was emitted on a tokio worker and delivered by the job thread.
            assert seen == ["tool.started", "tool.finished"]
    finally:
        _native.unsubscribe(sub)


# ---------------------------------------------------------------- the runtime's event loop


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_runtime_loop_survives_base_exceptions(reg: Registry, exc: type) -> None:
    @reg.tool(name="g.raiser", replace=True)
    async def raiser() -> None:
        await asyncio.sleep(0)
        raise exc("from the tool")

    @reg.tool(name="g.fine", replace=True)
    async def fine() -> int:
        await asyncio.sleep(0)
        return 7

    for _ in range(3):
        with pytest.raises(exc):
            reg.call("g.raiser")
        assert reg.call("g.fine") == 7
        t = reg.spawn("g.raiser")
        with pytest.raises(exc):
            t.result(10)
        assert reg.spawn("g.fine").result(10) == 7


# ---------------------------------------------------------------- shutdown() inside tools


def test_shutdown_inside_a_tool_is_refused_and_the_runtime_keeps_working(reg: Registry) -> None:
    @reg.tool(name="g.sd")
    def sd() -> str:
        agent_runtime.shutdown()
        return "ok"

    @reg.tool(name="g.asd")
    async def asd() -> str:
        agent_runtime.shutdown()
        return "ok"

    with pytest.raises(RuntimeError, match="inside a tool call"):
        reg.call("g.sd")  # inline on this thread
    with pytest.raises(RuntimeError, match="inside a tool call"):
        reg.call("g.sd", timeout=5)  # on a pool thread
    with pytest.raises(RuntimeError, match="inside a tool call"):
        reg.call("diag.call", {"name": "g.sd"})  # Rust tool → Python tool
    with pytest.raises(RuntimeError, match="inside a tool call"):
        reg.call("g.asd")  # on the runtime's loop thread
    with pytest.raises(RuntimeError, match="inside a tool call"):
        reg.spawn("g.asd").result(10)
    with pytest.raises(RuntimeError, match="inside a tool call"):
        reg.spawn("diag.call", {"name": "g.asd"}).result(10)  # Rust tool → async Python tool
    assert reg.call("diag.add", {"a": 1, "b": 2}) == 3
    assert reg.spawn("diag.sleep", {"seconds": 0.01}).result(10) == 0.01
    agent_runtime.shutdown()  # outside a tool: fine, and the next call restarts everything
    assert reg.call("diag.add", {"a": 2, "b": 2}) == 4


def test_shutdown_while_many_threads_call() -> None:
    p = run_script(
        """
        import asyncio, threading, time
        import agent_runtime
        from agent_runtime import AgentRuntimeError
        agent_runtime.register_diagnostic_tools()

        @agent_runtime.tool(name="s.sync")
        def s_sync(x: int) -> int:
            time.sleep(0.001)
            return x

        @agent_runtime.tool(name="s.async")
        async def s_async(x: int) -> int:
            await asyncio.sleep(0.001)
            return x

        stop = threading.Event()
        bad = []

        def worker(i):
            while not stop.is_set():
                for name, kw in (("s.sync", {"timeout": 5}), ("s.async", {}), ("diag.sleep", {})):
                    args = {"seconds": 0.001} if name == "diag.sleep" else {"x": i}
                    try:
                        r = agent_runtime.call(name, args, **kw)
                        if name != "diag.sleep" and r != i:
                            bad.append(r)
                    except AgentRuntimeError:
                        pass  # cancelled by the shutdown: fine
                    except Exception as e:  # anything else is a bug
                        bad.append(repr(e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for _ in range(5):
            time.sleep(0.1)
            agent_runtime.shutdown(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "a caller hung"
        assert not bad, bad[:5]
        assert agent_runtime.call("s.async", {"x": 3}) == 3
        print("ok")
        """
    )
    assert_clean_exit(p)
    assert p.stdout.strip().endswith("ok")


# ---------------------------------------------------------------- interpreter exit mid-call


@pytest.mark.parametrize(
    "how",
    [
        'agent_runtime.call("busy")',  # inline on the daemon thread
        'agent_runtime.call("busy", timeout=100)',  # on a pool thread, the daemon waiting
        'agent_runtime.spawn("busy").result()',
        'agent_runtime.call("abusy")',  # on the runtime's loop thread
        'agent_runtime.call("diag.sleep", {"seconds": 30})',  # a Rust tool running at exit
        'agent_runtime.call("diag.call", {"name": "busy"})',  # Rust → Python at exit
    ],
)
def test_exit_with_a_daemon_thread_mid_call_is_clean(how: str) -> None:
    code = f"""
        import asyncio, threading, time
        import agent_runtime
        agent_runtime.register_diagnostic_tools()

        @agent_runtime.tool(name="busy")
        def busy() -> None:
            while True:
                time.sleep(0.001)

        @agent_runtime.tool(name="abusy")
        async def abusy() -> None:
            while True:
                await asyncio.sleep(0.001)

        for _ in range(2):
            threading.Thread(target=lambda: {how}, daemon=True).start()
        time.sleep(0.3)
        print("exiting", flush=True)
        """
    exits_cleanly(code, times=2)


@pytest.mark.parametrize(
    "how",
    [
        'agent_runtime.call("ashort")',  # waits on the runtime's loop
        'agent_runtime.call("diag.sleep", {"seconds": 0.0005})',  # waits on tokio
        'agent_runtime.spawn("ashort").result()',
        # Failing calls: the exception is built in Rust after the wait (pyo3 released the GIL
        # while building one lazily, a crash at exit once in ~15 runs on 3.13).
        'fails(lambda: agent_runtime.spawn("ashort", {"fail": True}).result())',
        'fails(lambda: agent_runtime.call("diag.fail", {"message": "x"}))',
        # A daemon thread's own event loop: completions are delivered by Rust callbacks that
        # run Python code (resolving futures, starting tasks) on that thread.
        "asyncio.run(awaits())",
    ],
)
def test_exit_while_daemon_threads_keep_calling_is_clean(how: str) -> None:
    # Short calls in a loop: at exit some thread is always on its way back from Rust work to
    # the GIL, or holds it in Rust code between a wait and its return to Python: the windows
    # in which CPython (before 3.14) kills a thread that re-takes the GIL during finalization,
    # with a forced unwind through Rust frames (a crash).
    code = f"""
        import asyncio, threading, time
        import agent_runtime
        agent_runtime.register_diagnostic_tools()

        @agent_runtime.tool(name="ashort")
        async def ashort(fail: bool = False) -> None:
            await asyncio.sleep(0.0005)
            if fail:
                raise ValueError("failed as asked")

        def fails(call) -> None:
            try:
                call()
            except (ValueError, agent_runtime.ToolError):
                pass

        async def awaits() -> None:
            while True:
                await agent_runtime.call_async("ashort")
                await agent_runtime.call_async("diag.sleep", {{"seconds": 0.0005}})

        def churn() -> None:
            while True:
                {how}

        for _ in range(4):
            threading.Thread(target=churn, daemon=True).start()
        time.sleep(0.2)
        print("exiting", flush=True)
        """
    exits_cleanly(code, times=5)


def test_a_call_after_the_exit_hook_fails_clearly() -> None:
    # atexit runs hooks last-registered first: this one runs after agent_runtime's.
    p = run_script(
        """
        import atexit

        def late() -> None:
            try:
                print("late:", agent_runtime.call("alate"), flush=True)
            except Exception as e:  # noqa: BLE001 - whichever error, it must say why
                print("late:", type(e).__name__, e, flush=True)

        atexit.register(late)
        import agent_runtime

        @agent_runtime.tool(name="alate")
        async def alate() -> int:
            return 1

        assert agent_runtime.call("alate") == 1
        """
    )
    assert_clean_exit(p)
    assert "late: " in p.stdout and "the interpreter is exiting" in p.stdout, p.stdout


def test_exit_while_callbacks_and_events_are_queued() -> None:
    p = run_script(
        """
        import asyncio, threading, time
        import agent_runtime
        from agent_runtime import _native
        agent_runtime.register_diagnostic_tools()

        @agent_runtime.tool(name="a")
        async def a(x: int) -> int:
            await asyncio.sleep(0.001)
            return x

        _native.subscribe([], lambda e: time.sleep(0.0005))
        ts = [agent_runtime.spawn("a", {"x": i}) for i in range(2000)]
        ts += [agent_runtime.spawn("diag.sleep", {"seconds": 0.01}) for _ in range(200)]
        print("exiting", flush=True)
        """
    )
    assert_clean_exit(p)


# ---------------------------------------------------------------- nesting


def test_nested_sync_calls_on_pool_threads_do_not_deadlock(reg: Registry) -> None:
    @reg.tool(name="g.hop")
    def hop(n: int) -> int:
        if n == 0:
            return 0
        return 1 + reg.call("diag.call", {"name": "g.hop", "args": {"n": n - 1}})

    # Several chains at once, each level a pool thread waiting for the next one.
    tasks = [reg.spawn("diag.call", {"name": "g.hop", "args": {"n": 15}}) for _ in range(8)]
    assert [t.result(60) for t in tasks] == [15] * 8
    # The pool is still usable afterwards (from Rust, from Python, with timeouts).
    assert reg.call("diag.call", {"name": "g.hop", "args": {"n": 1}}) == 1
    assert reg.call("g.hop", {"n": 2}, timeout=10) == 2


# ---------------------------------------------------------------- hostile callbacks


def test_listener_and_progress_callbacks_that_raise_or_reenter(reg: Registry) -> None:
    calls: List[int] = []

    @reg.tool(name="g.p")
    def p(ctx: Context) -> int:
        ctx.progress(1, 1)
        return 1

    @reg.tool(name="g.inc")
    def inc(x: int) -> int:
        return x + 1

    @reg.tool(name="g.ainc")
    async def ainc(x: int) -> int:
        await asyncio.sleep(0.001)
        return x + 1

    def reenter(e: Dict[str, Any]) -> None:
        # A listener calling back into the registry. When it runs on the Python job thread,
        # the spawned calls need that thread's queue (their results are converted and their
        # coroutines started there) while the listener waits: another thread drains it.
        if e["tool"] == "g.p" and e["event"] == "tool.finished":
            calls.append(reg.call("diag.add", {"a": 1, "b": 1}))
            calls.append(reg.spawn("diag.call", {"name": "g.inc", "args": {"x": 3}}).result(20))
            calls.append(reg.spawn("diag.call", {"name": "g.ainc", "args": {"x": 5}}).result(20))

    def boom(*_: Any) -> None:
        raise RuntimeError("callback bug")

    subs = [_native.subscribe([], reenter), _native.subscribe([], boom)]
    try:
        assert reg.call("g.p", on_progress=boom) == 1
        assert reg.spawn("g.p", on_progress=boom).result(10) == 1
        assert reg.call("g.p", timeout=5, on_progress=boom) == 1
        assert reg.spawn("diag.call", {"name": "g.p"}).result(10) == 1
    finally:
        for s in subs:
            _native.unsubscribe(s)
    assert calls == [2, 4, 6] * 4


def test_many_concurrent_async_calls_with_listeners(reg: Registry) -> None:
    n = 3000
    count = [0]

    @reg.tool(name="g.a")
    async def a(x: int) -> int:
        await asyncio.sleep(0)
        return x

    def listener(e: Dict[str, Any]) -> None:
        count[0] += 1

    sub = _native.subscribe(["tool.finished"], listener)
    try:

        async def main() -> List[int]:
            via_spawn = [reg.spawn("g.a", {"x": i}) for i in range(n)]
            via_call = [reg.call_async("g.a", {"x": i}, timeout=30) for i in range(n)]
            return await asyncio.gather(*via_spawn, *via_call)

        out = asyncio.run(main())
    finally:
        _native.unsubscribe(sub)
    assert out == list(range(n)) * 2
    assert count[0] >= 2 * n


def test_cancel_from_both_sides_at_once(reg: Registry) -> None:
    started = threading.Event()

    @reg.tool(name="g.forever")
    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    async def _await(t: Any) -> Any:
        return await t

    async def main() -> None:
        for _ in range(30):
            t = reg.spawn("g.forever")
            aw = asyncio.ensure_future(reg.call_async("g.forever", timeout=60))
            waiter = asyncio.ensure_future(_await(t))
            await asyncio.sleep(0)
            # Rust side (the task) and Python side (the awaiting future) cancel together.
            t.cancel()
            waiter.cancel()
            aw.cancel()
            for f in (waiter, aw):
                with pytest.raises((asyncio.CancelledError, Cancelled)):
                    await f
            for _ in range(500):  # the task settles once tokio sees the cancellation
                if t.done():
                    break
                await asyncio.sleep(0.01)
            assert t.status == "cancelled"

    asyncio.run(main())
    # Nothing leaked: the runtime loop is idle and answers at once.
    assert reg.call("diag.add", {"a": 1, "b": 1}) == 2


def test_fork_child_gets_its_own_python_threads() -> None:
    p = run_script(
        """
        import asyncio, os
        import agent_runtime
        agent_runtime.register_diagnostic_tools()
        seen = []
        agent_runtime._native.subscribe([], lambda e: seen.append(e["event"]))

        @agent_runtime.tool(name="s")
        def s(x: int) -> int:
            return x + 1

        @agent_runtime.tool(name="a")
        async def a(x: int) -> int:
            await asyncio.sleep(0.001)
            return x * 2

        assert agent_runtime.call("s", {"x": 1}, timeout=5) == 2
        assert agent_runtime.spawn("a", {"x": 2}).result(5) == 4
        pid = os.fork()
        if pid == 0:
            n = len(seen)
            ok = agent_runtime.call("s", {"x": 1}, timeout=5) == 2
            ok = ok and agent_runtime.spawn("a", {"x": 2}).result(5) == 4
            ok = ok and agent_runtime.spawn("diag.call", {"name": "s", "args": {"x": 5}}).result(5) == 6
            os._exit(0 if ok and len(seen) > n else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1)
        """
    )
    assert_clean_exit(p)
    assert p.stdout.strip() == "child 0"
