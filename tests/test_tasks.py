"""Tasks, timeouts, cancellation both ways, progress, events and runtime lifecycle."""

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import agent_runtime
import pytest
from agent_runtime import (
    Cancelled,
    Context,
    InvalidArguments,
    Registry,
    Task,
    ToolError,
    ToolNotFound,
    ToolTimeout,
    _native,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def reg():
    r = Registry()
    agent_runtime.register_diagnostic_tools(r)
    return r


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


# ---------------------------------------------------------------- tasks


def test_spawn_result_status_and_listing(reg):
    gate = threading.Event()

    @reg.tool
    def held(x: int) -> int:
        gate.wait(10)
        return x * 2

    t = reg.spawn("held", {"x": 21})
    assert isinstance(t, Task) and t.tool == "held" and isinstance(t.id, int)
    assert wait_until(lambda: t.status == "running")
    assert not t.done()
    assert t.id in [x.id for x in agent_runtime.tasks()]
    with pytest.raises(TimeoutError):
        t.result(timeout=0.05)  # bounds the wait only
    gate.set()
    assert t.result() == 42
    assert t.done() and t.status == "succeeded"
    frozen = t.elapsed
    time.sleep(0.01)
    assert t.elapsed == frozen > 0
    assert t.id not in [x.id for x in agent_runtime.tasks()]
    assert "succeeded" in repr(t)


def test_spawn_rust_and_async_python_tools_and_await(reg):
    @reg.tool
    async def aplus(a: int) -> int:
        await asyncio.sleep(0.01)
        return a + 1

    async def main():
        t1 = reg.spawn("diag.sleep", {"seconds": 0.02})
        t2 = reg.spawn("aplus", {"a": 1})
        return await t1, await t2, await t1  # awaiting a finished task again is fine

    assert run(main()) == (0.02, 2, 0.02)


def test_spawn_failures(reg):
    with pytest.raises(ToolNotFound):
        reg.spawn("nope")
    with pytest.raises(InvalidArguments):
        reg.spawn("diag.add", {"a": "x", "b": 1})
    t = reg.spawn("diag.fail", {"message": "bad"})
    with pytest.raises(ToolError, match="bad"):
        t.result()
    assert t.status == "failed"

    @reg.tool
    def raiser() -> None:
        raise KeyError("k")

    t = reg.spawn("raiser")
    with pytest.raises(KeyError):
        t.result()


def test_task_cancel_stops_async_python_tool(reg):
    seen = []

    @reg.tool
    async def slow() -> None:
        seen.append("started")
        try:
            await asyncio.sleep(30)
        finally:
            seen.append("finally")

    t = reg.spawn("slow")
    assert wait_until(lambda: seen == ["started"])
    assert t.cancel() is True
    with pytest.raises(Cancelled):
        t.result(timeout=5)
    assert t.status == "cancelled"
    assert wait_until(lambda: seen == ["started", "finally"])
    assert t.cancel() is False


def test_cancelling_an_awaiting_coroutine_cancels_the_task(reg):
    async def main():
        t = reg.spawn("diag.sleep", {"seconds": 30})
        waiter = asyncio.ensure_future(t)
        await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return t

    t = run(main())
    assert wait_until(lambda: t.status == "cancelled")


def test_ten_thousand_concurrent_tasks(reg):
    @reg.tool
    def triple(x: int) -> int:
        return 3 * x

    @reg.tool
    async def atriple(x: int) -> int:
        return 3 * x

    names = ["diag.add", "triple", "atriple", "diag.call"]
    spawned = []
    for i in range(10_000):
        name = names[i % 4]
        if name == "diag.add":
            args = {"a": i, "b": 2 * i}
        elif name == "diag.call":
            args = {"name": "triple", "args": {"x": i}}
        else:
            args = {"x": i}
        spawned.append((i, reg.spawn(name, args)))

    async def gather():
        return await asyncio.gather(*(t for _, t in spawned))

    results = run(gather())
    assert results == [3 * i for i, _ in spawned]
    assert all(t.status == "succeeded" for _, t in spawned)


# ---------------------------------------------------------------- timeouts


def test_tool_default_timeout_cancels_async_tool_and_runs_finally(reg):
    seen = []

    @reg.tool(timeout=0.1)
    async def overrun() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    with pytest.raises(ToolTimeout) as ei:
        reg.call("overrun")
    assert ei.value.tool == "overrun" and ei.value.timeout == pytest.approx(0.1)
    assert isinstance(ei.value, TimeoutError)
    assert wait_until(lambda: seen == ["cancelled", "finally"])


def test_per_call_timeout_override_on_every_entry_point(reg):
    @reg.tool(timeout=30)
    async def slowpoke() -> str:
        await asyncio.sleep(5)
        return "late"

    with pytest.raises(ToolTimeout):
        reg.call("slowpoke", timeout=0.05)
    with pytest.raises(ToolTimeout):
        reg.call("diag.sleep", {"seconds": 5}, timeout=0.05)

    async def main():
        with pytest.raises(ToolTimeout):
            await reg.call_async("slowpoke", timeout=0.05)
        with pytest.raises(ToolTimeout):
            await reg.call_async("diag.sleep", {"seconds": 5}, timeout=0.05)

    run(main())
    t = reg.spawn("diag.sleep", {"seconds": 5}, timeout=0.05)
    with pytest.raises(ToolTimeout):
        t.result()
    assert t.status == "timed_out"
    # A generous override lets it finish.
    assert reg.call("diag.sleep", {"seconds": 0.01}, timeout=5) == 0.01
    with pytest.raises(ValueError, match="timeout"):
        reg.call("diag.noop", timeout=-1)


def test_sync_callback_overrun_reports_at_deadline_and_discards_late_result(reg):
    finished = threading.Event()
    results = []

    @reg.tool
    def stubborn() -> str:
        time.sleep(0.5)
        finished.set()
        results.append("done")
        return "late"

    with pytest.raises(ToolTimeout):
        reg.call("stubborn", timeout=0.05)
    # The caller got its answer while the callback was still running …
    assert not finished.is_set()
    # … which runs on in its thread; its result goes nowhere.
    assert finished.wait(5) and results == ["done"]


def test_rust_tool_timeout(reg):
    t0 = time.monotonic()
    with pytest.raises(ToolTimeout):
        reg.call("diag.sleep", {"seconds": 30}, timeout=0.05)
    assert time.monotonic() - t0 < 10  # not the 30 s the tool asked for


# ---------------------------------------------------------------- cancellation both ways


def test_cancelling_python_awaitable_stops_rust_future_and_nested_python_coroutine(reg):
    seen = []

    @reg.tool
    async def inner() -> None:
        seen.append("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main():
        # call_async → Rust tool diag.call → (Rust future awaiting) → Python coroutine `inner`.
        fut = asyncio.ensure_future(reg.call_async("diag.call", {"name": "inner"}))
        while not seen:
            await asyncio.sleep(0.005)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        for _ in range(400):
            if "cancelled" in seen:
                break
            await asyncio.sleep(0.005)

    run(main())
    assert seen == ["started", "cancelled"]


def test_wait_for_on_call_async_cancels_the_call(reg):
    seen = []

    @reg.tool
    async def long_one() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            seen.append("finally")

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reg.call_async("diag.call", {"name": "long_one"}), 0.1)

    run(main())
    assert wait_until(lambda: seen == ["finally"])


# ---------------------------------------------------------------- progress and context


def test_progress_reaches_callback_and_task(reg):
    @reg.tool
    def work(steps: int, ctx: Context) -> int:
        """Do steps."""
        for i in range(steps):
            ctx.progress(i + 1, steps, f"step {i + 1}")
        return ctx.call_id

    spec = reg.spec("work")
    assert "ctx" not in spec["input_schema"]["properties"]
    assert spec["input_schema"]["required"] == ["steps"]

    got = []
    call_id = reg.call("work", {"steps": 3}, on_progress=lambda d, t, m: got.append((d, t, m)))
    assert got == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]
    assert isinstance(call_id, int)

    # Through Rust (JSON args) and a worker thread.
    got.clear()
    reg.call("diag.call", {"name": "work", "args": {"steps": 2}}, on_progress=lambda d, t, m: got.append(d))
    assert got == [1.0, 2.0]

    t = reg.spawn("work", {"steps": 4})
    t.result()
    assert t.progress == {"done": 4.0, "total": 4.0, "message": "step 4"}


def test_async_tool_progress_and_cancel_check(reg):
    flags = []

    @reg.tool
    async def apro(ctx: Context) -> str:
        ctx.progress(1)
        await asyncio.sleep(0)
        ctx.progress(2, None, "half")
        return ctx.tool

    got = []

    async def main():
        return await reg.call_async("apro", on_progress=lambda d, t, m: got.append((d, t, m)))

    assert run(main()) == "apro"
    assert got == [(1.0, None, None), (2.0, None, "half")]

    @reg.tool
    def looper(ctx: Context) -> None:
        while True:
            if ctx.cancelled:
                flags.append("saw cancel")
                ctx.check_cancelled()
            time.sleep(0.005)

    t = reg.spawn("looper")
    time.sleep(0.05)
    t.cancel()
    assert wait_until(lambda: flags == ["saw cancel"])


def test_context_log_and_bad_progress_callback(reg, caplog):
    @reg.tool
    def chatty(ctx: Context) -> int:
        ctx.log("hello from the tool", "warning")
        ctx.progress(1, 1)
        return 1

    with caplog.at_level(logging.INFO):

        def broken(done, total, message):
            raise RuntimeError("callback bug")

        assert reg.call("chatty", on_progress=broken) == 1  # a broken callback never breaks the call
    assert any("hello from the tool" in r.getMessage() and "chatty" in r.getMessage() for r in caplog.records)
    assert any("callback bug" in r.getMessage() for r in caplog.records)

    @reg.tool
    def loud(ctx: Context) -> None:
        ctx.log("x", "loud")

    with pytest.raises(ValueError, match="log level"):
        reg.call("loud")


# ---------------------------------------------------------------- events


def test_events_for_success_failure_and_async(reg):
    seen = []

    @agent_runtime.on("tool.started", "tool.finished", "tool.failed")
    def hook(event):
        if event["tool"].startswith(("ev.", "diag.fail")):
            seen.append(event)

    try:

        @reg.tool(name="ev.ok")
        def ok() -> int:
            return 1

        @reg.tool(name="ev.async")
        async def aok() -> int:
            return 2

        async def via_asyncio():
            return await reg.call_async("ev.async")

        reg.call("ev.ok")
        assert run(via_asyncio()) == 2
        with pytest.raises(ToolError):
            reg.call("diag.fail", {"message": "nope"})
        reg.spawn("ev.ok").result()
    finally:
        assert agent_runtime.unsubscribe(hook._agent_runtime_subscription)

    kinds = [(e["tool"], e["event"]) for e in seen]
    assert kinds == [
        ("ev.ok", "tool.started"),
        ("ev.ok", "tool.finished"),
        ("ev.async", "tool.started"),
        ("ev.async", "tool.finished"),
        ("diag.fail", "tool.started"),
        ("diag.fail", "tool.failed"),
        ("ev.ok", "tool.started"),
        ("ev.ok", "tool.finished"),
    ]
    assert seen[0]["call_id"] == seen[1]["call_id"] and seen[0]["call_id"] != seen[2]["call_id"]
    assert seen[1]["duration"] >= 0 and seen[1]["error"] is None
    assert seen[5]["error"]["type"] == "ToolError" and "nope" in seen[5]["error"]["message"]
    count = len(seen)
    reg.call("ev.ok")
    assert len(seen) == count  # unsubscribed


def test_python_exception_events_carry_type(reg):
    seen = []
    sub = _native.subscribe(["tool.failed"], lambda e: seen.append(e) if e["tool"] == "ev.bad" else None)

    @reg.tool(name="ev.bad")
    def bad() -> None:
        raise LookupError("missing")

    try:
        with pytest.raises(LookupError):
            reg.call("ev.bad")
        with pytest.raises(LookupError):
            reg.call("diag.call", {"name": "ev.bad"})
    finally:
        _native.unsubscribe(sub)
    assert [e["error"]["type"] for e in seen] == ["LookupError", "LookupError"]


def test_failing_hook_is_logged_and_never_breaks_the_call(reg, caplog):
    @agent_runtime.on("tool.finished")
    def broken(event):
        raise RuntimeError("hook bug")

    try:
        with caplog.at_level(logging.ERROR, logger="agent_runtime"):
            assert reg.call("diag.add", {"a": 1, "b": 2}) == 3
    finally:
        agent_runtime.unsubscribe(broken._agent_runtime_subscription)
    assert any("hook bug" in (r.exc_text or "") or "failed" in r.getMessage() for r in caplog.records)

    # A raw listener that raises: the Rust side logs it through Python logging (pyo3-log).
    sub = _native.subscribe(["tool.finished"], lambda e: 1 / 0)
    try:
        with caplog.at_level(logging.ERROR):
            assert reg.call("diag.add", {"a": 2, "b": 2}) == 4
    finally:
        _native.unsubscribe(sub)
    assert any("ZeroDivisionError" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="unknown event"):
        agent_runtime.on("tool.exploded")


# ---------------------------------------------------------------- lifecycle


def _run_child(code, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "tests"), env.get("PYTHONPATH", "")])
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
        env=env,
    )
    return p, time.monotonic() - t0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_a_working_runtime():
    p, _ = _run_child(
        """
        import asyncio, os, sys
        import agent_runtime
        import sample_tools
        # Warm up the parent's runtime and loop thread first.
        assert agent_runtime.call("diag.sleep", {"seconds": 0.01}) == 0.01
        assert agent_runtime.call("async_add", {"a": 1, "b": 1}) == 2
        pid = os.fork()
        if pid == 0:
            try:
                ok = (
                    agent_runtime.call("diag.add", {"a": 1, "b": 2}) == 3
                    and agent_runtime.call("diag.sleep", {"seconds": 0.01}) == 0.01
                    and agent_runtime.call("add", {"a": 2, "b": 2}) == 4
                    and agent_runtime.call("async_add", {"a": 3, "b": 3}) == 6
                    and agent_runtime.call("diag.call", {"name": "async_add", "args": {"a": 4, "b": 4}}) == 8
                    and agent_runtime.spawn("diag.add", {"a": 5, "b": 5}).result(timeout=10) == 10
                    and asyncio.run(agent_runtime.call_async("diag.sleep", {"seconds": 0.01})) == 0.01
                )
                os._exit(0 if ok else 3)
            except BaseException as e:
                print("child failed:", repr(e), file=sys.stderr)
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        # The parent's runtime is untouched.
        assert agent_runtime.call("async_add", {"a": 5, "b": 5}) == 10
        assert agent_runtime.call("diag.sleep", {"seconds": 0.01}) == 0.01
        sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
        """
    )
    assert p.returncode == 0, p.stderr


def test_exit_with_a_thousand_tasks_in_flight():
    p, wall = _run_child(
        """
        import agent_runtime, asyncio, time
        import sample_tools

        @agent_runtime.tool(name="exit.slow")
        async def slow() -> None:
            await asyncio.sleep(60)

        ts = [agent_runtime.spawn("diag.sleep", {"seconds": 60}) for _ in range(500)]
        ts += [agent_runtime.spawn("exit.slow") for _ in range(500)]
        deadline = time.monotonic() + 20
        while any(t.status == "pending" for t in ts) and time.monotonic() < deadline:
            time.sleep(0.01)
        print(len(agent_runtime.tasks()), flush=True)
        """
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1000"
    assert "Traceback" not in p.stderr and "panicked" not in p.stderr, p.stderr
    # Generous bound: this catches a hang at exit, not a slow machine (the benchmark reports
    # the actual exit time).
    assert wall < 30


def test_shutdown_on_demand_then_restart(reg):
    t = reg.spawn("diag.sleep", {"seconds": 30})
    assert wait_until(lambda: t.status == "running")
    agent_runtime.shutdown()
    assert t.status == "cancelled"
    with pytest.raises(Cancelled):
        t.result(timeout=5)
    # Everything starts again lazily.
    assert reg.call("diag.sleep", {"seconds": 0.01}) == 0.01

    @reg.tool
    async def after() -> int:
        return 7

    assert reg.call("after") == 7
    assert reg.call("diag.call", {"name": "after"}) == 7
